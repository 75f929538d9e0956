/*
 * runlog.h — `gpup --log FILE` (like DISM's /LogPath): an audit trail that
 * image builders keep. Each run appends one record to FILE: the command
 * line, the plan (what will be written, removed, configured; the room it
 * needs), the actions taken, every warning and error, and the result:
 *
 *   2026-12-08T01:02:03.456Z gpup[4242] start: gpup 0.1.0: gpup prepare g.vhdx ...
 *   2026-12-08T01:02:03.789Z gpup[4242] plan: new Windows/System32/nvapi64.dll (16384 bytes)
 *   2026-12-08T01:02:04.012Z gpup[4242] action: wrote 31 new, 0 replaced (807254 bytes)
 *   2026-12-08T01:02:04.345Z gpup[4242] end: exit 0
 *
 * One line per event, UTC timestamps, the run's pid in each line (also in
 * the lines of the worker processes of a run over several images); control
 * characters are written as \xNN, so a file name cannot forge a line. Every
 * line goes out in one write(2) on a descriptor opened with O_APPEND: the
 * records of runs sharing FILE interleave by whole lines. Like stderr, the
 * log is process-wide: main() opens it before the command runs (a FILE
 * that cannot be opened fails the run with exit 2 before anything is
 * read or written) and closes it with the exit status; the commands and
 * tools/cli.c add lines. Without --log every call is a no-op.
 */
#ifndef GPUP_RUNLOG_H
#define GPUP_RUNLOG_H

#include <stdbool.h>

#include "gp_error.h"

/*
 * Take `--log FILE` or `--log=FILE` out of @argv (anywhere before a "--";
 * *@argc shrinks), open FILE for appending (created 0644) and write the
 * record's start line with the remaining command line. Returns 0 (also
 * when there is no --log), GP_ERR_INVALID (--log without FILE, or given
 * twice) or GP_ERR_IO (FILE cannot be opened), with @err set.
 */
int runlog_open(int *argc, char **argv, struct gp_error *err);

/* Append "KIND: MESSAGE" (printf-style) to the record. */
void runlog(const char *kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append "result: IMAGE: changed" or "unchanged": what a writing command
 * that failed left in @image. */
void runlog_result(const char *image, bool changed);

/* Append "end: exit STATUS" and close the log. */
void runlog_close(int status);

#endif
