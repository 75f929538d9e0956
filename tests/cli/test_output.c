/*
 * test_output.c — what a pipeline reads on stderr (issue 21): with
 * --progress=json every line is one JSON event (progress, stage begin/end
 * for the inject and the verify, warning, note, error), never a plain
 * "gpup: warning:" line; -q prints nothing unless the command fails, and
 * leaves --json output as it was.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(output, .init = setup, .fini = teardown, .timeout = 300);

struct events {
	int lines, warnings, notes, errors;
	int begins[2], ends[2];  /* [0] inject, [1] verify */
	bool high_mmio;          /* a warning names the High MMIO size */
};

static const char *member(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* Every line of @err is one JSON event of @cmd with "schema"; count them. */
static void read_events(char *err, const char *cmd, struct events *ev)
{
	memset(ev, 0, sizeof(*ev));
	for (char *save, *line = strtok_r(err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct json_object *o = json_tokener_parse(line), *v;
		const char *name, *stage;

		cr_assert_not_null(o, "a stderr line that is not one JSON object: '%s'", line);
		cr_assert(json_object_object_get_ex(o, "schema", &v) && json_object_get_int(v) == 1,
			  "%s", line);
		cr_assert_str_eq(member(o, "command"), cmd, "%s", line);
		name = member(o, "event");
		cr_assert_not_null(name, "%s", line);
		stage = member(o, "stage");
		ev->lines++;
		if (!strcmp(name, "warning")) {
			cr_assert_not_null(member(o, "message"), "%s", line);
			ev->warnings++;
			ev->high_mmio |= strstr(member(o, "message"), "High MMIO 100 GiB is above 64 GiB") != NULL;
		}
		ev->notes += !strcmp(name, "note");
		ev->errors += !strcmp(name, "error");
		if (stage && (!strcmp(name, "begin") || !strcmp(name, "end"))) {
			int i = !strcmp(stage, "verify");

			if (!strcmp(name, "begin"))
				ev->begins[i]++;
			else
				ev->ends[i]++;
		}
		json_object_put(o);
	}
}

static char *data(const char *name)
{
	return t_strdup_printf("%s/tests/hostconf/data/%s", t_env("GPUP_SRC"), name);
}

/* prepare with a High-MMIO warning, a "wrote FILE" note, the inject and
 * the verify; then verify and a failing verify: all of it JSON events. */
Test(output, progress_json_makes_every_stderr_line_an_event)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = t_fixture("mkstore.sh", ""), *from = data("json-array.json");
	struct events ev;
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' --vm VM1 --from '%s' "
		   "--high-mmio 100G -o '%s/h.ps1' --progress=json",
	       img, st, from, dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	read_events(r.err, "prepare", &ev);
	cr_assert(ev.high_mmio, "the High-MMIO warning is an event");
	cr_assert_eq(ev.notes, 1, "'wrote h.ps1' is a note event");
	cr_assert(ev.begins[0] == 1 && ev.ends[0] == 1, "inject stage start and end");
	cr_assert(ev.begins[1] == 1 && ev.ends[1] == 1, "verify stage start and end");
	t_run_free(&r);

	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "' --progress=json", img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	read_events(r.err, "verify", &ev);
	cr_assert(ev.begins[1] == 1 && ev.ends[1] == 1, "gpup verify reports its progress");
	t_run_free(&r);

	/* A failure is an "error" event, not a "gpup: ..." line. */
	t_gpup(&r, "verify '%s/none.vhdx' --driverstore '%s' --progress=json", dir, st);
	cr_assert_eq(r.status, 1, "%s", r.err);
	read_events(r.err, "verify", &ev);
	cr_assert_eq(ev.errors, 1);
	t_run_free(&r);
	free(img);
	free(st);
	free(from);
}

/* -q: a successful command prints nothing on stderr -- hostconf's
 * High-MMIO warning and "wrote FILE", gpus' missing pci.ids, drivers'
 * notes -- and --json stays byte-identical. A failure still speaks. */
Test(output, quiet_prints_nothing_unless_the_command_fails)
{
	char *from = data("json-array.json"), *st = t_fixture("mkstore.sh", "");
	char *loud_json;
	struct t_run r;

	t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --high-mmio 96G -o '%s/a.ps1' -q", from,
	       dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_empty(r.err, "hostconf -q: '%s'", r.err);
	t_run_free(&r);

	t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --high-mmio 96G -o '%s/b.ps1' --json",
	       from, dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "High MMIO"), "without -q the warning shows: %s", r.err);
	loud_json = strdup(r.out);
	t_run_free(&r);
	t_gpup(&r, "hostconf --from '%s' --vm v --gpu 10de --high-mmio 96G -o '%s/b.ps1' --json -q",
	       from, dir);
	cr_assert_str_empty(r.err, "hostconf --json -q: '%s'", r.err);
	cr_assert_str_eq(r.out, loud_json, "-q changes no --json output");
	t_run_free(&r);

	t_gpup(&r, "gpus --from '%s' --pci-ids '%s/none.ids' -q", from, dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_empty(r.err, "gpus -q: '%s'", r.err);
	t_run_free(&r);

	t_gpup(&r, "drivers --driverstore '%s' -q", st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_empty(r.err, "drivers -q: '%s'", r.err);
	t_run_free(&r);

	t_gpup(&r, "hostconf --from '%s/none.json' --vm v --gpu 10de -q", dir);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "none.json"), "a failure is still reported under -q: '%s'", r.err);
	t_run_free(&r);
	free(loud_json);
	free(from);
	free(st);
}

