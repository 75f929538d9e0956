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
	/* A listed store (gp_store_listed()): these files stand in for the
	 * package folders and the host's System32 / SysWOW64 (borrowed), and
	 * the first package's INF text is here (owned); NULL otherwise. */
	const struct gp_inject_file *listed;
	size_t n_listed;
	void *inf_text;
	size_t inf_len;
};

/*
 * A store whose files are listed in memory instead of lying in host
 * folders: a bundle's (source.c), so that its injection set is resolved
 * for a guest by the very code that resolves a DriverStore's.
 * @files (sorted by guest path; borrowed, they must outlive the store)
 * stand in for the package folders (under GP_GUEST_HOSTDRIVERSTORE/
 * <folder>/) and for the host's System32 / SysWOW64 (the files at those
 * guest paths); an injection set computed from the store names the
 * listed file holding each file's bytes as its source_path. The first
 * package takes folder, inf_name and arch from @pkg and everything else
 * from its INF, @inf (@inf_len bytes, copied); the @copyinf packages are
 * copied as they are (only CopyINF lookups use them). @repo names the
 * source in messages. Returns 0, GP_ERR_CORRUPT (the INF does not parse
 * or is no driver INF), GP_ERR_NOMEM; close with gp_store_close().
 */
int gp_store_listed(const char *repo, const struct gp_package *pkg, const void *inf,
		    size_t inf_len, const struct gp_package *const *copyinf, size_t n_copyinf,
		    const struct gp_inject_file *files, size_t n_files, struct gp_store **out,
		    struct gp_error *err);

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

/* Split a package folder name "nv_dispi.inf_amd64_0123abcd" into its INF
 * name ("nv_dispi.inf") and arch ("amd64", lower case), both malloc'ed.
 * False when @name is no package folder name (or holds a control
 * character, or out of memory); the
 * caller frees whatever was set. */
bool gp_package_folder_name(const char *name, char **inf, char **arch);

/* Compare two packages by DriverVer date, then version (then nothing):
 * <0, 0, >0 like strcmp. */
int gp_package_cmp_version(const struct gp_package *a, const struct gp_package *b);

/* The DDInstall section Windows runs for install section @base of a
 * package for @arch: base.NT<arch>, else base.NT, else base; NULL when
 * none exists. */
struct gp_inf;
struct gp_inf_section;
const struct gp_inf_section *gp_ddinstall_section(const struct gp_inf *inf, const char *base,
						  const char *arch);

/* Which TargetOS decorations of @pkg Windows uses on the guest (@arch,
 * @build; build 0 = newest): for each [Manufacturer] line, the one that
 * applies and matches the OS most closely (Manufacturer section rules).
 * sel[t] is set for those; @sel has pkg->n_targets entries. */
void gp_targets_select(const struct gp_package *pkg, const char *arch, uint32_t build,
		       bool *sel);

#endif
