/* gp_error.c — see gp_error.h for the convention. */
#include "gp_error.h"

#include <stdio.h>
#include <string.h>

/* dst = a + b, truncated to @size (a may alias dst). Long messages are cut,
 * never rejected: the start names the file and the structure. */
static void join(char *dst, size_t size, const char *a, const char *b)
{
	size_t la = strnlen(a, size - 1), lb = strlen(b);

	if (a != dst)
		memmove(dst, a, la);
	if (lb > size - 1 - la)
		lb = size - 1 - la;
	memmove(dst + la, b, lb);
	dst[la + lb] = '\0';
}

int gp_error_setv(struct gp_error *err, int code, const char *fmt, va_list ap)
{
	if (!err || err->code != 0)
		return code;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	/* Messages are one line: a newline smuggled in through a file name
	 * would split the CLI's output. */
	for (char *p = err->msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return code;
}

int gp_error_set(struct gp_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gp_error_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int gp_error_set_errno(struct gp_error *err, int code, int errnum,
		       const char *fmt, ...)
{
	char head[GP_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	join(head, sizeof(head), head, ": ");
	join(head, sizeof(head), head, strerror(errnum));
	return gp_error_set(err, code, "%s", head);
}

void gp_error_prefix(struct gp_error *err, const char *fmt, ...)
{
	char head[GP_ERROR_MSG_MAX];
	char old[GP_ERROR_MSG_MAX];
	va_list ap;

	if (!err || err->code == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	join(err->msg, sizeof(err->msg), head, old);
}

int gp_error_copy(struct gp_error *dst, const struct gp_error *src)
{
	if (src && src->code != 0)
		gp_error_set(dst, src->code, "%s", gp_error_message(src));
	return src ? src->code : 0;
}

void gp_error_clear(struct gp_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

static const struct {
	int code;
	const char *name;
	int exit_code;
	const char *id;      /* stable, for --json "error": {"code": ...} */
} status_table[] = {
	{ GP_OK, "success", 0, "ok" },
	{ GP_ERR_IO, "I/O error", 1, "io" },
	{ GP_ERR_NOMEM, "out of memory", 1, "nomem" },
	{ GP_ERR_INVALID, "invalid argument", 2, "invalid" },
	{ GP_ERR_CORRUPT, "corrupt input", 1, "corrupt" },
	{ GP_ERR_UNSUPPORTED, "unsupported", 1, "unsupported" },
	{ GP_ERR_NOTFOUND, "not found", 1, "notfound" },
	{ GP_ERR_EXISTS, "already exists", 1, "exists" },
	{ GP_ERR_NOSPACE, "no space left", 1, "nospace" },
	{ GP_ERR_REFUSED, "refused: unsafe guest state", 3, "refused" },
	{ GP_ERR_LOCKED, "image is locked", 3, "locked" },
	{ GP_ERR_MISMATCH, "verification failed", 4, "mismatch" },
	{ GP_ERR_ABORTED, "aborted", 1, "aborted" },
	{ GP_ERR_READONLY, "read-only", 1, "readonly" },
	{ GP_ERR_EXTERNAL, "external program failed", 1, "external" },
	{ GP_ERR_ISDIR, "is a directory", 1, "isdir" },
};

const char *gp_status_name(int code)
{
	for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].code == code)
			return status_table[i].name;
	return "unknown error";
}

const char *gp_status_id(int code)
{
	for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].code == code)
			return status_table[i].id;
	return "unknown";
}

int gp_status_exit_code(int code)
{
	for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].code == code)
			return status_table[i].exit_code;
	return 1;
}

const char *gp_error_message(const struct gp_error *err)
{
	if (!err)
		return "";
	if (err->msg[0])
		return err->msg;
	return gp_status_name(err->code);
}
