/*
 * ntfsvol.h — the guest's NTFS volume, read and written through libntfs-3g
 * over gpup's disk stack (no loop device, FUSE or root).
 *
 * gp_ntfs_open() finds the volume on a gp_disk (GPT, MBR or a bare NTFS
 * disk), checks that writing is safe, and mounts it. All path handling lives
 * here: paths are UTF-8, in any of the forms `C:\Windows\System32`,
 * `/Windows/System32` or `Windows/System32`, and are looked up
 * case-insensitively as Windows does (a put never creates a case twin).
 *
 * Safety (writable opens). Before anything is written, the volume is probed
 * through a read-only mount; these states are refused with GP_ERR_REFUSED and
 * leave the image byte-identical:
 *   - BitLocker ("-FVE-FS-" boot sector);
 *   - hibernated Windows (hiberfil.sys starts with "hibr"/"HIBR");
 *   - Fast Startup / hybrid shutdown ($LogFile restart page version 2.0);
 *   - unclean $LogFile (version 1.1, clients in use), unless opts.recover
 *     (the journal is then discarded, as `ntfsfix` would, and the volume
 *     is left marked dirty so Windows runs chkdsk at the next boot);
 *   - VOLUME_IS_DIRTY set (Windows wants chkdsk), unless opts.force or the
 *     dirt is an interrupted gpup write of its own (see volinfo.interrupted).
 * While modifying, the volume carries VOLUME_IS_DIRTY; gp_ntfs_close()
 * clears it only if it was clear before and every operation succeeded.
 *
 * New files and directories get the security descriptor Windows would give
 * them (inherited from the parent directory), are never compressed unless
 * the parent directory is, and their data is placed compactly: first in free
 * clusters of container blocks that are already allocated, then in one
 * contiguous run (see gp_disk_block_status()), so a dynamic VHDX grows by
 * about the payload.
 *
 * Errors follow gp_error.h: gp_ntfs_open() records into the caller's @err,
 * every other call into the volume (gp_ntfs_error()). Each file operation
 * starts with a clear record, so gp_ntfs_error() describes the failure of
 * the last call (an expected GP_ERR_NOTFOUND from gp_ntfs_stat() does not
 * hide a later failure); copy it before the next call if you need it.
 * Messages name the image, the partition and the guest path.
 */
#ifndef GPUP_NTFSVOL_H
#define GPUP_NTFSVOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk.h"
#include "gp_error.h"
#include "gp_progress.h"

struct gp_ntfs;

struct gp_ntfs_open_opts {
	/* 1-based partition number (as gpup inspect shows it), or 0: choose.
	 * Choosing: the only NTFS volume if there is one; otherwise the one
	 * holding \Windows\System32\ntoskrnl.exe; several candidates are an
	 * error listing them. */
	unsigned partition;
	/* Only accept a volume holding \Windows\System32\ntoskrnl.exe (prepare). */
	bool require_windows;
	/* Mount read-write (the disk must be writable). Read-only opens refuse
	 * nothing and never write. */
	bool writable;
	/* A read-only open for a writing command's plan stage: refuse exactly
	 * what a writable open would (below), so that a plan -- and so
	 * `-n` -- fails as the real run would, while nothing is written.
	 * On a writable disk it also repairs, like a writable open, an
	 * $MFTMirr that an interrupted gpup run left behind: that completes
	 * gpup's own earlier write, which libntfs-3g would not mount without. */
	bool plan;
	/* Accept VOLUME_IS_DIRTY (writable and plan opens). */
	bool force;
	/* Accept an unclean $LogFile 1.1, discarding the journal. */
	bool recover;
};

/*
 * Find and mount the volume on @disk (which must outlive the returned
 * handle and, for opts->writable, be writable).
 * On success *@out owns the mounted volume; release with gp_ntfs_close().
 * Returns 0 or:
 *   GP_ERR_NOTFOUND    no NTFS volume (or none with Windows when required),
 *                      or partition N does not exist;
 *   GP_ERR_INVALID     several candidates and no partition given (the
 *                      message lists them), partition N is not NTFS;
 *   GP_ERR_REFUSED     BitLocker, hibernated, Fast Startup, unclean journal
 *                      (without recover), dirty (without force), $MFTMirr
 *                      behind $MFT not left by an interrupted gpup run; the
 *                      message says which and how to fix it;
 *   GP_ERR_CORRUPT     libntfs-3g cannot mount the volume (read-only: also
 *                      $MFTMirr behind $MFT, named as such);
 * A writable open first repairs an $MFTMirr that an interrupted gpup run
 * left one write behind $MFT (the volume is dirty and carries gpup's
 * marker): the mirror records are rewritten from $MFT, as ntfsfix does.
 *   GP_ERR_READONLY    writable asked of a read-only disk;
 *   GP_ERR_IO, GP_ERR_NOMEM, and the disk's codes (the disk's message is kept).
 */
