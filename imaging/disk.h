/*
 * disk.h — the virtual-disk interface every other part of gpup reads and
 * writes through.
 *
 * A gp_disk is a flat byte-addressable virtual disk of gp_disk_size() bytes,
 * whatever container holds it. Backends:
 *   - "vhdx"    gpup's own VHDX engine (vhdx.h): read-write, log replay,
 *               differencing chains;
 *   - "libvhdi" libvhdi: read-only VHD/VHDX incl. differencing chains; the
 *               independent reader used for inspection and verification
 *               (it ignores the VHDX log, so it refuses an image whose log
 *               is not empty, see ../shared/UPSTREAM.md);
 *   - "vhd"     gpup's VHD backend (disk_vhd.c): fixed and dynamic VHD,
 *               read-write, crash-safe by write ordering;
 *   - "raw"     a plain file.
 *
 * Errors follow gp_error.h: calls on an open disk record details on the
 * disk (gp_disk_error()); gp_disk_open() records into the caller's @err.
 * Offsets and lengths are bytes, need no alignment, and must stay within
 * gp_disk_size() (GP_ERR_INVALID otherwise).
 */
#ifndef GPUP_DISK_H
#define GPUP_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "gp_error.h"

struct gp_disk;

enum gp_disk_format {
	GP_DISK_FORMAT_AUTO = 0, /* detect: "vhdxfile" → vhdx, "conectix" footer → vhd, else raw */
	GP_DISK_FORMAT_RAW,
	GP_DISK_FORMAT_VHDX,
	GP_DISK_FORMAT_VHD,
};

enum gp_disk_backend {
	GP_DISK_BACKEND_DEFAULT = 0, /* vhdx engine for VHDX, vhd backend for fixed/dynamic VHD
	                              * (libvhdi for differencing VHD), raw for raw */
	GP_DISK_BACKEND_LIBVHDI,     /* force libvhdi (read-only) */
};

struct gp_disk_open_opts {
	enum gp_disk_format format;   /* GP_DISK_FORMAT_AUTO unless forced (--format) */
	enum gp_disk_backend backend;
	bool writable;                /* read-write: replays a dirty VHDX log, takes an exclusive lock */
	const char *parent_path;      /* --parent override for a differencing VHDX's parent, or NULL */
	bool no_lock;                 /* read-only: take no lock at all, to read an image another
	                               * writer (a running VM) holds; what it reads may be changing */
};

/* Parse "raw", "vhdx", "vhd" or "auto". Returns 0 or GP_ERR_INVALID. */
int gp_disk_format_parse(const char *name, enum gp_disk_format *out);

/* Detect the container format of @path from its content.
 * Returns 0 or GP_ERR_IO / GP_ERR_NOTFOUND (recorded in @err). */
int gp_disk_detect_format(const char *path, enum gp_disk_format *out,
			  struct gp_error *err);

/*
 * Open @path. @opts may be NULL (auto-detect, read-only).
 * On success *@out owns the disk; release it with gp_disk_close().
 * Returns 0 or: GP_ERR_NOTFOUND, GP_ERR_IO, GP_ERR_CORRUPT (with the
 * structure and offset named), GP_ERR_UNSUPPORTED, GP_ERR_LOCKED (another
 * writer or a running VM holds the image), GP_ERR_READONLY (writable asked
 * of a read-only backend), GP_ERR_NOMEM. Messages start with the path.
 */
int gp_disk_open(const char *path, const struct gp_disk_open_opts *opts,
		 struct gp_disk **out, struct gp_error *err);

/* Read/write @len bytes at byte @off. Returns 0 or a negative code
 * (GP_ERR_INVALID out of range, GP_ERR_READONLY, GP_ERR_IO, GP_ERR_NOSPACE,
 * GP_ERR_CORRUPT). Short transfers do not exist: all or an error. */
int gp_disk_pread(struct gp_disk *d, void *buf, uint64_t len, uint64_t off);
int gp_disk_pwrite(struct gp_disk *d, const void *buf, uint64_t len, uint64_t off);

/* Make every completed write durable (container metadata included). */
int gp_disk_flush(struct gp_disk *d);

/* Flush (when writable), release the lock and free @d (NULL is a no-op).
 * Returns 0 or the first error; details into @err (may be NULL). The disk is
 * freed either way. */
int gp_disk_close(struct gp_disk *d, struct gp_error *err);

uint64_t gp_disk_size(const struct gp_disk *d);
uint32_t gp_disk_logical_sector_size(const struct gp_disk *d);
uint32_t gp_disk_physical_sector_size(const struct gp_disk *d);
bool gp_disk_is_writable(const struct gp_disk *d);
const char *gp_disk_path(const struct gp_disk *d);
/* Backend name: "vhdx", "vhd", "libvhdi" or "raw". */
const char *gp_disk_backend_name(const struct gp_disk *d);
/* Container format of the opened image. */
enum gp_disk_format gp_disk_format(const struct gp_disk *d);
const char *gp_disk_format_name(enum gp_disk_format f);

const struct gp_error *gp_disk_error(const struct gp_disk *d);
/* Forget the disk's recorded error (after the caller has handled it). */
void gp_disk_clear_error(struct gp_disk *d);

/*
 * Allocation map, for placing new data where the container already has
 * space (a dynamic VHDX grows by whole blocks; writing into blocks already
 * allocated costs no growth).
 *
 * gp_disk_allocation_unit(): the container's allocation granularity in
 * bytes (VHDX block size; 0 for containers that do not grow, e.g. a fixed
 * VHDX; raw files report 0 too, their holes being a host matter).
 * gp_disk_block_status(): is [off, off+len) backed by allocated container
 * space? Sets *@allocated for the run starting at @off and *@run to the
 * length of that run (<= len, > 0). A disk whose backend cannot tell
 * reports everything allocated. Returns 0, or GP_ERR_INVALID (range).
 */
uint64_t gp_disk_allocation_unit(const struct gp_disk *d);
int gp_disk_block_status(struct gp_disk *d, uint64_t off, uint64_t len,
			 bool *allocated, uint64_t *run);

/* Damage the open survived or repaired, one line for the tools to print
 * as a warning ("" when none): a VHDX region-table copy with a bad
 * checksum (vhdx_warning()). */
const char *gp_disk_warning(struct gp_disk *d);

/* Backend-specific handle for code that needs more than bytes (inspect asks
 * the VHDX engine for its headers). NULL when @d is not that backend. */
struct vhdx;
struct vhdx *gp_disk_vhdx(struct gp_disk *d);

#endif
