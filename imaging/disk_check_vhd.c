/*
 * disk_check_vhd.c — `gpup check` for a VHD container (Virtual Hard Disk
 * Image Format Specification 1.0): the footer and its checksum; for a
 * dynamic or differencing image the footer's copy at offset 0, the dynamic
 * header and its checksum, and every BAT entry (block and its sector bitmap
 * inside the file, before the footer, no two blocks sharing space, none
 * over the header structures). Fields are big-endian.
 *
 * Unreferenced space is not reported for VHD: writers pad the BAT and
 * align blocks as they like (Hyper-V leaves 4 KiB after an empty BAT), so
 * a gap is no sign of a leak.
 */
#include "disk_check.h"
#include "disk_priv.h"
#include "le.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VHD_SECTOR 512u
#define VHD_FOOTER_SIZE 512u
#define VHD_FTR_COOKIE_OFF 0        /* "conectix" */
#define VHD_FTR_VERSION_OFF 12
#define VHD_FTR_DATA_OFFSET_OFF 16
#define VHD_FTR_CURRENT_SIZE_OFF 48
#define VHD_FTR_DISK_TYPE_OFF 60
#define VHD_FTR_CHECKSUM_OFF 64
#define VHD_DYN_SIZE 1024u
#define VHD_DYN_COOKIE_OFF 0        /* "cxsparse" */
#define VHD_DYN_TABLE_OFFSET_OFF 16
#define VHD_DYN_VERSION_OFF 24
#define VHD_DYN_MAX_ENTRIES_OFF 28
#define VHD_DYN_BLOCK_SIZE_OFF 32
#define VHD_DYN_CHECKSUM_OFF 36
#define VHD_TYPE_FIXED 2
#define VHD_TYPE_DYNAMIC 3
#define VHD_TYPE_DIFFERENCING 4
#define VHD_BAT_UNUSED 0xFFFFFFFFu
/* Largest BAT read into memory: the spec's largest disk (2040 GiB) in
 * 2 MiB blocks needs 1,044,480 entries; smaller blocks need more. */
#define VHD_MAX_BAT_ENTRIES (64u << 20)

/* One's complement of the byte sum, the checksum field counted as zero. */
static uint32_t vhd_checksum(const uint8_t *p, size_t len, size_t csum_off)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < csum_off || i >= csum_off + 4)
			sum += p[i];
	return ~sum;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(fd, buf, len, (off_t)off);

	return n == (ssize_t)len ? 0 : -1;
}

struct vhd_block {
	uint64_t start, end, index;
};

