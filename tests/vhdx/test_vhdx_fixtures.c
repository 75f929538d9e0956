/* test_vhdx_fixtures.c — the Hyper-V-written fixtures through gpup's VHDX
 * engine, checked against libvhdi and qemu-img (acceptance test 1). */
#include "vt.h"

#define MiB (1024u * 1024u)
#define FIXTURE_SIZE (10u * MiB)

static char *dir;
static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }
TestSuite(vhdx_fixtures, .init = setup, .fini = teardown, .timeout = 120);

static void engine_matches_oracles(const char *name)
{
	char *img = t_hyperv_fixture(name, dir);
	char *q = t_strdup_printf("%s/q.raw", dir);
	uint8_t *a = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, FIXTURE_SIZE);
	uint8_t *b = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, 0, FIXTURE_SIZE);
	size_t qlen;
	uint8_t *c = vt_qemu_raw(img, q, &qlen);

	cr_assert_eq(qlen, FIXTURE_SIZE);
	cr_assert(memcmp(a, b, FIXTURE_SIZE) == 0, "%s: engine and libvhdi differ", name);
	cr_assert(memcmp(a, c, FIXTURE_SIZE) == 0, "%s: engine and qemu-img differ", name);
	/* The MBR signature and the NTFS boot sector at sector 128: real data. */
	cr_assert_eq(a[510], 0x55);
	cr_assert_eq(a[511], 0xAA);
	cr_assert(memcmp(a + 128 * 512 + 3, "NTFS    ", 8) == 0);
	free(a); free(b); free(c); free(img); free(q);
}

Test(vhdx_fixtures, fixed_reads_like_libvhdi_and_qemu) { engine_matches_oracles("fixed.vhdx"); }
Test(vhdx_fixtures, dynamic_reads_like_libvhdi_and_qemu) { engine_matches_oracles("dynamic.vhdx"); }

Test(vhdx_fixtures, info_describes_the_fixtures)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	struct gp_disk_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx_info info;
	struct gp_disk *d;

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_str_eq(gp_disk_backend_name(d), "vhdx");
	cr_assert_eq(gp_disk_allocation_unit(d), 32 * MiB);
	cr_assert_eq(vhdx_get_info(gp_disk_vhdx(d), &info), 0);
	cr_assert_eq(info.type, VHDX_DISK_DYNAMIC);
	cr_assert_eq(info.virtual_size, FIXTURE_SIZE);
	cr_assert_eq(info.block_size, 32 * MiB);
	cr_assert_eq(info.chunk_ratio, 128);
	cr_assert_eq(info.logical_sector_size, 512);
	cr_assert_eq(info.log_state, VHDX_LOG_EMPTY);
	cr_assert_eq(info.version, 1);
	cr_assert_eq(strlen(info.disk_id), 36);
	vhdx_info_free(&info);
	gp_disk_close(d, NULL);
	free(img);

	img = t_hyperv_fixture("fixed.vhdx", dir);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_allocation_unit(d), 0, "a fixed disk does not grow");
	cr_assert_eq(vhdx_get_info(gp_disk_vhdx(d), &info), 0);
	cr_assert_eq(info.type, VHDX_DISK_FIXED);
	cr_assert_eq(info.block_size, 2 * MiB);
	vhdx_info_free(&info);
	gp_disk_close(d, NULL);
	free(img);
}

Test(vhdx_fixtures, block_status_follows_the_bat)
{
	char *img = t_strdup_printf("%s/bs.vhdx", dir);
	struct gp_disk_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	bool alloc;
	uint64_t run;

	vt_create(img, 64ull * MiB, 4 * MiB, 512);
	vt_write(img, "x", 1, 9 * MiB); /* block 2 */
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_allocation_unit(d), 4 * MiB);
	cr_assert_eq(gp_disk_block_status(d, 0, 64 * MiB, &alloc, &run), 0);
	cr_assert(!alloc);
	cr_assert_eq(run, 8 * MiB);
	cr_assert_eq(gp_disk_block_status(d, 8 * MiB + 5, 64 * MiB - 8 * MiB - 5, &alloc, &run), 0);
	cr_assert(alloc);
	cr_assert_eq(run, 4 * MiB - 5);
	gp_disk_close(d, NULL);
	free(img);
}

