/* test_support.c — helpers of the bundle tests (see bundle_t.h). No tests
 * here; the name only makes the Makefile link it into test-bundle. */
#include "bundle_t.h"

#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "helpers.h"

char *t_store(void)
{
	/* Through t_fixture(): rebuilt when a fixture source changes (a copy
	 * of its own, built once, kept an old mkstore.sh's store). */
	return t_fixture("mkstore.sh", "");
}

/* ---- archives ---------------------------------------------------------- */

void t_write_archive(const char *path, const char *fmt, const struct t_entry *e, size_t n)
{
	struct archive *a = archive_write_new();

	cr_assert_not_null(a);
	if (!strcmp(fmt, "zip")) {
		cr_assert_eq(archive_write_set_format_zip(a), ARCHIVE_OK);
	} else {
		cr_assert_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
		if (!strcmp(fmt, "tar.gz"))
			cr_assert_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
		else if (!strcmp(fmt, "tar.zst"))
			cr_assert_eq(archive_write_add_filter_zstd(a), ARCHIVE_OK);
		else
			cr_assert_str_eq(fmt, "tar");
	}
	cr_assert_eq(archive_write_open_filename(a, path), ARCHIVE_OK, "%s", archive_error_string(a));
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();

		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_mtime(ae, 1710936000, 0);
		archive_entry_set_perm(ae, 0644);
		if (e[i].hardlink) {
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_hardlink(ae, e[i].link);
			archive_entry_set_size(ae, 0);
		} else {
			archive_entry_set_filetype(ae, e[i].type ? e[i].type : AE_IFREG);
			if (e[i].type == AE_IFLNK)
				archive_entry_set_symlink(ae, e[i].link);
			if (e[i].type == AE_IFCHR)
				archive_entry_set_rdev(ae, makedev(1, 3));
			archive_entry_set_size(ae, (!e[i].type || e[i].type == AE_IFREG)
							   ? (la_int64_t)e[i].len : 0);
		}
		cr_assert_geq(archive_write_header(a, ae), ARCHIVE_WARN, "%s: %s", e[i].name,
			      archive_error_string(a));
		if (e[i].len && (!e[i].type || e[i].type == AE_IFREG) && !e[i].hardlink)
			cr_assert_eq(archive_write_data(a, e[i].data, e[i].len), (la_ssize_t)e[i].len);
		archive_entry_free(ae);
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK, "%s", archive_error_string(a));
	archive_write_free(a);
}

size_t t_read_archive(const char *path, struct t_entry *e, size_t cap)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	size_t n = 0;

	archive_read_support_format_all(a);
	archive_read_support_filter_all(a);
	cr_assert_eq(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		size_t len = (size_t)archive_entry_size(ae), done = 0;

		cr_assert_lt(n, cap);
		memset(&e[n], 0, sizeof(e[n]));
		e[n].name = strdup(archive_entry_pathname(ae));
		e[n].type = archive_entry_filetype(ae);
		e[n].data = malloc(len + 1);
		while (done < len) {
			la_ssize_t got = archive_read_data(a, e[n].data + done, len - done);

			cr_assert_gt(got, 0);
			done += (size_t)got;
		}
		e[n].len = len;
		n++;
	}
	archive_read_free(a);
	return n;
}

void t_entries_free(struct t_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].data);
		free(e[i].link);
	}
}

/* ---- the small hand-made bundle --------------------------------------- */

#define PKG "Windows/System32/HostDriverStore/FileRepository/gpu.inf_amd64_0123456789abcdef"

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct t_entry *)a)->name, ((const struct t_entry *)b)->name);
}

static struct json_object *jstr(const char *s) { return json_object_new_string(s); }

static void add_file(struct t_case *c, const char *name, size_t len, uint64_t seed)
{
	struct t_entry *e = &c->e[c->n++];

	e->name = strdup(name);
	e->data = malloc(len + 1);
	e->len = len;
	t_fill_random(e->data, len, &seed);
	e->type = AE_IFREG;
}

/* The INF of the hand-made bundle: one model whose install section
 * copies gpu32.dll to System32 and SysWOW64 (host files the package lacks,
 * which a bundle carries at their guest paths). CRLF, as INFs are. */
