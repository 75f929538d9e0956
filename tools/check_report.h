/*
 * check_report.h — `gpup check`'s report, shared with the commands that
 * run the check first (verify, doctor): text lines and the JSON form of a
 * gp_check_report (disk_check.h).
 */
#ifndef GPUP_CHECK_REPORT_H
#define GPUP_CHECK_REPORT_H

#include <json-c/json.h>
#include <stdio.h>

#include "disk_check.h"

/* gp_check_image() of @image as a command opened it: the same format and
 * parent override as @o. */
int check_report_run(const char *image, const struct gp_disk_open_opts *o,
		     struct gp_check_report *r, struct gp_error *err);

/* One line per finding to @f ("corruption: BAT at file offset 0x300008:
 * MESSAGE"), then "IMAGE: check: clean" or the counts. */
void check_report_print(FILE *f, const char *image, const struct gp_check_report *r);

/* The same lines as warnings (cli_warn(): events with --progress=json,
 * nothing with -q), for a command whose own report is on stdout. */
void check_report_warn(const char *image, const struct gp_check_report *r);

/* The report as JSON: { "status", "clean", "format", "leaked_bytes",
 * "findings": [ { "grade", "structure", "offset" (or null), "offset_in":
 * "file" | "virtual disk", "message" } ] }. The caller owns it. */
struct json_object *check_report_json(const struct gp_check_report *r);

/* The fix doctor names for a report with findings (static text). */
const char *check_report_fix(const struct gp_check_report *r);

#endif
