/* test_cli.c — `gpup gpus` and `gpup hostconf` end to end: human and JSON
 * listings, -o FILE and stdout, exit statuses, usage errors, and --apply /
 * the live query through stand-in powershell.exe, wslpath and pwsh
 * (fake-powershell.sh, fake-wslpath.sh) put first on PATH. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hc_test.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(hostconf_cli, .init = setup, .fini = teardown);

/* Put a stand-in under @name into DIR/bin. */
static void install_fake(const char *script, const char *name)
{
	char *src = t_strdup_printf("%s/tests/hostconf/%s", t_env("GPUP_SRC"), script);
	char *bin = t_strdup_printf("%s/bin", dir);
	char *dst = t_strdup_printf("%s/%s", bin, name);
	size_t len;
	char *text = t_read_file(src, &len);

	cr_assert_not_null(text, "%s", src);
	mkdir(bin, 0755);
	cr_assert_eq(t_write_file(dst, text, len), 0);
	cr_assert_eq(chmod(dst, 0755), 0);
	free(text);
	free(src);
	free(bin);
	free(dst);
}

/* Run gpup in DIR with DIR/bin first on PATH (and nothing else that could
 * hold a real PowerShell: HOME is DIR, so no ~/.dotnet/tools/pwsh either);
 * @env is extra "VAR=value ..." assignments. */
static int gpup_in_dir(struct t_run *r, const char *env, const char *args)
{
	return t_run(r, "cd '%s' && env PATH='%s/bin:/usr/bin:/bin' HOME='%s' GPUP_FAKE_PS_LOG='%s/log' %s '%s' %s",
		     dir, dir, dir, dir, env, t_env("GPUP_BIN"), args);
}

Test(hostconf_cli, gpus_human)
{
	struct t_run r;
	char *f = hc_data("howto-two-gpus.txt");

	cr_assert_eq(t_gpup(&r, "gpus --from '%s'", f), 0, "%s", r.err);
	cr_assert(strstr(r.out, "GPU 1: NVIDIA Corporation AD106M [GeForce RTX 4070 Max-Q / Mobile]"),
		  "%s", r.out);
	cr_assert(strstr(r.out, "GPU 2: Intel Corporation Raptor Lake-P [Iris Xe Graphics]"), "%s",
		  r.out);
	cr_assert(strstr(r.out, "\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008"
				"#{064092b3-625e-43bf-9eb5-dc845897dd59}\n"));
	cr_assert(strstr(r.out, "  Encode   18446744073709551615 18446744073709551615"), "%s", r.out);
	t_run_free(&r);
	free(f);
}

Test(hostconf_cli, gpus_json)
{
	struct t_run r;
	char *f = hc_data("win10-get-vmpartitionablegpu.txt");
	json_object *root, *gpus, *g, *res, *enc, *v;

	cr_assert_eq(t_gpup(&r, "gpus --from '%s' --json", f), 0, "%s", r.err);
	root = json_tokener_parse(r.out);
	cr_assert_not_null(root, "not JSON: %s", r.out);
	cr_assert(json_object_object_get_ex(root, "gpus", &gpus));
	cr_assert_eq(json_object_array_length(gpus), 1);
	g = json_object_array_get_idx(gpus, 0);
	cr_assert(json_object_object_get_ex(g, "device_name", &v));
	cr_assert_str_eq(json_object_get_string(v), "TU116 [GeForce GTX 1660]");
	cr_assert(json_object_object_get_ex(g, "vendor_id", &v));
	cr_assert_str_eq(json_object_get_string(v), "10de");
	cr_assert(json_object_object_get_ex(g, "valid_partition_counts_truncated", &v));
	cr_assert(json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(g, "resources", &res));
	cr_assert(json_object_object_get_ex(res, "Encode", &enc));
	cr_assert(json_object_object_get_ex(enc, "max", &v));
	cr_assert_eq(json_object_get_uint64(v), UINT64_MAX);
	json_object_put(root);
	t_run_free(&r);
	free(f);
}

