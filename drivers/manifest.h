/*
 * manifest.h — gpup's record, inside the guest, of everything `prepare`
 * added or changed, the backups of what it replaced, and `unprepare`, which
 * puts the guest back from that record.
 *
 * Where: C:\Windows\System32\gpup\ (GP_MANIFEST_DIR), beside HostDriverStore
 * and not in it (HostDriverStore is the driver's own tree; after unprepare
 * it holds nothing of gpup's, or is gone when gpup made it):
 *   manifest.json        the record (JSON, below);
 *   manifest.json.new    the same record, written first (see writes);
 *   backup/<n>-<name>    the bytes of each guest file gpup replaced, as they
 *                        were before gpup's first change to it.
 *
 * The record (UTF-8 JSON, keys in this order):
 *   { "gpup_manifest": 1,
 *     "files": [ { "path": guest path ("Windows/System32/vulkan-1.dll"),
 *                  "action": "added" | "replaced",
 *                  "sha256": what gpup wrote (hex) | null (being written),
 *                  replaced only: "original": { "size", "mtime" (Unix
 *                  seconds), "sha256", "backup": guest path } } ... ]
 *                  (sorted by path, case-insensitively),
 *     "created_dirs": [ guest directories gpup created, each removed whole
 *                       by unprepare ],
 *     "lost": [ folders that were in the guest before gpup and that gpup
 *               removed as stale builds of the driver: unprepare cannot
 *               bring them back and says so ],
 *     "fixups": [ names of the fix-ups applied (fixup.h) ],
 *     "registry": [ { "hive": guest path of the hive file,
 *                     "key": path below its root ("ControlSet001\Services\x"),
 *                     "key_created": gpup created the key (unprepare removes it),
 *                     "values": [ { "name", "previous": null (absent before
 *                                   gpup) | { "type": REG_* number, "data":
 *                                   hex bytes } } ] } ] }
 *   A value's previous state is recorded at gpup's first change to it.
 *
 * Rules that make it trustworthy:
 *  - A path is recorded once, at gpup's first change to it: a later prepare
 *    keeps the entry and its backup (a backup of gpup's own earlier file is
 *    never taken for the original), and only updates "sha256".
 *  - prepare writes the backups and a record of the whole plan *before*
 *    the first guest file changes ("sha256" null for files about to be
 *    written), and the final record (with the hashes of what it wrote)
 *    after: a killed run leaves a record of everything it may have touched,
 *    and its rerun completes it.
 *  - Each record is written twice, in place: manifest.json.new in full,
 *    then manifest.json; a reader takes manifest.json.new when it is a
 *    complete record (it parses), else manifest.json. A kill or a failed
 *    write at any moment leaves one complete record. (No rename: libntfs-3g
 *    links a name in two writes a kill can separate, and a file left so
 *    fails every later write.)
 *  - The writes are part of prepare's plan: their room (backups, two
 *    records, the directories) is checked with the files'.
 */
#ifndef GPUP_MANIFEST_H
#define GPUP_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"
#include "inject.h"
#include "ntfsvol.h"

#define GP_MANIFEST_DIR "Windows/System32/gpup"
#define GP_MANIFEST_PATH GP_MANIFEST_DIR "/manifest.json"
#define GP_MANIFEST_PATH_WINDOWS "C:\\Windows\\System32\\gpup\\manifest.json"
#define GP_MANIFEST_NEW GP_MANIFEST_DIR "/manifest.json.new"
#define GP_MANIFEST_BACKUP_DIR GP_MANIFEST_DIR "/backup"
#define GP_MANIFEST_VERSION 1
/* Replaced files are copied through memory: companions are DLLs of a few
 * MB. A larger one is refused in the plan (GP_ERR_UNSUPPORTED). */
#define GP_MANIFEST_BACKUP_MAX (256ull << 20)

enum gp_manifest_action {
	GP_MANIFEST_ADDED = 0,     /* gpup created the file */
	GP_MANIFEST_REPLACED,      /* it was there before: see the backup */
};

struct gp_manifest_file {
	char *path;                /* guest path, '/' separators */
	enum gp_manifest_action action;
	bool has_sha256;           /* false while being written */
	uint8_t sha256[32];        /* what gpup wrote */
	/* GP_MANIFEST_REPLACED only: the file before gpup. */
	uint64_t orig_size;
	int64_t orig_mtime;
	uint8_t orig_sha256[32];
	char *backup;              /* guest path of its copy */
	/* Not in the record: gp_manifest_plan_prepare() takes this backup. */
	bool backup_pending;
};

