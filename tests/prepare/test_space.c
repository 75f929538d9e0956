/*
 * test_space.c — issue 17's space promise end to end: on a small guest
 * (mkguest.sh --size 200M, ~83 MB free), packages and `put` trees from 90 %
 * to 102 % of the free space either succeed and read back (gpup verify,
 * gpup cat), or are refused up front with need and have named and the image
 * byte-identical by SHA-256; no run fails after writing. And a guest whose
 * $Bitmap marks the SYSTEM hive's clusters free (mkbitmaplie.sh) is refused
 * by prepare and prepare -n with exit 3, the file named, the image
 * unchanged.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define NV_NEW "nv_dispi.inf_amd64_2222bbbb22220002"
#define FR "Windows/System32/DriverStore/FileRepository"
#define GUEST "--size 200M --vhdx"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(space, .init = setup, .fini = teardown, .timeout = 600);

static uint64_t free_bytes(const char *img)
{
	struct t_run r;
	const char *p;
	uint64_t v;

	t_gpup(&r, "inspect '%s' --json", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	p = strstr(r.out, "\"free_bytes\":");
	cr_assert_not_null(p, "%s", r.out);
	v = strtoull(p + strlen("\"free_bytes\":"), NULL, 10);
	t_run_free(&r);
	return v;
}

/* A refusal: exit 1, "need N bytes, have M" naming the image, and the
 * image as it was. */
static void assert_refused(const struct t_run *r, const char *img, const char *sha_before,
			   const char *what)
{
	char after[65];

	cr_assert_eq(r->status, 1, "%s: exit %d: %s", what, r->status, r->err);
	cr_assert(strstr(r->err, "need ") && strstr(r->err, " bytes, have ") && strstr(r->err, img),
		  "%s: not a space refusal: %s", what, r->err);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(after, sha_before, "%s: refused, but the image changed", what);
}

Test(space, prepare_sweep_near_full)
{
	char *src = t_fixture("mkstore.sh", "");
	char *st = t_strdup_printf("%s/store", dir);
	char *filler = t_strdup_printf("%s/" FR "/" NV_NEW "/filler", st);
	char *img = t_strdup_printf("%s/g.vhdx", dir);
	char *probe = t_guest_copy(dir, GUEST, "probe.vhdx");
	uint64_t avail = free_bytes(probe);
	unsigned ok = 0, refused = 0;
	struct t_run r;

	t_run(&r, "cp -a '%s' '%s'", src, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	for (unsigned pct = 90; pct <= 102; pct += (pct < 96 ? 2 : 1)) {
		/* The package itself holds ~800 KB besides the filler. */
		uint64_t payload = avail / 100 * pct - 800000;
		char before[65], *what = t_strdup_printf("prepare at %u %%", pct);
		char *g = t_guest_copy(dir, GUEST, "g.vhdx");

		t_rm_rf(filler);
		t_make_tree(filler, payload, payload - 3000000, pct);
		cr_assert_eq(t_sha256_file(img, before), 0);
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
		if (r.status == 0) {
			ok++;
			t_run_free(&r);
			t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "'", img, st);
			cr_assert_eq(r.status, 0, "%s: prepared, but verify says: %s%s", what, r.out, r.err);
		} else {
			refused++;
			assert_refused(&r, img, before, what);
		}
		t_run_free(&r);
		free(g);
		free(what);
	}
	/* Both outcomes occur: the sweep crosses the edge. */
	cr_assert_gt(ok, 0, "nothing fitted");
	cr_assert_gt(refused, 0, "nothing was refused");
	free(probe);
	free(img);
	free(filler);
	free(st);
	free(src);
}