static const char case_inf[] =
	"[Version]\r\n"
	"Signature = \"$Windows NT$\"\r\n"
	"Class = Display\r\n"
	"ClassGuid = {4d36e968-e325-11ce-bfc1-08002be10318}\r\n"
	"Provider = Test GPUs\r\n"
	"DriverVer = 03/20/2024, 1.2.3.4\r\n"
	"CatalogFile = gpu.cat\r\n"
	"\r\n[Manufacturer]\r\n"
	"Test = Models, NTamd64\r\n"
	"\r\n[Models.NTamd64]\r\n"
	"Test GPU = Install, PCI\\VEN_1234&DEV_5678\r\n"
	"\r\n[DestinationDirs]\r\n"
	"Sys32 = 11\r\n"
	"Wow = 10,SysWOW64\r\n"
	"\r\n[SourceDisksNames]\r\n"
	"1 = disk\r\n"
	"\r\n[SourceDisksFiles]\r\n"
	"gpu.sys = 1\r\n"
	"x.dll = 1,sub\r\n"
	"\r\n[Install]\r\n"
	"CopyFiles = Sys32, Wow\r\n"
	"\r\n[Sys32]\r\n"
	"gpu32.dll\r\n"
	"\r\n[Wow]\r\n"
	"gpu32.dll\r\n";

void t_case_base(struct t_case *c)
{
	t_case_many(c, 0);
}

void t_case_many(struct t_case *c, size_t extra)
{
	struct json_object *m = json_object_new_object(), *pkg = json_object_new_object();
	struct json_object *files = json_object_new_array(), *arr;
	uint64_t total = 0;

	memset(c, 0, sizeof(*c));
	add_file(c, PKG "/gpu.inf", 0, 1);
	free(c->e[c->n - 1].data);
	c->e[c->n - 1].data = strdup(case_inf);
	c->e[c->n - 1].len = strlen(case_inf);
	add_file(c, PKG "/gpu.sys", 70000, 2);
	add_file(c, PKG "/sub/x.dll", 1, 3);
	add_file(c, "Windows/System32/gpu32.dll", 100, 4);
	add_file(c, "Windows/SysWOW64/gpu32.dll", 0, 5);
	cr_assert_leq(c->n + extra, T_CASE_MAX);
	for (size_t i = 0; i < extra; i++) {
		char name[128];

		snprintf(name, sizeof(name), PKG "/many/f%03zu.bin", i);
		/* Every fifth one empty; the rest up to ~6 KB, none alike. */
		add_file(c, name, i % 5 ? (i * 1237) % 6000 + 1 : 0, 100 + i);
	}
	qsort(c->e, c->n, sizeof(c->e[0]), entry_cmp);

	json_object_object_add(m, "format", jstr("gpup-bundle"));
	json_object_object_add(m, "format_version", json_object_new_int(2));
	json_object_object_add(m, "gpu", jstr("auto"));
	json_object_object_add(m, "tool_version", jstr("test"));
	json_object_object_add(m, "arch", jstr("amd64"));
	json_object_object_add(pkg, "folder", jstr("gpu.inf_amd64_0123456789abcdef"));
	json_object_object_add(pkg, "inf", jstr("gpu.inf"));
	json_object_object_add(pkg, "provider", jstr("Test GPUs"));
	json_object_object_add(pkg, "class", jstr("Display"));
	json_object_object_add(pkg, "class_guid", jstr("{4d36e968-e325-11ce-bfc1-08002be10318}"));
	json_object_object_add(pkg, "driver_ver_date", jstr("03/20/2024"));
	json_object_object_add(pkg, "driver_ver_version", jstr("1.2.3.4"));
	json_object_object_add(pkg, "catalog_file", jstr("gpu.cat"));
	json_object_object_add(pkg, "arch", jstr("amd64"));
	json_object_object_add(pkg, "copyinf", json_object_new_array());
	{
		char b64[sizeof(case_inf) * 2];

		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)case_inf,
				(int)strlen(case_inf));
		json_object_object_add(pkg, "inf_text", jstr(b64));
	}
	json_object_object_add(m, "package", pkg);
	json_object_object_add(m, "copyinf_packages", json_object_new_array());
	arr = json_object_new_array();
	json_object_array_add(arr, jstr("PCI\\VEN_1234&DEV_5678"));
	json_object_object_add(m, "hardware_ids", arr);
	arr = json_object_new_array();
	json_object_array_add(arr, jstr(PKG));
	json_object_object_add(m, "folders", arr);
	json_object_object_add(m, "missing", json_object_new_array());
	json_object_object_add(m, "copyinf_missing", json_object_new_array());
	for (size_t i = 0; i < c->n; i++) {
		struct json_object *f = json_object_new_object();
		char hex[65];

		t_sha256_buf(c->e[i].data, c->e[i].len, hex);
		json_object_object_add(f, "path", jstr(c->e[i].name));
		json_object_object_add(f, "size", json_object_new_int64((int64_t)c->e[i].len));
		json_object_object_add(f, "sha256", jstr(hex));
		json_object_object_add(f, "mtime", json_object_new_int64(1710936000));
		json_object_object_add(f, "role", jstr(strncmp(c->e[i].name, PKG, strlen(PKG))
							       ? "companion" : "package"));
		json_object_object_add(f, "origin", jstr("test"));
		json_object_array_add(files, f);
		total += c->e[i].len;
	}
	json_object_object_add(m, "file_count", json_object_new_int64((int64_t)c->n));
	json_object_object_add(m, "total_bytes", json_object_new_int64((int64_t)total));
	json_object_object_add(m, "files", files);
	c->m = m;
}

