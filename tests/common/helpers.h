/*
 * helpers.h — what every Criterion test binary shares: paths handed in by
 * `make check`, scratch directories, running commands (the gpup CLI and the
 * independent oracles) with captured output, hashing, fixture copies.
 *
 * Environment set by the Makefile: GPUP_BIN (the gpup binary), GPUP_SRC
 * (source tree), GPUP_SHARED (../shared), GPUP_BUILD (build directory).
 */
#ifndef GPUP_TEST_HELPERS_H
#define GPUP_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value of an environment variable the Makefile sets; aborts the test with
 * a clear message when it is missing. */
const char *t_env(const char *name);

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string.
 * t_rm_rf() removes it again. */
char *t_tmpdir(void);
void t_rm_rf(const char *path);

/* Captured result of a command. */
struct t_run {
	int status;      /* exit status, or 128+signal */
	char *out;       /* stdout, NUL-terminated (never NULL) */
	char *err;       /* stderr, NUL-terminated (never NULL) */
	size_t out_len;
};

/* Run `sh -c CMD` (printf-style), capture stdout/stderr. Returns the exit
 * status (also in r->status). Free with t_run_free(). */
int t_run(struct t_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void t_run_free(struct t_run *r);

/* Run the gpup CLI: t_gpup(&r, "inspect %s --json", img). */
int t_gpup(struct t_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* SHA-256 of a file / a buffer as 64 hex digits + NUL. Returns 0 or -1. */
int t_sha256_file(const char *path, char hex[65]);
void t_sha256_buf(const void *buf, size_t len, char hex[65]);

/* Decompress ../shared/fixtures/hyperv/NAME.gz into DIR/NAME; returns the
 * malloc'ed path. Tests never touch the shared originals. */
char *t_hyperv_fixture(const char *name, const char *dir);

/*
 * A generated fixture, built once per `make check` and shared by tests:
 * runs tests/fixtures/SCRIPT OUTDIR ARGS... (ARGS a shell-quoted string)
 * under a lock, with OUTDIR = $GPUP_BUILD/fixtures/<SCRIPT + ARGS>, and
 * returns OUTDIR (malloc'ed). The scripts skip work when OUTDIR is already
 * up to date; tests copy what they modify.
 */
char *t_fixture(const char *script, const char *args);

/* Copy @src to @dst keeping holes (cp --sparse=always). Aborts the test on
 * failure. */
void t_copy(const char *src, const char *dst);

/* A fresh copy of the guest VHDX that tests/fixtures/mkguest.sh @args
 * generates, as @dir/@name (malloc'ed path). */
char *t_guest_copy(const char *dir, const char *args, const char *name);

/* The Windows volume of guest image @img, without gpup: qemu-img converts
 * it to raw and dd cuts out the partition (offset and length in @partfile,
 * as mkguest.sh writes guest.part) into @dir/check.part, for ntfs-3g's
 * tools. Returns that path (malloc'ed); aborts the test on failure. */
char *t_volume_of(const char *img, const char *partfile, const char *dir);

/* Build @bundle from @store for @gpu, prepare @img from it, then check with
 * `gpup verify --driverstore` that the guest holds exactly the store's
 * files (asserts each step exits 0). */
void t_bundle_prepare_verify(const char *img, const char *store, const char *gpu,
			     const char *bundle);

/* Write @bad: the gzip'ed tar bundle @good (made from mkstore.sh's store)
 * with one byte of nvlddmkm.sys's data changed, past its tar header, so
 * that only the manifest's SHA-256 can tell (asserts each step). Scratch:
 * @bad + ".tar". */
void t_tamper_bundle(const char *good, const char *bad);

/* Byte offset of the first occurrence of @needle in file @path, reading
 * only its data regions (SEEK_DATA/SEEK_HOLE: a sparse multi-GiB raw
 * image costs what it holds). -1 when absent. */
long long t_find_in_file(const char *path, const char *needle);

/* Read a whole file (malloc'ed, NUL-terminated); NULL on error. */
char *t_read_file(const char *path, size_t *len);

/* Start `gpup prepare IMG --driverstore ST --gpu GPU --no-verify
 * --progress=json` with stderr on a one-page pipe that nobody reads, and
 * return once the pipe is full: gpup is then blocked on a progress line
 * several files into the inject, with the volume marked. *@err_fd is the
 * pipe's read end (the caller closes it). Returns the pid. */
int t_prepare_blocked_on_progress(const char *img, const char *st, const char *gpu,
				  int *err_fd);
/* Write @len bytes to @path (created/truncated). Returns 0 or -1. */
int t_write_file(const char *path, const void *buf, size_t len);

/* The run's seed (GPUP_TEST_SEED, picked and printed once per test binary
 * run when unset; decimal or 0x-hex). Every random choice of a test (data,
 * offsets, kill moments) derives from it, and a test that fails after one
 * names it in its message: GPUP_TEST_SEED=<seed> replays the run. Fixed
 * seeds remain for patterns whose values a test depends on. */
uint64_t t_seed(void);

/* Deterministic pseudo-random bytes (xorshift64*), for patterns. */
void t_fill_random(void *buf, size_t len, uint64_t *state);
uint64_t t_rand(uint64_t *state);

/* Write a tree of pseudo-random files totalling exactly @total bytes under
 * directory @root (created): subdirectories d00, d01, ... of 16 files each;
 * the first file (d00/f000.bin) has @big bytes (0: like the rest; real
 * driver packages have one file of a large share), the others cycle through
 * 200 B (resident in NTFS), 3 KB, 40 KB, 300 KB and 2.5 MB, the last one
 * cut to fit. Returns the number of files. */
size_t t_make_tree(const char *root, uint64_t total, uint64_t big, uint64_t seed);

/* Format into a malloc'ed string. */
char *t_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
