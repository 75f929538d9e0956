/*
 * fuzz.h — what the libFuzzer harnesses in fuzz/ share: each harness
 * fuzz/fuzz_NAME.c defines the entry point fuzz_NAME(data, size), which
 * both libFuzzer (LLVMFuzzerTestOneInput, unless GP_FUZZ_NO_MAIN is
 * defined) and the regression test tests/fuzzregress/test_fuzz_regress.c
 * call, so a saved crash input replays through exactly the fuzzed code.
 *
 * Every entry point is deterministic, frees everything it allocates and
 * returns 0 (libFuzzer's convention: "input processed").
 */
#ifndef GPUP_FUZZ_H
#define GPUP_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int fuzz_inf(const uint8_t *data, size_t size);
int fuzz_gpus(const uint8_t *data, size_t size);
int fuzz_part(const uint8_t *data, size_t size);
int fuzz_vhdx(const uint8_t *data, size_t size);
int fuzz_manifest(const uint8_t *data, size_t size);
int fuzz_bundle(const uint8_t *data, size_t size);

/* An anonymous in-memory file holding @size bytes of @data, reachable by
 * the path written to @path ("/proc/self/fd/N"), so that the path-based
 * readers (gp_disk_open, vhdx_open, gp_bundle_open) read fuzz input
 * without touching the file system. Returns the fd (close it) or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char path[64])
{
	int fd = memfd_create("gpup-fuzz", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -1;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
