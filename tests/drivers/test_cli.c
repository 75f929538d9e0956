/* test_cli.c — `gpup drivers`: human and JSON output, --explain, exit codes. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers_test.h"
#include "helpers.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(cli, .init = setup, .fini = teardown);

Test(cli, human_output)
{
	char *root = dt_mkstore(dir);
	struct t_run r;

	t_gpup(&r, "drivers --driverstore '%s' --gpu '%s'", root, NV_GPU);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "Chosen: " NV_NEW), "%s", r.out);
	cr_assert(strstr(r.out, "install section [Section_Asus]"), "%s", r.out);
	cr_assert(strstr(r.out, "  " NV_OLD), "every display package listed");
	cr_assert(strstr(r.out, "  " INTEL_PKG), "every display package listed");
	cr_assert_null(strstr(r.out, "e1d.inf_amd64"), "non-display packages are not listed");
	cr_assert(strstr(r.out, "Windows/System32/nvml.dll  16384  <- "), "%s", r.out);
	cr_assert(strstr(r.out, "nvml_loader.dll  [CopyFiles nv_system32_copyfiles]"), "%s", r.out);
	cr_assert(strstr(r.out, "CopyINF: nvhda.inf -> " NVHDA), "%s", r.out);
	cr_assert(strstr(r.err, "gpup: warning: broken.inf_amd64_7777000077770007"), "%s", r.err);
	cr_assert_null(strstr(r.out, "Candidates:"), "only with --explain");
	t_run_free(&r);
	/* No --gpu and two drivers: a listing with a note, not an error. */
	t_gpup(&r, "drivers --driverstore '%s'", root);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "Chosen: none"), "%s", r.out);
	cr_assert(strstr(r.err, "nv_dispi.inf") && strstr(r.err, "iigd_dch.inf"), "%s", r.err);
	t_run_free(&r);
	free(root);
}

Test(cli, explain_says_why_each_candidate_lost)
{
	char *root = dt_mkstore(dir);
	struct t_run r;

	t_gpup(&r, "drivers --driverstore '%s' --gpu '%s' --explain --build 19045", root, NV_GPU);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "WON     " NV_NEW ": chosen: PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043 "
				"(VEN&DEV&SUBSYS) in [NVIDIA_Devices.NTamd64.10.0...17098]"), "%s", r.out);
	cr_assert(strstr(r.out, "lost    " NV_OLD ": lost: DriverVer 01/15/2024 31.0.15.4601 is older"),
		  "%s", r.out);
	cr_assert(strstr(r.out, "lost    " INTEL_PKG ": lost: no model matches"), "%s", r.out);
	cr_assert(strstr(r.out, "lost    e1d.inf_amd64_5555eeee55550005: lost: not a display driver (Class Net"),
		  "%s", r.out);
	cr_assert(strstr(r.out, "lost    " NVHDA ": lost: not a display driver"), "%s", r.out);
	t_run_free(&r);
	/* A failed resolution still explains (arm64 guest). */
	t_gpup(&r, "drivers --driverstore '%s' --gpu '%s' --arch arm64 --explain", root, NV_GPU);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.out, NV_NEW ": lost: no TargetOS fits the guest (arm64"), "%s", r.out);
	cr_assert(strstr(r.err, "no display driver package"), "%s", r.err);
	t_run_free(&r);
	free(root);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "JSON has no \"%s\"", key);
	return v;
}

Test(cli, json_output)
{
	char *root = dt_mkstore(dir);
	struct t_run r;
	json_object *j, *files, *cands;
	const char *prev = "";
	bool saw_nvml = false, saw_old = false;

	t_gpup(&r, "drivers --driverstore '%s/Windows' --gpu '%s' --json", root, INTEL_GPU);
	cr_assert_eq(r.status, 0, "%s", r.err);
	j = json_tokener_parse(r.out);
	cr_assert_not_null(j, "stdout is JSON: %s", r.out);
	cr_assert_eq(json_object_get_int(get(j, "schema")), 1);
	cr_assert_str_eq(json_object_get_string(get(get(j, "chosen"), "folder")), INTEL_PKG);
	cr_assert_str_eq(json_object_get_string(get(get(j, "chosen"), "install_section")), "iRPLP_w10_DS");
	cr_assert_eq(json_object_array_length(get(j, "packages")), 3);
	cr_assert_eq(json_object_array_length(get(j, "warnings")), 1);
	files = get(get(j, "injection"), "files");
	cr_assert_eq(json_object_array_length(files), json_object_get_uint64(get(get(j, "injection"), "count")));
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		json_object *f = json_object_array_get_idx(files, i);
		const char *g = json_object_get_string(get(f, "guest_path"));
		struct stat st;

		cr_assert_lt(strcmp(prev, g), 0, "sorted: %s then %s", prev, g);
		prev = g;
		cr_assert_eq(stat(json_object_get_string(get(f, "source_path")), &st), 0);
		cr_assert_eq(json_object_get_uint64(get(f, "size")), (uint64_t)st.st_size);
		if (strcmp(g, "Windows/SysWOW64/igdgmm32.dll") == 0) {
			saw_nvml = true;
			cr_assert_str_eq(json_object_get_string(get(f, "role")), "companion");
			cr_assert_str_eq(json_object_get_string(get(f, "origin")), "CopyFiles igd_wow");
		}
	}
	cr_assert(saw_nvml);
	cands = get(j, "candidates");
	for (size_t i = 0; i < json_object_array_length(cands); i++) {
		json_object *c = json_object_array_get_idx(cands, i);
		if (strcmp(json_object_get_string(get(c, "folder")), NV_OLD) == 0) {
			saw_old = true;
			cr_assert(!json_object_get_boolean(get(c, "won")));
			cr_assert_str_eq(json_object_get_string(get(c, "verdict")), "no matching hardware ID");
		}
	}
	cr_assert(saw_old);
	json_object_put(j);
	t_run_free(&r);
	free(root);
}

