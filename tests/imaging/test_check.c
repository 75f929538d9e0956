/* test_check.c — `gpup check` (disk_check.h) on images written by Microsoft
 * tools (../shared/fixtures/microsoft, the Hyper-V fixtures), on truncated
 * and corrupted copies, and `gpup verify` on a damaged container (issue 18
 * item 5): it must not say "all match". Also the engine and `disk read` on
 * the Microsoft fixtures (items 7, 8). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk_check.h"
#include "helpers.h"
#include "imaging_t.h"
#include "le.h"
#include "vhdx_priv.h"
#include "../vhdx/vt.h"


static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(check, .init = setup, .fini = teardown, .timeout = 300);

static const char *const ms_fixtures[] = {
	"hyperv2012r2-dynamic.vhd", "iotest-dynamic-1G.vhdx", "test-disk2vhd.vhdx",
	"virtualpc-dynamic.vhd",
};

static int check_status(const char *img, const char *must_say)
{
	struct t_run r;
	int st = t_gpup(&r, "check '%s'", img);

	if (must_say)
		cr_assert(strstr(r.out, must_say), "expected '%s' in: %s", must_say, r.out);
	t_run_free(&r);
	return st;
}

static void cut(const char *img, uint64_t bytes)
{
	struct stat st;

	cr_assert_eq(stat(img, &st), 0);
	cr_assert_eq(truncate(img, st.st_size - (off_t)bytes), 0);
}

Test(check, microsoft_fixtures_are_clean)
{
	for (size_t i = 0; i < sizeof(ms_fixtures) / sizeof(ms_fixtures[0]); i++) {
		char *img = it_ms_fixture(dir, ms_fixtures[i]);
		char h1[65], h2[65];
		struct t_run r;
		struct json_object *o, *v;

		cr_assert_eq(t_sha256_file(img, h1), 0);
		cr_assert_eq(check_status(img, "clean"), 0, "%s", ms_fixtures[i]);
		cr_assert_eq(t_gpup(&r, "check '%s' --json", img), 0, "%s", r.err);
		o = json_tokener_parse(r.out);
		cr_assert(o, "JSON: %s", r.out);
		cr_assert(json_object_object_get_ex(o, "clean", &v) && json_object_get_boolean(v));
		cr_assert(json_object_object_get_ex(o, "findings", &v) &&
			  json_object_array_length(v) == 0, "%s", r.out);
		json_object_put(o);
		t_run_free(&r);
		cr_assert_eq(t_sha256_file(img, h2), 0);
		cr_assert_str_eq(h1, h2, "check never writes");
		free(img);
	}
}

Test(check, hyperv_fixtures)
{
	static const char *const clean[] = { "fixed.vhdx", "dynamic.vhdx", "fixed.vhd", "dynamic.vhd" };

	for (size_t i = 0; i < 4; i++) {
		char *img = t_hyperv_fixture(clean[i], dir);
		cr_assert_eq(check_status(img, "clean"), 0, "%s", clean[i]);
		free(img);
	}
	/* Without its parent the child is checked alone: not a clean bill. */
	char *child = t_hyperv_fixture("differencing.avhdx", dir);
	cr_assert_eq(check_status(child, "parent image not found"), 1);
	free(child);
}

/* A file cut short by one byte or 4 KiB is corruption, with the structure
 * and its file offset in the JSON. */
