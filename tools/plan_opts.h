/*
 * plan_opts.h — the host-configuration (GPU-P plan) options, written once
 * and shared by `gpup hostconf` and `gpup prepare`.
 *
 * Options (all long-only except -o):
 *   --vm NAME             the Hyper-V VM (required for a plan)
 *   --gpu ID              instance path, VEN_xxxx[&DEV_xxxx] / vvvv:dddd, or auto
 *   --from FILE           GPU list saved from Get-VMHostPartitionableGpu
 *                         (list or JSON); without it PowerShell is asked live
 *   --share P%            Min = Optimal = Max = P% of each resource's maximum
 *   --vram/--encode/--decode/--compute SPEC
 *                         one resource: P%, N, or MIN:OPT:MAX (each P% or N);
 *                         wins over --share for that resource
 *   --surveydda FILE      SurveyDDA.ps1 output: High MMIO = display devices' sum +
 *                         buffer, at least 8 GiB
 *   --mmio-buffer SIZE    buffer added to the SurveyDDA sum (default 512M)
 *   --high-mmio SIZE / --low-mmio SIZE   explicit MMIO (win over the rest)
 *   --server              Windows Server host: set the HyperV policies
 *   --host-os OS          cmdlet generation: win11 / server2025, or win10 /
 *                         server2022 (no -InstancePath)
 *   --stop-vm             shut a running VM down and start it afterwards
 *   --revert              restore the settings recorded before the first run
 *                         (Hyper-V's defaults without a record)
 *   -o, --output FILE     write the script to FILE ("-" or default: stdout)
 *   --apply               run the script through powershell.exe / pwsh
 *
 * How a command reuses them:
 *
 *     static const struct option longopts[] = {
 *         { "help", no_argument, NULL, 'h' },
 *         ... the command's own options ...
 *         PLAN_OPTS_LONGOPTS,
 *         { NULL, 0, NULL, 0 },
 *     };
 *     struct plan_opts po;
 *
 *     plan_opts_init(&po);
 *     while ((c = getopt_long(argc, argv, "h" PLAN_OPTS_SHORTOPTS, longopts, NULL)) != -1) {
 *         int r = plan_opts_handle(&po, c, optarg, "prepare");
 *         if (r < 0)
 *             return EXIT_USAGE;          // the message is printed
 *         if (r > 0)
 *             continue;                   // it was a plan option
 *         switch (c) { ... the command's own options ... }
 *     }
 *     if (plan_opts_given(&po)) {         // the user asked for host configuration
 *         if (plan_opts_check(&po, "prepare") != 0)
 *             return EXIT_USAGE;
 *         return plan_opts_run(&po);       // builds the plan, writes or applies it
 *     }
 *
 * The long-only options return codes PLAN_OPT_BASE + n (0x1000 and up), so
 * a command's own option codes must stay below PLAN_OPT_BASE; -o is 'o', so
 * a command that appends PLAN_OPTS_SHORTOPTS must not use -o itself.
 * plan_opts_help() prints the option lines for the command's --help.
 * A command that needs the plan itself (to render elsewhere) calls
 * plan_opts_build() and then gp_ps_render() (hostconf/ps.h).
 */
#ifndef GPUP_PLAN_OPTS_H
#define GPUP_PLAN_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "plan.h"
#include "ps.h"

enum {
	PLAN_OPT_BASE = 0x1000,
	PLAN_OPT_VM = PLAN_OPT_BASE,
	PLAN_OPT_GPU,
	PLAN_OPT_FROM,
	PLAN_OPT_SHARE,
	PLAN_OPT_VRAM,
	PLAN_OPT_ENCODE,
	PLAN_OPT_DECODE,
	PLAN_OPT_COMPUTE,
	PLAN_OPT_SURVEYDDA,
	PLAN_OPT_MMIO_BUFFER,
	PLAN_OPT_HIGH_MMIO,
	PLAN_OPT_LOW_MMIO,
	PLAN_OPT_SERVER,
	PLAN_OPT_HOST_OS,
	PLAN_OPT_STOP_VM,
	PLAN_OPT_REVERT,
	PLAN_OPT_APPLY,
	PLAN_OPT_LAST,
};

#define PLAN_OPTS_SHORTOPTS "o:"

