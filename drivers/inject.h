/*
 * inject.h — putting an injection set (store.h) into a guest volume, and
 * checking one that is there.
 *
 * The *plan* is a struct gp_inject_set: every file with its guest path, size
 * and mtime, sorted by guest path, known before a byte is written (for the
 * free-space check, idempotency and --dry-run). The *bytes* come from a
 * gp_inject_stream, opened once per file in increasing index order, so that
 * a sequential source (a bundle archive whose entries are in the same
 * sorted order) streams straight into the image with no temporary copy.
 * Files the injector finds already identical in the guest are never opened:
 * a sequential source must skip over them.
 */
#ifndef GPUP_INJECT_H
#define GPUP_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"
#include "gp_progress.h"
#include "ntfsvol.h"
#include "store.h"

struct gp_inject_stream;

struct gp_inject_stream_ops {
	/* Start reading the bytes of @f (set->files[i], i increasing across
	 * calls; some indices may be skipped). Returns 0 or a negative code
	 * with details in @err (GP_ERR_NOTFOUND, GP_ERR_IO, GP_ERR_CORRUPT for
	 * an archive whose next entry is not @f). */
	int (*open)(struct gp_inject_stream *s, const struct gp_inject_file *f,
		    struct gp_error *err);
	/* Read up to @len bytes of the open file: returns the count (> 0),
	 * 0 at its end, or a negative code with details in @err. */
	int64_t (*read)(struct gp_inject_stream *s, void *buf, size_t len,
			struct gp_error *err);
	/* Finish the open file. A source that knows the expected SHA-256
	 * (a bundle manifest) hashes the bytes it delivered and returns
	 * GP_ERR_MISMATCH naming the file when they differ from it (and
	 * from @sha256, when the caller passes its own digest; the injector
	 * passes NULL, hashing being as costly as writing); every source
	 * fails when the file ended before or after f->size bytes. */
	int (*close)(struct gp_inject_stream *s, const uint8_t sha256[32],
		     struct gp_error *err);
	/* The SHA-256 the bytes of @f must have, without disturbing the
	 * open/read sequence: a bundle answers from its manifest, host files
	 * by reading the file once more. Returns 0 or a negative code. */
	int (*expected)(struct gp_inject_stream *s, const struct gp_inject_file *f,
			uint8_t sha256[32], struct gp_error *err);
	/* Optional. Open @f's bytes apart from the open/read sequence, on
	 * any thread (verify reads them on a second one): *@fd is read from
	 * its start and closed by the caller. A source that must read the
	 * bytes anyway to answer expected() (host files) offers it, and
	 * verify compares the bytes themselves instead of two SHA-256 passes;
	 * one that knows the digests (a bundle manifest) leaves it NULL.
	 * Returns 0, GP_ERR_NOTFOUND or GP_ERR_IO with details in @err. */
	int (*open_fd)(struct gp_inject_stream *s, const struct gp_inject_file *f, int *fd,
		       struct gp_error *err);
	/* Optional. Check the whole source before anything is written: with
	 * @full everything short of the bytes themselves (a bundle: every
	 * entry's header — type, path, order, size — and the archive's end,
	 * as gp_bundle_verify() does), without it only what is cheap (a
	 * zip's central directory; nothing for a tar, which the stream
	 * checks entry by entry and finish() to its end). Returns 0 or a
	 * negative code with details in @err (GP_ERR_CORRUPT, GP_ERR_MISMATCH
	 * for a size, GP_ERR_IO). */
	int (*check)(struct gp_inject_stream *s, bool full, struct gp_error *err);
	/* Optional. After the last file: read what is left of the source and
	 * fail when it holds anything it should not (a bundle: any entry
	 * after the last file asked for that breaks the rules of check(),
	 * a truncated end). A stream that delivered nothing returns 0.
	 * Returns 0 or a negative code with details in @err. */
	int (*finish)(struct gp_inject_stream *s, struct gp_error *err);
	/* Release the stream (optional). */
	void (*destroy)(struct gp_inject_stream *s);
};

struct gp_inject_stream {
	const struct gp_inject_stream_ops *ops;
	void *ctx;
};

/* ---- Applying ---------------------------------------------------------- */

struct gp_ntfs;

/*
 * What a caller adds to gp_inject_commit() (prepare: the guest manifest,
 * manifest.h). Both calls are optional and return 0 or a negative code
 * with details in @err.
 */
struct gp_inject_hooks {
	/* Called once before the first file is written (the volume is
	 * writable, the created directories are known). *@created: a
	 * malloc'ed guest directory it created, which a rollback removes
	 * with everything in it (NULL: none). *@replaced: it replaced data
	 * that was there before, so a rollback cannot leave the volume as it
	 * was. A failure here is rolled back like a failed file write. */
	int (*before_files)(void *ctx, struct gp_ntfs *v, char **created, bool *replaced,
			    struct gp_error *err);
	/* Called once after every file is in place and the stale builds are
	 * removed (not after a failure). */
	int (*after_files)(void *ctx, struct gp_ntfs *v, struct gp_error *err);
	void *ctx;
};

