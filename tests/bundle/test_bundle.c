/* test_bundle.c — creating bundles from the mkstore.sh DriverStore:
 * reproducibility in every format, independent listing (bsdtar, unzip),
 * the library round trip (store → set → bundle → set + stream), atomic
 * output, and the CLI (usage errors, list --json, verify). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle_t.h"
#include "helpers.h"
#include "source.h"

static char *dir, *store;

static void setup(void)
{
	dir = t_tmpdir();
	store = t_store();
}

static void teardown(void)
{
	t_rm_rf(dir);
	free(dir);
	free(store);
}

TestSuite(bundle, .init = setup, .fini = teardown, .timeout = 120);

static const char *const exts[] = { "tar.zst", "tar.xz", "tar.gz", "zip" };

static char *create(const char *name)
{
	char *out = t_strdup_printf("%s/%s", dir, name);
	struct t_run r;

	t_gpup(&r, "bundle create -q --driverstore '%s' --gpu '%s' -o '%s'", store, T_NV_GPU, out);
	cr_assert_eq(r.status, 0, "create %s: %s", name, r.err);
	t_run_free(&r);
	return out;
}

/* The store's set as bundle create takes it: every model's files. */
static struct gp_source *open_store(void)
{
	struct gp_source_opts o = { .driverstore = store, .gpu = T_NV_GPU, .every_model = true };
	struct gp_error err = { 0 };
	struct gp_source *s;

	cr_assert_eq(gp_source_open(&o, &s, &err), 0, "%s", err.msg);
	return s;
}

Test(bundle, reproducible_in_every_format)
{
	char *first[4];

	for (int i = 0; i < 4; i++) {
		char *n = t_strdup_printf("one.%s", exts[i]);

		first[i] = create(n);
		free(n);
	}
	/* A clock that moved must not show in the output (gzip header time,
	 * manifest, entry times). */
	sleep(2);
	for (int i = 0; i < 4; i++) {
		char *n = t_strdup_printf("two.%s", exts[i]);
		char *second = create(n);
		size_t la, lb;
		char *a = t_read_file(first[i], &la), *b = t_read_file(second, &lb);

		cr_assert_gt(la, 1000);
		cr_assert(la == lb && !memcmp(a, b, la), "%s: two creations differ", exts[i]);
		if (!strcmp(exts[i], "tar.gz"))
			cr_assert(!a[4] && !a[5] && !a[6] && !a[7], "gzip header carries a time");
		free(a);
		free(b);
		free(second);
		free(n);
		free(first[i]);
	}
}

/* bsdtar and unzip, not libarchive-through-gpup, list the entries: the
 * manifest first, then every guest path of the set in order. */
Test(bundle, independent_tools_list_every_entry)
{
	struct gp_source *s = open_store();
	const struct gp_inject_set *set = gp_source_set(s);

	for (int i = 0; i < 4; i++) {
		char *n = t_strdup_printf("l.%s", exts[i]);
		char *p = create(n);
		struct t_run r;
		char *line, *save = NULL;
		size_t k = 0;

		if (!strcmp(exts[i], "zip"))
			t_run(&r, "unzip -Z1 '%s'", p);
		else
			t_run(&r, "bsdtar -tf '%s'", p);
		cr_assert_eq(r.status, 0, "%s: %s", exts[i], r.err);
		for (line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), k++) {
			if (k == 0)
				cr_assert_str_eq(line, GP_BUNDLE_MANIFEST_NAME);
			else
				cr_assert(k - 1 < set->count && !strcmp(line, set->files[k - 1].guest_path),
					  "%s: entry %zu is %s", exts[i], k, line);
		}
		cr_assert_eq(k, set->count + 1, "%s: %zu entries", exts[i], k);
		t_run_free(&r);
		free(p);
		free(n);
	}
	gp_source_close(s);
}

/* Store → injection set → bundle → injection set: same files, sizes,
 * times, roles, hashes of the host files; streaming gives the host bytes. */
