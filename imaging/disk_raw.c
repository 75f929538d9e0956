/* disk_raw.c — a plain file as a virtual disk. */
#include "disk_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct raw_disk {
	struct gp_disk base;
	int fd;
	struct gp_disk_lock lock;
	uint64_t writebehind; /* see gp_disk_writebehind() */
};

static int raw_open(const char *path, const struct gp_disk_open_opts *opts,
		    struct gp_disk **out, struct gp_error *err)
{
	struct gp_disk_lock lock = { 0 };
	struct raw_disk *r;
	struct stat st;
	int fd, ret;

	fd = open(path, (opts->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return gp_disk_open_error(path, opts->writable, errno, err);
	ret = opts->no_lock && !opts->writable ? 0
					       : gp_disk_lock_fd(fd, path, opts->writable, &lock, err);
	if (ret)
		goto out_fd;
	if (fstat(fd, &st) < 0) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		goto out_fd;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
		goto out_fd;
	}
	r->fd = fd;
	r->lock = lock;
	r->base.lock_note = lock.note;
	r->base.size = (uint64_t)st.st_size;
	r->base.lss = 512;
	r->base.pss = 512;
	r->base.writable = opts->writable;
	*out = &r->base;
	return 0;
out_fd:
	gp_disk_lock_release(&lock);
	close(fd);
	return ret;
}

static int raw_pread(struct gp_disk *d, void *buf, uint64_t len, uint64_t off)
{
	struct raw_disk *r = (struct raw_disk *)d;
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(r->fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gp_error_set_errno(&d->err, GP_ERR_IO, errno,
						  "%s: read at %llu", d->path,
						  (unsigned long long)(off + done));
		if (n == 0)
			return gp_error_set(&d->err, GP_ERR_IO, "%s: unexpected end of file at %llu",
					    d->path, (unsigned long long)(off + done));
		done += (uint64_t)n;
	}
	return 0;
}

static int raw_pwrite(struct gp_disk *d, const void *buf, uint64_t len, uint64_t off)
{
	struct raw_disk *r = (struct raw_disk *)d;
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(r->fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gp_error_set_errno(&d->err,
						  errno == ENOSPC || errno == EFBIG ? GP_ERR_NOSPACE : GP_ERR_IO,
						  errno, "%s: write at %llu", d->path,
						  (unsigned long long)(off + done));
		done += (uint64_t)n;
	}
	gp_disk_writebehind(r->fd, &r->writebehind, len);
	return 0;
}

static int raw_flush(struct gp_disk *d)
{
	struct raw_disk *r = (struct raw_disk *)d;

	if (fdatasync(r->fd) < 0)
		return gp_error_set_errno(&d->err, GP_ERR_IO, errno, "%s: flush", d->path);
	return 0;
}

static int raw_close(struct gp_disk *d, struct gp_error *err)
{
	struct raw_disk *r = (struct raw_disk *)d;
	int ret = 0;

	if (close(r->fd) < 0)
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: close", d->path);
	gp_disk_lock_release(&r->lock);
	free(r);
	return ret;
}

const struct gp_disk_ops gp_disk_raw_ops = {
	.name = "raw",
	.open = raw_open,
	.pread = raw_pread,
	.pwrite = raw_pwrite,
	.flush = raw_flush,
	.close = raw_close,
};
