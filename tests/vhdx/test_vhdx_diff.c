/* test_vhdx_diff.c — differencing images (acceptance test 4): children of
 * the Hyper-V dynamic fixture and of gpup-made images, written through the
 * engine, read back by libvhdi with the parent resolved beside the child;
 * the parent stays byte-identical. Also: chains, a stale parent, cycles,
 * partially present blocks. */
#include <fcntl.h>
#include <unistd.h>

#include "le.h"
#include "vhdx_priv.h"
#include "vt.h"

#define MiB (1024ull * 1024ull)
#define FSIZE (10 * MiB)

static char *dir;
static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }
TestSuite(vhdx_diff, .init = setup, .fini = teardown, .timeout = 120);

static char *make_base(void)
{
	char *src = t_hyperv_fixture("dynamic.vhdx", dir);
	char *base = t_strdup_printf("%s/base.vhdx", dir);

	cr_assert_eq(rename(src, base), 0);
	free(src);
	return base;
}

Test(vhdx_diff, child_of_hyperv_dynamic_reads_right_everywhere)
{
	char *base = make_base();
	char *child = t_strdup_printf("%s/child.avhdx", dir);
	char h1[65], h2[65];
	uint8_t *expect = vt_read(base, GP_DISK_BACKEND_DEFAULT, NULL, 0, FSIZE), *got, pat[300000];
	uint64_t seed = 3;
	struct gp_disk_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct vhdx_info info;
	struct t_run r;

	cr_assert_eq(t_sha256_file(base, h1), 0);
	cr_assert_eq(t_gpup(&r, "create '%s' --parent '%s'", child, base), 0, "%s", r.err);
	t_run_free(&r);
	/* A fresh child reads exactly like its parent. */
	got = vt_read(child, GP_DISK_BACKEND_DEFAULT, NULL, 0, FSIZE);
	cr_assert(memcmp(got, expect, FSIZE) == 0);
	free(got);

	cr_assert_eq(gp_disk_open(child, &rw, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_get_info(gp_disk_vhdx(d), &info), 0);
	cr_assert_eq(info.type, VHDX_DISK_DIFFERENCING);
	cr_assert_eq(info.parent_chain_len, 1);
	cr_assert(strstr(info.parent_chain[0], "base.vhdx"));
	cr_assert_str_eq(info.parent.relative_path, ".\\base.vhdx");
	cr_assert(info.parent.parent_linkage[0] == '{');
	vhdx_info_free(&info);
	for (int i = 0; i < 6; i++) {
		uint64_t off = (uint64_t)i * 1700000 + 77, len = 1000 + (uint64_t)i * 50000;
		t_fill_random(pat, len, &seed);
		memcpy(expect + off, pat, len);
		cr_assert_eq(gp_disk_pwrite(d, pat, len, off), 0, "%s", gp_disk_error(d)->msg);
	}
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);

	cr_assert_eq(t_sha256_file(base, h2), 0);
	cr_assert_str_eq(h1, h2, "the parent stays byte-identical");
	cr_assert(!vt_dirty(child));
	got = vt_read(child, GP_DISK_BACKEND_DEFAULT, NULL, 0, FSIZE);
	cr_assert(memcmp(got, expect, FSIZE) == 0, "engine");
	free(got);
	got = vt_read(child, GP_DISK_BACKEND_LIBVHDI, NULL, 0, FSIZE);
	cr_assert(memcmp(got, expect, FSIZE) == 0, "libvhdi with the parent beside the child");
	free(got);
	free(expect); free(base); free(child);
}