Test(check, truncated_files_are_corrupt)
{
	static const struct { const char *name; bool ms; uint64_t cuts[2]; } cases[] = {
		{ "dynamic.vhdx", false, { 1, 4096 } },
		{ "fixed.vhdx", false, { 1, 4096 } },
		{ "dynamic.vhd", false, { 1, 4096 } },
		{ "iotest-dynamic-1G.vhdx", true, { 1, 4096 } },
		{ "hyperv2012r2-dynamic.vhd", true, { 1, 4096 } },
		/* Disk2VHD's last 512 bytes are no structure: cutting one byte of
		 * them damages nothing; 4 KiB reach into the last block. */
		{ "test-disk2vhd.vhdx", true, { 4096, 4096 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int k = 0; k < 2; k++) {
			char *img = cases[i].ms ? it_ms_fixture(dir, cases[i].name)
						: t_hyperv_fixture(cases[i].name, dir);
			struct t_run r;
			struct json_object *o, *f, *e, *v;

			cut(img, cases[i].cuts[k]);
			cr_assert_eq(t_gpup(&r, "check '%s' --json", img), 2, "%s -%llu: %s",
				     cases[i].name, (unsigned long long)cases[i].cuts[k], r.out);
			o = json_tokener_parse(r.out);
			cr_assert(o && json_object_object_get_ex(o, "findings", &f) &&
				  json_object_array_length(f) >= 1, "%s", r.out);
			e = json_object_array_get_idx(f, 0);
			cr_assert(json_object_object_get_ex(e, "grade", &v) &&
				  !strcmp(json_object_get_string(v), "corruption"));
			cr_assert(json_object_object_get_ex(e, "offset", &v) &&
				  json_object_get_int64(v) > 0, "%s", r.out);
			cr_assert(json_object_object_get_ex(e, "structure", &v) &&
				  json_object_get_string(v)[0]);
			json_object_put(o);
			t_run_free(&r);
			free(img);
		}
	}
}

/* The file offset of @img's virtual disk size metadata item. */
static uint64_t vds_offset(const char *img)
{
	struct gp_error err = { 0 };
	uint8_t tbl[VHDX_METADATA_TABLE_SIZE];
	struct vhdx *v;
	uint64_t meta, at = 0;
	int fd;

	cr_assert_eq(vhdx_open_self(img, &v, &err), 0, "%s", err.msg);
	meta = v->meta_offset;
	vhdx_close(v, NULL);
	fd = open(img, O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, tbl, sizeof(tbl), (off_t)meta), (ssize_t)sizeof(tbl));
	close(fd);
	for (unsigned i = 0; i < get_le16(tbl + VHDX_MDT_ENTRY_COUNT_OFF); i++) {
		const uint8_t *e = tbl + VHDX_MDT_ENTRIES_OFF + i * VHDX_MDT_ENTRY_SIZE;
		if (vhdx_guid_matches(e + VHDX_MDE_ITEM_ID_OFF, VHDX_GUID_VIRTUAL_DISK_SIZE))
			at = meta + get_le32(e + VHDX_MDE_OFFSET_OFF);
	}
	cr_assert(at);
	return at;
}

static void corrupt_virtual_size(const char *img)
{
	uint64_t at = vds_offset(img);
	uint8_t b[8];
	int fd = open(img, O_RDWR);

	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, b, 8, (off_t)at), 8);
	put_le64(b, get_le64(b) + 1); /* not a whole number of sectors */
	cr_assert_eq(pwrite(fd, b, 8, (off_t)at), 8);
	close(fd);
}

Test(check, corrupt_virtual_size_and_leaked_tail)
{
	char *img = it_ms_fixture(dir, "iotest-dynamic-1G.vhdx");
	char *img2 = t_hyperv_fixture("dynamic.vhdx", dir);
	struct stat st;

	corrupt_virtual_size(img);
	cr_assert_eq(check_status(img, "metadata"), 2);
	/* 8 MiB past the last structure that nothing references: a leak. */
	cr_assert_eq(stat(img2, &st), 0);
	cr_assert_eq(truncate(img2, st.st_size + 8 * (off_t)MiB), 0);
	cr_assert_eq(check_status(img2, "8388608 bytes of file space no structure references"), 3);
	free(img);
	free(img2);
}

/* Issue 18 item 5: `verify` on a prepared guest whose container is cut
 * short by one byte or 4 KiB, or has a corrupt virtual-size item, exits
 * non-zero and never says "all match". */
/* `gpup CMD IMG --driverstore ST --gpu NV_GPU EXTRA`, its exit status. */
static int on_guest(struct t_run *r, const char *cmd, const char *img, const char *st,
		    const char *extra)
{
	return t_gpup(r, "%s '%s' --driverstore '%s' --gpu '" NV_GPU "' %s", cmd, img, st, extra);
}

