/* test_pwsh.c — the host scripts run in a real PowerShell 7 (pwsh
 * -NoProfile -NonInteractive -File) against the stand-in Hyper-V module of
 * tests/hostconf/modules (found through PSModulePath, loaded by the
 * script's own `#Requires -Modules Hyper-V`; the scripts set
 * Set-StrictMode -Version Latest themselves). Each scenario asserts the
 * stand-in's state file after every run: the plan's values after the first
 * run, no change at all after the second, the state before gpup after
 * --revert, and no change after a second revert. Also: Windows PowerShell
 * 5.1 syntax and the BOM (ps51-check.ps1), a broken script failing,
 * --apply and the live GPU query through pwsh.
 *
 * Without pwsh the tests skip, naming the command that installs it; under
 * CI (CI=true) they fail instead: `make pwsh` installs it there. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpus.h"
#include "hc_test.h"

#define PWSH_INSTALL "dotnet tool install --global PowerShell --version 7.6.10"

static char *dir;

/* Every run of the test process (pwsh, gpup --apply) finds the stand-in
 * module, its state file and a ProgramData for the script's record. */
static void setup(void)
{
	char *v;

	dir = t_tmpdir();
	v = t_strdup_printf("%s/state.json", dir);
	setenv("GPUP_HYPERV_STATE", v, 1);
	free(v);
	v = t_strdup_printf("%s/ProgramData", dir);
	setenv("ProgramData", v, 1);
	free(v);
	v = t_strdup_printf("%s/tests/hostconf/modules", t_env("GPUP_SRC"));
	setenv("PSModulePath", v, 1);
	free(v);
	setenv("NO_COLOR", "1", 1);
}

static void teardown(void)
{
	t_rm_rf(dir);
	free(dir);
}

TestSuite(pwsh, .init = setup, .fini = teardown);

/* pwsh from ~/.dotnet/tools (where `make pwsh` installs it) or PATH. */
static const char *pwsh(void)
{
	static char path[4096];
	const char *home = getenv("HOME");
	const char *ci = getenv("CI");
	struct t_run r;

	snprintf(path, sizeof(path), "%s/.dotnet/tools/pwsh", home ? home : "");
	if (home && access(path, X_OK) == 0)
		return path;
	if (t_run(&r, "command -v pwsh") == 0 && r.out_len > 1 && r.out_len < sizeof(path)) {
		snprintf(path, sizeof(path), "%.*s", (int)r.out_len - 1, r.out);
		t_run_free(&r);
		return path;
	}
	t_run_free(&r);
	if (ci && !strcmp(ci, "true"))
		cr_assert_fail("pwsh is missing under CI (make pwsh installs it: " PWSH_INSTALL ")");
	cr_skip_test("pwsh is not installed; install it with: " PWSH_INSTALL);
	return NULL;
}

/* PowerShell 7 prints an error's message wrapped to its window, each
 * continuation line starting with spaces and "| ": joined back into one
 * line, so that a test can look for a message whole. */
static void unwrap(char *s)
{
	char *o = s;

	for (const char *p = s; *p;) {
		const char *q = p + 1;

		if (*p == '\n') {
			while (*q == ' ')
				q++;
			if (q[0] == '|' && q[1] == ' ') {
				*o++ = ' ';
				p = q + 2;
				continue;
			}
		}
		*o++ = *p++;
	}
	*o = '\0';
}

/* pwsh -File SCRIPT ARGS (ARGS already shell-quoted); stderr unwrapped. */
static int ps_file(struct t_run *r, const char *script, const char *args)
{
	int status = t_run(r, "'%s' -NoProfile -NonInteractive -File '%s' %s", pwsh(), script, args);

	unwrap(r->err);
	return status;
}

static char *golden_path(const char *name)
{
	return t_strdup_printf("%s/tests/hostconf/golden/%s", t_env("GPUP_SRC"), name);
}

/* ---- the stand-in's state ---- */

static json_object *u64(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return json_object_new_string(buf);
}