Test(vhdx_diff, chains_parent_override_and_stale_parent)
{
	char *base = t_strdup_printf("%s/b.vhdx", dir);
	char *c1 = t_strdup_printf("%s/c1.vhdx", dir);
	char *c2 = t_strdup_printf("%s/sub/c2.vhdx", dir);
	char *moved = t_strdup_printf("%s/moved.vhdx", dir);
	struct gp_error err = { 0 };
	struct gp_disk_open_opts o = { 0 };
	struct gp_disk *d;
	struct t_run r;
	uint8_t a[5000], b[7000], *exp = calloc(1, 64 * MiB), *got;
	uint64_t seed = 11;

	vt_create(base, 64 * MiB, 2 * MiB, 4096);
	t_fill_random(a, sizeof(a), &seed);
	t_fill_random(b, sizeof(b), &seed);
	vt_write(base, a, sizeof(a), 3 * MiB - 100);
	memcpy(exp + 3 * MiB - 100, a, sizeof(a));
	cr_assert_eq(vhdx_create_child(c1, base, &err), 0, "%s", err.msg);
	cr_assert_eq(t_run(&r, "mkdir -p '%s/sub'", dir), 0);
	t_run_free(&r);
	cr_assert_eq(vhdx_create_child(c2, c1, &err), 0, "%s", err.msg);
	vt_write(c2, b, sizeof(b), 3 * MiB + 1000); /* overlaps the parent's data */
	memcpy(exp + 3 * MiB + 1000, b, sizeof(b));
	got = vt_read(c2, GP_DISK_BACKEND_DEFAULT, NULL, 0, 64 * MiB);
	cr_assert(memcmp(got, exp, 64 * MiB) == 0, "a 3-deep chain with 4096-byte sectors");
	free(got);
	/* The middle image untouched by the write into c2: */
	got = vt_read(c1, GP_DISK_BACKEND_DEFAULT, NULL, 3 * MiB + 1000, 10);
	cr_assert(memcmp(got, a + 1100, 10) == 0);
	free(got);

	/* Move c1 away: c2 cannot find it; --parent finds it. */
	cr_assert_eq(rename(c1, moved), 0);
	cr_assert_eq(gp_disk_open(c2, &o, &d, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "c2.vhdx") && strstr(err.msg, "parent"), "%s", err.msg);
	o.parent_path = moved;
	gp_error_clear(&err);
	cr_assert_eq(gp_disk_open(c2, &o, &d, &err), 0, "%s", err.msg);
	got = malloc(64 * MiB);
	cr_assert_eq(gp_disk_pread(d, got, 64 * MiB, 0), 0);
	cr_assert(memcmp(got, exp, 64 * MiB) == 0);
	gp_disk_close(d, NULL);
	free(got);
	cr_assert_eq(t_gpup(&r, "disk read '%s' --parent '%s' --length 4096 -o /dev/null", c2, moved), 0,
		     "%s", r.err);
	t_run_free(&r);

	/* Writing into the base changes its DataWriteGuid: c1 is now stale. */
	vt_write(base, "x", 1, 0);
	o.parent_path = NULL;
	gp_error_clear(&err);
	cr_assert_eq(gp_disk_open(moved, &o, &d, &err), GP_ERR_MISMATCH);
	cr_assert(strstr(err.msg, "DataWriteGuid"), "%s", err.msg);
	free(base); free(c1); free(c2); free(moved); free(exp);
}

