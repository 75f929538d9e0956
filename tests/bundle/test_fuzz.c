/* test_fuzz.c — deterministic mutation runs over a small valid bundle and
 * its manifest text: whatever the bytes, opening, verifying and streaming
 * return a documented code with a message, and never crash (run these under
 * `make check SANITIZE=address,undefined` for memory errors). Plus the
 * path rules' accepting side. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "bundle_priv.h"
#include "bundle_t.h"
#include "helpers.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(fuzz, .init = setup, .fini = teardown, .timeout = 120);

static bool documented(int code)
{
	return code == 0 || code == GP_ERR_CORRUPT || code == GP_ERR_MISMATCH ||
	       code == GP_ERR_UNSUPPORTED;
}

/* Open + verify + stream one mutated archive. */
static void exercise(const char *path)
{
	struct gp_error err = { 0 };
	struct gp_bundle *b;
	int ret = gp_bundle_open(path, &b, &err);

	cr_assert(documented(ret), "open: %d %s", ret, err.msg);
	if (ret) {
		cr_assert(err.msg[0] && !strchr(err.msg, '\n'));
		return;
	}
	ret = gp_bundle_verify(b, NULL, &err);
	cr_assert(documented(ret), "verify: %d %s", ret, err.msg);
	gp_error_clear(&err);
	{
		const struct gp_inject_set *set = gp_bundle_inject_set(b);
		struct gp_inject_stream s;
		char buf[8192];

		ret = gp_bundle_stream(b, &s, &err);
		for (size_t i = 0; ret == 0 && i < set->count; i++) {
			int64_t n = 0;

			ret = s.ops->open(&s, &set->files[i], &err);
			while (ret == 0 && (n = s.ops->read(&s, buf, sizeof(buf), &err)) > 0)
				;
			if (ret == 0 && n < 0)
				ret = (int)n;
			if (ret == 0)
				ret = s.ops->close(&s, NULL, &err);
		}
		cr_assert(documented(ret), "stream: %d %s", ret, err.msg);
		if (s.ops && s.ctx)
			s.ops->destroy(&s);
	}
	gp_bundle_close(b);
}

static void mutate_archive(const char *fmt, int rounds)
{
	struct t_case c;
	char *name = t_strdup_printf("base.%s", fmt);
	char *p, *q = t_strdup_printf("%s/mut.%s", dir, fmt);
	uint64_t seed = 0x5eed;
	size_t len;
	char *orig, *buf;

	t_case_base(&c);
	p = t_case_write(&c, dir, name, fmt, NULL);
	orig = t_read_file(p, &len);
	buf = malloc(len);
	for (int r = 0; r < rounds; r++) {
		memcpy(buf, orig, len);
		/* 1-8 random bytes changed, sometimes a truncation. */
		for (uint64_t k = 0, n = 1 + t_rand(&seed) % 8; k < n; k++)
			buf[t_rand(&seed) % len] = (char)t_rand(&seed);
		cr_assert_eq(t_write_file(q, buf, (r % 7 == 6) ? t_rand(&seed) % len : len), 0);
		exercise(q);
	}
	free(buf);
	free(orig);
	free(p);
	free(q);
	free(name);
	t_case_free(&c);
}

Test(fuzz, mutated_tar) { mutate_archive("tar", 400); }
Test(fuzz, mutated_zip) { mutate_archive("zip", 400); }
Test(fuzz, mutated_tar_zst) { mutate_archive("tar.zst", 200); }

Test(fuzz, mutated_manifest_text)
{
	struct t_case c;
	const char *text;
	size_t len;
	char *buf;
	uint64_t seed = 7;
	int ok = 0;

	t_case_base(&c);
	text = json_object_to_json_string_ext(c.m, JSON_C_TO_STRING_PRETTY);
	len = strlen(text);
	buf = malloc(len);
	for (int r = 0; r < 3000; r++) {
		struct gp_bundle_manifest *m = NULL;
		struct gp_error err = { 0 };
		int ret;

		memcpy(buf, text, len);
		for (uint64_t k = 0, n = 1 + t_rand(&seed) % 3; k < n; k++) {
			/* Printable changes reach deeper than random binary. */
			static const char alphabet[] = "0123456789-.\"{}[],:\\/aAzZ \tu";

			buf[t_rand(&seed) % len] = alphabet[t_rand(&seed) % (sizeof(alphabet) - 1)];
		}
		ret = gp_bundle_manifest_parse(buf, len, 1 << 20, "fuzz", &m, &err);
		cr_assert(documented(ret), "%d %s", ret, err.msg);
		cr_assert_eq(ret == 0, m != NULL);
		ok += ret == 0;
		gp_bundle_manifest_free(m);
	}
	/* Some mutations land in values that stay valid (a hash digit). */
	cr_assert_gt(ok, 0);
	free(buf);
	t_case_free(&c);
}

Test(fuzz, path_rules_accept_what_they_should)
{
	static const char *const good[] = {
		"Windows/System32/HostDriverStore/FileRepository/a.inf_amd64_1/x.dll",
		"Windows/System32/HostDriverStore/FileRepository/a.inf_amd64_1/sub/dir/x y.dll",
		"Windows/System32/HostDriverStore/FileRepository/a.inf_amd64_1/.hidden",
		"Windows/System32/HostDriverStore/FileRepository/a.inf_amd64_1/CONSOLE.dll",
		"Windows/System32/nvapi64.dll",
		"Windows/SysWOW64/nvapi.dll",
	};
	enum gp_bundle_path_kind kind;
	const char *why = NULL, *folder;
	size_t flen;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(gp_bundle_path_check(good[i], &kind, &folder, &flen, &why), 0, "%s: %s",
			     good[i], why);
	cr_assert_eq(gp_bundle_path_check(good[1], &kind, &folder, &flen, &why), 0);
	cr_assert_eq(kind, GP_BUNDLE_PATH_PACKAGE);
	cr_assert(flen == strlen("a.inf_amd64_1") && !strncmp(folder, "a.inf_amd64_1", flen));
	cr_assert_eq(gp_bundle_path_check(good[4], &kind, NULL, NULL, &why), 0);
	cr_assert_eq(kind, GP_BUNDLE_PATH_COMPANION);
	cr_assert_eq(gp_bundle_path_check("Windows/System32/COM1", &kind, NULL, NULL, &why), -1);
	cr_assert_eq(gp_bundle_path_check("Windows/System32/lpt9.txt", &kind, NULL, NULL, &why), -1);
}
