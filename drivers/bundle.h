/*
 * bundle.h — reusable driver bundles: a driver package captured once into
 * one archive, verifiable and injectable anywhere, without a GPU or a host
 * DriverStore.
 *
 * What it holds (format 2). The injection set (store.h) of *every* model
 * and target of the package's INF: the whole package folder with the INF,
 * its CopyINF packages, and every System32 / SysWOW64 file the INF may
 * copy for any device and Windows build. The manifest carries the INF's
 * text and the GPU the bundle was made for, so that the files for one
 * guest are resolved at inject time from the INF, for that guest's build
 * and architecture, by the code that resolves a DriverStore (source.h).
 * A bundle fixed for one build when it was made (format 1) is still read
 * here, but source.h refuses to inject it.
 *
 * Layout. A bundle is a tar (zstd, xz or gzip compressed) or a zip archive
 * (libarchive reads and writes it). Its FIRST entry is the manifest
 * GP_BUNDLE_MANIFEST_NAME (JSON, described below); then every file of the
 * injection set at its guest path ("Windows/System32/HostDriverStore/
 * FileRepository/<folder>/...", "Windows/System32/<name>",
 * "Windows/SysWOW64/<name>"), sorted by guest path (strcmp), which is the
 * order in which the injector (inject.h) asks for them, so that a bundle
 * streams into an image with no temporary copy.
 *
 * Reproducibility. The same injection set (same bytes, same mtimes) gives
 * a byte-identical bundle: entries in sorted order, the sources' mtimes
 * (the manifest gets the newest of them), uid/gid 0, no user/group names,
 * no atime/ctime, mode 0644, fixed compression levels, no gzip timestamp,
 * no creation date in the manifest. Tar bundles are "restricted pax":
 * plain ustar headers, with a pax extended header only for an entry that
 * ustar cannot describe (a path longer than ustar's prefix/name split,
 * a size above 8 GiB). Zip bundles store DOS times, which zip defines in
 * local time: they are reproducible on machines with the same time zone
 * (the UTC "extended timestamp" field is written too).
 *
 * Hashes. SHA-256 (OpenSSL EVP). Creation reads every source twice: a
 * first pass hashes it for the manifest (which must precede the files in
 * the archive), the second streams it into the archive and hashes again;
 * a source that changed in between fails the creation.
 *
 * Hostile archives. A bundle is untrusted input. gp_bundle_open() reads
 * and validates the whole manifest before anything else is believed; the
 * readers (gp_bundle_verify(), gp_bundle_stream()) then accept an entry only
 * when it is the manifest's next file, a regular file with the manifest's
 * path (exact bytes) and size. Rejected, with a one-line message naming the
 * archive and the entry: absolute paths, "." / ".." / empty components,
 * backslashes, drive letters and ':' (NTFS streams), characters Windows
 * forbids, components ending in '.' or ' ' (Windows strips them), non-ASCII
 * names (so that the case-insensitive duplicate check below is exact),
 * paths outside the three guest locations, symlinks, hard links, devices,
 * FIFOs, directories, duplicate paths (also differing only in ASCII case,
 * NTFS being case-insensitive, and a file that is also another's parent
 * directory), entries missing from the manifest or out of its order,
 * size or hash mismatches, truncated or corrupt archives, and a manifest
 * that is missing, not first, not JSON, mistyped, of an unknown format
 * version, or claiming absurd sizes (GP_BUNDLE_MAX_FILE_SIZE per file,
 * GP_BUNDLE_MAX_FILES files, a total above GP_BUNDLE_MAX_RATIO times the
 * archive's size).
 *
 * Manifest (format version GP_BUNDLE_FORMAT_VERSION):
 *   {
 *     "format": "gpup-bundle", "format_version": 2, "tool_version": "0.1.0",
 *     "arch": "amd64",
 *     "package": { "folder", "inf", "provider", "class", "class_guid",
 *                  "driver_ver_date", "driver_ver_version", "catalog_file",
 *                  "arch", "copyinf": [INF names],
 *                  "inf_text": the INF's bytes in base64 (format 2; they
 *                  hash as the INF's entry among "files") },
 *     "copyinf_packages": [ package objects as above ],
 *     "hardware_ids": [ "PCI\\VEN_10DE&DEV_2860", ... ],
 *     "gpu": "auto" or the hardware ID it was made for (format 2),
 *     "folders": [ guest folder paths ],
 *     "missing": [ guest paths ], "copyinf_missing": [ INF names ],
 *     "file_count": N, "total_bytes": N,
 *     "files": [ { "path", "size", "sha256" (64 lower-case hex), "mtime"
 *                  (seconds since the epoch), "role" ("package",
 *                  "companion", "copyinf-package"), "origin" } ]
 *   }
 * Unknown keys are ignored (additions within a format version); a missing
 * or mistyped known key is an error.
 *
 * Memory: a gp_bundle holds the manifest (proportional to the number of
 * files); reading file data uses fixed buffers (a stream: libarchive's
 * 1 MiB block and the stream's 4 MiB ring), whatever the bundle's size.
 */
