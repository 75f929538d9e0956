/* ntfs_test.h — what the NTFS tests share: fake guests from
 * tests/fixtures/mkguest.sh (built once per argument set under
 * $GPUP_BUILD/fixtures, copied per test), and the independent read-back
 * path (the partition cut out with dd, read by ntfs-3g's ntfsls/ntfscat). */
#ifndef GPUP_NTFS_TEST_H
#define GPUP_NTFS_TEST_H

#include <stddef.h>
#include <stdint.h>

/* Build (once, under a lock) the guest for mkguest.sh @args; returns the
 * malloc'ed cache directory holding guest.img, guest.part, guest.vhdx. */
char *nt_guest_cache(const char *args);

/* Copy a guest built with mkguest.sh @args (e.g. "--size 1G") into
 * @dir/@name (sparse). Returns the malloc'ed image path; *@part_off and
 * *@part_len (optional) receive the Windows volume's byte range. */
char *nt_guest(const char *dir, const char *name, const char *args, uint64_t *part_off,
	       uint64_t *part_len);

/* Cut the volume at @off/@len (MiB-aligned) of raw @img into a new file;
 * returns its malloc'ed path (@dir/part.img). */
char *nt_extract(const char *dir, const char *img, uint64_t off, uint64_t len);

/* Patch @len bytes at @off of @path. */
void nt_patch(const char *path, uint64_t off, const void *buf, size_t len);

#endif