void t_case_free(struct t_case *c)
{
	t_entries_free(c->e, c->n);
	json_object_put(c->m);
}

size_t t_case_find(const struct t_case *c, const char *suffix)
{
	for (size_t i = 0; i < c->n; i++) {
		size_t l = strlen(c->e[i].name), s = strlen(suffix);

		if (l >= s && !strcmp(c->e[i].name + l - s, suffix))
			return i;
	}
	cr_assert_fail("no entry ends in %s", suffix);
	return 0;
}

struct json_object *t_case_mfile(const struct t_case *c, const char *suffix)
{
	struct json_object *files = json_object_object_get(c->m, "files");

	for (size_t i = 0; i < json_object_array_length(files); i++) {
		struct json_object *f = json_object_array_get_idx(files, i);
		const char *p = json_object_get_string(json_object_object_get(f, "path"));
		size_t l = strlen(p), s = strlen(suffix);

		if (l >= s && !strcmp(p + l - s, suffix))
			return f;
	}
	cr_assert_fail("no manifest file ends in %s", suffix);
	return NULL;
}

char *t_case_write(const struct t_case *c, const char *dir, const char *name, const char *fmt,
		   const char *manifest_text)
{
	char *path = t_strdup_printf("%s/%s", dir, name);
	struct t_entry all[T_CASE_MAX + 1];
	const char *text = manifest_text ? manifest_text
					 : json_object_to_json_string_ext(c->m, JSON_C_TO_STRING_PRETTY);

	memset(all, 0, sizeof(all));
	all[0].name = (char *)GP_BUNDLE_MANIFEST_NAME;
	all[0].data = (char *)text;
	all[0].len = strlen(text);
	all[0].type = AE_IFREG;
	memcpy(all + 1, c->e, c->n * sizeof(c->e[0]));
	t_write_archive(path, fmt, all, c->n + 1);
	return path;
}

/* ---- expectations ------------------------------------------------------ */

