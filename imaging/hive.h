/*
 * hive.h — editing a Windows registry hive file offline, in memory, with
 * libhivex: the bytes come in, are changed, and go out as a whole new hive
 * file (hivex_commit()), which the caller writes crash-safely
 * (gp_manifest_write_hive(), manifest.h).
 *
 * Keys are paths below the hive's root with '\' separators
 * ("ControlSet001\Services\nvlddmkm"); names compare case-insensitively as
 * hivex does. Values are raw: a REG_* type and the bytes as stored (REG_SZ
 * and REG_EXPAND_SZ are UTF-16LE with their NUL; see gp_hive_utf16()).
 */
#ifndef GPUP_HIVE_H
#define GPUP_HIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"

enum { GP_REG_SZ = 1, GP_REG_EXPAND_SZ = 2, GP_REG_DWORD = 4 };

struct gp_hive;

/* Open @len bytes of a hive (@name for messages) for editing. Refuses a
 * hive whose base block says a write to it was not finished (sequence
 * numbers differ: Windows would replay its .LOG files, which an offline
 * edit would contradict). Returns 0, GP_ERR_CORRUPT (not a hive, dirty
 * hive), GP_ERR_IO, GP_ERR_NOMEM. Free with gp_hive_close(). */
int gp_hive_open(const void *buf, size_t len, const char *name, struct gp_hive **out,
		 struct gp_error *err);
void gp_hive_close(struct gp_hive *h);

/* "ControlSet00N" from SYSTEM's Select\Current. Returns 0 or
 * GP_ERR_CORRUPT (no Select\Current DWORD). */
int gp_hive_current_control_set(struct gp_hive *h, char *out, size_t size,
				struct gp_error *err);

/* Does key @key exist? */
bool gp_hive_has_key(struct gp_hive *h, const char *key);

/* Value @name of @key: *@found, its type and a malloc'ed copy of its
 * bytes. A missing key or value is *@found false. Returns 0 or GP_ERR_CORRUPT. */
int gp_hive_get(struct gp_hive *h, const char *key, const char *name, bool *found,
		uint32_t *type, uint8_t **data, size_t *len, struct gp_error *err);

/* Set value @name of @key (created with its missing parents). Returns 0,
 * GP_ERR_CORRUPT, GP_ERR_NOMEM. */
int gp_hive_set(struct gp_hive *h, const char *key, const char *name, uint32_t type,
		const void *data, size_t len, struct gp_error *err);

/* Remove value @name of @key (nothing to do when absent). */
int gp_hive_delete_value(struct gp_hive *h, const char *key, const char *name,
			 struct gp_error *err);

/* Remove key @key with its subkeys (nothing to do when absent). */
int gp_hive_delete_key(struct gp_hive *h, const char *key, struct gp_error *err);

/* The hive as a file now (malloc'ed bytes). Returns 0, GP_ERR_IO, GP_ERR_NOMEM. */
int gp_hive_bytes(struct gp_hive *h, uint8_t **buf, size_t *len, struct gp_error *err);

/* ASCII/UTF-8 @s as REG_SZ bytes (UTF-16LE with the NUL), malloc'ed.
 * Returns 0, GP_ERR_INVALID (not ASCII), GP_ERR_NOMEM. */
int gp_hive_utf16(const char *s, uint8_t **out, size_t *len, struct gp_error *err);

#endif
