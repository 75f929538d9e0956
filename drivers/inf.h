/*
 * inf.h — Windows setup information (.inf) files, parsed into sections of
 * lines. Hand-written: no maintained C library parses INF files.
 *
 * What the parser understands (the subset of the INF syntax that Windows'
 * setupapi implements and driver INFs use):
 *  - encodings: UTF-16LE with BOM (and without BOM when the text is
 *    recognisably UTF-16LE), UTF-16BE with BOM, UTF-8 with or without BOM,
 *    otherwise ANSI taken as Windows-1252. Everything is returned as UTF-8.
 *    Unpaired UTF-16 surrogates become U+FFFD with a warning.
 *  - CRLF, LF or CR line ends; `;` comments outside quotes; a `\` as the last
 *    non-blank character (before any comment) continues the line.
 *  - `[Section]` headers; names compare case-insensitively; a section that
 *    appears several times is one section with its lines in file order.
 *  - `key = value, value, ...`: the key is the text before the first `=`
 *    outside quotes; a line without `=` has no key (CopyFiles lists,
 *    AddReg lines). Values are split at commas outside quotes, blanks around
 *    them trimmed; "quoted" text keeps commas, `;` and blanks, and `""` in it
 *    is one quote.
 *  - `%strkey%` is replaced from [Strings] (then [Strings.0409] overrides,
 *    the en-US locale), in keys and values, quoted or not; `%%` is a literal
 *    `%`; a %key% that [Strings] does not define (e.g. the DIRID in
 *    "%13%\nvopencl64.dll") is kept as written. Replacement text is expanded
 *    again up to GP_INF_MAX_SUBST_DEPTH levels (loops stop there with a
 *    warning).
 *
 * Limits (a file that breaks them is rejected with GP_ERR_CORRUPT, never a
 * crash or an unbounded allocation): the parsed form may not exceed
 * GP_INF_MEM_FACTOR times the input size plus GP_INF_MEM_SLACK bytes
 * (substitution bombs); 8-bit text may not contain NUL bytes (binary data).
 * Lines may be megabytes long.
 *
 * Ownership: a struct gp_inf owns all strings and arrays it hands out; they
 * are valid until gp_inf_free().
 */
#ifndef GPUP_INF_H
#define GPUP_INF_H

#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"

#define GP_INF_MAX_SUBST_DEPTH 8
#define GP_INF_MEM_FACTOR 8
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
/* The fuzzer's inputs are <= 8 KiB (fuzz/run.sh): 64 KiB of slack still lets
 * a nested substitution reach the budget, 64 times sooner per input. */
#define GP_INF_MEM_SLACK (64u << 10)
#else
#define GP_INF_MEM_SLACK (4u << 20)
#endif
/* Warnings beyond this many are counted, not kept. */
#define GP_INF_MAX_WARNINGS 64

enum gp_inf_encoding {
	GP_INF_ENC_ANSI = 0,     /* Windows-1252 */
	GP_INF_ENC_UTF8,         /* no BOM */
	GP_INF_ENC_UTF8_BOM,
	GP_INF_ENC_UTF16LE_BOM,
	GP_INF_ENC_UTF16LE,      /* detected without a BOM */
	GP_INF_ENC_UTF16BE_BOM,
};

struct gp_inf_line {
	const char *key;              /* NULL when the line has no `=` */
	const char *const *values;    /* n_values fields, never NULL entries */
	size_t n_values;              /* 0 for "key =" with nothing after it */
	uint32_t lineno;              /* 1-based physical line the line starts on */
};

struct gp_inf_section {
	const char *name;             /* as first written */
	const struct gp_inf_line *lines;
	size_t n_lines;
};

struct gp_inf;

/* Parse @len bytes at @buf. @name names the file in messages and warnings
 * ("nv_dispi.inf"). On success *out owns the result (gp_inf_free()).
 * Returns 0, GP_ERR_CORRUPT (binary data, no section at all, limits
 * exceeded; the message names the file, the line or offset and the rule),
 * GP_ERR_NOMEM. Suitable as a fuzzing entry point. */
int gp_inf_parse(const void *buf, size_t len, const char *name, struct gp_inf **out,
		 struct gp_error *err);

/* Read and parse the file at @path (at most GP_INF_MAX_FILE bytes).
 * Returns what gp_inf_parse() returns, plus GP_ERR_IO / GP_ERR_NOTFOUND
 * (unreadable file) and GP_ERR_UNSUPPORTED (larger than the limit). */
#define GP_INF_MAX_FILE (64u << 20)
int gp_inf_load(const char *path, struct gp_inf **out, struct gp_error *err);

void gp_inf_free(struct gp_inf *inf);

/* The encoding the text was found in. */
enum gp_inf_encoding gp_inf_encoding(const struct gp_inf *inf);
const char *gp_inf_encoding_name(enum gp_inf_encoding e);

/* Non-fatal problems (unterminated quote, missing `]`, substitution loop,
 * invalid UTF-16), one line each naming the file and line. */
size_t gp_inf_warning_count(const struct gp_inf *inf);   /* including dropped ones */
const char *gp_inf_warning(const struct gp_inf *inf, size_t i); /* NULL if dropped */

/* Sections in order of first appearance. */
size_t gp_inf_section_count(const struct gp_inf *inf);
const struct gp_inf_section *gp_inf_section_at(const struct gp_inf *inf, size_t i);

/* The section called @name (case-insensitive), or NULL. */
const struct gp_inf_section *gp_inf_section(const struct gp_inf *inf, const char *name);

/* The first line of @sec whose key is @key (case-insensitive), or NULL.
 * @sec may be NULL (returns NULL). */
const struct gp_inf_line *gp_inf_line(const struct gp_inf_section *sec, const char *key);

/* First value of the first `@key =` line of section @section, or NULL when
 * the section, the key or a value is missing. */
const char *gp_inf_get(const struct gp_inf *inf, const char *section, const char *key);

/* The [Strings] value of @key (case-insensitive, unexpanded), or NULL. */
const char *gp_inf_string(const struct gp_inf *inf, const char *key);

#endif
