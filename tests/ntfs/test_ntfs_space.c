/* test_ntfs_space.c — space accounting (gp_ntfs_space_check()) measured
 * against what a real copy consumes, and the $Bitmap check
 * (gp_ntfs_check_bitmap()) on a clean guest and on one whose $Bitmap marks
 * the SYSTEM hive's clusters free (tests/fixtures/mkbitmaplie.sh, planted
 * with libntfs-3g, not gpup). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "disk.h"
#include "helpers.h"
#include "ntfs_test.h"
#include "ntfsvol.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(ntfs_space, .init = setup, .fini = teardown, .timeout = 300);

static void open_vol(const char *img, bool writable, struct gp_disk **d, struct gp_ntfs **v)
{
	struct gp_disk_open_opts dopts = { .writable = writable };
	struct gp_ntfs_open_opts vopts = { .writable = writable };
	struct gp_error err = { 0 };

	cr_assert_eq(gp_disk_open(img, &dopts, d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_open(*d, &vopts, v, &err), 0, "%s", err.msg);
}

static void close_vol(struct gp_disk *d, struct gp_ntfs *v)
{
	struct gp_error err = { 0 };

	cr_assert_eq(gp_ntfs_close(v, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
}

/* The margin the header promises: the need may exceed what a copy really
 * consumes by at most max(1 % of the payload, 4 MiB), and never fall short. */