int gp_ntfs_open(struct gp_disk *disk, const struct gp_ntfs_open_opts *opts,
		 struct gp_ntfs **out, struct gp_error *err);

/* Unmount and free @v (NULL is a no-op). A writable volume is flushed and,
 * if every operation succeeded and it was clean at open, marked clean.
 * Returns 0 or the first error (details into @err, may be NULL). The disk is
 * not closed. */
int gp_ntfs_close(struct gp_ntfs *v, struct gp_error *err);

/* After a failed run, the caller's word on what it left.
 * @undone true: every file and directory the run created was removed
 * again and nothing was replaced, so a write whose *source* failed
 * (gp_ntfs_put_stream(): unreadable, too short, too long) no longer
 * counts. @undone false: the run is unfinished (a file was replaced, a
 * removal failed): the volume stays marked dirty with gpup's marker, so
 * that a rerun completes it, even when no single operation failed.
 * Returns true when gp_ntfs_close() will then leave the volume as it was
 * before the run: no operation of the volume itself failed and it was
 * clean at open (VOLUME_IS_DIRTY and the marker gpup set are removed). */
bool gp_ntfs_settle(struct gp_ntfs *v, bool undone);

const struct gp_error *gp_ntfs_error(const struct gp_ntfs *v);
/* Forget the recorded error (after the caller handled it, e.g. an expected
 * GP_ERR_NOTFOUND from a probe). Does not undo a failed write: a volume
 * whose modification failed stays marked dirty at close. */
void gp_ntfs_clear_error(struct gp_ntfs *v);

/* What gp_ntfs_open() found. */
struct gp_ntfs_volinfo {
	unsigned partition;      /* 1-based; 0 for a bare (unpartitioned) volume */
	uint64_t offset, length; /* bytes on the disk */
	uint32_t cluster_size;
	uint64_t total_bytes, free_bytes;
	uint8_t major_ver, minor_ver;
	char label[128];         /* UTF-8 volume label */
	bool has_windows;        /* \Windows\System32\ntoskrnl.exe exists */
	/* State found by the read-only probe (a writable open refused the
	 * unsafe ones unless forced/recovered). */
	bool dirty;              /* VOLUME_IS_DIRTY */
	bool hibernated;         /* hiberfil.sys holds a hibernation image */
	bool fast_startup;       /* $LogFile restart page 2.0 */
	bool log_unclean;        /* $LogFile 1.1 with clients in use */
	/* A gpup write was interrupted (killed, crashed, host failure): the
	 * volume is dirty and carries gpup's in-progress marker (a named
	 * stream "gpup-write-in-progress" on the root directory). A writable
	 * open accepts such a volume without --force, so that running the
	 * same command again completes the job; it stays marked dirty, so
	 * Windows checks it at the next boot. */
	bool interrupted;
};
void gp_ntfs_volinfo(const struct gp_ntfs *v, struct gp_ntfs_volinfo *out);

/* Has this handle begun to modify the volume (so that the image may no
 * longer be byte-identical)? False for read-only handles and for writable
 * ones that only read. */
bool gp_ntfs_began_writing(const struct gp_ntfs *v);

/* Free space now, in bytes (changes as files are written). */
uint64_t gp_ntfs_free_bytes(const struct gp_ntfs *v);

