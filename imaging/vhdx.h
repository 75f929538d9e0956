/*
 * vhdx.h — gpup's VHDX engine (MS-VHDX 1.0): read, write, create, log
 * replay, differencing chains.
 *
 * Why our own engine: libvhdi is read-only and ignores the log; qemu refuses
 * differencing and 4096-byte-sector VHDX (../shared/UPSTREAM.md).
 *
 * Errors follow gp_error.h. Functions on an open image record the detail on
 * the image (vhdx_error()); constructors and path-based helpers take the
 * caller's @err. Messages are one line and start with the image's path, then
 * the structure and its file offset ("x.vhdx: region table 2 at 0x40000:
 * entry 1 overlaps the log").
 *
 * Crash safety: data goes to the file first, then (after a flush) every BAT
 * change is written as a log entry, flushed, applied in place, flushed, and
 * the header's LogGuid is cleared. A crash at any point leaves an image that
 * opens (a read-write open replays the log; a read-only open presents the
 * replayed view in memory without writing). A clean vhdx_close() never leaves
 * a non-empty log behind.
 *
 * Test-only hook (never set it in production):
 *   GPUP_TEST_CRASH_AT=N   a read-write image calls _exit(99) right after its
 *                          N-th flush boundary (N >= 1), counted over the
 *                          life of the handle. The boundaries are the
 *                          fdatasync()s of, in order: the two header updates
 *                          of the first write (new File/DataWriteGuid); then
 *                          per BAT commit: the data, the log entry (log not
 *                          yet active: a crash leaves the previous state), the
 *                          header naming the LogGuid (a crash leaves a log
 *                          with unapplied BAT updates), the BAT applied in
 *                          place (a crash leaves a dirty but applied log), the
 *                          header clearing the LogGuid; and a data flush at
 *                          flush/close when data was written since the last
 *                          boundary. So `gpup disk write`
 *                          into an unallocated block of a clean image crashes
 *                          with a dirty, unapplied log at N=5 and a dirty,
 *                          applied one at N=6, and has 7 boundaries in all.
 */
#ifndef GPUP_VHDX_H
#define GPUP_VHDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"

struct vhdx;

enum vhdx_disk_type {
	VHDX_DISK_FIXED = 1,        /* every block FULLY_PRESENT, LeaveBlockAllocated */
	VHDX_DISK_DYNAMIC = 2,      /* blocks allocated on first write */
	VHDX_DISK_DIFFERENCING = 3, /* HasParent: absent blocks read from the parent */
};

enum vhdx_log_state {
	VHDX_LOG_EMPTY = 0,  /* LogGuid zero: nothing to replay */
	VHDX_LOG_DIRTY = 1,  /* LogGuid set: the log holds updates not yet applied */
};

/* GUIDs as text: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case, NUL. */
#define VHDX_GUID_STR_LEN 37

/* The parent locator of a differencing image (MS-VHDX 2.6.2.6). Every
 * member is a malloc'ed UTF-8 string converted from the UTF-16 value, or
 * NULL when the key is absent. */
struct vhdx_parent_locator {
	char *parent_linkage;       /* parent's DataWriteGuid, "{...}" as stored */
	char *parent_linkage2;
	char *relative_path;        /* Windows form, e.g. ".\\base.vhdx" */
	char *volume_path;
	char *absolute_win32_path;
};

struct vhdx_info {
	enum vhdx_disk_type type;
	uint64_t virtual_size;          /* bytes */
	uint32_t block_size;            /* bytes, 1 MiB .. 256 MiB, power of 2 */
	uint32_t logical_sector_size;   /* 512 or 4096 */
	uint32_t physical_sector_size;  /* 512 or 4096 */
	uint32_t chunk_ratio;           /* payload blocks per sector-bitmap block */
	uint16_t version;               /* header Version (1) */
	uint16_t log_version;           /* header LogVersion (0) */
	uint64_t header_sequence;       /* SequenceNumber of the current header */
	int current_header;             /* 1 or 2: the slot in use */
	bool leave_block_allocated;
	bool has_parent;
	uint64_t file_size;             /* bytes of the container file */
	uint64_t log_offset, log_length;/* the log region */
	uint64_t bat_entries;           /* total BAT entries incl. sector-bitmap ones */
	uint64_t allocated_blocks;      /* payload blocks with file space */
	/* The state of the log on disk when the image was opened. A read-write
	 * open replays a dirty log (log_replayed then says so); a read-only open
	 * presents the replayed view in memory and leaves the file alone. */
	enum vhdx_log_state log_state;
	bool log_replayed;
	char disk_id[VHDX_GUID_STR_LEN];          /* page 83 data */
	char data_write_guid[VHDX_GUID_STR_LEN];
	char file_write_guid[VHDX_GUID_STR_LEN];
	char log_guid[VHDX_GUID_STR_LEN];         /* all zeros when empty */
	char *creator;                  /* file identifier's Creator (UTF-8), or NULL */
	struct vhdx_parent_locator parent; /* all NULL unless has_parent */
	/* Resolved parent chain: parent_chain[0] is the direct parent's path,
	 * then its parent, ...; NULL/0 for non-differencing images. */
	char **parent_chain;
	size_t parent_chain_len;
};