Test(vhdx_fixtures, differencing_without_parent_is_a_clear_error)
{
	char *img = t_hyperv_fixture("differencing.avhdx", dir);
	struct gp_disk_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	char before[65], after[65];

	cr_assert_eq(t_sha256_file(img, before), 0);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "differencing.avhdx"), "%s", err.msg);
	cr_assert(strstr(err.msg, "parent"), "%s", err.msg);
	cr_assert(strstr(err.msg, "Generation 1_49C4BAF3"), "names the parent it looked for: %s", err.msg);
	cr_assert_eq(t_gpup(&r, "disk read '%s' --length 512 -o /dev/null", img), 1);
	cr_assert(strstr(r.err, "parent"), "%s", r.err);
	cr_assert(!strchr(r.err, '\n') || strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
		  "one line: %s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after);
	free(img);
}

Test(vhdx_fixtures, differencing_with_wrong_parent_is_refused)
{
	char *img = t_hyperv_fixture("differencing.avhdx", dir);
	char *par = t_hyperv_fixture("dynamic.vhdx", dir);
	struct gp_disk_open_opts o = { .parent_path = par };
	struct gp_error err = { 0 };
	struct gp_disk *d;

	/* dynamic.vhdx is not the parent Hyper-V recorded: linkage mismatch. */
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), GP_ERR_MISMATCH, "%s", err.msg);
	cr_assert(strstr(err.msg, "parent_linkage"), "%s", err.msg);
	free(img);
	free(par);
}

/* Write patterns into a copy of @name; libvhdi, qemu-img and the engine
 * read back exactly the expected bytes; qemu-img check is clean. */
static void write_and_verify(const char *name)
{
	char *img = t_hyperv_fixture(name, dir);
	char *q = t_strdup_printf("%s/q.raw", dir);
	uint8_t *expect = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, FIXTURE_SIZE);
	uint64_t seed = 42;
	static const struct { uint64_t off, len; } w[] = {
		{ 0, 1 }, { 1, 511 }, { 4095, 2 }, { 2 * MiB - 100, 300 },     /* block edge */
		{ 3 * MiB + 7, 1500000 }, { 9 * MiB + 3, MiB - 3 }, { 5 * MiB, 1 },
		{ 128 * 512 + 11, 1000 },
	};
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	uint8_t *buf = malloc(2 * MiB), *back, *qb;
	size_t qlen;

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		t_fill_random(buf, w[i].len, &seed);
		memcpy(expect + w[i].off, buf, w[i].len);
		cr_assert_eq(gp_disk_pwrite(d, buf, w[i].len, w[i].off), 0, "%s", gp_disk_error(d)->msg);
		if (i == 3)
			cr_assert_eq(gp_disk_flush(d), 0);
	}
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);

	cr_assert(!vt_dirty(img), "a clean close leaves an empty log");
	back = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, FIXTURE_SIZE);
	cr_assert(memcmp(back, expect, FIXTURE_SIZE) == 0, "engine read-back");
	free(back);
	back = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, 0, FIXTURE_SIZE);
	cr_assert(memcmp(back, expect, FIXTURE_SIZE) == 0, "libvhdi read-back");
	free(back);
	qb = vt_qemu_raw(img, q, &qlen);
	cr_assert_eq(qlen, FIXTURE_SIZE);
	cr_assert(memcmp(qb, expect, FIXTURE_SIZE) == 0, "qemu-img read-back");
	free(qb);
	cr_assert_eq(vt_qemu_check(img), 0, "qemu-img check");
	free(buf); free(expect); free(img); free(q);
}

