/*
 * store_priv.h — what store.c (scan), resolve.c (GPU -> package) and
 * inject.c (injection set) share. Not a public header: see store.h.
 */
#ifndef GPUP_STORE_PRIV_H
#define GPUP_STORE_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

struct gp_store {
	char *repo_dir;       /* FileRepository */
	char *windows_dir;    /* host Windows directory, or NULL */
	struct gp_package **pkgs;
	size_t n_pkgs;
	char **warnings;
	size_t n_warnings;
	struct gp_error err;  /* last failed call */
};

/* "a/b" (malloc'ed), NULL on allocation failure. */
char *gp_path_join(const char *a, const char *b);

/* Find the entry of directory @dir whose name equals @name ignoring ASCII
 * case (an exact match wins). Returns a malloc'ed path in *out and 0,
 * GP_ERR_NOTFOUND (no such entry, or @dir unreadable), GP_ERR_NOMEM. */
int gp_find_child_ci(const char *dir, const char *name, char **out);

/* Like gp_find_child_ci() for a relative path of '/'- or '\'-separated
 * components, each matched case-insensitively. ".." and "." components are
 * refused (GP_ERR_NOTFOUND): INF text must not walk out of a directory. */
int gp_find_path_ci(const char *dir, const char *rel, char **out);

bool gp_str_ieq(const char *a, const char *b);

/* Compare two packages by DriverVer date, then version (then nothing):
 * <0, 0, >0 like strcmp. */
int gp_package_cmp_version(const struct gp_package *a, const struct gp_package *b);

/* Does a TargetOS / package fit the guest? @arch never NULL here. */
bool gp_target_fits(const struct gp_target_os *t, const struct gp_package *pkg,
		    const char *arch, uint32_t build);

#endif
