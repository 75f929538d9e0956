/*
 * ps.h — the host-side PowerShell: rendering a plan into a self-checking,
 * idempotent script (psrender.c), and running scripts and queries through
 * the PowerShell that is reachable from here (psapply.c).
 *
 * The rendered script (for Windows PowerShell 5.1 and PowerShell 7)
 *   - starts with a UTF-8 byte-order mark: Windows PowerShell 5.1 reads a
 *     BOM-less script in the ANSI code page and would garble a non-ASCII VM
 *     name; pwsh accepts the BOM too;
 *   - declares `#Requires -RunAsAdministrator` and `#Requires -Modules Hyper-V`,
 *     runs under `Set-StrictMode -Version Latest` with
 *     `$ErrorActionPreference = 'Stop'` (any error ends it, exit status 1);
 *   - carries EVERY value (VM name, GPU, the four shares, MMIO sizes,
 *     switches) as a default in its `param()` block, written as a
 *     single-quoted PowerShell literal — PowerShell treats ' and the smart
 *     quotes U+2018..U+201B alike, so each of them is doubled — and never
 *     pastes a value into code. A VM named `x'; Remove-Item C:\ -Recurse #`
 *     stays one string;
 *   - calls Hyper-V's cmdlets module-qualified (`Hyper-V\Get-VM`, ...), finds
 *     the VM by exact name (Get-VM -Name would treat [ ] * ? as wildcards)
 *     and passes the VM object on;
 *   - finds the GPU in Get-VMHostPartitionableGpu (Get-VMPartitionableGpu on
 *     Windows 10 / Server 2022): by the instance path gpup resolved, or, for
 *     a plan made without a GPU list, by the --gpu choice (auto, VEN/DEV/
 *     SUBSYS/REV fields, vvvv[:dddd]); computes each resource's Min, Optimal
 *     and Max from its share and that GPU's figures ('P%' of MaxPartition,
 *     rounded down in exact decimal arithmetic, as gp_plan_build() computes
 *     it; raw values; '' = the GPU's own Min/Optimal/Max) and checks them
 *     (order, the GPU's Min/Max, Available for a new partition) before any
 *     change;
 *   - compares the VM's adapters, cache type and MMIO (and with --server the
 *     policy values) with the plan and says "no change" when they match (a
 *     second run changes nothing); otherwise records the state before its
 *     first change (see below), sets the policy values, requires the VM to
 *     be Off (or, with the StopVM switch, shuts a Running VM down and starts
 *     it again afterwards; a Saved or Paused VM is refused, its state is the
 *     user's to discard), replaces only this VM's partition adapters (with
 *     -InstancePath where the cmdlet has it), sets the twelve quotas and
 *     `Set-VM -GuestControlledCacheTypes -LowMemoryMappedIoSpace
 *     -HighMemoryMappedIoSpace`;
 *   - verifies through Hyper-V, prints a summary, and exits 0, or throws
 *     (exit status 1) naming what differs.
 * The record: $StateDir\hostconf-<VM Id>.json, $StateDir defaulting to
 * %ProgramData%\gpup (the temporary directory where ProgramData is not
 * set): the VM's adapters (instance path and quotas), cache type, MMIO and
 * the two policy values (present or not, kind, value), written once,
 * before the first change; a later forward run keeps the older record.
 * A revert plan restores that record (the policy values only with --server;
 * a policy key the forward run created goes again once empty), then renames
 * it hostconf-<VM Id>.reverted.json, which a second revert reads to find
 * nothing to change; without either file it removes the adapters, turns
 * guest-controlled caching off, sets Hyper-V's default MMIO (128 MiB /
 * 512 MiB) and says that there was no record.
 */
#ifndef GPUP_PS_H
#define GPUP_PS_H

#include <stdbool.h>
#include <stdio.h>

#include "gp_error.h"
#include "gpus.h"
#include "plan.h"

/* ---- rendering (psrender.c) ---- */

/*
 * Write the script for @plan to @out. The output depends only on the plan
 * (deterministic: golden files compare byte for byte).
 * Returns 0, GP_ERR_INVALID (a plan string is not valid UTF-8), GP_ERR_IO
 * (writing @out failed).
 */
