/*
 * hostconf_priv.h — helpers shared by the hostconf module's files only:
 * reading the text files users save from PowerShell. Not public.
 */
#ifndef GPUP_HOSTCONF_PRIV_H
#define GPUP_HOSTCONF_PRIV_H

#include <stddef.h>

#include "gp_error.h"

/*
 * Text as PowerShell saves it, made UTF-8: a UTF-16LE file (Windows
 * PowerShell's `>` and Out-File write one, with a BOM) or UTF-16BE (BOM FE FF,
 * `-Encoding BigEndianUnicode`) is converted, a UTF-8 BOM is dropped. Returns a malloc'ed, NUL-terminated copy and its length
 * in @out_len, or NULL when out of memory.
 */
char *gp_hc_text_to_utf8(const char *buf, size_t len, size_t *out_len);

/*
 * Read a whole file of at most @max bytes, decoded as gp_hc_text_to_utf8().
 * @what says what the file should be ("GPU list") for the too-large message.
 * Returns 0 with a malloc'ed buffer, GP_ERR_NOTFOUND / GP_ERR_IO naming the
 * file, GP_ERR_INVALID (not a regular file), GP_ERR_CORRUPT (too large),
 * GP_ERR_NOMEM.
 */
int gp_hc_read_text(const char *path, size_t max, const char *what, char **out,
		    size_t *out_len, struct gp_error *err);

/* True when @s holds only valid UTF-8 (no overlong forms, no surrogates). */
int gp_hc_valid_utf8(const char *s);

#endif