/* Entries for a `struct option` array (no terminator). */
#define PLAN_OPTS_LONGOPTS \
	{ "vm", required_argument, NULL, PLAN_OPT_VM }, \
	{ "gpu", required_argument, NULL, PLAN_OPT_GPU }, \
	{ "from", required_argument, NULL, PLAN_OPT_FROM }, \
	{ "share", required_argument, NULL, PLAN_OPT_SHARE }, \
	{ "vram", required_argument, NULL, PLAN_OPT_VRAM }, \
	{ "encode", required_argument, NULL, PLAN_OPT_ENCODE }, \
	{ "decode", required_argument, NULL, PLAN_OPT_DECODE }, \
	{ "compute", required_argument, NULL, PLAN_OPT_COMPUTE }, \
	{ "surveydda", required_argument, NULL, PLAN_OPT_SURVEYDDA }, \
	{ "mmio-buffer", required_argument, NULL, PLAN_OPT_MMIO_BUFFER }, \
	{ "high-mmio", required_argument, NULL, PLAN_OPT_HIGH_MMIO }, \
	{ "low-mmio", required_argument, NULL, PLAN_OPT_LOW_MMIO }, \
	{ "server", no_argument, NULL, PLAN_OPT_SERVER }, \
	{ "host-os", required_argument, NULL, PLAN_OPT_HOST_OS }, \
	{ "stop-vm", no_argument, NULL, PLAN_OPT_STOP_VM }, \
	{ "revert", no_argument, NULL, PLAN_OPT_REVERT }, \
	{ "apply", no_argument, NULL, PLAN_OPT_APPLY }, \
	{ "output", required_argument, NULL, 'o' }

struct plan_opts {
	struct gp_plan_opts plan;        /* what reaches the library */
	const char *gpu;                 /* --gpu */
	const char *from;                /* --from */
	const char *surveydda;           /* --surveydda */
	const char *output;              /* -o */
	bool apply;                      /* --apply */
	bool share_all_set;              /* --share given */
	struct gp_share_spec share_all;
	bool given;                      /* any plan option seen */
};

/* Zero @po. */
void plan_opts_init(struct plan_opts *po);

/*
 * Offer one getopt_long result to the plan options. @cmd names the command
 * in usage messages. Returns 1 (consumed), 0 (not a plan option), or -1
 * (bad value: "gpup CMD: ..." and the --help hint are printed).
 */
int plan_opts_handle(struct plan_opts *po, int c, const char *arg, const char *cmd);

/* True once any plan option was seen. */
bool plan_opts_given(const struct plan_opts *po);

/* Check combinations after parsing (--vm present, --gpu unless --revert,
 * -o xor --apply, no shares with --revert, --mmio-buffer needs --surveydda;
 * with @cmd "prepare", no --revert at all).
 * Returns 0, or -1 after printing the usage message. */
int plan_opts_check(struct plan_opts *po, const char *cmd);

/*
 * Build the plan: load the GPU list (--from, or live through PowerShell),
 * choose the GPU, name it from pci.ids, read --surveydda, compute and
 * validate. Warnings (plan warnings, pci.ids missing) are printed with
 * cli_warn(). Returns 0 (free @plan with gp_plan_free()) or a GP_ERR_* code
 * with @err set.
 */
int plan_opts_build(struct plan_opts *po, struct gp_plan *plan, struct gp_error *err);

/*
 * Host configuration as a transaction of two steps, so that `prepare` can
 * learn everything that can fail before it writes the guest:
 *
 * plan_opts_prepare() builds the plan (GPU list from --from or the live
 * query, --surveydda), renders the script in memory, and checks where it
 * goes: -o FILE must be creatable (its directory exists, is a directory
 * and writable; FILE is not a directory) — nothing is created; --apply
 * needs a PowerShell (gp_ps_find_shell()). No side effects: no file is
 * written, no script runs (the live GPU query only reads).
 * Returns 0 (free @out with plan_opts_prepared_free()), or a GP_ERR_* code
 * with @err set (as plan_opts_build(), GP_ERR_NOTFOUND: no PowerShell for
 * --apply or no directory for -o, GP_ERR_INVALID: -o names a directory,
 * GP_ERR_IO: the directory is not writable); @out is then empty.
 *
 * plan_opts_commit() writes the prepared script to -o FILE (through a
 * temporary FILE.tmp-XXXXXX beside it, renamed once complete; "gpup: wrote
 * FILE; run it ..." goes to stderr) or to stdout, or runs it (--apply; its
 * output streams to ours). Returns 0, GP_ERR_IO (writing failed),
 * GP_ERR_EXTERNAL ("the PowerShell script failed with exit status N", or
 * PowerShell could not be started).
 *
 * plan_opts_prepared_free() releases what prepare allocated (safe on a
 * zeroed or already freed struct).
 */
struct plan_opts_prepared {
	struct plan_opts *po;            /* borrowed: the options prepared from */
	struct gp_plan plan;
	bool have_plan;
	char *script;                    /* the rendered script (owned) */
	size_t script_len;
	struct gp_ps_shell shell;        /* --apply: the PowerShell that runs it */
};

int plan_opts_prepare(struct plan_opts *po, struct plan_opts_prepared *out,
		      struct gp_error *err);
int plan_opts_commit(struct plan_opts_prepared *pp, struct gp_error *err);
void plan_opts_prepared_free(struct plan_opts_prepared *pp);

/*
 * plan_opts_prepare() then plan_opts_commit(), for `gpup hostconf`.
 * Returns the exit status: 0, 1 (error, printed; a script that failed gives
 * "gpup: the PowerShell script failed with exit status N"), 2.
 */
int plan_opts_run(struct plan_opts *po);

/* The option lines for a command's --help (@with_gpu: --gpu too, for a
 * command whose own lines do not list it). */
void plan_opts_help(FILE *f, bool with_gpu);

#endif