struct gp_inject_apply_opts {
	/* Keep other builds of the set's INFs in HostDriverStore (by default
	 * they are removed: stale builds cause Code 43 and pile up). */
	bool keep_old;
	/* Compute the report, write nothing. */
	bool dry_run;
	/* Replace guest files that belong to Windows itself (owned by
	 * TrustedInstaller) when the set has other bytes for them; by default
	 * the plan refuses (GP_ERR_REFUSED, naming the file). */
	bool replace_system_files;
	/* Progress (may be NULL). Stages "inject" and "remove". */
	const struct gp_progress *progress;
	/* gp_inject_commit() only; may be NULL. */
	const struct gp_inject_hooks *hooks;
};

enum gp_inject_action {
	GP_INJECT_UNCHANGED = 0, /* already in the guest, same size and SHA-256 */
	GP_INJECT_NEW,           /* absent from the guest: written */
	GP_INJECT_REPLACE,       /* present but different: replaced in place */
};

struct gp_inject_report {
	enum gp_inject_action *actions; /* one per set->files[i] */
	size_t n_new, n_replaced, n_unchanged;
	uint64_t bytes_written;
	/* HostDriverStore folders removed as stale builds (guest paths), with
	 * the bytes they held. */
	char **removed;
	uint64_t *removed_bytes;
	size_t n_removed;
	uint64_t bytes_removed;
	bool changed;            /* anything written or removed (or, dry run: would be) */
	/* Bytes of free space the set needs and the volume has
	 * (gp_ntfs_space_check()); filled in dry runs and refusals too. */
	uint64_t space_need, space_have;
	/* What the plan accounted for that check: a caller that writes more
	 * in the same commit (the manifest) adds its own and checks again. */
	struct gp_ntfs_space space;
	/* The SHA-256 each set->files[i] has in the guest: for unchanged
	 * files from the plan (when it compared content), for written ones
	 * from the commit; has_sha256[i] says which are known. */
	uint8_t (*sha256)[32];
	bool *has_sha256;
	/* A write failed after it began, and everything the run had written
	 * was removed again: the volume is as before the run (not marked
	 * dirty, without gpup's in-progress marker, unless it was so before). */
	bool rolled_back;
};

/*
 * Put @set into the mounted, writable volume @v, pulling bytes from @src.
 *
 * Files already identical in the guest (same size and SHA-256, the expected
 * hash taken from the stream) are left alone, so a second identical run
 * changes nothing; a file that differs is replaced in place. Before writing
 * anything, the space the new data needs is checked against the volume's
 * free space, and the stream's check() runs (full with dry_run, so that a
 * dry run fails as the real run would for all a header shows). After the
 * last file, the stream's finish() checks the rest of the source.
 *
 * Rollback. When the run fails after writing began (source error, bundle
 * hash mismatch or hostile entry, truncated stream, full volume), every
 * file it created is removed again, with every directory it created (the
 * package folder, and HostDriverStore itself on a guest that had none).
 * When that is complete and no file had been replaced in place (a replaced
 * file's old bytes are gone: gpup does not stage replacements), the volume
 * is as before: rep->rolled_back is set and the volume is not left marked
 * dirty (gp_ntfs_settle()). Otherwise the volume stays marked dirty with
 * gpup's marker, and running the same command again completes the set.
 * After the set is in place, other builds
 * of the same INF names are removed from HostDriverStore unless keep_old.
 *
 * @rep is filled (free with gp_inject_report_free()) on success and on
 * failure. Returns 0 or: GP_ERR_REFUSED (a file of Windows itself would be
 * replaced, see replace_system_files), GP_ERR_NOSPACE (message: need X, have Y), the
 * stream's codes (GP_ERR_NOTFOUND, GP_ERR_IO, GP_ERR_MISMATCH,
 * GP_ERR_CORRUPT), the volume's codes, GP_ERR_ABORTED, GP_ERR_NOMEM.
 * Details in @err.
 */
int gp_inject_apply(struct gp_ntfs *v, const struct gp_inject_set *set,
		    struct gp_inject_stream *src, const struct gp_inject_apply_opts *opts,
		    struct gp_inject_report *rep, struct gp_error *err);

/*
 * The two stages of gp_inject_apply(), for a command that plans everything
 * before it writes anything (prepare: the guest, the source and the host
 * configuration are all checked before the first byte goes to the image).
 *
 * gp_inject_plan() fills @rep (actions, counts, stale builds, changed) and
 * refuses a set that does not fit (GP_ERR_NOSPACE) without writing: @v may
 * be mounted read-only. It ends with the stream's check(), full when
 * opts->dry_run (so a dry run fails as the real run would for everything
 * an archive's headers show), and fails with its codes.
 *
 * gp_inject_commit() executes @rep's plan on @v, now mounted writable and
 * unchanged since the plan (the caller holds the image's write lock across
 * both): writes the NEW and REPLACE files, rolls a failed write back as
 * gp_inject_apply() describes, then removes the stale builds @rep lists.
 * It never classifies again, so a rerun's unchanged files are read once.
 */
int gp_inject_plan(struct gp_ntfs *v, const struct gp_inject_set *set,
		   struct gp_inject_stream *src, const struct gp_inject_apply_opts *opts,
		   struct gp_inject_report *rep, struct gp_error *err);
