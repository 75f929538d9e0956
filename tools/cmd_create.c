/*
 * cmd_create.c — `gpup create IMAGE --size N [--block-size N]
 *                 [--sector-size 512|4096] [--physical-sector-size 512|4096]`
 *              — `gpup create CHILD --parent BASE`
 *
 * Creates a new, empty dynamic VHDX, or a differencing child of an existing
 * VHDX (the parent is only read, so a golden image stays untouched). Never
 * overwrites an existing file. Exit status: 0 created, 1 error, 2 usage.
 *
 * --json (schema 1; doc/schema/create.schema.json):
 *   { "schema", "command": "create", "image", "type":
 *   "dynamic" | "differencing", "parent": PATH | null, "virtual_size",
 *   "block_size", "logical_sector_size", "physical_sector_size",
 *   "changed": true }  (read back from the new image)
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runlog.h"
#include "vhdx.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup create IMAGE --size N [--block-size N] [--sector-size 512|4096]\n"
		   "                        [--physical-sector-size 512|4096]\n"
		   "       gpup create CHILD --parent BASE\n\n"
		   "Create a new dynamic VHDX of N bytes (sizes take K, M, G, T suffixes; block\n"
		   "size default 32M, sector size 512, physical sector size 4096), or a\n"
		   "differencing child of the VHDX BASE. Existing files are never overwritten.\n\n"
		   "  --size N                     virtual size of the new VHDX\n"
		   "  --block-size N               block size (default 32M)\n"
		   "  --sector-size 512|4096       logical sector size (default 512)\n"
		   "  --physical-sector-size 512|4096  physical sector size (default 4096)\n"
		   "  --parent BASE                make a differencing child of BASE instead\n"
		   "  --json                       describe the new image as JSON (schema 1)\n"
		   "  -h, --help                   show this help\n");
}

/* Describe the image just made, as read back from it. */
static int print_json(const char *path, const char *parent)
{
	struct vhdx_open_opts oo = { .parent_path = parent };
	struct gp_error err = { 0 };
	struct vhdx *v;
	json_object *o;
	int ret = vhdx_open(path, &oo, &v, &err);

	if (ret) /* the new image is there: it changed */
		return cli_fail_json("create", path, &err, true);
	o = json_object_new_object();
	json_object_object_add(o, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(o, "command", json_object_new_string("create"));
	json_object_object_add(o, "image", json_object_new_string(path));
	json_object_object_add(o, "type", json_object_new_string(vhdx_disk_type_name(vhdx_disk_type(v))));
	json_object_object_add(o, "parent", parent ? json_object_new_string(parent) : NULL);
	json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)vhdx_virtual_size(v)));
	json_object_object_add(o, "block_size", json_object_new_int64(vhdx_block_size(v)));
	json_object_object_add(o, "logical_sector_size", json_object_new_int64(vhdx_logical_sector_size(v)));
	json_object_object_add(o, "physical_sector_size",
			       json_object_new_int64(vhdx_physical_sector_size(v)));
	json_object_object_add(o, "changed", json_object_new_boolean(true));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return vhdx_close(v, &err) ? cli_fail(&err) : EXIT_OK;
}

static int parse_u32_size(const char *opt, const char *s, uint32_t *out)
{
	unsigned long long v;

	if (cli_parse_size(s, &v) || v == 0 || v > UINT32_MAX)
		return cli_usage("create", "invalid %s '%s'", opt, s);
	*out = (uint32_t)v;
	return 0;
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "sector-size", required_argument, NULL, 'l' },
		{ "physical-sector-size", required_argument, NULL, 'p' },
		{ "parent", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct vhdx_create_opts co = { 0 };
	bool json = false;
	struct gp_error err = { 0 };
	const char *parent = NULL;
	bool have_size = false, have_geom = false;
	unsigned long long size;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:b:P:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (cli_parse_size(optarg, &size) || size == 0)
				return cli_usage("create", "invalid --size '%s'", optarg);
			co.size = size;
			have_size = true;
			break;
		case 'b':
			if ((ret = parse_u32_size("--block-size", optarg, &co.block_size)))
				return ret;
			have_geom = true;
			break;
		case 'l':
			if ((ret = parse_u32_size("--sector-size", optarg, &co.logical_sector_size)))
				return ret;
			have_geom = true;
			break;
		case 'p':
			if ((ret = parse_u32_size("--physical-sector-size", optarg,
						  &co.physical_sector_size)))
				return ret;
			have_geom = true;
			break;
		case 'P':
			parent = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'j':
			json = true;
			break;
		default:
			return cli_usage("create", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("create", "expected exactly one IMAGE argument");
	if (parent && (have_size || have_geom))
		return cli_usage("create", "--parent takes size and geometry from the parent; drop --size/--block-size/--sector-size");
	if (!parent && !have_size)
		return cli_usage("create", "--size is required (or --parent BASE for a differencing child)");
	if (parent)
		ret = vhdx_create_child(argv[optind], parent, &err);
	else
		ret = vhdx_create(argv[optind], &co, &err);
	/* A failed create leaves nothing (the image is made under a
	 * temporary name and named only when complete). */
	if (ret) {
		ret = json ? cli_fail_json("create", argv[optind], &err, false) : cli_fail(&err);
		runlog_result(argv[optind], false);
		return ret;
	}
	if (parent)
		runlog("action", "created %s, a differencing child of %s", argv[optind], parent);
	else
		runlog("action", "created %s, a dynamic VHDX of %llu bytes", argv[optind],
		       (unsigned long long)co.size);
	return json ? print_json(argv[optind], parent) : EXIT_OK;
}