/* A host with the GPUs of a data file (as the stand-in lists them). */
static json_object *state_new(const char *host_os, const char *gpus_file)
{
	static const char *const fig[5] = { "Total", "Available", "MinPartition", "MaxPartition",
					    "OptimalPartition" };
	struct gp_error err = { 0 };
	struct gp_gpu_list l = { 0 };
	char *path = hc_data(gpus_file);
	json_object *st = json_object_new_object(), *gpus = json_object_new_array();

	cr_assert_eq(gp_gpus_load(path, &l, &err), 0, "%s", err.msg);
	for (size_t i = 0; i < l.count; i++) {
		const struct gp_gpu *g = &l.gpus[i];
		json_object *o = json_object_new_object(), *counts = json_object_new_array();

		json_object_object_add(o, "Name", json_object_new_string(g->instance_path));
		for (size_t k = 0; k < g->valid_count_n; k++)
			json_object_array_add(counts, json_object_new_int((int)g->valid_counts[k]));
		json_object_object_add(o, "ValidPartitionCounts", counts);
		json_object_object_add(o, "PartitionCount", json_object_new_int((int)g->partition_count));
		for (int r = 0; r < GP_RES_COUNT; r++) {
			const struct gp_gpu_resource *res = &g->res[r];
			const uint64_t v[5] = { res->total, res->available, res->min, res->max,
						res->optimal };

			for (int f = 0; f < 5; f++) {
				char key[48];

				snprintf(key, sizeof(key), "%s%s", fig[f], gp_gpu_res_name(r));
				json_object_object_add(o, key, u64(v[f]));
			}
		}
		json_object_array_add(gpus, o);
	}
	json_object_object_add(st, "HostOS", json_object_new_string(host_os));
	json_object_object_add(st, "Gpus", gpus);
	json_object_object_add(st, "VMs", json_object_new_array());
	json_object_object_add(st, "Registry", json_object_new_object());
	json_object_object_add(st, "Log", json_object_new_array());
	gp_gpus_free(&l);
	free(path);
	return st;
}

/* A VM with Hyper-V's defaults: no adapter, 128 MiB / 512 MiB MMIO. */
static void state_add_vm(json_object *st, const char *name, const char *power)
{
	json_object *vms, *vm = json_object_new_object();
	char id[40];

	json_object_object_get_ex(st, "VMs", &vms);
	snprintf(id, sizeof(id), "6d1c7a52-0000-4000-8000-%012zu", json_object_array_length(vms) + 1);
	json_object_object_add(vm, "Name", json_object_new_string(name));
	json_object_object_add(vm, "Id", json_object_new_string(id));
	json_object_object_add(vm, "State", json_object_new_string(power));
	json_object_object_add(vm, "GuestControlledCacheTypes", json_object_new_boolean(0));
	json_object_object_add(vm, "LowMemoryMappedIoSpace", u64(134217728));
	json_object_object_add(vm, "HighMemoryMappedIoSpace", u64(536870912));
	json_object_object_add(vm, "Adapters", json_object_new_array());
	json_object_array_add(vms, vm);
}

/* A Server's policy key holding RequireSecureDeviceAssignment = 1 (and not
 * the other value), for revert to bring back exactly. */
static void state_add_policy(json_object *st)
{
	json_object *reg, *key = json_object_new_object(), *val = json_object_new_object();

	json_object_object_get_ex(st, "Registry", &reg);
	json_object_object_add(val, "Kind", json_object_new_string("DWord"));
	json_object_object_add(val, "Value", json_object_new_string("1"));
	json_object_object_add(key, "RequireSecureDeviceAssignment", val);
	json_object_object_add(reg, "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\HyperV", key);
}

static void state_write(json_object *st)
{
	const char *text = json_object_to_json_string_ext(st, JSON_C_TO_STRING_PRETTY);

	cr_assert_eq(t_write_file(getenv("GPUP_HYPERV_STATE"), text, strlen(text)), 0);
}

static json_object *state_read(void)
{
	json_object *st = json_object_from_file(getenv("GPUP_HYPERV_STATE"));

	cr_assert_not_null(st, "the state file is not JSON");
	return st;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "no '%s' in %s", key,
		  json_object_to_json_string(o));
	return v;
}

static size_t log_len(json_object *st)
{
	return json_object_array_length(get(st, "Log"));
}

/* The one VM named @name (borrowed from @st). */
static json_object *vm_named(json_object *st, const char *name)
{
	json_object *vms = get(st, "VMs"), *found = NULL;

	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);

		if (!strcmp(json_object_get_string(get(vm, "Name")), name)) {
			cr_assert_null(found, "two VMs named '%s'", name);
			found = vm;
		}
	}
	cr_assert_not_null(found, "no VM named '%s'", name);
	return found;
}

/* ---- what a forward script must leave ---- */

