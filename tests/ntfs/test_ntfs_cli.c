/* test_ntfs_cli.c — gpup ls/cat/put/rm on fake guests (mkguest.sh), checked
 * through an independent reader: the partition cut out with dd and read by
 * ntfs-3g's own tools (ntfsls, ntfscat, ntfsfix, ntfsinfo, ntfssecaudit). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"
#include "le.h"
#include "ntfs_test.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(ntfs_cli, .init = setup, .fini = teardown, .timeout = 120);

#define FR "C:\\Windows\\System32\\HostDriverStore\\FileRepository"

/* A host tree with awkward sizes: empty, resident, just over resident,
 * cluster-sized, multi-MiB random. */
static char *make_tree(const char *name)
{
	static const size_t sizes[] = { 0, 1, 600, 700, 4095, 4096, 4097, 65536, 1048577, 3000000 };
	char *root = t_strdup_printf("%s/%s", dir, name);
	uint64_t seed = 42;
	struct t_run r;

	t_run(&r, "mkdir -p %s/sub/deeper", root);
	t_run_free(&r);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *buf = malloc(sizes[i] + 1);
		char *p = t_strdup_printf("%s/%s/f%zu.bin", root, i % 3 == 0 ? "sub/deeper" : i % 2 ? "sub" : ".",
					  i);

		t_fill_random(buf, sizes[i], &seed);
		cr_assert_eq(t_write_file(p, buf, sizes[i]), 0);
		free(buf);
		free(p);
	}
	return root;
}

/* Compare every file of host tree @host with @guest_dir (slash form) of
 * partition image @part, through ntfscat. */
static void compare_tree(const char *host, const char *part, const char *guest_dir)
{
	struct t_run r;
	char *line, *save;

	t_run(&r, "cd %s && find . -type f | sort", host);
	cr_assert_eq(r.status, 0);
	for (line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct t_run c;
		char want[65], *hp = t_strdup_printf("%s/%s", host, line + 2);

		cr_assert_eq(t_sha256_file(hp, want), 0);
		t_run(&c, "ntfscat %s '%s/%s' | sha256sum", part, guest_dir, line + 2);
		cr_assert_eq(c.status, 0, "ntfscat %s/%s: %s", guest_dir, line + 2, c.err);
		cr_assert(strncmp(c.out, want, 64) == 0, "%s differs in the guest", line + 2);
		t_run_free(&c);
		free(hp);
	}
	t_run_free(&r);
}

static void assert_clean(const char *part)
{
	struct t_run r;

	t_run(&r, "ntfsfix -n %s", part);
	cr_assert_eq(r.status, 0, "ntfsfix -n: %s %s", r.out, r.err);
	t_run_free(&r);
	t_run(&r, "ntfsinfo -f -m %s | grep 'Volume Flags'", part);
	cr_assert(strstr(r.out, "0x0000"), "volume flags after gpup: %s", r.out);
	t_run_free(&r);
}

Test(ntfs_cli, put_tree_reads_back_through_ntfs3g_tools)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len), *tree = make_tree("pkg");
	char *part;
	struct t_run r;

	t_gpup(&r, "put --progress=json %s %s '" FR "'", img, tree);
	cr_assert_eq(r.status, 0, "put: %s", r.err);
	cr_assert(strstr(r.err, "\"event\":\"end\""), "progress lines: %s", r.err);
	cr_assert(strstr(r.err, "\"total_files\":10"), "progress lines: %s", r.err);
	t_run_free(&r);
	/* ls of a file shows that file. */
	t_gpup(&r, "ls %s '" FR "\\pkg\\f2.bin'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, " f2.bin"), "%s", r.out);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	compare_tree(tree, part, "/Windows/System32/HostDriverStore/FileRepository/pkg");
	assert_clean(part);
	/* The tree as ntfsls sees it: exactly the host's names. */
	t_run(&r, "ntfsls -p /Windows/System32/HostDriverStore/FileRepository/pkg/sub %s | grep -v '^\\.\\.\\?$' | LC_ALL=C sort | tr '\\n' ' '",
	      part);
	cr_assert_str_eq(r.out, "deeper f1.bin f5.bin f7.bin ", "%s", r.out);
	t_run_free(&r);
	/* gpup's own reader agrees. */
	t_gpup(&r, "cat %s windows/system32/HOSTDRIVERSTORE/filerepository/pkg/f8.bin | sha256sum", img);
	{
		char want[65], *hp = t_strdup_printf("%s/f8.bin", tree);

		cr_assert_eq(t_sha256_file(hp, want), 0);
		cr_assert(strncmp(r.out, want, 64) == 0);
		free(hp);
	}
	t_run_free(&r);
	free(part);
	free(tree);
	free(img);
}

