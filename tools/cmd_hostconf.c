/* cmd_hostconf.c — `gpup hostconf`: render or apply the host's Hyper-V GPU-P
 * PowerShell for one VM. The options live in plan_opts.c (shared with
 * `gpup prepare`); this file is the command's shell around them. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>

#include "cli.h"
#include "plan_opts.h"

enum { OPT_JSON = 1 };

/* --json (schema 1; doc/schema/hostconf.schema.json):
 *   { "schema", "command": "hostconf", "vm", "instance_path",
 *   "gpu", "revert", "server", "host_os", "low_mmio", "high_mmio",
 *   "quota": { "VRAM": {share, min, optimal, max}, ... }, "output", "applied",
 *   "changed" }. "share" is what the script computes from on the host ("50%",
 *   "" for the GPU's own figures); min/optimal/max are the values on the listed
 *   GPU, null without a GPU list (no --from, no PowerShell: instance_path is
 *   null too). The script itself goes to -o FILE or runs (--apply). */
static void print_json(const struct plan_opts *po, const struct gp_plan *p)
{
	const struct gp_plan plan = *p;
	json_object *o, *q;

	o = json_object_new_object();
	json_object_object_add(o, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(o, "command", json_object_new_string("hostconf"));
	json_object_object_add(o, "vm", json_object_new_string(plan.vm_name));
	json_object_object_add(o, "instance_path",
			       plan.instance_path ? json_object_new_string(plan.instance_path) : NULL);
	json_object_object_add(o, "gpu", plan.gpu_label ? json_object_new_string(plan.gpu_label) : NULL);
	json_object_object_add(o, "revert", json_object_new_boolean(plan.revert));
	json_object_object_add(o, "server", json_object_new_boolean(plan.server));
	json_object_object_add(o, "host_os",
			       json_object_new_string(plan.host_os == GP_HOST_WIN10 ? "win10" : "win11"));
	json_object_object_add(o, "low_mmio", json_object_new_int64((int64_t)plan.low_mmio));
	json_object_object_add(o, "high_mmio", json_object_new_int64((int64_t)plan.high_mmio));
	q = json_object_new_object();
	for (int r = 0; !plan.revert && r < GP_RES_COUNT; r++) {
		const uint64_t val[3] = { plan.quota[r].min, plan.quota[r].optimal, plan.quota[r].max };
		static const char *const key[3] = { "min", "optimal", "max" };
		json_object *v = json_object_new_object();
		char buf[96];

		gp_share_format(&plan.share[r], buf, sizeof(buf));
		json_object_object_add(v, "share", json_object_new_string(buf));
		/* Encode quotas reach 2^64-1: as JSON numbers they would not
		 * survive a double; strings keep them exact. */
		for (int k = 0; k < 3; k++) {
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)val[k]);
			json_object_object_add(v, key[k], plan.have_quota ? json_object_new_string(buf)
									 : NULL);
		}
		json_object_object_add(q, gp_gpu_res_name((enum gp_gpu_res)r), v);
	}
	json_object_object_add(o, "quota", q);
	json_object_object_add(o, "output", po->output ? json_object_new_string(po->output) : NULL);
	json_object_object_add(o, "applied", json_object_new_boolean(po->apply));
	json_object_object_add(o, "changed", json_object_new_boolean(po->apply));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup hostconf --vm NAME --gpu SEL [plan options] [-o FILE.ps1 | --apply]\n"
		   "       gpup hostconf --vm NAME --revert [--stop-vm] [-o FILE.ps1 | --apply]\n\n"
		   "Write the PowerShell that gives a Hyper-V VM a partition of a host GPU:\n"
		   "Add-VMGpuPartitionAdapter, the twelve quota values, MMIO and\n"
		   "GuestControlledCacheTypes. The script checks its prerequisites, changes\n"
		   "nothing when the VM is already configured, and verifies the result.\n\n");
	plan_opts_help(f, true);
	fprintf(f, "  --json                describe the plan as JSON on stdout (needs -o or --apply)\n"
		   "  -q, --quiet           nothing on stderr unless the command fails\n"
		   "  -h, --help            show this help\n\n"
		   "Exit status: 0 ok, 1 error (or the script failed), 2 usage.\n");
}

int cmd_hostconf(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		PLAN_OPTS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct plan_opts po;
	bool json = false;
	int c, ret;

	plan_opts_init(&po);
	optind = 1;
	while ((c = getopt_long(argc, argv, "hq" PLAN_OPTS_SHORTOPTS, longopts, NULL)) != -1) {
		int r = plan_opts_handle(&po, c, optarg, "hostconf");

		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case OPT_JSON:
			json = true;
			break;
		case 'q':
			cli_output_quiet(true);
			break;
		default:
			return cli_usage("hostconf", "unknown option or missing value");
		}
	}
	if (optind < argc)
		return cli_usage("hostconf", "unexpected argument '%s'", argv[optind]);
	if (plan_opts_check(&po, "hostconf") != 0)
		return EXIT_USAGE;
	if (json && !po.output && !po.apply)
		return cli_usage("hostconf", "--json describes the plan on stdout; the script then needs -o FILE or --apply");
	if (!json)
		return plan_opts_run(&po);
	/* One plan for both the script and the JSON: a live query runs once. */
	{
		struct gp_error err = { 0 };
		struct plan_opts_prepared pp;

		ret = plan_opts_prepare(&po, &pp, &err);
		if (ret == 0)
			ret = plan_opts_commit(&pp, &err);
		if (ret == 0)
			print_json(&po, &pp.plan);
		plan_opts_prepared_free(&pp);
		return ret ? cli_fail_cmd("hostconf", true, NULL, &err) : EXIT_OK;
	}
}