struct gp_manifest_reg_value {
	char *name;
	bool existed;              /* false: "previous": null */
	uint32_t type;
	uint8_t *data;
	size_t len;
};

struct gp_manifest_reg {
	char *hive;                /* guest path of the hive file */
	char *key;
	bool key_created;
	struct gp_manifest_reg_value *values;
	size_t n_values;
};

struct gp_manifest {
	struct gp_manifest_file *files;  /* sorted by path (strcasecmp) */
	size_t n_files;
	char **dirs;               /* created_dirs */
	size_t n_dirs;
	char **lost;
	size_t n_lost;
	char **fixups;
	size_t n_fixups;
	struct gp_manifest_reg *regs;
	size_t n_regs;
};

/* Read the guest's record (manifest.json, else manifest.json.new). Sets
 * *@found; without one, @m is empty and 0 is returned. Returns 0,
 * GP_ERR_CORRUPT (unreadable record: the message names it and the rule),
 * the volume's codes, GP_ERR_NOMEM. Free @m with gp_manifest_free(). */
int gp_manifest_read(struct gp_ntfs *v, struct gp_manifest *m, bool *found,
		     struct gp_error *err);
/* Parse / render the JSON text (render: malloc'ed, deterministic). */
int gp_manifest_parse(const char *text, size_t len, struct gp_manifest *m, struct gp_error *err);
int gp_manifest_render(const struct gp_manifest *m, char **text, size_t *len,
		       struct gp_error *err);
void gp_manifest_free(struct gp_manifest *m);

/* ---- prepare ----------------------------------------------------------- */

struct gp_manifest_plan {
	struct gp_manifest m;      /* the record after the commit */
	bool found;                /* the guest had a record */
	bool dir_exists;           /* GP_MANIFEST_DIR exists */
	char *old_text;            /* the record as it is (found only) */
	size_t old_len;
	size_t *backups;           /* m.files indices whose backup this run takes */
	size_t n_backups;
	bool changed;              /* the commit writes a record */
	/* Borrowed from the caller of gp_manifest_plan_prepare(). */
	const struct gp_inject_set *set;
	const struct gp_inject_report *rep;
	const struct gp_manifest_extra *extra; /* may be NULL */
};

/* What a prepare adds beside the files (the fix-ups, fixup.h): registry
 * records merged into the record (a value already recorded keeps its
 * first previous state), fix-up names, and a write that runs after the
 * files and before the final record (it must leave a rerun able to
 * finish it). */
struct gp_manifest_extra {
	const struct gp_manifest_reg *regs;
	size_t n_regs;
	const char *const *fixups;
	size_t n_fixups;
	const char *const *dirs;   /* directories commit() creates (created_dirs) */
	size_t n_dirs;
	bool changes;              /* commit() writes something */
	int (*commit)(void *ctx, struct gp_ntfs *v, struct gp_error *err);
	void *ctx;
};

/*
 * The record prepare leaves, from the injector's plan @rep (gp_inject_plan()
 * on @v, read-only is enough): new files "added", replaced ones "replaced"
 * with their size, mtime, SHA-256 and a backup name (unless recorded
 * already), the directories the run creates, and for each stale build
 * @rep removes: its entries dropped, and the folder "lost" when it was not
 * gpup's. Adds the backups, both record writes and the directories to
 * rep->space, checks it again (updating rep->space_need/have) and fails
 * like gp_inject_plan() when the volume lacks room. mp->changed says
 * whether the commit writes a record (always when rep->changed; else when
 * the record on disk differs from the one computed, e.g. after a kill).
 * @extra (may be NULL) is merged in as gp_manifest_extra says; its
 * changes make mp->changed. @set, @rep and @extra must outlive @mp. Returns 0, GP_ERR_NOSPACE,
 * GP_ERR_UNSUPPORTED (a file to back up is larger than
 * GP_MANIFEST_BACKUP_MAX), GP_ERR_CORRUPT (the guest's record), the volume's
 * codes, GP_ERR_NOMEM.
 */
int gp_manifest_plan_prepare(struct gp_ntfs *v, const struct gp_inject_set *set,
			     struct gp_inject_report *rep, const struct gp_manifest_extra *extra,
			     struct gp_manifest_plan *mp, struct gp_error *err);

/* The hooks that execute @mp inside gp_inject_commit(): before the files,
 * the backups and the record of the plan; after them, the final record. */
void gp_manifest_plan_hooks(struct gp_manifest_plan *mp, struct gp_inject_hooks *hooks);

