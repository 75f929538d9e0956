/* cmd_gpus.c — `gpup gpus`: the host's partitionable GPUs, from a saved
 * Get-VMHostPartitionableGpu listing or live through PowerShell.
 *
 * --json prints one object (schema GPUP_JSON_SCHEMA; doc/schema/gpus.schema.json):
 *   { "schema": 1, "source": FILE or "powershell",
 *     "gpus": [ { "instance_path": "\\?\PCI#VEN_...",
 *                 "vendor_id", "device_id", "subsys_vendor_id",
 *                 "subsys_device_id": 4 lower-case hex digits or null,
 *                 "revision": 2 hex digits or null,
 *                 "vendor_name", "device_name", "subsys_vendor_name",
 *                 "subsys_name", "computer_name": string or null,
 *                 "partition_count": N, "valid_partition_counts": [N...],
 *                 "valid_partition_counts_truncated": bool,
 *                 "resources": { "VRAM"|"Encode"|"Decode"|"Compute":
 *                     { "total", "available", "min", "max", "optimal":
 *                       unsigned 64-bit integers } } } ] }
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "gpus.h"
#include "ps.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup gpus [--from FILE] [--json] [--pci-ids FILE] [-q]\n\n"
		   "List the host's partitionable GPUs: instance path, PCI IDs and names,\n"
		   "partition counts and each resource's Total/Available/Min/Max/Optimal.\n\n"
		   "  --from FILE      output of Get-VMHostPartitionableGpu (Windows 11 / Server\n"
		   "                   2025) or Get-VMPartitionableGpu (Windows 10 / Server 2022),\n"
		   "                   as listed in the console or piped through ConvertTo-Json;\n"
		   "                   without it, powershell.exe (WSL) or pwsh is asked live\n"
		   "  --json           machine-readable output\n"
		   "  --pci-ids FILE   PCI ID database (default " GP_PCI_IDS_DEFAULT ")\n"
		   "  -q, --quiet      no warnings on stderr\n"
		   "  -h, --help       show this help\n");
}

static const char *or_unknown(const char *s)
{
	return s ? s : "(unknown)";
}

static void print_human(const struct gp_gpu_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		const struct gp_gpu *g = &l->gpus[i];

		if (i)
			putchar('\n');
		/* Everything but the numbers comes from a file (the list,
		 * pci.ids): escaped (cli_esc()). */
		printf("GPU %zu: %s%s%s\n", i + 1, cli_esc(g->vendor_name),
		       g->vendor_name ? " " : "",
		       g->device_name ? cli_esc(g->device_name) : (g->has_pci_ids ? "(unknown device)"
									 : "(no PCI IDs)"));
		printf("  instance path  %s\n", cli_esc(g->instance_path));
		if (g->has_pci_ids) {
			printf("  PCI ID         %04x:%04x", g->vendor_id, g->device_id);
			if (g->has_subsys)
				printf(", subsystem %04x:%04x", g->subsys_vendor_id, g->subsys_device_id);
			if (g->has_rev)
				printf(", revision %02x", g->revision);
			putchar('\n');
			if (g->has_subsys && (g->subsys_name || g->subsys_vendor_name))
				printf("  subsystem      %s%s%s\n",
				       cli_esc(or_unknown(g->subsys_vendor_name)),
				       g->subsys_name ? " " : "", cli_esc(g->subsys_name));
		}
		if (g->has_pci_ids)
			printf("  choose with    --gpu 'VEN_%04X&DEV_%04X'\n", g->vendor_id, g->device_id);
		if (g->computer_name)
			printf("  host           %s\n", cli_esc(g->computer_name));
		printf("  partitions     %" PRIu32, g->partition_count);
		if (g->valid_count_n) {
			printf(" (valid counts:");
			for (size_t k = 0; k < g->valid_count_n; k++)
				printf(" %" PRIu32, g->valid_counts[k]);
			printf("%s)", g->valid_counts_truncated ? " ..." : "");
		}
		putchar('\n');
		printf("  %-8s %20s %20s %20s %20s %20s\n", "resource", "total", "available", "min",
		       "max", "optimal");
		for (int r = 0; r < GP_RES_COUNT; r++)
			printf("  %-8s %20" PRIu64 " %20" PRIu64 " %20" PRIu64 " %20" PRIu64
			       " %20" PRIu64 "\n", gp_gpu_res_name(r), g->res[r].total,
			       g->res[r].available, g->res[r].min, g->res[r].max, g->res[r].optimal);
	}
}

static json_object *jstr_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *jhex(unsigned v, int digits)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%0*x", digits, v);
	return json_object_new_string(buf);
}