static int block_cmp(const void *a, const void *b)
{
	const struct vhd_block *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The BAT: entries in range and not overlapping each other or the
 * structures before @data_start. */
static int check_bat(const char *path, int fd, uint64_t size, uint64_t table, uint32_t entries,
		     uint32_t block_size, uint64_t data_start, struct gp_check_report *r)
{
	uint64_t bitmap = ((uint64_t)block_size / VHD_SECTOR / 8 + VHD_SECTOR - 1) / VHD_SECTOR *
			  VHD_SECTOR;
	uint8_t *bat = malloc((size_t)entries * 4);
	struct vhd_block *b = malloc((size_t)entries * sizeof(*b));
	size_t n = 0;
	int ret = 0;

	if (!bat || !b) {
		free(bat);
		free(b);
		return GP_ERR_NOMEM;
	}
	if (read_at(fd, bat, (size_t)entries * 4, table)) {
		ret = gp_check_add(r, GP_CHECK_CORRUPT, "BAT", (int64_t)table,
				   "%s: BAT at 0x%llx: cannot read its %u entries (truncated file?)",
				   path, (unsigned long long)table, entries);
		goto out;
	}
	for (uint32_t i = 0; i < entries && !ret; i++) {
		uint32_t e = get_be32(bat + (size_t)i * 4);
		uint64_t start = (uint64_t)e * VHD_SECTOR, end = start + bitmap + block_size;

		if (e == VHD_BAT_UNUSED)
			continue;
		if (start < data_start || end > size - VHD_FOOTER_SIZE)
			ret = gp_check_add(r, GP_CHECK_CORRUPT, "BAT", (int64_t)(table + (uint64_t)i * 4),
					   "%s: BAT at 0x%llx: entry %u: block at 0x%llx (%llu bytes with its sector bitmap) lies %s",
					   path, (unsigned long long)table, i, (unsigned long long)start,
					   (unsigned long long)(end - start),
					   start < data_start ? "over the header structures"
							      : "beyond the footer (truncated file?)");
		else
			b[n++] = (struct vhd_block){ start, end, i };
	}
	qsort(b, n, sizeof(*b), block_cmp);
	for (size_t i = 1; i < n && !ret; i++)
		if (b[i].start < b[i - 1].end)
			ret = gp_check_add(r, GP_CHECK_CORRUPT, "BAT",
					   (int64_t)(table + b[i].index * 4),
					   "%s: BAT at 0x%llx: entries %llu and %llu share file space at 0x%llx",
					   path, (unsigned long long)table,
					   (unsigned long long)b[i - 1].index,
					   (unsigned long long)b[i].index, (unsigned long long)b[i].start);
out:
	free(bat);
	free(b);
	return ret;
}

static int check_dynamic(const char *path, int fd, uint64_t size, const uint8_t *ftr,
			 struct gp_check_report *r)
{
	uint64_t dyn_off = get_be64(ftr + VHD_FTR_DATA_OFFSET_OFF), vsize, table, need, end;
	uint8_t copy[VHD_FOOTER_SIZE], dyn[VHD_DYN_SIZE];
	uint32_t entries, bs;

	if (read_at(fd, copy, sizeof(copy), 0) || memcmp(copy, ftr, VHD_FOOTER_SIZE) != 0) {
		int ret = gp_check_add(r, GP_CHECK_CORRUPT, "footer copy", 0,
				       "%s: footer copy at 0x0 differs from the footer at 0x%llx",
				       path, (unsigned long long)(size - VHD_FOOTER_SIZE));
		if (ret)
			return ret;
	}
	if (dyn_off % VHD_SECTOR || add_u64(dyn_off, VHD_DYN_SIZE, &end) ||
	    end > size - VHD_FOOTER_SIZE || read_at(fd, dyn, sizeof(dyn), dyn_off))
		return gp_check_add(r, GP_CHECK_CORRUPT, "footer", (int64_t)(size - VHD_FOOTER_SIZE),
				    "%s: footer at 0x%llx: dynamic header offset 0x%llx is not inside the file",
				    path, (unsigned long long)(size - VHD_FOOTER_SIZE),
				    (unsigned long long)dyn_off);
	if (memcmp(dyn + VHD_DYN_COOKIE_OFF, "cxsparse", 8))
		return gp_check_add(r, GP_CHECK_CORRUPT, "dynamic header", (int64_t)dyn_off,
				    "%s: dynamic header at 0x%llx: no \"cxsparse\" cookie", path,
				    (unsigned long long)dyn_off);
	if (vhd_checksum(dyn, sizeof(dyn), VHD_DYN_CHECKSUM_OFF) != get_be32(dyn + VHD_DYN_CHECKSUM_OFF))
		return gp_check_add(r, GP_CHECK_CORRUPT, "dynamic header", (int64_t)dyn_off,
				    "%s: dynamic header at 0x%llx: checksum mismatch", path,
				    (unsigned long long)dyn_off);
	table = get_be64(dyn + VHD_DYN_TABLE_OFFSET_OFF);
	entries = get_be32(dyn + VHD_DYN_MAX_ENTRIES_OFF);
	bs = get_be32(dyn + VHD_DYN_BLOCK_SIZE_OFF);
	vsize = get_be64(ftr + VHD_FTR_CURRENT_SIZE_OFF);
	if (!bs || bs % VHD_SECTOR || (bs & (bs - 1)))
		return gp_check_add(r, GP_CHECK_CORRUPT, "dynamic header", (int64_t)dyn_off,
				    "%s: dynamic header at 0x%llx: block size %u is not a power of 2 of whole sectors",
				    path, (unsigned long long)dyn_off, bs);
	need = vsize / bs + (vsize % bs != 0);
	if (need > entries || entries > VHD_MAX_BAT_ENTRIES)
		return gp_check_add(r, GP_CHECK_CORRUPT, "dynamic header", (int64_t)dyn_off,
				    "%s: dynamic header at 0x%llx: %u BAT entries for a disk of %llu blocks",
				    path, (unsigned long long)dyn_off, entries, (unsigned long long)need);
	if (table % VHD_SECTOR || add_u64(table, (uint64_t)entries * 4, &end) ||
	    end > size - VHD_FOOTER_SIZE)
		return gp_check_add(r, GP_CHECK_CORRUPT, "dynamic header", (int64_t)dyn_off,
				    "%s: dynamic header at 0x%llx: BAT at 0x%llx (%u entries) is not inside the file (truncated?)",
				    path, (unsigned long long)dyn_off, (unsigned long long)table, entries);
	/* Blocks go after the footer copy, the dynamic header and the BAT. */
	if (end < dyn_off + VHD_DYN_SIZE)
		end = dyn_off + VHD_DYN_SIZE;
	return check_bat(path, fd, size, table, entries, bs, end, r);
}

int gp_check_vhd(const char *path, struct gp_check_report *r, struct gp_error *err)
{
	uint8_t ftr[VHD_FOOTER_SIZE];
	uint64_t size, at, vsize;
	uint32_t type;
	int fd, ret = 0;

	ret = gp_check_open(path, &fd, &size, err);
	if (ret)
		return ret;
	at = size - VHD_FOOTER_SIZE;
	if (size < VHD_FOOTER_SIZE || read_at(fd, ftr, sizeof(ftr), at) ||
	    memcmp(ftr + VHD_FTR_COOKIE_OFF, "conectix", 8)) {
		ret = gp_check_add(r, GP_CHECK_CORRUPT, "footer", size < VHD_FOOTER_SIZE ? 0 : (int64_t)at,
				   "%s: footer: no \"conectix\" cookie in the file's last 512 bytes (truncated file?)",
				   path);
		goto out;
	}
	if (vhd_checksum(ftr, sizeof(ftr), VHD_FTR_CHECKSUM_OFF) != get_be32(ftr + VHD_FTR_CHECKSUM_OFF)) {
		ret = gp_check_add(r, GP_CHECK_CORRUPT, "footer", (int64_t)at,
				   "%s: footer at 0x%llx: checksum mismatch", path, (unsigned long long)at);
		goto out;
	}
	type = get_be32(ftr + VHD_FTR_DISK_TYPE_OFF);
	vsize = get_be64(ftr + VHD_FTR_CURRENT_SIZE_OFF);
	if (type == VHD_TYPE_FIXED) {
		if (vsize != at)
			ret = gp_check_add(r, GP_CHECK_CORRUPT, "footer", (int64_t)at,
					   "%s: footer at 0x%llx: fixed disk of %llu bytes, but the data before the footer is %llu bytes",
					   path, (unsigned long long)at, (unsigned long long)vsize,
					   (unsigned long long)at);
	} else if (type == VHD_TYPE_DYNAMIC || type == VHD_TYPE_DIFFERENCING) {
		ret = check_dynamic(path, fd, size, ftr, r);
	} else {
		ret = gp_check_add(r, GP_CHECK_CORRUPT, "footer", (int64_t)at,
				   "%s: footer at 0x%llx: unknown disk type %u", path,
				   (unsigned long long)at, type);
	}
	if (ret)
		ret = gp_error_set(err, ret, "%s: out of memory", path);
out:
	close(fd);
	return ret;
}