int gp_ps_render(const struct gp_plan *plan, FILE *out, struct gp_error *err);

/* The same into a malloc'ed, NUL-terminated buffer (*out, length *len; the
 * caller frees). Returns as gp_ps_render(), plus GP_ERR_NOMEM. */
int gp_ps_render_string(const struct gp_plan *plan, char **out, size_t *len,
			struct gp_error *err);

/* Append @s to @out as one single-quoted PowerShell literal ('' for ', and
 * each of U+2018..U+201B doubled). Returns 0 or GP_ERR_IO. */
int gp_ps_quote(FILE *out, const char *s, struct gp_error *err);

/* ---- running PowerShell (psapply.c) ---- */

enum gp_ps_kind {
	GP_PS_WINDOWS = 1,   /* powershell.exe through WSL interop: paths go through `wslpath -w` */
	GP_PS_PWSH = 2,      /* PowerShell 7 (pwsh), native paths */
};

struct gp_ps_shell {
	enum gp_ps_kind kind;
	char program[1024];  /* "powershell.exe" or "pwsh" (found on PATH), or
				the absolute path of ~/.dotnet/tools/pwsh */
};

/*
 * Find a PowerShell: powershell.exe on PATH first (WSL on a Windows host:
 * the Hyper-V module lives there), then pwsh on PATH, then
 * ~/.dotnet/tools/pwsh (where `dotnet tool install --global PowerShell`
 * puts it, often not on PATH).
 * Returns 0, or GP_ERR_NOTFOUND ("no PowerShell found ...").
 */
int gp_ps_find_shell(struct gp_ps_shell *sh, struct gp_error *err);

/*
 * Run a script file: `powershell.exe -NoProfile -ExecutionPolicy Bypass
 * -File WINPATH` (WINPATH from `wslpath -w PATH`) or `pwsh -NoProfile -File
 * PATH`. The child inherits stdin/stdout/stderr, so its output streams as it
 * comes. Its exit status goes to *exit_status (128+N for a signal).
 * Returns 0 when it ran (whatever its status), GP_ERR_EXTERNAL when it or
 * wslpath could not be started ("cannot run wslpath: ...") or wslpath
 * failed, GP_ERR_IO when @path cannot be resolved (WSL), GP_ERR_NOMEM.
 */
int gp_ps_run_file(const struct gp_ps_shell *sh, const char *path, int *exit_status,
		   struct gp_error *err);

/*
 * Write @script (@len bytes, e.g. from gp_ps_render_string()) into a fresh
 * file and run it (gp_ps_run_file()); the file is removed afterwards. Where the file goes: powershell.exe must be able to
 * read it, so for GP_PS_WINDOWS it is created in the current directory
 * (wslpath turns a Linux directory into a \\wsl.localhost\... path Windows
 * reads, and /mnt/c/... into C:\...); for pwsh it goes to $TMPDIR or /tmp.
 * $GPUP_PS_TMPDIR overrides both. The name is gpup-hostconf-XXXXXX.ps1.
 * Returns 0 with the script's exit status in *exit_status, or as
 * gp_ps_run_file(), GP_ERR_IO (cannot create or write the file).
 */
int gp_ps_apply_script(const struct gp_ps_shell *sh, const char *script, size_t len,
		       int *exit_status, struct gp_error *err);

/*
 * Ask the host for its partitionable GPUs: runs
 * `Get-VMHostPartitionableGpu | ConvertTo-Json` (falling back to
 * Get-VMPartitionableGpu where the former does not exist) with -NoProfile
 * -Command, captures stdout (at most 16 MiB) and parses it as
 * gp_gpus_parse() with source "powershell".
 * Returns 0, GP_ERR_EXTERNAL (PowerShell failed: the message carries its
 * exit status and the first line it printed on stderr), or as
 * gp_gpus_parse().
 */
int gp_ps_query_gpus(const struct gp_ps_shell *sh, struct gp_gpu_list *out,
		     struct gp_error *err);

#endif
