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
#include "gpus.h"
#include "runlog.h"

static void json_string(FILE *f, const char *s);

/*
 * How this run talks on stderr: the command's name, -q and --progress=json.
 * Set while the options are parsed (cli_output_*()) and read by every line
 * printed on stderr, many of which come from code that has no session at
 * hand (plan_opts, warnings of a library handle). Like the interrupt flag
 * below, it is process-wide because a run is one command.
 */
static struct {
	const char *cmd;
	bool quiet;    /* -q: nothing on stderr unless the command fails */
	bool events;   /* --progress=json: every stderr line is a JSON object */
} out = { .cmd = "gpup" };

void cli_output_command(const char *cmd)
{
	out.cmd = cmd;
}

void cli_output_quiet(bool quiet)
{
	out.quiet = quiet;
}

void cli_output_events(bool events)
{
	out.events = events;
}

bool cli_is_quiet(void)
{
	return out.quiet;
}

bool cli_events(void)
{
	return out.events;
}

/* Start an event line: {"event":"NAME","schema":N,"command":"CMD" -- the
 * caller adds its members and closes it with end_event(). */
static void begin_event_to(FILE *f, const char *name)
{
	fprintf(f, "{\"event\":\"%s\",\"schema\":%d,\"command\":", name, GPUP_JSON_SCHEMA);
	json_string(f, out.cmd);
}

static void begin_event(const char *name)
{
	begin_event_to(stderr, name);
}

static void end_event(void)
{
	fputs("}\n", stderr);
}

/* One message line: an event {"event":NAME, ..., "message"} with
 * --progress=json, else "gpup: PREFIXMESSAGE". */
static void message_line(const char *event, const char *prefix, const char *msg)
{
	if (out.events) {
		begin_event(event);
		fputs(",\"message\":", stderr);
		json_string(stderr, msg);
		end_event();
	} else {
		fprintf(stderr, "gpup: %s%s\n", prefix, cli_esc(msg));
	}
}

int cli_fail(const struct gp_error *err)
{
	int code = err->code ? err->code : GP_ERR_IO;
	int status = gp_status_exit_code(code);

	cli_error_line(gp_status_id(code), status, gp_error_message(err));
	return status;
}

void cli_error_line(const char *code_id, int status, const char *msg)
{
	runlog("error", "%s", msg);
	cli_error_line_to(stderr, code_id, status, msg);
}

void cli_error_line_to(FILE *f, const char *code_id, int status, const char *msg)
{
	if (!out.events) {
		fprintf(f, "gpup: %s\n", cli_esc(msg));
		return;
	}
	begin_event_to(f, "error");
	fputs(",\"code\":", f);
	json_string(f, code_id);
	fprintf(f, ",\"exit_status\":%d,\"message\":", status);
	json_string(f, msg);
	fputs("}\n", f);
}

int cli_fail_json(const char *cmd, const char *image, const struct gp_error *err,
		  bool image_changed)
{
	return cli_fail_json_status(cmd, image, err, image_changed, cli_fail(err), NULL);
}

static struct json_object *error_json(const char *code_id, int status, const char *message)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "code", json_object_new_string(code_id));
	json_object_object_add(e, "exit_status", json_object_new_int(status));
	json_object_object_add(e, "message", json_object_new_string(message));
	return e;
}

struct json_object *cli_error_json(const struct gp_error *err, int status)
{
	return error_json(gp_status_id(err->code ? err->code : GP_ERR_IO), status,
			  gp_error_message(err));
}

/* The failure object every --json failure prints (cli.h); @error is
 * consumed. */
static void print_failure(const char *cmd, const char *image, struct json_object *error,
			  bool image_changed, struct json_object *extra)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(o, "command", json_object_new_string(cmd));
	if (image)
		json_object_object_add(o, "image", json_object_new_string(image));
	json_object_object_add(o, "error", error);
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
	print_failure(cmd, image, cli_error_json(err, status), image_changed, extra);
	return status;
}

int cli_fail_cmd(const char *cmd, bool json, const char *image, const struct gp_error *err)
{
	return json ? cli_fail_json(cmd, image, err, false) : cli_fail(err);
}

/*
 * Whether the command line asked for --json. Set once by main() before the
 * command runs and only read after: the usage errors getopt_long finds
 * come before the command knows whether --json is among its options, and
 * a pipeline that asked for JSON must get its failure object for them too.
 */
static bool json_on_command_line;