struct expect {
	char quota[GP_RES_COUNT][3][24];   /* Min, Optimal, Max as decimal strings */
	char low[24], high[24];
	const char *instance_path;         /* the adapter's GPU; NULL: not exposed (win10) */
};

/* The values gpup computed (the script's comment lines "#   VRAM     on the
 * listed GPU: Min A  Optimal B  Max C" and its MMIO parameters): the script
 * computes the quotas again on the host, independently, and must agree. */
static void expect_from_script(const char *script, struct expect *e)
{
	char *text = t_read_file(script, NULL);
	const char *p;

	cr_assert_not_null(text, "%s", script);
	for (int r = 0; r < GP_RES_COUNT; r++) {
		char key[48];

		snprintf(key, sizeof(key), "#   %-8s on the listed GPU: ", gp_gpu_res_name(r));
		p = strstr(text, key);
		cr_assert_not_null(p, "%s: no '%s'", script, key);
		cr_assert_eq(sscanf(p + strlen(key), "Min %23s  Optimal %23s  Max %23s", e->quota[r][0],
				    e->quota[r][1], e->quota[r][2]), 3, "%s", script);
	}
	p = strstr(text, "[UInt64] $LowMemoryMappedIoSpace = '");
	cr_assert(p && sscanf(strchr(p, '\'') + 1, "%23[0-9]", e->low) == 1, "%s", script);
	p = strstr(text, "[UInt64] $HighMemoryMappedIoSpace = '");
	cr_assert(p && sscanf(strchr(p, '\'') + 1, "%23[0-9]", e->high) == 1, "%s", script);
	free(text);
}

static void assert_configured(json_object *vm, const struct expect *e)
{
	json_object *adapters = get(vm, "Adapters"), *a;

	cr_assert_eq(json_object_array_length(adapters), 1, "%s", json_object_to_json_string(vm));
	a = json_object_array_get_idx(adapters, 0);
	for (int r = 0; r < GP_RES_COUNT; r++) {
		static const char *const part[3] = { "MinPartition", "OptimalPartition", "MaxPartition" };

		for (int k = 0; k < 3; k++) {
			char key[48];

			snprintf(key, sizeof(key), "%s%s", part[k], gp_gpu_res_name(r));
			cr_assert_str_eq(json_object_get_string(get(a, key)), e->quota[r][k], "%s", key);
		}
	}
	if (e->instance_path)
		cr_assert_str_eq(json_object_get_string(get(a, "InstancePath")), e->instance_path);
	cr_assert(json_object_get_boolean(get(vm, "GuestControlledCacheTypes")));
	cr_assert_str_eq(json_object_get_string(get(vm, "LowMemoryMappedIoSpace")), e->low);
	cr_assert_str_eq(json_object_get_string(get(vm, "HighMemoryMappedIoSpace")), e->high);
}

/*
 * The whole life of one configuration: @fwd gives VM @name what @e says
 * (and, for a VM that was Running, starts it again); run again it changes
 * nothing and says so; @rev brings back the VM and the registry exactly as
 * they were; run again it changes nothing.
 */
static void cycle(json_object *initial, const char *name, const char *fwd, const char *rev,
		  const struct expect *e, const char *fwd_args)
{
	json_object *st, *before = vm_named(initial, name);
	struct t_run r;
	size_t n;

	state_write(initial);
	cr_assert_eq(ps_file(&r, fwd, fwd_args), 0, "%s\n%s", r.out, r.err);
	t_run_free(&r);
	st = state_read();
	assert_configured(vm_named(st, name), e);
	cr_assert_str_eq(json_object_get_string(get(vm_named(st, name), "State")),
			 json_object_get_string(get(before, "State")));
	n = log_len(st);
	cr_assert(n > 0);
	json_object_put(st);

	cr_assert_eq(ps_file(&r, fwd, fwd_args), 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "already as planned: no change."), "%s", r.out);
	t_run_free(&r);
	st = state_read();
	cr_assert_eq(log_len(st), n, "a second run changed something: %s",
		     json_object_to_json_string(get(st, "Log")));
	json_object_put(st);

	cr_assert_eq(ps_file(&r, rev, ""), 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "restoring the settings recorded in"), "%s", r.out);
	t_run_free(&r);
	st = state_read();
	cr_assert(json_object_equal(vm_named(st, name), before), "not restored: %s\nwas %s",
		  json_object_to_json_string(vm_named(st, name)), json_object_to_json_string(before));
	cr_assert(json_object_equal(get(st, "Registry"), get(initial, "Registry")),
		  "registry not restored: %s", json_object_to_json_string(get(st, "Registry")));
	n = log_len(st);
	json_object_put(st);

	cr_assert_eq(ps_file(&r, rev, ""), 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "no change."), "%s", r.out);
	t_run_free(&r);
	st = state_read();
	cr_assert_eq(log_len(st), n, "a second revert changed something");
	json_object_put(st);
}

