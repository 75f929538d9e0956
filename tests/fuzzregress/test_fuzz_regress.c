/*
 * test_fuzz_regress.c — replay the fuzz findings and seeds: every file of
 * tests/fuzz-regress/<harness>/ (inputs that once crashed, leaked or hung a
 * harness, now fixed) and of fuzz/corpus/<harness>/ goes through the same
 * entry point libFuzzer calls (fuzz_<harness>() of fuzz/fuzz_<harness>.c,
 * compiled into this test without its LLVMFuzzerTestOneInput). A crash
 * fails the test (Criterion forks each test); under
 * `make check SANITIZE=address,undefined` a memory error or leak does too.
 * Each test also checks that it replayed at least the seeds, so an emptied
 * or moved corpus cannot make it pass vacuously.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define GP_FUZZ_NO_MAIN 1
#include "../../fuzz/fuzz_bundle.c"
#include "../../fuzz/fuzz_gpus.c"
#include "../../fuzz/fuzz_inf.c"
#include "../../fuzz/fuzz_manifest.c"
#include "../../fuzz/fuzz_part.c"
#include "../../fuzz/fuzz_vhdx.c"

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	cr_assert(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read of %s", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Feed every regular file of DIR through @fn; returns how many. */
static size_t replay_dir(const char *dir, fuzz_fn fn)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[4096];
		uint8_t *buf;
		size_t len;

		if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		buf = slurp(path, &len);
		cr_log_info("replay %s (%zu bytes)", path, len);
		cr_assert_eq(fn(buf, len), 0, "%s", path);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

static void replay(const char *name, fuzz_fn fn)
{
	char dir[4096];
	size_t seeds;

	snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", t_env("GPUP_SRC"), name);
	seeds = replay_dir(dir, fn);
	cr_assert_gt(seeds, 0, "no seeds in %s", dir);
	snprintf(dir, sizeof(dir), "%s/tests/fuzz-regress/%s", t_env("GPUP_SRC"), name);
	replay_dir(dir, fn);
}

TestSuite(fuzzregress, .timeout = 120);

Test(fuzzregress, inf) { replay("inf", fuzz_inf); }
Test(fuzzregress, gpus) { replay("gpus", fuzz_gpus); }
Test(fuzzregress, part) { replay("part", fuzz_part); }
Test(fuzzregress, vhdx) { replay("vhdx", fuzz_vhdx); }
Test(fuzzregress, manifest) { replay("manifest", fuzz_manifest); }
Test(fuzzregress, bundle) { replay("bundle", fuzz_bundle); }

/* The harnesses' own input handling: empty and one-byte inputs, and the
 * VHDX sparse-file encoding at its edges (records past 64 MiB are clipped,
 * a truncated record header is ignored). */
Test(fuzzregress, edge_inputs)
{
	static const uint8_t one[1] = { 0 };
	static const uint8_t vhdx_clip[] = { 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03, 0x10, 0x00,
					     'v', 'h', 'd', 'x' };
	fuzz_fn fns[] = { fuzz_inf, fuzz_gpus, fuzz_part, fuzz_vhdx, fuzz_manifest, fuzz_bundle };

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		cr_assert_eq(fns[i](one, 0), 0);
		cr_assert_eq(fns[i](one, 1), 0);
	}
	cr_assert_eq(fuzz_vhdx(vhdx_clip, sizeof(vhdx_clip)), 0);
	cr_assert_eq(fuzz_vhdx(vhdx_clip, 5), 0);
}
