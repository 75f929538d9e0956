/*
 * gp_progress.h — progress reporting and cancellation through one callback.
 *
 * Long operations (inject, verify, bundle create) take a gp_progress_fn and a
 * user context. The callback returns GP_PROGRESS_CONTINUE or GP_PROGRESS_ABORT;
 * gp_progress_call() turns an abort into GP_ERR_ABORTED so callers need one
 * check. tools/ renders the messages as a TTY bar or JSON lines.
 */
#ifndef GPUP_GP_PROGRESS_H
#define GPUP_GP_PROGRESS_H

#include <stdint.h>

#include "gp_error.h"

enum gp_progress_kind {
	GP_PROGRESS_BEGIN,      /* total_bytes/total_files known */
	GP_PROGRESS_FILE,       /* starting @path */
	GP_PROGRESS_BYTES,      /* done_bytes advanced */
	GP_PROGRESS_REMOVE,     /* removing @path */
	GP_PROGRESS_END,
};

struct gp_progress_info {
	const char *stage;      /* "inject", "verify", "bundle", ... */
	const char *path;       /* current guest path, or NULL */
	uint64_t done_bytes, total_bytes;
	uint64_t done_files, total_files;
};

enum { GP_PROGRESS_CONTINUE = 0, GP_PROGRESS_ABORT = 1 };

typedef int (*gp_progress_fn)(enum gp_progress_kind kind,
			      const struct gp_progress_info *info, void *ctx);

struct gp_progress {
	gp_progress_fn fn;  /* may be NULL: no reporting */
	void *ctx;
};

/* Call @p (if set). Returns 0, or records and returns GP_ERR_ABORTED. */
static inline int gp_progress_call(const struct gp_progress *p,
				   enum gp_progress_kind kind,
				   const struct gp_progress_info *info,
				   struct gp_error *err)
{
	if (!p || !p->fn)
		return 0;
	if (p->fn(kind, info, p->ctx) == GP_PROGRESS_ABORT)
		return gp_error_set(err, GP_ERR_ABORTED, "aborted by the caller");
	return 0;
}

#endif
