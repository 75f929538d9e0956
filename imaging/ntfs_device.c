/* ntfs_device.c — a libntfs-3g device over a byte range of a gp_disk.
 *
 * libntfs-3g does all its I/O through a struct ntfs_device_operations; this
 * table maps each operation onto gp_disk_pread/pwrite at the volume's byte
 * offset. libntfs-3g only understands errno, so a disk failure is mapped to
 * the nearest errno and its message is kept in the device (gp_ntfs_dev.err)
 * for the final error to say what really failed.
 *
 * Small reads go through a block cache: libntfs-3g reads metadata again and
 * again (the MFT record of a directory and the index blocks on the way to
 * a name for every file it creates, $Bitmap for every allocation), each a
 * pread() through the disk stack; a package of many small files, or a guest
 * full of them, spent most of its time there (bench/RESULTS.md, "Cost per
 * file"). */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <linux/fs.h> /* BLKGETSIZE64, BLKSSZGET: libntfs-3g asks its device these */

#include "le.h"

static struct gp_ntfs_dev *priv(struct ntfs_device *dev)
{
	return dev->d_private;
}

/* Keep the disk's message, return the errno libntfs-3g should see. */
static int disk_errno(struct gp_ntfs_dev *p, int code)
{
	gp_error_copy(&p->err, gp_disk_error(p->disk));
	gp_disk_clear_error(p->disk);
	switch (code) {
	case GP_ERR_NOSPACE: return ENOSPC;
	case GP_ERR_READONLY: return EROFS;
	case GP_ERR_INVALID: return EINVAL;
	case GP_ERR_NOMEM: return ENOMEM;
	default: return EIO;
	}
}

/* ---- read cache ---------------------------------------------------------- */

/* 4 KiB blocks (a cluster, an index block, four MFT records), 4096 slots:
 * at most 16 MiB, touched only as far as used. Reads up to 64 KiB are
 * cached (metadata); file data moves in larger chunks and bypasses it. */
#define CACHE_BLOCK_BITS 12
#define CACHE_BLOCK ((uint64_t)1 << CACHE_BLOCK_BITS)
#define CACHE_SLOT_BITS 12
#define CACHE_SLOTS ((size_t)1 << CACHE_SLOT_BITS)
#define CACHE_MAX_READ (64u << 10)

static void cache_free(struct gp_ntfs_cache *c)
{
	free(c->data);
	free(c->tag);
	c->data = NULL;
	c->tag = NULL;
}

/* Fibonacci hashing: neighbouring blocks (an MFT run, $Bitmap) spread over
 * the slots instead of evicting each other in strides. */
static size_t cache_slot(uint64_t block)
{
	return (size_t)((block * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - CACHE_SLOT_BITS));
}

static uint8_t *cache_block(struct gp_ntfs_cache *c, uint64_t block)
{
	size_t s = cache_slot(block);

	return c->tag[s] == block + 1 ? c->data + s * CACHE_BLOCK : NULL;
}

/* Serve [pos, pos + n) from the cache, reading the blocks it lacks (the
 * whole aligned range, once) from the disk. Returns 0, 1 when the range
 * is not cacheable (then nothing was read), or a GP_ERR_* code from the
 * disk (its message on the disk). */
