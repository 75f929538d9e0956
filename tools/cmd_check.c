/*
 * cmd_check.c — `gpup check IMAGE [--json]`: the image's consistency, like
 * `qemu-img check`, read-only: the container (VHDX headers, region tables,
 * metadata, BAT, log, sector bitmaps; VHD footer, dynamic header, BAT), then
 * the partition table and each NTFS volume (disk_check.h).
 *
 * Exit status: 0 clean, 2 corruption, 3 leaked space only, 1 could not
 * check (a part could not be read: a missing parent, an unsupported
 * feature; or the file could not be opened). Usage errors also exit 2.
 *
 * JSON (schema 1; doc/schema/check.schema.json):
 *   { "schema", "command": "check", "image", "status",
 *   "clean", "format", "leaked_bytes", "findings": [ { "grade",
 *   "structure", "offset", "offset_in", "message" } ] }
 */
#include <getopt.h>
#include <string.h>

#include "check_report.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup check IMAGE [--parent PATH] [--format auto|vhdx|vhd|raw] [--json]\n\n"
		   "Check the image's consistency without changing it: the VHDX headers, region\n"
		   "tables, metadata, BAT, log and sector bitmaps (VHD: footer, dynamic header,\n"
		   "BAT), then the partition table and the NTFS volumes. Lists each finding with\n"
		   "the structure and its offset.\n\n"
		   "Exit status: 0 clean, 2 corruption, 3 leaked space only, 1 could not check.\n"
		   "  --parent PATH   a differencing image's parent, when not beside it\n"
		   "  --format F      auto (default), vhdx, vhd or raw\n"
		   "  --json          the findings as JSON (schema 1)\n");
}

static const char *grade_word(enum gp_check_grade g)
{
	return gp_check_grade_name(g);
}

int check_report_run(const char *image, const struct gp_disk_open_opts *o,
		     struct gp_check_report *r, struct gp_error *err)
{
	struct gp_check_opts co = { .format = o->format, .parent_path = o->parent_path };

	return gp_check_image(image, &co, r, err);
}

void check_report_print(FILE *f, const char *image, const struct gp_check_report *r)
{
	size_t n[4] = { 0 };

	for (size_t i = 0; i < r->count; i++) {
		const struct gp_check_finding *x = &r->findings[i];

		n[x->grade]++;
		if (x->offset >= 0)
			fprintf(f, "%s: %s at %s offset 0x%llx: %s\n", grade_word(x->grade),
				x->structure, x->virtual_offset ? "disk" : "file",
				(unsigned long long)x->offset, x->message);
		else
			fprintf(f, "%s: %s: %s\n", grade_word(x->grade), x->structure, x->message);
	}
	if (!n[GP_CHECK_CORRUPT] && !n[GP_CHECK_LEAK] && !n[GP_CHECK_SKIPPED])
		fprintf(f, "%s: check: clean (%s)\n", image, gp_disk_format_name(r->format));
	else
		fprintf(f, "%s: check: %zu corruption, %zu leaked space (%llu bytes), %zu not checked\n",
			image, n[GP_CHECK_CORRUPT], n[GP_CHECK_LEAK],
			(unsigned long long)r->leaked_bytes, n[GP_CHECK_SKIPPED]);
}

void check_report_warn(const char *image, const struct gp_check_report *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return;
	check_report_print(f, image, r);
	if (fclose(f) == 0)
		for (char *save, *line = strtok_r(text, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			cli_warn("%s", line);
	free(text);
}

struct json_object *check_report_json(const struct gp_check_report *r)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "status", json_object_new_int(gp_check_status(r)));
	json_object_object_add(o, "clean", json_object_new_boolean(gp_check_status(r) == 0));
	json_object_object_add(o, "format", json_object_new_string(gp_disk_format_name(r->format)));
	json_object_object_add(o, "leaked_bytes", json_object_new_int64((int64_t)r->leaked_bytes));
	for (size_t i = 0; i < r->count; i++) {
		const struct gp_check_finding *x = &r->findings[i];
		struct json_object *f = json_object_new_object();

		json_object_object_add(f, "grade", json_object_new_string(grade_word(x->grade)));
		json_object_object_add(f, "structure", json_object_new_string(x->structure));
		json_object_object_add(f, "offset", x->offset >= 0 ? json_object_new_int64(x->offset) : NULL);
		json_object_object_add(f, "offset_in",
				       json_object_new_string(x->virtual_offset ? "virtual disk" : "file"));
		json_object_object_add(f, "message", json_object_new_string(x->message));
		json_object_array_add(a, f);
	}
	json_object_object_add(o, "findings", a);
	return o;
}

const char *check_report_fix(const struct gp_check_report *r)
{
	for (size_t i = 0; i < r->count; i++) {
		const struct gp_check_finding *x = &r->findings[i];

		if (x->grade != GP_CHECK_CORRUPT)
			continue;
		if (!strncmp(x->structure, "region table", 12))
			return "open the image read-write once (any gpup write, e.g. `gpup prepare`): the damaged region table is rewritten from the good copy";
		if (!strcmp(x->structure, "NTFS volume") || !strcmp(x->structure, "partition table"))
			return "boot the guest and run `chkdsk /f` (or repair the partition table from its backup), or restore the image from a backup";
		return "restore the image from a backup (or a checkpoint's parent); `qemu-img check -r all` can repair some VHDX damage";
	}
	for (size_t i = 0; i < r->count; i++)
		if (r->findings[i].grade == GP_CHECK_LEAK)
			return "leaked space is harmless; `qemu-img convert` or Optimize-VHD compacts the file";
	return "";
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "parent", required_argument, NULL, 'P' },
		{ "format", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gp_check_opts co = { 0 };
	struct gp_check_report r;
	struct gp_error err = { 0 };
	bool json = false;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "P:f:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
			co.parent_path = optarg;
			break;
		case 'f':
			if (gp_disk_format_parse(optarg, &co.format))
				return cli_usage("check", "invalid --format '%s'", optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			return cli_usage("check", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("check", "expected exactly one IMAGE argument");
	ret = gp_check_image(argv[optind], &co, &r, &err);
	if (ret) {
		gp_check_report_free(&r);
		return cli_fail_cmd("check", json, argv[optind], &err);
	}
	if (json) {
		struct json_object *o = check_report_json(&r);

		json_object_object_add(o, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
		json_object_object_add(o, "command", json_object_new_string("check"));
		json_object_object_add(o, "image", json_object_new_string(argv[optind]));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		check_report_print(stdout, argv[optind], &r);
	}
	ret = gp_check_status(&r);
	gp_check_report_free(&r);
	return ret;
}