Test(ntfs_cli, new_files_inherit_system32_acl)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len), *tree = make_tree("pkg");
	char *part;
	struct t_run r;

	t_gpup(&r, "put %s %s/sub/f1.bin 'C:\\Windows\\System32'", img, tree);
	cr_assert_eq(r.status, 0, "put: %s", r.err);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfssecaudit -vv %s /Windows/System32/f1.bin", part);
	cr_assert_eq(r.status, 0, "%s", r.err);
	/* System32's inheritable ACEs (fixture: SYSTEM, Administrators, Users,
	 * ALL APPLICATION PACKAGES), not libntfs-3g's Everyone:Full default. */
	cr_assert(strstr(r.out, "Local System SID"), "%s", r.out);
	cr_assert(strstr(r.out, "Users SID"), "%s", r.out);
	cr_assert(strstr(r.out, "Administrators SID"), "%s", r.out);
	cr_assert(!strstr(r.out, "World SID"), "Everyone must not be granted: %s", r.out);
	t_run_free(&r);
	free(part);
	free(tree);
	free(img);
}

/* Run `gpup put` on @img and check the refusal: exit 3, @msg in stderr,
 * image byte-identical. */
static void assert_refused(const char *img, const char *opts, const char *msg)
{
	char before[65], after[65];
	char *f = t_strdup_printf("%s/payload.txt", dir);
	struct t_run r;

	cr_assert_eq(t_write_file(f, "x", 1), 0);
	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "put %s %s %s 'C:\\Windows'", opts, img, f);
	cr_assert_eq(r.status, 3, "exit %d, stderr: %s", r.status, r.err);
	cr_assert(strstr(r.err, msg), "stderr lacks '%s': %s", msg, r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "a refused image must stay byte-identical");
	free(f);
}

Test(ntfs_cli, refuses_hibernated_guest)
{
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	char *h = t_strdup_printf("%s/hiberfil.sys", dir);
	char buf[8192] = "HIBR";
	struct t_run r;

	cr_assert_eq(t_write_file(h, buf, sizeof(buf)), 0);
	t_gpup(&r, "put %s %s /", img, h);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	assert_refused(img, "", "Windows is hibernated");
	assert_refused(img, "--force --recover", "shutdown /s /t 0");
	/* A writable put is refused by libntfs-3g itself; the read-only probe
	 * must see "HIBR" (Windows 8+) and "hibr" alike, and nothing else. */
	for (int i = 0; i < 3; i++) {
		static const char *const sig[] = { "HIBR", "hibr", "wake" };
		char *name = t_strdup_printf("h%d.img", i);
		char *g = nt_guest(dir, name, "--size 512M", NULL, NULL);

		memcpy(buf, sig[i], 4);
		cr_assert_eq(t_write_file(h, buf, sizeof(buf)), 0);
		t_gpup(&r, "put %s %s /", g, h);
		cr_assert_eq(r.status, 0, "%s", r.err);
		t_run_free(&r);
		t_gpup(&r, "inspect %s --json", g);
		cr_assert_eq(r.status, 0, "inspect: %s", r.err);
		cr_assert(strstr(r.out, i < 2 ? "\"hibernated\":true" : "\"hibernated\":false"),
			  "signature %s: %s", sig[i], r.out);
		t_run_free(&r);
		free(g);
		free(name);
	}
	free(h);
	free(img);
}

/* A $LogFile restart page (RESTART_PAGE_HEADER + RESTART_AREA) with
 * version @major.@minor and clients in use (@clean false). */
