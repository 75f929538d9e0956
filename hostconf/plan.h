/*
 * plan.h — what the host must set for one VM's GPU partition: the twelve
 * quota values, MMIO sizes and host policy, computed from the user's
 * options and the host's reported GPU figures, and validated before any
 * PowerShell is written.
 *
 * Quotas. Each resource (VRAM, Encode, Decode, Compute) gets Min, Optimal
 * and Max on the resource's own scale — the scale the host reports (1e9 on
 * most GPUs; Encode is 2^64-1 on some hosts). A share is given as
 *   "P%"            Min = Optimal = Max = P% of the host's MaxPartitionX,
 *   "N"             Min = Optimal = Max = N (raw, on the host's scale),
 *   "MIN:OPT:MAX"   each part "P%" or "N".
 * Percentages may carry up to six decimals ("12.5%") and are applied in
 * exact 128-bit integer arithmetic, rounding down: 50% of 2^64-1 is
 * 9223372036854775807, never a double's 9223372036854775808.
 * A resource without a share gets the host's own MinPartitionX,
 * OptimalPartitionX and MaxPartitionX — what Add-VMGpuPartitionAdapter
 * assigns when given no values ("a full partition").
 * Validation: host MinPartition ≤ Min ≤ Optimal ≤ Max ≤ host MaxPartition
 * and Max ≤ Available; the message names the resource, both values and
 * the rule.
 * The rendered script computes the quotas again on the host, from the
 * shares and Get-VMHostPartitionableGpu's figures at run time: a plan can
 * be built without the GPU's figures (no --from, no PowerShell here); it
 * then carries the --gpu choice for the script to resolve, and only checks
 * what needs no figures (raw Min <= Optimal <= Max).
 *
 * MMIO. Low 1 GiB and High 32 GiB unless told otherwise. With SurveyDDA
 * output (see gp_surveydda_parse()), High = the MB of the display devices
 * it lists (only those of the chosen GPU's vendor when it lists several
 * vendors' GPUs: a partition is of one GPU) summed plus a buffer (default
 * 512 MiB, Microsoft's own default high MMIO), rounded UP TO A WHOLE GiB:
 * rounding to a power of two would turn 33 GiB into 64 GiB and push hosts
 * with 36-bit physical addressing over their limit. A survey result below
 * GP_MMIO_HIGH_GPUP_MIN is raised to it, and a survey without any display
 * device keeps the 32 GiB default; both with a warning naming what was
 * counted. Explicit sizes override all of this. A High MMIO above 64 GiB adds a warning:
 * hosts (and guests) with 36-bit physical addressing cannot map it.
 *
 * Revert plans set Hyper-V's defaults back: Low 128 MiB, High 512 MiB
 * (Microsoft, "Plan for Deploying Devices using Discrete Device Assignment",
 * section "MMIO Space": "By default, each VM starts off with 128MB of low
 * MMIO space and 512MB of high MMIO space allocated to it").
 */
#ifndef GPUP_PLAN_H
#define GPUP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"
#include "gpus.h"

#define GP_MIB (1024ull * 1024ull)
#define GP_GIB (1024ull * GP_MIB)

#define GP_MMIO_LOW_DEFAULT (1ull * GP_GIB)      /* what GPU-P how-tos set */
#define GP_MMIO_HIGH_DEFAULT (32ull * GP_GIB)
#define GP_MMIO_BUFFER_DEFAULT (512ull * GP_MIB)
#define GP_MMIO_LOW_HYPERV (128ull * GP_MIB)     /* Hyper-V's own defaults */
#define GP_MMIO_HIGH_HYPERV (512ull * GP_MIB)
/* The least High MMIO planned for GPU partitioning from a survey: the
 * GPU-P guidance's 8 GB; SurveyDDA's BAR sizes (176 MB for a K520) say
 * what DDA maps, not what a partition's paravirtual adapter needs. */
#define GP_MMIO_HIGH_GPUP_MIN (8ull * GP_GIB)
/* 36-bit physical addressing reaches 64 GiB. */
#define GP_MMIO_36BIT_LIMIT (64ull * GP_GIB)

/* Percentages are kept in millionths of a percent: 50% = 50000000. */
#define GP_PERCENT_ONE 1000000ull

struct gp_share_part {
	bool is_percent;
	uint64_t value;      /* raw value, or millionths of a percent */
};

struct gp_share_spec {
	bool set;
	struct gp_share_part part[3];   /* Min, Optimal, Max */
};

/*
 * Parse a share ("50%", "12.5%", "500000000", "10%:50%:100%",
 * "0:500000000:100%"). Returns 0, or GP_ERR_INVALID with a message that
 * quotes @s and says what is wrong (over 100%, more than six decimals,
 * not a number, not one or three parts).
 */
int gp_share_parse(const char *s, struct gp_share_spec *out, struct gp_error *err);

/*
 * The share back in gp_share_parse()'s syntax, as the rendered script takes
 * it: "50%", "12.5%", "500000000", "10%:50%:100%" (one part when all three
 * are equal); "" for a share not set. @size of 96 always suffices.
 */