static void check_margin(uint64_t payload, uint64_t seed)
{
	char *img = nt_guest(dir, "g.img", "--size 200M", NULL, NULL);
	char *tree = t_strdup_printf("%s/pkg%llu", dir, (unsigned long long)seed);
	struct gp_ntfs_space sp = { 0 };
	struct gp_disk *d;
	struct gp_ntfs *v;
	uint64_t before, after, used, bound;

	t_make_tree(tree, payload, payload / 2, seed);
	open_vol(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_tree_space(v, tree, "/Program Files/pkg", &sp), 0, "%s",
		     gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_space_check(v, &sp), 0, "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(sp.payload, payload);
	before = gp_ntfs_free_bytes(v);
	cr_assert_eq(sp.have, before);
	cr_assert_eq(gp_ntfs_put_tree(v, tree, "/Program Files/pkg", NULL), 0, "%s",
		     gp_ntfs_error(v)->msg);
	after = gp_ntfs_free_bytes(v);
	close_vol(d, v);
	used = before - after;
	bound = payload / 100 > (4u << 20) ? payload / 100 : (4u << 20);
	cr_assert_leq(used, sp.need, "payload %llu: the copy took %llu bytes, the check said %llu",
		      (unsigned long long)payload, (unsigned long long)used,
		      (unsigned long long)sp.need);
	cr_assert_leq(sp.need - used, bound, "payload %llu: need %llu exceeds the %llu used by more than %llu",
		      (unsigned long long)payload, (unsigned long long)sp.need,
		      (unsigned long long)used, (unsigned long long)bound);
	free(tree);
	free(img);
}

/* 2000 files of 5 KB in 125 new directories: MFT growth, index blocks and
 * $Secure dominate the need. Same bounds as check_margin(). */
Test(ntfs_space, margin_two_thousand_files)
{
	char *img = nt_guest(dir, "g.img", "--size 200M", NULL, NULL);
	char *tree = t_strdup_printf("%s/many", dir);
	struct gp_ntfs_space sp = { 0 };
	uint8_t buf[5000];
	uint64_t seed = 21, before, used;
	struct gp_disk *d;
	struct gp_ntfs *v;

	cr_assert_eq(mkdir(tree, 0755), 0);
	for (int k = 0; k < 2000; k++) {
		char *sub = t_strdup_printf("%s/dir%03d", tree, k / 16);
		char *f = t_strdup_printf("%s/file%04d.dll", sub, k);

		if (k % 16 == 0)
			cr_assert_eq(mkdir(sub, 0755), 0);
		t_fill_random(buf, sizeof(buf), &seed);
		cr_assert_eq(t_write_file(f, buf, sizeof(buf)), 0);
		free(f);
		free(sub);
	}
	open_vol(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_tree_space(v, tree, "/Windows/System32/DriverStore/x", &sp), 0);
	cr_assert_eq(gp_ntfs_space_check(v, &sp), 0, "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(sp.n_files, 2000);
	before = gp_ntfs_free_bytes(v);
	cr_assert_eq(gp_ntfs_put_tree(v, tree, "/Windows/System32/DriverStore/x", NULL), 0, "%s",
		     gp_ntfs_error(v)->msg);
	used = before - gp_ntfs_free_bytes(v);
	close_vol(d, v);
	cr_assert_leq(used, sp.need, "took %llu, the check said %llu", (unsigned long long)used,
		      (unsigned long long)sp.need);
	cr_assert_leq(sp.need - used, 4u << 20, "need %llu, used %llu", (unsigned long long)sp.need,
		      (unsigned long long)used);
	free(tree);
	free(img);
}

Test(ntfs_space, margin_small_package) { check_margin(2u << 20, 11); }
Test(ntfs_space, margin_many_small_files) { check_margin(600000, 12); }
Test(ntfs_space, margin_large_package) { check_margin(70u << 20, 13); }

Test(ntfs_space, refuses_with_need_and_have_before_writing)
{
	char *img = nt_guest(dir, "g.img", "--size 200M", NULL, NULL);
	char *tree = t_strdup_printf("%s/big", dir);
	struct gp_ntfs_space sp = { 0 };
	struct gp_disk *d;
	struct gp_ntfs *v;
	char before[65], after[65], want[128];

	t_make_tree(tree, 90u << 20, 0, 5);
	cr_assert_eq(t_sha256_file(img, before), 0);
	open_vol(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_tree_space(v, tree, "/pkg", &sp), 0);
	cr_assert_eq(gp_ntfs_space_check(v, &sp), GP_ERR_NOSPACE);
	snprintf(want, sizeof(want), "need %llu bytes, have %llu", (unsigned long long)sp.need,
		 (unsigned long long)sp.have);
	cr_assert(strstr(gp_ntfs_error(v)->msg, want) && strstr(gp_ntfs_error(v)->msg, "g.img"),
		  "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_put_tree(v, tree, "/pkg", NULL), GP_ERR_NOSPACE);
	close_vol(d, v);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "a refused put changed the image");
	free(tree);
	free(img);
}

Test(ntfs_space, a_replaced_file_counts_only_its_growth)
{
	char *img = nt_guest(dir, "g.img", "--size 200M", NULL, NULL);
	char *tree = t_strdup_printf("%s/big", dir);
	struct gp_ntfs_space first = { 0 }, again = { 0 };
	struct gp_disk *d;
	struct gp_ntfs *v;

	t_make_tree(tree, 50u << 20, 0, 6);
	open_vol(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_tree_space(v, tree, "/pkg", &first), 0);
	cr_assert_eq(gp_ntfs_put_tree(v, tree, "/pkg", NULL), 0, "%s", gp_ntfs_error(v)->msg);
	/* 50 MB more would not fit beside the first copy, but replacing it
	 * in place takes no new data clusters (except a cluster for each of
	 * the ~20 resident 200-byte files, counted as if they went
	 * non-resident). */
	cr_assert_eq(gp_ntfs_put_tree_space(v, tree, "/pkg", &again), 0);
	cr_assert_leq(again.data, 128u << 10, "%llu", (unsigned long long)again.data);
	cr_assert_eq(again.n_files, 0);
	cr_assert_eq(gp_ntfs_space_check(v, &again), 0, "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(gp_ntfs_space_check(v, &first), GP_ERR_NOSPACE);
	cr_assert_lt(again.need, 2u << 20, "need %llu", (unsigned long long)again.need);
	close_vol(d, v);
	free(tree);
	free(img);
}

Test(ntfs_space, bitmap_check_passes_a_clean_volume)
{
	char *img = nt_guest(dir, "g.img", "--size 200M", NULL, NULL);
	struct gp_ntfs_bitmap_report rep;
	struct gp_disk *d;
	struct gp_ntfs *v;

	open_vol(img, false, &d, &v);
	cr_assert_eq(gp_ntfs_check_bitmap(v, &rep), 0, "%s", gp_ntfs_error(v)->msg);
	cr_assert_gt(rep.records, 30);
	cr_assert_eq(rep.free_in_use, 0);
	cr_assert_eq(rep.leaked, 0, "%llu leaked clusters on a fresh volume",
		     (unsigned long long)rep.leaked);
	close_vol(d, v);
	free(img);
}

Test(ntfs_space, bitmap_check_names_the_file_whose_clusters_are_free)
{
	char *fx = t_fixture("mkbitmaplie.sh", "");
	char *src = t_strdup_printf("%s/guest.vhdx", fx), *img = t_strdup_printf("%s/lie.vhdx", dir);
	char *lie = t_strdup_printf("%s/lie.txt", fx);
	struct gp_ntfs_bitmap_report rep;
	struct gp_disk *d;
	struct gp_ntfs *v;
	unsigned long long lcn, count;
	FILE *f = fopen(lie, "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%llu %llu", &lcn, &count), 2);
	fclose(f);
	t_copy(src, img);
	open_vol(img, false, &d, &v);
	cr_assert_eq(gp_ntfs_check_bitmap(v, &rep), GP_ERR_CORRUPT);
	cr_assert(strstr(gp_ntfs_error(v)->msg, "\\Windows\\System32\\config\\SYSTEM as free"), "%s",
		  gp_ntfs_error(v)->msg);
	cr_assert_eq(rep.first_lcn, lcn);
	cr_assert_eq(rep.first_count, count);
	cr_assert_eq(rep.free_in_use, count);
	cr_assert_str_eq(rep.first_path, "\\Windows\\System32\\config\\SYSTEM");
	close_vol(d, v);
	free(lie);
	free(img);
	free(src);
	free(fx);
}

/* libntfs-3g's allocator takes one free run per 32768-cluster piece of
 * $Bitmap and pass, so on this guest (free runs of 30, 16, 16 and 7 MB and
 * the MFT zone) it refuses a 78 MiB file with 83 MB free; gpup then claims
 * the runs itself. Raw image: no placement plan, the library's own path.
 * Read back with ntfscat. */
Test(ntfs_space, a_file_beyond_the_library_allocators_reach_fits)
{
	uint64_t off, len;
	char *img = nt_guest(dir, "g.img", "--size 200M", &off, &len), *part;
	char *f = t_strdup_printf("%s/big.bin", dir);
	char want[65];
	struct gp_disk *d;
	struct gp_ntfs *v;
	struct t_run r;
	FILE *fp = fopen(f, "wb");
	uint8_t *buf = malloc(1u << 20);
	uint64_t seed = 9;

	cr_assert(fp && buf);
	for (int i = 0; i < 78; i++) {
		t_fill_random(buf, 1u << 20, &seed);
		cr_assert_eq(fwrite(buf, 1, 1u << 20, fp), 1u << 20);
	}
	fclose(fp);
	free(buf);
	cr_assert_eq(t_sha256_file(f, want), 0);
	open_vol(img, true, &d, &v);
	cr_assert_eq(gp_ntfs_put_file(v, f, "/big.bin"), 0, "%s", gp_ntfs_error(v)->msg);
	close_vol(d, v);
	part = nt_extract(dir, img, off, len);
	t_run(&r, "ntfscat '%s' /big.bin | sha256sum | cut -c1-64", part);
	cr_assert_eq(strncmp(r.out, want, 64), 0, "ntfscat reads other bytes");
	t_run_free(&r);
	t_run(&r, "ntfsfix -n '%s'", part);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	t_run_free(&r);
	free(part);
	free(f);
	free(img);
}
