/* gpup.c — the command line's entry point: a dispatch table, nothing more. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "runlog.h"

static const struct cli_command commands[] = {
	{ "inspect", cmd_inspect, "show an image's format, layout, partitions and guest facts" },
	{ "check", cmd_check, "check an image's container, partition table and NTFS volumes" },
	{ "create", cmd_create, "create a dynamic VHDX, or a differencing child of one" },
	{ "disk", cmd_disk, "read or write raw bytes of the virtual disk" },
	{ "ls", cmd_ls, "list a directory inside the guest's Windows volume" },
	{ "cat", cmd_cat, "print a file from the guest's Windows volume" },
	{ "put", cmd_put, "copy host files or trees into the guest's Windows volume" },
	{ "rm", cmd_rm, "remove a file or tree from the guest's Windows volume" },
	{ "drivers", cmd_drivers, "list display driver packages and resolve the GPU's injection set" },
	{ "bundle", cmd_bundle, "create, list or verify a reusable driver bundle" },
	{ "gpus", cmd_gpus, "list the host's partitionable GPUs" },
	{ "hostconf", cmd_hostconf, "render or apply the host's Hyper-V GPU-P PowerShell" },
	{ "scan", cmd_scan, "report which guests' drivers match the host's, read-only" },
	{ "prepare", cmd_prepare, "inject the GPU driver into the guest and configure the host" },
	{ "unprepare", cmd_unprepare, "undo what prepare did to the guest, from its record there" },
	{ "verify", cmd_verify, "check the injected files through an independent reader" },
	{ "doctor", cmd_doctor, "diagnose a guest whose GPU shows Code 43/12 or is missing" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup [--version] [--help] [--log FILE] COMMAND [ARGS]\n\n"
		   "Prepare Windows guest disks for Hyper-V GPU partitioning, offline.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n--log FILE (anywhere on the command line) appends a timestamped record of\n"
		   "the run to FILE: the command line, the plan, the actions, warnings, errors\n"
		   "and the exit status.\n"
		   "\n'gpup COMMAND --help' describes a command. Exit status: 0 ok, 1 error,\n"
		   "2 usage, 3 refused (unsafe guest state, locked image), 4 verification failed,\n"
		   "5 (scan) some image needs 'gpup prepare'.\n");
}

/* The command's name as its messages and JSON give it: "prepare", or
 * "bundle list" for the commands with subcommands. */
static void command_name(int argc, char **argv, char *buf, size_t size)
{
	bool sub = argc > 2 && argv[2][0] != '-' &&
		   (!strcmp(argv[1], "bundle") || !strcmp(argv[1], "disk"));

	snprintf(buf, size, "%s%s%s", argv[1], sub ? " " : "", sub ? argv[2] : "");
}

static int run(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("gpup %s\n", GPUP_VERSION);
		return EXIT_OK;
	}
	cli_json_requested(argc, argv);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name)) {
			cli_output_command(commands[i].name);
			return commands[i].run(argc - 1, argv + 1);
		}
	/* With --json, a pipeline still gets its one failure object. */
	return cli_usage("gpup", "'%s' is not a gpup command", cli_esc(argv[1]));
}

int main(int argc, char **argv)
{
	struct gp_error err = { 0 };
	int status;

	/* --log first: a log that cannot be written fails the run before
	 * anything is read or written. */
	if (runlog_open(&argc, argv, &err)) {
		char name[64];

		cli_json_requested(argc, argv);
		if (argc < 2) {
			fprintf(stderr, "gpup: %s\n", gp_error_message(&err));
			return EXIT_USAGE;
		}
		command_name(argc, argv, name, sizeof(name));
		return cli_usage(name, "%s", gp_error_message(&err));
	}
	status = run(argc, argv);
	runlog_close(status);
	return status;
}