#ifndef GPUP_BUNDLE_H
#define GPUP_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"
#include "gp_progress.h"
#include "inject.h"
#include "store.h"

#define GP_BUNDLE_MANIFEST_NAME "gpup-bundle.json"
/* 2: the manifest carries the package's INF and the GPU it was made for,
 * and the archive every file any target of the INF may copy, so that the
 * files are chosen for the guest at inject time. 1 (a set fixed when the
 * bundle was made) is still read, but not injected (source.h). */
#define GP_BUNDLE_FORMAT_VERSION 2
/* Limits a manifest may not exceed. */
#define GP_BUNDLE_MAX_FILES 1000000u
#define GP_BUNDLE_MAX_FILE_SIZE (1ull << 40)            /* 1 TiB */
#define GP_BUNDLE_MAX_MANIFEST_SIZE (256ull << 20)      /* bytes of JSON */
#define GP_BUNDLE_MAX_PATH 1024u                        /* bytes of a guest path */
#define GP_BUNDLE_MAX_HWIDS 4096u
/* Claimed total bytes may not exceed this many times the archive's size:
 * far above what zstd/xz reach on real driver files, far below what a
 * few-KiB archive claiming terabytes would need. */
#define GP_BUNDLE_MAX_RATIO 16384u

enum gp_bundle_format {
	GP_BUNDLE_TAR_ZSTD = 0,  /* .tar.zst */
	GP_BUNDLE_TAR_XZ,        /* .tar.xz */
	GP_BUNDLE_TAR_GZIP,      /* .tar.gz */
	GP_BUNDLE_ZIP,           /* .zip (deflate) */
};

/* The format an output name asks for, from its extension (case-insensitive):
 * ".tar.zst", ".tar.xz", ".tar.gz", ".zip". Returns 0, or GP_ERR_INVALID
 * for any other name (the message lists the known extensions). */
int gp_bundle_format_from_path(const char *path, enum gp_bundle_format *out,
			       struct gp_error *err);

/* The known extensions, for usage text: ".tar.zst, .tar.xz, .tar.gz, .zip". */
const char *gp_bundle_extensions(void);

/* Its extension (".tar.zst" ...). */
const char *gp_bundle_format_name(enum gp_bundle_format f);

struct gp_bundle_create_opts {
	enum gp_bundle_format format;
	/* Written into the manifest as "tool_version" (the CLI passes
	 * GPUP_VERSION); NULL is an error. */
	const char *tool_version;
	/* Hardware IDs recorded in the manifest: @model's IDs (the
	 * resolution's model); NULL = the first ID of every model of the
	 * package, without duplicates (the "auto" resolution). */
	const struct gp_model *model;
	/* The GPU asked for, recorded for the resolution at inject time
	 * ("auto" or an ID; NULL = "auto"). */
	const char *gpu;
	const struct gp_progress *progress;  /* stage "bundle"; may be NULL */
};

/* Write the bundle of @set (every file must have a source_path) to @path.
 * The archive is written to a temporary file beside @path and renamed over
 * @path only when complete, so a failure leaves no partial output (and an
 * existing @path untouched).
 * Returns 0, GP_ERR_INVALID (no tool version, a file without a source,
 * a guest path a bundle cannot hold — the message names it),
 * GP_ERR_NOTFOUND (a source vanished), GP_ERR_IO (reading a source or
 * writing the archive failed; also a source that changed size or content
 * while being bundled), GP_ERR_ABORTED, GP_ERR_NOMEM. */
int gp_bundle_create(const char *path, const struct gp_inject_set *set,
		     const struct gp_bundle_create_opts *opts, struct gp_error *err);

/* ---- Reading ----------------------------------------------------------- */

struct gp_bundle;

/* Open the bundle at @path: read its first entry, the manifest, and
 * validate all of it (see the top of this file). Only the manifest is read;
 * file data is checked by gp_bundle_verify() or while streaming.
 * On success *out owns the bundle; close it with gp_bundle_close().
 * Returns 0, GP_ERR_NOTFOUND (no such file), GP_ERR_IO, GP_ERR_CORRUPT
 * (not a bundle, corrupt archive, bad manifest — the message names the
 * archive, the entry or manifest field, and the rule),
 * GP_ERR_UNSUPPORTED (a manifest format version this gpup does not know),
 * GP_ERR_NOMEM. */
int gp_bundle_open(const char *path, struct gp_bundle **out, struct gp_error *err);

/* Release @b (NULL is a no-op). Sets and streams obtained from it must be
 * released first. */
void gp_bundle_close(struct gp_bundle *b);

/* Facts of the manifest that have no place in a gp_inject_set. Owned by
 * the bundle. */