/*
 * Space accounting: will a set of new and replaced files fit? Callers list
 * what they are about to write (gp_ntfs_space_add_file() per file,
 * gp_ntfs_space_add_dir() per directory that does not exist yet, n_parents
 * += 1 per existing directory that receives entries), then ask
 * gp_ntfs_space_check() before the first write.
 *
 * The need is computed from the volume's real state (see ntfs_space.c):
 * whole clusters per file (small new files that stay resident in their MFT
 * record take none; a replaced file's old clusters are freed first), one
 * MFT record per new file and directory and extension records for
 * fragmented runlists, beyond the free records of the current $MFT the
 * $MFT and $MFT-bitmap growth steps libntfs-3g takes, directory index
 * blocks, $Secure growth for inherited security descriptors, and a fixed
 * 32 KiB reserve (gpup's marker). It is an upper
 * bound: a run the check accepts never fails for space (every free cluster
 * is usable, see ntfs_alloc.c). Near the edge it may refuse a set that would
 * just fit, by at most max(1 % of the payload, 4 MiB) for packages of up to
 * some ten thousand files.
 */
struct gp_ntfs_space {
	/* Filled by the caller through the add functions. */
	uint64_t payload;      /* bytes of file data */
	uint64_t data;         /* bytes of the clusters the data takes */
	uint64_t n_files;      /* new files */
	uint64_t n_dirs;       /* new directories */
	uint64_t n_parents;    /* existing directories receiving new entries */
	uint64_t name_units;   /* UTF-16 units of the new names */
	/* Filled by gp_ntfs_space_check(). */
	uint64_t meta;         /* bytes of NTFS metadata and reserve */
	uint64_t need;         /* data + meta */
	uint64_t have;         /* free bytes of the volume */
};

/* Account file @name (the last path component, UTF-8) of @size bytes:
 * @is_new, or replacing a file that holds @old_allocated bytes of
 * clusters. */
void gp_ntfs_space_add_file(const struct gp_ntfs *v, struct gp_ntfs_space *s, const char *name,
			    uint64_t size, bool is_new, uint64_t old_allocated);
/* Account a new directory named @name. */
void gp_ntfs_space_add_dir(struct gp_ntfs_space *s, const char *name);

/* Fill s->meta, s->need and s->have from the volume's bitmaps. Returns 0
 * when need <= have, GP_ERR_NOSPACE ("IMAGE: volume N: not enough free
 * space in the guest volume: need N bytes, have M (D of file data, X of
 * NTFS metadata and reserve)") otherwise, GP_ERR_IO
 * (bitmaps unreadable). Reads only. */
int gp_ntfs_space_check(struct gp_ntfs *v, struct gp_ntfs_space *s);

/*
 * Check that $Bitmap marks every cluster a file uses as used: reads every
 * in-use MFT record (extension records included) once, sequentially, and
 * decodes its non-resident attributes' runs. A volume that fails this would
 * hand live files' clusters to new files (chkdsk repairs it; ntfsfix does
 * not notice). Any mount will do; nothing is written. Memory: twice
 * $Bitmap's size (4 MiB per 128 GiB of 4 KiB clusters) plus 4 MiB.
 * Fills @rep; returns 0 when no file's cluster is marked free (leaked
 * clusters, marked used but owned by no file, are counted but harmless),
 * GP_ERR_CORRUPT naming the first such file ("IMAGE: volume N: NTFS $Bitmap
 * marks clusters A-B of \Windows\System32\config\SYSTEM as free (...; run
 * chkdsk /f in Windows)") or a malformed record, GP_ERR_IO, GP_ERR_NOMEM.
 */
struct gp_ntfs_bitmap_report {
	uint64_t records;        /* in-use MFT records read */
	uint64_t free_in_use;    /* clusters files use that $Bitmap marks free */
	uint64_t leaked;         /* clusters marked used that no file owns */
	/* The first file with clusters marked free (free_in_use > 0): its base
	 * MFT record, the first such stretch of clusters, and its path
	 * ("\dir\name", or "MFT record N" when it has no reachable name). */
	uint64_t first_record;
	uint64_t first_lcn, first_count;
	char first_path[512];
};
int gp_ntfs_check_bitmap(struct gp_ntfs *v, struct gp_ntfs_bitmap_report *rep);

/* FILE_ATTRIBUTE_* bits as Windows defines them. */
enum {
	GP_NTFS_ATTR_READONLY = 0x1,
	GP_NTFS_ATTR_HIDDEN = 0x2,
	GP_NTFS_ATTR_SYSTEM = 0x4,
	GP_NTFS_ATTR_DIRECTORY = 0x10,
	GP_NTFS_ATTR_ARCHIVE = 0x20,
	GP_NTFS_ATTR_SPARSE = 0x200,
	GP_NTFS_ATTR_REPARSE = 0x400,
	GP_NTFS_ATTR_COMPRESSED = 0x800,
	GP_NTFS_ATTR_ENCRYPTED = 0x4000,
};

