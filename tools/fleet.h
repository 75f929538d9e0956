/*
 * fleet.h — one command over many images (`gpup prepare IMAGE...`,
 * `gpup scan`): a pool of worker processes, the driver source resolved
 * once per guest build, and the worst exit status.
 *
 * Workers are processes, not threads: libntfs-3g keeps process-wide state
 * (its error reporting through errno and ntfs_log, the device and attribute
 * caches it hangs off each mount without locks) and gpup's own commands
 * were written for one image per process. fork() gives every image a
 * private copy of the parsed options and of the resolved sources, and a
 * crash or leak in one image's work cannot reach the others.
 */
#ifndef GPUP_FLEET_H
#define GPUP_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

/* What one image's worker left behind. */
struct fleet_result {
	const char *image;
	int status;          /* its exit status (EXIT_ERROR when it died of a signal) */
	char *out, *err;     /* its stdout and stderr, NUL-terminated (never NULL) */
	size_t out_len, err_len;
};

/*
 * Run @one(@one_ctx, image) for each of @n @images in a forked worker, at most
 * @jobs at a time. The worker's stdout and stderr are captured; @done(@done_ctx,
 * result) runs in this process for each image in the order given (as soon
 * as it and every image before it finished), so that outputs never
 * interleave. Once cli_interrupted(), no new worker starts, the running
 * ones get the same signal (they stop as a single run would), and the
 * images not started get status EXIT_INTERRUPTED and empty output.
 * Returns the worst status (fleet_worse()), or EXIT_ERROR with a message
 * on stderr when no worker could be started.
 */
int fleet_run(char **images, size_t n, unsigned jobs,
	      int (*one)(void *one_ctx, const char *image), void *one_ctx,
	      void (*done)(void *done_ctx, const struct fleet_result *r), void *done_ctx);

/* The worse of two exit statuses: ok < refused (nothing written, by
 * design) < error < verification failed < interrupted. */
int fleet_worse(int a, int b);

/* "ok", "refused", "error", "usage", "mismatch" or "interrupted". */
const char *fleet_status_name(int status);

/* The default -j: the CPUs online (at least 1). */
unsigned fleet_default_jobs(void);

/* Parse -j's value (1..64) for command @cmd. Returns 0, or -1 after
 * printing the usage error. */
int fleet_parse_jobs(const char *cmd, const char *arg, unsigned *out);

/*
 * The source cache: for each image of @images, read its guest's build and
 * architecture (a read-only open of its Windows volume through @tmpl's
 * options), and open @tmpl's driver source once per distinct (arch, build).
 * Images that cannot be read are skipped: their worker opens the source
 * itself and fails with its own message. Source warnings are printed once
 * here (unless quiet). @preload: also read a bundle's files once into
 * memory (gp_source_preload(), up to a quarter of the RAM), for workers
 * that inject them. Call before fleet_run(): the workers inherit the
 * sources. Returns the number of distinct builds resolved.
 */
size_t fleet_sources_load(const struct session *tmpl, char **images, size_t n, bool preload);

/* The source opened for (@arch, @build) by fleet_sources_load(), or NULL
 * (none loaded: a single-image run, or that build failed to resolve). The
 * cache keeps ownership; a worker may close it (it is the worker's copy). */
struct gp_source *fleet_source_for(const char *arch, uint32_t build);

/* Release the cache (in the parent, after fleet_run()). */
void fleet_sources_free(void);

/* Did the worker print one JSON object on stdout? */
bool fleet_has_json(const struct fleet_result *r);

/* Turn a worker's --json stdout (one pretty-printed object) into one line
 * on stdout; output that is not one JSON object is copied as it is. */
void fleet_print_json_line(const struct fleet_result *r);

/* The last "gpup: ..." line of a worker's stderr (the failure), without
 * the prefix, in @buf; "" when none. Returns @buf. */
const char *fleet_reason(const struct fleet_result *r, char *buf, size_t size);

#endif