Test(hostconf_cli, gpus_errors)
{
	struct t_run r;
	char *f = hc_data("garbage.txt");

	cr_assert_eq(t_gpup(&r, "gpus --from '%s'", f), 1);
	cr_assert(strstr(r.err, "garbage.txt:3:"), "%s", r.err);
	cr_assert_eq(r.out_len, 0);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "gpus --from /nonexistent/gpus.txt"), 1);
	cr_assert(strstr(r.err, "/nonexistent/gpus.txt"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "gpus --bogus"), 2);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "gpus extra"), 2);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "gpus --help"), 0);
	cr_assert(strstr(r.out, "Usage: gpup gpus"));
	t_run_free(&r);
	/* No --from and no PowerShell on PATH. */
	cr_assert_eq(gpup_in_dir(&r, "", "gpus"), 1);
	cr_assert(strstr(r.err, "no PowerShell (on PATH or in ~/.dotnet/tools)"), "%s", r.err);
	t_run_free(&r);
	free(f);
}

Test(hostconf_cli, gpus_live_through_powershell)
{
	struct t_run r;
	char *f = hc_data("json-array.json");
	char *argv_log = t_strdup_printf("%s/log.argv", dir);
	char *args;

	char *env = t_strdup_printf("GPUP_FAKE_PS_GPUS='%s'", f);

	install_fake("fake-powershell.sh", "powershell.exe");
	cr_assert_eq(gpup_in_dir(&r, env, "gpus"), 0, "%s", r.err);
	free(env);
	cr_assert(strstr(r.out, "GPU 2: Intel Corporation"), "%s", r.out);
	t_run_free(&r);
	args = t_read_file(argv_log, NULL);
	cr_assert(strstr(args, "-NoProfile\n-NonInteractive\n-Command\n"), "%s", args);
	cr_assert(strstr(args, "Get-VMHostPartitionableGpu | ConvertTo-Json"), "%s", args);
	cr_assert(strstr(args, "Get-VMPartitionableGpu | ConvertTo-Json"), "fallback: %s", args);
	free(args);
	/* hostconf asks the same way when given no --from. */
	env = t_strdup_printf("GPUP_FAKE_PS_GPUS='%s'", f);
	cr_assert_eq(gpup_in_dir(&r, env, "hostconf --vm v --gpu 8086:a7a0"), 0, "%s", r.err);
	cr_assert(strstr(r.out, "$Gpu = '\\\\?\\PCI#VEN_8086&DEV_A7A0"), "%s", r.out);
	t_run_free(&r);
	free(env);
	/* PowerShell failing: its status and first stderr line are reported. */
	cr_assert_eq(gpup_in_dir(&r, "GPUP_FAKE_PS_EXIT=1 GPUP_FAKE_PS_STDERR='Hyper-V module not found'",
				 "gpus"), 1);
	cr_assert(strstr(r.err, "exit status 1"), "%s", r.err);
	cr_assert(strstr(r.err, "Hyper-V module not found"), "%s", r.err);
	t_run_free(&r);
	free(argv_log);
	free(f);
}