struct gp_ntfs_stat {
	uint64_t mref;           /* MFT reference (record number | sequence << 48) */
	uint64_t size;           /* bytes of the unnamed data stream; 0 for directories */
	uint64_t allocated;      /* bytes allocated on the volume */
	int64_t mtime;           /* last data change, Unix seconds */
	uint32_t mtime_nsec;
	uint32_t attributes;     /* GP_NTFS_ATTR_* (DIRECTORY set for directories) */
	bool is_dir;
};

/* Stat @path. Returns 0, GP_ERR_NOTFOUND (a component is missing or not a
 * directory), GP_ERR_INVALID (malformed path), GP_ERR_IO.
 * A directory entry whose MFT record is free, never written or reused (an
 * interrupted write left it) names no file: GP_ERR_NOTFOUND here and in
 * every lookup, skipped by gp_ntfs_list(); writing that name removes the
 * entry and creates the file anew. */
int gp_ntfs_stat(struct gp_ntfs *v, const char *path, struct gp_ntfs_stat *st);

/* Called once per directory entry (not "." and "..", not the 8.3 alias of
 * a name, not the NTFS metafiles of the root). @name is UTF-8 and valid only
 * during the call. Return 0 to continue, non-zero to stop (gp_ntfs_list()
 * then returns GP_ERR_ABORTED). */
typedef int (*gp_ntfs_list_fn)(const char *name, const struct gp_ntfs_stat *st, void *ctx);

/* List the directory @path in the volume's index order (case-insensitive
 * collation). Returns 0, GP_ERR_NOTFOUND, GP_ERR_INVALID (@path is a file),
 * GP_ERR_ABORTED, GP_ERR_IO, GP_ERR_NOMEM. */
int gp_ntfs_list(struct gp_ntfs *v, const char *path, gp_ntfs_list_fn fn, void *ctx);

/* Sink for file contents: consume @len bytes; return 0 or a negative
 * GP_ERR_* code (recorded on the volume with the path). */
typedef int (*gp_ntfs_write_fn)(const void *buf, size_t len, void *ctx);

/* Stream the unnamed data of file @path to @fn in large chunks.
 * Returns 0, GP_ERR_NOTFOUND, GP_ERR_INVALID (a directory), @fn's code,
 * GP_ERR_IO, GP_ERR_NOMEM. */
int gp_ntfs_cat(struct gp_ntfs *v, const char *path, gp_ntfs_write_fn fn, void *ctx);

/* Read a whole file of at most @max bytes into a malloc'ed buffer (*@buf,
 * caller frees; *@len its size). Returns 0, GP_ERR_NOTFOUND, GP_ERR_INVALID
 * (directory), GP_ERR_UNSUPPORTED (larger than @max), GP_ERR_IO,
 * GP_ERR_NOMEM. */
int gp_ntfs_read_file(struct gp_ntfs *v, const char *path, size_t max,
		      void **buf, size_t *len);

/* The security descriptor (self-relative, as stored) of @path, into a
 * malloc'ed buffer the caller frees. Returns 0, GP_ERR_NOTFOUND, GP_ERR_IO,
 * GP_ERR_NOMEM. */
int gp_ntfs_get_sd(struct gp_ntfs *v, const char *path, void **sd, size_t *len);

/* Create directory @path and whatever parents are missing (existing
 * directories, in any letter case, are kept). Returns 0, GP_ERR_EXISTS (a
 * component is a file), GP_ERR_INVALID (illegal name, see
 * gp_ntfs_check_name()), GP_ERR_READONLY, GP_ERR_NOSPACE, GP_ERR_IO. */
int gp_ntfs_mkdir_p(struct gp_ntfs *v, const char *path);

/* Source of file contents: fill up to @len bytes of @buf, set *@got
 * (0 only at end of data); return 0 or a negative GP_ERR_* code. */
typedef int (*gp_ntfs_read_fn)(void *buf, size_t len, size_t *got, void *ctx);