Test(check, verify_refuses_a_broken_container)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	struct t_run r;

	cr_assert_eq(on_guest(&r, "prepare", img, st, "-q --no-verify"), 0, "%s", r.err);
	t_run_free(&r);
	for (int k = 0; k < 3; k++) {
		char *c = t_strdup_printf("%s/broken%d.vhdx", dir, k);

		t_copy(img, c);
		if (k < 2)
			cut(c, k ? 4096 : 1);
		else
			corrupt_virtual_size(c);
		cr_assert_eq(on_guest(&r, "verify", c, st, ""), 4, "case %d: exit %d: %s %s", k, r.status, r.out, r.err);
		cr_assert(!strstr(r.out, "all match"), "case %d: %s", k, r.out);
		cr_assert(strstr(r.out, "corruption"), "case %d: %s", k, r.out);
		t_run_free(&r);
		free(c);
	}
	cr_assert_eq(on_guest(&r, "verify", img, st, ""), 0, "the intact image verifies: %s %s",
		     r.out, r.err);
	cr_assert(strstr(r.out, "all match"), "%s", r.out);
	t_run_free(&r);
	free(img);
	free(st);
}

/* Issue 18 item 4: prepare on a guest with one damaged region-table copy
 * repairs it on its read-write open, so that its libvhdi read-back (which
 * refuses an image with either copy damaged) succeeds; check is clean
 * afterwards. */
Test(check, prepare_repairs_a_damaged_region_table)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	struct t_run r;
	int fd = open(img, O_RDWR);

	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, "XXXX", 4, VHDX_REGION2_OFFSET + 40), 4);
	close(fd);
	cr_assert_eq(check_status(img, "region table 2"), 2);
	cr_assert_eq(on_guest(&r, "prepare", img, st, "-q"), 0, "%s %s", r.out, r.err);
	t_run_free(&r);
	cr_assert_eq(check_status(img, "clean"), 0);
	cr_assert_eq(on_guest(&r, "verify", img, st, ""), 0, "%s %s", r.out, r.err);
	t_run_free(&r);
	free(img);
	free(st);
}

/* Issue 18 item 8: a 4 KiB write into test-disk2vhd.vhdx (its size is not
 * a multiple of 1 MiB: 512 bytes no structure references) keeps the file's
 * tail; qemu-img agrees on the data and finds nothing wrong. */
Test(check, disk2vhd_write_keeps_the_tail)
{
	char *img = it_ms_fixture(dir, "test-disk2vhd.vhdx");
	char *in = t_strdup_printf("%s/in", dir), *raw = t_strdup_printf("%s/raw", dir);
	uint8_t w[4096], tail[512], tail2[512];
	uint64_t seed = 4;
	struct stat st, st2;
	struct t_run r;
	size_t n;
	char *q;
	int fd;

	cr_assert_eq(stat(img, &st), 0);
	cr_assert_neq(st.st_size % (off_t)MiB, 0);
	fd = open(img, O_RDONLY);
	cr_assert_eq(pread(fd, tail, 512, st.st_size - 512), 512);
	close(fd);
	t_fill_random(w, sizeof(w), &seed);
	cr_assert_eq(t_write_file(in, w, sizeof(w)), 0);
	t_gpup(&r, "disk write '%s' --offset 1049088 -i '%s'", img, in);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(stat(img, &st2), 0);
	cr_assert_eq(st2.st_size, st.st_size, "the file keeps its size");
	fd = open(img, O_RDONLY);
	cr_assert_eq(pread(fd, tail2, 512, st.st_size - 512), 512);
	close(fd);
	cr_assert(memcmp(tail, tail2, 512) == 0);
	cr_assert_eq(t_run(&r, "qemu-img check -f vhdx '%s'", img), 0, "%s%s", r.out, r.err);
	t_run_free(&r);
	cr_assert_eq(t_run(&r, "qemu-img convert -f vhdx -O raw '%s' '%s'", img, raw), 0, "%s", r.err);
	t_run_free(&r);
	q = t_read_file(raw, &n);
	cr_assert(q && n > 0x100200 + sizeof(w));
	cr_assert(memcmp(q + 0x100200, w, sizeof(w)) == 0, "qemu reads the write");
	cr_assert_eq(check_status(img, "clean"), 0);
	free(q); free(in); free(raw); free(img);
}

/* Issue 18 item 7: `disk read -o FILE` writes zeros as holes: the first
 * 16 GiB of the empty 127 GiB Hyper-V VHD take (almost) no space; a VHDX's
 * content comes out byte for byte as qemu-img reads it, with holes; offsets
 * take 0x hex. */
