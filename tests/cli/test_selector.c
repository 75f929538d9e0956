/*
 * test_selector.c — one --gpu syntax for every command that takes it
 * (issue 21): prepare, drivers, hostconf, verify, doctor and bundle create
 * accept the same forms (gpus.h: pci.ids style, VEN_/DEV_, the \\?\PCI#
 * Name Hyper-V lists, a device instance path, a name substring), list the
 * candidates of an ambiguous one (exit 2), and refuse a control character
 * before they open anything (exit 2).
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(selector, .init = setup, .fini = teardown, .timeout = 300);

/* Shell-quoted (single quotes) forms of the RTX 4070 of the fixtures. */
static const char *const forms[] = {
	"10de:2860",
	"VEN_10DE&DEV_2860",
	"PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1",
	"PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1\\4&2a7e4f6b&0&0008",
	"\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008#"
	"{064092b3-625e-43bf-9eb5-dc845897dd59}",
	"4070",
};

/* The package `drivers --json` resolves for @gpu (malloc'ed). */
static char *resolved_package(const char *st, const char *gpu)
{
	struct json_object *o, *pkg, *folder;
	struct t_run r;
	char *out;

	t_gpup(&r, "drivers --driverstore '%s' --gpu '%s' --json -q", st, gpu);
	cr_assert_eq(r.status, 0, "drivers --gpu '%s': %s", gpu, r.err);
	o = json_tokener_parse(r.out);
	cr_assert_not_null(o, "%s", r.out);
	cr_assert(json_object_object_get_ex(o, "chosen", &pkg) &&
		  json_object_object_get_ex(pkg, "folder", &folder), "%s", r.out);
	out = strdup(json_object_get_string(folder));
	json_object_put(o);
	t_run_free(&r);
	return out;
}

Test(selector, every_command_takes_every_form)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *from = t_strdup_printf("%s/tests/hostconf/data/json-array.json", t_env("GPUP_SRC"));
	char *want = resolved_package(st, "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1");
	struct t_run r;

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		char *got = resolved_package(st, forms[i]);
		char *bundle = t_strdup_printf("%s/b%zu.tar.gz", dir, i);

		cr_assert_str_eq(got, want, "drivers --gpu '%s'", forms[i]);
		free(got);
		t_gpup(&r, "hostconf --from '%s' --vm v --gpu '%s' -q", from, forms[i]);
		cr_assert_eq(r.status, 0, "hostconf --gpu '%s': %s", forms[i], r.err);
		cr_assert(strstr(r.out, "VEN_10DE&DEV_2860"), "hostconf chose the RTX: %s", forms[i]);
		t_run_free(&r);
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '%s' --vm v --from '%s' -o '%s/h.ps1' "
			   "-n -q", img, st, forms[i], from, dir);
		cr_assert_eq(r.status, 0, "prepare -n --gpu '%s': %s", forms[i], r.err);
		t_run_free(&r);
		t_gpup(&r, "bundle create --driverstore '%s' --gpu '%s' -o '%s' -q", st, forms[i],
		       bundle);
		cr_assert_eq(r.status, 0, "bundle create --gpu '%s': %s", forms[i], r.err);
		t_run_free(&r);
		/* Nothing injected yet: verify finds the files missing (4), doctor
		 * reports findings -- neither refuses the selector (2). */
		t_gpup(&r, "verify '%s' --bundle '%s' --gpu '%s' -q", img, bundle, forms[i]);
		cr_assert_eq(r.status, 4, "verify --gpu '%s': %d %s", forms[i], r.status, r.err);
		t_run_free(&r);
		t_gpup(&r, "doctor '%s' --driverstore '%s' --gpu '%s' -q", img, st, forms[i]);
		cr_assert_neq(r.status, 2, "doctor --gpu '%s': %s", forms[i], r.err);
		t_run_free(&r);
		free(bundle);
	}
	free(want);
	free(img);
	free(st);
	free(from);
}

/* "RTX" names two devices in the store and GeForce both its GPUs' drivers:
 * exit 2 with each candidate and its name. */
Test(selector, an_ambiguous_selector_lists_the_candidates)
{
	char *st = t_fixture("mkstore.sh", "");
	char *from = t_strdup_printf("%s/tests/hostconf/data/json-array.json", t_env("GPUP_SRC"));
	struct t_run r;

	t_gpup(&r, "drivers --driverstore '%s' --gpu rtx -q", st);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "VEN_10DE&DEV_2860 (NVIDIA GeForce RTX 4070") &&
		  strstr(r.err, "VEN_10DE&DEV_2684 (NVIDIA GeForce RTX 4090)"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "hostconf --from '%s' --vm v --gpu a", from);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "matches 2 GPUs") && strstr(r.err, "Iris Xe"), "%s", r.err);
	t_run_free(&r);
	free(st);
	free(from);
}

/* ESC and BEL in --gpu: refused (exit 2) by every command before it reads
 * anything (the paths do not exist), and never echoed raw. */
Test(selector, control_characters_are_refused)
{
	static const char *const cmds[] = {
		"prepare /nonexistent/g.vhdx --driverstore /nonexistent",
		"verify /nonexistent/g.vhdx --driverstore /nonexistent",
		"doctor /nonexistent/g.vhdx --driverstore /nonexistent",
		"drivers --driverstore /nonexistent",
		"bundle create --driverstore /nonexistent -o /nonexistent/b.tar",
		"hostconf --vm v --from /nonexistent",
	};
	struct t_run r;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		t_gpup(&r, "%s --gpu \"$(printf 'RTX\\033]0;x\\007')\"", cmds[i]);
		cr_assert_eq(r.status, 2, "%s: %d %s", cmds[i], r.status, r.err);
		cr_assert(strstr(r.err, "control character \\x1b"), "%s: %s", cmds[i], r.err);
		cr_assert_null(strchr(r.err, '\033'), "%s: ESC reached the terminal", cmds[i]);
		t_run_free(&r);
	}
}