struct vhdx_open_opts {
	bool writable;            /* read-write: exclusive lock, log replayed on disk */
	const char *parent_path;  /* override for the direct parent's path, or NULL */
	bool no_lock;             /* read-only: no lock on the image or its parents (an image a
	                           * running VM holds; gpup scan) */
};

/*
 * Open @path. @opts may be NULL (read-only, parent from the locator).
 * Validates file identifier, headers, region tables, metadata and BAT;
 * opens the parent chain of a differencing image (read-only, shared locks);
 * replays a dirty log (on disk when writable, in memory otherwise);
 * survives one damaged region-table copy, rewriting it from the good one
 * when writable (vhdx_warning() says so).
 * Takes an advisory lock: exclusive when writable, else shared (none with
 * no_lock).
 * On success *@out owns the image; release it with vhdx_close().
 * Returns 0 or GP_ERR_NOTFOUND (image or parent missing), GP_ERR_IO,
 * GP_ERR_CORRUPT (structure and offset named), GP_ERR_UNSUPPORTED,
 * GP_ERR_MISMATCH (parent's DataWriteGuid differs from parent_linkage),
 * GP_ERR_LOCKED, GP_ERR_NOMEM. Details into @err.
 */
int vhdx_open(const char *path, const struct vhdx_open_opts *opts, struct vhdx **out,
	      struct gp_error *err);

/* Read @len bytes of the virtual disk at @off into @buf. The range must lie
 * within the virtual size. Returns 0 or GP_ERR_INVALID (range), GP_ERR_IO,
 * GP_ERR_CORRUPT (a BAT entry used is invalid). */
int vhdx_pread(struct vhdx *v, void *buf, uint64_t len, uint64_t off);

/* Write @len bytes at @off (any alignment). Allocates blocks as needed
 * (1 MiB-aligned at the end of the file), copies blocks up from the parent
 * in a differencing image. The first write of a handle updates the headers
 * (new FileWriteGuid and DataWriteGuid). BAT changes are batched and
 * committed through the log at vhdx_flush(), vhdx_close(), or when the
 * batch is large (128 dirty 4 KiB BAT sectors, or 1 GiB of new blocks). Returns 0 or GP_ERR_INVALID (range), GP_ERR_READONLY,
 * GP_ERR_IO, GP_ERR_NOSPACE, GP_ERR_CORRUPT. */
int vhdx_pwrite(struct vhdx *v, const void *buf, uint64_t len, uint64_t off);

/* Make every completed write durable: data flushed, pending BAT changes
 * committed through the log, log emptied. No-op for read-only images.
 * Returns 0 or GP_ERR_IO / GP_ERR_NOSPACE. */
int vhdx_flush(struct vhdx *v);

/* Flush (when writable), unlock, close the parent chain and free @v (NULL is
 * a no-op). Returns 0 or the first error (details into @err, may be NULL).
 * @v is freed either way. */
int vhdx_close(struct vhdx *v, struct gp_error *err);

/* The error recorded by the last failing call on @v. */
const struct gp_error *vhdx_error(const struct vhdx *v);

/* What open found damaged but survived, one line, "" when nothing: a
 * region-table copy with a bad checksum ("...; region table 1 is in use (a
 * read-write open repairs the damaged copy)", or after a read-write open
 * "...; repaired from region table 1"). Tools print it as a warning. */
const char *vhdx_warning(const struct vhdx *v);

uint64_t vhdx_virtual_size(const struct vhdx *v);
uint32_t vhdx_logical_sector_size(const struct vhdx *v);
uint32_t vhdx_physical_sector_size(const struct vhdx *v);
uint32_t vhdx_block_size(const struct vhdx *v);
enum vhdx_disk_type vhdx_disk_type(const struct vhdx *v);

