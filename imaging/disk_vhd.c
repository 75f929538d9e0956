/*
 * disk_vhd.c — gpup's VHD backend (Virtual Hard Disk Image Format
 * Specification 1.0): fixed and dynamic images, read-write. Differencing
 * VHDs stay with libvhdi (read-only; gp_disk_open() sends them there).
 *
 * The image is validated by the checker first (gp_check_vhd(): footer and
 * its checksum, footer copy, dynamic header and its checksum, every BAT
 * entry inside the file and none sharing space), then trusted.
 *
 * Crash safety of a dynamic image's growth, by write ordering:
 *  1. a new block goes where the footer is; first the file is extended by
 *     the block and the footer written at the new end, and flushed: the
 *     image stays valid with an unreferenced block in the middle;
 *  2. the block's sector bitmap (all sectors present: the block's unwritten
 *     sectors are a hole, zeros) and its data are written over the old
 *     footer's place;
 *  3. at a commit (flush, close, or every VHD_COMMIT_BLOCKS new blocks) the
 *     data is flushed, then the dirty BAT sectors are written and flushed.
 * A crash at any point leaves a footer at the end, a valid BAT, and at
 * most unreferenced blocks (leaked space, no lost data of earlier commits).
 * The footer's content never changes (dynamic images record no size that
 * grows), so its copy at offset 0 stays right.
 */
#include "disk_check.h"
#include "disk_priv.h"
#include "le.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VHD_SECTOR 512u
#define VHD_FOOTER_SIZE 512u
#define VHD_FTR_DATA_OFFSET_OFF 16
#define VHD_FTR_CURRENT_SIZE_OFF 48
#define VHD_FTR_DISK_TYPE_OFF 60
#define VHD_DYN_TABLE_OFFSET_OFF 16
#define VHD_DYN_MAX_ENTRIES_OFF 28
#define VHD_DYN_BLOCK_SIZE_OFF 32
#define VHD_DYN_SIZE 1024u
#define VHD_TYPE_FIXED 2u
#define VHD_TYPE_DYNAMIC 3u
#define VHD_BAT_UNUSED 0xFFFFFFFFu
/* New blocks between forced commits of the BAT. */
#define VHD_COMMIT_BLOCKS 64u

struct vhd_disk {
	struct gp_disk base;
	int fd;
	struct gp_disk_lock lock;
	uint32_t type;
	uint8_t footer[VHD_FOOTER_SIZE];
	uint64_t data_end;        /* where the footer is: the next block goes here */
	/* dynamic */
	uint64_t bat_off;
	uint32_t entries, block_size, bitmap_size;
	uint8_t *bat;             /* on-disk bytes (big-endian), whole sectors */
	uint8_t *bat_dirty;       /* one byte per BAT sector */
	uint32_t new_blocks;      /* since the last commit */
	bool unsynced;
	uint64_t writebehind;
};

static int io_fail(struct gp_disk *d, int e, const char *what, uint64_t off)
{
	return gp_error_set_errno(&d->err, e == ENOSPC || e == EDQUOT || e == EFBIG
					   ? GP_ERR_NOSPACE : GP_ERR_IO,
				  e, "%s: %s at 0x%llx", d->path, what, (unsigned long long)off);
}

/* All of @len bytes at @off, or -1 (errno set; 0 bytes read: EIO). */
static int full_io(int fd, void *buf, size_t len, uint64_t off, bool write)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
				  : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	return full_io(fd, buf, len, off, false);
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	return full_io(fd, (void *)buf, len, off, true);
}

int gp_vhd_disk_type(const char *path, uint32_t *type, struct gp_error *err)
{
	uint8_t ftr[VHD_FOOTER_SIZE];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return gp_disk_open_error(path, false, errno, err);
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)VHD_FOOTER_SIZE ||
	    full_pread(fd, ftr, sizeof(ftr), (uint64_t)st.st_size - VHD_FOOTER_SIZE))
		ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: cannot read the VHD footer", path);
	else
		*type = get_be32(ftr + VHD_FTR_DISK_TYPE_OFF);
	close(fd);
	return ret;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t bat_get(const struct vhd_disk *v, uint64_t blk)
{
	return get_be32(v->bat + blk * 4);
}

