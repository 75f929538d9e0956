/* test_ntfs_api.c — the ntfsvol.h and guest.h library calls: streamed put
 * with SHA-256, source length checks, read-only volumes, name rules, guest
 * facts from the hives (SYSTEM's current control set included), the kernel
 * and the HostDriverStore. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "guest.h"
#include "helpers.h"
#include "ntfs_test.h"
#include "ntfsvol.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(ntfs_api, .init = setup, .fini = teardown, .timeout = 120);

struct mem_src {
	const uint8_t *p;
	size_t len, pos, step;
};

static int mem_read(void *buf, size_t len, size_t *got, void *ctx)
{
	struct mem_src *m = ctx;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->step && n > m->step)
		n = m->step; /* short reads, like a decompressor */
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	*got = n;
	return 0;
}

struct mem_sink {
	uint8_t *p;
	size_t len;
};

static int mem_write(const void *buf, size_t len, void *ctx)
{
	struct mem_sink *s = ctx;

	s->p = realloc(s->p, s->len + len);
	memcpy(s->p + s->len, buf, len);
	s->len += len;
	return 0;
}

static void open_rw(const char *img, bool writable, struct gp_disk **d, struct gp_ntfs **v)
{
	struct gp_disk_open_opts dopts = { .writable = writable };
	struct gp_ntfs_open_opts vopts = { .writable = writable };
	struct gp_error err = { 0 };

	cr_assert_eq(gp_disk_open(img, &dopts, d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_open(*d, &vopts, v, &err), 0, "%s", err.msg);
}

static void close_both(struct gp_disk *d, struct gp_ntfs *v)
{
	struct gp_error err = { 0 };

	cr_assert_eq(gp_ntfs_close(v, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
}

Test(ntfs_api, put_stream_hashes_and_reads_back)
{
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	size_t len = 5u << 20;
	uint8_t *data = malloc(len), sha[32], want[32];
	uint64_t seed = 3;
	struct mem_src src = { .len = len, .step = 12345 };
	struct mem_sink out = { 0 };
	struct gp_ntfs_stat st;
	struct gp_disk *d;
	struct gp_ntfs *v;
	char hex_a[65], hex_b[65];

	t_fill_random(data, len, &seed);
	src.p = data;
	open_rw(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_stream(v, "C:\\Windows\\System32\\New\\Deep\\blob.bin", len, 1700000000,
					mem_read, &src, sha), 0, "%s", gp_ntfs_error(v)->msg);
	t_sha256_buf(data, len, hex_a);
	for (int i = 0; i < 32; i++)
		sprintf(hex_b + 2 * i, "%02x", sha[i]);
	cr_assert_str_eq(hex_a, hex_b, "SHA-256 computed while writing");
	cr_assert_eq(gp_ntfs_stat(v, "/windows/system32/new/deep/BLOB.BIN", &st), 0);
	cr_assert_eq(st.size, len);
	cr_assert_eq(st.mtime, 1700000000);
	cr_assert(!st.is_dir);
	cr_assert_eq(gp_ntfs_cat(v, "Windows/System32/New/Deep/blob.bin", mem_write, &out), 0);
	cr_assert_eq(out.len, len);
	cr_assert_eq(memcmp(out.p, data, len), 0);
	(void)want;
	close_both(d, v);
	free(out.p);
	free(data);
	free(img);
}

Test(ntfs_api, put_stream_checks_the_source_length)
{
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	uint8_t data[100] = { 1, 2, 3 };
	struct mem_src shortsrc = { .p = data, .len = 50 };
	struct mem_src longsrc = { .p = data, .len = 100 };
	struct gp_disk *d;
	struct gp_ntfs *v;
	struct gp_ntfs_stat st;

	open_rw(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_stream(v, "/a.bin", 80, 0, mem_read, &shortsrc, NULL), GP_ERR_CORRUPT);
	cr_assert(strstr(gp_ntfs_error(v)->msg, "ended after 50 of 80 bytes"), "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_stat(v, "/a.bin", &st), GP_ERR_NOTFOUND, "no half-written file is left");
	cr_assert_eq(gp_ntfs_put_stream(v, "/b.bin", 80, 0, mem_read, &longsrc, NULL), GP_ERR_CORRUPT);
	cr_assert(strstr(gp_ntfs_error(v)->msg, "longer than the declared 80 bytes"), "%s",
		  gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_stat(v, "/nothere", &st), GP_ERR_NOTFOUND);
	cr_assert(strstr(gp_ntfs_error(v)->msg, "no such file"), "%s", gp_ntfs_error(v)->msg);
	gp_ntfs_close(v, NULL);
	gp_disk_close(d, NULL);
	free(img);
}

Test(ntfs_api, read_only_volume_never_writes)
{
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	char before[65], after[65];
	uint8_t data[10] = { 0 };
	struct mem_src src = { .p = data, .len = 10 };
	struct gp_disk *d;
	struct gp_ntfs *v;
	struct gp_ntfs_volinfo vi;

	cr_assert_eq(t_sha256_file(img, before), 0);
	open_rw(img, false, &d, &v);
	gp_ntfs_volinfo(v, &vi);
	cr_assert_eq(vi.partition, 3);
	cr_assert(vi.has_windows);
	cr_assert_eq(vi.cluster_size, 4096);
	cr_assert_str_eq(vi.label, "Windows");
	cr_assert_eq(gp_ntfs_mkdir_p(v, "/x/y"), GP_ERR_READONLY);
	cr_assert_eq(gp_ntfs_put_stream(v, "/z", 10, 0, mem_read, &src, NULL), GP_ERR_READONLY);
	cr_assert_eq(gp_ntfs_remove(v, "/Windows/INF", true), GP_ERR_READONLY);
	close_both(d, v);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after);
	free(img);
}

Test(ntfs_api, mkdir_p_creates_only_what_is_missing)
{
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	struct gp_ntfs_stat a, b;
	struct gp_disk *d;
	struct gp_ntfs *v;

	open_rw(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_stat(v, "/Windows/System32", &a), 0);
	cr_assert_eq(gp_ntfs_mkdir_p(v, "windows\\SYSTEM32\\HostDriverStore\\FileRepository"), 0,
		     "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_stat(v, "C:\\WINDOWS\\system32", &b), 0);
	cr_assert_eq(a.mref, b.mref, "existing directory kept");
	cr_assert_eq(gp_ntfs_mkdir_p(v, "/Windows/System32/ntoskrnl.exe/sub"), GP_ERR_EXISTS);
	cr_assert_eq(gp_ntfs_mkdir_p(v, "/Windows/bad|name"), GP_ERR_INVALID);
	close_both(d, v);
	free(img);
}

/* A directory whose index is a B+tree of many blocks: a name in another
 * letter case is found wherever it sorts (first, last, at block edges), so
 * writing it replaces the file instead of adding a twin; names sorting
 * before, after and between the others are absent. Read back by ntfsls. */
Test(ntfs_api, lookup_in_a_large_directory_ignores_case)
{
	enum { N = 3000 };
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 512M", &off, &len), *part;
	struct gp_ntfs_stat st;
	struct gp_disk *d;
	struct gp_ntfs *v;
	struct t_run r;

	open_rw(img, true, &d, &v);
	for (int i = 0; i < N; i++) {
		char path[64];
		struct mem_src m = { .p = (const uint8_t *)"x", .len = 1 };

		snprintf(path, sizeof(path), "/Windows/Big/f%04d.dat", i);
		cr_assert_eq(gp_ntfs_put_stream(v, path, 1, 0, mem_read, &m, NULL), 0, "%s",
			     gp_ntfs_error(v)->msg);
	}
	for (int i = 0; i < N; i++) {
		char path[64];
		struct mem_src m = { .p = (const uint8_t *)"yy", .len = 2 };

		if (i % 7 && i != N - 1)
			continue;
		snprintf(path, sizeof(path), "/WINDOWS/big/F%04d.DAT", i);
		cr_assert_eq(gp_ntfs_put_stream(v, path, 2, 0, mem_read, &m, NULL), 0, "%s",
			     gp_ntfs_error(v)->msg);
	}
	cr_assert_eq(gp_ntfs_stat(v, "/Windows/Big/F2999.Dat", &st), 0);
	cr_assert_eq(st.size, 2);
	cr_assert_eq(gp_ntfs_stat(v, "/Windows/Big/f2998.DAT", &st), 0);
	cr_assert_eq(st.size, 1);
	cr_assert_eq(gp_ntfs_stat(v, "/Windows/Big/F3000.DAT", &st), GP_ERR_NOTFOUND);
	cr_assert_eq(gp_ntfs_stat(v, "/Windows/Big/E.DAT", &st), GP_ERR_NOTFOUND);
	cr_assert_eq(gp_ntfs_stat(v, "/Windows/Big/F1000.DA", &st), GP_ERR_NOTFOUND);
	cr_assert_eq(gp_ntfs_stat(v, "/Windows/Big/F1000.DATA", &st), GP_ERR_NOTFOUND);
	close_both(d, v);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfsls -p /Windows/Big %s | grep -vc '^\\.\\.\\?$'", part);
	cr_assert_eq(atoi(r.out), N, "%s", r.out);
	t_run_free(&r);
	t_run(&r, "ntfsls -p /Windows/Big %s | grep -c '^f[0-9]*\\.dat$'", part);
	cr_assert_eq(atoi(r.out), N, "every name keeps its first spelling: %s", r.out);
	t_run_free(&r);
	t_run(&r, "ntfscat %s /Windows/Big/f2996.dat", part);
	cr_assert_str_eq(r.out, "yy");
	t_run_free(&r);
	free(part);
	free(img);
}

/* A file name Windows cannot open is refused before its parent folders
 * are made: a refused put leaves nothing behind (put_file and put_stream
 * alike). */
Test(ntfs_api, bad_file_name_makes_no_folders)
{
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	char *host = t_strdup_printf("%s/host.bin", dir);
	struct mem_src m = { .p = (const uint8_t *)"abc", .len = 3, .step = 3 };
	struct gp_ntfs_stat st;
	struct gp_disk *d;
	struct gp_ntfs *v;

	cr_assert_eq(t_write_file(host, "abc", 3), 0);
	open_rw(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_file(v, host, "/New1/Sub/bad:name"), GP_ERR_INVALID);
	cr_assert(strstr(gp_ntfs_error(v)->msg, "/New1/Sub/bad:name"), "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_stat(v, "/New1", &st), GP_ERR_NOTFOUND, "a folder was left behind");
	cr_assert_eq(gp_ntfs_put_stream(v, "/New2/Sub/CON", 3, 0, mem_read, &m, NULL), GP_ERR_INVALID);
	cr_assert_eq(gp_ntfs_stat(v, "/New2", &st), GP_ERR_NOTFOUND, "a folder was left behind");
	gp_ntfs_clear_error(v);
	cr_assert_eq(gp_ntfs_put_file(v, host, "/New3/ok.bin"), 0, "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_stat(v, "/New3/ok.bin", &st), 0);
	cr_assert_eq(st.size, 3);
	close_both(d, v);
	free(host);
	free(img);
}

Test(ntfs_api, windows_name_rules)
{
	static const char *const good[] = { "a", "nv_dispi.inf_amd64_1234", "CONSOLE", "con1", "ü ñ 中",
					    ".hidden", "a.b.c", "LPT0" };
	static const char *const bad[] = { "", ".", "..", "CON", "con.txt", "Nul", "COM1", "lpt9.log",
					   "a<b", "a>b", "a:b", "a\"b", "a/b", "a\\b", "a|b", "a?b",
					   "a*b", "tab\tname", "end.", "end ", "\xff\xfe" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct gp_error err = { 0 };

		cr_assert_eq(gp_ntfs_check_name(good[i], &err), 0, "'%s': %s", good[i], err.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gp_error err = { 0 };

		cr_assert_eq(gp_ntfs_check_name(bad[i], &err), GP_ERR_INVALID, "'%s' accepted", bad[i]);
		cr_assert(err.msg[0]);
	}
}

Test(ntfs_api, inf_driver_ver)
{
	static const char ascii[] = "[Version]\r\nSignature=\"$Windows NT$\"\r\n  driverver = 06/21/2021, 30.0.14.7141 ; comment\r\n";
	uint8_t utf16[256];
	size_t n = 0;
	char out[64];

	cr_assert(gp_guest_inf_driver_ver(ascii, sizeof(ascii) - 1, out, sizeof(out)));
	cr_assert_str_eq(out, "06/21/2021,30.0.14.7141");
	utf16[n++] = 0xff;
	utf16[n++] = 0xfe;
	for (const char *p = "DriverVer=01/02/2020,1.2.3.4\r\n"; *p; p++) {
		utf16[n++] = (uint8_t)*p;
		utf16[n++] = 0;
	}
	cr_assert(gp_guest_inf_driver_ver(utf16, n, out, sizeof(out)));
	cr_assert_str_eq(out, "01/02/2020,1.2.3.4");
	cr_assert(!gp_guest_inf_driver_ver("[Version]\n", 10, out, sizeof(out)));
}

static void read_facts(const char *img, struct gp_guest_facts *f)
{
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct gp_ntfs *v;

	open_rw(img, false, &d, &v);
	cr_assert_eq(gp_guest_read(v, f, &err), 0, "%s", err.msg);
	close_both(d, v);
}

Test(ntfs_api, guest_facts_client)
{
	char *img = nt_guest(dir, "g.img", "--size 512M", NULL, NULL);
	char *pkg = t_strdup_printf("%s/nv_dispi.inf_amd64_abc", dir), *inf;
	struct gp_guest_facts f;
	struct t_run r;

	read_facts(img, &f);
	cr_assert_str_eq(f.product_name, "Windows 11 Pro");
	cr_assert_str_eq(f.edition, "Professional");
	cr_assert_str_eq(f.installation_type, "Client");
	cr_assert_str_eq(f.build, "22631");
	cr_assert_eq(f.ubr, 3155);
	cr_assert(!f.is_server);
	cr_assert_str_eq(f.arch, "amd64");
	cr_assert_eq(f.kernel_machine, 0x8664);
	cr_assert(!f.hibernated && !f.fast_startup && !f.dirty && !f.log_unclean);
	cr_assert(f.free_bytes > 100u << 20 && f.free_bytes < f.total_bytes);
	cr_assert_eq(f.pkg_count, 0);
	/* SYSTEM: ControlSet001, no DriverStoreCopyMode, no nvlddmkm key. */
	cr_assert(f.system_read);
	cr_assert_eq(f.control_set, 1);
	cr_assert(!f.copy_mode_set && !f.nvlddmkm_service);
	gp_guest_facts_free(&f);

	/* A host driver package appears with its INF and DriverVer. */
	t_run(&r, "mkdir -p %s", pkg);
	t_run_free(&r);
	inf = t_strdup_printf("%s/nv_dispi.inf", pkg);
	cr_assert_eq(t_write_file(inf, "[Version]\nDriverVer=06/21/2021,30.0.14.7141\n", 43), 0);
	t_gpup(&r, "put %s %s 'C:\\Windows\\System32\\HostDriverStore\\FileRepository'", img, pkg);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	read_facts(img, &f);
	cr_assert_eq(f.pkg_count, 1);
	cr_assert_str_eq(f.pkgs[0].folder, "nv_dispi.inf_amd64_abc");
	cr_assert_str_eq(f.pkgs[0].inf, "nv_dispi.inf");
	cr_assert_str_eq(f.pkgs[0].driver_ver, "06/21/2021,30.0.14.7141");
	gp_guest_facts_free(&f);
	free(inf);
	free(pkg);
	free(img);
}

Test(ntfs_api, guest_facts_server_arm64_mbr)
{
	char *img = nt_guest(dir, "g.img", "--size 256M --layout mbr --server --arch arm64 --build 20348 --ubr 2340",
			     NULL, NULL);
	struct gp_guest_facts f;

	read_facts(img, &f);
	cr_assert_str_eq(f.product_name, "Windows Server 2022 Datacenter");
	cr_assert_str_eq(f.edition, "ServerDatacenter");
	cr_assert(f.is_server);
	cr_assert_str_eq(f.build, "20348");
	cr_assert_eq(f.ubr, 2340);
	cr_assert_str_eq(f.arch, "arm64");
	cr_assert_eq(f.kernel_machine, 0xaa64);
	gp_guest_facts_free(&f);
	free(img);
}

/* The SYSTEM facts come from the control set Select\Current names
 * (guest-system-doctor.hivexsh: 2; ControlSet001 says otherwise), and a
 * guest without a SYSTEM hive reads as such, not as an error. */
Test(ntfs_api, guest_facts_system_hive)
{
	char *img = t_guest_copy(dir, "--size 512M --vhdx --doctor", "g.vhdx");
	char *bare = t_guest_copy(dir, "--size 512M --vhdx --no-system", "bare.vhdx");
	struct gp_guest_facts f;

	read_facts(img, &f);
	cr_assert(f.system_read);
	cr_assert_eq(f.control_set, 2);
	cr_assert(f.copy_mode_set);
	cr_assert_eq(f.copy_mode, 2);
	cr_assert(!f.nvlddmkm_service);
	cr_assert_str_eq(f.arch, "amd64");
	cr_assert_eq(f.pkg_count, 2);
	gp_guest_facts_free(&f);
	read_facts(bare, &f);
	cr_assert(!f.system_read);
	cr_assert(!f.copy_mode_set && !f.nvlddmkm_service);
	cr_assert_str_eq(f.arch, "amd64"); /* from the kernel's PE header */
	cr_assert_str_eq(f.build, "22631");
	gp_guest_facts_free(&f);
	free(bare);
	free(img);
}

Test(ntfs_api, volume_choice)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	struct gp_disk_open_opts o = { .backend = GP_DISK_BACKEND_LIBVHDI };
	struct gp_ntfs_open_opts win = { .require_windows = true };
	struct gp_ntfs_open_opts p2 = { .partition = 2 };
	struct gp_ntfs_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_ntfs_volinfo vi;
	struct gp_disk *d;
	struct gp_ntfs *v;

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	/* prepare's rule: only a volume holding the kernel will do. */
	cr_assert_eq(gp_ntfs_open(d, &win, &v, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "no Windows installation found (NTFS volumes: 1;"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_ntfs_open(d, &p2, &v, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "has no partition 2"), "%s", err.msg);
	gp_error_clear(&err);
	/* A read-only disk cannot give a writable volume. */
	cr_assert_eq(gp_ntfs_open(d, &rw, &v, &err), GP_ERR_READONLY);
	gp_error_clear(&err);
	/* The file commands' rule: the sole NTFS volume. */
	cr_assert_eq(gp_ntfs_open(d, NULL, &v, &err), 0, "%s", err.msg);
	gp_ntfs_volinfo(v, &vi);
	cr_assert_eq(vi.partition, 1);
	cr_assert_eq(vi.offset, 128 * 512);
	cr_assert(!vi.has_windows);
	gp_ntfs_close(v, NULL);
	gp_disk_close(d, NULL);
	free(img);
}
