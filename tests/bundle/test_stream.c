/* test_stream.c — the bundle stream (drivers/bundle.c, "Streaming") with a
 * file many times bigger than its read blocks (1 MiB) and than the
 * injector's chunks, read in odd sizes: every byte arrives exactly once, a
 * mismatch found at the end of a big file names the file, giving up on a
 * file half-way leaves the stream usable for later ones, and destroying a
 * stream in the middle of a file releases it. (These were written for a
 * decoder thread that was measured and left out; they hold for any
 * stream implementation — see bench/RESULTS.md, profile item 2.) */
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bundle_t.h"
#include "helpers.h"

#define PKG "Windows/System32/HostDriverStore/FileRepository/gpu.inf_amd64_0123456789abcdef"
/* Many read blocks, and not a multiple of one. */
#define BIG (18u * 1024 * 1024 + 12345)

static char *dir;
static struct t_case c;

/* gpu.sys becomes BIG random bytes; the manifest follows (size, hash,
 * total). */
static void setup(void)
{
	size_t i;
	struct json_object *mf;
	char hex[65];
	uint64_t seed = 77, total = 0;

	dir = t_tmpdir();
	t_case_base(&c);
	i = t_case_find(&c, "gpu.sys");
	free(c.e[i].data);
	c.e[i].data = malloc(BIG);
	cr_assert_not_null(c.e[i].data);
	c.e[i].len = BIG;
	t_fill_random(c.e[i].data, BIG, &seed);
	mf = t_case_mfile(&c, "gpu.sys");
	t_sha256_buf(c.e[i].data, BIG, hex);
	json_object_object_add(mf, "size", json_object_new_int64(BIG));
	json_object_object_add(mf, "sha256", json_object_new_string(hex));
	for (size_t k = 0; k < c.n; k++)
		total += c.e[k].len;
	json_object_object_add(c.m, "total_bytes", json_object_new_int64((int64_t)total));
}

static void teardown(void)
{
	t_case_free(&c);
	t_rm_rf(dir);
	free(dir);
}

TestSuite(stream, .init = setup, .fini = teardown, .timeout = 60);