int gp_inject_commit(struct gp_ntfs *v, const struct gp_inject_set *set,
		     struct gp_inject_stream *src, const struct gp_inject_apply_opts *opts,
		     struct gp_inject_report *rep, struct gp_error *err);

void gp_inject_report_free(struct gp_inject_report *rep);

/* ---- Verifying --------------------------------------------------------- */

enum gp_verify_state {
	GP_VERIFY_OK = 0,
	GP_VERIFY_MISSING,    /* no such file in the guest */
	GP_VERIFY_SIZE,       /* sizes differ */
	GP_VERIFY_HASH,       /* same size, different bytes (SHA-256 or byte comparison) */
};

struct gp_verify_report {
	enum gp_verify_state *states;  /* one per set->files[i] */
	uint64_t *guest_sizes;         /* size found in the guest (0 if missing) */
	size_t n_bad;
	/* Stale builds of the set's INFs present in HostDriverStore. */
	char **stale;
	uint64_t *stale_bytes;
	size_t n_stale;
};

/*
 * Compare every file of @set in @v (any mount, read-only is enough) with the
 * bytes of @src: size, then content — byte for byte when @src offers
 * open_fd() (its bytes are read on a second thread while this one reads the
 * guest), else the guest bytes' SHA-256 against expected(). @v is only used
 * on the calling thread. Also lists stale builds of the set's INF names.
 * Returns 0 when every file matches (stale builds do not count),
 * GP_ERR_MISMATCH when at least one differs (the message names the first
 * and how many), or an error of the stream or the volume. @rep is filled on
 * 0 and GP_ERR_MISMATCH; free with gp_verify_report_free().
 */
int gp_inject_verify(struct gp_ntfs *v, const struct gp_inject_set *set,
		     struct gp_inject_stream *src, const struct gp_progress *progress,
		     struct gp_verify_report *rep, struct gp_error *err);

void gp_verify_report_free(struct gp_verify_report *rep);

const char *gp_verify_state_name(enum gp_verify_state s);

/*
 * HostDriverStore folders in @v whose INF name (the part before ".inf_",
 * case-insensitively) is one of @set's folders' INF names but which are not
 * in @set: other builds of the same drivers. Appends guest paths and their
 * total sizes (recursive) to the arrays (caller frees each path and the
 * arrays). Returns 0 or the volume's code (a missing HostDriverStore is 0
 * with nothing found).
 */
int gp_inject_find_stale(struct gp_ntfs *v, const struct gp_inject_set *set,
			 char ***paths, uint64_t **bytes, size_t *n, struct gp_error *err);

/* Total size of the regular files below guest directory @path. */
int gp_inject_tree_size(struct gp_ntfs *v, const char *path, uint64_t *bytes,
			struct gp_error *err);

/*
 * Does guest @path carry the kind of ACL a tool that ignores Windows
 * inheritance leaves behind: no DACL (everyone may do anything) or an ACE
 * granting Everyone (S-1-1-0) full control, as ntfs-3g's default
 * descriptor and files copied through the ntfs-3g FUSE driver have?
 * Files gpup writes inherit System32's ACEs and pass. Sets *@open_acl.
 * Returns 0, GP_ERR_CORRUPT (malformed descriptor), or the volume's codes.
 */
int gp_inject_acl_everyone_full(struct gp_ntfs *v, const char *path, bool *open_acl,
				struct gp_error *err);

/*
 * Is guest @path a file of Windows itself: owned (security descriptor's
 * owner SID) by NT SERVICE\TrustedInstaller,
 * S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464? Sets
 * *@windows. Returns 0, GP_ERR_CORRUPT (malformed descriptor), or the
 * volume's codes.
 */
int gp_inject_owned_by_windows(struct gp_ntfs *v, const char *path, bool *windows,
			       struct gp_error *err);

/* SHA-256 of guest file @path of @v. Returns 0 or the volume's codes
 * (GP_ERR_NOTFOUND, GP_ERR_INVALID for a directory, GP_ERR_IO), details
 * in @err. */
int gp_inject_guest_sha256(struct gp_ntfs *v, const char *path, uint8_t out[32],
			   struct gp_error *err);

/* The directories a commit of @rep's plan creates: for each new file, the
 * top-most missing directory above it. *@paths (malloc'ed, each entry
 * too) holds *@n guest paths. Returns 0, GP_ERR_NOMEM, the volume's codes. */
int gp_inject_created_dirs(struct gp_ntfs *v, const struct gp_inject_set *set,
			   const struct gp_inject_report *rep, char ***paths, size_t *n,
			   struct gp_error *err);

/* SHA-256 of host file @path. Returns 0, GP_ERR_NOTFOUND, GP_ERR_IO. */
int gp_sha256_file(const char *path, uint8_t out[32], struct gp_error *err);

/* A stream over host files: opens f->source_path. @s->ctx is managed by
 * the ops; initialise with gp_inject_stream_host(). */
int gp_inject_stream_host(struct gp_inject_stream *s, struct gp_error *err);

#endif
