/* disk.c — format detection, backend dispatch and the checks every backend
 * relies on (range, read-only, error bookkeeping). See disk.h. */
#include "disk_priv.h"
#include "le.h"
#include "vhdx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* VHDX file type identifier (MS-VHDX 2.2.1) and VHD footer cookie. */
#define VHDX_SIGNATURE "vhdxfile"
#define VHD_COOKIE "conectix"
#define VHD_FOOTER_SIZE 512

static const struct {
	const char *name;
	enum gp_disk_format format;
} format_names[] = {
	{ "auto", GP_DISK_FORMAT_AUTO },
	{ "raw", GP_DISK_FORMAT_RAW },
	{ "vhdx", GP_DISK_FORMAT_VHDX },
	{ "vhd", GP_DISK_FORMAT_VHD },
};

int gp_disk_format_parse(const char *name, enum gp_disk_format *out)
{
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
		if (strcasecmp(name, format_names[i].name) == 0) {
			*out = format_names[i].format;
			return 0;
		}
	}
	return GP_ERR_INVALID;
}

const char *gp_disk_format_name(enum gp_disk_format f)
{
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
		if (format_names[i].format == f)
			return format_names[i].name;
	return "unknown";
}

static int read_exact(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return done == len ? 0 : 1;
}

int gp_disk_detect_format(const char *path, enum gp_disk_format *out,
			  struct gp_error *err)
{
	char buf[VHD_FOOTER_SIZE];
	struct stat st;
	int fd, r, ret = 0;

	/* O_NONBLOCK and the type check: a FIFO named as an image must not
	 * hang gpup. Images are files (raw block devices would need their
	 * size from an ioctl, which no backend does). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return gp_disk_open_error(path, false, errno, err);
	if (fstat(fd, &st) < 0) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: not a regular file", path);
		goto out;
	}
	/* A failed read is an error, never "not this format": taking a VHDX
	 * whose first sector did not read for a raw disk would let a writer
	 * treat its headers as guest data. */
	*out = GP_DISK_FORMAT_RAW;
	r = read_exact(fd, buf, 8, 0);
	if (r < 0)
		goto out_read;
	if (r == 0 && memcmp(buf, VHDX_SIGNATURE, 8) == 0) {
		*out = GP_DISK_FORMAT_VHDX;
		goto out;
	}
	if (r == 0 && memcmp(buf, VHD_COOKIE, 8) == 0)
		*out = GP_DISK_FORMAT_VHD;
	/* A VHD ends with its footer; dynamic VHDs also keep a copy at offset 0. */
	if (st.st_size >= VHD_FOOTER_SIZE) {
		off_t at = st.st_size - VHD_FOOTER_SIZE;

		r = read_exact(fd, buf, VHD_FOOTER_SIZE, at);
		if (r < 0)
			goto out_read;
		if (r == 0 && memcmp(buf, VHD_COOKIE, 8) == 0)
			*out = GP_DISK_FORMAT_VHD;
	}
	goto out;
out_read:
	ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: cannot read to detect the format",
				 path);
out:
	close(fd);
	return ret;
}