Test(hostconf_cli, hostconf_stdout_and_output_file)
{
	struct t_run r, r2;
	char *f = hc_data("howto-two-gpus.txt");
	char *out = t_strdup_printf("%s/gpu-p.ps1", dir);
	char *file;
	size_t len;

	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm 'My VM' --gpu VEN_10DE --share 50%%", f), 0,
		     "%s", r.err);
	cr_assert(!strncmp(r.out, "\xef\xbb\xbf#", 4));
	cr_assert(strstr(r.out, "    [string] $VMName = 'My VM',\n"));
	cr_assert(strstr(r.out, "# GPU: 10de:2860 NVIDIA Corporation AD106M [GeForce RTX 4070"),
		  "%s", r.out);
	cr_assert(strstr(r.out, "    [string] $Encode = '50%',\n"));
	cr_assert(strstr(r.out, "#   Encode   on the listed GPU: Min 9223372036854775807  "
				"Optimal 9223372036854775807  Max 9223372036854775807\n"), "%s", r.out);
	cr_assert_eq(t_gpup(&r2, "hostconf --from '%s' --vm 'My VM' --gpu VEN_10DE --share 50%% -o '%s'",
			    f, out), 0, "%s", r2.err);
	cr_assert_eq(r2.out_len, 0);
	cr_assert(strstr(r2.err, "-ExecutionPolicy Bypass -File"), "%s", r2.err);
	file = t_read_file(out, &len);
	cr_assert_not_null(file);
	cr_assert_eq(len, r.out_len);
	cr_assert_eq(memcmp(file, r.out, len), 0, "-o writes what stdout shows");
	free(file);
	t_run_free(&r2);
	/* "-o -" is standard output. */
	cr_assert_eq(t_gpup(&r2, "hostconf --from '%s' --vm 'My VM' --gpu VEN_10DE --share 50%% -o -",
			    f), 0, "%s", r2.err);
	cr_assert_eq(r2.out_len, r.out_len);
	cr_assert_eq(memcmp(r2.out, r.out, r.out_len), 0);
	t_run_free(&r);
	t_run_free(&r2);
	/* Per-resource shares win over --share. */
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de:2860 --share 50%% "
				"--vram 10%%:20%%:30%% --low-mmio 2G --high-mmio 33280M --server "
				"--host-os win10 --stop-vm", f), 0, "%s", r.err);
	cr_assert(strstr(r.out, "    [string] $VRAM = '10%:20%:30%',\n"));
	cr_assert(strstr(r.out, "#   VRAM     on the listed GPU: Min 100000000  Optimal 200000000  "
				"Max 300000000\n"), "%s", r.out);
	cr_assert(strstr(r.out, "    [string] $Decode = '50%',\n"));
	cr_assert(strstr(r.out, "    [UInt64] $LowMemoryMappedIoSpace = '2147483648',\n"));
	cr_assert(strstr(r.out, "    [UInt64] $HighMemoryMappedIoSpace = '34896609280',\n"));
	cr_assert(strstr(r.out, "    [int] $UseInstancePath = '0',\n"));
	cr_assert(strstr(r.out, "    [int] $ServerPolicy = '1',\n"));
	t_run_free(&r);
	/* Above 64 GiB: a warning, still exit 0. */
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --high-mmio 96G", f), 0);
	cr_assert(strstr(r.err, "warning: High MMIO 96 GiB is above 64 GiB"), "%s", r.err);
	t_run_free(&r);
	/* Revert needs no GPU list. */
	cr_assert_eq(t_gpup(&r, "hostconf --vm v --revert"), 0, "%s", r.err);
	cr_assert(strstr(r.out, "restoring Hyper-V's defaults"));
	t_run_free(&r);
	free(out);
	free(f);
}