Test(cli, exit_codes)
{
	char *root = dt_mkstore(dir);
	char *victim = t_strdup_printf("%s/" REPO_REL "/" NV_NEW "/nvcuda_loader32.dll", root);
	struct t_run r;

	t_gpup(&r, "drivers --help");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "--driverstore"));
	t_run_free(&r);
	t_gpup(&r, "drivers");
	cr_assert_eq(r.status, 2, "no --driverstore is a usage error");
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s' --arch mips", root);
	cr_assert_eq(r.status, 2);
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s' --build x", root);
	cr_assert_eq(r.status, 2);
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s' --gpu 'VEN_10DE&DEV_XYZ'", root);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "VEN_10DE&DEV_XYZ"), "%s", r.err);
	t_run_free(&r);
	/* Not malformed: a name no driver gives its device. */
	t_gpup(&r, "drivers --driverstore '%s' --gpu 'not-a-gpu'", root);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "not-a-gpu"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s' --gpu auto", root);
	cr_assert_eq(r.status, 2, "ambiguous auto asks for --gpu");
	cr_assert(strstr(r.err, "nv_dispi.inf (NVIDIA, VEN_10DE)") &&
		  strstr(r.err, "iigd_dch.inf (Intel Corporation, VEN_8086)"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s' --gpu 'PCI\\VEN_1002&DEV_73BF'", root);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "no display driver package"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s/nowhere'", root);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "nowhere"), "%s", r.err);
	t_run_free(&r);
	/* a missing companion: error naming it; --allow-missing skips it */
	cr_assert_eq(unlink(victim), 0);
	t_gpup(&r, "drivers --driverstore '%s' --gpu '%s'", root, NV_GPU);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "nvcuda_loader32.dll") && strstr(r.err, "Windows/SysWOW64/nvcuda.dll"),
		  "%s", r.err);
	cr_assert_str_eq(r.out, "", "nothing printed on failure");
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s' --gpu '%s' --allow-missing", root, NV_GPU);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "Missing (skipped): Windows/SysWOW64/nvcuda.dll"), "%s", r.out);
	cr_assert(strstr(r.err, "Windows/SysWOW64/nvcuda.dll: no source found"), "%s", r.err);
	t_run_free(&r);
	free(victim);
	free(root);
}

/* mkstore.sh is deterministic: a fresh run equals the cached one byte for
 * byte, mtime for mtime (bundles and listings depend on it). */
Test(cli, mkstore_is_deterministic)
{
	char *cached = dt_mkstore(dir);
	struct t_run r;

	/* Directory sizes are the host file system's business (they differ
	 * between tmpfs and ext4), so only files carry a size. */
	t_run(&r, "sh '%s/tests/fixtures/mkstore.sh' '%s/fresh' && cd '%s' && "
		  "find . -mindepth 1 \\( -type d -printf '%%P d %%T@\\n' \\) -o -printf '%%P %%y %%s %%T@\\n' "
		  "| sort > '%s/a.txt' && cd '%s/fresh' && "
		  "find . -mindepth 1 \\( -type d -printf '%%P d %%T@\\n' \\) -o -printf '%%P %%y %%s %%T@\\n' "
		  "| sort > '%s/b.txt' && "
		  "cmp '%s/a.txt' '%s/b.txt' && diff -r '%s' '%s/fresh' && wc -l < '%s/a.txt'",
	      t_env("GPUP_SRC"), dir, cached, dir, dir, dir, dir, dir, cached, dir, dir);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_gt(atoi(r.out), 50, "%s", r.out);
	t_run_free(&r);
	free(cached);
}