/*
 * Allocation status of the run starting at @off: *@allocated is true when
 * the block holding @off has file space in THIS image (FULLY_ or
 * PARTIALLY_PRESENT); *@run is the length (<= @len, > 0) of the run of
 * blocks sharing that status. Returns 0 or GP_ERR_INVALID (range).
 */
int vhdx_block_status(struct vhdx *v, uint64_t off, uint64_t len, bool *allocated,
		      uint64_t *run);

/*
 * Describe the open image. Fills @out (its strings are malloc'ed; release
 * with vhdx_info_free()). Counting allocated blocks walks the in-memory BAT.
 * Returns 0 or GP_ERR_NOMEM (recorded on @v).
 */
int vhdx_get_info(struct vhdx *v, struct vhdx_info *out);
/* Free what vhdx_get_info() allocated (not @info itself); zeroes @info. */
void vhdx_info_free(struct vhdx_info *info);

/* Readable names: "fixed"/"dynamic"/"differencing", "empty"/"dirty". */
const char *vhdx_disk_type_name(enum vhdx_disk_type t);
const char *vhdx_log_state_name(enum vhdx_log_state s);

struct vhdx_create_opts {
	uint64_t size;                  /* virtual size in bytes; multiple of the logical sector */
	uint32_t block_size;            /* 0: 32 MiB; else 1..256 MiB, power of 2 */
	uint32_t logical_sector_size;   /* 0: 512; else 512 or 4096 */
	uint32_t physical_sector_size;  /* 0: 4096; else 512 or 4096 */
};

/*
 * Create a new, empty dynamic VHDX at @path (refuses to overwrite:
 * GP_ERR_EXISTS). Layout: headers, region tables, a 1 MiB log at 1 MiB,
 * metadata at 2 MiB, the BAT after it. Returns 0 or GP_ERR_EXISTS,
 * GP_ERR_INVALID (size, block or sector size out of range), GP_ERR_IO,
 * GP_ERR_NOSPACE, GP_ERR_NOMEM. A failed create removes the partial file.
 */
int vhdx_create(const char *path, const struct vhdx_create_opts *opts, struct gp_error *err);

/*
 * Create a differencing child at @path of the VHDX at @parent_path (which is
 * only read; it stays byte-identical). The child takes the parent's virtual
 * size, block size and sector sizes; its parent locator records
 * parent_linkage = the parent's DataWriteGuid, relative_path (relative to
 * the child's directory, Windows separators) and, only where the parent's
 * path has a Windows form (/mnt/X/... under WSL), absolute_win32_path
 * ("\\?\X:\..."). Every chunk gets an allocated, zero-filled (sparse)
 * sector bitmap block, so that libvhdi reads the absent blocks from the
 * parent (../shared/UPSTREAM.md). Returns like vhdx_create(), plus the
 * parent's vhdx_open() errors.
 */
int vhdx_create_child(const char *path, const char *parent_path, struct gp_error *err);

/* The path of the parent image of the differencing VHDX at @path, found
 * through its parent locator as vhdx_open() finds it (relative_path first),
 * without opening the parent. *@parent is malloc'ed. Returns 0 or
 * GP_ERR_INVALID (not a differencing image), GP_ERR_NOTFOUND (no candidate
 * exists), vhdx_open()'s errors for the child. */
int vhdx_parent_path(const char *path, char **parent, struct gp_error *err);

/*
 * Check the VHDX at @path for `gpup check` (disk_check.h), read-only: each
 * header and region-table copy, then everything vhdx_open() validates,
 * the log state, and file space no structure references; a differencing
 * image's parent (@parent overrides the locator) is opened to check the
 * link. Findings go into @r. Returns 0 or GP_ERR_NOTFOUND / GP_ERR_IO /
 * GP_ERR_NOMEM (could not check; details into @err).
 */
struct gp_check_report;
int vhdx_check(const char *path, const char *parent, struct gp_check_report *r,
	       struct gp_error *err);

/* Does @path's current header carry a non-zero LogGuid (a log with updates
 * not yet applied)? Reads headers only; never writes.
 * Returns 0 and sets *@dirty, or GP_ERR_IO / GP_ERR_CORRUPT. */
int vhdx_log_is_dirty(const char *path, bool *dirty, struct gp_error *err);

#endif
