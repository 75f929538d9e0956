/*
 * session.h — the CLI plumbing that prepare, verify and doctor share:
 * options naming an image and a driver source, opening the image's
 * Windows volume (through gpup's engine, or libvhdi for an independent
 * read), and printing JSON.
 */
#ifndef GPUP_SESSION_H
#define GPUP_SESSION_H

#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>

#include "cli.h"
#include "disk.h"
#include "guest.h"
#include "ntfsvol.h"
#include "source.h"

/* Option codes shared by the commands (below PLAN_OPT_BASE). */
enum {
	SESS_OPT_BASE = 0x800,
	SESS_OPT_DRIVERSTORE = SESS_OPT_BASE,
	SESS_OPT_BUNDLE,
	SESS_OPT_PARTITION,
	SESS_OPT_FORCE,
	SESS_OPT_RECOVER,
	SESS_OPT_FORMAT,
	SESS_OPT_PARENT,
	SESS_OPT_ALLOW_MISSING,
	SESS_OPT_JSON,
	SESS_OPT_PROGRESS,
	SESS_OPT_ARCH,
	SESS_OPT_BUILD,
	SESS_OPT_REPLACE_SYSTEM_FILES,
};

#define SESSION_LONGOPTS \
	{ "driverstore", required_argument, NULL, SESS_OPT_DRIVERSTORE }, \
	{ "bundle", required_argument, NULL, SESS_OPT_BUNDLE }, \
	{ "partition", required_argument, NULL, SESS_OPT_PARTITION }, \
	{ "force", no_argument, NULL, SESS_OPT_FORCE }, \
	{ "recover", no_argument, NULL, SESS_OPT_RECOVER }, \
	{ "format", required_argument, NULL, SESS_OPT_FORMAT }, \
	{ "parent", required_argument, NULL, SESS_OPT_PARENT }, \
	{ "allow-missing", no_argument, NULL, SESS_OPT_ALLOW_MISSING }, \
	{ "replace-system-files", no_argument, NULL, SESS_OPT_REPLACE_SYSTEM_FILES }, \
	{ "json", no_argument, NULL, SESS_OPT_JSON }, \
	{ "progress", optional_argument, NULL, SESS_OPT_PROGRESS }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "verbose", no_argument, NULL, 'v' }

#define SESSION_SHORTOPTS "qvp"

struct session {
	const char *cmd;
	/* image */
	const char *image;
	struct gp_disk_open_opts disk_opts;
	struct gp_ntfs_open_opts ntfs_opts;
	/* driver source */
	struct gp_source_opts src_opts;
	bool replace_system_files;  /* gp_inject_apply_opts (prepare) */
	/* output */
	bool json, quiet, verbose;
	enum cli_progress_mode progress;
	/* state */
	struct gp_disk *disk;
	struct gp_ntfs *vol;
	struct gp_source *src;
};

void session_init(struct session *s, const char *cmd);

/* Offer one getopt_long result. Returns 1 (consumed), 0 (not ours), -1
 * (bad value; usage message printed). */
int session_handle(struct session *s, int c, const char *arg);

/*
 * The whole command line of a command that takes IMAGE, the shared options
 * and --gpu (verify, doctor): parse into @s, print @usage for --help.
 * @source_required: --driverstore or --bundle must be given (after the
 * WSL default). Returns -1 to go on, or the exit status to return now.
 */
int session_parse_image_cmd(struct session *s, int argc, char **argv,
			    void (*usage)(FILE *), bool source_required);

/* The help lines for the shared options. */
void session_help(FILE *f, bool with_source);

/* When no source is given and this runs on the Hyper-V host under WSL
 * (/mnt/c/Windows exists), use the host's own DriverStore. */
void session_default_source(struct session *s);

/* session_default_source(), then require exactly one of --driverstore and
 * --bundle (a usage error through cli_usage_json() otherwise). Returns -1
 * to go on, or EXIT_USAGE. */
int session_require_source(struct session *s);

/*
 * Open s->image and its Windows volume. @writable: read-write through
 * gpup's engine. @independent: read through libvhdi (VHD/VHDX) instead of
 * gpup's VHDX engine — the verifier's path. Returns 0 or a GP_ERR_* code
 * with @err set.
 */
int session_open_image(struct session *s, bool writable, bool independent,
		       struct gp_error *err);

/*
 * The plan stage of a writing command: open s->image with its Windows volume
 * mounted read-only, refusing what a writable open would refuse
 * (gp_ntfs_open_opts.plan), so that planning writes nothing. @lock: open
 * the disk read-write, which takes the exclusive lock the commit needs and
 * holds it from plan to commit (a dry run passes false).
 */
int session_open_plan(struct session *s, bool lock, struct gp_error *err);

/* The commit stage: remount the planned volume read-write (the disk stays
 * open and locked since session_open_plan(s, true, ...)). */
int session_begin_commit(struct session *s, struct gp_error *err);

/* Unmount and close (flushing). Returns 0 or the first error. */
int session_close_image(struct session *s, struct gp_error *err);

/* Open the driver source for the guest on the open volume (its arch and
 * build pick the TargetOS section). Warnings are printed unless quiet. */
int session_open_source(struct session *s, const char *guest_arch, uint32_t guest_build,
			struct gp_error *err);

void session_end(struct session *s);

/* Print @obj to stdout, pretty, with a trailing newline; frees it. */
void session_print_json(struct json_object *obj);

/* New JSON object with "schema" and "command" set. */
struct json_object *session_json_new(const char *cmd);

/* Format @bytes as "1.2 GiB". Returns @buf. */
const char *session_human_size(uint64_t bytes, char *buf, size_t size);


/* The guest facts of the open volume (gp_guest_read()). A guest whose
 * registry cannot be read is not an error: build_num stays 0 and the
 * caller warns. Free with gp_guest_facts_free(). */
struct session_guest {
	struct gp_guest_facts f;
	bool known;          /* the build number was read */
	uint32_t build_num;  /* CurrentBuildNumber as a number */
};
int session_guest(struct session *s, struct session_guest *g, struct gp_error *err);

/* The GPU-P guest requirements: Windows client build >= 19041 (20H1) or
 * Server 2022 (20348) and later. Returns 0 or GP_ERR_REFUSED with the
 * reason in @err. */
int session_check_guest(const struct session *s, const struct session_guest *g,
			struct gp_error *err);

#endif