Test(space, put_sweep_near_full)
{
	char *img = t_strdup_printf("%s/g.vhdx", dir);
	char *tree = t_strdup_printf("%s/pkg", dir);
	char *probe = t_guest_copy(dir, GUEST, "probe.vhdx");
	uint64_t avail = free_bytes(probe);
	unsigned ok = 0, refused = 0;
	struct t_run r;

	for (unsigned pct = 90; pct <= 102; pct += (pct < 96 ? 2 : 1)) {
		uint64_t payload = avail / 100 * pct;
		char before[65], *what = t_strdup_printf("put at %u %%", pct);
		char *g = t_guest_copy(dir, GUEST, "g.vhdx");
		size_t n;

		t_rm_rf(tree);
		n = t_make_tree(tree, payload, payload - 3000000, 100 + pct);
		cr_assert_eq(t_sha256_file(img, before), 0);
		t_gpup(&r, "put '%s' '%s' 'C:\\Program Files\\pkg'", img, tree);
		if (r.status == 0) {
			ok++;
			t_run_free(&r);
			/* The first, a middle and the last file read back. */
			for (size_t i = 0; i < n; i += n / 2 ? n / 2 : 1) {
				t_gpup(&r, "cat '%s' '/Program Files/pkg/pkg/d%02zu/f%03zu.bin' | cmp - '%s/d%02zu/f%03zu.bin'",
				       img, i / 16, i, tree, i / 16, i);
				cr_assert_eq(r.status, 0, "%s: file %zu reads back wrong: %s", what, i, r.err);
				t_run_free(&r);
			}
		} else {
			refused++;
			assert_refused(&r, img, before, what);
			t_run_free(&r);
		}
		free(g);
		free(what);
	}
	cr_assert_gt(ok, 0, "nothing fitted");
	cr_assert_gt(refused, 0, "nothing was refused");
	free(probe);
	free(tree);
	free(img);
}

Test(space, bitmap_lie_under_the_system_hive_is_refused)
{
	char *fx = t_fixture("mkbitmaplie.sh", "");
	char *src = t_strdup_printf("%s/guest.vhdx", fx), *img = t_strdup_printf("%s/lie.vhdx", dir);
	char *st = t_fixture("mkstore.sh", "");
	char before[65], after[65];
	struct t_run r;

	t_copy(src, img);
	cr_assert_eq(t_sha256_file(img, before), 0);
	for (int dry = 1; dry >= 0; dry--) {
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q%s", img, st,
		       dry ? " -n" : "");
		cr_assert_eq(r.status, 3, "%s: exit %d: %s", dry ? "-n" : "prepare", r.status, r.err);
		cr_assert(strstr(r.err, "$Bitmap marks clusters") &&
			  strstr(r.err, "\\Windows\\System32\\config\\SYSTEM as free"), "%s", r.err);
		t_run_free(&r);
		cr_assert_eq(t_sha256_file(img, after), 0);
		cr_assert_str_eq(after, before, "refused, but the image changed");
	}
	t_gpup(&r, "put '%s' '%s/lie.txt' /Data", img, fx);
	cr_assert_eq(r.status, 3, "put: exit %d: %s", r.status, r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(after, before, "put refused, but the image changed");
	free(st);
	free(img);
	free(src);
	free(fx);
}

/* -n --json states the need (data and metadata of the plan) and the
 * volume's free space. */
Test(space, dry_run_json_states_need_and_have)
{
	char *img = t_guest_copy(dir, GUEST, "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	uint64_t avail = free_bytes(img), need, have;
	struct t_run r;
	const char *p;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -n --json", img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	p = strstr(r.out, "\"space_need\":");
	cr_assert_not_null(p, "%s", r.out);
	need = strtoull(p + strlen("\"space_need\":"), NULL, 10);
	p = strstr(r.out, "\"space_have\":");
	cr_assert_not_null(p, "%s", r.out);
	have = strtoull(p + strlen("\"space_have\":"), NULL, 10);
	t_run_free(&r);
	cr_assert_eq(have, avail);
	/* ~800 KB of files in 31 new entries and a few new directories. */
	cr_assert(need > 800000 && need < 2000000, "need %llu", (unsigned long long)need);
	free(st);
	free(img);
}