void t_expect_open_fails(const char *path, int code, const char *substr)
{
	struct gp_error err = { 0 };
	struct gp_bundle *b = NULL;
	struct t_run r;
	int ret = gp_bundle_open(path, &b, &err);

	cr_assert_eq(ret, code, "gp_bundle_open: %d (%s), expected %d", ret, err.msg, code);
	cr_assert_null(b);
	cr_assert(strstr(err.msg, substr), "message '%s' lacks '%s'", err.msg, substr);
	cr_assert(strstr(err.msg, path), "message '%s' does not name the archive", err.msg);
	t_gpup(&r, "bundle verify '%s'", path);
	cr_assert_eq(r.status, gp_status_exit_code(code), "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, substr), "stderr '%s' lacks '%s'", r.err, substr);
	cr_assert(!strchr(r.err, '\n') || strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
		  "one line: %s", r.err);
	t_run_free(&r);
}

void t_expect_verify_fails(const char *path, int code, const char *substr)
{
	struct gp_error err = { 0 };
	struct gp_bundle *b = NULL;
	struct t_run r;
	int ret = gp_bundle_open(path, &b, &err);

	cr_assert_eq(ret, 0, "gp_bundle_open: %s", err.msg);
	ret = gp_bundle_verify(b, NULL, &err);
	cr_assert_eq(ret, code, "gp_bundle_verify: %d (%s), expected %d", ret, err.msg, code);
	cr_assert(strstr(err.msg, substr), "message '%s' lacks '%s'", err.msg, substr);
	cr_assert(strstr(err.msg, path), "message '%s' does not name the archive", err.msg);
	gp_bundle_close(b);
	t_gpup(&r, "bundle verify '%s'", path);
	cr_assert_eq(r.status, gp_status_exit_code(code), "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, substr), "stderr '%s' lacks '%s'", r.err, substr);
	t_run_free(&r);
}

void t_expect_stream_fails(const char *path, int code, const char *substr)
{
	struct gp_error err = { 0 };
	struct gp_bundle *b = NULL;
	struct gp_inject_stream s = { 0 };
	const struct gp_inject_set *set;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char buf[4096];
	int ret;

	cr_assert_eq(gp_bundle_open(path, &b, &err), 0, "gp_bundle_open: %s", err.msg);
	set = gp_bundle_inject_set(b);
	ret = gp_bundle_stream(b, &s, &err);
	for (size_t i = 0; ret == 0 && i < set->count; i++) {
		uint8_t sha[32];
		unsigned int n = 32;
		int64_t got;

		ret = s.ops->open(&s, &set->files[i], &err);
		if (ret)
			break;
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		while ((got = s.ops->read(&s, buf, sizeof(buf), &err)) > 0)
			EVP_DigestUpdate(md, buf, (size_t)got);
		EVP_DigestFinal_ex(md, sha, &n);
		if (got < 0) {
			ret = (int)got;
			break;
		}
		ret = s.ops->close(&s, sha, &err);
	}
	cr_assert_eq(ret, code, "stream: %d (%s), expected %d", ret, err.msg, code);
	cr_assert(strstr(err.msg, substr), "message '%s' lacks '%s'", err.msg, substr);
	if (s.ops)
		s.ops->destroy(&s);
	gp_bundle_close(b);
	EVP_MD_CTX_free(md);
}

/* ---- through the CLI, into a guest ------------------------------------- */

void t_expect_prepare_refuses(const char *path, int code, const char *substr)
{
	char *d = t_tmpdir();
	char *img = t_guest_copy(d, "--size 2G --vhdx", "g.vhdx");
	size_t len = strlen(path);
	bool zip = len > 4 && !strcmp(path + len - 4, ".zip");
	int want = gp_status_exit_code(code);
	char before[65], after[65];
	struct t_run r;

	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "prepare '%s' -n -q --bundle '%s'", img, path);
	cr_assert_eq(r.status, want, "%s: prepare -n: exit %d: %s", path, r.status, r.err);
	cr_assert(strstr(r.err, substr), "%s: prepare -n: '%s' lacks '%s'", path, r.err, substr);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "%s: prepare -n changed the image", path);

	t_gpup(&r, "prepare '%s' -q --bundle '%s'", img, path);
	cr_assert_eq(r.status, want, "%s: prepare: exit %d: %s", path, r.status, r.err);
	cr_assert(strstr(r.err, substr), "%s: prepare: '%s' lacks '%s'", path, r.err, substr);
	cr_assert_eq(t_sha256_file(img, after), 0);
	if (strcmp(before, after))
		cr_assert(!zip && strstr(r.err, "rolled back"),
			  "%s: prepare changed the image without rolling back: %s", path, r.err);
	t_run_free(&r);

	t_gpup(&r, "verify '%s' --bundle '%s'", img, path);
	cr_assert_eq(r.status, want, "%s: verify: exit %d: %s", path, r.status, r.err);
	cr_assert(strstr(r.err, substr), "%s: verify: '%s' lacks '%s'", path, r.err, substr);
	t_run_free(&r);
	t_rm_rf(d);
	free(d);
	free(img);
}

void t_expect_prepare_works(const char *path)
{
	char *d = t_tmpdir();
	char *img = t_guest_copy(d, "--size 2G --vhdx", "g.vhdx");
	struct t_run r;

	t_gpup(&r, "prepare '%s' -q --bundle '%s'", img, path);
	cr_assert_eq(r.status, 0, "%s: prepare: %s", path, r.err);
	t_run_free(&r);
	t_gpup(&r, "verify '%s' --bundle '%s'", img, path);
	cr_assert_eq(r.status, 0, "%s: verify: %s%s", path, r.out, r.err);
	t_run_free(&r);
	t_rm_rf(d);
	free(d);
	free(img);
}
