/* ntfs_device.c — a libntfs-3g device over a byte range of a gp_disk.
 *
 * libntfs-3g does all its I/O through a struct ntfs_device_operations; this
 * table maps each operation onto gp_disk_pread/pwrite at the volume's byte
 * offset. libntfs-3g only understands errno, so a disk failure is mapped to
 * the nearest errno and its message is kept in the device (gp_ntfs_dev.err)
 * for the final error to say what really failed. */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <fcntl.h>
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