Test(bundle, library_round_trip)
{
	struct gp_bundle_create_opts o = { .format = GP_BUNDLE_TAR_ZSTD, .tool_version = "9.9" };
	struct gp_source *s = open_store();
	const struct gp_inject_set *set = gp_source_set(s), *bs;
	const struct gp_resolution *res = gp_source_resolution(s);
	const struct gp_bundle_info *bi;
	char *out = t_strdup_printf("%s/rt.tar.zst", dir);
	struct gp_error err = { 0 };
	struct gp_inject_stream st;
	struct gp_bundle *b;
	char *buf = malloc(1 << 20);

	o.model = res->model;
	cr_assert_eq(gp_bundle_create(out, set, &o, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_bundle_open(out, &b, &err), 0, "%s", err.msg);
	bs = gp_bundle_inject_set(b);
	bi = gp_bundle_info(b);
	cr_assert_str_eq(bi->tool_version, "9.9");
	cr_assert_str_eq(bi->archive_format, "tar.zst");
	cr_assert_eq(bi->format_version, GP_BUNDLE_FORMAT_VERSION);
	cr_assert_eq(bi->n_hardware_ids, res->model->n_ids);
	for (size_t i = 0; i < bi->n_hardware_ids; i++)
		cr_assert_str_eq(bi->hardware_ids[i], res->model->ids[i]);
	/* The synthesised package. */
	cr_assert_str_eq(bs->pkg->folder, set->pkg->folder);
	cr_assert_str_eq(bs->pkg->inf_name, set->pkg->inf_name);
	cr_assert_str_eq(bs->pkg->provider, set->pkg->provider);
	cr_assert_str_eq(bs->pkg->class_guid, set->pkg->class_guid);
	cr_assert_str_eq(bs->pkg->driver_ver_date, set->pkg->driver_ver_date);
	cr_assert_str_eq(bs->pkg->driver_ver_version, set->pkg->driver_ver_version);
	cr_assert_str_eq(bs->pkg->arch, set->pkg->arch);
	cr_assert_eq(bs->pkg->is_display, true);
	cr_assert_eq(bs->pkg->date_key, set->pkg->date_key);
	cr_assert_eq(memcmp(bs->pkg->version, set->pkg->version, sizeof(set->pkg->version)), 0);
	cr_assert_null(bs->pkg->dir_path);
	cr_assert_eq(bs->n_copyinf, set->n_copyinf);
	for (size_t i = 0; i < set->n_copyinf; i++)
		cr_assert_str_eq(bs->copyinf[i]->folder, set->copyinf[i]->folder);
	cr_assert_eq(bs->n_folders, set->n_folders);
	for (size_t i = 0; i < set->n_folders; i++)
		cr_assert_str_eq(bs->folders[i], set->folders[i]);
	cr_assert_eq(bs->total_bytes, set->total_bytes);
	cr_assert_eq(bs->count, set->count);
	cr_assert_gt(set->count, 20);
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *a = &set->files[i], *f = &bs->files[i];
		char want[65], got[65];

		cr_assert_str_eq(f->guest_path, a->guest_path);
		cr_assert_eq(f->size, a->size);
		cr_assert_eq(f->mtime, a->mtime);
		cr_assert_eq(f->role, a->role);
		cr_assert_str_eq(f->origin, a->origin);
		cr_assert_null(f->source_path);
		cr_assert(f->has_sha256);
		cr_assert_eq(t_sha256_file(a->source_path, want), 0);
		for (int k = 0; k < 32; k++)
			sprintf(got + 2 * k, "%02x", f->sha256[k]);
		cr_assert_str_eq(got, want, "%s", f->guest_path);
	}
	/* Stream every file: the host's bytes, and close() agrees. */
	cr_assert_eq(gp_bundle_stream(b, &st, &err), 0, "%s", err.msg);
	/* expected() answers from the manifest, for any file, in any order. */
	for (size_t i = bs->count; i-- > 0;) {
		uint8_t sha[32];

		cr_assert_eq(st.ops->expected(&st, &bs->files[i], sha, &err), 0, "%s", err.msg);
		cr_assert_eq(memcmp(sha, bs->files[i].sha256, 32), 0);
	}
	for (size_t i = 0; i < bs->count; i++) {
		const struct gp_inject_file *f = &bs->files[i];
		size_t hlen, done = 0;
		char *host = t_read_file(set->files[i].source_path, &hlen);
		int64_t n;

		cr_assert_eq(st.ops->open(&st, f, &err), 0, "%s", err.msg);
		while ((n = st.ops->read(&st, buf + done, 4096, &err)) > 0)
			done += (size_t)n;
		cr_assert_eq(n, 0, "%s", err.msg);
		cr_assert_eq(done, hlen);
		cr_assert_eq(memcmp(buf, host, hlen), 0, "%s: bytes differ", f->guest_path);
		cr_assert_eq(st.ops->close(&st, f->sha256, &err), 0, "%s", err.msg);
		free(host);
	}
	st.ops->destroy(&st);
	/* Skipping files (the injector's "already identical"): every third. */
	cr_assert_eq(gp_bundle_stream(b, &st, &err), 0, "%s", err.msg);
	for (size_t i = 2; i < bs->count; i += 3) {
		uint8_t wrong[32] = { 0 };
		int64_t n;

		cr_assert_eq(st.ops->open(&st, &bs->files[i], &err), 0, "%s", err.msg);
		while ((n = st.ops->read(&st, buf, 1 << 20, &err)) > 0)
			;
		cr_assert_eq(n, 0, "%s", err.msg);
		/* The hash the caller computed is checked too. */
		if (i == 2) {
			cr_assert_eq(st.ops->close(&st, wrong, &err), GP_ERR_MISMATCH);
			cr_assert(strstr(err.msg, bs->files[i].guest_path), "%s", err.msg);
			gp_error_clear(&err);
		} else {
			cr_assert_eq(st.ops->close(&st, NULL, &err), 0, "%s", err.msg);
		}
	}
	st.ops->destroy(&st);
	cr_assert_eq(gp_bundle_verify(b, NULL, &err), 0, "%s", err.msg);
	gp_bundle_close(b);
	gp_source_close(s);
	free(buf);
	free(out);
}