void gp_disk_writebehind(int fd, uint64_t *pending, uint64_t len)
{
	*pending += len;
	if (*pending < GP_WRITEBEHIND_BYTES)
		return;
	*pending = 0;
	/* The whole file: the kernel walks only its dirty pages. A failure
	 * (a file system without the call) costs nothing but the overlap; a
	 * write error shows at the next fdatasync. */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

int gp_disk_open(const char *path, const struct gp_disk_open_opts *opts,
		 struct gp_disk **out, struct gp_error *err)
{
	static const struct gp_disk_open_opts defaults;
	const struct gp_disk_ops *ops;
	enum gp_disk_format fmt;
	struct gp_disk *d = NULL;
	int ret;

	if (!opts)
		opts = &defaults;
	*out = NULL;
	fmt = opts->format;
	if (fmt == GP_DISK_FORMAT_AUTO) {
		ret = gp_disk_detect_format(path, &fmt, err);
		if (ret)
			return ret;
	}
	if (opts->backend == GP_DISK_BACKEND_LIBVHDI) {
		if (fmt == GP_DISK_FORMAT_RAW)
			return gp_error_set(err, GP_ERR_UNSUPPORTED,
					    "%s: libvhdi reads only VHD and VHDX images", path);
		ops = &gp_disk_libvhdi_ops;
	} else if (fmt == GP_DISK_FORMAT_VHDX) {
		ops = &gp_disk_vhdx_ops;
	} else if (fmt == GP_DISK_FORMAT_VHD) {
		/* Fixed and dynamic through gpup's VHD backend (read-write);
		 * differencing stays with libvhdi, read-only. */
		uint32_t type = 0;

		ret = gp_vhd_disk_type(path, &type, err);
		if (ret)
			return ret;
		ops = type == 4 ? &gp_disk_libvhdi_ops : &gp_disk_vhd_ops;
	} else {
		ops = &gp_disk_raw_ops;
	}
	if (opts->writable && !ops->pwrite)
		return gp_error_set(err, GP_ERR_READONLY,
				    "%s: %s images can only be opened read-only (backend %s)",
				    path, gp_disk_format_name(fmt), ops->name);
	ret = ops->open(path, opts, &d, err);
	if (ret)
		return ret;
	d->ops = ops;
	d->format = fmt;
	d->path = strdup(path);
	if (!d->path) {
		ops->close(d, NULL);
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	}
	*out = d;
	return 0;
}

static int check_range(struct gp_disk *d, uint64_t len, uint64_t off)
{
	uint64_t end;

	if (add_u64(off, len, &end) || end > d->size)
		return gp_error_set(&d->err, GP_ERR_INVALID,
				    "%s: access at offset %llu length %llu is beyond the disk's %llu bytes",
				    d->path, (unsigned long long)off, (unsigned long long)len,
				    (unsigned long long)d->size);
	return 0;
}

int gp_disk_pread(struct gp_disk *d, void *buf, uint64_t len, uint64_t off)
{
	int ret;

	gp_error_clear(&d->err); /* each call reports its own failure */
	ret = check_range(d, len, off);

	if (ret || len == 0)
		return ret;
	return d->ops->pread(d, buf, len, off);
}

int gp_disk_pwrite(struct gp_disk *d, const void *buf, uint64_t len, uint64_t off)
{
	int ret;

	gp_error_clear(&d->err);
	if (!d->writable || !d->ops->pwrite)
		return gp_error_set(&d->err, GP_ERR_READONLY, "%s: disk is open read-only",
				    d->path);
	ret = check_range(d, len, off);
	if (ret || len == 0)
		return ret;
	return d->ops->pwrite(d, buf, len, off);
}

int gp_disk_flush(struct gp_disk *d)
{
	gp_error_clear(&d->err);
	if (!d->writable || !d->ops->flush)
		return 0;
	return d->ops->flush(d);
}

int gp_disk_close(struct gp_disk *d, struct gp_error *err)
{
	char *path;
	int ret = 0, ret2;

	if (!d)
		return 0;
	path = d->path;
	if (d->writable && d->ops->flush) {
		ret = d->ops->flush(d);
		if (ret)
			gp_error_copy(err, &d->err);
	}
	ret2 = d->ops->close(d, err);
	if (!ret)
		ret = ret2;
	free(path);
	return ret;
}

uint64_t gp_disk_size(const struct gp_disk *d) { return d->size; }
uint32_t gp_disk_logical_sector_size(const struct gp_disk *d) { return d->lss; }
uint32_t gp_disk_physical_sector_size(const struct gp_disk *d) { return d->pss; }
bool gp_disk_is_writable(const struct gp_disk *d) { return d->writable; }
const char *gp_disk_path(const struct gp_disk *d) { return d->path; }
const char *gp_disk_backend_name(const struct gp_disk *d) { return d->ops->name; }
enum gp_disk_format gp_disk_format(const struct gp_disk *d) { return d->format; }
const struct gp_error *gp_disk_error(const struct gp_disk *d) { return &d->err; }
void gp_disk_clear_error(struct gp_disk *d) { gp_error_clear(&d->err); }

uint64_t gp_disk_allocation_unit(const struct gp_disk *d) { return d->alloc_unit; }

int gp_disk_block_status(struct gp_disk *d, uint64_t off, uint64_t len,
			 bool *allocated, uint64_t *run)
{
	int ret;

	gp_error_clear(&d->err);
	ret = check_range(d, len, off);
	if (ret)
		return ret;
	if (len == 0)
		return gp_error_set(&d->err, GP_ERR_INVALID, "%s: empty block-status query", d->path);
	if (!d->ops->block_status) {
		*allocated = true;
		*run = len;
		return 0;
	}
	return d->ops->block_status(d, off, len, allocated, run);
}

struct vhdx *gp_disk_vhdx(struct gp_disk *d)
{
	return d->ops->vhdx ? d->ops->vhdx(d) : NULL;
}

const char *gp_disk_warning(struct gp_disk *d)
{
	struct vhdx *v = gp_disk_vhdx(d);

	/* The VHDX engine folds its lock note into its own warning. */
	if (v)
		return vhdx_warning(v);
	return d->lock_note ? d->lock_note : "";
}