struct gp_bundle_info {
	const char *path;             /* as passed to gp_bundle_open() */
	unsigned format_version;
	const char *tool_version;     /* of the gpup that created it */
	const char *archive_format;   /* what was read: "tar.zst", "tar.xz",
				       * "tar.gz", "tar", "zip" */
	uint64_t archive_size;        /* bytes of the archive file */
	const char *const *hardware_ids;
	size_t n_hardware_ids;
	const char *manifest_json;    /* the manifest's text, as stored */
	size_t manifest_len;
	/* Format 2 on (NULL before): the GPU it was made for ("auto" or a
	 * hardware ID), and the package's INF (the bytes of its file). */
	const char *gpu;
	const uint8_t *inf_text;
	size_t inf_len;
};
const struct gp_bundle_info *gp_bundle_info(const struct gp_bundle *b);

/* The injection set the manifest describes, so that a bundle can stand in
 * for a resolved DriverStore: files in manifest (= guest path) order with
 * guest_path, size, mtime, role, origin, has_sha256 = true and sha256; and
 * source_path = NULL (bytes come from gp_bundle_stream()). pkg and copyinf
 * are packages synthesised from the manifest: folder, inf_name, provider,
 * class_name, class_guid, driver_ver_*, date_key, version, is_display,
 * catalog_file, arch, copyinf names, and one model whose ids are the
 * manifest's hardware IDs (none when it has none); dir_path and inf_path are
 * NULL. Owned by the bundle, valid until gp_bundle_close(). */
const struct gp_inject_set *gp_bundle_inject_set(struct gp_bundle *b);

/* Read every entry of the archive and check it against the manifest:
 * order, type, path, size and SHA-256, and that nothing follows the last
 * file. Progress stage "verify-bundle" (may be NULL).
 * Returns 0, GP_ERR_MISMATCH (a file's size or content differs from the
 * manifest — the message names the file; also the manifest changed since
 * gp_bundle_open()), GP_ERR_CORRUPT (hostile or corrupt archive: unsafe,
 * unexpected, duplicate, out-of-order or missing entry, truncated data),
 * GP_ERR_IO, GP_ERR_ABORTED, GP_ERR_NOMEM. Stops at the first problem. */
int gp_bundle_verify(struct gp_bundle *b, const struct gp_progress *progress,
		     struct gp_error *err);

/* Check every entry's header against the manifest, as gp_bundle_verify()
 * does but without reading the data: type, path, order, size, nothing
 * after the last file, an archive that ends where it should. Without
 * @full only a zip is read (through its central directory, which costs
 * seeks); a tar, which would have to be decompressed to its end, is left
 * to the stream, which checks each entry it passes (finish() to the end).
 * Returns 0, GP_ERR_CORRUPT, GP_ERR_MISMATCH (a size, or the manifest
 * changed since gp_bundle_open()), GP_ERR_IO, GP_ERR_NOMEM. */
int gp_bundle_check(struct gp_bundle *b, bool full, struct gp_error *err);

/* A gp_inject_stream (inject.h) over the archive, for the files of
 * gp_bundle_inject_set(b) (a file is found by its guest path, so a copy of
 * the set works too):
 *  - open(f) reads forward to f's entry; the entries passed over must be
 *    the manifest's files in order (checked as by gp_bundle_verify(), except
 *    that their data is skipped, not hashed). Asking for a file at or
 *    before one already opened, or one not in the manifest, fails with
 *    GP_ERR_INVALID; a hostile archive with GP_ERR_CORRUPT.
 *  - read() streams the entry's data; more bytes than the manifest's size
 *    is GP_ERR_MISMATCH.
 *  - close(sha256) fails with GP_ERR_MISMATCH, naming the file, when the
 *    entry's length, the SHA-256 of its bytes, or the @sha256 passed in
 *    (what the caller hashed) differ from the manifest; @sha256 may be NULL.
 *  - expected(f) gives f's SHA-256 from the manifest (GP_ERR_INVALID when
 *    f is not in it), without touching the archive.
 *  - destroy() releases the archive reader and the reading thread.
 * The archive is read on a second thread, started by the first open(),
 * into a 4 MiB ring that read() copies out of. That thread reads ahead of
 * the caller across files (up to 64 entries, within the ring), so what it
 * finds ahead is reported only for the file it belongs to: a hostile or
 * missing entry by that file's open() and every later one, bad data by its
 * read() and close() — never by an earlier file, and not at all for a file
 * nobody asks for. The SHA-256 is extended by whichever of the two threads
 * is free (the caller's, inside read()), and close() waits for the digest
 * before comparing.
 *  - check(full) is gp_bundle_check();
 *  - finish() reads on, skipping data, to the archive's end, and fails as
 *    gp_bundle_verify() would for any entry after the last file opened
 *    (0 when no file was opened).
 * The stream keeps a pointer to @b: destroy it before gp_bundle_close().
 * Returns 0, GP_ERR_IO, GP_ERR_CORRUPT, GP_ERR_MISMATCH (the archive's
 * manifest changed since gp_bundle_open()), GP_ERR_NOMEM. */
int gp_bundle_stream(struct gp_bundle *b, struct gp_inject_stream *out,
		     struct gp_error *err);

/* Text of a role in the manifest ("package", "companion", "copyinf-package"). */
const char *gp_bundle_role_name(enum gp_inject_role role);

#endif