/* Give a read-ahead implementation time to run ahead. */
static void pause_briefly(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

/* Read the open file to its end with reads of @chunk bytes; returns the
 * final read's result (0 or an error) and the digest of what came. */
static int64_t read_all(struct gp_inject_stream *s, size_t chunk, uint8_t sha[32],
			uint64_t *bytes, struct gp_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char *buf = malloc(chunk);
	unsigned int n = 32;
	int64_t got;

	cr_assert(md && buf);
	*bytes = 0;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while ((got = s->ops->read(s, buf, chunk, err)) > 0) {
		EVP_DigestUpdate(md, buf, (size_t)got);
		*bytes += (uint64_t)got;
	}
	EVP_DigestFinal_ex(md, sha, &n);
	EVP_MD_CTX_free(md);
	free(buf);
	return got;
}

/* Positive control: the big case streams in every format and in odd read
 * sizes, delivering exactly the manifest's bytes. */
Test(stream, big_file_streams_exactly)
{
	static const char *const fmts[] = { "tar", "tar.zst", "zip" };
	static const size_t chunks[] = { 4096, 1000003, 3u << 20 };

	for (size_t k = 0; k < 3; k++) {
		char *name = t_strdup_printf("big.%s", fmts[k]);
		char *p = t_case_write(&c, dir, name, fmts[k], NULL);
		struct gp_error err = { 0 };
		struct gp_inject_stream s;
		const struct gp_inject_set *set;
		struct gp_bundle *b;

		cr_assert_eq(gp_bundle_open(p, &b, &err), 0, "%s", err.msg);
		set = gp_bundle_inject_set(b);
		cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
		for (size_t i = 0; i < set->count; i++) {
			uint8_t sha[32];
			uint64_t bytes;

			cr_assert_eq(s.ops->open(&s, &set->files[i], &err), 0, "%s", err.msg);
			cr_assert_eq(read_all(&s, chunks[k], sha, &bytes, &err), 0, "%s", err.msg);
			cr_assert_eq(bytes, set->files[i].size, "%s", set->files[i].guest_path);
			cr_assert_eq(memcmp(sha, set->files[i].sha256, 32), 0, "%s",
				     set->files[i].guest_path);
			cr_assert_eq(s.ops->close(&s, sha, &err), 0, "%s", err.msg);
		}
		s.ops->destroy(&s);
		gp_bundle_close(b);
		free(p);
		free(name);
	}
}

/* A flipped byte near the end of the big file: GP_ERR_MISMATCH naming the
 * file (at close, after every byte was handed out), in every format. */
Test(stream, late_flip_in_big_file_names_it)
{
	static const char *const fmts[] = { "tar", "tar.zst", "zip" };
	size_t i = t_case_find(&c, "gpu.sys");

	c.e[i].data[BIG - 7] ^= 0x01;
	for (size_t k = 0; k < 3; k++) {
		char *name = t_strdup_printf("flip.%s", fmts[k]);
		char *p = t_case_write(&c, dir, name, fmts[k], NULL);

		t_expect_stream_fails(p, GP_ERR_MISMATCH, "file '" PKG "/gpu.sys': content SHA-256");
		t_expect_verify_fails(p, GP_ERR_MISMATCH, "file '" PKG "/gpu.sys': content SHA-256");
		free(p);
		free(name);
	}
}

/* Giving up on the big file half-way (as the injector does when the image
 * write fails): close reports the short read, and a later file still
 * streams correctly. */
Test(stream, abandoned_file_then_later_file)
{
	char *p = t_case_write(&c, dir, "ab.tar.zst", "tar.zst", NULL);
	struct gp_error err = { 0 };
	struct gp_inject_stream s;
	const struct gp_inject_set *set;
	struct gp_bundle *b;
	size_t big = 0, later;
	uint8_t sha[32];
	uint64_t bytes;
	char buf[4096];

	cr_assert_eq(gp_bundle_open(p, &b, &err), 0, "%s", err.msg);
	set = gp_bundle_inject_set(b);
	while (set->files[big].size != BIG)
		big++;
	later = big + 1;
	cr_assert_lt(later, set->count);
	cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
	cr_assert_eq(s.ops->open(&s, &set->files[big], &err), 0, "%s", err.msg);
	cr_assert_eq(s.ops->read(&s, buf, sizeof(buf), &err), (int64_t)sizeof(buf), "%s", err.msg);
	pause_briefly();
	cr_assert_eq(s.ops->close(&s, NULL, &err), GP_ERR_MISMATCH);
	cr_assert(strstr(err.msg, "4096 bytes read, the manifest says"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(s.ops->open(&s, &set->files[later], &err), 0, "%s", err.msg);
	cr_assert_eq(read_all(&s, 777, sha, &bytes, &err), 0, "%s", err.msg);
	cr_assert_eq(bytes, set->files[later].size);
	cr_assert_eq(memcmp(sha, set->files[later].sha256, 32), 0);
	cr_assert_eq(s.ops->close(&s, NULL, &err), 0, "%s", err.msg);
	s.ops->destroy(&s);
	gp_bundle_close(b);
	free(p);
}

/* Destroying the stream in the middle of a file (nothing was read) and
 * between files returns and releases everything. */
Test(stream, destroy_never_hangs)
{
	char *p = t_case_write(&c, dir, "d.tar", "tar", NULL);
	struct gp_error err = { 0 };
	struct gp_inject_stream s;
	const struct gp_inject_set *set;
	struct gp_bundle *b;
	size_t big = 0;

	cr_assert_eq(gp_bundle_open(p, &b, &err), 0, "%s", err.msg);
	set = gp_bundle_inject_set(b);
	while (set->files[big].size != BIG)
		big++;
	cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
	cr_assert_eq(s.ops->open(&s, &set->files[big], &err), 0, "%s", err.msg);
	pause_briefly();
	s.ops->destroy(&s);

	cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
	cr_assert_eq(s.ops->open(&s, &set->files[0], &err), 0, "%s", err.msg);
	{
		uint8_t sha[32];
		uint64_t bytes;

		cr_assert_eq(read_all(&s, 4096, sha, &bytes, &err), 0, "%s", err.msg);
		cr_assert_eq(s.ops->close(&s, NULL, &err), 0, "%s", err.msg);
	}
	pause_briefly();
	s.ops->destroy(&s);
	gp_bundle_close(b);
	free(p);
}

/* A flipped byte in any file of the case is named. */
Test(stream, flip_in_every_file_names_it)
{
	for (size_t i = 0; i < c.n; i++) {
		char *name, *p, *want;

		if (!c.e[i].len)
			continue;
		c.e[i].data[c.e[i].len / 2] ^= 0x08;
		name = t_strdup_printf("flip%zu.tar.zst", i);
		p = t_case_write(&c, dir, name, "tar.zst", NULL);
		want = t_strdup_printf("file '%s': content SHA-256", c.e[i].name);
		t_expect_stream_fails(p, GP_ERR_MISMATCH, want);
		c.e[i].data[c.e[i].len / 2] ^= 0x08;
		free(want);
		free(p);
		free(name);
	}
}

/* Stream every @every-th file of @b from @from to @stop (exclusive); the
 * others are passed over, as the injector passes over files unchanged in
 * the guest. Pauses now and then so the reader runs as far ahead as it
 * may. Each file must arrive whole and pass its verdict. */
static void stream_some(struct gp_bundle *b, struct gp_inject_stream *s, size_t from,
			size_t every, size_t stop)
{
	const struct gp_inject_set *set = gp_bundle_inject_set(b);
	struct gp_error err = { 0 };

	for (size_t i = from; i < stop && i < set->count; i += every) {
		uint8_t sha[32];
		uint64_t bytes;

		if (i % 40 == 0)
			pause_briefly();
		cr_assert_eq(s->ops->open(s, &set->files[i], &err), 0, "%zu: %s", i, err.msg);
		cr_assert_eq(read_all(s, 1000, sha, &bytes, &err), 0, "%s", err.msg);
		cr_assert_eq(bytes, set->files[i].size, "%s", set->files[i].guest_path);
		cr_assert_eq(memcmp(sha, set->files[i].sha256, 32), 0, "%s",
			     set->files[i].guest_path);
		cr_assert_eq(s->ops->close(s, sha, &err), 0, "%s", err.msg);
	}
}

/* Many more files than the stream queues ahead of the caller (small ones,
 * some empty), in every format: all of them, and every third one, arrive
 * exactly. */
Test(stream, many_files_read_ahead_and_passed_over)
{
	static const char *const fmts[] = { "tar", "tar.zst", "zip" };

	t_case_free(&c);
	t_case_many(&c, 200);
	for (size_t k = 0; k < 3; k++) {
		char *name = t_strdup_printf("many.%s", fmts[k]);
		char *p = t_case_write(&c, dir, name, fmts[k], NULL);

		for (size_t every = 1; every <= 3; every += 2) {
			struct gp_error err = { 0 };
			struct gp_inject_stream s;
			struct gp_bundle *b;

			cr_assert_eq(gp_bundle_open(p, &b, &err), 0, "%s", err.msg);
			cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
			stream_some(b, &s, 0, every, SIZE_MAX);
			s.ops->destroy(&s);
			gp_bundle_close(b);
		}
		free(p);
		free(name);
	}
}

/* The reader runs ahead; what it finds there is reported only for a file
 * asked for: a flipped byte in a file passed over is never read, one in
 * a later file asked for is named at that file's close, and a hostile
 * entry far ahead fails the open() of its file after every earlier file
 * streamed correctly. */
Test(stream, errors_ahead_belong_to_their_file)
{
	struct gp_error err = { 0 };
	struct gp_inject_stream s;
	struct gp_bundle *b;
	const struct gp_inject_set *set;
	size_t skipped, flipped, hostile;
	char *p;

	t_case_free(&c);
	t_case_many(&c, 200);
	skipped = t_case_find(&c, "many/f011.bin");
	flipped = t_case_find(&c, "many/f101.bin");
	hostile = t_case_find(&c, "many/f150.bin");
	c.e[skipped].data[0] ^= 1;
	c.e[flipped].data[3] ^= 1;
	free(c.e[hostile].name);
	c.e[hostile].name = strdup(PKG "/many/../../escape.bin");
	p = t_case_write(&c, dir, "ahead.tar.zst", "tar.zst", NULL);

	cr_assert_eq(gp_bundle_open(p, &b, &err), 0, "%s", err.msg);
	set = gp_bundle_inject_set(b);
	cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
	/* Past the file with the flipped byte, asking for none in between. */
	stream_some(b, &s, 0, 1, skipped);
	pause_briefly();
	stream_some(b, &s, skipped + 1, 1, flipped);
	{
		uint8_t sha[32];
		uint64_t bytes;

		cr_assert_eq(s.ops->open(&s, &set->files[flipped], &err), 0, "%s", err.msg);
		cr_assert_eq(read_all(&s, 4096, sha, &bytes, &err), 0, "%s", err.msg);
		cr_assert_eq(s.ops->close(&s, NULL, &err), GP_ERR_MISMATCH);
		cr_assert(strstr(err.msg, "many/f101.bin': content SHA-256"), "%s", err.msg);
	}
	s.ops->destroy(&s);

	/* A fresh stream up to the hostile entry: every file before it fine. */
	gp_error_clear(&err);
	cr_assert_eq(gp_bundle_stream(b, &s, &err), 0, "%s", err.msg);
	stream_some(b, &s, skipped + 1, 2, flipped);
	stream_some(b, &s, flipped + 1, 1, hostile);
	cr_assert_eq(s.ops->open(&s, &set->files[hostile], &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "unsafe path"), "%s", err.msg);
	/* And so does any later file: the archive cannot be read past it. */
	gp_error_clear(&err);
	cr_assert_eq(s.ops->open(&s, &set->files[hostile + 1], &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "unsafe path"), "%s", err.msg);
	s.ops->destroy(&s);
	gp_bundle_close(b);
	free(p);
}