static void restart_page(uint8_t *p, uint16_t major, uint16_t minor, bool clean)
{
	memset(p, 0xff, 4096);
	memcpy(p, "RSTR", 4);
	put_le16(p + 0x04, 0x1e);     /* update sequence array offset */
	put_le16(p + 0x06, 9);        /* update sequence count */
	put_le64(p + 0x08, 0);        /* chkdsk LSN */
	put_le32(p + 0x10, 4096);     /* system page size */
	put_le32(p + 0x14, 4096);     /* log page size */
	put_le16(p + 0x18, 0x30);     /* restart area offset */
	put_le16(p + 0x1a, minor);
	put_le16(p + 0x1c, major);
	memset(p + 0x30, 0, 0x30);
	put_le64(p + 0x30, 0x1000);   /* current LSN */
	put_le16(p + 0x38, 1);        /* log clients */
	put_le16(p + 0x3a, 0xffff);   /* client free list */
	put_le16(p + 0x3c, clean ? 0xffff : 0); /* client in use list */
	put_le16(p + 0x3e, 0);        /* flags: not clean */
}

/* Byte offset of $LogFile's first cluster in the disk image. */
static uint64_t logfile_offset(const char *img, uint64_t off, uint64_t len)
{
	char *part = nt_extract(dir, img, off, len);
	struct t_run r;
	unsigned long long lcn = 0, csize = 0;
	char *p;

	t_run(&r, "ntfsinfo -i 2 -v %s", part);
	cr_assert_eq(r.status, 0, "%s", r.err);
	p = strstr(r.out, "Runlist:");
	cr_assert_not_null(p);
	p = strstr(p, "0x0");
	cr_assert_not_null(p);
	cr_assert_eq(sscanf(p, "0x0 %llx", &lcn), 1, "%s", p);
	t_run_free(&r);
	t_run(&r, "ntfsinfo -m %s | awk '/Cluster Size:/ { print $3; exit }'", part);
	csize = strtoull(r.out, NULL, 10);
	cr_assert(csize >= 512, "cluster size: %s", r.out);
	t_run_free(&r);
	free(part);
	return off + lcn * csize;
}

Test(ntfs_cli, refuses_fast_startup)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len);
	uint8_t page[4096];
	uint64_t lf = logfile_offset(img, off, len);

	restart_page(page, 2, 0, true);
	nt_patch(img, lf, page, sizeof(page));
	assert_refused(img, "", "Fast Startup");
	assert_refused(img, "--recover --force", "$LogFile restart page version 2.0");
	free(img);
}

Test(ntfs_cli, refuses_unclean_journal_unless_recover)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len);
	uint8_t page[4096];
	uint64_t lf = logfile_offset(img, off, len);
	char *f = t_strdup_printf("%s/after.txt", dir), *part;
	struct t_run r;

	restart_page(page, 1, 1, false);
	nt_patch(img, lf, page, sizeof(page));
	nt_patch(img, lf + 4096, page, sizeof(page));
	assert_refused(img, "", "--recover");
	cr_assert_eq(t_write_file(f, "recovered\n", 10), 0);
	t_gpup(&r, "put --recover %s %s /", img, f);
	cr_assert_eq(r.status, 0, "--recover must write: %s", r.err);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfscat -f %s /after.txt", part);
	cr_assert_str_eq(r.out, "recovered\n");
	t_run_free(&r);
	/* The discarded journal may have held metadata: chkdsk must run. */
	t_run(&r, "ntfsinfo -f -m %s | grep 'Volume Flags'", part);
	cr_assert(strstr(r.out, "0x0001"), "%s", r.out);
	t_run_free(&r);
	free(part);
	free(f);
	free(img);
}

/* Set VOLUME_IS_DIRTY in $Volume's $VOLUME_INFORMATION (record 3) of the
 * volume at @off of @img, in $MFT and in its mirror $MFTMirr. */