Test(vhdx_fixtures, writes_to_dynamic_read_back_everywhere) { write_and_verify("dynamic.vhdx"); }
Test(vhdx_fixtures, writes_to_fixed_read_back_everywhere) { write_and_verify("fixed.vhdx"); }

Test(vhdx_fixtures, cli_read_write_roundtrip)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	char *in = t_strdup_printf("%s/in.bin", dir);
	char *out = t_strdup_printf("%s/out.bin", dir);
	char *all = t_strdup_printf("%s/all.bin", dir);
	uint8_t pat[5000];
	uint64_t seed = 7;
	struct t_run r;
	size_t len;
	char *got;

	t_fill_random(pat, sizeof(pat), &seed);
	cr_assert_eq(t_write_file(in, pat, sizeof(pat)), 0);
	cr_assert_eq(t_gpup(&r, "disk write '%s' --offset 1M -i '%s'", img, in), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "disk read '%s' --offset 1048576 --length 5000 -o '%s'", img, out), 0,
		     "%s", r.err);
	t_run_free(&r);
	got = t_read_file(out, &len);
	cr_assert_eq(len, sizeof(pat));
	cr_assert(memcmp(got, pat, sizeof(pat)) == 0);
	free(got);
	/* stdout default, whole disk */
	cr_assert_eq(t_gpup(&r, "disk read '%s' > '%s'", img, all), 0, "%s", r.err);
	t_run_free(&r);
	got = t_read_file(all, &len);
	cr_assert_eq(len, FIXTURE_SIZE);
	cr_assert(memcmp(got + MiB, pat, sizeof(pat)) == 0);
	free(got);
	/* usage errors */
	cr_assert_eq(t_gpup(&r, "disk write '%s' -i '%s'", img, in), 2);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "disk frob '%s'", img), 2);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "disk read '%s' --offset 20M", img), 2);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "disk --help"), 0);
	t_run_free(&r);
	free(img); free(in); free(out); free(all);
}

Test(vhdx_fixtures, cli_create_refuses_to_overwrite)
{
	char *img = t_strdup_printf("%s/new.vhdx", dir);
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "create '%s' --size 3G --block-size 8M --sector-size 4096 --physical-sector-size 4096", img), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "create '%s' --size 1G", img), 1);
	cr_assert(strstr(r.err, "new.vhdx"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "create '%s.2' --size 1G --block-size 3M", img), 2, "invalid geometry is a usage error");
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "create '%s.3'", img), 2);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "create '%s.4' --size 1G --sector-size 1000", img), 2);
	t_run_free(&r);
	cr_assert_eq(t_run(&r, "vhdiinfo '%s'", img), 0);
	cr_assert(strstr(r.out, "4096 bytes"), "%s", r.out);
	cr_assert(strstr(r.out, "3.0 GiB"), "%s", r.out);
	t_run_free(&r);
	free(img);
}

Test(vhdx_fixtures, writer_exclusive_readers_shared)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	struct gp_disk_open_opts rw = { .writable = true }, ro = { 0 };
	struct gp_error err = { 0 };
	struct gp_disk *a, *b, *c;
	struct t_run r;

	cr_assert_eq(gp_disk_open(img, &ro, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_open(img, &ro, &b, &err), 0, "two readers: %s", err.msg);
	cr_assert_eq(gp_disk_open(img, &rw, &c, &err), GP_ERR_LOCKED, "a writer waits for readers");
	cr_assert(strstr(err.msg, "dynamic.vhdx"), "%s", err.msg);
	gp_disk_close(a, NULL);
	gp_disk_close(b, NULL);
	gp_error_clear(&err);
	cr_assert_eq(gp_disk_open(img, &rw, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_open(img, &ro, &b, &err), GP_ERR_LOCKED, "a reader waits for the writer");
	cr_assert_eq(t_gpup(&r, "disk read '%s' --length 1 -o /dev/null", img), 3, "locked: exit 3");
	cr_assert(strstr(r.err, "in use"), "%s", r.err);
	t_run_free(&r);
	gp_disk_close(a, NULL);
	free(img);
}
