/* runlog.c — the --log audit record. See runlog.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "runlog.h"

#define LINE_MAX_BYTES 4096

/*
 * The log's descriptor (-1: no --log), and whether a write to it failed.
 * Process-wide like stderr and for the same reason: every part of the
 * command line (tools/cli.c's error and warning printers, each command's
 * plan) adds to the one record of this run. Set once by runlog_open()
 * before the command runs.
 */
static int log_fd = -1;
static long run_pid;
static bool write_failed;

/* Append @s to @out (size @size, at *@o) with control characters as \xNN,
 * so that text from files or the command line cannot forge lines. */
static void put_escaped(char *out, size_t size, size_t *o, const char *s)
{
	for (; *s && *o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			*o += (size_t)snprintf(out + *o, size - *o, "\\x%02x", c);
		else
			out[(*o)++] = (char)c;
	}
	out[*o] = '\0';
}

static void write_line(const char *kind, const char *msg)
{
	char line[LINE_MAX_BYTES + 64];
	struct timespec ts;
	struct tm tm;
	size_t o;

	if (log_fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	o = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	o += (size_t)snprintf(line + o, sizeof(line) - o, ".%03ldZ gpup[%ld] %s: ",
			      ts.tv_nsec / 1000000, run_pid, kind);
	put_escaped(line, sizeof(line) - 1, &o, msg);
	line[o++] = '\n';
	/* One write, O_APPEND: a whole line or nothing lands at the end. */
	if (write(log_fd, line, o) != (ssize_t)o && !write_failed) {
		write_failed = true;
		fprintf(stderr, "gpup: warning: --log: writing the log failed: %s\n",
			strerror(errno));
	}
}

void runlog(const char *kind, const char *fmt, ...)
{
	char msg[LINE_MAX_BYTES];
	va_list ap;

	if (log_fd < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	write_line(kind, msg);
}

/* Remove argv[@i] and the @n after it. */
static void drop_args(int *argc, char **argv, int i, int n)
{
	memmove(&argv[i], &argv[i + n], (size_t)(*argc - i - n + 1) * sizeof(argv[0]));
	*argc -= n;
}

int runlog_open(int *argc, char **argv, struct gp_error *err)
{
	const char *path = NULL;
	char cmdline[LINE_MAX_BYTES];
	size_t o = 0;

	for (int i = 1; i < *argc && strcmp(argv[i], "--");) {
		const char *p = NULL;

		if (!strcmp(argv[i], "--log")) {
			if (i + 1 >= *argc)
				return gp_error_set(err, GP_ERR_INVALID, "--log needs a FILE");
			p = argv[i + 1];
			drop_args(argc, argv, i, 2);
		} else if (!strncmp(argv[i], "--log=", 6)) {
			p = argv[i] + 6;
			drop_args(argc, argv, i, 1);
		} else {
			i++;
			continue;
		}
		if (path)
			return gp_error_set(err, GP_ERR_INVALID, "--log is given twice");
		if (!*p)
			return gp_error_set(err, GP_ERR_INVALID, "--log needs a FILE");
		path = p;
	}
	if (!path)
		return 0;
	log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (log_fd < 0)
		return gp_error_set_errno(err, GP_ERR_IO, errno, "--log %s", path);
	run_pid = (long)getpid();
	/* Words with blanks (or empty) in quotes, so the line reads back
	 * as the command that ran. */
	for (int i = 0; i < *argc && o + 2 < sizeof(cmdline); i++) {
		const char *w = i ? argv[i] : "gpup";
		const char *q = !*w || strpbrk(w, " \t") ? "'" : "";

		o += (size_t)snprintf(cmdline + o, sizeof(cmdline) - o, "%s%s%s%s", i ? " " : "",
				      q, w, q);
	}
	runlog("start", "gpup %s: %s", GPUP_VERSION, cmdline);
	return 0;
}

void runlog_result(const char *image, bool changed)
{
	runlog("result", "%s: %s", image, changed ? "changed" : "unchanged");
}

void runlog_close(int status)
{
	if (log_fd < 0)
		return;
	runlog("end", "exit %d", status);
	close(log_fd);
	log_fd = -1;
}