static void plant_dirty(const char *img, uint64_t off)
{
	uint8_t boot[512], *rec;
	uint64_t cs, lcns[2];
	size_t blen;
	int8_t rs;
	FILE *f = fopen(img, "r+b");

	cr_assert_not_null(f);
	cr_assert_eq(fseeko(f, (off_t)off, SEEK_SET), 0);
	cr_assert_eq(fread(boot, 1, 512, f), 512);
	cs = (uint64_t)get_le16(boot + 0x0b) * boot[0x0d];
	lcns[0] = get_le64(boot + 0x30); /* $MFT */
	lcns[1] = get_le64(boot + 0x38); /* $MFTMirr */
	rs = (int8_t)boot[0x40];
	blen = rs < 0 ? (size_t)1 << -rs : (size_t)rs * cs;
	rec = malloc(blen);
	for (int m = 0; m < 2; m++) {
		uint64_t rec_off = off + lcns[m] * cs + 3 * blen;
		bool done = false;

		cr_assert_eq(fseeko(f, (off_t)rec_off, SEEK_SET), 0);
		cr_assert_eq(fread(rec, 1, blen, f), blen);
		cr_assert_eq(memcmp(rec, "FILE", 4), 0);
		for (uint32_t a = get_le16(rec + 0x14); !done && a + 8 < blen &&
		     get_le32(rec + a) != 0xffffffff; a += get_le32(rec + a + 4)) {
			cr_assert(get_le32(rec + a + 4) > 0);
			if (get_le32(rec + a) == 0x70) { /* $VOLUME_INFORMATION */
				uint32_t v = a + get_le16(rec + a + 0x14);

				cr_assert(v + 12 < 510, "flags must sit in the record's first sector");
				rec[v + 0x0a] |= 0x01;
				cr_assert_eq(fseeko(f, (off_t)rec_off, SEEK_SET), 0);
				cr_assert_eq(fwrite(rec, 1, 512, f), 512);
				done = true;
			}
		}
		cr_assert(done, "no $VOLUME_INFORMATION in $Volume");
	}
	fclose(f);
	free(rec);
}

Test(ntfs_cli, refuses_dirty_volume_unless_force)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len), *part;
	char *f = t_strdup_printf("%s/forced.txt", dir);
	struct t_run r;

	plant_dirty(img, off);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfsinfo -f -m %s | grep 'Volume Flags'", part);
	cr_assert(strstr(r.out, "0x0001"), "planting failed: %s", r.out);
	t_run_free(&r);
	free(part);
	assert_refused(img, "", "--force");
	assert_refused(img, "--recover", "marked dirty");
	cr_assert_eq(t_write_file(f, "forced\n", 7), 0);
	t_gpup(&r, "put --force %s %s /", img, f);
	cr_assert_eq(r.status, 0, "--force must write: %s", r.err);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfscat -f %s /forced.txt", part);
	cr_assert_str_eq(r.out, "forced\n");
	t_run_free(&r);
	/* It was dirty before: gpup leaves it dirty for chkdsk. */
	t_run(&r, "ntfsinfo -f -m %s | grep 'Volume Flags'", part);
	cr_assert(strstr(r.out, "0x0001"), "%s", r.out);
	t_run_free(&r);
	free(part);
	free(f);
	free(img);
}

Test(ntfs_cli, refuses_bitlocker)
{
	uint64_t off;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, NULL);
	char *msg = t_strdup_printf("volume 3 of %s is BitLocker-encrypted; decrypt or suspend protection in the guest first",
				    img);

	nt_patch(img, off + 3, "-FVE-FS-", 8);
	assert_refused(img, "", msg);
	assert_refused(img, "--partition 3", msg);
	free(msg);
	free(img);
}

Test(ntfs_cli, case_insensitive_paths_make_no_twins)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len), *part;
	char *f = t_strdup_printf("%s/note.txt", dir);
	struct t_run r;

	cr_assert_eq(t_write_file(f, "note\n", 5), 0);
	t_gpup(&r, "put %s %s windows/SYSTEM32/driverstore", img, f);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "put %s %s /WINDOWS/system32/DRIVERSTORE", img, f);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfsls -p /Windows %s | grep -v '^\\.\\.\\?$' | LC_ALL=C sort | tr '\\n' ' '", part);
	cr_assert_str_eq(r.out, "INF SysWOW64 System32 ", "%s", r.out);
	t_run_free(&r);
	t_run(&r, "ntfsls -p /Windows/System32/DriverStore %s | grep -v '^\\.\\.\\?$' | LC_ALL=C sort | tr '\\n' ' '", part);
	cr_assert_str_eq(r.out, "FileRepository note.txt ", "%s", r.out);
	t_run_free(&r);
	free(part);
	free(f);
	free(img);
}