static int cache_read(struct gp_ntfs_dev *p, uint8_t *buf, uint64_t n, uint64_t pos)
{
	struct gp_ntfs_cache *c = &p->cache;
	uint64_t first = pos >> CACHE_BLOCK_BITS, last = (pos + n - 1) >> CACHE_BLOCK_BITS;
	uint64_t aoff = first << CACHE_BLOCK_BITS, alen = (last - first + 1) << CACHE_BLOCK_BITS;
	bool all = true;
	uint8_t *tmp;
	int ret;

	/* The last block of a volume whose length is no multiple of it is
	 * read directly. */
	if (n > CACHE_MAX_READ || aoff + alen > p->length)
		return 1;
	if (!c->tag) {
		c->tag = calloc(CACHE_SLOTS, sizeof(*c->tag));
		c->data = malloc(CACHE_SLOTS * CACHE_BLOCK);
		if (!c->tag || !c->data) {
			cache_free(c);
			return 1;
		}
	}
	for (uint64_t b = first; all && b <= last; b++)
		all = cache_block(c, b) != NULL;
	if (all) {
		for (uint64_t b = first; b <= last; b++) {
			uint64_t lo = b == first ? pos - aoff - ((b - first) << CACHE_BLOCK_BITS) : 0;
			uint64_t hi = b == last ? pos + n - (b << CACHE_BLOCK_BITS) : CACHE_BLOCK;

			memcpy(buf, cache_block(c, b) + lo, hi - lo);
			buf += hi - lo;
		}
		c->hits += last - first + 1;
		return 0;
	}
	tmp = malloc(alen);
	if (!tmp)
		return 1;
	ret = gp_disk_pread(p->disk, tmp, alen, p->offset + aoff);
	if (ret) {
		/* No second try of the exact range: a disk that failed a read
		 * once is not trusted (a retry could hide a transient error). */
		free(tmp);
		return ret;
	}
	for (uint64_t b = first; b <= last; b++) {
		size_t s = cache_slot(b);

		memcpy(c->data + s * CACHE_BLOCK, tmp + ((b - first) << CACHE_BLOCK_BITS), CACHE_BLOCK);
		c->tag[s] = b + 1;
	}
	c->misses += last - first + 1;
	memcpy(buf, tmp + (pos - aoff), n);
	free(tmp);
	return 0;
}

/* Bring the cached copies of [pos, pos + n) up to date with @buf, just
 * written there; @ok false (the write failed: what the disk holds is
 * unknown) drops them instead. */
static void cache_write(struct gp_ntfs_dev *p, const uint8_t *buf, uint64_t n, uint64_t pos,
			bool ok)
{
	struct gp_ntfs_cache *c = &p->cache;
	uint64_t first = pos >> CACHE_BLOCK_BITS, last = (pos + n - 1) >> CACHE_BLOCK_BITS;

	if (!c->tag || !n)
		return;
	for (uint64_t b = first; b <= last; b++) {
		uint8_t *blk = cache_block(c, b);
		uint64_t bstart = b << CACHE_BLOCK_BITS;
		uint64_t lo = pos > bstart ? pos - bstart : 0;
		uint64_t hi = pos + n < bstart + CACHE_BLOCK ? pos + n - bstart : CACHE_BLOCK;

		if (!blk)
			continue;
		if (ok)
			memcpy(blk + lo, buf + (bstart + lo - pos), hi - lo);
		else
			c->tag[cache_slot(b)] = 0;
	}
}

/* ---- device operations ---------------------------------------------------- */

static int dev_open(struct ntfs_device *dev, int flags)
{
	struct gp_ntfs_dev *p = priv(dev);

	if (NDevOpen(dev)) {
		errno = EBUSY;
		return -1;
	}
	/* Never let libntfs-3g believe it may write to a read-only disk: it
	 * would report success for writes that go nowhere. */
	if ((flags & O_ACCMODE) != O_RDONLY && !p->writable) {
		errno = EROFS;
		return -1;
	}
	if ((flags & O_ACCMODE) == O_RDONLY)
		NDevSetReadOnly(dev);
	p->pos = 0;
	/* Between two mounts the disk may change under another handle. */
	cache_free(&p->cache);
	NDevSetOpen(dev);
	return 0;
}

static int dev_close(struct ntfs_device *dev)
{
	if (!NDevOpen(dev)) {
		errno = EBADF;
		return -1;
	}
	NDevClearOpen(dev);
	cache_free(&priv(dev)->cache);
	return 0;
}

static s64 dev_seek(struct ntfs_device *dev, s64 offset, int whence)
{
	struct gp_ntfs_dev *p = priv(dev);
	int64_t base;

	switch (whence) {
	case SEEK_SET: base = 0; break;
	case SEEK_CUR: base = (int64_t)p->pos; break;
	case SEEK_END: base = (int64_t)p->length; break;
	default:
		errno = EINVAL;
		return -1;
	}
	if ((offset < 0 && -offset > base) || (offset > 0 && offset > INT64_MAX - base)) {
		errno = EINVAL;
		return -1;
	}
	p->pos = (uint64_t)(base + offset);
	return (s64)p->pos;
}

/* Clamp [pos, pos+count) to the volume; libntfs-3g probes the size by
 * reading past the end and expects a short read there, not an error. */
