/* test_zz_helpers.c — the helpers of ntfs_test.h (named test_*.c so the
 * Makefile links it into test-ntfs; it holds no tests). */
#include "ntfs_test.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

char *nt_guest_cache(const char *args)
{
	/* Shared with the other suites that use the same arguments. */
	return t_fixture("mkguest.sh", args);
}

char *nt_guest(const char *dir, const char *name, const char *args, uint64_t *part_off,
	       uint64_t *part_len)
{
	struct t_run r;
	char *cache = nt_guest_cache(args), *img, *part;
	unsigned long long off = 0, len = 0;
	FILE *f;

	img = t_strdup_printf("%s/%s", dir, name);
	t_run(&r, "cp --sparse=always %s/guest.img %s", cache, img);
	cr_assert_eq(r.status, 0, "copy failed: %s", r.err);
	t_run_free(&r);
	part = t_strdup_printf("%s/guest.part", cache);
	f = fopen(part, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%llu %llu", &off, &len), 2);
	fclose(f);
	if (part_off)
		*part_off = off;
	if (part_len)
		*part_len = len;
	free(part);
	free(cache);
	return img;
}

char *nt_extract(const char *dir, const char *img, uint64_t off, uint64_t len)
{
	struct t_run r;
	char *out = t_strdup_printf("%s/part.img", dir);

	cr_assert_eq(off % 1048576, 0);
	t_run(&r, "rm -f %s && dd if=%s of=%s bs=1M skip=%llu count=%llu conv=sparse status=none",
	      out, img, out, (unsigned long long)(off / 1048576),
	      (unsigned long long)((len + 1048575) / 1048576));
	cr_assert_eq(r.status, 0, "dd failed: %s", r.err);
	t_run_free(&r);
	t_run(&r, "truncate -s %llu %s", (unsigned long long)len, out);
	t_run_free(&r);
	return out;
}

void nt_patch(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);

	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}