Test(vhdx_diff, parent_cycle_is_detected)
{
	char *base = t_strdup_printf("%s/b.vhdx", dir);
	char *c1 = t_strdup_printf("%s/c1.vhdx", dir);
	char *c2 = t_strdup_printf("%s/c2.vhdx", dir);
	struct gp_error err = { 0 };
	struct gp_disk_open_opts o = { 0 };
	struct gp_disk *d;
	struct t_run r;

	vt_create(base, 16 * MiB, 1 * MiB, 512);
	cr_assert_eq(vhdx_create_child(c1, base, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_create_child(c2, c1, &err), 0, "%s", err.msg);
	/* b.vhdx becomes a copy of c2 (parent c1): c1 -> b -> c1. */
	cr_assert_eq(t_run(&r, "cp '%s' '%s'", c2, base), 0);
	t_run_free(&r);
	cr_assert_eq(gp_disk_open(c1, &o, &d, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "cycle"), "%s", err.msg);
	cr_assert_eq(t_gpup(&r, "disk read '%s' --length 1 -o /dev/null", c1), 1);
	cr_assert(strstr(r.err, "cycle"), "%s", r.err);
	t_run_free(&r);
	/* A child naming itself as parent. */
	o.parent_path = c1;
	gp_error_clear(&err);
	cr_assert_eq(gp_disk_open(c1, &o, &d, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "cycle"), "%s", err.msg);
	free(base); free(c1); free(c2);
}

/* Hyper-V leaves PARTIALLY_PRESENT blocks with sector bitmaps; gpup never
 * writes them, so build one by hand: block 1 of a child present only for
 * the sectors the bitmap marks. Reads mix child and parent per sector;
 * a write makes the block whole without losing either side. */
Test(vhdx_diff, partially_present_blocks)
{
	char *base = t_strdup_printf("%s/b.vhdx", dir);
	char *child = t_strdup_printf("%s/c.vhdx", dir);
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx *v;
	uint8_t *pbase = malloc(4 * MiB), *pchild = malloc(MiB), *exp, *got;
	uint8_t bm[MiB / 512 / 8];
	uint64_t seed = 21, foff, boff, sbidx, bidx, bat_off;
	int fd;

	vt_create(base, 8 * MiB, 1 * MiB, 512);
	t_fill_random(pbase, 4 * MiB, &seed);
	vt_write(base, pbase, 4 * MiB, 0);
	cr_assert_eq(vhdx_create_child(child, base, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_open(child, &o, &v, &err), 0, "%s", err.msg);
	foff = (v->file_size + MiB - 1) / MiB * MiB;
	boff = foff;           /* payload of block 1 */
	sbidx = vhdx_bat_bitmap_index(&v->geo, 1);
	bidx = vhdx_bat_payload_index(&v->geo, 1);
	bat_off = v->bat_offset;
	vhdx_close(v, NULL);
	/* sectors 5..9 and 100..2047 of block 1 present in the child */
	memset(bm, 0, sizeof(bm));
	for (int s = 0; s < 2048; s++)
		if ((s >= 5 && s < 10) || s >= 100)
			bm[s / 8] |= (uint8_t)(1u << (s % 8));
	t_fill_random(pchild, MiB, &seed);
	fd = open(child, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)(foff + 2 * MiB)), 0);
	cr_assert_eq(pwrite(fd, pchild, MiB, (off_t)boff), (ssize_t)MiB);
	/* The chunk's bitmap block at foff + 1 MiB: block 1 starts at sector 2048. */
	cr_assert_eq(pwrite(fd, bm, sizeof(bm), (off_t)(foff + MiB + 2048 / 8)), (ssize_t)sizeof(bm));
	uint8_t e[8];
	put_le64(e, vhdx_bat_make(VHDX_PAYLOAD_PARTIALLY_PRESENT, boff));
	cr_assert_eq(pwrite(fd, e, 8, (off_t)(bat_off + bidx * 8)), 8);
	put_le64(e, vhdx_bat_make(VHDX_SB_PRESENT, foff + MiB));
	cr_assert_eq(pwrite(fd, e, 8, (off_t)(bat_off + sbidx * 8)), 8);
	close(fd);

	exp = calloc(1, 8 * MiB);
	memcpy(exp, pbase, 4 * MiB);
	for (int s = 0; s < 2048; s++)
		if ((s >= 5 && s < 10) || s >= 100)
			memcpy(exp + MiB + s * 512, pchild + s * 512, 512);
	got = vt_read(child, GP_DISK_BACKEND_DEFAULT, NULL, 0, 8 * MiB);
	cr_assert(memcmp(got, exp, 8 * MiB) == 0, "per-sector mix of child and parent");
	free(got);
	got = vt_read(child, GP_DISK_BACKEND_LIBVHDI, NULL, 0, 8 * MiB);
	cr_assert(memcmp(got, exp, 8 * MiB) == 0, "libvhdi agrees on the hand-made block");
	free(got);
	/* Unaligned write spanning present and absent sectors. */
	vt_write(child, "HELLO-WORLD", 11, MiB + 9 * 512 + 505);
	memcpy(exp + MiB + 9 * 512 + 505, "HELLO-WORLD", 11);
	got = vt_read(child, GP_DISK_BACKEND_DEFAULT, NULL, 0, 8 * MiB);
	cr_assert(memcmp(got, exp, 8 * MiB) == 0, "after making the block whole");
	free(got);
	got = vt_read(child, GP_DISK_BACKEND_LIBVHDI, NULL, 0, 8 * MiB);
	cr_assert(memcmp(got, exp, 8 * MiB) == 0, "libvhdi after the write");
	free(got);
	free(pbase); free(pchild); free(exp); free(base); free(child);
}

/* Issue 18 item 1: a child made by `gpup create --parent` (and so by
 * `prepare --into-child`, the same vhdx_create_child()) reads the same
 * through libvhdi as through the engine over the whole disk, across two
 * sector-bitmap chunks (4 GiB each with 512-byte sectors), with parent data
 * in every block and the child holding a few. */
/* A 5 GiB base (two 4 GiB sector-bitmap chunks, 8 MiB blocks) with data in
 * every block, and its child made by `gpup create --parent`. */
static void base_and_child(const char *base, const char *child)
{
	struct gp_disk_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	uint8_t pat[16384];
	uint64_t seed = 99, size = 5ull << 30, bs = 8 * MiB;

	vt_create(base, size, (uint32_t)bs, 512);
	cr_assert_eq(gp_disk_open(base, &rw, &d, &err), 0, "%s", err.msg);
	for (uint64_t off = 0; off < size; off += bs) {
		t_fill_random(pat, sizeof(pat), &seed);
		cr_assert_eq(gp_disk_pwrite(d, pat, sizeof(pat), off), 0);
		cr_assert_eq(gp_disk_pwrite(d, pat, 4096, off + bs / 2), 0);
	}
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	cr_assert_eq(t_gpup(&r, "create '%s' --parent '%s'", child, base), 0, "%s", r.err);
	t_run_free(&r);
}