void gp_manifest_plan_free(struct gp_manifest_plan *mp);

/* ---- verify ------------------------------------------------------------ */

struct gp_manifest_check {
	bool found;                /* the guest has a record */
	size_t n_files;            /* recorded files */
	char **bad;                /* "PATH: what is wrong", one per finding */
	size_t n_bad;
};

/* Check the record against the guest: every recorded file whose hash is
 * known is there with that SHA-256, every backup has the original's
 * SHA-256. Returns 0 (also without a record: c->found false),
 * GP_ERR_MISMATCH (c->bad lists each; the message names the first),
 * GP_ERR_CORRUPT, the volume's codes. Free with gp_manifest_check_free(). */
int gp_manifest_check(struct gp_ntfs *v, struct gp_manifest_check *c, struct gp_error *err);
void gp_manifest_check_free(struct gp_manifest_check *c);

/* ---- unprepare --------------------------------------------------------- */

enum gp_undo_action {
	GP_UNDO_RESTORE = 0,       /* put the backup's bytes (and mtime) back */
	GP_UNDO_REMOVE_FILE,       /* a file gpup added */
	GP_UNDO_REMOVE_DIR,        /* a directory gpup created, whole */
	GP_UNDO_HIVE,              /* a hive with its recorded values restored */
};

struct gp_undo_step {
	enum gp_undo_action action;
	const char *path;          /* points into plan->m */
	const struct gp_manifest_file *file; /* RESTORE: its record */
	uint8_t *hive;             /* HIVE: the hive's new bytes (owned) */
	size_t hive_len;
};

struct gp_undo_plan {
	struct gp_manifest m;
	struct gp_undo_step *steps; /* in order: restores, removals, directories */
	size_t n_steps;
	size_t n_restore, n_remove, n_dirs, n_hives;
	uint64_t space_need, space_have;
};

/*
 * What unprepare does to @v (read-only is enough): each replaced file whose
 * bytes differ from the original is restored from its backup (the backup's
 * SHA-256 is checked now: a missing or damaged one refuses the whole plan),
 * each hive with recorded values gets them back (keys gpup created removed,
 * values it added removed, others set to their previous state; the new
 * hive is computed now and written crash-safely, gp_manifest_write_hive()),
 * each added file still there is removed, then each created directory,
 * and finally GP_MANIFEST_DIR (the backups and the record) itself, which
 * is not a step. Added files inside a created directory go with it (no
 * step of their own). Returns 0, GP_ERR_NOTFOUND (the guest has no record:
 * gpup never prepared it, or it was undone), GP_ERR_CORRUPT (the record, a
 * backup), GP_ERR_NOSPACE, the volume's codes, GP_ERR_NOMEM. Free with
 * gp_undo_plan_free().
 */
int gp_undo_plan(struct gp_ntfs *v, struct gp_undo_plan *plan, struct gp_error *err);

/*
 * Execute @plan on @v, now writable and unchanged since the plan, in its
 * order; the record goes last, so a killed run is completed by running it
 * again (restores whose bytes are already the original's are skipped).
 * Returns 0 or the volume's codes, GP_ERR_CORRUPT (a backup changed since
 * the plan).
 */
int gp_undo_commit(struct gp_ntfs *v, const struct gp_undo_plan *plan, struct gp_error *err);

void gp_undo_plan_free(struct gp_undo_plan *plan);

/* ---- hives ------------------------------------------------------------- */

/* The bytes of hive file @path (e.g. Windows/System32/config/SYSTEM):
 * @path.gpup-new when it is a complete hive (an interrupted
 * gp_manifest_write_hive() left it: *@side, and the caller must write
 * it again), else the file. Returns 0,
 * GP_ERR_NOTFOUND, the volume's codes. */
int gp_manifest_read_hive(struct gp_ntfs *v, const char *path, uint8_t **buf, size_t *len,
			  bool *side, struct gp_error *err);

/* Replace hive file @path by @len bytes so that a kill at any moment
 * leaves a complete hive hivex opens: written in full as @path.gpup-new,
 * then over @path in place (same MFT record and security descriptor),
 * then @path.gpup-new is removed. Killed while @path is written, the
 * guest holds the complete new hive as @path.gpup-new, which
 * gp_manifest_read_hive() prefers and the rerun writes to @path again.
 * Returns 0 or the volume's codes. */
int gp_manifest_write_hive(struct gp_ntfs *v, const char *path, const uint8_t *buf, size_t len,
			   struct gp_error *err);

#endif
