/* cli.c — error printing, size parsing and progress rendering shared by the
 * commands. See cli.h. */
#include <ctype.h>
#include <signal.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"

int cli_fail(const struct gp_error *err)
{
	fprintf(stderr, "gpup: %s\n", gp_error_message(err));
	return gp_status_exit_code(err->code ? err->code : GP_ERR_IO);
}

int cli_fail_json(const char *cmd, const char *image, const struct gp_error *err,
		  bool image_changed)
{
	return cli_fail_json_status(cmd, image, err, image_changed, cli_fail(err), NULL);
}

/* The failure object every --json failure prints (cli.h). */
static void print_failure(const char *cmd, const char *image, const char *code_id, int status,
			  const char *message, bool image_changed, struct json_object *extra)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(o, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(o, "command", json_object_new_string(cmd));
	if (image)
		json_object_object_add(o, "image", json_object_new_string(image));
	json_object_object_add(e, "code", json_object_new_string(code_id));
	json_object_object_add(e, "exit_status", json_object_new_int(status));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(o, "error", e);
	json_object_object_add(o, "image_changed", json_object_new_boolean(image_changed));
	if (extra) {
		json_object_object_foreach(extra, key, val)
			json_object_object_add(o, key, json_object_get(val));
		json_object_put(extra);
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int cli_fail_json_status(const char *cmd, const char *image, const struct gp_error *err,
			 bool image_changed, int status, struct json_object *extra)
{
	print_failure(cmd, image, gp_status_id(err->code ? err->code : GP_ERR_IO), status,
		      gp_error_message(err), image_changed, extra);
	return status;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "gpup %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'gpup %s --help'.\n", cmd);
	return EXIT_USAGE;
}

int cli_usage_json(const char *cmd, bool json, const char *fmt, ...)
{
	char msg[GP_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_usage(cmd, "%s", msg);
	if (json)
		print_failure(cmd, NULL, "usage", EXIT_USAGE, msg, false, NULL);
	return EXIT_USAGE;
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "gpup: warning: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_parse_size(const char *s, unsigned long long *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 }, { "b", 0 }, { "k", 10 }, { "kb", 10 }, { "kib", 10 },
		{ "m", 20 }, { "mb", 20 }, { "mib", 20 }, { "g", 30 }, { "gb", 30 },
		{ "gib", 30 }, { "t", 40 }, { "tb", 40 }, { "tib", 40 },
	};
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].suffix) == 0) {
			if (units[i].shift && v > (~0ULL >> units[i].shift))
				return -1;
			*out = v << units[i].shift;
			return 0;
		}
	}
	return -1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *kind_name(enum gp_progress_kind k)
{
	switch (k) {
	case GP_PROGRESS_BEGIN: return "begin";
	case GP_PROGRESS_FILE: return "file";
	case GP_PROGRESS_BYTES: return "bytes";
	case GP_PROGRESS_REMOVE: return "remove";
	case GP_PROGRESS_END: return "end";
	}
	return "unknown";
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/*
 * Ctrl-C (SIGINT) and SIGTERM during a command that installed
 * cli_catch_interrupts(). A signal handler can only set a flag, and a flag
 * it sets must be reachable without a context pointer: this is the one
 * piece of mutable process-wide state in gpup. The writing code sees it
 * through the progress callback (which every long loop calls) and between
 * stages, turns it into GP_ERR_ABORTED, and rolls back like any failure.
 */
static volatile sig_atomic_t interrupted_by;

static void on_interrupt(int sig)
{
	interrupted_by = sig;
}

void cli_catch_interrupts(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_interrupted(void)
{
	return interrupted_by;
}

static int render(enum gp_progress_kind kind, const struct gp_progress_info *info, void *ctx)
{
	struct cli_progress *cp = ctx;
	double t, elapsed;

	if (interrupted_by)
		return GP_PROGRESS_ABORT;
	if (cp->mode == CLI_PROGRESS_NONE)
		return GP_PROGRESS_CONTINUE;
	t = now();
	elapsed = t - cp->start;

	if (cp->mode == CLI_PROGRESS_JSON) {
		fprintf(stderr, "{\"event\":\"%s\",\"stage\":", kind_name(kind));
		json_string(stderr, info->stage);
		fprintf(stderr, ",\"path\":");
		json_string(stderr, info->path);
		fprintf(stderr, ",\"done_bytes\":%llu,\"total_bytes\":%llu,\"done_files\":%llu,"
				"\"total_files\":%llu,\"elapsed\":%.3f}\n",
			(unsigned long long)info->done_bytes, (unsigned long long)info->total_bytes,
			(unsigned long long)info->done_files, (unsigned long long)info->total_files,
			elapsed);
		return GP_PROGRESS_CONTINUE;
	}
	/* TTY: redraw at most 10 times a second, and at the end. */
	if (kind != GP_PROGRESS_END && t - cp->last_draw < 0.1)
		return GP_PROGRESS_CONTINUE;
	cp->last_draw = t;
	{
		double rate = elapsed > 0 ? (double)info->done_bytes / elapsed : 0;
		double eta = rate > 0 && info->total_bytes > info->done_bytes
				     ? (double)(info->total_bytes - info->done_bytes) / rate : 0;
		fprintf(stderr, "\r\033[K%s: %llu/%llu files, %.1f/%.1f MiB, %.1f MiB/s, ETA %.0fs",
			info->stage ? info->stage : "", (unsigned long long)info->done_files,
			(unsigned long long)info->total_files, (double)info->done_bytes / 1048576.0,
			(double)info->total_bytes / 1048576.0, rate / 1048576.0, eta);
		if (kind == GP_PROGRESS_END)
			fputc('\n', stderr);
	}
	return GP_PROGRESS_CONTINUE;
}

void cli_progress_init(struct cli_progress *cp, enum cli_progress_mode mode)
{
	if (mode == CLI_PROGRESS_AUTO)
		mode = isatty(STDERR_FILENO) ? CLI_PROGRESS_TTY : CLI_PROGRESS_NONE;
	cp->mode = mode;
	cp->start = now();
	cp->last_draw = 0;
	/* Called even when nothing is shown: it is where an interrupt is
	 * noticed. */
	cp->progress.fn = render;
	cp->progress.ctx = cp;
}

void cli_progress_done(struct cli_progress *cp)
{
	if (cp->mode == CLI_PROGRESS_TTY)
		fflush(stderr);
}