Test(ntfs_cli, rejects_windows_illegal_names)
{
	static const char *const bad[] = { "con.txt", "a:b", "trail.", "q?x", "COM1" };
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	char before[65], after[65];

	cr_assert_eq(t_sha256_file(img, before), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *f = t_strdup_printf("%s/%s", dir, bad[i]);
		struct t_run r;

		cr_assert_eq(t_write_file(f, "x", 1), 0);
		t_gpup(&r, "put %s '%s' /", img, f);
		cr_assert_neq(r.status, 0, "'%s' must be refused", bad[i]);
		cr_assert(strstr(r.err, "Windows"), "%s: %s", bad[i], r.err);
		t_run_free(&r);
		remove(f);
		free(f);
	}
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after);
	free(img);
}

Test(ntfs_cli, full_volume_fails_up_front)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 64M --layout mbr", &off, &len), *part;
	char *f = t_strdup_printf("%s/huge.bin", dir);
	struct t_run r;

	t_run(&r, "truncate -s 100M %s", f);
	t_run_free(&r);
	t_gpup(&r, "put %s %s /", img, f);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "not enough free space in the guest volume: need ") &&
		  strstr(r.err, "(104857600 of file data"), "%s", r.err);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfsls -p / %s | grep -c huge.bin", part);
	cr_assert_str_eq(r.out, "0\n", "nothing may be created");
	t_run_free(&r);
	assert_clean(part);
	free(part);
	free(f);
	free(img);
}

static long long mft_record(const char *img, const char *path, const char *name)
{
	struct t_run r;
	char *p, *needle = t_strdup_printf("\"name\":\"%s\"", name);
	long long rec = -1;

	t_gpup(&r, "ls %s '%s' --json | tr -d ' \\n'", img, path);
	cr_assert_eq(r.status, 0, "%s", r.err);
	p = strstr(r.out, needle);
	if (p) {
		p = strstr(p, "\"mft_record\":");
		cr_assert_not_null(p);
		rec = strtoll(p + 13, NULL, 10);
	}
	t_run_free(&r);
	free(needle);
	return rec;
}

Test(ntfs_cli, replaces_in_place)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len), *part;
	char *a = t_strdup_printf("%s/a", dir), *b = t_strdup_printf("%s/b", dir);
	char *fa = t_strdup_printf("%s/a/Data.BIN", dir), *fb = t_strdup_printf("%s/b/data.bin", dir);
	char *big = malloc(200000);
	uint64_t seed = 7;
	long long rec1, rec2;
	struct t_run r;

	mkdir(a, 0755);
	mkdir(b, 0755);
	t_fill_random(big, 200000, &seed);
	cr_assert_eq(t_write_file(fa, big, 200000), 0);
	cr_assert_eq(t_write_file(fb, "second version\n", 15), 0);
	t_gpup(&r, "put %s %s /Windows", img, fa);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	rec1 = mft_record(img, "/Windows", "Data.BIN");
	cr_assert(rec1 > 0);
	t_gpup(&r, "put %s %s /Windows", img, fb);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	rec2 = mft_record(img, "/Windows", "Data.BIN");
	cr_assert_eq(rec1, rec2, "same MFT record after replacing");
	cr_assert_eq(mft_record(img, "/Windows", "data.bin"), -1, "no twin");
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfscat %s /Windows/Data.BIN", part);
	cr_assert_str_eq(r.out, "second version\n");
	t_run_free(&r);
	assert_clean(part);
	free(part);
	free(big);
	free(a);
	free(b);
	free(fa);
	free(fb);
	free(img);
}

Test(ntfs_cli, rm_needs_r_for_directories)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len), *part;
	char *tree = make_tree("pkg");
	struct t_run r;

	t_gpup(&r, "put %s %s /Windows/System32", img, tree);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "rm %s /Windows/System32/PKG", img);
	cr_assert_neq(r.status, 0);
	cr_assert(strstr(r.err, "is a directory"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "rm %s 'C:\\Windows\\System32\\pkg\\f2.bin'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "ls %s /Windows/System32/pkg/f2.bin", img);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "no such file"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "rm -r %s /windows/system32/pkg", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfsls -p /Windows/System32 %s | grep -v '^\\.\\.\\?$' | LC_ALL=C sort | tr '\\n' ' '", part);
	cr_assert_str_eq(r.out, "DriverStore config drivers ntoskrnl.exe ", "%s", r.out);
	t_run_free(&r);
	assert_clean(part);
	free(part);
	free(tree);
	free(img);
}

