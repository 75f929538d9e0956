/*
 * cli.h — what the gpup command line's files share. Only tools/ prints.
 *
 * Every command is `int cmd_NAME(int argc, char **argv)`: argv[0] is the
 * command name; it parses its own options with getopt_long, checks option
 * combinations after parsing, and returns the process exit status:
 *   0 ok, 1 error, 2 usage, 3 refused (unsafe guest state, locked image),
 *   4 verification failed.
 */
#ifndef GPUP_CLI_H
#define GPUP_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "gp_error.h"
#include "gp_progress.h"

#define GPUP_VERSION "0.1.0"
/* Version of the --json output schemas (documented in README). */
#define GPUP_JSON_SCHEMA 1

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_REFUSED = 3, EXIT_MISMATCH = 4 };

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;   /* one line for `gpup --help` */
};

/*
 * stderr of one run. A command sets these while it parses its options
 * (gpup.c sets the command's name before dispatching):
 *   -q              nothing on stderr unless the command fails (warnings,
 *                   notes, progress; failures still print);
 *   --progress=json every stderr line is one JSON object, an event:
 *     {"event": NAME, "schema", "command", ...} with NAME
 *     "begin" / "end" (a stage starts / ends: "stage", e.g. "inject",
 *     "verify", "bundle", with the progress members below),
 *     "file" / "bytes" / "remove" (progress: "stage", "path", "done_bytes",
 *     "total_bytes", "done_files", "total_files", "elapsed" seconds),
 *     "warning" / "note" ("message"),
 *     "error" ("code" as gp_status_id(), "exit_status", "message").
 */
void cli_output_command(const char *cmd);
void cli_output_quiet(bool quiet);
void cli_output_events(bool events);
bool cli_is_quiet(void);
bool cli_events(void);

/* Print "gpup: MESSAGE" for @err on stderr (an "error" event with
 * --progress=json); return the exit status for it. */
int cli_fail(const struct gp_error *err);
/* The line cli_fail() prints, for a caller that chose the status itself. */
void cli_error_line(const char *code_id, int status, const char *msg);
/* The same line on @f (a worker's captured stderr that is replayed later). */
void cli_error_line_to(FILE *f, const char *code_id, int status, const char *msg);

/* cli_fail(), then -- for --json -- one object on stdout: {"schema",
 * "command", "image", "error": {"code" (gp_status_id()), "exit_status",
 * "message"}, "image_changed"}. @image_changed: whether anything was
 * written to @image (NULL: no image) before the failure. */
int cli_fail_json(const char *cmd, const char *image, const struct gp_error *err,
		  bool image_changed);
/* Only the JSON object of cli_fail_json(), with @status as "exit_status"
 * (the caller printed its own line) and the members of @extra (may be
 * NULL; consumed) added; returns @status. */
struct json_object;
int cli_fail_json_status(const char *cmd, const char *image, const struct gp_error *err,
			 bool image_changed, int status, struct json_object *extra);

/* cli_fail(), and with @json the failure object of cli_fail_json() with
 * image_changed false: the failure of a command before it wrote anything
 * (every failure of a command that only reads). @image may be NULL. */
int cli_fail_cmd(const char *cmd, bool json, const char *image, const struct gp_error *err);

/* The "error" member of a failure object: {"code", "exit_status",
 * "message"} for @err and @status. The caller owns it. */
struct json_object *cli_error_json(const struct gp_error *err, int status);

/* Note whether the command line asks for --json (an argument "--json"
 * before any "--"), before the command parses it: a usage error found
 * while parsing (an unknown option, a bad value) then also prints its
 * failure object on stdout. Called once by main(). */
void cli_json_requested(int argc, char **argv);

/* Print "gpup CMD: MESSAGE" and "Try 'gpup CMD --help'." on stderr; with
 * --json on the command line (cli_json_requested()) also the failure
 * object on stdout (code "usage", image_changed false). Returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cli_usage(), printing the failure object also when @json: for the
 * checks a command makes after its options are parsed. */
int cli_usage_json(const char *cmd, bool json, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Print a warning line "gpup: warning: ..." on stderr (a "warning" event
 * with --progress=json; nothing with -q). */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An informational line "gpup: ..." ("wrote FILE", a listing's note): a
 * "note" event with --progress=json, nothing with -q. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Text that came from a file (a GPU list, an INF, a guest's file names) on
 * its way to the terminal: C0 controls and DEL as \xNN, C1 controls
 * (U+0080-U+009F, in UTF-8) as \u00NN, and bytes that are not UTF-8 as
 * \xNN, so that a file cannot drive the user's terminal (ESC sequences,
 * BEL, CSI). cli_esc() returns a copy that stays valid for the next 15
 * calls (enough for one printf's arguments); NULL gives "". Every
 * gpup: line on stderr (cli_warn, cli_note, cli_error_line) is escaped;
 * --json output is escaped by json-c and needs none of this.
 */
const char *cli_esc(const char *s);

/* The help line of --gpu, the same in every command that takes it. */
#define CLI_GPU_HELP \
	"  --gpu SEL           GPU: auto, 10de:2860, VEN_10DE&DEV_2860[&SUBSYS_..][&REV_..],\n" \
	"                      its device instance path or \\\\?\\PCI#... name, or a\n" \
	"                      unique part of its name (\"RTX 4070\"; default auto)\n"

/* Check the value of --gpu against the one selector syntax (gpus.h:
 * auto, 10de:2860, VEN_..., an instance path, a name substring; no control
 * characters). Returns 0 or 2 (usage, printed). */
int cli_gpu_option(const char *cmd, const char *arg);

/* Parse a size such as "4096", "10M", "8G", "2TiB", "512MB" (powers of
 * 1024). Returns 0 or -1. */
int cli_parse_size(const char *s, unsigned long long *out);

/* Progress rendering shared by long commands: --progress[=json], -q.
 * cli_progress_init() picks TTY bar (stderr is a terminal), JSON lines, or
 * nothing; pass &cp->progress to library calls. */
enum cli_progress_mode { CLI_PROGRESS_AUTO, CLI_PROGRESS_NONE, CLI_PROGRESS_JSON, CLI_PROGRESS_TTY };
struct cli_progress {
	enum cli_progress_mode mode;
	struct gp_progress progress;
	double start;          /* monotonic seconds */
	double last_draw;
};
/* The value of -p / --progress[=json|tty|none] (NULL: tty): sets *@mode
 * and, for json, cli_output_events(). Returns 0 or 2 (usage, printed). */
int cli_progress_option(const char *cmd, const char *arg, enum cli_progress_mode *mode);
/* @mode AUTO: a bar when stderr is a terminal, JSON lines after
 * --progress=json, else nothing; -q (cli_output_quiet()) shows nothing. */
void cli_progress_init(struct cli_progress *cp, enum cli_progress_mode mode);
void cli_progress_done(struct cli_progress *cp);

/* Catch SIGINT and SIGTERM instead of dying at once: a writing command
 * then stops at its next progress call or stage boundary, rolls back like
 * any failure and says what state the image is in. cli_interrupted()
 * returns the signal number seen, or 0. Exit status 130 by convention. */
void cli_catch_interrupts(void);
int cli_interrupted(void);
#define EXIT_INTERRUPTED 130

/* The commands (tools/cmd_*.c). */
int cmd_inspect(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_disk(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_drivers(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_gpus(int argc, char **argv);
int cmd_hostconf(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_unprepare(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

#endif
