/*
 * ntfsvol_priv.h — what the NTFS module's files share. Private to imaging/.
 *
 *  - ntfs_device.c: a libntfs-3g device (struct ntfs_device_operations) over
 *    a byte range of a gp_disk, so libntfs-3g reads and writes the guest's
 *    volume through gpup's disk stack (no loop device, FUSE or root);
 *  - ntfsvol.c: choosing the volume, the safety checks, mounting, and the
 *    file operations;
 *  - ntfs_alloc.c: where new file data goes (compact placement), and
 *    claiming free runs explicitly where libntfs-3g's allocator gives up;
 *  - ntfs_index.c: case-insensitive search of a directory's index;
 *  - ntfs_space.c: how much space a set of files takes (the plan's check);
 *  - ntfs_bitmap.c: whether $Bitmap marks every cluster files use as used.
 */
#ifndef GPUP_NTFSVOL_PRIV_H
#define GPUP_NTFSVOL_PRIV_H

#include <stdbool.h>
#include <stdint.h>

/* libntfs-3g headers are not self-contained: the C library's types first,
 * then types.h. */
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <ntfs-3g/types.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/security.h>

#include "disk.h"
#include "gp_error.h"
#include "ntfsvol.h"

/* The device's read cache (ntfs_device.c): whole 4 KiB blocks of the
 * volume that small reads (metadata: MFT records, index blocks, $Bitmap)
 * brought in, direct-mapped, written through, empty while the device is
 * closed. Allocated at the first small read. */
struct gp_ntfs_cache {
	uint8_t *data;          /* slots x block bytes */
	uint64_t *tag;          /* block number + 1 per slot; 0: empty */
	uint64_t hits, misses;  /* blocks served from / read into the cache */
};

/* The device's private data: which bytes of which disk hold the volume, the
 * file position for the seek/read/write operations, and the first disk
 * error (libntfs-3g only sees an errno; this keeps what really failed). */
struct gp_ntfs_dev {
	struct gp_disk *disk;   /* borrowed */
	uint64_t offset;        /* byte offset of the volume on the disk */
	uint64_t length;        /* byte length of the volume */
	uint64_t pos;           /* seek position, relative to @offset */
	bool writable;
	struct gp_error err;    /* first disk failure, "" when none */
	struct gp_ntfs_cache cache;
};

/* A mounted volume (ntfsvol.h). */
struct gp_ntfs {
	struct gp_error err;
	struct gp_disk *disk;          /* borrowed */
	struct gp_ntfs_dev dev;        /* the device's private data */
	ntfs_volume *vol;
	struct SECURITY_CONTEXT scx;   /* for ntfs_inherited_id(), SD reads */
	struct PERMISSIONS_CACHE *seccache; /* scx.pseccache points here */
	bool secure_open;              /* ntfs_open_secure() succeeded */
	bool writable;
	bool marked_dirty;             /* we set VOLUME_IS_DIRTY */
	bool began_writing;   /* gp_ntfs_begin_write() was called: the image may differ */
	bool failed;                   /* a modifying operation failed */
	bool source_failed;            /* a write's source failed: the volume is
					* consistent, a file may be incomplete
					* (gp_ntfs_settle() decides) */
	char where[96];                /* "IMAGE: volume N" for messages */
	struct gp_ntfs_volinfo info;
	struct gp_ntfs_placer *placer; /* NULL: library allocator */
};

/* Record a libntfs-3g failure (errno @e) on @v with context; adds the
 * disk's own message when the device saw a disk error. Returns the code. */
int gp_ntfs_fail(struct gp_ntfs *v, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Before the first change: refuse on a read-only volume, write gpup's
 * in-progress marker (a named stream on the root directory), then set
 * VOLUME_IS_DIRTY. The first call opens the root inode itself, so the
 * caller must not hold the root open then (see gp_ntfs_write_pending()).
 * Returns 0 or a code recorded on @v. */
int gp_ntfs_begin_write(struct gp_ntfs *v);

/* ntfs_inode_close() for an inode gpup changed: when writing its MFT
 * record fails (libntfs-3g then keeps the inode for a retry), the unwritten
 * changes are dropped and the inode freed anyway. Returns 0, or -1 with
 * errno from the failed write. */
int gp_ntfs_inode_close(ntfs_inode *ni);

/* True while gp_ntfs_begin_write() still has something to do: mark the
 * volume (opening the root inode), or refuse a read-only one. */
bool gp_ntfs_write_pending(const struct gp_ntfs *v);

/* UTF-8 → UTF-16LE into @out (at most @max units). Returns the length, or
 * -1 for invalid UTF-8 or a longer name (ntfs_files.c). */
int gp_ntfs_to_utf16(const char *s, ntfschar *out, int max);

/* Case-insensitive lookup of @name in directory @dir (see ntfs_files.c).
 * Returns 0 and *@mref, or -1 with errno ENOENT/EEXIST/other. */
int gp_ntfs_lookup_ci(ntfs_volume *vol, ntfs_inode *dir, const ntfschar *name, int len,
		      u64 *mref);

/* Every file directory @dir's index names @name (UTF-16, @len units) under,
 * letter case ignored for every name type, by a walk of the index B+tree
 * (ntfs_index.c; the index must be reachable from its root, see
 * ntfs_files.c). Returns 0 with *@matches (distinct files) and *@mref (one
 * of them), or -1 with errno. */
int gp_ntfs_index_find_ci(ntfs_volume *vol, ntfs_inode *dir, const ntfschar *name, int len,
			  int *matches, u64 *mref);

/* Allocate a libntfs-3g device named @name over @dev (which must outlive
 * it). Returns NULL with errno set. Free with ntfs_device_free() (by
 * ntfs_umount() once mounted). */
struct ntfs_device *gp_ntfs_dev_alloc(const char *name, struct gp_ntfs_dev *dev);

/* Placement of new file data (ntfs_alloc.c). */
struct gp_ntfs_placer;

/* Build the placement plan for @vol over @disk (the disk that holds it at
 * byte @vol_offset): which free clusters sit in container blocks that are
 * already allocated, then the longest free runs elsewhere, filled one after
 * the other (mkntfs leaves the free space in two or more runs around
 * $MFTMirr and $LogFile). Returns NULL when
 * no plan is needed (a disk that does not grow) or on allocation failure
 * (then the library's allocator is used: correct, only less compact). */
struct gp_ntfs_placer *gp_ntfs_placer_new(ntfs_volume *vol, struct gp_disk *disk,
					  uint64_t vol_offset);
void gp_ntfs_placer_free(struct gp_ntfs_placer *p);

/* Give the non-resident, empty, unnamed $DATA attribute @na its clusters
 * for @size bytes at the places the plan prefers (@p NULL: where
 * ntfs_attr_truncate_solid() puts them). When libntfs-3g's allocator
 * refuses although the volume has the clusters, the longest free runs are
 * claimed explicitly, so this fails only on a volume that is really full.
 * Returns 0, or -1 with errno set (ENOSPC when the volume is full). */
int gp_ntfs_placer_allocate(struct gp_ntfs_placer *p, ntfs_attr *na, uint64_t size);

#endif