/* gpup hostconf with the VM name from $GPUP_T_VM (no shell quoting of
 * hostile names); @prefix goes before gpup (environment). */
static void render(const char *prefix, const char *vm, const char *args, const char *out)
{
	struct t_run r;

	setenv("GPUP_T_VM", vm, 1);
	cr_assert_eq(t_run(&r, "%s '%s' hostconf --vm \"$GPUP_T_VM\" %s -o '%s'", prefix,
			   t_env("GPUP_BIN"), args, out), 0, "%s", r.err);
	t_run_free(&r);
}

/* ---- scenarios ---- */

/* A golden forward script through cycle(), with the revert golden file
 * (@revert_args NULL) or a revert rendered by gpup with @revert_args.
 * @instance_path: the GPU the adapter must use (NULL: win10, not shown). */
static void golden_cycle(json_object *st, const char *vm, const char *golden,
			 const char *revert_args, const char *instance_path)
{
	char *fwd = golden_path(golden);
	char *rev = revert_args ? t_strdup_printf("%s/revert.ps1", dir) : golden_path("revert.ps1");
	struct expect e;

	expect_from_script(fwd, &e);
	e.instance_path = instance_path;
	if (revert_args)
		render("", vm, revert_args, rev);
	cycle(st, vm, fwd, rev, &e, "");
	free(fwd);
	free(rev);
}

/* The client golden file and the revert golden file, on the how-to host;
 * another VM stays untouched. */
Test(pwsh, golden_client_and_revert)
{
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	json_object *after;
	char *fwd = golden_path("client.ps1");
	struct expect e;

	pwsh();
	state_add_vm(st, "Win11 GPU-P", "Off");
	state_add_vm(st, "other", "Running");
	/* 50% of the how-to's figures, as the example computes them. */
	expect_from_script(fwd, &e);
	cr_assert_str_eq(e.quota[GP_RES_ENCODE][2], "9223372036854775807");
	cr_assert_str_eq(e.quota[GP_RES_VRAM][0], "500000000");
	golden_cycle(st, "Win11 GPU-P", "client.ps1", NULL,
		     "\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008"
		     "#{064092b3-625e-43bf-9eb5-dc845897dd59}");
	after = state_read();
	cr_assert(json_object_equal(vm_named(after, "other"), vm_named(st, "other")));
	json_object_put(after);
	json_object_put(st);
	free(fwd);
}

/* The server golden file: a Running VM (--stop-vm), policy values, Intel
 * GPU by vvvv:dddd, SurveyDDA MMIO; revert --server restores the policy. */
Test(pwsh, golden_server_running_vm)
{
	json_object *st = state_new("win11", "howto-two-gpus.txt");

	pwsh();
	state_add_vm(st, "Render Node 01", "Running");
	state_add_policy(st);
	golden_cycle(st, "Render Node 01", "server.ps1", "--revert --server --stop-vm",
		     "\\\\?\\PCI#VEN_8086&DEV_A7A0&SUBSYS_12A31043&REV_04#3&11583659&0&10"
		     "#{064092b3-625e-43bf-9eb5-dc845897dd59}");
	json_object_put(st);
}

/* The Windows 10 golden file: no -InstancePath, Get-VMPartitionableGpu. */
Test(pwsh, golden_windows10)
{
	json_object *st = state_new("win10", "win10-get-vmpartitionablegpu.txt");

	pwsh();
	state_add_vm(st, "gaming", "Off");
	golden_cycle(st, "gaming", "win10.ps1", "--revert", NULL);
	json_object_put(st);
}

/*
 * Quotas computed on the host: the script rendered with no GPU list and no
 * PowerShell (the GPU chosen by VEN/DEV on the host) and the one rendered
 * from --from leave the same state: the second run of the other finds
 * nothing to change. Custom quotas of every form and custom MMIO.
 */