/* Bash completion offers --progress's real values (it offered only json). */
Test(output, progress_completion_offers_its_values)
{
	struct t_run r;

	t_run(&r, "bash -c '. \"%s/tools/gpup.bash-completion\"; COMP_WORDS=(gpup prepare --progress \"\"); "
		  "COMP_CWORD=3; _gpup; echo \"${COMPREPLY[*]}\"'", t_env("GPUP_SRC"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "json tty none\n");
	t_run_free(&r);
}

/* The fleet commands (scan, prepare IMAGE...) print through the same
 * channel: -q leaves stderr empty on success, --progress=json makes every
 * line an event -- the workers' lines and the parent's own (an image that
 * cannot be scanned, an empty directory); scan's --gpu is the shared
 * selector. */
Test(output, fleet_commands_quiet_and_events)
{
	char *a = t_guest_copy(dir, "--size 2G --vhdx", "a.vhdx");
	char *b = t_guest_copy(dir, "--size 2G --vhdx", "b.vhdx");
	char *st = t_fixture("mkstore.sh", ""), *empty = t_strdup_printf("%s/empty", dir);
	struct events ev;
	struct t_run r;

	t_gpup(&r, "prepare '%s' '%s' --driverstore '%s' --gpu '" NV_GPU "' -j 2 -q --no-verify",
	       a, b, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_empty(r.err, "prepare IMAGE... -q: '%s'", r.err);
	t_run_free(&r);
	t_gpup(&r, "scan '%s' '%s' --driverstore '%s' --gpu 10de:2860 -q", a, b, st);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_empty(r.err, "scan -q: '%s'", r.err);
	t_run_free(&r);

	/* One image missing: the worker's failure is an "error" event. */
	t_gpup(&r, "prepare '%s' '%s/none.vhdx' --driverstore '%s' --gpu '" NV_GPU "' -j 2 "
		   "--progress=json", a, dir, st);
	cr_assert_eq(r.status, 1, "%s", r.err);
	read_events(r.err, "prepare", &ev);
	cr_assert_geq(ev.errors, 1, "%s", r.err);
	t_run_free(&r);

	/* The store's warning (a broken INF, shown once by the parent) and an
	 * image that cannot be read (refused) with events. */
	t_gpup(&r, "scan '%s' '%s/none.vhdx' --driverstore '%s' --gpu 10de:2860 --progress=json",
	       a, dir, st);
	cr_assert_eq(r.status, 3, "%s%s", r.out, r.err);
	read_events(r.err, "scan", &ev);
	cr_assert_geq(ev.warnings, 1, "%s", r.err);
	t_run_free(&r);
	t_run(&r, "mkdir '%s'", empty);
	t_run_free(&r);
	t_gpup(&r, "scan '%s' --driverstore '%s' --progress=json", empty, st);
	cr_assert_eq(r.status, 1, "%s", r.err);
	read_events(r.err, "scan", &ev);
	cr_assert_eq(ev.errors, 1);
	t_run_free(&r);
	/* scan's --gpu takes the one selector syntax, and refuses what it refuses. */
	t_gpup(&r, "scan '%s' --driverstore '%s' --gpu \"$(printf 'RTX\\033')\" -q", a, st);
	cr_assert_eq(r.status, 2, "%s", r.err);
	t_run_free(&r);
	free(empty);
	free(st);
	free(b);
	free(a);
}

/* A package folder whose name holds control characters is skipped with a
 * warning that shows them escaped; nothing raw reaches the terminal. */
Test(output, package_folder_with_control_characters_is_skipped)
{
	char *st = t_fixture("mkstore.sh", ""), *copy = t_strdup_printf("%s/st", dir);
	struct t_run r;

	t_run(&r, "cp -a '%s' '%s' && mkdir \"%s/Windows/System32/DriverStore/FileRepository/"
		  "$(printf 'ev\\033[31mil.inf_amd64_\\007')1\"", st, copy, copy);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "drivers --driverstore '%s'", copy);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "ev\\x1b[31mil.inf_amd64_\\x071: a package folder name holding "
				"control character 0x1b; package skipped"), "%s", r.err);
	cr_assert_null(memchr(r.err, 0x1b, strlen(r.err)), "%s", r.err);
	cr_assert_null(memchr(r.out, 0x1b, r.out_len), "%s", r.out);
	cr_assert_null(strchr(r.out, 0x07), "%s", r.out);
	t_run_free(&r);
	free(copy);
	free(st);
}

/* A guest file named with the C1 CSI (U+009B, which gpup put lets in as
 * Windows does; C0 controls it refuses): ls shows the name escaped. */
Test(output, ls_escapes_file_names)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	struct t_run r;

	t_run(&r, "cd '%s' && echo x > \"$(printf 'a\302\23331mb')\"", dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "put '%s' \"%s/$(printf 'a\302\23331mb')\" /", img, dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "ls '%s' /", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, " a\\u009b31mb\n"), "%s", r.out);
	cr_assert_null(strstr(r.out, "\xc2\x9b"), "%s", r.out);
	t_run_free(&r);
	free(img);
}