Test(vhdx_diff, libvhdi_reads_gpup_children_like_the_engine, .timeout = 300)
{
	char *base = t_strdup_printf("%s/b.vhdx", dir);
	char *child = t_strdup_printf("%s/c.avhdx", dir);
	struct gp_disk_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	uint8_t pat[16384];
	uint64_t seed = 98;

	base_and_child(base, child);
	vt_libvhdi_equals_engine(child);
	cr_assert_eq(gp_disk_open(child, &rw, &d, &err), 0, "%s", err.msg);
	for (int i = 0; i < 5; i++) {
		t_fill_random(pat, sizeof(pat), &seed);
		cr_assert_eq(gp_disk_pwrite(d, pat, sizeof(pat), (uint64_t)i * (1ull << 30) + 777), 0);
	}
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	vt_libvhdi_equals_engine(child);
	free(base); free(child);
}

/* Issue 18 item 2: the parent locator holds relative_path always and
 * absolute_win32_path only in a Windows form ("\\?\C:\..." for /mnt/c/...
 * under WSL), never a Linux path dressed as one; libvhdi (through gpup's
 * backend) still finds the parent, also one directory up. */
Test(vhdx_diff, parent_locator_has_no_fake_windows_path)
{
	char *base = t_strdup_printf("%s/b.vhdx", dir);
	char *child = t_strdup_printf("%s/sub/c.avhdx", dir);
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx_info info;
	struct vhdx *v;
	struct t_run r;
	uint8_t pat[8192], *got;
	uint64_t seed = 7;
	char *w;

	w = vhdx_win32_path("/mnt/c/Users/me/vms/base.vhdx", true);
	cr_assert_str_eq(w, "\\\\?\\C:\\Users\\me\\vms\\base.vhdx");
	free(w);
	w = vhdx_win32_path("/mnt/d", true);
	cr_assert_str_eq(w, "\\\\?\\D:\\");
	free(w);
	cr_assert_null(vhdx_win32_path("/mnt/c/x.vhdx", false), "not under WSL");
	cr_assert_null(vhdx_win32_path("/tmp/x.vhdx", true));
	cr_assert_null(vhdx_win32_path("/mnt/cd/x.vhdx", true));

	vt_create(base, 64 * MiB, 1 * MiB, 512);
	t_fill_random(pat, sizeof(pat), &seed);
	vt_write(base, pat, sizeof(pat), 0);
	cr_assert_eq(t_run(&r, "mkdir -p '%s/sub'", dir), 0);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "create '%s' --parent '%s'", child, base), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(vhdx_open(child, &o, &v, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_get_info(v, &info), 0);
	cr_assert_str_eq(info.parent.relative_path, "..\\b.vhdx");
	if (!vhdx_running_on_wsl())
		cr_assert_null(info.parent.absolute_win32_path, "%s", info.parent.absolute_win32_path);
	else if (info.parent.absolute_win32_path)
		cr_assert(!strncmp(info.parent.absolute_win32_path, "\\\\?\\", 4) &&
			  info.parent.absolute_win32_path[5] == ':');
	vhdx_info_free(&info);
	vhdx_close(v, NULL);
	got = vt_read(child, GP_DISK_BACKEND_LIBVHDI, NULL, 0, sizeof(pat));
	cr_assert(memcmp(got, pat, sizeof(pat)) == 0, "libvhdi finds ../b.vhdx");
	free(got);
	free(base); free(child);
}

/* A child without sector bitmap blocks (Hyper-V makes them so): libvhdi
 * misreads it (the upstream defect; this notices a fixed libvhdi), `gpup
 * check` says its independent read-back is not available, and the first
 * write through gpup adds the bitmaps, after which libvhdi agrees. */
Test(vhdx_diff, child_without_bitmaps_is_flagged_then_given_them, .timeout = 300)
{
	char *base = t_strdup_printf("%s/b.vhdx", dir);
	char *child = t_strdup_printf("%s/c.avhdx", dir);
	uint8_t *a, *b;
	struct t_run r;

	base_and_child(base, child);
	vt_strip_bitmaps(child);
	a = vt_read(child, GP_DISK_BACKEND_DEFAULT, NULL, 0, 16384);
	b = vt_read(child, GP_DISK_BACKEND_LIBVHDI, NULL, 0, 16384);
	cr_assert(memcmp(a, b, 16384) != 0, "libvhdi misreads a child without bitmaps");
	free(a); free(b);
	cr_assert_eq(t_gpup(&r, "check '%s'", child), 0, "%s", r.out);
	cr_assert(strstr(r.out, "sector bitmap") && strstr(r.out, "not available"), "%s", r.out);
	t_run_free(&r);
	vt_write(child, "x", 1, 3ull << 30);
	cr_assert_eq(t_gpup(&r, "check '%s'", child), 0, "%s", r.out);
	cr_assert(!strstr(r.out, "sector bitmap"), "%s", r.out);
	t_run_free(&r);
	vt_libvhdi_equals_engine(child);
	free(base); free(child);
}
