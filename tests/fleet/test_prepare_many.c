/*
 * test_prepare_many.c — `gpup prepare IMAGE... -j N`: several generated
 * guests (tests/fixtures/mkguest.sh) from one generated DriverStore
 * (mkstore.sh), one of them hibernated. The prepared ones are read back
 * without gpup (qemu-img → raw, ntfscat per file, fleet_t.h).
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_t.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(prepare_many, .init = setup, .fini = teardown, .timeout = 300);

Test(prepare_many, one_refused_image_does_not_stop_the_others)
{
	char *st = t_fixture("mkstore.sh", "");
	char *fx = t_fixture("mkguest.sh", "--size 2G --vhdx");
	char *part = t_strdup_printf("%s/guest.part", fx);
	char *a = t_guest_copy(dir, "--size 2G --vhdx", "a.vhdx");
	char *b = ft_hibernated_copy(dir, "b.vhdx");
	char *c = t_guest_copy(dir, "--size 2G --vhdx", "c.vhdx");
	char before[65], after[65];
	struct json_object *lines[8], *sum, *v;
	size_t n;
	struct t_run r;

	cr_assert_eq(t_sha256_file(b, before), 0);
	t_gpup(&r, "prepare '%s' '%s' '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -j 2 --json -q",
	       a, b, c, st);
	cr_assert_eq(r.status, 3, "exit %d: %s", r.status, r.err);
	n = ft_json_lines(r.out, lines, 8);
	cr_assert_eq(n, 4, "one line per image and a summary: %s", r.out);
	cr_assert_str_eq(ft_jstr(lines[0], "image"), a);
	cr_assert(ft_jbool(lines[0], "changed"));
	cr_assert(ft_jbool(lines[0], "verified"));
	cr_assert_str_eq(ft_jstr(lines[1], "image"), b);
	cr_assert(json_object_object_get_ex(lines[1], "error", &v), "%s", r.out);
	cr_assert(strstr(json_object_to_json_string(v), "hibernat"), "%s", r.out);
	cr_assert(!ft_jbool(lines[1], "image_changed"));
	cr_assert_str_eq(ft_jstr(lines[2], "image"), c);
	cr_assert(ft_jbool(lines[2], "verified"));
	cr_assert(json_object_object_get_ex(lines[3], "summary", &sum), "%s", r.out);
	cr_assert_eq(ft_jint(sum, "images"), 3);
	cr_assert_eq(ft_jint(sum, "ok"), 2);
	cr_assert_eq(ft_jint(sum, "refused"), 1);
	cr_assert_eq(ft_jint(sum, "exit_status"), 3);
	for (size_t i = 0; i < n; i++)
		json_object_put(lines[i]);
	t_run_free(&r);

	cr_assert_eq(t_sha256_file(b, after), 0);
	cr_assert_str_eq(after, before, "the refused image changed");
	cr_assert_gt(ft_check_injected(dir, a, st, part), 0);
	cr_assert_gt(ft_check_injected(dir, c, st, part), 0);
	free(a);
	free(b);
	free(c);
	free(part);
	free(fx);
	free(st);
}

/* The DriverStore is scanned once per guest build, not once per image: its
 * one broken INF is warned about once for three images of one build, twice
 * when a second build joins. */
Test(prepare_many, source_is_resolved_once_per_guest_build)
{
	char *st = t_fixture("mkstore.sh", "");
	char *img[4];
	struct t_run r;
	const char *p;
	int warnings = 0;

	img[0] = t_guest_copy(dir, "--size 2G --vhdx", "a.vhdx");
	img[1] = t_guest_copy(dir, "--size 2G --vhdx", "b.vhdx");
	img[2] = t_guest_copy(dir, "--size 2G --vhdx", "c.vhdx");
	img[3] = t_guest_copy(dir, "--size 2G --vhdx --build 19045", "d.vhdx");
	t_gpup(&r, "prepare '%s' '%s' '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -j 2 -n",
	       img[0], img[1], img[2], st);
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	for (p = r.err; (p = strstr(p, "broken.inf: binary data")); p++)
		warnings++;
	cr_assert_eq(warnings, 1, "the store was scanned %d times for one build: %s", warnings, r.err);
	cr_assert(strstr(r.out, "==> "), "each image's report: %s", r.out);
	cr_assert(strstr(r.out, "3 images: 3 ok, 0 refused, 0 failed"), "%s", r.out);
	t_run_free(&r);

	t_gpup(&r, "prepare '%s' '%s' '%s' '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -j 2 -n",
	       img[0], img[1], img[2], img[3], st);
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	warnings = 0;
	for (p = r.err; (p = strstr(p, "broken.inf: binary data")); p++)
		warnings++;
	cr_assert_eq(warnings, 2, "two builds, two resolutions: %s", r.err);
	t_run_free(&r);
	for (int i = 0; i < 4; i++)
		free(img[i]);
	free(st);
}

