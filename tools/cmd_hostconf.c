/* cmd_hostconf.c — `gpup hostconf`: render or apply the host's Hyper-V GPU-P
 * PowerShell for one VM. The options live in plan_opts.c (shared with
 * `gpup prepare`); this file is the command's shell around them. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "plan_opts.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup hostconf --vm NAME --gpu ID [plan options] [-o FILE.ps1 | --apply]\n"
		   "       gpup hostconf --vm NAME --revert [--stop-vm] [-o FILE.ps1 | --apply]\n\n"
		   "Write the PowerShell that gives a Hyper-V VM a partition of a host GPU:\n"
		   "Add-VMGpuPartitionAdapter, the twelve quota values, MMIO and\n"
		   "GuestControlledCacheTypes. The script checks its prerequisites, changes\n"
		   "nothing when the VM is already configured, and verifies the result.\n\n");
	plan_opts_help(f);
	fprintf(f, "  -h, --help            show this help\n\n"
		   "Exit status: 0 ok, 1 error (or the script failed), 2 usage.\n");
}

int cmd_hostconf(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		PLAN_OPTS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct plan_opts po;
	int c;

	plan_opts_init(&po);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h" PLAN_OPTS_SHORTOPTS, longopts, NULL)) != -1) {
		int r = plan_opts_handle(&po, c, optarg, "hostconf");

		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			return cli_usage("hostconf", "unknown option or missing value");
		}
	}
	if (optind < argc)
		return cli_usage("hostconf", "unexpected argument '%s'", argv[optind]);
	if (plan_opts_check(&po, "hostconf") != 0)
		return EXIT_USAGE;
	return plan_opts_run(&po);
}
