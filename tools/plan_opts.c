/* plan_opts.c — the GPU-P plan options shared by `hostconf` and `prepare`.
 * See plan_opts.h. */
#include "plan_opts.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "gpus.h"
#include "ps.h"

void plan_opts_init(struct plan_opts *po)
{
	memset(po, 0, sizeof(*po));
}

bool plan_opts_given(const struct plan_opts *po)
{
	return po->given;
}

static int size_opt(const char *cmd, const char *name, const char *arg, uint64_t *out)
{
	unsigned long long v;

	if (cli_parse_size(arg, &v) != 0) {
		cli_usage(cmd, "--%s '%s': expected a size such as 512M, 1G, 33280MiB", name, arg);
		return -1;
	}
	*out = v;
	return 0;
}

static int share_opt(const char *cmd, const char *name, const char *arg,
		     struct gp_share_spec *spec)
{
	struct gp_error err = { 0 };

	if (gp_share_parse(arg, spec, &err) != 0) {
		cli_usage(cmd, "--%s: %s", name, gp_error_message(&err));
		return -1;
	}
	return 0;
}

int plan_opts_handle(struct plan_opts *po, int c, const char *arg, const char *cmd)
{
	struct gp_plan_opts *p = &po->plan;
	int rc = 0;

	if (c != 'o' && (c < PLAN_OPT_BASE || c >= PLAN_OPT_LAST))
		return 0;
	po->given = true;
	switch (c) {
	case PLAN_OPT_VM:
		p->vm_name = arg;
		break;
	case PLAN_OPT_GPU:
		if (cli_gpu_option(cmd, arg))
			return -1;
		po->gpu = arg;
		break;
	case PLAN_OPT_FROM:
		po->from = arg;
		break;
	case PLAN_OPT_SHARE:
		rc = share_opt(cmd, "share", arg, &po->share_all);
		if (rc == 0 && (po->share_all.part[0].is_percent != true || strchr(arg, ':'))) {
			cli_usage(cmd, "--share '%s': expected one percentage such as 50%%; use "
				       "--vram/--encode/--decode/--compute for raw values or MIN:OPT:MAX",
				  arg);
			rc = -1;
		}
		po->share_all_set = rc == 0;
		break;
	case PLAN_OPT_VRAM:
		rc = share_opt(cmd, "vram", arg, &p->share[GP_RES_VRAM]);
		break;
	case PLAN_OPT_ENCODE:
		rc = share_opt(cmd, "encode", arg, &p->share[GP_RES_ENCODE]);
		break;
	case PLAN_OPT_DECODE:
		rc = share_opt(cmd, "decode", arg, &p->share[GP_RES_DECODE]);
		break;
	case PLAN_OPT_COMPUTE:
		rc = share_opt(cmd, "compute", arg, &p->share[GP_RES_COMPUTE]);
		break;
	case PLAN_OPT_SURVEYDDA:
		po->surveydda = arg;
		break;
	case PLAN_OPT_MMIO_BUFFER:
		rc = size_opt(cmd, "mmio-buffer", arg, &p->mmio_buffer);
		p->have_mmio_buffer = rc == 0;
		break;
	case PLAN_OPT_HIGH_MMIO:
		rc = size_opt(cmd, "high-mmio", arg, &p->high_mmio);
		if (rc == 0 && p->high_mmio == 0) {
			cli_usage(cmd, "--high-mmio must be more than 0");
			rc = -1;
		}
		break;
	case PLAN_OPT_LOW_MMIO:
		rc = size_opt(cmd, "low-mmio", arg, &p->low_mmio);
		if (rc == 0 && p->low_mmio == 0) {
			cli_usage(cmd, "--low-mmio must be more than 0");
			rc = -1;
		}
		break;
	case PLAN_OPT_SERVER:
		p->server = true;
		break;
	case PLAN_OPT_HOST_OS:
		if (!strcasecmp(arg, "win11") || !strcasecmp(arg, "server2025"))
			p->host_os = GP_HOST_WIN11;
		else if (!strcasecmp(arg, "win10") || !strcasecmp(arg, "server2022"))
			p->host_os = GP_HOST_WIN10;
		else {
			cli_usage(cmd, "--host-os '%s': expected win11, server2025, win10 or server2022",
				  arg);
			rc = -1;
		}
		break;
	case PLAN_OPT_STOP_VM:
		p->stop_vm = true;
		break;
	case PLAN_OPT_REVERT:
		p->revert = true;
		break;
	case PLAN_OPT_APPLY:
		po->apply = true;
		break;
	case 'o':
		po->output = arg;
		break;
	}
	return rc < 0 ? -1 : 1;
}