Test(pwsh, quotas_computed_on_host)
{
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	char *from = hc_data("howto-two-gpus.txt");
	char *listed = t_strdup_printf("%s/listed.ps1", dir);
	char *blind = t_strdup_printf("%s/blind.ps1", dir);
	char *rev = t_strdup_printf("%s/revert.ps1", dir);
	char *args = t_strdup_printf("--from '%s'", from);
	const char *quotas = "--gpu 'VEN_10DE&DEV_2860' --vram 10%:20.5%:30% --encode 12.345678% "
			     "--decode 100000000 --compute 0:50%:100% --low-mmio 2G --high-mmio 33280M";
	char *with_list = t_strdup_printf("--from '%s' %s", from, quotas);
	char *text;
	struct expect e;
	struct t_run r;

	pwsh();
	state_add_vm(st, "v", "Off");
	render("", "v", with_list, listed);
	render("env PATH=/usr/bin:/bin HOME=/nonexistent", "v", quotas, blind);
	render("", "v", "--revert", rev);
	text = t_read_file(blind, NULL);
	cr_assert(strstr(text, "    [string] $Gpu = 'VEN_10DE&DEV_2860',\n"), "%s", text);
	cr_assert_null(strstr(text, "on the listed GPU"));
	free(text);
	expect_from_script(listed, &e);
	cr_assert_str_eq(e.quota[GP_RES_ENCODE][0], "2277375624824263897");
	e.instance_path = "\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008"
			  "#{064092b3-625e-43bf-9eb5-dc845897dd59}";
	/* Blind first, then the listed one finds it done. */
	cycle(st, "v", blind, rev, &e, "");
	state_write(st);
	cr_assert_eq(ps_file(&r, blind, ""), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(ps_file(&r, listed, ""), 0, "%s", r.err);
	cr_assert(strstr(r.out, "no change."), "%s", r.out);
	t_run_free(&r);
	json_object_put(st);
	free(args);
	free(with_list);
	free(from);
	free(listed);
	free(blind);
	free(rev);
}

/* Hostile VM names stay data: quotes of every kind, backticks, $(...), a
 * newline, wildcards, non-ASCII; the decoy VM "x" is never touched. */
Test(pwsh, hostile_vm_name)
{
	static const char name[] = "x'; `$(Stop-Computer) \"q\" \xe2\x80\x98s\xe2\x80\x99 \xe2\x80\x9c"
				   "d\xe2\x80\x9d $env:PATH\nline2 [*?] \xe5\x90\x8d";
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	char *from = hc_data("howto-two-gpus.txt");
	char *fwd = t_strdup_printf("%s/fwd.ps1", dir), *rev = t_strdup_printf("%s/rev.ps1", dir);
	char *args = t_strdup_printf("--from '%s' --gpu 10de --share 25%%", from);
	struct expect e;

	pwsh();
	state_add_vm(st, "x", "Off");
	state_add_vm(st, name, "Off");
	render("", name, args, fwd);
	render("", name, "--revert", rev);
	expect_from_script(fwd, &e);
	e.instance_path = NULL;
	cycle(st, name, fwd, rev, &e, "");
	{
		json_object *after = state_read();

		cr_assert(json_object_equal(vm_named(after, "x"), vm_named(st, "x")));
		json_object_put(after);
	}
	json_object_put(st);
	free(args);
	free(from);
	free(fwd);
	free(rev);
}

/* Refused runs: nothing is changed, the message says why. */
static void refused(const char *script, const char *args, const char *why)
{
	json_object *after;
	struct t_run r;

	cr_assert_eq(ps_file(&r, script, args), 1, "%s", r.out);
	cr_assert(strstr(r.err, why), "want '%s' in: %s", why, r.err);
	t_run_free(&r);
	after = state_read();
	cr_assert_eq(log_len(after), 0, "%s", json_object_to_json_string(get(after, "Log")));
	json_object_put(after);
}

/* What must fail and change nothing: a Running VM without --stop-vm, a
 * Saved VM even with it, a VM that does not exist, two VMs of the same
 * name, a partition larger than what other VMs left of the GPU. */
Test(pwsh, refusals_change_nothing)
{
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	char *fwd = golden_path("client.ps1");

	pwsh();
	state_add_vm(st, "Win11 GPU-P", "Running");
	state_add_vm(st, "saved", "Saved");
	state_add_vm(st, "twin", "Off");
	state_add_vm(st, "twin", "Off");
	state_write(st);
	refused(fwd, "", "shut it down first (or render the script with --stop-vm)");
	refused(fwd, "-VMName saved -StopVM 1", "VM 'saved' is Saved; start it and shut it down");
	refused(fwd, "-VMName nosuchvm", "No virtual machine named 'nosuchvm' on this host.");
	refused(fwd, "-VMName twin", "2 virtual machines are named 'twin'");
	state_add_vm(st, "fresh", "Off");
	json_object_object_add(json_object_array_get_idx(get(st, "Gpus"), 0), "AvailableVRAM",
			       u64(400000000));
	state_write(st);
	refused(fwd, "-VMName fresh", "VRAM: Max 500000000 exceeds the GPU's AvailableVRAM 400000000");
	refused(fwd, "-VMName fresh -VRAM 60%:50%:70%", "VRAM: Min 600000000, Optimal 500000000");
	json_object_put(st);
	free(fwd);
}

/* A script with a misspelled cmdlet fails (PowerShell resolves commands
 * only when it reaches them, so no parse step catches it): the runner must
 * see a non-zero status and the VM must not end up configured. */
Test(pwsh, broken_script_fails)
{
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	char *golden = golden_path("client.ps1");
	char *broken = t_strdup_printf("%s/broken.ps1", dir);
	char *text = t_read_file(golden, NULL);
	char *at = strstr(text, "Hyper-V\\Set-VMGpuPartitionAdapter @set");
	json_object *after;
	struct t_run r;

	pwsh();
	cr_assert_not_null(at);
	memcpy(at + strlen("Hyper-V\\Set-VMGpuPartit"), "oin", 3);  /* Partition -> Partitoin */
	cr_assert_eq(t_write_file(broken, text, strlen(text)), 0);
	state_add_vm(st, "Win11 GPU-P", "Off");
	state_write(st);
	cr_assert_neq(ps_file(&r, broken, ""), 0, "%s", r.out);
	cr_assert(strstr(r.err, "Set-VMGpuPartitoinAdapter"), "%s", r.err);
	t_run_free(&r);
	after = state_read();
	{
		json_object *a = json_object_array_get_idx(get(vm_named(after, "Win11 GPU-P"), "Adapters"), 0);

		/* Added but never given its quotas: the host's full partition. */
		cr_assert_not_null(a);
		cr_assert_str_eq(json_object_get_string(get(a, "MaxPartitionVRAM")), "1000000000");
	}
	json_object_put(after);
	json_object_put(st);
	free(text);
	free(golden);
	free(broken);
}

/* ---- Windows PowerShell 5.1 ---- */

/* Every rendered variant parses, uses no PowerShell-7-only syntax and
 * carries the BOM its non-ASCII text needs (ps51-check.ps1, one pwsh for
 * all of them); the checker itself finds each construct it looks for. */
Test(pwsh, windows_powershell_51_syntax)
{
	static const char *const variants[] = {
		"--gpu 10de --share 50%",
		"--gpu 8086:a7a0 --server --stop-vm --vram 10%:50%:100% --surveydda SURVEY",
		"--gpu auto --host-os win10 --encode 0:50%:100%",
		"--revert",
		"--revert --server --stop-vm",
	};
	static const char *const bad[][2] = {
		{ "$a = $null ?? 1\n", "null-coalescing ??" },
		{ "$a = $true ? 1 : 2\n", "ternary ?:" },
		{ "Get-Date && Get-Date\n", "pipeline chain" },
		{ "$a = $null\n$a ?\?= 1\n", "null-coalescing assignment" },
		{ "$a = $null\n${a}?.Length\n", "null-conditional" },
		{ "Write-Host 'caf\xc3\xa9'\n", "without a UTF-8 byte-order mark" },
		{ "Write-Host 'unclosed\n", "parse error" },
	};
	char *from = hc_data("howto-two-gpus.txt"), *win10 = hc_data("win10-get-vmpartitionablegpu.txt");
	char *survey = hc_data("surveydda.txt");
	char *checker = t_strdup_printf("%s/tests/hostconf/ps51-check.ps1", t_env("GPUP_SRC"));
	char *files = t_strdup_printf("'%s/tests/hostconf/golden/'*.ps1", t_env("GPUP_SRC"));
	struct t_run r;

	pwsh();
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		char *out = t_strdup_printf("%s/v%zu.ps1", dir, i);
		char *spec = t_strdup_printf("%s", variants[i]);
		char *at = strstr(spec, "SURVEY");
		char *args;

		if (at)
			*at = '\0';
		args = t_strdup_printf("--from '%s' %s%s%s", strstr(spec, "win10") ? win10 : from, spec,
				       at ? survey : "", at ? at + 6 : "");
		render("", i % 2 ? "caf\xc3\xa9 \xe5\x90\x8d" : "plain", args, out);
		{
			char *prev = files;

			files = t_strdup_printf("%s '%s'", prev, out);
			free(prev);
		}
		free(args);
		free(spec);
		free(out);
	}
	cr_assert_eq(ps_file(&r, checker, files), 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "9 script(s): PowerShell 5.1 syntax"), "%s", r.out);
	t_run_free(&r);
	free(files);
	files = t_strdup_printf("%s", "");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *f = t_strdup_printf("%s/bad%zu.ps1", dir, i);
		char *prev = files;

		cr_assert_eq(t_write_file(f, bad[i][0], strlen(bad[i][0])), 0);
		files = t_strdup_printf("%s '%s'", prev, f);
		free(prev);
		free(f);
	}
	cr_assert_eq(ps_file(&r, checker, files), 1, "%s", r.out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *want = t_strdup_printf("bad%zu.ps1", i);
		const char *line = strstr(r.out, want);

		cr_assert(line && strstr(line, bad[i][1]), "%s not reported as %s:\n%s", want, bad[i][1],
			  r.out);
		free(want);
	}
	t_run_free(&r);
	free(files);
	free(checker);
	free(survey);
	free(win10);
	free(from);
}