/* One flipped byte in one file: verify exits 4 naming that file. */
Test(bundle, verify_detects_flipped_byte)
{
	char *p = create("good.tar.xz");
	char *bad = t_strdup_printf("%s/bad.tar.zst", dir);
	struct t_entry e[64];
	size_t n = t_read_archive(p, e, 64), victim = n;
	struct t_run r;

	for (size_t i = 0; i < n; i++)
		if (strstr(e[i].name, "nvlddmkm.sys"))
			victim = i;
	cr_assert_lt(victim, n);
	e[victim].data[100000] ^= 1;
	t_write_archive(bad, "tar.zst", e, n);
	cr_assert_eq(t_gpup(&r, "bundle verify '%s'", p), 0, "%s", r.err);
	cr_assert(strstr(r.out, "all match the manifest"), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "bundle verify '%s'", bad);
	cr_assert_eq(r.status, 4, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, e[victim].name), "names the file: %s", r.err);
	cr_assert(strstr(r.err, "bad.tar.zst"), "names the archive: %s", r.err);
	t_run_free(&r);
	t_expect_stream_fails(bad, GP_ERR_MISMATCH, e[victim].name);
	t_entries_free(e, n);
	free(bad);
	free(p);
}

static size_t count_entries(const char *d)
{
	DIR *dh = opendir(d);
	struct dirent *de;
	size_t n = 0;

	cr_assert_not_null(dh);
	while ((de = readdir(dh)))
		n += de->d_name[0] != '.';
	closedir(dh);
	return n;
}

