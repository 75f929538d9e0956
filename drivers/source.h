/*
 * source.h — where a driver comes from: a host DriverStore (resolved for a
 * GPU and a guest) or a bundle. Either way the caller gets the same two
 * things: the injection set (the plan) and a stream of its bytes, so that
 * prepare, verify and doctor need not care which it is.
 */
#ifndef GPUP_SOURCE_H
#define GPUP_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "gp_error.h"
#include "inject.h"
#include "store.h"

struct gp_source_opts {
	const char *driverstore;  /* host root / Windows / DriverStore / FileRepository, or NULL */
	const char *bundle;       /* bundle file, or NULL; exactly one of the two */
	const char *gpu;          /* instance path, hardware ID or "auto"; NULL = "auto" */
	struct gp_guest_target target; /* guest arch/build for TargetOS ranking */
	bool allow_missing;       /* see gp_inject_opts */
	/* DriverStore: the files of every model and target of the chosen
	 * package (what a bundle carries, bundle.h), not only the GPU's for
	 * @target. */
	bool every_model;
};

struct gp_source;
struct gp_bundle;

/*
 * Open the source and compute its injection set. For a DriverStore: scan,
 * resolve @gpu for @target, build the set. For a bundle: read and validate
 * its manifest, then resolve the same way from the package's INF it
 * carries, for @target: the GPU it was made for (or @gpu, which must match
 * one of its hardware IDs), the install section for this guest's build and
 * architecture, and so its files (the set holds the manifest's entries
 * for them, in order, with their SHA-256; source_path NULL). A companion
 * the manifest lists that the INF copies for no device or build (say
 * System32's ntoskrnl.exe), or a CopyINF folder the INF does not name,
 * is refused.
 * Returns 0 or the codes of gp_store_open()/gp_store_resolve()/
 * gp_store_injection_set()/gp_bundle_open(); GP_ERR_INVALID when both or
 * neither source is given or the GPU does not fit the bundle;
 * GP_ERR_UNSUPPORTED for a bundle of format 1 (made by an older gpup: its
 * files were chosen for one build when it was made; the message asks to
 * recreate it); GP_ERR_CORRUPT for a companion or folder the INF does not
 * account for, or a companion whose bytes differ from the package file
 * it copies; GP_ERR_NOTFOUND for a file the INF copies for this guest
 * that the bundle lacks. On a failed resolution *@out is still set when a
 * resolution exists (for --explain); close it either way.
 */
int gp_source_open(const struct gp_source_opts *opts, struct gp_source **out,
		   struct gp_error *err);
void gp_source_close(struct gp_source *s);

/* The plan. NULL only after a failed open. Owned by the source. */
const struct gp_inject_set *gp_source_set(const struct gp_source *s);
/* The resolution (NULL when none was made). */
const struct gp_resolution *gp_source_resolution(const struct gp_source *s);
/* "driverstore" or "bundle", and the path given. */
const char *gp_source_kind(const struct gp_source *s);
const char *gp_source_path(const struct gp_source *s);
/* The bundle of a bundle source (its manifest: gp_bundle_info(),
 * gp_bundle_inject_set()), NULL for a DriverStore or a bundle that did
 * not open. Owned by the source. */
struct gp_bundle *gp_source_bundle(const struct gp_source *s);
/* Scan warnings (DriverStore only). */
size_t gp_source_warning_count(const struct gp_source *s);
const char *gp_source_warning(const struct gp_source *s, size_t i);

/* A fresh stream of the set's bytes (destroy with s->ops->destroy()). */
int gp_source_stream(struct gp_source *s, struct gp_inject_stream *out, struct gp_error *err);

/*
 * Read a bundle's files for the set once, into memory, each checked
 * against its manifest SHA-256 as the bundle's own stream checks it, so
 * that every later gp_source_stream() -- here or in a fork()ed copy, which
 * shares the pages -- serves them without decompressing or hashing the
 * archive again (`gpup prepare IMAGE...`: once per guest build, not once
 * per image). A DriverStore source, whose files are read in place, and a
 * set larger than @max_bytes are left as they are (*@loaded false).
 * Returns 0 or the bundle stream's codes (GP_ERR_CORRUPT, GP_ERR_MISMATCH,
 * GP_ERR_IO), GP_ERR_NOMEM.
 */
int gp_source_preload(struct gp_source *s, uint64_t max_bytes, bool *loaded,
		      struct gp_error *err);

#endif
