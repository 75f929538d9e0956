/*
 * disk_check.h — consistency check of a disk image, read-only: the
 * container (VHDX: headers, region tables, metadata, BAT, log, sector
 * bitmaps; VHD: footer, dynamic header, BAT), then the partition table and
 * the NTFS volume. What `gpup check` prints, and what `verify` and `doctor`
 * run first.
 *
 * Findings are graded: corruption (the image is damaged; a writer could
 * lose data), leaked space (file space nothing references: harmless, the
 * file is only larger than it needs to be), or a note (a state worth
 * knowing that is not damage: a dirty VHDX log, a dirty NTFS volume).
 * The check never writes. It goes on after a finding where it can, so that
 * one run lists more than the first problem; a container too damaged to
 * read stops it before the partition table.
 *
 * Errors follow gp_error.h: gp_check_image() returns an error only when it
 * could not check at all (the file cannot be opened or read, out of
 * memory); damage is a finding, not an error.
 */
#ifndef GPUP_DISK_CHECK_H
#define GPUP_DISK_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk.h"
#include "gp_error.h"

enum gp_check_grade {
	GP_CHECK_NOTE = 0,    /* not damage; listed, does not change the status */
	GP_CHECK_LEAK = 1,    /* leaked file space */
	GP_CHECK_CORRUPT = 2, /* damage */
	GP_CHECK_SKIPPED = 3, /* a part that could not be checked (and why) */
};

struct gp_check_finding {
	enum gp_check_grade grade;
	/* What is affected, a static string: "file", "header 1", "region table
	 * 2", "metadata", "BAT", "log", "sector bitmap", "footer", "dynamic
	 * header", "partition table", "NTFS volume", "NTFS $Bitmap", ... */
	const char *structure;
	/* Byte offset in the image file (container structures) or on the
	 * virtual disk (partition table, volume); -1 when none applies. */
	int64_t offset;
	bool virtual_offset; /* @offset is on the virtual disk, not in the file */
	char *message;       /* one line, malloc'ed */
};

struct gp_check_report {
	enum gp_disk_format format;
	struct gp_check_finding *findings; /* malloc'ed, @count long */
	size_t count;
	uint64_t leaked_bytes;
};

struct gp_check_opts {
	enum gp_disk_format format; /* GP_DISK_FORMAT_AUTO unless forced */
	const char *parent_path;    /* a differencing image's parent, or NULL */
	bool container_only;        /* stop after the container */
};

/*
 * Check the image at @path (@opts may be NULL). Fills @out (zeroed first;
 * release with gp_check_report_free(), also after a failure).
 * Returns 0 (the findings say what was found) or GP_ERR_NOTFOUND / GP_ERR_IO
 * (the file cannot be opened or read) / GP_ERR_NOMEM; details into @err.
 */
int gp_check_image(const char *path, const struct gp_check_opts *opts,
		   struct gp_check_report *out, struct gp_error *err);

/* The exit status `gpup check` gives a report: 2 when any finding is
 * corruption, else 1 when a part could not be checked, else 3 when space
 * leaked, else 0. */
int gp_check_status(const struct gp_check_report *r);

/* "note", "leak", "corruption", "skipped". */
const char *gp_check_grade_name(enum gp_check_grade g);

void gp_check_report_free(struct gp_check_report *r);

/* For the container checkers: open @path read-only and get its size.
 * Returns 0 or GP_ERR_NOTFOUND / GP_ERR_IO into @err. */
int gp_check_open(const char *path, int *fd, uint64_t *size, struct gp_error *err);

/* Add a finding (for the container checkers). Returns 0 or GP_ERR_NOMEM. */
int gp_check_add(struct gp_check_report *r, enum gp_check_grade g, const char *structure,
		 int64_t offset, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