/* A failed create leaves no partial output and an existing file intact. */
Test(bundle, failed_create_leaves_nothing)
{
	char *copy = t_strdup_printf("%s/store", dir);
	char *outdir = t_strdup_printf("%s/out", dir);
	char *out = t_strdup_printf("%s/b.tar.gz", outdir);
	struct gp_source_opts so = { .driverstore = copy, .gpu = T_NV_GPU };
	struct gp_bundle_create_opts o = { .format = GP_BUNDLE_TAR_GZIP, .tool_version = "t" };
	struct gp_error err = { 0 };
	const struct gp_inject_set *set;
	struct gp_source *s;
	struct t_run r;
	size_t len;
	char *old;

	t_run(&r, "cp -a '%s' '%s' && mkdir '%s'", store, copy, outdir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_write_file(out, "old bundle", 10), 0);
	cr_assert_eq(gp_source_open(&so, &s, &err), 0, "%s", err.msg);
	set = gp_source_set(s);
	/* A source vanishing between planning and bundling. */
	cr_assert_eq(unlink(set->files[set->count - 1].source_path), 0);
	cr_assert_eq(gp_bundle_create(out, set, &o, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, set->files[set->count - 1].source_path), "%s", err.msg);
	old = t_read_file(out, &len);
	cr_assert(len == 10 && !memcmp(old, "old bundle", 10));
	cr_assert_eq(count_entries(outdir), 1, "temporary file left behind");
	free(old);
	gp_source_close(s);
	/* Through the CLI: no DriverStore there. */
	t_gpup(&r, "bundle create --driverstore '%s/nothing' --gpu auto -o '%s/x.zip'", dir, outdir);
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_assert_eq(count_entries(outdir), 1);
	t_run_free(&r);
	free(copy);
	free(outdir);
	free(out);
}

Test(bundle, cli_usage_errors)
{
	static const char *const bad[] = {
		"bundle",
		"bundle frobnicate x",
		"bundle create --driverstore /tmp",
		"bundle create -o x.tar.zst",
		"bundle create --driverstore /tmp -o x.tar",
		"bundle create --driverstore /tmp -o x.tar.zst extra",
		"bundle create --driverstore /tmp --build abc -o x.zip",
		"bundle list",
		"bundle list a.zip b.zip",
		"bundle list --driverstore /tmp a.zip",
		"bundle verify",
		"bundle verify -o y.zip a.zip",
		"bundle list --bogus a.zip",
		"bundle verify --progress=xml a.zip",
	};
	struct t_run r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t_gpup(&r, "%s", bad[i]);
		cr_assert_eq(r.status, 2, "'%s': exit %d: %s", bad[i], r.status, r.err);
		/* "Try 'gpup bundle --help'", or 'gpup bundle list --help' (the same text) */
		cr_assert(strstr(r.err, "Try 'gpup bundle "), "'%s': %s", bad[i], r.err);
		t_run_free(&r);
	}
	t_gpup(&r, "bundle create --driverstore /tmp -o x.tar");
	cr_assert(strstr(r.err, ".tar.zst, .tar.xz, .tar.gz, .zip"), "lists the formats: %s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "bundle --help"), 0);
	cr_assert(strstr(r.out, "Usage: gpup bundle create"), "%s", r.out);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "bundle list --help"), 0);
	t_run_free(&r);
	/* Missing file: an error, not a usage error. */
	t_gpup(&r, "bundle list '%s/none.zip'", dir);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "none.zip"), "%s", r.err);
	t_run_free(&r);
}