int plan_opts_check(struct plan_opts *po, const char *cmd)
{
	struct gp_plan_opts *p = &po->plan;
	bool any_share = po->share_all_set;

	for (int r = 0; r < GP_RES_COUNT; r++)
		any_share |= p->share[r].set;
	if (!p->vm_name || !*p->vm_name) {
		cli_usage(cmd, "--vm NAME is required");
		return -1;
	}
	if (po->output && po->apply) {
		cli_usage(cmd, "-o and --apply exclude each other");
		return -1;
	}
	if (p->revert && strcmp(cmd, "prepare") == 0) {
		/* Injecting the driver and removing the partition at once
		 * contradict each other: one of them is a mistake. */
		cli_usage(cmd, "--revert removes the VM's GPU partition; it has no place in "
			       "prepare, which injects the driver (use gpup hostconf --revert)");
		return -1;
	}
	if (p->revert) {
		if (any_share || po->surveydda || p->high_mmio || p->low_mmio) {
			cli_usage(cmd, "--revert takes no shares or MMIO sizes: it restores the "
				       "recorded settings (or Hyper-V's defaults)");
			return -1;
		}
	} else if (!po->gpu) {
		cli_usage(cmd, "--gpu ID is required (an instance path, VEN_xxxx&DEV_xxxx, or auto)");
		return -1;
	}
	if (p->have_mmio_buffer && !po->surveydda) {
		cli_usage(cmd, "--mmio-buffer only applies with --surveydda");
		return -1;
	}
	p->gpu_select = po->gpu;
	/* --share fills the resources not given one by one. */
	if (po->share_all_set)
		for (int r = 0; r < GP_RES_COUNT; r++)
			if (!p->share[r].set)
				p->share[r] = po->share_all;
	return 0;
}

/* The GPU list from --from, or live. Neither at hand (no --from, no
 * PowerShell here) is no error: *have stays false and the script picks the
 * GPU and computes the quotas on the host. Nor is a live query that fails
 * for a script that is only written (a pwsh without Hyper-V, as on a Linux
 * box): a warning says why; --apply needs the host, so there it fails. */
static int load_gpus(struct plan_opts *po, struct gp_gpu_list *l, bool *have,
		     struct gp_error *err)
{
	struct gp_ps_shell sh;
	struct gp_error qerr = { 0 };
	int rc;

	*have = false;
	if (po->from) {
		*have = true;
		return gp_gpus_load(po->from, l, err);
	}
	if (gp_ps_find_shell(&sh, &qerr) != 0)
		return 0;
	rc = gp_ps_query_gpus(&sh, l, &qerr);
	if (rc == 0) {
		*have = true;
		return 0;
	}
	if (po->apply)
		return gp_error_set(err, rc, "%s", gp_error_message(&qerr));
	cli_warn("%s", gp_error_message(&qerr));
	return 0;
}

