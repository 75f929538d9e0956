/* test_inf546.c — the real NVIDIA 546.01 DCH INF (../shared/fixtures/inf/
 * nvidia-546.01/nv_dispig.inf) in a generated DriverStore holding a small
 * file for every [SourceDisksFiles] entry: for every install section a
 * model line names, the System32 / SysWOW64 / lxss files of its injection
 * set equal what tests/drivers/inf_oracle.py (an INF reader written apart
 * from gpup's) says the INF's CopyFiles + DestinationDirs + CopyToVm*
 * entries name. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "drivers_test.h"
#include "helpers.h"

#define NVG_FOLDER "nv_dispig.inf_amd64_677da8a9230cea15"
#define NVPPC_FOLDER "nvppc.inf_amd64_8192a3b4c5d6e7f8"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(inf546, .init = setup, .fini = teardown);

/* One install section as the oracle sees it. */
struct expect {
	char section[64];
	char hwid[512];
	char **files;     /* guest paths */
	size_t n_files;
	char **copyinf;   /* INF names, lower case */
	size_t n_copyinf;
};

static void push(char ***a, size_t *n, const char *s)
{
	*a = realloc(*a, (*n + 1) * sizeof(**a));
	cr_assert_not_null(*a);
	(*a)[(*n)++] = strdup(s);
}

/* Build the store (546.01 package with stub files, 470.05's nvppc.inf as
 * a CopyINF companion) and read the oracle's expectations. */
static char *make_store(struct expect **out, size_t *n_out)
{
	char *root = t_strdup_printf("%s/host", dir);
	char *pkg = t_strdup_printf("%s/" REPO_REL "/" NVG_FOLDER, root);
	char *ppc = t_strdup_printf("%s/" REPO_REL "/" NVPPC_FOLDER, root);
	struct expect *e = NULL;
	size_t n = 0;
	struct t_run r;
	char *line, *save = NULL;

	t_run(&r, "mkdir -p '%s' '%s' && cp '%s/fixtures/inf/nvidia-546.01/nv_dispig.inf' '%s/' && "
		  "cp '%s/fixtures/inf/nvidia-470.05/nvppc.inf' '%s/' && chmod -R u+w '%s'",
	      pkg, ppc, t_env("GPUP_SHARED"), pkg, t_env("GPUP_SHARED"), ppc, root);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_run(&r, "python3 '%s/tests/drivers/inf_oracle.py' '%s/nv_dispig.inf' '%s'",
	      t_env("GPUP_SRC"), pkg, pkg);
	cr_assert_eq(r.status, 0, "inf_oracle.py: %s", r.err);
	for (line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char kind, sec[64], rest[512];

		cr_assert_eq(sscanf(line, "%c %63s %511[^\n]", &kind, sec, rest), 3, "%s", line);
		if (kind == 'S') {
			e = realloc(e, (n + 1) * sizeof(*e));
			cr_assert_not_null(e);
			memset(&e[n], 0, sizeof(*e));
			snprintf(e[n].section, sizeof(e[n].section), "%s", sec);
			snprintf(e[n].hwid, sizeof(e[n].hwid), "%s", rest);
			n++;
			continue;
		}
		cr_assert(n && strcmp(e[n - 1].section, sec) == 0, "%s", line);
		if (kind == 'F')
			push(&e[n - 1].files, &e[n - 1].n_files, rest);
		else
			push(&e[n - 1].copyinf, &e[n - 1].n_copyinf, rest);
	}
	t_run_free(&r);
	free(pkg);
	free(ppc);
	*out = e;
	*n_out = n;
	return root;
}

static void free_expect(struct expect *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < e[i].n_files; k++)
			free(e[i].files[k]);
		for (size_t k = 0; k < e[i].n_copyinf; k++)
			free(e[i].copyinf[k]);
		free(e[i].files);
		free(e[i].copyinf);
	}
	free(e);
}

static bool in_list(char **a, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(a[i], s) == 0)
			return true;
	return false;
}

/* A guest System32 / SysWOW64 path that is not the HostDriverStore copy. */
static bool companion_path(const char *g)
{
	return (strncmp(g, "Windows/System32/", 17) == 0 &&
		strncmp(g, "Windows/System32/HostDriverStore/", 33) != 0) ||
	       strncmp(g, "Windows/SysWOW64/", 17) == 0;
}

