/* test_drivers.c — `gpup drivers --bundle FILE [--build N]`: the bundle's
 * package and the injection set prepare would use for that guest build,
 * the same set `drivers --driverstore` gives for the store it was made
 * from; one-line errors for bundles it cannot use; usage errors. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle_t.h"
#include "helpers.h"

static char *dir, *store, *bundle;

static void setup(void)
{
	struct t_run r;

	dir = t_tmpdir();
	store = t_store();
	bundle = t_strdup_printf("%s/nv.tar.zst", dir);
	t_gpup(&r, "bundle create -q --driverstore '%s' --gpu '%s' -o '%s'", store, T_NV_GPU, bundle);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
}

static void teardown(void)
{
	t_rm_rf(dir);
	free(dir);
	free(store);
	free(bundle);
}

TestSuite(drivers_bundle, .init = setup, .fini = teardown, .timeout = 120);

/* "guest_path size\n" of every file of `drivers ... --json`'s injection
 * set, sorted (the human order already is, JSON keeps it). */
static char *file_list(const char *args)
{
	struct t_run r;
	json_object *root, *inj, *files;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	t_gpup(&r, "drivers -q --json %s", args);
	cr_assert_eq(r.status, 0, "drivers %s: %s", args, r.err);
	root = json_tokener_parse(r.out);
	cr_assert_not_null(root, "not JSON: %s", r.out);
	cr_assert(json_object_object_get_ex(root, "injection", &inj) && inj);
	cr_assert(json_object_object_get_ex(inj, "files", &files));
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		json_object *o = json_object_array_get_idx(files, i);
		fprintf(f, "%s %" PRId64 "\n",
			json_object_get_string(json_object_object_get(o, "guest_path")),
			json_object_get_int64(json_object_object_get(o, "size")));
	}
	fclose(f);
	json_object_put(root);
	t_run_free(&r);
	return buf;
}

Test(drivers_bundle, same_set_as_the_driverstore_for_the_build)
{
	static const char *const builds[] = { "19045", "22631", "17763" };

	for (size_t i = 0; i < sizeof(builds) / sizeof(*builds); i++) {
		char *a1 = t_strdup_printf("--driverstore '%s' --gpu '%s' --build %s", store, T_NV_GPU,
					   builds[i]);
		char *a2 = t_strdup_printf("--bundle '%s' --build %s", bundle, builds[i]);
		char *from_store = file_list(a1), *from_bundle = file_list(a2);

		cr_assert(strstr(from_store, "Windows/System32/nvml.dll 16384\n"), "%s", from_store);
		cr_assert_str_eq(from_bundle, from_store, "build %s", builds[i]);
		/* Both decorations (17098 and 22621) name the ASUS subsystem:
		 * its exact match outranks VEN&DEV on every build, so
		 * Section_Asus copies AsusOverlay.dll into System32. */
		cr_assert(strstr(from_bundle, "Windows/System32/AsusOverlay.dll "), "build %s: %s",
			  builds[i], from_bundle);
		free(a1);
		free(a2);
		free(from_store);
		free(from_bundle);
	}
	/* The build matters: before 17098 no models section applies, and the
	 * bundle refuses that guest as the DriverStore does. */
	for (int k = 0; k < 2; k++) {
		struct t_run r;

		t_gpup(&r, k ? "drivers --bundle '%s' --build 15063" :
			       "drivers --driverstore '%s' --gpu '" T_NV_GPU "' --build 15063",
		       k ? bundle : store);
		cr_assert_eq(r.status, 1, "%s", r.err);
		cr_assert(strstr(r.err, "build 15063"), "%s", r.err);
		t_run_free(&r);
	}
}

Test(drivers_bundle, human_output_shows_the_package)
{
	struct t_run r;

	t_gpup(&r, "drivers --bundle '%s' --build 19045", bundle);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "Bundle: "), "%s", r.out);
	cr_assert(strstr(r.out, "Package: nv_dispi.inf_amd64_2222bbbb22220002  nv_dispi.inf  NVIDIA  "
				"03/20/2024 31.0.15.5222\n"), "%s", r.out);
	cr_assert(strstr(r.out, "Hardware IDs:\n  PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043\n"), "%s", r.out);
	cr_assert(strstr(r.out, "Guest: amd64, build 19045\n"), "%s", r.out);
	cr_assert(strstr(r.out, "\n  Windows/System32/nvml.dll  16384  [CopyFiles "), "%s", r.out);
	cr_assert_null(strstr(r.out, " <- "), "a bundle has no source paths: %s", r.out);
	cr_assert(strstr(r.out, "CopyINF: nvhda.inf -> nvhda.inf_amd64_3333cccc33330003"), "%s", r.out);
	t_run_free(&r);
	/* No --build: says which build it assumed. */
	t_gpup(&r, "drivers --bundle '%s'", bundle);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "Guest: amd64, build newest (no --build"), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "drivers --bundle '%s' --json", bundle);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"command\":\"drivers\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"format_version\":2"), "%s", r.out);
	cr_assert(strstr(r.out, "\"build\":null"), "%s", r.out);
	t_run_free(&r);
}

static void expect_one_line_error(const char *path, const char *what)
{
	struct t_run r;

	t_gpup(&r, "drivers --bundle '%s' --build 19045", path);
	cr_assert_eq(r.status, 1, "%d: %s", r.status, r.err);
	cr_assert(strstr(r.err, path) && strstr(r.err, what), "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
	cr_assert_str_empty(r.out);
	t_run_free(&r);
}

Test(drivers_bundle, format_1_and_corrupt_bundles_fail_in_one_line)
{
	struct t_case c;
	char *p, *junk = t_strdup_printf("%s/junk.tar.zst", dir);
	FILE *f = fopen(junk, "w");

	t_case_base(&c);
	json_object_object_add(c.m, "format_version", json_object_new_int(1));
	p = t_case_write(&c, dir, "v1.tar", "tar", NULL);
	expect_one_line_error(p, "made by an older gpup");
	cr_assert_not_null(f);
	fputs("not an archive\n", f);
	fclose(f);
	expect_one_line_error(junk, "not a bundle");
	t_case_free(&c);
	free(p);
	free(junk);
}

Test(drivers_bundle, driverstore_and_bundle_exclude_each_other)
{
	struct t_run r;

	t_gpup(&r, "drivers --bundle '%s' --driverstore '%s'", bundle, store);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "--driverstore and --bundle exclude each other"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "drivers --build 19045");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "--driverstore DIR or --bundle FILE"), "%s", r.err);
	t_run_free(&r);
}