int plan_opts_build(struct plan_opts *po, struct gp_plan *plan, struct gp_error *err)
{
	struct gp_gpu_list l = { 0 };
	struct gp_surveydda survey = { 0 };
	const struct gp_gpu *gpu = NULL;
	int rc = 0;

	memset(plan, 0, sizeof(*plan));
	if (po->surveydda) {
		rc = gp_surveydda_load(po->surveydda, &survey, err);
		if (rc)
			return rc;
		po->plan.surveydda = &survey;   /* reset below: @survey is ours */
	}
	if (!po->plan.revert) {
		size_t idx;
		struct gp_error names_err = { 0 };
		bool have;

		rc = load_gpus(po, &l, &have, err);
		if (rc)
			goto out;
		if (!have) {
			struct gp_gpu_selector sel;

			/* The host lists no names (only instance paths and
			 * figures): a name is resolved here or nowhere. */
			if (gp_gpu_selector_parse(po->gpu, &sel, err) == 0 &&
			    sel.kind == GP_GPU_SEL_NAME && !sel.has_ven)
				return gp_error_set(err, GP_ERR_INVALID,
						    "--gpu '%s' is a name: choosing by name needs the "
						    "GPU list (--from FILE, or PowerShell here); or give "
						    "VEN_xxxx&DEV_yyyy", po->gpu);
			cli_warn("no GPU list (--from FILE, or PowerShell here): the script "
				 "chooses GPU '%s' and computes the quotas on the host", po->gpu);
			goto plan;
		}
		/* Names decorate the script's comment and let --gpu name the GPU:
		 * a missing pci.ids is worth a warning, not a failure. */
		if (gp_gpus_lookup_names(&l, NULL, &names_err) != 0)
			cli_warn("%s", gp_error_message(&names_err));
		rc = gp_gpus_select(&l, po->gpu, &idx, err);
		if (rc)
			goto out;
		gpu = &l.gpus[idx];
	}
plan:
	rc = gp_plan_build(&po->plan, gpu, plan, err);
	if (rc == 0)
		for (unsigned i = 0; i < plan->n_warnings; i++)
			cli_warn("%s", plan->warnings[i]);
out:
	po->plan.surveydda = NULL;
	gp_surveydda_free(&survey);
	gp_gpus_free(&l);
	return rc;
}

/* Can -o PATH be written? Checked before anything is written anywhere, and
 * without creating anything: the parent must be an existing, writable
 * directory and PATH must not be a directory. access() alone would say yes
 * to root for almost anything, hence the stat() checks. */
static int check_target(const char *path, struct gp_error *err)
{
	char *copy = strdup(path);
	const char *parent;
	struct stat st;
	int rc = 0;

	if (!copy)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	parent = dirname(copy);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		rc = gp_error_set(err, GP_ERR_INVALID, "%s: is a directory, not a script file", path);
	else if (stat(parent, &st) != 0)
		rc = gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					"%s: directory %s", path, parent);
	else if (!S_ISDIR(st.st_mode))
		rc = gp_error_set(err, GP_ERR_NOTFOUND, "%s: %s is not a directory", path, parent);
	else if (access(parent, W_OK | X_OK) != 0)
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: cannot write in %s", path,
					parent);
	free(copy);
	return rc;
}

int plan_opts_prepare(struct plan_opts *po, struct plan_opts_prepared *out, struct gp_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->po = po;
	rc = plan_opts_build(po, &out->plan, err);
	if (rc)
		return rc;
	out->have_plan = true;
	rc = gp_ps_render_string(&out->plan, &out->script, &out->script_len, err);
	if (rc == 0 && po->apply)
		rc = gp_ps_find_shell(&out->shell, err);
	else if (rc == 0 && po->output && strcmp(po->output, "-") != 0)
		rc = check_target(po->output, err);
	if (rc)
		plan_opts_prepared_free(out);
	return rc;
}

/* Write @len bytes to @f; 0 or GP_ERR_IO naming @what. */
static int write_all(FILE *f, const char *buf, size_t len, const char *what,
		     struct gp_error *err)
{
	if (fwrite(buf, 1, len, f) != len || fflush(f) != 0)
		return gp_error_set_errno(err, GP_ERR_IO, errno, "%s: write", what);
	return 0;
}

/* Write the script to @path through a temporary file beside it and
 * rename(), so a failed run never leaves half a script behind. */
static int write_script(const char *script, size_t len, const char *path, struct gp_error *err)
{
	char *tmp = NULL;
	FILE *f;
	int fd, rc;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		free(tmp);
		return rc;
	}
	fchmod(fd, 0644);
	f = fdopen(fd, "w");
	if (!f) {
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		close(fd);
		unlink(tmp);
		free(tmp);
		return rc;
	}
	rc = write_all(f, script, len, path, err);
	if (fclose(f) != 0 && rc == 0)
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: write", path);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