/* Options that name one image's output take one image. */
Test(prepare_many, single_output_options_refuse_several_images)
{
	static const char *const opts[] = { "--into-child x.avhdx", "--vm VM -o x.ps1",
					    "--parent p.vhdx" };
	char *st = t_fixture("mkstore.sh", "");
	char *a = t_guest_copy(dir, "--size 2G --vhdx", "a.vhdx");
	char before[65], after[65];
	struct t_run r;

	cr_assert_eq(t_sha256_file(a, before), 0);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		t_gpup(&r, "prepare '%s' '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' %s", a, a, st, opts[i]);
		cr_assert_eq(r.status, 2, "%s: exit %d: %s", opts[i], r.status, r.err);
		cr_assert(strstr(r.err, "cannot go with several images"), "%s", r.err);
		t_run_free(&r);
	}
	t_gpup(&r, "prepare '%s' --driverstore '%s' -j 0", a, st);
	cr_assert_eq(r.status, 2, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(a, after), 0);
	cr_assert_str_eq(after, before);
	free(a);
	free(st);
}

/* A signal to the parent alone (a service manager's SIGTERM) stops the
 * run: the running worker gets it too and stops as a single run would,
 * images not started stay byte-identical and are reported interrupted,
 * exit 130; running the same command again completes every image. */
Test(prepare_many, terminated_run_stops_every_worker, .timeout = 600)
{
	char *st = t_fixture("mkstore.sh", "--scale 100");
	char *img[3], sum[3][65], now[65];
	struct json_object *lines[8];
	struct t_run r;
	size_t n;

	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "g%d.vhdx", i);
		img[i] = t_guest_copy(dir, "--size 2G --vhdx", name);
		cr_assert_eq(t_sha256_file(img[i], sum[i]), 0);
	}
	t_run(&r, "'%s' prepare '%s' '%s' '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -j 1 --json -q & "
		  "pid=$!; sleep 0.3; kill -TERM $pid; wait $pid", t_env("GPUP_BIN"), img[0], img[1],
	      img[2], st);
	cr_assert_eq(r.status, 130, "exit %d: %s%s", r.status, r.out, r.err);
	n = ft_json_lines(r.out, lines, 8);
	cr_assert_eq(n, 4, "%s", r.out);
	for (int i = 1; i < 3; i++) {
		struct json_object *res = json_object_array_get_idx(
			ft_jget(ft_jget(lines[3], "summary"), "results"), (size_t)i);

		cr_assert_str_eq(ft_jstr(res, "result"), "interrupted", "%s", r.out);
		cr_assert_eq(t_sha256_file(img[i], now), 0);
		cr_assert_str_eq(now, sum[i], "image %d was never started, yet changed", i);
	}
	/* The running one stopped too (or had not started yet). */
	cr_assert_str_eq(ft_jstr(json_object_array_get_idx(ft_jget(ft_jget(lines[3], "summary"),
								       "results"), 0), "result"),
			 "interrupted", "%s", r.out);
	cr_assert_eq(ft_jint(ft_jget(lines[3], "summary"), "exit_status"), 130);
	for (size_t i = 0; i < n; i++)
		json_object_put(lines[i]);
	t_run_free(&r);

	t_gpup(&r, "prepare '%s' '%s' '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -j 2 -q", img[0],
	       img[1], img[2], st);
	cr_assert_eq(r.status, 0, "the rerun: %s%s", r.out, r.err);
	t_run_free(&r);
	for (int i = 0; i < 3; i++)
		free(img[i]);
	free(st);
}