void gp_share_format(const struct gp_share_spec *spec, char *buf, size_t size);

enum gp_host_os {
	GP_HOST_WIN11 = 0,   /* Windows 11 / Server 2025: Add-VMGpuPartitionAdapter -InstancePath */
	GP_HOST_WIN10 = 1,   /* Windows 10 / Server 2022: no -InstancePath */
};

/* One device of SurveyDDA.ps1 output that needs MMIO gap space. */
struct gp_surveydda_device {
	char *name;            /* the FriendlyName line above it ("" if none) */
	uint64_t mb;           /* "And it requires at least: N MB of MMIO gap space" */
	bool display;          /* a display controller (see gp_surveydda_parse()) */
	unsigned line;         /* 1-based line of the MB figure */
};

struct gp_surveydda {
	struct gp_surveydda_device *dev;
	size_t n;
};

/* The user's choices, before the GPU's figures are known. Zero-initialise,
 * then set what was given. */
struct gp_plan_opts {
	const char *vm_name;                    /* required */
	const char *gpu_select;                 /* --gpu, for a plan without a GPU's figures */
	struct gp_share_spec share[GP_RES_COUNT];
	uint64_t low_mmio, high_mmio;           /* bytes; 0 = not given */
	const struct gp_surveydda *surveydda;   /* gp_surveydda_parse(); NULL = none */
	bool have_mmio_buffer;
	uint64_t mmio_buffer;                   /* bytes */
	bool server;                            /* set the HyperV device-assignment policies */
	enum gp_host_os host_os;
	bool stop_vm;                           /* stop a running VM and start it afterwards */
	bool revert;                            /* remove the partition, restore defaults */
};

struct gp_quota {
	uint64_t min, optimal, max;
};

#define GP_PLAN_MAX_WARNINGS 4

struct gp_plan {
	char *vm_name;                  /* owned; valid UTF-8 */
	char *instance_path;            /* owned; NULL for revert plans */
	char *gpu_label;                /* owned; "10de:2860 NVIDIA ... AD106M [...]" or NULL */
	char *gpu_select;               /* owned; the --gpu choice when instance_path is NULL
					   (the script resolves it on the host); else NULL */
	struct gp_share_spec share[GP_RES_COUNT];   /* what the script computes from */
	bool have_quota;                /* quota[] computed from a listed GPU's figures */
	struct gp_quota quota[GP_RES_COUNT];
	uint64_t low_mmio, high_mmio;   /* bytes */
	char mmio_reason[160];          /* one line: how high_mmio was chosen */
	bool server, stop_vm, revert;
	enum gp_host_os host_os;
	unsigned n_warnings;
	char warnings[GP_PLAN_MAX_WARNINGS][256];   /* for the CLI to print */
};

/*
 * Compute and validate a plan. @gpu is the chosen GPU (names filled or not);
 * NULL for revert plans, or when no GPU list is at hand: then
 * @o->gpu_select must be set, and the quotas are left to the script
 * (have_quota false). On success @out owns copies of all strings (free
 * with gp_plan_free()).
 * Returns 0, GP_ERR_INVALID (a value breaks a rule: the message explains
 * which, with the numbers; the VM name is empty or not UTF-8; no GPU),
 * GP_ERR_NOMEM.
 */
int gp_plan_build(const struct gp_plan_opts *o, const struct gp_gpu *gpu,
		  struct gp_plan *out, struct gp_error *err);

/* Free the plan's strings and zero it. NULL is fine. */
void gp_plan_free(struct gp_plan *p);

/*
 * Read SurveyDDA.ps1 output (Microsoft's DDA machine-profile script; for
 * each PCI device it prints the FriendlyName after a blank line, then
 * "Express Endpoint -- more secure." or why it is not assignable, then
 * "    And it requires at least: 176 MB of MMIO gap space"). Every device
 * with such a line is listed in @out, in file order. The script prints no
 * device class, so "display" is read from what it does print: its "Legacy
 * Express Endpoint -- graphics controller." line, or a FriendlyName naming
 * a GPU (Graphics, GPU, GeForce, Quadro, Tesla, GRID, RTX, Radeon, FirePro,
 * Instinct, Arc, Display, VGA, or NVIDIA with no Audio/USB/UCSI/Serial in
 * the name; never a name with Audio in it). @source names the input in
 * messages.
 * Returns 0 (free @out with gp_surveydda_free()), GP_ERR_CORRUPT
 * ("SOURCE:LINE: ..." for a line whose number cannot be read; "SOURCE: no
 * ... line" when there is none), GP_ERR_NOMEM.
 */
int gp_surveydda_parse(const char *text, size_t len, const char *source,
		       struct gp_surveydda *out, struct gp_error *err);

/* gp_surveydda_parse() on a file (UTF-8 or UTF-16LE, at most 16 MiB). Adds
 * GP_ERR_NOTFOUND / GP_ERR_IO naming the file. */
int gp_surveydda_load(const char *path, struct gp_surveydda *out, struct gp_error *err);

/* Free what @s owns and zero it. NULL is fine. */
void gp_surveydda_free(struct gp_surveydda *s);

#endif