Test(hostconf_cli, hostconf_errors_and_usage)
{
	static const char *const usage[] = {
		"--gpu auto",                                   /* no --vm */
		"--vm v",                                       /* no --gpu */
		"--vm v --gpu auto -o x.ps1 --apply",
		"--vm v --gpu auto --share 50",
		"--vm v --gpu auto --share 10%:20%:30%",
		"--vm v --gpu auto --vram 150%",
		"--vm v --gpu auto --encode 1:2",
		"--vm v --gpu auto --host-os mac",
		"--vm v --revert --share 50%",
		"--vm v --gpu auto --mmio-buffer 1G",
		"--vm v --gpu auto --high-mmio lots",
		"--vm v --gpu auto --bogus",
		"--vm v --gpu auto stray",
	};
	struct t_run r;
	char *f = hc_data("howto-two-gpus.txt");

	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		cr_assert_eq(t_gpup(&r, "hostconf --from '%s' %s", f, usage[i]), 2, "'%s': %d %s",
			     usage[i], r.status, r.err);
		cr_assert(strstr(r.err, "Try 'gpup hostconf --help'"), "'%s': %s", usage[i], r.err);
		cr_assert_eq(r.out_len, 0);
		t_run_free(&r);
	}
	cr_assert_eq(t_gpup(&r, "hostconf --help"), 0);
	cr_assert(strstr(r.out, "--surveydda FILE"));
	t_run_free(&r);
	/* Two GPUs: auto is ambiguous. */
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu auto", f), 2);
	cr_assert(strstr(r.err, "2 partitionable GPUs"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu VEN_1002", f), 1);
	cr_assert(strstr(r.err, "no partitionable GPU matches"), "%s", r.err);
	t_run_free(&r);
	/* A share breaking a rule is explained. */
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --vram 60%%:50%%:70%%", f), 2);
	cr_assert(strstr(r.err, "VRAM: Min 600000000 (60%) is greater than Optimal 500000000 (50%)"),
		  "%s", r.err);
	t_run_free(&r);
	/* -o into a missing directory: error, no stray file. */
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de -o /nonexistent/x.ps1", f), 1);
	cr_assert(strstr(r.err, "/nonexistent/x.ps1"), "%s", r.err);
	t_run_free(&r);
	free(f);
}

/* Names of gpup-hostconf-*.ps1 files left in @d. */
static int count_scripts(const char *d)
{
	DIR *dh = opendir(d);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(dh);
	while ((e = readdir(dh)))
		if (!strncmp(e->d_name, "gpup-hostconf-", 14))
			n++;
	closedir(dh);
	return n;
}

Test(hostconf_cli, apply_through_wsl_powershell)
{
	struct t_run r, want;
	char *f = hc_data("howto-two-gpus.txt");
	char *log_argv = t_strdup_printf("%s/log.argv", dir);
	char *log_script = t_strdup_printf("%s/log.script", dir);
	char real[PATH_MAX];
	char *args = t_strdup_printf("hostconf --from '%s' --vm 'x'\\''y' --gpu 10de --share 25%% --apply", f);
	char *text, *script, *expect_prefix;
	size_t len;

	install_fake("fake-powershell.sh", "powershell.exe");
	install_fake("fake-wslpath.sh", "wslpath");
	cr_assert_not_null(realpath(dir, real));
	cr_assert_eq(gpup_in_dir(&r, "", args), 0, "%s", r.err);
	cr_assert(strstr(r.out, "fake powershell.exe ran the script"), "output streams: %s", r.out);
	t_run_free(&r);
	/* powershell.exe -NoProfile -ExecutionPolicy Bypass -File <wslpath -w of the script> */
	text = t_read_file(log_argv, NULL);
	cr_assert_not_null(text);
	expect_prefix = t_strdup_printf("-NoProfile\n-ExecutionPolicy\nBypass\n-File\nW:%s\\gpup-hostconf-",
					real);
	for (char *p = expect_prefix + strlen("-NoProfile\n-ExecutionPolicy\nBypass\n-File\nW:"); *p; p++)
		if (*p == '/')
			*p = '\\';
	cr_assert(!strncmp(text, expect_prefix, strlen(expect_prefix)), "argv: %s\nwant: %s", text,
		  expect_prefix);
	cr_assert(strstr(text, ".ps1\n"), "%s", text);
	/* The script it ran is the one -o would write, and it is gone now. */
	cr_assert_eq(t_gpup(&want, "hostconf --from '%s' --vm 'x'\\''y' --gpu 10de --share 25%%", f), 0);
	script = t_read_file(log_script, &len);
	cr_assert_not_null(script);
	cr_assert_eq(len, want.out_len);
	cr_assert_eq(memcmp(script, want.out, len), 0);
	cr_assert(strstr(script, "$VMName = 'x''y'"));
	cr_assert_eq(count_scripts(dir), 0, "the temporary script is removed");
	t_run_free(&want);
	free(script);
	free(text);
	/* The script's failure becomes gpup's: exit 1 naming the status. */
	cr_assert_eq(gpup_in_dir(&r, "GPUP_FAKE_PS_EXIT=3", args), 1);
	cr_assert(strstr(r.err, "the PowerShell script failed with exit status 3"), "%s", r.err);
	cr_assert_eq(count_scripts(dir), 0);
	t_run_free(&r);
	free(expect_prefix);
	free(args);
	free(log_argv);
	free(log_script);
	free(f);
}

Test(hostconf_cli, apply_through_pwsh)
{
	struct t_run r;
	char *tmp = t_strdup_printf("%s/tmp", dir);
	char *log_argv = t_strdup_printf("%s/log.argv", dir);
	char *env = t_strdup_printf("TMPDIR='%s'", tmp);
	char *text, *expect;

	mkdir(tmp, 0755);
	install_fake("fake-powershell.sh", "pwsh");
	cr_assert_eq(gpup_in_dir(&r, env, "hostconf --vm v --revert --apply"), 0, "%s", r.err);
	cr_assert(strstr(r.out, "fake pwsh ran the script"), "%s", r.out);
	t_run_free(&r);
	text = t_read_file(log_argv, NULL);
	expect = t_strdup_printf("-NoProfile\n-File\n%s/gpup-hostconf-", tmp);
	cr_assert(!strncmp(text, expect, strlen(expect)), "argv: %s", text);
	cr_assert_eq(count_scripts(tmp), 0);
	free(text);
	free(env);
	env = t_strdup_printf("TMPDIR='%s' GPUP_FAKE_PS_EXIT=42", tmp);
	cr_assert_eq(gpup_in_dir(&r, env, "hostconf --vm v --revert --apply"), 1);
	cr_assert(strstr(r.err, "exit status 42"), "%s", r.err);
	t_run_free(&r);
	free(expect);
	free(env);
	free(log_argv);
	free(tmp);
}

Test(hostconf_cli, apply_without_powershell)
{
	struct t_run r;

	cr_assert_eq(gpup_in_dir(&r, "", "hostconf --vm v --revert --apply"), 1);
	cr_assert(strstr(r.err, "no PowerShell found"), "%s", r.err);
	t_run_free(&r);
}

/* powershell.exe without wslpath (not WSL): an error naming wslpath. */
Test(hostconf_cli, apply_without_wslpath)
{
	struct t_run r;

	install_fake("fake-powershell.sh", "powershell.exe");
	cr_assert_eq(gpup_in_dir(&r, "", "hostconf --vm v --revert --apply"), 1);
	cr_assert(strstr(r.err, "cannot run wslpath: No such file or directory"), "%s", r.err);
	cr_assert_eq(count_scripts(dir), 0);
	t_run_free(&r);
}

/* -o is checked before anything is written (plan_opts_prepare): a missing
 * directory, a directory as target, a file as parent directory. */
Test(hostconf_cli, output_target_checked)
{
	struct t_run r;
	char *f = hc_data("howto-two-gpus.txt");
	char *file = t_strdup_printf("%s/file", dir);

	cr_assert_eq(t_write_file(file, "x", 1), 0);
	cr_assert_eq(t_gpup(&r, "hostconf --vm v --gpu 10de --from '%s' -o '%s/none/x.ps1'", f, dir), 1);
	cr_assert(strstr(r.err, "/none"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "hostconf --vm v --gpu 10de --from '%s' -o '%s'", f, dir), 2);
	cr_assert(strstr(r.err, "is a directory"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "hostconf --vm v --gpu 10de --from '%s' -o '%s/x.ps1'", f, file), 1);
	cr_assert(strstr(r.err, "not a directory"), "%s", r.err);
	t_run_free(&r);
	/* Nothing was created: the directory holds only "file". */
	cr_assert_eq(t_run(&r, "ls -A '%s'", dir), 0);
	cr_assert_str_eq(r.out, "file\n");
	t_run_free(&r);
	free(file);
	free(f);
}

/* prepare --revert would inject a driver and remove the partition at once. */
Test(hostconf_cli, prepare_revert_is_usage_error)
{
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "prepare '%s/g.vhdx' --driverstore '%s' --vm v --revert", dir, dir), 2);
	cr_assert(strstr(r.err, "--revert"), "%s", r.err);
	t_run_free(&r);
}

