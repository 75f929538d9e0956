/*
 * gp_error.h — gpup's one error convention, shared by every module.
 *
 *  - Every fallible function returns 0 (GP_OK) or a negative GP_ERR_* code.
 *  - The human-readable detail goes into a struct gp_error: the one embedded
 *    in the handle the function operates on (each module exposes it through an
 *    accessor such as gp_disk_error()), or, for functions that create a handle
 *    or have none (parsers, open/create), the one the caller passes in.
 *  - Library code never prints. Only tools/ turns an error into a line on
 *    stderr and an exit status (gp_status_exit_code()).
 *  - A handle's error describes its most recent failed call: public calls
 *    on a handle clear it on entry, so a handled failure (a lookup that
 *    found nothing) never leaks into the next report.
 *  - Within one call the first error wins: once a gp_error holds a
 *    failure, later gp_error_set() calls leave it alone (a cleanup failure
 *    must not hide the failure that caused the cleanup). gp_error_prefix()
 *    adds context ("dynamic.vhdx: ") to the recorded message instead.
 *
 * Messages are one line, name the file or structure and say which rule was
 * broken: "dynamic.vhdx: region table 2 at 0x40000: entry 1 overlaps the log".
 */
#ifndef GPUP_GP_ERROR_H
#define GPUP_GP_ERROR_H

#include <stdarg.h>

/* Codes are explicit and never reused; gp_status_name() maps them to text. */
enum gp_status {
	GP_OK = 0,
	GP_ERR_IO = -1,          /* host I/O failed (the message carries errno's text) */
	GP_ERR_NOMEM = -2,       /* allocation failed */
	GP_ERR_INVALID = -3,     /* the caller passed something meaningless */
	GP_ERR_CORRUPT = -4,     /* input violates its format's rules */
	GP_ERR_UNSUPPORTED = -5, /* valid input this version cannot handle */
	GP_ERR_NOTFOUND = -6,    /* a named file, path, package or GPU does not exist */
	GP_ERR_EXISTS = -7,      /* would overwrite something that must not be */
	GP_ERR_NOSPACE = -8,     /* host file system or guest volume is full */
	GP_ERR_REFUSED = -9,     /* unsafe guest state (hibernated, dirty, BitLocker) */
	GP_ERR_LOCKED = -10,     /* another process or a running VM holds the image */
	GP_ERR_MISMATCH = -11,   /* verification found a difference */
	GP_ERR_ABORTED = -12,    /* a progress callback asked to stop */
	GP_ERR_READONLY = -13,   /* a write reached a read-only handle */
	GP_ERR_EXTERNAL = -14,   /* a program gpup ran (PowerShell) failed */
	GP_ERR_ISDIR = -15,      /* a directory where a file is needed (cat, rm without -r) */
};

#define GP_ERROR_MSG_MAX 1024

struct gp_error {
	int code;                    /* 0 while no error is recorded */
	char msg[GP_ERROR_MSG_MAX];  /* one line, no trailing newline */
};

/* Record an error unless one is already recorded. Returns @code so that
 * callers can write `return gp_error_set(err, GP_ERR_IO, "...")`.
 * @err may be NULL (the code is still returned). */
int gp_error_set(struct gp_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int gp_error_setv(struct gp_error *err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Like gp_error_set(), with ": <strerror(errnum)>" appended. Returns @code. */
int gp_error_set_errno(struct gp_error *err, int code, int errnum,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Prepend context to a recorded message ("IMAGE: " + old message). No-op
 * when nothing is recorded. */
void gp_error_prefix(struct gp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Copy @src into @dst (first error wins applies). Returns src->code. */
int gp_error_copy(struct gp_error *dst, const struct gp_error *src);

/* Forget any recorded error. */
void gp_error_clear(struct gp_error *err);

/* The recorded message, or the code's name when the message is empty. */
const char *gp_error_message(const struct gp_error *err);

/* Short fixed text for a code ("I/O error", "corrupt input", ...). */
const char *gp_status_name(int code);
/* A short stable identifier of @code ("nospace", "refused", ...) for
 * machine-readable output; "unknown" for a code not in the table. */
const char *gp_status_id(int code);

/* The CLI's exit status for a code: 0 ok, 1 error, 2 usage (GP_ERR_INVALID),
 * 3 refused (GP_ERR_REFUSED, GP_ERR_LOCKED), 4 verification (GP_ERR_MISMATCH). */
int gp_status_exit_code(int code);

#endif