void cli_json_requested(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--json"))
			json_on_command_line = true;
}

/* A usage error: its line (an "error" event with --progress=json) and,
 * with @json or --json on the command line, the failure object. */
static int usage_failure(const char *cmd, bool json, const char *fmt, va_list ap)
{
	char msg[GP_ERROR_MSG_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (out.events) { /* only when --progress=json came before the faulty option */
		cli_error_line("usage", EXIT_USAGE, msg);
	} else {
		/* "gpup" itself: a word that is no command. */
		bool top = !strcmp(cmd, "gpup");

		runlog("error", "usage: %s", msg);
		fprintf(stderr, "gpup%s%s: %s\nTry 'gpup%s%s --help'.\n", top ? "" : " ",
			top ? "" : cmd, msg, top ? "" : " ", top ? "" : cmd);
	}
	if (json || json_on_command_line)
		print_failure(cmd, NULL, error_json("usage", EXIT_USAGE, msg), false, NULL);
	return EXIT_USAGE;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = usage_failure(cmd, false, fmt, ap);
	va_end(ap);
	return ret;
}

int cli_usage_json(const char *cmd, bool json, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = usage_failure(cmd, json, fmt, ap);
	va_end(ap);
	return ret;
}

/* A warning or note line, formatted; nothing with -q (the --log record
 * keeps it all the same: an audit trail is not quiet). */
static void vmessage(const char *event, const char *prefix, const char *fmt, va_list ap)
{
	char msg[GP_ERROR_MSG_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	runlog(event, "%s", msg);
	if (out.quiet)
		return;
	message_line(event, prefix, msg);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("warning", "warning: ", fmt, ap);
	va_end(ap);
}

void cli_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("note", "", fmt, ap);
	va_end(ap);
}

/* Length of the UTF-8 sequence at @u (2..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *u)
{
	size_t n = u[0] >= 0xf0 && u[0] <= 0xf4 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc2 ? 2 : 0;

	if (u[0] >= 0xf5)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((u[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

const char *cli_esc(const char *s)
{
	/* A ring, so that several escaped strings can be arguments of one
	 * printf; the oldest is freed when its slot comes round again. */
	static char *ring[16];
	static unsigned next;
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t len = strlen((const char *)u), o = 0;
	char *e = malloc(len * 6 + 1);

	if (!e)
		return "(out of memory)";
	while (*u) {
		size_t n = *u >= 0x80 ? utf8_len(u) : 1;

		if (*u < 0x20 || *u == 0x7f || n == 0) {
			o += (size_t)sprintf(e + o, "\\x%02x", *u);
			u++;
		} else if (n == 2 && u[0] == 0xc2 && u[1] < 0xa0) {
			o += (size_t)sprintf(e + o, "\\u%04x", u[1]);
			u += 2;
		} else {
			memcpy(e + o, u, n);
			o += n;
			u += n;
		}
	}
	e[o] = '\0';
	free(ring[next]);
	ring[next] = e;
	next = (next + 1) % 16;
	return e;
}

int cli_gpu_option(const char *cmd, const char *arg)
{
	struct gp_gpu_selector sel;
	struct gp_error err = { 0 };

	if (gp_gpu_selector_parse(arg, &sel, &err))
		return cli_usage(cmd, "%s", gp_error_message(&err));
	return 0;
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
		begin_event(kind_name(kind));
		fputs(",\"stage\":", stderr);
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

int cli_progress_option(const char *cmd, const char *arg, enum cli_progress_mode *mode)
{
	if (!arg || !strcmp(arg, "tty"))
		*mode = CLI_PROGRESS_TTY;
	else if (!strcmp(arg, "json"))
		*mode = CLI_PROGRESS_JSON;
	else if (!strcmp(arg, "none"))
		*mode = CLI_PROGRESS_NONE;
	else
		return cli_usage(cmd, "--progress takes json, tty or none, not '%s'", arg);
	cli_output_events(*mode == CLI_PROGRESS_JSON);
	return 0;
}

void cli_progress_init(struct cli_progress *cp, enum cli_progress_mode mode)
{
	if (out.quiet)
		mode = CLI_PROGRESS_NONE;
	else if (mode == CLI_PROGRESS_AUTO)
		mode = out.events ? CLI_PROGRESS_JSON
		       : isatty(STDERR_FILENO) ? CLI_PROGRESS_TTY : CLI_PROGRESS_NONE;
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