Test(ntfs_cli, hyperv_fixture_lists_read_only)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	char before[65], after[65];
	struct t_run r;

	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "ls %s / --json", img);
	cr_assert_eq(r.status, 0, "ls on the sole NTFS volume: %s", r.err);
	cr_assert(strstr(r.out, "\"entries\""), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "ls %s --partition 2 /", img);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "has no partition 2"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after);
	free(img);
}

Test(ntfs_cli, usage_errors)
{
	struct t_run r;

	t_gpup(&r, "put onlyimage");
	cr_assert_eq(r.status, 2);
	t_run_free(&r);
	t_gpup(&r, "ls --force x.img");
	cr_assert_eq(r.status, 2);
	t_run_free(&r);
	t_gpup(&r, "ls --help");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "Usage: gpup ls"));
	t_run_free(&r);
}

Test(ntfs_cli, raw_4096_byte_sector_guest)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M --sector 4096", &off, &len), *part;
	char *f = t_strdup_printf("%s/s.txt", dir);
	struct t_run r;

	cr_assert_eq(t_write_file(f, "4k sectors\n", 11), 0);
	t_gpup(&r, "put %s %s 'C:\\Windows\\System32'", img, f);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfscat %s /Windows/System32/s.txt", part);
	cr_assert_str_eq(r.out, "4k sectors\n", "%s", r.err);
	t_run_free(&r);
	assert_clean(part);
	free(part);
	free(f);
	free(img);
}

/* Two Windows installations (MBR, partitions 1 and 2): gpup refuses to
 * guess and lists them; --partition picks one. Built here with fdisk,
 * mkntfs and tests/fixtures/mkguest_ntfs.c. */
Test(ntfs_cli, several_windows_volumes_need_partition)
{
	char *img = t_strdup_printf("%s/two.img", dir);
	char *f = t_strdup_printf("%s/pick.txt", dir);
	struct t_run r;

	t_run(&r,
	      "set -e; cd %s; truncate -s 160M two.img;"
	      "printf 'label: dos\\nstart=2048, size=153600, type=7\\nstart=155648, size=153600, type=7\\n' | sfdisk -q two.img;"
	      "cc -std=c11 -D_GNU_SOURCE -O1 -o b %s/tests/fixtures/mkguest_ntfs.c $(pkg-config --cflags --libs libntfs-3g);"
	      "printf 'MZ' > k.exe;"
	      "printf 'mkdir\\tWindows\\nmkdir\\tWindows/System32\\nput\\tk.exe\\tWindows/System32/ntoskrnl.exe\\n' > s;"
	      "for p in 1 2; do rm -f v; truncate -s 75M v; start=$((2048 + (p - 1) * 153600));"
	      " mkntfs -F -Q -T -p $start -L W$p v >/dev/null 2>&1;"
	      " dd if=v of=two.img bs=512 seek=$start conv=notrunc,sparse status=none;"
	      " ./b two.img $((start * 512)) $((153600 * 512)) < s; done",
	      dir, t_env("GPUP_SRC"));
	cr_assert_eq(r.status, 0, "building the disk: %s %s", r.out, r.err);
	t_run_free(&r);
	cr_assert_eq(t_write_file(f, "picked\n", 7), 0);
	t_gpup(&r, "put %s %s /", img, f);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "several Windows installations on volumes (1, 2); choose one with --partition N"),
		  "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "put --partition 2 %s %s /", img, f);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "cat --partition 2 %s /pick.txt", img);
	cr_assert_str_eq(r.out, "picked\n");
	t_run_free(&r);
	t_gpup(&r, "cat --partition 1 %s /pick.txt", img);
	cr_assert_eq(r.status, 1, "partition 1 is untouched: %s", r.out);
	t_run_free(&r);
	free(f);
	free(img);
}