int plan_opts_commit(struct plan_opts_prepared *pp, struct gp_error *err)
{
	const struct plan_opts *po = pp->po;
	int rc, status = 0;

	if (po->apply) {
		rc = gp_ps_apply_script(&pp->shell, pp->script, pp->script_len, &status, err);
		if (rc == 0 && status != 0)
			rc = gp_error_set(err, GP_ERR_EXTERNAL,
					  "the PowerShell script failed with exit status %d", status);
	} else if (po->output && strcmp(po->output, "-") != 0) {
		rc = write_script(pp->script, pp->script_len, po->output, err);
		if (rc == 0)
			cli_note("wrote %s; run it on the Hyper-V host as Administrator:\n"
				 "  powershell.exe -NoProfile -ExecutionPolicy Bypass -File %s",
				 po->output, po->output);
	} else {
		rc = write_all(stdout, pp->script, pp->script_len, "stdout", err);
	}
	return rc;
}

void plan_opts_prepared_free(struct plan_opts_prepared *pp)
{
	if (!pp)
		return;
	if (pp->have_plan)
		gp_plan_free(&pp->plan);
	free(pp->script);
	memset(pp, 0, sizeof(*pp));
}

int plan_opts_run(struct plan_opts *po)
{
	struct gp_error err = { 0 };
	struct plan_opts_prepared pp;
	int rc;

	rc = plan_opts_prepare(po, &pp, &err);
	if (rc == 0)
		rc = plan_opts_commit(&pp, &err);
	plan_opts_prepared_free(&pp);
	return rc ? cli_fail(&err) : EXIT_OK;
}

void plan_opts_help(FILE *f, bool with_gpu)
{
	fputs("Host configuration (GPU partitioning) options:\n"
	      "  --vm NAME             the Hyper-V VM\n", f);
	if (with_gpu)
		fputs(CLI_GPU_HELP, f);
	fputs("  --from FILE           GPU list saved from Get-VMHostPartitionableGpu (list or\n"
	      "                        JSON); without it powershell.exe/pwsh is asked live\n"
	      "  --share P%            Min = Optimal = Max = P% of each resource's maximum,\n"
	      "                        computed by the script on the host\n"
	      "  --vram SPEC, --encode SPEC, --decode SPEC, --compute SPEC\n"
	      "                        one resource: P%, N (raw, host scale) or MIN:OPT:MAX\n"
	      "                        (default: the host's own Min/Optimal/Max)\n"
	      "  --surveydda FILE      SurveyDDA.ps1 output: High MMIO = its display devices' MB\n"
	      "                        (the chosen GPU's vendor's) + buffer, rounded up to\n"
	      "                        whole GiB, at least 8 GiB (a warning says what was\n"
	      "                        counted; no display device: 32 GiB)\n"
	      "  --mmio-buffer SIZE    buffer added to the SurveyDDA sum (default 512M)\n"
	      "  --low-mmio SIZE       Low MMIO (default 1G)\n"
	      "  --high-mmio SIZE      High MMIO (default 32G; above 64G fails on 36-bit hosts)\n"
	      "  --server              Windows Server host: set RequireSecureDeviceAssignment and\n"
	      "                        RequireSupportedDeviceAssignment to 0\n"
	      "  --host-os OS          win11 (default), server2025, win10 or server2022 (the\n"
	      "                        last two have no Add-VMGpuPartitionAdapter -InstancePath)\n"
	      "  --stop-vm             shut a running VM down and start it again afterwards\n"
	      "  --revert              restore the VM's adapters, MMIO and cache setting (and,\n"
	      "                        with --server, the policy values) as recorded on the\n"
	      "                        host before the first change; without a record: no\n"
	      "                        partition, Hyper-V's default MMIO\n"
	      "  -o, --output FILE     write the script to FILE (default: standard output)\n"
	      "  --apply               run it now with powershell.exe (WSL) or pwsh\n", f);
}