/* Without a GPU list (no --from, no PowerShell): the script still comes,
 * the JSON gives the shares and no values. */
Test(hostconf_cli, json_without_gpu_list)
{
	struct t_run r;

	cr_assert_eq(gpup_in_dir(&r, "", "hostconf --vm v --gpu 10de --share 50% -o h.ps1 --json"), 0,
		     "%s", r.err);
	cr_assert(strstr(r.err, "the script chooses GPU '10de' and computes the quotas on the host"),
		  "%s", r.err);
	{
		json_object *root = json_tokener_parse(r.out), *q, *vram, *v;

		cr_assert_not_null(root, "%s", r.out);
		cr_assert(json_object_object_get_ex(root, "quota", &q));
		cr_assert(json_object_object_get_ex(q, "VRAM", &vram));
		cr_assert(json_object_object_get_ex(vram, "share", &v));
		cr_assert_str_eq(json_object_get_string(v), "50%");
		cr_assert(json_object_object_get_ex(vram, "min", &v));
		cr_assert_null(v);
		cr_assert(json_object_object_get_ex(root, "instance_path", &v));
		cr_assert_null(v);
		json_object_put(root);
	}
	t_run_free(&r);
}

/* A live query that fails (a pwsh without Hyper-V) does not stop a script
 * that is only written: a warning says why; with --apply it is an error. */
