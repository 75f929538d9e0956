/* test_util.c — helpers for the drivers tests (no tests of its own). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers_test.h"
#include "helpers.h"
#include "inf.h"

/* mkstore.sh is slow on a busy machine (it runs many small processes), so
 * its output is built once per version of the script under $GPUP_BUILD and
 * copied for each test (tests modify their copy). */
char *dt_mkstore(const char *dir)
{
	struct t_run r;
	char hex[65];
	char *script = t_strdup_printf("%s/tests/fixtures/mkstore.sh", t_env("GPUP_SRC"));
	char *cache, *tmp, *root = t_strdup_printf("%s/host", dir);
	struct stat st;

	cr_assert_eq(t_sha256_file(script, hex), 0, "%s", script);
	hex[16] = '\0';
	cache = t_strdup_printf("%s/tests/drivers-store-%s", t_env("GPUP_BUILD"), hex);
	if (stat(cache, &st) != 0) {
		tmp = t_strdup_printf("%s.tmp-%d", cache, (int)getpid());
		t_run(&r, "sh '%s' '%s/host'", script, tmp);
		cr_assert_eq(r.status, 0, "mkstore.sh failed: %s", r.err);
		t_run_free(&r);
		/* Another test may have won the race: then use its copy. */
		if (rename(tmp, cache) != 0)
			t_rm_rf(tmp);
		free(tmp);
	}
	t_run(&r, "cp -a '%s/host' '%s'", cache, root);
	cr_assert_eq(r.status, 0, "cp: %s", r.err);
	t_run_free(&r);
	free(cache);
	free(script);
	return root;
}

static void mkdir_p(const char *path)
{
	char *p = strdup(path);

	for (char *q = p + 1; *q; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		mkdir(p, 0755);
		*q = '/';
	}
	mkdir(p, 0755);
	free(p);
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	char *data = t_read_file(from, &len);

	cr_assert_not_null(data, "read %s", from);
	cr_assert_eq(t_write_file(to, data, len), 0, "write %s", to);
	free(data);
}

/* Create every [SourceDisksFiles] entry of @inf_path under @pkg_dir. */
static void stub_files(const char *inf_path, const char *pkg_dir)
{
	struct gp_error err = { 0 };
	struct gp_inf *inf;
	const struct gp_inf_section *sec;

	cr_assert_eq(gp_inf_load(inf_path, &inf, &err), 0, "%s", err.msg);
	sec = gp_inf_section(inf, "SourceDisksFiles");
	cr_assert_not_null(sec);
	for (size_t i = 0; i < sec->n_lines; i++) {
		const struct gp_inf_line *l = &sec->lines[i];
		const char *sub = l->n_values > 1 ? l->values[1] : "";
		char *d = *sub ? t_strdup_printf("%s/%s", pkg_dir, sub) : strdup(pkg_dir);
		char *f;

		for (char *p = d; *p; p++)
			if (*p == '\\')
				*p = '/';
		mkdir_p(d);
		f = t_strdup_printf("%s/%s", d, l->key);
		/* [SourceDisksFiles] lists the INF itself: keep it. */
		if (access(f, F_OK) != 0)
			cr_assert_eq(t_write_file(f, l->key, strlen(l->key)), 0, "%s", f);
		free(f);
		free(d);
	}
	gp_inf_free(inf);
}

char *dt_real_store(const char *dir, bool stubs)
{
	static const char *const pk[][2] = {
		{ "nv_dispi.inf", "nv_dispi.inf_amd64_4f3a7b2c1d0e9f8a" },
		{ "nvhda.inf", "nvhda.inf_amd64_0a1b2c3d4e5f6071" },
		{ "nvppc.inf", "nvppc.inf_amd64_8192a3b4c5d6e7f8" },
	};
	char *root = t_strdup_printf("%s/real", dir);

	for (size_t i = 0; i < 3; i++) {
		char *pd = t_strdup_printf("%s/" REPO_REL "/%s", root, pk[i][1]);
		char *from = t_strdup_printf("%s/fixtures/inf/nvidia-470.05/%s", t_env("GPUP_SHARED"),
					     pk[i][0]);
		char *to = t_strdup_printf("%s/%s", pd, pk[i][0]);

		mkdir_p(pd);
		copy_file(from, to);
		chmod(to, 0644);
		if (stubs && i == 0)
			stub_files(to, pd);
		free(pd);
		free(from);
		free(to);
	}
	return root;
}

struct gp_store *dt_open(const char *root)
{
	struct gp_error err = { 0 };
	struct gp_store *s = NULL;

	cr_assert_eq(gp_store_open(root, &s, &err), 0, "gp_store_open(%s): %s", root, err.msg);
	return s;
}

long dt_find(const struct gp_inject_set *set, const char *guest)
{
	for (size_t i = 0; i < set->count; i++)
		if (strcmp(set->files[i].guest_path, guest) == 0)
			return (long)i;
	return -1;
}

const struct gp_package *dt_pkg(const struct gp_store *s, const char *folder)
{
	for (size_t i = 0; i < gp_store_package_count(s); i++)
		if (strcmp(gp_store_package(s, i)->folder, folder) == 0)
			return gp_store_package(s, i);
	return NULL;
}

const struct gp_candidate *dt_cand(const struct gp_resolution *r, const char *folder)
{
	for (size_t i = 0; i < r->n_cands; i++)
		if (strcmp(r->cands[i].pkg->folder, folder) == 0)
			return &r->cands[i];
	cr_assert_fail("no candidate %s", folder);
	return NULL;
}
