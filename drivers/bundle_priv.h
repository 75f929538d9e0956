/*
 * bundle_priv.h — what bundle.c and bundle_manifest.c share: the manifest's
 * native form, its parse/serialize pair, and the guest-path rules.
 */
#ifndef GPUP_BUNDLE_PRIV_H
#define GPUP_BUNDLE_PRIV_H

#include "bundle.h"

/* The manifest, parsed and validated, already in the shapes the rest of
 * gpup consumes (store.h). Everything is owned by this struct. */
struct gp_bundle_manifest {
	unsigned format_version;
	char *tool_version;
	char **hwids;
	size_t n_hwids;
	struct gp_package *pkgs;          /* [0] the package, then CopyINF packages */
	size_t n_pkgs;
	const struct gp_package **copyinf_ptrs;  /* pkgs + 1 .. , for set.copyinf */
	struct gp_model model;            /* ids = hwids (not separately owned) */
	struct gp_target_os target;
	struct gp_inject_set set;         /* files[i].sha256 filled, source_path NULL */
	/* Format 2 on: the GPU the bundle was made for ("auto" or a hardware
	 * ID) and the package's INF, whose SHA-256 is its file's in set. */
	char *gpu;
	uint8_t *inf_text;
	size_t inf_len;
};

/* Parse and validate the manifest text @json (@len bytes, not necessarily
 * NUL-terminated) of the archive @name whose file is @archive_size bytes.
 * Returns 0 with *out set (free with gp_bundle_manifest_free()),
 * GP_ERR_CORRUPT (the message names @name, the field and the rule),
 * GP_ERR_UNSUPPORTED (unknown format version), GP_ERR_NOMEM. */
int gp_bundle_manifest_parse(const char *json, size_t len, uint64_t archive_size,
			     const char *name, struct gp_bundle_manifest **out,
			     struct gp_error *err);
void gp_bundle_manifest_free(struct gp_bundle_manifest *m);

/* Serialize the manifest of @set whose files hash to @sha[i], recording
 * @hwids, @gpu (the GPU asked for, "auto" or an ID), the package's INF
 * (@inf, @inf_len bytes: it must be the set's copy, whose hash the parse
 * checks) and @tool_version. *out is malloc'ed text (caller frees), *len
 * its length. The output is a pure function of the inputs (reproducible).
 * Returns 0, GP_ERR_INVALID (no @inf; the set breaks a manifest rule:
 * the message names the path), GP_ERR_NOMEM. The result always parses
 * back. */
int gp_bundle_manifest_serialize(const struct gp_inject_set *set, const uint8_t (*sha)[32],
				 const char *const *hwids, size_t n_hwids, const char *gpu,
				 const void *inf, size_t inf_len, const char *tool_version,
				 char **out, size_t *len, struct gp_error *err);

/* Where a guest path may live in a bundle. */
enum gp_bundle_path_kind {
	GP_BUNDLE_PATH_PACKAGE,    /* under GP_GUEST_HOSTDRIVERSTORE/<folder>/ */
	GP_BUNDLE_PATH_COMPANION,  /* Windows/System32/<name>, Windows/SysWOW64/<name> */
};

/* Check @path against the bundle path rules (bundle.h). Returns 0 with
 * *kind set (and for a package path, *folder and *folder_len pointing at the
 * folder component inside @path), or -1 with *why a static reason
 * ("absolute path", "'..' component", ...). */
int gp_bundle_path_check(const char *path, enum gp_bundle_path_kind *kind,
			 const char **folder, size_t *folder_len, const char **why);

#endif