Test(hostconf_cli, failed_live_query_leaves_quotas_to_host)
{
	struct t_run r;
	const char *env = "GPUP_FAKE_PS_EXIT=1 GPUP_FAKE_PS_STDERR='no Hyper-V module'";

	install_fake("fake-powershell.sh", "pwsh");
	cr_assert_eq(gpup_in_dir(&r, env, "hostconf --vm v --gpu auto --share 50%"), 0, "%s", r.err);
	cr_assert(strstr(r.err, "warning: pwsh: Get-VMHostPartitionableGpu failed (exit status 1): "
				"no Hyper-V module"), "%s", r.err);
	cr_assert(strstr(r.err, "the script chooses GPU 'auto'"), "%s", r.err);
	cr_assert(strstr(r.out, "    [string] $Gpu = 'auto',\n"), "%s", r.out);
	t_run_free(&r);
	cr_assert_eq(gpup_in_dir(&r, env, "hostconf --vm v --gpu auto --apply"), 1);
	cr_assert(strstr(r.err, "no Hyper-V module"), "%s", r.err);
	cr_assert_null(strstr(r.err, "warning"), "%s", r.err);
	t_run_free(&r);
}

/* --surveydda with Microsoft's K520 sample (176 MB) and with a survey whose
 * only device is an AMD security processor: High MMIO stays >= 8 GiB and a
 * warning says what was counted. */
Test(hostconf_cli, surveydda_small_or_non_gpu_keeps_high_mmio)
{
	char *f = hc_data("howto-two-gpus.txt");
	char *k520 = hc_data("surveydda-k520.txt"), *psp = hc_data("surveydda-amd-psp.txt");
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --surveydda '%s'", f, k520),
		     0, "%s", r.err);
	cr_assert(strstr(r.out, "[UInt64] $HighMemoryMappedIoSpace = '8589934592',"), "%s", r.out);
	cr_assert(strstr(r.err, "warning: SurveyDDA: counted NVIDIA GRID K520 176 MB (not counted: "
				"nothing) + 512 MiB buffer = 1 GiB; High MMIO raised to 8 GiB"),
		  "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --surveydda '%s'", f, psp),
		     0, "%s", r.err);
	cr_assert(strstr(r.out, "[UInt64] $HighMemoryMappedIoSpace = '34359738368',"), "%s", r.out);
	cr_assert(strstr(r.err, "warning: SurveyDDA lists no display device (not counted: AMD PSP "
				"3.0 Device 2 MB); High MMIO stays at the 32 GiB default"), "%s", r.err);
	t_run_free(&r);
	/* A size the user forces stands. */
	cr_assert_eq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --surveydda '%s' "
				"--high-mmio 1G", f, k520), 0, "%s", r.err);
	cr_assert(strstr(r.out, "[UInt64] $HighMemoryMappedIoSpace = '1073741824',"), "%s", r.out);
	cr_assert_null(strstr(r.err, "SurveyDDA"), "%s", r.err);
	t_run_free(&r);
	free(f);
	free(k520);
	free(psp);
}

