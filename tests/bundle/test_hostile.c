/* test_hostile.c — bundles are untrusted input: every kind of hostile or
 * broken archive is built here (libarchive) from a small valid bundle and
 * must be rejected by gp_bundle_open(), gp_bundle_verify() / `gpup bundle
 * verify`, or the stream, with a one-line message naming the archive and
 * the entry — never a crash. */
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle_t.h"
#include "helpers.h"

#define PKG "Windows/System32/HostDriverStore/FileRepository/gpu.inf_amd64_0123456789abcdef"

static char *dir;
static struct t_case c;

static void setup(void)
{
	dir = t_tmpdir();
	t_case_base(&c);
}

static void teardown(void)
{
	t_case_free(&c);
	t_rm_rf(dir);
	free(dir);
}

TestSuite(hostile, .init = setup, .fini = teardown);

static void set_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

static int path_cmp(const void *a, const void *b)
{
	const struct json_object *const *x = a, *const *y = b;

	return strcmp(json_object_get_string(json_object_object_get(*x, "path")),
		      json_object_get_string(json_object_object_get(*y, "path")));
}

static void sort_manifest(void)
{
	json_object_array_sort(json_object_object_get(c.m, "files"), path_cmp);
}

/* Positive control: the untouched case opens, verifies and streams in every
 * format, so each failure below is caused by its mutation alone. */
Test(hostile, base_case_is_valid_in_every_format)
{
	static const char *const fmts[] = { "tar", "tar.gz", "tar.zst", "zip" };

	for (size_t i = 0; i < 4; i++) {
		char *name = t_strdup_printf("base.%s", fmts[i]);
		char *p = t_case_write(&c, dir, name, fmts[i], NULL);
		struct gp_error err = { 0 };
		struct gp_bundle *b;
		struct t_run r;

		cr_assert_eq(gp_bundle_open(p, &b, &err), 0, "%s: %s", fmts[i], err.msg);
		cr_assert_eq(gp_bundle_inject_set(b)->count, 5);
		cr_assert_eq(gp_bundle_verify(b, NULL, &err), 0, "%s: %s", fmts[i], err.msg);
		gp_bundle_close(b);
		cr_assert_eq(t_gpup(&r, "bundle verify '%s'", p), 0, "%s", r.err);
		t_run_free(&r);
		t_expect_prepare_works(p);
		free(name);
		free(p);
	}
}

/* ---- the manifest ------------------------------------------------------ */

Test(hostile, empty_archive)
{
	char *p = t_strdup_printf("%s/empty.tar", dir);

	t_write_archive(p, "tar", NULL, 0);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "no gpup-bundle.json");
	free(p);
}

Test(hostile, not_an_archive)
{
	char *p = t_strdup_printf("%s/random.tar.zst", dir);
	char junk[4096];
	uint64_t seed = 42;

	t_fill_random(junk, sizeof(junk), &seed);
	cr_assert_eq(t_write_file(p, junk, sizeof(junk)), 0);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "random.tar.zst");
	free(p);
}

Test(hostile, manifest_not_first)
{
	struct t_entry all[8];
	const char *text = json_object_to_json_string(c.m);
	char *p = t_strdup_printf("%s/late.tar", dir);

	memcpy(all, c.e, c.n * sizeof(c.e[0]));
	all[c.n] = (struct t_entry){ .name = (char *)GP_BUNDLE_MANIFEST_NAME, .data = (char *)text,
				     .len = strlen(text), .type = AE_IFREG };
	t_write_archive(p, "tar", all, c.n + 1);
	{
		char *want = t_strdup_printf("first entry '%s' is not gpup-bundle.json", c.e[0].name);

		t_expect_open_fails(p, GP_ERR_CORRUPT, want);
		free(want);
	}
	free(p);
}

Test(hostile, manifest_missing)
{
	char *p = t_strdup_printf("%s/none.zip", dir);

	t_write_archive(p, "zip", c.e, c.n);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "is not gpup-bundle.json");
	free(p);
}

Test(hostile, manifest_is_a_symlink)
{
	struct t_entry e = { .name = (char *)GP_BUNDLE_MANIFEST_NAME, .type = AE_IFLNK,
			     .link = (char *)"/etc/passwd" };
	char *p = t_strdup_printf("%s/link.tar", dir);

	t_write_archive(p, "tar", &e, 1);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "not a regular file");
	free(p);
}