static s64 clamp(struct gp_ntfs_dev *p, s64 count, s64 pos)
{
	if (count < 0 || pos < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((uint64_t)pos >= p->length)
		return 0;
	if ((uint64_t)count > p->length - (uint64_t)pos)
		count = (s64)(p->length - (uint64_t)pos);
	return count;
}

static s64 dev_pread(struct ntfs_device *dev, void *buf, s64 count, s64 pos)
{
	struct gp_ntfs_dev *p = priv(dev);
	s64 n = clamp(p, count, pos);
	int ret;

	if (n <= 0)
		return n;
	ret = cache_read(p, buf, (uint64_t)n, (uint64_t)pos);
	if (ret == 1)
		ret = gp_disk_pread(p->disk, buf, (uint64_t)n, p->offset + (uint64_t)pos);
	if (ret) {
		errno = disk_errno(p, ret);
		return -1;
	}
	return n;
}

static s64 dev_pwrite(struct ntfs_device *dev, const void *buf, s64 count, s64 pos)
{
	struct gp_ntfs_dev *p = priv(dev);
	s64 n;
	int ret;

	if (NDevReadOnly(dev) || !p->writable) {
		errno = EROFS;
		return -1;
	}
	n = clamp(p, count, pos);
	if (n < 0)
		return n;
	if (n == 0 && count > 0) {
		errno = ENOSPC;
		return -1;
	}
	if (n == 0)
		return 0;
	NDevSetDirty(dev);
	ret = gp_disk_pwrite(p->disk, buf, (uint64_t)n, p->offset + (uint64_t)pos);
	cache_write(p, buf, (uint64_t)n, (uint64_t)pos, ret == 0);
	if (ret) {
		errno = disk_errno(p, ret);
		return -1;
	}
	return n;
}

static s64 dev_read(struct ntfs_device *dev, void *buf, s64 count)
{
	struct gp_ntfs_dev *p = priv(dev);
	s64 n = dev_pread(dev, buf, count, (s64)p->pos);

	if (n > 0)
		p->pos += (uint64_t)n;
	return n;
}

static s64 dev_write(struct ntfs_device *dev, const void *buf, s64 count)
{
	struct gp_ntfs_dev *p = priv(dev);
	s64 n = dev_pwrite(dev, buf, count, (s64)p->pos);

	if (n > 0)
		p->pos += (uint64_t)n;
	return n;
}

static int dev_sync(struct ntfs_device *dev)
{
	struct gp_ntfs_dev *p = priv(dev);
	int ret;

	if (NDevReadOnly(dev) || !p->writable)
		return 0;
	ret = gp_disk_flush(p->disk);
	if (ret) {
		errno = disk_errno(p, ret);
		return -1;
	}
	NDevClearDirty(dev);
	return 0;
}

static int dev_stat(struct ntfs_device *dev, struct stat *st)
{
	struct gp_ntfs_dev *p = priv(dev);

	memset(st, 0, sizeof(*st));
	/* A regular file: libntfs-3g then takes the size from us, not from
	 * block-device ioctls on a descriptor it does not have. */
	st->st_mode = S_IFREG | (p->writable ? 0600 : 0400);
	st->st_size = (off_t)p->length;
	st->st_blksize = 4096;
	return 0;
}

static int dev_ioctl(struct ntfs_device *dev, unsigned long request, void *argp)
{
	struct gp_ntfs_dev *p = priv(dev);

	switch (request) {
	case BLKGETSIZE64:
		*(uint64_t *)argp = p->length;
		return 0;
	case BLKGETSIZE:
		*(unsigned long *)argp = (unsigned long)(p->length / 512);
		return 0;
	case BLKSSZGET:
		*(int *)argp = (int)gp_disk_logical_sector_size(p->disk);
		return 0;
	case BLKBSZSET:
		return 0;
	default:
		errno = ENOTTY;
		return -1;
	}
}

static struct ntfs_device_operations gp_ntfs_dev_ops = {
	.open = dev_open,
	.close = dev_close,
	.seek = dev_seek,
	.read = dev_read,
	.write = dev_write,
	.pread = dev_pread,
	.pwrite = dev_pwrite,
	.sync = dev_sync,
	.stat = dev_stat,
	.ioctl = dev_ioctl,
};

struct ntfs_device *gp_ntfs_dev_alloc(const char *name, struct gp_ntfs_dev *dev)
{
	/* ntfs_device_alloc() takes a non-const table; the table is never
	 * modified, it is static only because of that signature. */
	return ntfs_device_alloc(name, 0, &gp_ntfs_dev_ops, dev);
}
