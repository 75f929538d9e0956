/*
 * disk_priv.h — what a gp_disk backend implements. Private to imaging/.
 *
 * A backend defines a struct whose first member is `struct gp_disk base`,
 * implements the operations below, and ends its file with one
 * `const struct gp_disk_ops` table. disk.c does range checks, the
 * read-only check and error bookkeeping, so backends see only valid,
 * in-range, non-empty requests.
 */
#ifndef GPUP_DISK_PRIV_H
#define GPUP_DISK_PRIV_H

#include "disk.h"

struct gp_disk_ops {
	const char *name;
	/* Open @path per @opts, allocate the backend struct, fill base.size,
	 * base.lss, base.pss, base.writable. Errors into @err. Required. */
	int (*open)(const char *path, const struct gp_disk_open_opts *opts,
		    struct gp_disk **out, struct gp_error *err);
	/* Required. Errors into d->err. */
	int (*pread)(struct gp_disk *d, void *buf, uint64_t len, uint64_t off);
	/* NULL for read-only backends. Errors into d->err. */
	int (*pwrite)(struct gp_disk *d, const void *buf, uint64_t len, uint64_t off);
	/* Optional (NULL: nothing to flush). Errors into d->err. */
	int (*flush)(struct gp_disk *d);
	/* Required: release everything and free the backend struct. Must not
	 * flush (disk.c already did). Errors into @err. */
	int (*close)(struct gp_disk *d, struct gp_error *err);
	/* Optional: allocation status of the run at @off (see
	 * gp_disk_block_status); NULL means "all allocated". */
	int (*block_status)(struct gp_disk *d, uint64_t off, uint64_t len,
			    bool *allocated, uint64_t *run);
	/* Optional: the VHDX engine handle. */
	struct vhdx *(*vhdx)(struct gp_disk *d);
};

struct gp_disk {
	const struct gp_disk_ops *ops;
	struct gp_error err;
	char *path;
	enum gp_disk_format format;
	uint64_t size;
	uint32_t lss, pss;  /* logical / physical sector size */
	uint64_t alloc_unit; /* see gp_disk_allocation_unit(); 0 if not growing */
	bool writable;
	const char *lock_note; /* the backend's gp_disk_lock note, or NULL */
};

extern const struct gp_disk_ops gp_disk_raw_ops;
extern const struct gp_disk_ops gp_disk_vhdx_ops;
extern const struct gp_disk_ops gp_disk_libvhdi_ops;
extern const struct gp_disk_ops gp_disk_vhd_ops;

/* The disk type field of @path's VHD footer (2 fixed, 3 dynamic, 4
 * differencing). Returns 0 or GP_ERR_NOTFOUND / GP_ERR_IO / GP_ERR_CORRUPT. */
int gp_vhd_disk_type(const char *path, uint32_t *type, struct gp_error *err);

/*
 * The image lock, shared by every backend (disk_lock.c).
 *
 * gp_disk_lock_fd() takes an advisory lock on @fd for the life of the
 * descriptor: exclusive when @exclusive, else shared. GP_ERR_LOCKED names
 * @path when another process holds a conflicting lock.
 *
 * On a file system without POSIX locks (the lock call fails with ENOLCK,
 * EOPNOTSUPP, EINVAL or ENOSYS: WSL's 9p /mnt/c) it falls back to a lock
 * file, PATH.gpup-lock holding "gpup pid N host H": a writer creates it
 * with O_EXCL (@lk->file, removed by gp_disk_lock_release()), a reader
 * only refuses while it exists. An existing one is GP_ERR_LOCKED naming
 * the file and how to remove it ("stale" when its pid is gone on this
 * host). @lk->note then says which of the two happened, for
 * gp_disk_warning(). Always call gp_disk_lock_release() once done
 * (no-op on a zeroed or failed @lk).
 */
struct gp_disk_lock {
	char *file; /* the lock file this handle created, or NULL */
	char *note; /* the warning "no POSIX locks here ...", or NULL */
};

int gp_disk_lock_fd(int fd, const char *path, bool exclusive, struct gp_disk_lock *lk,
		    struct gp_error *err);
void gp_disk_lock_release(struct gp_disk_lock *lk);

/* The error for an open of the image @path that failed with @errnum:
 * GP_ERR_NOTFOUND for ENOENT; GP_ERR_LOCKED "in use by Hyper-V (is the VM
 * running?)" for EACCES, EBUSY, ETXTBSY (a running VM's VHDX seen through
 * WSL's /mnt/c; EACCES also says "or not writable/readable by you");
 * else GP_ERR_IO with errno's text. */
int gp_disk_open_error(const char *path, bool writable, int errnum, struct gp_error *err);

/*
 * Write-behind for a backend's file descriptor: call after each write of
 * @len bytes; every GP_WRITEBEHIND_BYTES it asks the kernel to start
 * writing the file's dirty pages out. Without it Linux starts only at the
 * dirty_background threshold (10 % of RAM) or after 30 s, so a GiB-sized
 * inject left all its data to the fdatasync at the next commit, and the
 * CPU and the disk took turns instead of working together (bench/RESULTS.md,
 * "Write-behind"). It waits for no I/O and orders nothing: durability is
 * still the flushes' job. @pending is the caller's counter, 0 at open.
 */
#define GP_WRITEBEHIND_BYTES (16u << 20)
void gp_disk_writebehind(int fd, uint64_t *pending, uint64_t len);

/* disk_check_vhd.c: the VHD container part of gp_check_image(). Returns 0
 * or GP_ERR_NOTFOUND / GP_ERR_IO / GP_ERR_NOMEM (could not check). */
struct gp_check_report;
int gp_check_vhd(const char *path, struct gp_check_report *r, struct gp_error *err);

#endif