Test(inf546, every_install_section_matches_the_oracle, .timeout = 120)
{
	struct expect *e;
	size_t n, lxss = 0;
	char *root = make_store(&e, &n);
	struct gp_store *s = dt_open(root);
	const struct gp_package *p = dt_pkg(s, NVG_FOLDER);

	cr_assert_not_null(p);
	cr_assert_eq(n, 33, "install sections named by model lines: %zu", n);
	for (size_t i = 0; i < n; i++) {
		const struct gp_model *m = NULL;
		struct gp_inject_set *set = NULL;
		struct gp_resolution *r = NULL;
		size_t got = 0;

		for (size_t k = 0; k < p->n_models && !m; k++)
			if (strcasecmp(p->models[k].install_section, e[i].section) == 0)
				m = &p->models[k];
		cr_assert_not_null(m, "[%s]: no model", e[i].section);
		cr_assert_eq(gp_store_injection_set(s, p, m, NULL, &set), 0, "[%s]: %s",
			     e[i].section, gp_store_error(s)->msg);
		cr_assert_eq(set->n_missing, 0);
		for (size_t k = 0; k < set->count; k++) {
			const char *g = set->files[k].guest_path;
			if (!companion_path(g))
				continue;
			cr_assert(in_list(e[i].files, e[i].n_files, g),
				  "[%s] %s: gpup copies %s (%s), the INF does not name it",
				  e[i].section, e[i].hwid, g, set->files[k].origin);
			cr_assert_eq(set->files[k].role, GP_INJECT_COMPANION, "%s", g);
			got++;
			lxss += strncmp(g, "Windows/System32/lxss/lib/", 26) == 0;
		}
		for (size_t k = 0; k < e[i].n_files; k++)
			cr_assert_geq(dt_find(set, e[i].files[k]), 0,
				      "[%s] %s: the INF names %s, gpup does not copy it",
				      e[i].section, e[i].hwid, e[i].files[k]);
		cr_assert_eq(got, e[i].n_files, "[%s]", e[i].section);
		/* CopyINF companions: those in the store are folders of the
		 * set, the others are reported missing. */
		for (size_t k = 0; k < e[i].n_copyinf; k++) {
			bool found = false;
			for (size_t j = 0; j < set->n_copyinf; j++)
				found |= strcasecmp(set->copyinf[j]->inf_name, e[i].copyinf[k]) == 0;
			for (size_t j = 0; j < set->n_copyinf_missing; j++)
				found |= strcasecmp(set->copyinf_missing[j], e[i].copyinf[k]) == 0;
			cr_assert(found, "[%s]: CopyINF %s", e[i].section, e[i].copyinf[k]);
		}
		cr_assert_eq(set->n_copyinf + set->n_copyinf_missing, e[i].n_copyinf,
			     "[%s]", e[i].section);
		if (in_list(e[i].copyinf, e[i].n_copyinf, "nvppc.inf")) {
			cr_assert_eq(set->n_copyinf, 1);
			cr_assert_str_eq(set->copyinf[0]->folder, NVPPC_FOLDER);
			cr_assert_geq(dt_find(set, GP_GUEST_HOSTDRIVERSTORE "/" NVPPC_FOLDER
					      "/nvppc.inf"), 0);
		}
		/* The device's own hardware ID resolves to a model of this
		 * section (several sections may share no ID). */
		cr_assert_eq(gp_store_resolve(s, e[i].hwid, NULL, &r), 0, "%s: %s", e[i].hwid,
			     gp_store_error(s)->msg);
		cr_assert_str_eq(r->model->install_section, e[i].section, "%s", e[i].hwid);
		gp_resolution_free(r);
		gp_inject_set_free(set);
	}
	cr_assert_gt(lxss, 0, "11,lxss\\lib destinations");
	gp_store_close(s);
	free_expect(e, n);
	free(root);
}

/* The six sections whose CopyFiles lack nvEncodeAPI64.dll get it (and its
 * SysWOW64 twin) from the single-string CopyToVmWhenNewer values; renamed
 * CopyToVm targets, subfolders and lxss keep working. */
Test(inf546, single_string_copytovm_values, .timeout = 60)
{
	struct expect *e;
	size_t n;
	char *root = make_store(&e, &n);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = NULL;
	struct gp_inject_set *set = NULL;
	long i;

	/* GT 1030 */
	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_10DE&DEV_1D01", NULL, &r), 0, "%s",
		     gp_store_error(s)->msg);
	cr_assert_str_eq(r->model->install_section, "Section043");
	cr_assert_eq(gp_store_injection_set(s, r->pkg, r->model, NULL, &set), 0, "%s",
		     gp_store_error(s)->msg);
	cr_assert_geq(i = dt_find(set, "Windows/System32/nvEncodeAPI64.dll"), 0);
	cr_assert_str_eq(set->files[i].origin, "CopyToVmWhenNewer EncodeApiFiles");
	cr_assert(strstr(set->files[i].source_path, NVG_FOLDER "/nvEncodeAPI64.dll"), "%s",
		  set->files[i].source_path);
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/nvEncodeAPI.dll"), 0);
	cr_assert_str_eq(set->files[i].origin, "CopyToVmWhenNewerWow64 EncodeApiFiles");
	/* Wow64 NVAPIFiles is a lone %REG_SZ_APPEND% string. */
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/nvapi.dll"), 0);
	cr_assert(strstr(set->files[i].origin, "CopyToVmWhenNewerWow64 NVAPIFiles"), "%s",
		  set->files[i].origin);
	/* Renamed: nvcuda_loader64.dll -> nvcuda.dll */
	cr_assert_geq(i = dt_find(set, "Windows/System32/nvcuda.dll"), 0);
	cr_assert(strstr(set->files[i].source_path, "/nvcuda_loader64.dll"), "%s",
		  set->files[i].source_path);
	cr_assert_geq(dt_find(set, "Windows/System32/lxss/lib/libcuda.so.1.1"), 0);
	/* A file in a subfolder of the package keeps its place. */
	cr_assert_geq(dt_find(set, GP_GUEST_HOSTDRIVERSTORE "/" NVG_FOLDER
			      "/Display.NvContainer/plugins/Session/wksServicePlugin.dll"), 0);
	for (size_t k = 0; k < set->n_notes; k++)
		cr_assert_null(strstr(set->notes[k], "CopyToVm"), "%s", set->notes[k]);
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free_expect(e, n);
	free(root);
}