/* ---- through gpup: --apply and the live query ---- */

/* gpup finds pwsh (~/.dotnet/tools or PATH), runs the script, passes its
 * output and exit status on; a non-ASCII VM name arrives intact. */
Test(pwsh, apply_through_gpup)
{
	static const char name[] = "caf\xc3\xa9 \xe5\x90\x8d 'q'";
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	json_object *after;
	struct t_run r;

	pwsh();
	state_add_vm(st, name, "Off");
	state_write(st);
	setenv("GPUP_T_VM", name, 1);
	/* No --from: the GPU list comes live from pwsh too. */
	cr_assert_eq(t_run(&r, "'%s' hostconf --vm \"$GPUP_T_VM\" --gpu 10de:2860 --share 50%% --apply",
			   t_env("GPUP_BIN")), 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "has its GPU partition on \\\\?\\PCI#VEN_10DE&DEV_2860"), "%s", r.out);
	cr_assert(strstr(r.out, name), "%s", r.out);
	t_run_free(&r);
	after = state_read();
	cr_assert_str_eq(json_object_get_string(get(json_object_array_get_idx(
				 get(vm_named(after, name), "Adapters"), 0), "MaxPartitionEncode")),
			 "9223372036854775807");
	json_object_put(after);
	/* A failing script: its message and gpup's one line. */
	cr_assert_eq(t_run(&r, "'%s' hostconf --vm nosuchvm --revert --apply", t_env("GPUP_BIN")), 1);
	unwrap(r.err);
	cr_assert(strstr(r.err, "No virtual machine named 'nosuchvm' on this host."), "%s", r.err);
	cr_assert(strstr(r.err, "gpup: the PowerShell script failed with exit status 1"), "%s", r.err);
	t_run_free(&r);
	json_object_put(st);
}