static int print_json(const struct gp_gpu_list *l, const char *source)
{
	json_object *root = json_object_new_object(), *arr = json_object_new_array();

	json_object_object_add(root, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(root, "command", json_object_new_string("gpus"));
	json_object_object_add(root, "source", json_object_new_string(source));
	for (size_t i = 0; i < l->count; i++) {
		const struct gp_gpu *g = &l->gpus[i];
		json_object *o = json_object_new_object(), *res = json_object_new_object();
		json_object *counts = json_object_new_array();

		json_object_object_add(o, "instance_path", json_object_new_string(g->instance_path));
		json_object_object_add(o, "vendor_id", g->has_pci_ids ? jhex(g->vendor_id, 4) : NULL);
		json_object_object_add(o, "device_id", g->has_pci_ids ? jhex(g->device_id, 4) : NULL);
		json_object_object_add(o, "subsys_vendor_id",
				       g->has_subsys ? jhex(g->subsys_vendor_id, 4) : NULL);
		json_object_object_add(o, "subsys_device_id",
				       g->has_subsys ? jhex(g->subsys_device_id, 4) : NULL);
		json_object_object_add(o, "revision", g->has_rev ? jhex(g->revision, 2) : NULL);
		json_object_object_add(o, "vendor_name", jstr_or_null(g->vendor_name));
		json_object_object_add(o, "device_name", jstr_or_null(g->device_name));
		json_object_object_add(o, "subsys_vendor_name", jstr_or_null(g->subsys_vendor_name));
		json_object_object_add(o, "subsys_name", jstr_or_null(g->subsys_name));
		json_object_object_add(o, "computer_name", jstr_or_null(g->computer_name));
		json_object_object_add(o, "partition_count",
				       json_object_new_uint64(g->partition_count));
		for (size_t k = 0; k < g->valid_count_n; k++)
			json_object_array_add(counts, json_object_new_uint64(g->valid_counts[k]));
		json_object_object_add(o, "valid_partition_counts", counts);
		json_object_object_add(o, "valid_partition_counts_truncated",
				       json_object_new_boolean(g->valid_counts_truncated));
		for (int r = 0; r < GP_RES_COUNT; r++) {
			json_object *x = json_object_new_object();

			json_object_object_add(x, "total", json_object_new_uint64(g->res[r].total));
			json_object_object_add(x, "available",
					       json_object_new_uint64(g->res[r].available));
			json_object_object_add(x, "min", json_object_new_uint64(g->res[r].min));
			json_object_object_add(x, "max", json_object_new_uint64(g->res[r].max));
			json_object_object_add(x, "optimal",
					       json_object_new_uint64(g->res[r].optimal));
			json_object_object_add(res, gp_gpu_res_name(r), x);
		}
		json_object_object_add(o, "resources", res);
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "gpus", arr);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return fflush(stdout) == 0 ? 0 : -1;
}

int cmd_gpus(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "pci-ids", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gp_gpu_list l = { 0 };
	struct gp_error err = { 0 }, names_err = { 0 };
	const char *from = NULL, *pci_ids = NULL;
	bool json = false;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			cli_output_quiet(true);
			break;
		case 'f':
			from = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'p':
			pci_ids = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			return cli_usage("gpus", "unknown option or missing value");
		}
	}
	if (optind != argc)
		return cli_usage("gpus", "unexpected argument '%s'", argv[optind]);
	if (from) {
		rc = gp_gpus_load(from, &l, &err);
	} else {
		struct gp_ps_shell sh;

		rc = gp_ps_find_shell(&sh, &err);
		if (rc) {
			gp_error_clear(&err);
			gp_error_set(&err, GP_ERR_NOTFOUND,
				     "no PowerShell (on PATH or in ~/.dotnet/tools) to ask the host; run "
				     "`Get-VMHostPartitionableGpu | ConvertTo-Json > gpus.json` on it "
				     "and use --from gpus.json");
		} else {
			rc = gp_ps_query_gpus(&sh, &l, &err);
		}
	}
	if (rc)
		return cli_fail_cmd("gpus", json, NULL, &err);
	if (gp_gpus_lookup_names(&l, pci_ids, &names_err) != 0)
		cli_warn("no GPU names: %s", gp_error_message(&names_err));
	if (json)
		rc = print_json(&l, from ? from : "powershell");
	else
		print_human(&l);
	gp_gpus_free(&l);
	if (rc) {
		gp_error_set(&err, GP_ERR_IO, "writing standard output failed");
		return cli_fail(&err);
	}
	return EXIT_OK;
}
