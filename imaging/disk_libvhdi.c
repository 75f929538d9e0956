/*
 * disk_libvhdi.c — libvhdi as a read-only gp_disk backend.
 *
 * This is gpup's independent reader: verification re-reads an image through
 * it so that a bug in gpup's own VHDX engine cannot hide itself. libvhdi
 * ignores the VHDX log (../shared/UPSTREAM.md), so a VHDX whose log is not
 * empty is refused here rather than read stale.
 */
#include "disk_priv.h"
#include "vhdx.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libvhdi.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Hyper-V chains are rarely deeper than a handful of checkpoints; the bound
 * only stops a parent cycle. */
#define MAX_CHAIN 64

struct vhdi_disk {
	struct gp_disk base;
	libvhdi_file_t *files[MAX_CHAIN]; /* [0] the image, then its parents */
	int nfiles;
	int lock_fd;
	struct gp_disk_lock lock;
};

/* Copy libvhdi's error text into @err and free it. */
static int vhdi_fail(struct gp_error *err, int code, libvhdi_error_t *lerr,
		     const char *path, const char *what)
{
	char text[1024] = "";

	if (lerr) {
		/* The backtrace lists the innermost failure first: that line
		 * holds the cause ("... with error: Input/output error"), where
		 * libvhdi_error_sprint() gives only the outermost ("unable to
		 * read buffer"). Messages are one line: keep that one. */
		libvhdi_error_backtrace_sprint(lerr, text, sizeof(text));
		libvhdi_error_free(&lerr);
		text[strcspn(text, "\n")] = '\0';
	}
	/* Name the image and the reader: a raw libvhdi line alone ("...:
	 * unable to read region table: mismatch in checksum") does not say
	 * which image or which of gpup's readers failed. */
	return gp_error_set(err, code, "%s: %s (independent reader libvhdi)%s%s", path, what,
			    text[0] ? ": " : "", text);
}

/* Where the parent of @child lives. A VHDX child: its parent locator, read
 * as the engine reads it (relative_path first): libvhdi knows only
 * absolute_win32_path, which gpup leaves out where no Windows form of the
 * path exists. Only the name comes from there; libvhdi itself checks that
 * the parent matches (libvhdi_file_set_parent_file()). A VHD child: the
 * libvhdi-reported parent file name (a Windows path) reduced to its last
 * component, looked up beside the child (Hyper-V records absolute Windows
 * paths that mean nothing here). */
static int parent_candidate(const char *child, libvhdi_file_t *f, char *out,
			    size_t outlen, struct gp_error *err)
{
	libvhdi_error_t *lerr = NULL;
	uint8_t name[PATH_MAX];
	char dir[PATH_MAX], *found = NULL;
	const char *base;
	enum gp_disk_format fmt;
	size_t size = 0;
	int ret;

	ret = gp_disk_detect_format(child, &fmt, err);
	if (ret)
		return ret;
	if (fmt == GP_DISK_FORMAT_VHDX) {
		ret = vhdx_parent_path(child, &found, err);
		if (ret)
			return ret;
		if ((size_t)snprintf(out, outlen, "%s", found) >= outlen)
			ret = gp_error_set(err, GP_ERR_INVALID, "%s: parent path too long", child);
		free(found);
		return ret;
	}
	if (libvhdi_file_get_utf8_parent_filename_size(f, &size, &lerr) != 1 || size == 0 ||
	    size > sizeof(name))
		return vhdi_fail(err, GP_ERR_CORRUPT, lerr, child,
				 "differencing image names no usable parent file");
	if (libvhdi_file_get_utf8_parent_filename(f, name, size, &lerr) != 1)
		return vhdi_fail(err, GP_ERR_CORRUPT, lerr, child, "cannot read parent file name");
	base = strrchr((char *)name, '\\');
	base = base ? base + 1 : (const char *)name;
	if (strrchr(base, '/'))
		base = strrchr(base, '/') + 1;
	snprintf(dir, sizeof(dir), "%s", child);
	if ((size_t)snprintf(out, outlen, "%s/%s", dirname(dir), base) >= outlen)
		return gp_error_set(err, GP_ERR_INVALID, "%s: parent path too long", child);
	return 0;
}

static int vhdi_open_one(const char *path, libvhdi_file_t **out, struct gp_error *err)
{
	libvhdi_error_t *lerr = NULL;
	libvhdi_file_t *f = NULL;

	if (access(path, R_OK) != 0)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO,
					  errno, "%s", path);
	if (libvhdi_file_initialize(&f, &lerr) != 1)
		return vhdi_fail(err, GP_ERR_NOMEM, lerr, path, "libvhdi initialisation failed");
	if (libvhdi_file_open(f, path, LIBVHDI_OPEN_READ, &lerr) != 1) {
		libvhdi_file_free(&f, NULL);
		return vhdi_fail(err, GP_ERR_CORRUPT, lerr, path, "libvhdi cannot open it");
	}
	*out = f;
	return 0;
}