/* `gpup gpus` without --from asks pwsh; --gpu auto with two GPUs is an
 * error naming them; a host without the module fails with its message. */
Test(pwsh, live_gpus_through_pwsh)
{
	json_object *st = state_new("win10", "win10-get-vmpartitionablegpu.txt");
	struct t_run r;

	pwsh();
	state_write(st);
	json_object_put(st);
	/* Windows 10: only Get-VMPartitionableGpu exists. */
	cr_assert_eq(t_gpup(&r, "gpus --json"), 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"instance_path\":\"\\\\\\\\?\\\\PCI#VEN_10DE&DEV_2184") ||
		  strstr(r.out, "\"instance_path\": \"\\\\\\\\?\\\\PCI#VEN_10DE&DEV_2184"), "%s", r.out);
	cr_assert(strstr(r.out, "18446744073709551615"), "%s", r.out);
	t_run_free(&r);
	st = state_new("win11", "howto-two-gpus.txt");
	state_write(st);
	json_object_put(st);
	cr_assert_eq(t_gpup(&r, "hostconf --vm v --gpu auto"), 2, "%s", r.out);
	cr_assert(strstr(r.err, "--gpu auto: the host has 2 partitionable GPUs"), "%s", r.err);
	t_run_free(&r);
	setenv("PSModulePath", dir, 1);
	cr_assert_eq(t_gpup(&r, "gpus"), 1, "%s", r.out);
	cr_assert(strstr(r.err, "Get-VMHostPartitionableGpu failed (exit status 1)"), "%s", r.err);
	t_run_free(&r);
}