Test(check, disk_read_writes_holes)
{
	char *vhd = it_ms_fixture(dir, "hyperv2012r2-dynamic.vhd");
	char *vhdx = t_hyperv_fixture("dynamic.vhdx", dir);
	char *out = t_strdup_printf("%s/out", dir), *raw = t_strdup_printf("%s/raw", dir);
	char h1[65], h2[65];
	struct stat st;
	struct t_run r;

	t_gpup(&r, "disk read '%s' --length 16G -o '%s'", vhd, out);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(stat(out, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, 16ull << 30);
	cr_assert_lt((uint64_t)st.st_blocks * 512, MiB, "%lld bytes allocated",
		     (long long)st.st_blocks * 512);
	unlink(out);

	t_gpup(&r, "disk read '%s' -o '%s'", vhdx, out);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_run(&r, "qemu-img convert -f vhdx -O raw '%s' '%s'", vhdx, raw), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(out, h1), 0);
	cr_assert_eq(t_sha256_file(raw, h2), 0);
	cr_assert_str_eq(h1, h2, "same bytes as qemu-img");
	cr_assert_eq(stat(out, &st), 0);
	cr_assert_lt((uint64_t)st.st_blocks * 512, (uint64_t)st.st_size, "holes in the output");
	unlink(out);

	/* 0x hex: sector 1 (the MBR fixture's second sector), 0x200 bytes. */
	t_gpup(&r, "disk read '%s' --offset 0x10000 --length 0x200 -o '%s'", vhdx, out);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(stat(out, &st), 0);
	cr_assert_eq(st.st_size, 0x200);
	{
		size_t n;
		char *a = t_read_file(out, &n), *b = t_read_file(raw, NULL);
		cr_assert(memcmp(a, b + 0x10000, 0x200) == 0);
		free(a); free(b);
	}
	free(vhd); free(vhdx); free(out); free(raw);
}

/* A child whose chunks lack sector bitmap blocks (as Hyper-V makes them):
 * libvhdi misreads it, so verify says plainly that its independent check is
 * not available, and never "all match". */
Test(check, verify_says_when_libvhdi_cannot_vouch)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *child = t_strdup_printf("%s/c.avhdx", dir);
	char *st = t_fixture("mkstore.sh", "");
	struct t_run r;

	cr_assert_eq(on_guest(&r, "prepare", img, st, "-q --no-verify"), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "create '%s' --parent '%s'", child, img), 0, "%s", r.err);
	t_run_free(&r);
	vt_strip_bitmaps(child);
	cr_assert_eq(on_guest(&r, "verify", child, st, ""), 1, "%s %s", r.out, r.err);
	cr_assert(strstr(r.err, "not available") && strstr(r.err, "not verified"), "%s", r.err);
	cr_assert(!strstr(r.out, "all match"), "%s", r.out);
	t_run_free(&r);
	free(img); free(child); free(st);
}

/* Issue 18 item 1: a child made by `prepare --into-child` reads through
 * libvhdi as through gpup's engine over the whole virtual disk (sampled per
 * block), and verify (libvhdi) passes on it. */
Test(check, into_child_reads_the_same_through_libvhdi)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *child = t_strdup_printf("%s/c.avhdx", dir);
	char *st = t_fixture("mkstore.sh", "");
	char *extra = t_strdup_printf("-q --into-child '%s'", child);
	struct t_run r;

	cr_assert_eq(on_guest(&r, "prepare", img, st, extra), 0, "%s %s", r.out, r.err);
	t_run_free(&r);
	vt_libvhdi_equals_engine(child);
	cr_assert_eq(on_guest(&r, "verify", child, st, ""), 0, "%s %s", r.out, r.err);
	cr_assert(strstr(r.out, "all match"), "%s", r.out);
	t_run_free(&r);
	cr_assert_eq(check_status(child, "clean"), 0);
	free(img); free(child); free(st); free(extra);
}

/* An NTFS volume whose $Bitmap marks clusters of a live file free
 * (tests/fixtures/mkbitmaplie.sh): corruption, named with the file and its
 * offset on the virtual disk. */
Test(check, ntfs_bitmap_lie_is_corruption)
{
	char *fx = t_fixture("mkbitmaplie.sh", "");
	char *src = t_strdup_printf("%s/guest.vhdx", fx), *img = t_strdup_printf("%s/lie.vhdx", dir);
	struct t_run r;

	t_copy(src, img);
	cr_assert_eq(t_gpup(&r, "check '%s'", img), 2, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "NTFS $Bitmap at disk offset") &&
		  strstr(r.out, "\\Windows\\System32\\config\\SYSTEM"), "%s", r.out);
	t_run_free(&r);
	free(fx); free(src); free(img);
}
