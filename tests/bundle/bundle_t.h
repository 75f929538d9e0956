/*
 * bundle_t.h — what the bundle tests share (tests/bundle/test_support.c):
 * the DriverStore fixture (built once per build directory by
 * tests/fixtures/mkstore.sh), a hand-made small bundle whose manifest and
 * entries the hostile tests mutate, and archive writing with libarchive.
 */
#ifndef GPUP_TEST_BUNDLE_T_H
#define GPUP_TEST_BUNDLE_T_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle.h"

/* The NVIDIA GPU of mkstore.sh (resolves to the newer nv_dispi package). */
#define T_NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"

/* mkstore.sh's output (t_fixture(): built once per state of
 * tests/fixtures, under a lock) and only read afterwards. Returns a
 * malloc'ed path. */
char *t_store(void);

/* One archive entry to write. type: AE_IFREG (data/len), AE_IFLNK (link),
 * AE_IFDIR, AE_IFIFO, AE_IFCHR; hardlink: a hard link to @link. */
struct t_entry {
	char *name;
	char *data;
	size_t len;
	unsigned type;
	char *link;
	bool hardlink;
};

/* A small bundle in pieces: the manifest as a json-c object and the
 * entries that follow it. t_case_base() fills a valid one (4 files, one
 * of them a companion); tests mutate it and write it with t_case_write(). */
#define T_CASE_MAX 256
struct t_case {
	struct json_object *m;
	struct t_entry e[T_CASE_MAX];
	size_t n;
};
void t_case_base(struct t_case *c);
/* The base case plus @extra small files under PKG/many/ (sizes 0..6000,
 * every fifth empty): more files than the stream reads ahead of. */
void t_case_many(struct t_case *c, size_t extra);
void t_case_free(struct t_case *c);
/* Index of the entry / manifest file whose path ends with @suffix. */
size_t t_case_find(const struct t_case *c, const char *suffix);
struct json_object *t_case_mfile(const struct t_case *c, const char *suffix);
/* Write DIR/NAME: the manifest (serialized from c->m, or @manifest_text
 * when not NULL) first, then c->e. fmt: "tar", "tar.gz", "tar.zst", "zip".
 * Returns the malloc'ed path. */
char *t_case_write(const struct t_case *c, const char *dir, const char *name, const char *fmt,
		   const char *manifest_text);

/* Write an arbitrary archive of @n entries. */
void t_write_archive(const char *path, const char *fmt, const struct t_entry *e, size_t n);

/* Read every entry of an archive into @e (max @cap); returns the count. */
size_t t_read_archive(const char *path, struct t_entry *e, size_t cap);
void t_entries_free(struct t_entry *e, size_t n);

/* Expectations, each also naming @substr in the message:
 * gp_bundle_open() fails with @code; */
void t_expect_open_fails(const char *path, int code, const char *substr);
/* open succeeds, gp_bundle_verify() fails with @code, and
 * `gpup bundle verify` exits with gp_status_exit_code(@code); */
void t_expect_verify_fails(const char *path, int code, const char *substr);
/* open succeeds, and streaming every file in order (read to the end,
 * close with the hash of what was read) fails with @code. */
void t_expect_stream_fails(const char *path, int code, const char *substr);

/* On a copy of the guest fixture, `gpup prepare -n`, `prepare` and
 * `verify --bundle @path` each exit with gp_status_exit_code(@code) and
 * name @substr. The dry run leaves the image byte-identical; so does the
 * real run of a zip (its central directory is read before any write). A
 * tar's real run, which meets the entry while streaming (bench/RESULTS.md:
 * a header pass first would cost too much), leaves it byte-identical or
 * says it rolled back what it had written. */
void t_expect_prepare_refuses(const char *path, int code, const char *substr);

/* On a copy of the guest fixture, `gpup prepare --bundle @path` works and
 * `verify --bundle` agrees. */
void t_expect_prepare_works(const char *path);

#endif