/* `gpus --from` on Microsoft's published sample (separators, a stray blank
 * line) lists the GPU; a record cut short names the blank line. */
Test(hostconf_cli, gpus_from_microsoft_sample)
{
	char *f = hc_data("ms-get-vmpartitionablegpu.txt");
	char *cut = t_strdup_printf("%s/cut.txt", dir);
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "gpus --from '%s'", f), 0, "%s", r.err);
	cr_assert(strstr(r.out, "VEN_10DE&DEV_1C02"), "%s", r.out);
	cr_assert(strstr(r.out, "VRAM               1000000000"), "%s", r.out);
	t_run_free(&r);
	t_run(&r, "head -n 15 '%s' > '%s' && echo >> '%s' && cat '%s' >> '%s'", f, cut, cut, f, cut);
	cr_assert_eq(r.status, 0);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "gpus --from '%s'", cut), 1);
	cr_assert(strstr(r.err, "cut.txt:16: the GPU record of line 1 ends at this blank line "
				"without TotalDecode"), "%s", r.err);
	t_run_free(&r);
	free(cut);
	free(f);
}

/* Text from the files (the list's ComputerName, pci.ids names) reaches the
 * terminal with its control characters escaped: ESC [31m, BEL and the C1
 * CSI (U+009B) are shown, not sent; an instance path holding one is
 * refused, naming file:line. */
Test(hostconf_cli, gpus_control_characters_escaped_or_refused)
{
	char *f = hc_data("howto-two-gpus.txt");
	char *evil = t_strdup_printf("%s/evil.txt", dir), *ids = t_strdup_printf("%s/pci.ids", dir);
	char *bad = t_strdup_printf("%s/badpath.txt", dir);
	static const char pci[] = "10de  NVIDIA Corporation\n\t2860  RTX\x1b[31m 4070\x07\xc2\x9b" "1m\n";
	struct t_run r;

	cr_assert_eq(t_write_file(ids, pci, sizeof(pci) - 1), 0);
	t_run(&r, "sed 's/MYHOST/MY\\x1b[31mHOST\\x07/' '%s' > '%s' && "
		  "sed '2s/VEN_10DE/VEN_\\x1b]0;pwned\\x07/' '%s' > '%s'", f, evil, f, bad);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "gpus --from '%s' --pci-ids '%s'", evil, ids), 0, "%s", r.err);
	cr_assert_null(memchr(r.out, 0x1b, r.out_len), "%s", r.out);
	cr_assert_null(memchr(r.out, 0x07, r.out_len), "%s", r.out);
	cr_assert_null(strstr(r.out, "\xc2\x9b"), "%s", r.out);
	cr_assert(strstr(r.out, "host           MY\\x1b[31mHOST\\x07\n"), "%s", r.out);
	cr_assert(strstr(r.out, "RTX\\x1b[31m 4070\\x07\\u009b1m"), "%s", r.out);
	t_run_free(&r);
	/* --json keeps the text as it is (JSON escapes it). */
	cr_assert_eq(t_gpup(&r, "gpus --from '%s' --json", evil), 0, "%s", r.err);
	cr_assert(strstr(r.out, "MY\\u001b[31mHOST\\u0007"), "%s", r.out);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "gpus --from '%s'", bad), 1);
	cr_assert(strstr(r.err, "badpath.txt:2: the instance path (Name) holds control "
				"character 0x1b"), "%s", r.err);
	cr_assert_eq(r.out_len, 0, "%s", r.out);
	t_run_free(&r);
	/* hostconf, which writes the script, refuses it too. */
	cr_assert_neq(t_gpup(&r, "hostconf --from '%s' --vm v --gpu 8086:a7a0", bad), 0);
	cr_assert(strstr(r.err, "badpath.txt:2:"), "%s", r.err);
	cr_assert_null(memchr(r.out, 0x1b, r.out_len));
	t_run_free(&r);
	free(bad);
	free(ids);
	free(evil);
	free(f);
}