Test(bundle, cli_list_and_verify_json)
{
	char *p = create("j.zip");
	struct gp_source *s = open_store();
	const struct gp_inject_set *set = gp_source_set(s);
	struct json_object *root, *m, *files, *v;
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "bundle list --json '%s'", p), 0, "%s", r.err);
	root = json_tokener_parse(r.out);
	cr_assert_not_null(root, "not JSON: %s", r.out);
	cr_assert_eq(json_object_get_int(json_object_object_get(root, "schema")), 1);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(root, "bundle")), p);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(root, "archive_format")), "zip");
	m = json_object_object_get(root, "manifest");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(m, "tool_version")),
			 "0.1.0");
	v = json_object_object_get(m, "package");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(v, "folder")),
			 set->pkg->folder);
	files = json_object_object_get(m, "files");
	cr_assert_eq(json_object_array_length(files), set->count);
	for (size_t i = 0; i < set->count; i++) {
		struct json_object *f = json_object_array_get_idx(files, i);
		char want[65];

		cr_assert_str_eq(json_object_get_string(json_object_object_get(f, "path")),
				 set->files[i].guest_path);
		cr_assert_eq((uint64_t)json_object_get_int64(json_object_object_get(f, "size")),
			     set->files[i].size);
		cr_assert_eq(t_sha256_file(set->files[i].source_path, want), 0);
		cr_assert_str_eq(json_object_get_string(json_object_object_get(f, "sha256")), want);
	}
	json_object_put(root);
	t_run_free(&r);
	/* Text listing names the package and every file. */
	cr_assert_eq(t_gpup(&r, "bundle list '%s'", p), 0, "%s", r.err);
	cr_assert(strstr(r.out, set->pkg->folder), "%s", r.out);
	for (size_t i = 0; i < set->count; i++)
		cr_assert(strstr(r.out, set->files[i].guest_path), "%s", set->files[i].guest_path);
	t_run_free(&r);
	/* Options after FILE, as the usage line writes them. */
	cr_assert_eq(t_gpup(&r, "bundle verify '%s' --json", p), 0, "%s", r.err);
	root = json_tokener_parse(r.out);
	cr_assert_not_null(root, "not JSON: %s", r.out);
	cr_assert(json_object_get_boolean(json_object_object_get(root, "ok")));
	cr_assert_eq((size_t)json_object_get_int64(json_object_object_get(root, "files")), set->count);
	json_object_put(root);
	t_run_free(&r);
	gp_source_close(s);
	free(p);
}

Test(bundle, format_from_extension)
{
	struct gp_error err = { 0 };
	enum gp_bundle_format f;

	cr_assert_eq(gp_bundle_format_from_path("a/B.TAR.ZST", &f, &err), 0);
	cr_assert_eq(f, GP_BUNDLE_TAR_ZSTD);
	cr_assert_eq(gp_bundle_format_from_path("b.tar.xz", &f, &err), 0);
	cr_assert_eq(f, GP_BUNDLE_TAR_XZ);
	cr_assert_eq(gp_bundle_format_from_path("c.tar.gz", &f, &err), 0);
	cr_assert_eq(f, GP_BUNDLE_TAR_GZIP);
	cr_assert_eq(gp_bundle_format_from_path("d.zip", &f, &err), 0);
	cr_assert_eq(f, GP_BUNDLE_ZIP);
	cr_assert_eq(gp_bundle_format_from_path(".zip", &f, &err), GP_ERR_INVALID);
	gp_error_clear(&err);
	cr_assert_eq(gp_bundle_format_from_path("e.tar.bz2", &f, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "e.tar.bz2") && strstr(err.msg, ".tar.zst"), "%s", err.msg);
}

/* --gpu auto has no model: the manifest records the first hardware ID of
 * every model of the package, once each. */
Test(bundle, auto_records_every_model_id)
{
	char *copy = t_strdup_printf("%s/store", dir);
	char *out = t_strdup_printf("%s/auto.tar.gz", dir);
	struct gp_error err = { 0 };
	const struct gp_bundle_info *bi;
	struct gp_bundle *b;
	struct t_run r;

	/* Leave one display driver so that "auto" can choose. */
	t_run(&r, "cp -a '%s' '%s' && rm -r '%s'/Windows/System32/DriverStore/FileRepository/iigd_dch.*",
	      store, copy, copy);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "bundle create -q --driverstore '%s' -o '%s'", copy, out);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(gp_bundle_open(out, &b, &err), 0, "%s", err.msg);
	bi = gp_bundle_info(b);
	cr_assert_eq(bi->n_hardware_ids, 3);
	cr_assert_str_eq(bi->hardware_ids[0], "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043");
	cr_assert_str_eq(bi->hardware_ids[1], "PCI\\VEN_10DE&DEV_2860");
	cr_assert_str_eq(bi->hardware_ids[2], "PCI\\VEN_10DE&DEV_2684");
	cr_assert_str_eq(gp_bundle_inject_set(b)->pkg->folder, "nv_dispi.inf_amd64_2222bbbb22220002");
	gp_bundle_close(b);
	free(copy);
	free(out);
}
