/*
 * fuzz_bundle.c — the bundle archive reader: gp_bundle_open() (libarchive
 * with tar/zip and gzip/xz/zstd, manifest-first rule, manifest parse), then
 * gp_bundle_verify() (every entry against the manifest: path, type, size,
 * SHA-256) and a gp_bundle_stream() pass that opens, reads and closes every
 * file in order with the SHA-256 of what it read — the way the injector
 * consumes a bundle. libarchive itself is the system library (not
 * instrumented); the fuzzed code is gpup's handling of what it returns.
 * Seeds: fuzz/corpus/bundle (small bundles gpup wrote: tar, tar.gz, zip,
 * tar.zst; the .zst ones recompressed by the zstd CLI, whose frames record
 * their content size, so the decoder's window is the archive's size and
 * not the 4 MiB of gpup's streamed frames: a fresh 4 MiB buffer per input
 * was half the harness's time under ASan).
 * Inputs are capped at 1 MiB.
 */
#include <openssl/evp.h>
#include <stdlib.h>

#include "bundle.h"
#include "fuzz.h"
#include "inject.h"

static void fuzz_bundle_stream(struct gp_bundle *b)
{
	const struct gp_inject_set *set = gp_bundle_inject_set(b);
	struct gp_error err = { 0 };
	struct gp_inject_stream s = { 0 };
	static char buf[16384];
	int ret = gp_bundle_stream(b, &s, &err);

	for (size_t i = 0; ret == 0 && i < set->count; i++) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		uint8_t sha[32], want[32];
		unsigned int n = 32;
		int64_t r = 0;

		if (!md)
			break;
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		(void)s.ops->expected(&s, &set->files[i], want, &err);
		gp_error_clear(&err);
		ret = s.ops->open(&s, &set->files[i], &err);
		while (ret == 0 && (r = s.ops->read(&s, buf, sizeof(buf), &err)) > 0)
			EVP_DigestUpdate(md, buf, (size_t)r);
		EVP_DigestFinal_ex(md, sha, &n);
		EVP_MD_CTX_free(md);
		if (ret == 0 && r < 0)
			ret = (int)r;
		if (ret == 0)
			ret = s.ops->close(&s, sha, &err);
	}
	if (s.ops && s.ops->destroy)
		s.ops->destroy(&s);
}

int fuzz_bundle(const uint8_t *data, size_t size)
{
	struct gp_error err = { 0 };
	struct gp_bundle *b;
	char path[64];
	int fd;

	if (size > (1u << 20))
		return 0;
	fd = fuzz_memfd(data, size, path);
	if (fd < 0)
		return 0;
	if (gp_bundle_open(path, &b, &err) == 0) {
		const struct gp_bundle_info *info = gp_bundle_info(b);
		volatile size_t sink = info->n_hardware_ids + info->manifest_len;

		(void)sink;
		(void)gp_bundle_verify(b, NULL, &err);
		fuzz_bundle_stream(b);
		gp_bundle_close(b);
	}
	close(fd);
	return 0;
}

#ifndef GP_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_bundle(data, size);
}
#endif