/* `prepare --vm X --share 50%` with no --from and no PowerShell: the
 * driver goes in and the script it writes configures the VM on the host,
 * to the same values a script rendered from the GPU list gives. */
Test(pwsh, prepare_without_gpu_list, .timeout = 300)
{
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *store = t_fixture("mkstore.sh", "");
	char *script = t_strdup_printf("%s/host.ps1", dir);
	char *golden = golden_path("client.ps1");
	struct expect e;
	struct t_run r;

	pwsh();
	cr_assert_eq(t_run(&r, "env PATH=/usr/bin:/bin HOME=/nonexistent '%s' prepare '%s' "
			       "--driverstore '%s' --gpu 'PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1' "
			       "--vm 'Win11 GPU-P' --share 50%% -o '%s' --progress=none",
			   t_env("GPUP_BIN"), img, store, script), 0, "%s", r.err);
	cr_assert(strstr(r.err, "computes the quotas on the host"), "%s", r.err);
	t_run_free(&r);
	state_add_vm(st, "Win11 GPU-P", "Off");
	state_write(st);
	cr_assert_eq(ps_file(&r, script, ""), 0, "%s\n%s", r.out, r.err);
	t_run_free(&r);
	json_object_put(st);
	st = state_read();
	expect_from_script(golden, &e);
	e.instance_path = "\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008"
			  "#{064092b3-625e-43bf-9eb5-dc845897dd59}";
	assert_configured(vm_named(st, "Win11 GPU-P"), &e);
	json_object_put(st);
	free(golden);
	free(script);
	free(store);
	free(img);
}

/* The stand-in refuses what Hyper-V refuses, so that a wrong script fails
 * here too: a string for -VM, an unknown parameter, a quota that is not a
 * number, changes to a Running VM, quotas out of order. */
Test(pwsh, stand_in_refuses_like_hyperv)
{
	static const char probe[] =
		"Set-StrictMode -Version Latest\n"
		"$ErrorActionPreference = 'Stop'\n"
		"$vm = Hyper-V\\Get-VM | Where-Object { $_.Name -eq 'on' }\n"
		"$off = Hyper-V\\Get-VM | Where-Object { $_.Name -eq 'off' }\n"
		"$tries = @(\n"
		"    { Hyper-V\\Set-VM -VM 'on' -LowMemoryMappedIoSpace 1GB },\n"
		"    { Hyper-V\\Set-VM -VM $off -Bogus 1 },\n"
		"    { Hyper-V\\Add-VMGpuPartitionAdapter -VM $off -MinPartitionVRAM 'lots' },\n"
		"    { Hyper-V\\Set-VM -VM $vm -LowMemoryMappedIoSpace 1GB },\n"
		"    { Hyper-V\\Add-VMGpuPartitionAdapter -VM $vm },\n"
		"    { Hyper-V\\Add-VMGpuPartitionAdapter -VM $off -InstancePath 'no such GPU' },\n"
		"    { Hyper-V\\Add-VMGpuPartitionAdapter -VM $off -MinPartitionVRAM 9 -MaxPartitionVRAM 5 }\n"
		")\n"
		"$refused = 0\n"
		"foreach ($t in $tries) { try { & $t; Write-Host \"accepted: $t\" } catch { $refused++ } }\n"
		"Write-Host \"refused $refused of $($tries.Count)\"\n";
	json_object *st = state_new("win11", "howto-two-gpus.txt");
	char *path = t_strdup_printf("%s/probe.ps1", dir);
	struct t_run r;

	pwsh();
	state_add_vm(st, "on", "Running");
	state_add_vm(st, "off", "Off");
	state_write(st);
	cr_assert_eq(t_write_file(path, probe, strlen(probe)), 0);
	cr_assert_eq(t_run(&r, "'%s' -NoProfile -NonInteractive -Command 'Import-Module Hyper-V; & %s'",
			   pwsh(), path), 0, "%s", r.err);
	cr_assert(strstr(r.out, "refused 7 of 7"), "%s", r.out);
	t_run_free(&r);
	json_object_put(st);
	st = state_read();
	cr_assert_eq(log_len(st), 0);
	json_object_put(st);
	free(path);
}