/*
 * Write a file of exactly @size bytes read from @read_cb at @path (parents
 * created as needed). The clusters are allocated before the first byte is
 * written, so a full volume fails up front ("not enough free space in the
 * guest volume: need X, have Y", GP_ERR_NOSPACE). An existing file (any
 * letter case) is replaced in place: same name, same MFT record, same
 * security descriptor. New files inherit the parent's security descriptor.
 * The last-write time is set to @mtime (Unix seconds). When @sha256_out is
 * not NULL it receives the SHA-256 of the bytes written.
 * Returns 0, GP_ERR_NOSPACE, GP_ERR_EXISTS (@path is a directory),
 * GP_ERR_INVALID (illegal name), GP_ERR_CORRUPT (@read_cb delivered fewer or
 * more than @size bytes), @read_cb's code, GP_ERR_READONLY, GP_ERR_IO,
 * GP_ERR_NOMEM.
 */
int gp_ntfs_put_stream(struct gp_ntfs *v, const char *path, uint64_t size, int64_t mtime,
		       gp_ntfs_read_fn read_cb, void *ctx, uint8_t sha256_out[32]);

/* Copy the host file @host_path to @guest_path (its size and mtime), as
 * gp_ntfs_put_stream(). Same returns, plus GP_ERR_NOTFOUND for the host
 * file. */
int gp_ntfs_put_file(struct gp_ntfs *v, const char *host_path, const char *guest_path);

/*
 * Copy @host_path (file or directory tree) to @guest_dir/<its name>, like
 * `cp -r`. Regular files and directories only (symlinks are followed,
 * other types refused). The space the copy takes is checked
 * (gp_ntfs_space_check()) before anything is written. @progress may be NULL. Returns as gp_ntfs_put_stream(), and
 * GP_ERR_ABORTED.
 */
int gp_ntfs_put_tree(struct gp_ntfs *v, const char *host_path, const char *guest_dir,
		     const struct gp_progress *progress);

/* Account in @space (see gp_ntfs_space_check()) what gp_ntfs_put_tree()
 * of the same arguments would write: files that exist in the guest are
 * replaced, missing directories created. Reads the host tree and the
 * volume, writes nothing. Returns 0 or as gp_ntfs_put_tree()'s checks
 * (GP_ERR_NOTFOUND, GP_ERR_INVALID, GP_ERR_IO, GP_ERR_NOMEM). */
int gp_ntfs_put_tree_space(struct gp_ntfs *v, const char *host_path, const char *guest_dir,
			   struct gp_ntfs_space *space);

/* Remove @path; a directory only when @recursive (then with everything
 * in it). The root cannot be removed. Returns 0, GP_ERR_NOTFOUND,
 * GP_ERR_INVALID (directory without @recursive, or the root),
 * GP_ERR_READONLY, GP_ERR_IO. */
int gp_ntfs_remove(struct gp_ntfs *v, const char *path, bool recursive);

/*
 * Make directory @path (created with its missing parents, inheriting its
 * parent's security descriptor, when absent) an NTFS junction to @target
 * (a Windows path such as "C:\\Windows\\System32\\HostDriverStore"; ASCII):
 * reparse data IO_REPARSE_TAG_MOUNT_POINT with the substitute name
 * "\\??\\" + @target and the print name @target, as mklink /J writes.
 * Returns 0, GP_ERR_INVALID (target), the codes of gp_ntfs_mkdir_p(),
 * GP_ERR_READONLY, GP_ERR_IO.
 */
int gp_ntfs_make_junction(struct gp_ntfs *v, const char *path, const char *target);

/* The print name of junction @path (malloc'ed). Returns 0, GP_ERR_NOTFOUND,
 * GP_ERR_INVALID (not a junction), GP_ERR_CORRUPT, GP_ERR_NOMEM. */
int gp_ntfs_junction_target(struct gp_ntfs *v, const char *path, char **target);

/* Is @name (one UTF-8 path component) a legal Windows file name? Rejects
 * empty names, "." and "..", <>:"/\|?* and control characters, a trailing
 * dot or space, reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9,
 * also with an extension), names over 255 UTF-16 units, invalid UTF-8.
 * Returns 0 or GP_ERR_INVALID with the reason in @err. */
int gp_ntfs_check_name(const char *name, struct gp_error *err);

#endif