static int refuse_dirty_log(const char *path, struct gp_error *err)
{
	enum gp_disk_format fmt;
	bool dirty = false;
	int ret;

	ret = gp_disk_detect_format(path, &fmt, err);
	if (ret || fmt != GP_DISK_FORMAT_VHDX)
		return ret;
	ret = vhdx_log_is_dirty(path, &dirty, err);
	if (ret)
		return ret;
	if (dirty)
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: the VHDX log holds unapplied updates, which libvhdi would ignore; "
				    "open it read-write with gpup once to replay the log",
				    path);
	return 0;
}

static int vhdi_close(struct gp_disk *d, struct gp_error *err)
{
	struct vhdi_disk *v = (struct vhdi_disk *)d;

	(void)err;
	for (int i = 0; i < v->nfiles; i++) {
		libvhdi_file_close(v->files[i], NULL);
		libvhdi_file_free(&v->files[i], NULL);
	}
	if (v->lock_fd >= 0)
		close(v->lock_fd);
	gp_disk_lock_release(&v->lock);
	free(v);
	return 0;
}

static int vhdi_open(const char *path, const struct gp_disk_open_opts *opts,
		     struct gp_disk **out, struct gp_error *err)
{
	libvhdi_error_t *lerr = NULL;
	char cur[PATH_MAX], next[PATH_MAX];
	struct vhdi_disk *v;
	size64_t media = 0;
	uint32_t bps = 0;
	uint32_t type = 0;
	int ret;

	v = calloc(1, sizeof(*v));
	if (!v)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	v->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (v->lock_fd < 0) {
		ret = gp_disk_open_error(path, false, errno, err);
		goto fail;
	}
	/* A reader must not see a write in progress. */
	ret = gp_disk_lock_fd(v->lock_fd, path, false, &v->lock, err);
	v->base.lock_note = v->lock.note;
	if (ret)
		goto fail;

	snprintf(cur, sizeof(cur), "%s", path);
	for (;;) {
		if (v->nfiles == MAX_CHAIN) {
			ret = gp_error_set(err, GP_ERR_CORRUPT,
					   "%s: parent chain longer than %d images (a cycle?)",
					   path, MAX_CHAIN);
			goto fail;
		}
		ret = refuse_dirty_log(cur, err);
		if (ret)
			goto fail;
		ret = vhdi_open_one(cur, &v->files[v->nfiles], err);
		if (ret)
			goto fail;
		v->nfiles++;
		if (libvhdi_file_get_disk_type(v->files[v->nfiles - 1], &type, &lerr) != 1) {
			ret = vhdi_fail(err, GP_ERR_CORRUPT, lerr, cur, "unknown disk type");
			goto fail;
		}
		if (type != LIBVHDI_DISK_TYPE_DIFFERENTIAL)
			break;
		if (v->nfiles == 1 && opts->parent_path)
			snprintf(next, sizeof(next), "%s", opts->parent_path);
		else if ((ret = parent_candidate(cur, v->files[v->nfiles - 1], next,
						 sizeof(next), err)))
			goto fail;
		if (access(next, R_OK) != 0) {
			ret = gp_error_set(err, GP_ERR_NOTFOUND,
					   "%s: parent image %s not found (use --parent PATH)", cur, next);
			goto fail;
		}
		snprintf(cur, sizeof(cur), "%s", next);
	}
	/* libvhdi wants parents attached from the base upwards. */
	for (int i = v->nfiles - 2; i >= 0; i--) {
		if (libvhdi_file_set_parent_file(v->files[i], v->files[i + 1], &lerr) != 1) {
			ret = vhdi_fail(err, GP_ERR_CORRUPT, lerr, path,
					"parent does not match the child (identifier mismatch)");
			goto fail;
		}
	}
	if (libvhdi_file_get_media_size(v->files[0], &media, &lerr) != 1 ||
	    libvhdi_file_get_bytes_per_sector(v->files[0], &bps, &lerr) != 1) {
		ret = vhdi_fail(err, GP_ERR_CORRUPT, lerr, path, "cannot read disk geometry");
		goto fail;
	}
	v->base.size = media;
	v->base.lss = bps ? bps : 512;
	v->base.pss = v->base.lss;
	v->base.writable = false;
	*out = &v->base;
	return 0;
fail:
	vhdi_close(&v->base, NULL);
	return ret;
}

static int vhdi_pread(struct gp_disk *d, void *buf, uint64_t len, uint64_t off)
{
	struct vhdi_disk *v = (struct vhdi_disk *)d;
	libvhdi_error_t *lerr = NULL;
	uint64_t done = 0;

	while (done < len) {
		/* libvhdi takes size_t and returns ssize_t; go in bounded pieces. */
		size_t chunk = len - done > (1u << 30) ? (1u << 30) : (size_t)(len - done);
		ssize_t n = libvhdi_file_read_buffer_at_offset(v->files[0], (uint8_t *)buf + done,
							       chunk, (off64_t)(off + done), &lerr);
		if (n <= 0)
			return vhdi_fail(&d->err, GP_ERR_IO, lerr, d->path, "libvhdi read failed");
		done += (uint64_t)n;
	}
	return 0;
}

const struct gp_disk_ops gp_disk_libvhdi_ops = {
	.name = "libvhdi",
	.open = vhdi_open,
	.pread = vhdi_pread,
	.close = vhdi_close,
};
