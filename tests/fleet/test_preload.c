/*
 * test_preload.c — gp_source_preload(): a bundle's files read once into
 * memory serve every later stream without the archive (prepare IMAGE...
 * decompresses and hashes the package once per guest build), a tampered
 * bundle fails the preload naming the file, and a multi-image prepare from
 * a bundle leaves images that `gpup verify` (libvhdi) finds complete.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_t.h"
#include "source.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(preload, .init = setup, .fini = teardown, .timeout = 300);

static char *make_bundle(const char *name)
{
	char *st = t_fixture("mkstore.sh", "");
	char *b = t_strdup_printf("%s/%s", dir, name);
	struct t_run r;

	t_gpup(&r, "bundle create --driverstore '%s' --gpu '" FT_NV_GPU "' -q -o '%s'", st, b);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	free(st);
	return b;
}

static int open_source(const char *bundle, struct gp_source **src, struct gp_error *err)
{
	struct gp_source_opts o = { .bundle = bundle, .target = { "amd64", 22631 } };

	return gp_source_open(&o, src, err);
}

/* Stream every file of @src's set and compare its SHA-256 with the
 * manifest's. Returns the bytes read. */
static uint64_t stream_all(struct gp_source *src)
{
	const struct gp_inject_set *set = gp_source_set(src);
	struct gp_inject_stream st = { 0 };
	struct gp_error err = { 0 };
	static char buf[1 << 16];
	uint64_t total = 0;

	cr_assert_eq(gp_source_stream(src, &st, &err), 0, "%s", err.msg);
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		uint8_t got[32];
		int64_t n;

		cr_assert(f->has_sha256);
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		cr_assert_eq(st.ops->open(&st, f, &err), 0, "%s", err.msg);
		while ((n = st.ops->read(&st, buf, sizeof(buf), &err)) > 0) {
			EVP_DigestUpdate(md, buf, (size_t)n);
			total += (uint64_t)n;
		}
		cr_assert_eq(n, 0, "%s", err.msg);
		cr_assert_eq(st.ops->close(&st, NULL, &err), 0, "%s", err.msg);
		EVP_DigestFinal_ex(md, got, NULL);
		EVP_MD_CTX_free(md);
		cr_assert(memcmp(got, f->sha256, 32) == 0, "%s: other bytes than the manifest's",
			  f->guest_path);
	}
	st.ops->destroy(&st);
	return total;
}

Test(preload, serves_every_stream_without_the_archive)
{
	char *b = make_bundle("nv.tar.zst");
	struct gp_error err = { 0 };
	struct gp_source *src;
	bool loaded = false;
	struct t_run r;

	cr_assert_eq(open_source(b, &src, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_source_preload(src, 1ULL << 30, &loaded, &err), 0, "%s", err.msg);
	cr_assert(loaded);
	/* The archive is gone: only the preloaded bytes can answer now. */
	t_run(&r, "truncate -s 0 '%s'", b);
	cr_assert_eq(r.status, 0);
	t_run_free(&r);
	cr_assert_eq(stream_all(src), gp_source_set(src)->total_bytes);
	cr_assert_eq(stream_all(src), gp_source_set(src)->total_bytes, "a second stream, the same");
	gp_source_close(src);

	/* Over the limit: left as it is, streamed from the archive. */
	free(b);
	b = make_bundle("nv2.tar.zst");
	cr_assert_eq(open_source(b, &src, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_source_preload(src, 1000, &loaded, &err), 0, "%s", err.msg);
	cr_assert_not(loaded);
	cr_assert_eq(stream_all(src), gp_source_set(src)->total_bytes);
	gp_source_close(src);
	free(b);
}

Test(preload, tampered_bundle_fails_naming_the_file)
{
	char *good = make_bundle("nv.tar.gz");
	char *bad = t_strdup_printf("%s/bad.tar.gz", dir);
	struct gp_error err = { 0 };
	struct gp_source *src;
	bool loaded = true;

	t_tamper_bundle(good, bad);
	cr_assert_eq(open_source(bad, &src, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_source_preload(src, 1ULL << 30, &loaded, &err), GP_ERR_MISMATCH);
	cr_assert_not(loaded);
	cr_assert(strstr(err.msg, "nvlddmkm.sys"), "%s", err.msg);
	gp_source_close(src);
	free(good);
	free(bad);
}

Test(preload, images_prepared_from_one_bundle_verify)
{
	char *b = make_bundle("nv.tar.zst");
	char *st = t_fixture("mkstore.sh", "");
	char *img[3];
	struct t_run r;

	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "g%d.vhdx", i);
		img[i] = t_guest_copy(dir, "--size 2G --vhdx", name);
	}
	t_gpup(&r, "prepare '%s' '%s' '%s' --bundle '%s' -j 2 -q", img[0], img[1], img[2], b);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	t_run_free(&r);
	for (int i = 0; i < 3; i++) {
		t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" FT_NV_GPU "'", img[i], st);
		cr_assert_eq(r.status, 0, "%s: %s%s", img[i], r.out, r.err);
		t_run_free(&r);
		free(img[i]);
	}
	free(st);
	free(b);
}