Test(hostile, manifest_bad_json)
{
	char *p = t_case_write(&c, dir, "bad.tar.gz", "tar.gz", "{ \"format\": \"gpup-bundle\", ");
	char *q = t_case_write(&c, dir, "trail.tar", "tar",
			       "{ \"format\": \"gpup-bundle\" } { }");
	char *deep = malloc(20001);

	t_expect_open_fails(p, GP_ERR_CORRUPT, "not valid JSON");
	/* json-c's strict mode already refuses a second value. */
	t_expect_open_fails(q, GP_ERR_CORRUPT, "not valid JSON");
	free(p);
	/* Nesting bombs stop at the tokenizer's depth limit. */
	memset(deep, '[', 20000);
	deep[20000] = '\0';
	p = t_case_write(&c, dir, "deep.tar", "tar", deep);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "not valid JSON");
	free(p);
	free(q);
	free(deep);
}

Test(hostile, manifest_wrong_types)
{
	char *p;

	json_object_object_add(t_case_mfile(&c, "gpu.sys"), "size", json_object_new_string("70000"));
	p = t_case_write(&c, dir, "types.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "size: not an integer");
	free(p);
	json_object_object_add(t_case_mfile(&c, "gpu.sys"), "size", json_object_new_double(70000.5));
	p = t_case_write(&c, dir, "types2.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "size: not an integer");
	free(p);
	json_object_object_add(c.m, "files", json_object_new_object());
	p = t_case_write(&c, dir, "types3.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "files: not an array");
	free(p);
	json_object_object_del(c.m, "files");
	p = t_case_write(&c, dir, "types4.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "files: missing");
	free(p);
}

Test(hostile, manifest_bad_strings)
{
	char *p;

	set_str(t_case_mfile(&c, "gpu.sys"), "sha256", "abcd");
	p = t_case_write(&c, dir, "sha.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "sha256 is not 64 hex digits");
	free(p);
	set_str(t_case_mfile(&c, "gpu.sys"), "sha256",
		"ZZ00000000000000000000000000000000000000000000000000000000000000");
	p = t_case_write(&c, dir, "sha2.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "lower-case hex");
	free(p);
	p = t_case_write(&c, dir, "nul.tar", "tar",
			 "{ \"format\": \"gpup\\u0000-bundle\", \"format_version\": 1 }");
	t_expect_open_fails(p, GP_ERR_CORRUPT, "NUL character");
	free(p);
}

Test(hostile, unknown_format_version)
{
	char *p;

	json_object_object_add(c.m, "format_version", json_object_new_int(3));
	p = t_case_write(&c, dir, "v3.tar.zst", "tar.zst", NULL);
	t_expect_open_fails(p, GP_ERR_UNSUPPORTED, "format version 3 is not supported");
	free(p);
}

Test(hostile, absurd_sizes)
{
	struct json_object *f = t_case_mfile(&c, "gpu.sys");
	char *p;

	/* 2 TiB for one file. */
	json_object_object_add(f, "size", json_object_new_int64(INT64_C(2) << 40));
	p = t_case_write(&c, dir, "huge.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "size: out of range");
	free(p);
	/* Within the per-file limit, but no few-KiB archive holds 512 GiB. */
	json_object_object_add(f, "size", json_object_new_int64(INT64_C(1) << 39));
	json_object_object_add(c.m, "total_bytes", json_object_new_int64((INT64_C(1) << 39) + 401));
	p = t_case_write(&c, dir, "bomb.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "implausibly large");
	free(p);
	/* Counts. */
	json_object_object_add(c.m, "file_count", json_object_new_int64(2000000));
	p = t_case_write(&c, dir, "count.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "file_count: out of range");
	free(p);
	/* A total that disagrees with the files. */
	json_object_object_add(f, "size", json_object_new_int64(70000));
	json_object_object_add(c.m, "file_count", json_object_new_int64(5));
	json_object_object_add(c.m, "total_bytes", json_object_new_int64(5));
	p = t_case_write(&c, dir, "sum.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "differs from the sum");
	free(p);
}

/* Unsafe paths in the manifest, each with the reason given. */
Test(hostile, manifest_unsafe_paths)
{
	static const struct {
		const char *path, *why;
	} cases[] = {
		{ PKG "/../../../../../etc/passwd", "'.' or '..' component" },
		{ PKG "/./gpu.sys", "'.' or '..' component" },
		{ "/Windows/System32/evil.dll", "absolute path" },
		{ "C:/Windows/System32/evil.dll", "drive letter" },
		{ "Windows\\System32\\evil.dll", "backslash" },
		{ "Windows/System32//evil.dll", "empty path component" },
		{ "Windows/System32/evil.dll/", "empty path component" },
		{ "Windows/System32/evil.dll:stream", "':' in path" },
		{ "Windows/System32/evil.dll.", "ends in '.' or ' '" },
		/* Win32 strips a trailing space as it strips a trailing dot. */
		{ "Windows/System32/evil.dll ", "ends in '.' or ' '" },
		{ "Windows/System32/NUL.dll", "reserved DOS device name" },
		{ "Windows/System32/nul.dll", "reserved DOS device name" },
		{ "Windows/System32/com1.dll", "reserved DOS device name" },
		{ "Windows/System32/caf\xc3\xa9.dll", "non-ASCII" },
		{ "Windows/System32/a\tb.dll", "control character" },
		{ "Windows/System32/a?b.dll", "Windows forbids" },
		{ "Windows/Temp/evil.dll", "outside HostDriverStore" },
		{ "Windows/System32/drivers/evil.sys", "outside HostDriverStore" },
		{ "Windows/System32/HostDriverStore/FileRepository/x.dll", "outside HostDriverStore" },
		{ "Windows/System32/hostdriverstore", "HostDriverStore directory" },
		{ "gpup-bundle.json", "outside HostDriverStore" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *name = t_strdup_printf("path%zu.tar", i);
		char *p;

		set_str(t_case_mfile(&c, "System32/gpu32.dll"), "path", cases[i].path);
		p = t_case_write(&c, dir, name, "tar", NULL);
		t_expect_open_fails(p, GP_ERR_CORRUPT, cases[i].why);
		set_str(t_case_mfile(&c, cases[i].path), "path", "Windows/System32/gpu32.dll");
		free(p);
		free(name);
	}
}

Test(hostile, manifest_duplicates_and_order)
{
	char *p;

	/* Differs only in case from another file: one file on NTFS. */
	set_str(t_case_mfile(&c, "sub/x.dll"), "path", PKG "/GPU.SYS");
	sort_manifest();
	p = t_case_write(&c, dir, "case.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "collides with");
	free(p);
	/* A file that is also a directory of another. */
	set_str(t_case_mfile(&c, "GPU.SYS"), "path", PKG "/gpu.sys/inner.dll");
	sort_manifest();
	p = t_case_write(&c, dir, "dir.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "collides with");
	free(p);
	/* The same path twice. */
	set_str(t_case_mfile(&c, "gpu.sys/inner.dll"), "path", PKG "/gpu.sys");
	p = t_case_write(&c, dir, "dup.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "duplicate path");
	free(p);
	/* Not sorted. */
	set_str(t_case_mfile(&c, "gpu.inf"), "path", PKG "/zzz.inf");
	p = t_case_write(&c, dir, "order.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "not sorted");
	free(p);
}

Test(hostile, manifest_role_and_folders)
{
	char *p;

	set_str(t_case_mfile(&c, "System32/gpu32.dll"), "role", "package");
	p = t_case_write(&c, dir, "role.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "does not match its path");
	free(p);
	set_str(t_case_mfile(&c, "System32/gpu32.dll"), "role", "companion");
	set_str(t_case_mfile(&c, "System32/gpu32.dll"), "role", "wizard");
	p = t_case_write(&c, dir, "role2.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "unknown role");
	free(p);
	set_str(t_case_mfile(&c, "System32/gpu32.dll"), "role", "companion");
	/* A package file outside the package's folder. */
	set_str(t_case_mfile(&c, "sub/x.dll"), "path",
		"Windows/System32/HostDriverStore/FileRepository/other.inf_amd64_1/x.dll");
	sort_manifest();
	p = t_case_write(&c, dir, "folder.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "does not match its path");
	free(p);
	set_str(json_object_object_get(c.m, "package"), "folder", "../evil");
	p = t_case_write(&c, dir, "pkgfolder.tar", "tar", NULL);
	t_expect_open_fails(p, GP_ERR_CORRUPT, "package folder");
	free(p);
}

/* ---- the entries ------------------------------------------------------- */

/* Replace entry @i by a special file of the same name. */
static void make_special(size_t i, unsigned type, const char *link, bool hard)
{
	free(c.e[i].data);
	c.e[i].data = NULL;
	c.e[i].len = 0;
	c.e[i].type = type;
	c.e[i].link = link ? strdup(link) : NULL;
	c.e[i].hardlink = hard;
}

Test(hostile, symlink_entry)
{
	char *p, *z;

	make_special(t_case_find(&c, "gpu.sys"), AE_IFLNK, "/etc/shadow", false);
	p = t_case_write(&c, dir, "symlink.tar.gz", "tar.gz", NULL);
	z = t_case_write(&c, dir, "symlink.zip", "zip", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "entry '" PKG "/gpu.sys': a symbolic link");
	t_expect_stream_fails(p, GP_ERR_CORRUPT, "a symbolic link");
	t_expect_verify_fails(z, GP_ERR_CORRUPT, "a symbolic link");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "a symbolic link");
	t_expect_prepare_refuses(z, GP_ERR_CORRUPT, "a symbolic link");
	free(p);
	free(z);
}

Test(hostile, hardlink_entry)
{
	char *p;

	make_special(t_case_find(&c, "gpu.sys"), AE_IFREG, PKG "/gpu.inf", true);
	p = t_case_write(&c, dir, "hardlink.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "a hard link");
	t_expect_stream_fails(p, GP_ERR_CORRUPT, "a hard link");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "a hard link");
	free(p);
}

Test(hostile, device_fifo_and_directory_entries)
{
	size_t i = t_case_find(&c, "gpu.sys");
	char *p;

	make_special(i, AE_IFCHR, NULL, false);
	p = t_case_write(&c, dir, "dev.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "a device, FIFO or socket");
	free(p);
	c.e[i].type = AE_IFIFO;
	p = t_case_write(&c, dir, "fifo.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "a device, FIFO or socket");
	t_expect_stream_fails(p, GP_ERR_CORRUPT, "a device, FIFO or socket");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "a device, FIFO or socket");
	free(p);
	c.e[i].type = AE_IFDIR;
	p = t_case_write(&c, dir, "dir.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, PKG "/gpu.sys");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, PKG "/gpu.sys");
	free(p);
}

Test(hostile, entry_not_in_manifest)
{
	size_t i = t_case_find(&c, "gpu.sys");
	char *p;

	free(c.e[i].name);
	c.e[i].name = strdup(PKG "/evil.sys");
	p = t_case_write(&c, dir, "extra.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "entry '" PKG "/evil.sys': not in the manifest");
	t_expect_stream_fails(p, GP_ERR_CORRUPT, "not in the manifest");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "not in the manifest");
	free(p);
	free(c.e[i].name);
	c.e[i].name = strdup(PKG "/GPU.sys");
	p = t_case_write(&c, dir, "case.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "differs only in case");
	free(p);
}

Test(hostile, entry_unsafe_paths)
{
	static const struct {
		const char *name, *why;
	} cases[] = {
		{ "/etc/cron.d/evil", "absolute path" },
		{ "Windows/System32/../../../etc/evil", "'..' component" },
		{ "Windows\\System32\\evil.dll", "backslash" },
		{ "C:/Windows/System32/evil.dll", "drive letter" },
		{ "Windows/System32//evil.dll", "empty path component" },
		/* Archive entry names skip the manifest's string checks: the path
		 * rules alone refuse these. */
		{ "Windows/System32/a\tb.dll", "control character in path" },
		{ "Windows/System32/evil.dll ", "ends in '.' or ' '" },
		{ "Windows/System32/nul.dll", "reserved DOS device name" },
	};
	size_t i = t_case_find(&c, "gpu.sys");

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char *name = t_strdup_printf("unsafe%zu.tar", k);
		char *p;

		free(c.e[i].name);
		c.e[i].name = strdup(cases[k].name);
		p = t_case_write(&c, dir, name, "tar", NULL);
		t_expect_verify_fails(p, GP_ERR_CORRUPT, cases[k].why);
		t_expect_stream_fails(p, GP_ERR_CORRUPT, "unsafe path");
		if (k == 1)
			t_expect_prepare_refuses(p, GP_ERR_CORRUPT, cases[k].why);
		free(p);
		free(name);
	}
}

Test(hostile, duplicate_and_second_manifest_entries)
{
	char *p;

	/* gpu.sys again right after itself. */
	memmove(&c.e[2], &c.e[1], (c.n - 1) * sizeof(c.e[0]));
	c.n++;
	c.e[2].name = strdup(c.e[1].name);
	c.e[2].data = malloc(c.e[1].len);
	memcpy(c.e[2].data, c.e[1].data, c.e[1].len);
	p = t_case_write(&c, dir, "dup.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "duplicate or out of manifest order");
	t_expect_stream_fails(p, GP_ERR_CORRUPT, "duplicate");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "duplicate or out of manifest order");
	free(p);
	free(c.e[2].name);
	c.e[2].name = strdup(GP_BUNDLE_MANIFEST_NAME);
	p = t_case_write(&c, dir, "second.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "a second manifest");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "a second manifest");
	free(p);
}

Test(hostile, missing_and_reordered_entries)
{
	struct t_entry tmp;
	char *p;

	/* Swap the first two files. */
	tmp = c.e[0];
	c.e[0] = c.e[1];
	c.e[1] = tmp;
	p = t_case_write(&c, dir, "swap.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "is missing from the archive");
	t_expect_stream_fails(p, GP_ERR_CORRUPT, "is missing from the archive");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "is missing from the archive");
	free(p);
	/* Drop the last one. */
	tmp = c.e[0];
	c.e[0] = c.e[1];
	c.e[1] = tmp;
	c.n--;
	p = t_case_write(&c, dir, "short.tar", "tar", NULL);
	c.n++;
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "missing from the archive (truncated?)");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "missing from the archive (truncated?)");
	free(p);
}

Test(hostile, trailing_entry)
{
	char *p;

	c.e[c.n].name = strdup("Windows/System32/zz_extra.dll");
	c.e[c.n].data = strdup("x");
	c.e[c.n].len = 1;
	c.n++;
	p = t_case_write(&c, dir, "trail.tar", "tar", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "zz_extra.dll': not in the manifest");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "zz_extra.dll': not in the manifest");
	free(p);
	/* And a duplicate after the last file, in a zip's central directory. */
	free(c.e[c.n - 1].name);
	c.e[c.n - 1].name = strdup(PKG "/gpu.sys");
	p = t_case_write(&c, dir, "trail.zip", "zip", NULL);
	t_expect_verify_fails(p, GP_ERR_CORRUPT, "gpu.sys': duplicate");
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT, "gpu.sys': duplicate");
	free(p);
}

Test(hostile, size_and_hash_mismatch)
{
	size_t i = t_case_find(&c, "gpu.sys");
	char *p;

	c.e[i].data[1234] ^= 0x40;
	p = t_case_write(&c, dir, "flip.tar.zst", "tar.zst", NULL);
	t_expect_verify_fails(p, GP_ERR_MISMATCH, "file '" PKG "/gpu.sys': content SHA-256");
	t_expect_stream_fails(p, GP_ERR_MISMATCH, PKG "/gpu.sys");
	free(p);
	c.e[i].data[1234] ^= 0x40;
	c.e[i].len -= 10;
	p = t_case_write(&c, dir, "short.zip", "zip", NULL);
	t_expect_verify_fails(p, GP_ERR_MISMATCH,
			      "file '" PKG "/gpu.sys': 69990 bytes in the archive, the manifest says 70000");
	t_expect_stream_fails(p, GP_ERR_MISMATCH, "the manifest says 70000");
	t_expect_prepare_refuses(p, GP_ERR_MISMATCH, "the manifest says 70000");
	free(p);
}

Test(hostile, truncated_archive)
{
	char *p = t_case_write(&c, dir, "full.tar", "tar", NULL);
	char *q = t_strdup_printf("%s/cut.tar", dir);
	size_t len;
	char *data = t_read_file(p, &len);

	/* Cut in the middle of gpu.sys's data. */
	cr_assert_eq(t_write_file(q, data, 12000), 0);
	t_expect_verify_fails(q, GP_ERR_CORRUPT, "cut.tar");
	t_expect_stream_fails(q, GP_ERR_CORRUPT, "cut.tar");
	t_expect_prepare_refuses(q, GP_ERR_CORRUPT, "cut.tar");
	free(data);
	free(p);
	free(q);
}

Test(hostile, corrupt_compressed_data)
{
	char *p = t_case_write(&c, dir, "full.tar.gz", "tar.gz", NULL);
	size_t len;
	char *data = t_read_file(p, &len);
	struct t_run r;

	/* A flipped bit in deflate data: libarchive reports a broken stream,
	 * or the bytes come out different (exit 4); never a crash, always a
	 * message naming the archive. */
	data[len / 2] ^= 0x10;
	cr_assert_eq(t_write_file(p, data, len), 0);
	t_gpup(&r, "bundle verify '%s'", p);
	cr_assert(r.status == 1 || r.status == 4, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "full.tar.gz"), "%s", r.err);
	t_run_free(&r);
	free(data);
	free(p);
}

/* A companion must be a file the package's INF copies: a manifest naming
 * System32's ntoskrnl.exe is refused before the archive is read on. */
Test(hostile, companion_the_inf_does_not_copy)
{
	struct json_object *f = json_object_new_object();
	struct json_object *files = json_object_object_get(c.m, "files");
	char hex[65];
	char *p;

	c.e[c.n].name = strdup("Windows/System32/ntoskrnl.exe");
	c.e[c.n].data = strdup("not a kernel");
	c.e[c.n].len = strlen(c.e[c.n].data);
	c.e[c.n].type = AE_IFREG;
	t_sha256_buf(c.e[c.n].data, c.e[c.n].len, hex);
	c.n++;
	set_str(f, "path", "Windows/System32/ntoskrnl.exe");
	json_object_object_add(f, "size", json_object_new_int64(12));
	set_str(f, "sha256", hex);
	json_object_object_add(f, "mtime", json_object_new_int64(1710936000));
	set_str(f, "role", "companion");
	set_str(f, "origin", "CopyFiles kernel");
	json_object_array_add(files, f);
	json_object_object_add(c.m, "file_count", json_object_new_int64((int64_t)c.n));
	json_object_object_add(c.m, "total_bytes",
			       json_object_new_int64(json_object_get_int64(
				       json_object_object_get(c.m, "total_bytes")) + 12));
	sort_manifest();
	p = t_case_write(&c, dir, "kernel.tar", "tar", NULL);
	/* A well-formed archive: only the INF says no. */
	t_expect_prepare_refuses(p, GP_ERR_CORRUPT,
				 "companion 'Windows/System32/ntoskrnl.exe' is no file that gpu.inf copies");
	free(p);
}

/* A format 1 bundle fixed its files for one Windows build when it was
 * made: still readable, but not injected. */
Test(hostile, format_1_is_not_injected)
{
	char *p;

	json_object_object_add(c.m, "format_version", json_object_new_int(1));
	p = t_case_write(&c, dir, "v1.tar", "tar", NULL);
	t_expect_prepare_refuses(p, GP_ERR_UNSUPPORTED, "made by an older gpup");
	free(p);
}

/* The stream only moves forward and only serves manifest files. */
Test(hostile, stream_misuse)
{
	char *p = t_case_write(&c, dir, "ok.tar", "tar", NULL);
	struct gp_error err = { 0 };
	struct gp_inject_stream s;
	struct gp_inject_file fake = { .guest_path = (char *)"Windows/System32/nothere.dll" };
	const struct gp_inject_set *set;
	struct gp_bundle *b;

	cr_assert_eq(gp_bundle_open(p, &b, &err), 0, "%s", err.msg);
	set = gp_bundle_inject_set(b);
	cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
	cr_assert_eq(s.ops->open(&s, &fake, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "not in the bundle"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(s.ops->open(&s, &set->files[2], &err), 0, "%s", err.msg);
	cr_assert_eq(s.ops->close(&s, NULL, &err), GP_ERR_MISMATCH, "closing unread");
	gp_error_clear(&err);
	cr_assert_eq(s.ops->open(&s, &set->files[1], &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "forward only"), "%s", err.msg);
	s.ops->destroy(&s);
	gp_bundle_close(b);
	free(p);
}