/* The checker's verdict: the first corruption, as an open error. */
static int validate(const char *path, struct gp_error *err)
{
	struct gp_check_report r = { 0 };
	int ret = gp_check_vhd(path, &r, err);

	for (size_t i = 0; !ret && i < r.count; i++)
		if (r.findings[i].grade == GP_CHECK_CORRUPT)
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s", r.findings[i].message);
	gp_check_report_free(&r);
	return ret;
}

static int load_dynamic(struct vhd_disk *v, const char *path, struct gp_error *err)
{
	uint8_t dyn[VHD_DYN_SIZE];
	uint64_t dyn_off = get_be64(v->footer + VHD_FTR_DATA_OFFSET_OFF), bytes;

	if (full_pread(v->fd, dyn, sizeof(dyn), dyn_off))
		return gp_error_set_errno(err, GP_ERR_IO, errno, "%s: read dynamic header", path);
	v->bat_off = get_be64(dyn + VHD_DYN_TABLE_OFFSET_OFF);
	v->entries = get_be32(dyn + VHD_DYN_MAX_ENTRIES_OFF);
	v->block_size = get_be32(dyn + VHD_DYN_BLOCK_SIZE_OFF);
	/* One bit per sector, padded to whole sectors. */
	v->bitmap_size = (v->block_size / VHD_SECTOR / 8 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
	/* Whole BAT sectors, so that a dirty one is written as it is. The
	 * checker bounded the BAT by the file; the padding past its last
	 * entry is read as found (writers fill it with 0xFF). */
	bytes = ((uint64_t)v->entries * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
	v->bat = malloc(bytes);
	v->bat_dirty = calloc(bytes / VHD_SECTOR, 1);
	if (!v->bat || !v->bat_dirty)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory for the BAT", path);
	memset(v->bat, 0xFF, bytes);
	if (full_pread(v->fd, v->bat, (size_t)v->entries * 4, v->bat_off))
		return gp_error_set_errno(err, GP_ERR_IO, errno, "%s: read BAT", path);
	if (bytes > (uint64_t)v->entries * 4 &&
	    full_pread(v->fd, v->bat + (size_t)v->entries * 4, bytes - (size_t)v->entries * 4,
		       v->bat_off + (uint64_t)v->entries * 4)) {
		/* A BAT ending inside its last sector at the footer: keep the 0xFF padding. */
		memset(v->bat + (size_t)v->entries * 4, 0xFF, bytes - (size_t)v->entries * 4);
	}
	v->base.alloc_unit = v->block_size;
	return 0;
}

static int vhd_close(struct gp_disk *d, struct gp_error *err);

static int vhd_open(const char *path, const struct gp_disk_open_opts *opts, struct gp_disk **out,
		    struct gp_error *err)
{
	struct vhd_disk *v = calloc(1, sizeof(*v));
	struct stat st;
	int ret;

	if (!v)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	v->fd = open(path, (opts->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (v->fd < 0) {
		ret = gp_disk_open_error(path, opts->writable, errno, err);
		goto fail;
	}
	ret = opts->no_lock && !opts->writable
		      ? 0
		      : gp_disk_lock_fd(v->fd, path, opts->writable, &v->lock, err);
	v->base.lock_note = v->lock.note;
	if (!ret)
		ret = validate(path, err);
	if (ret)
		goto fail;
	if (fstat(v->fd, &st) < 0 ||
	    full_pread(v->fd, v->footer, sizeof(v->footer), (uint64_t)st.st_size - VHD_FOOTER_SIZE)) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: read footer", path);
		goto fail;
	}
	v->data_end = (uint64_t)st.st_size - VHD_FOOTER_SIZE;
	v->type = get_be32(v->footer + VHD_FTR_DISK_TYPE_OFF);
	v->base.size = get_be64(v->footer + VHD_FTR_CURRENT_SIZE_OFF);
	v->base.lss = VHD_SECTOR;
	v->base.pss = VHD_SECTOR;
	v->base.writable = opts->writable;
	if (v->type == VHD_TYPE_DYNAMIC) {
		ret = load_dynamic(v, path, err);
	} else if (v->type != VHD_TYPE_FIXED) {
		ret = gp_error_set(err, GP_ERR_UNSUPPORTED,
				   "%s: VHD disk type %u is read by libvhdi only", path, v->type);
	}
	if (ret)
		goto fail;
	*out = &v->base;
	return 0;
fail:
	vhd_close(&v->base, NULL);
	return ret;
}

static int vhd_pread(struct gp_disk *d, void *vbuf, uint64_t len, uint64_t off)
{
	struct vhd_disk *v = (struct vhd_disk *)d;
	uint8_t *buf = vbuf;

	if (v->type == VHD_TYPE_FIXED)
		return full_pread(v->fd, buf, (size_t)len, off) ? io_fail(d, errno, "read", off) : 0;
	while (len) {
		uint64_t blk = off / v->block_size, in = off % v->block_size;
		uint64_t n = v->block_size - in < len ? v->block_size - in : len;
		uint32_t e = bat_get(v, blk);

		/* Dynamic disks: the data area is authoritative (as qemu and
		 * libvhdi read it); an unallocated block reads as zeros. */
		if (e == VHD_BAT_UNUSED)
			memset(buf, 0, (size_t)n);
		else if (full_pread(v->fd, buf, (size_t)n,
				    (uint64_t)e * VHD_SECTOR + v->bitmap_size + in))
			return io_fail(d, errno, "read block", (uint64_t)e * VHD_SECTOR);
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int sync_data(struct vhd_disk *v)
{
	if (fdatasync(v->fd) < 0)
		return gp_error_set_errno(&v->base.err, GP_ERR_IO, errno, "%s: flush", v->base.path);
	v->unsynced = false;
	return 0;
}

/* Step 3 of the growth order: data flushed, then the BAT sectors. */
static int commit(struct vhd_disk *v)
{
	uint64_t nsec = ((uint64_t)v->entries * 4 + VHD_SECTOR - 1) / VHD_SECTOR;
	bool any = false;
	int ret = 0;

	for (uint64_t s = 0; s < nsec; s++)
		any |= v->bat_dirty[s];
	if (!any)
		return v->unsynced ? sync_data(v) : 0;
	ret = sync_data(v);
	for (uint64_t s = 0; !ret && s < nsec; s++) {
		if (!v->bat_dirty[s])
			continue;
		if (full_pwrite(v->fd, v->bat + s * VHD_SECTOR, VHD_SECTOR, v->bat_off + s * VHD_SECTOR))
			ret = io_fail(&v->base, errno, "write BAT", v->bat_off + s * VHD_SECTOR);
		else
			v->bat_dirty[s] = 0;
	}
	if (!ret)
		ret = sync_data(v);
	if (!ret)
		v->new_blocks = 0;
	return ret;
}

/* Steps 1-2 for block @blk: returns its file offset in *@at. */
static int allocate(struct vhd_disk *v, uint64_t blk, uint64_t *at)
{
	uint64_t start = v->data_end, end = start + v->bitmap_size + v->block_size;
	uint8_t ones[VHD_SECTOR];
	int ret;

	memset(ones, 0xFF, sizeof(ones));
	/* BAT entries are 32-bit sector numbers. */
	if (start / VHD_SECTOR > UINT32_MAX - 1)
		return gp_error_set(&v->base.err, GP_ERR_NOSPACE,
				    "%s: a new block at 0x%llx is past what a VHD BAT can address",
				    v->base.path, (unsigned long long)start);
	if (ftruncate(v->fd, (off_t)(end + VHD_FOOTER_SIZE)) < 0)
		return io_fail(&v->base, errno, "extend the file for a block", start);
	if (full_pwrite(v->fd, v->footer, VHD_FOOTER_SIZE, end))
		return io_fail(&v->base, errno, "write footer", end);
	ret = sync_data(v);
	if (ret)
		return ret;
	v->data_end = end;
	/* The old footer's sector is the bitmap's first: overwrite it all;
	 * the rest of the block lies past the old end, a hole of zeros. */
	for (uint64_t p = 0; p < v->bitmap_size; p += VHD_SECTOR)
		if (full_pwrite(v->fd, ones, VHD_SECTOR, start + p))
			return io_fail(&v->base, errno, "write sector bitmap", start + p);
	put_be32(v->bat + blk * 4, (uint32_t)(start / VHD_SECTOR));
	v->bat_dirty[blk * 4 / VHD_SECTOR] = 1;
	v->unsynced = true;
	*at = start;
	if (++v->new_blocks >= VHD_COMMIT_BLOCKS)
		return commit(v);
	return 0;
}

/* Mark the sectors of [in, in + n) of the block at @at present in its
 * sector bitmap, after their data is written: a writer that leaves bits
 * clear for sectors it never wrote (Hyper-V) would otherwise have readers
 * that honour the bitmap read zeros where the data now is. */
static int mark_present(struct vhd_disk *v, uint64_t at, uint64_t in, uint64_t n)
{
	uint64_t s0 = in / VHD_SECTOR, s1 = (in + n - 1) / VHD_SECTOR;
	uint64_t b0 = s0 / 8, nb = s1 / 8 - b0 + 1;
	uint8_t bm[VHD_SECTOR];
	bool change = false;

	for (uint64_t done = 0; done < nb;) {
		size_t k = nb - done < sizeof(bm) ? (size_t)(nb - done) : sizeof(bm);
		uint64_t where = at + b0 + done;

		if (full_pread(v->fd, bm, k, where))
			return io_fail(&v->base, errno, "read sector bitmap", where);
		for (size_t i = 0; i < k; i++) {
			for (unsigned bit = 0; bit < 8; bit++) {
				uint64_t sec = (b0 + done + i) * 8 + bit;
				/* Bit 7 of byte 0 is the block's first sector. */
				uint8_t mask = (uint8_t)(0x80u >> bit);

				if (sec >= s0 && sec <= s1 && !(bm[i] & mask)) {
					bm[i] |= mask;
					change = true;
				}
			}
		}
		if (change && full_pwrite(v->fd, bm, k, where))
			return io_fail(&v->base, errno, "write sector bitmap", where);
		done += k;
	}
	return 0;
}

static int vhd_pwrite(struct gp_disk *d, const void *vbuf, uint64_t len, uint64_t off)
{
	struct vhd_disk *v = (struct vhd_disk *)d;
	const uint8_t *buf = vbuf;
	int ret = 0;

	if (v->type == VHD_TYPE_FIXED) {
		if (full_pwrite(v->fd, buf, (size_t)len, off))
			return io_fail(d, errno, "write", off);
		v->unsynced = true;
		gp_disk_writebehind(v->fd, &v->writebehind, len);
		return 0;
	}
	while (!ret && len) {
		uint64_t blk = off / v->block_size, in = off % v->block_size, at;
		uint64_t n = v->block_size - in < len ? v->block_size - in : len;
		uint32_t e = bat_get(v, blk);

		if (e == VHD_BAT_UNUSED)
			ret = allocate(v, blk, &at);
		else
			at = (uint64_t)e * VHD_SECTOR;
		if (!ret && full_pwrite(v->fd, buf, (size_t)n, at + v->bitmap_size + in))
			ret = io_fail(d, errno, "write block", at);
		if (!ret && e != VHD_BAT_UNUSED)
			ret = mark_present(v, at, in, n);
		if (!ret) {
			v->unsynced = true;
			gp_disk_writebehind(v->fd, &v->writebehind, n);
		}
		buf += n;
		off += n;
		len -= n;
	}
	return ret;
}

static int vhd_flush(struct gp_disk *d)
{
	struct vhd_disk *v = (struct vhd_disk *)d;

	if (!d->writable)
		return 0;
	return v->type == VHD_TYPE_DYNAMIC ? commit(v) : v->unsynced ? sync_data(v) : 0;
}

static int vhd_close(struct gp_disk *d, struct gp_error *err)
{
	struct vhd_disk *v = (struct vhd_disk *)d;
	int ret = 0;

	if (v->fd >= 0 && close(v->fd) < 0 && err)
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: close", d->path ? d->path : "");
	gp_disk_lock_release(&v->lock);
	free(v->bat);
	free(v->bat_dirty);
	free(v);
	return ret;
}

static int vhd_block_status(struct gp_disk *d, uint64_t off, uint64_t len, bool *allocated,
			    uint64_t *run)
{
	struct vhd_disk *v = (struct vhd_disk *)d;
	uint64_t blk, n = 0;

	if (v->type == VHD_TYPE_FIXED) {
		*allocated = true;
		*run = len;
		return 0;
	}
	blk = off / v->block_size;
	*allocated = bat_get(v, blk) != VHD_BAT_UNUSED;
	while (n < len) {
		uint64_t b = (off + n) / v->block_size;
		uint64_t step = v->block_size - (off + n) % v->block_size;

		if ((bat_get(v, b) != VHD_BAT_UNUSED) != *allocated)
			break;
		n += step;
	}
	*run = n < len ? n : len;
	return 0;
}

const struct gp_disk_ops gp_disk_vhd_ops = {
	.name = "vhd",
	.open = vhd_open,
	.pread = vhd_pread,
	.pwrite = vhd_pwrite,
	.flush = vhd_flush,
	.close = vhd_close,
	.block_status = vhd_block_status,
};
