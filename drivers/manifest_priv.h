/*
 * manifest_priv.h — what manifest.c (the record, prepare's part) and
 * manifest_undo.c (verify's check, unprepare) share. Private to drivers/.
 */
#ifndef GPUP_MANIFEST_PRIV_H
#define GPUP_MANIFEST_PRIV_H

#include <sys/types.h>

#include "manifest.h"

/* The record's text as the guest holds it (manifest.json, else
 * manifest.json.new), malloc'ed. Returns 0, GP_ERR_NOTFOUND, the volume's
 * codes. */
int gp_manifest_read_text(struct gp_ntfs *v, char **text, size_t *len, struct gp_error *err);

/* Write @len bytes of @buf as guest file @path (replaced in place when it
 * exists), with @mtime; @sha256_out may be NULL. */
int gp_manifest_put_bytes(struct gp_ntfs *v, const char *path, const void *buf, size_t len,
			  int64_t mtime, uint8_t sha256_out[32], struct gp_error *err);

/* Copy guest file @from (at most GP_MANIFEST_BACKUP_MAX bytes) to @to with
 * @mtime; GP_ERR_CORRUPT when its bytes do not have @sha256. */
int gp_manifest_copy(struct gp_ntfs *v, const char *from, const char *to, int64_t mtime,
		     const uint8_t sha256[32], struct gp_error *err);

/* Index of @path in m->files (case-insensitive), or -1. */
ssize_t gp_manifest_find(const struct gp_manifest *m, const char *path);

/* Is @path @dir itself or below it (case-insensitive, '/' separators)? */
bool gp_manifest_path_under(const char *path, const char *dir);

/* Append a copy of @s / a zeroed entry for @path. GP_ERR_NOMEM / NULL. */
int gp_manifest_add_string(char ***arr, size_t *n, const char *s);
struct gp_manifest_file *gp_manifest_add_file(struct gp_manifest *m, const char *path);

/* Write @buf as @next, then as @path, each in place (manifest.c says
 * why); @next is removed after unless @keep_next. */
int gp_manifest_write_twice(struct gp_ntfs *v, const char *next, const char *path,
			    const void *buf, size_t len, bool keep_next, struct gp_error *err);

/* Append a registry record / a copy of a value's state. NULL /
 * GP_ERR_NOMEM. */
struct gp_manifest_reg *gp_manifest_add_reg(struct gp_manifest *m, const char *hive,
					    const char *key, bool key_created);
int gp_manifest_add_reg_value(struct gp_manifest_reg *r, const struct gp_manifest_reg_value *src);

#endif
