/*
 * test_schema.c — the machine interface as a contract: every command's
 * --json output, on its success paths and its failure paths (missing file,
 * bad option, refused image, ...), validated against its schema in
 * doc/schema/ by an independent JSON Schema implementation
 * (python3-jsonschema, driven by tests/cli/validate_json.py). Validation is
 * strict: besides the schema itself, every object of every output must
 * reject an added unknown member, so a field added without its schema fails
 * here. With --progress=json every standard-error line must be one event
 * of doc/schema/events.schema.json.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* The interpreter that has jsonschema: Debian's python3-jsonschema is
 * installed for /usr/bin/python3 (tools/install-deps.sh), which need not
 * be the python3 first on PATH. */
static const char *schema_python(void)
{
	static const char *const cands[] = { "/usr/bin/python3", "python3" };
	struct t_run r;

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		int ok = t_run(&r, "%s -c 'import jsonschema' 2>/dev/null", cands[i]) == 0;

		t_run_free(&r);
		if (ok)
			return cands[i];
	}
	cr_skip_test("no Python with the jsonschema module (Debian: python3-jsonschema, "
		     "installed by tools/install-deps.sh)");
	return NULL;
}

static char *dir;

static void setup(void)
{
	dir = t_tmpdir();
}

static void teardown(void)
{
	t_rm_rf(dir);
	free(dir);
}

/* Validate @text with validate_json.py @opts against @schema. Returns the
 * validator's exit status; its report is in @v (caller frees). */
static int validate(struct t_run *v, const char *opts, const char *schema, const char *text)
{
	char *file = t_strdup_printf("%s/validate.in", dir);

	cr_assert_eq(t_write_file(file, text, strlen(text)), 0);
	t_run(v, "%s '%s/tests/cli/validate_json.py' %s '%s/doc/schema' %s '%s'", schema_python(),
	      t_env("GPUP_SRC"), opts, t_env("GPUP_SRC"), schema, file);
	free(file);
	return v->status;
}

/*
 * Run `gpup ARGS` (printf-style; ARGS carries --json), expect exit status
 * @want and one object on stdout valid against doc/schema/@schema, strictly,
 * whose error.exit_status (on failure) is the exit status -- or with
 * @lines, JSON Lines (scan, prepare with several images), each line valid.
 * Non-fatal, so a test reports every case that fails. Returns the run
 * (caller frees).
 */
static struct t_run vexpect_json(const char *schema, bool lines, int want, const char *fmt,
				 va_list ap)
{
	struct t_run r, v;
	char *args, *opts;

	cr_assert(vasprintf(&args, fmt, ap) >= 0);
	t_gpup(&r, "%s", args);
	cr_expect_eq(r.status, want, "gpup %s: exit %d, expected %d: %s", args, r.status, want,
		     r.err);
	opts = lines ? t_strdup_printf("--strict --lines")
		     : t_strdup_printf("--strict --exit %d", r.status);
	if (validate(&v, opts, schema, r.out) != 0)
		cr_expect_fail("gpup %s: not valid against %s.schema.json:\n%s%s\n--- stdout:\n%s",
			       args, schema, v.out, v.err, r.out);
	t_run_free(&v);
	free(opts);
	free(args);
	return r;
}

static struct t_run expect_json(const char *schema, int want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static struct t_run expect_json(const char *schema, int want, const char *fmt, ...)
{
	struct t_run r;
	va_list ap;

	va_start(ap, fmt);
	r = vexpect_json(schema, false, want, fmt, ap);
	va_end(ap);
	return r;
}

/* expect_json() when the test needs nothing more of the run. */
static void check_json(const char *schema, int want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void check_json(const char *schema, int want, const char *fmt, ...)
{
	struct t_run r;
	va_list ap;

	va_start(ap, fmt);
	r = vexpect_json(schema, false, want, fmt, ap);
	va_end(ap);
	t_run_free(&r);
}

/* check_json() of JSON Lines output. */
static void check_json_lines(const char *schema, int want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void check_json_lines(const char *schema, int want, const char *fmt, ...)
{
	struct t_run r;
	va_list ap;

	va_start(ap, fmt);
	r = vexpect_json(schema, true, want, fmt, ap);
	va_end(ap);
	t_run_free(&r);
}

/* Every line of @err_text must be an event of events.schema.json. */
static void expect_events(const char *what, const char *err_text)
{
	struct t_run v;

	if (validate(&v, "--lines", "events", err_text) != 0)
		cr_expect_fail("%s: standard error is not all --progress=json events:\n%s%s\n"
			       "--- stderr:\n%s", what, v.out, v.err, err_text);
	t_run_free(&v);
}

/* A fresh copy of the 2 GiB Windows 11 guest, as @name in the test's dir. */
static char *guest(const char *name)
{
	return t_guest_copy(dir, "--size 2G --vhdx", name);
}

/* A copy of the guest whose $Bitmap marks clusters of a live file free
 * (tests/fixtures/mkbitmaplie.sh): gpup refuses to write it. */
static char *bitmap_lie(void)
{
	char *fx = t_fixture("mkbitmaplie.sh", "");
	char *src = t_strdup_printf("%s/guest.vhdx", fx);
	char *img = t_strdup_printf("%s/lie.vhdx", dir);

	t_copy(src, img);
	free(src);
	free(fx);
	return img;
}

#define NV "'PCI\\VEN_10DE&DEV_2860'"

/* A bundle of the NVIDIA package of the generated DriverStore. */
static char *make_bundle(const char *st, const char *name)
{
	char *b = t_strdup_printf("%s/%s", dir, name);
	struct t_run r;

	t_gpup(&r, "bundle create --driverstore '%s' --gpu " NV " -o '%s' -q", st, b);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	return b;
}

/* The validator itself must be able to fail: a member the schema does not
 * name, nested or at the top, a wrong type, a second object, text. */
Test(schema, validator_rejects_what_the_schema_does_not_describe, .init = setup, .fini = teardown)
{
#define RM_HEAD "{\"schema\":1,\"command\":\"rm\","
#define RM_BODY "\"image\":\"g.vhdx\",\"removed\":[\"a\"],"
	static const char ok[] = RM_HEAD RM_BODY "\"changed\":true}";
	static const char *const bad[] = {
		RM_HEAD RM_BODY "\"changed\":true,\"extra\":1}",
		RM_HEAD RM_BODY "\"changed\":\"yes\"}",
		"{\"schema\":2,\"command\":\"rm\"," RM_BODY "\"changed\":true}",
		"{\"schema\":1,\"command\":\"put\"," RM_BODY "\"changed\":true}",
		RM_HEAD "\"error\":{\"code\":\"io\",\"exit_status\":1,\"message\":\"m\",\"errno\":5},"
			"\"image_changed\":false}",
		RM_HEAD "\"schema\":1," RM_BODY "\"changed\":true}",
		RM_HEAD RM_BODY "\"changed\":true}{}",
		"gpup: error\n",
		"",
	};
	struct t_run v;

	cr_assert_eq(validate(&v, "--strict --exit 0", "rm", ok), 0, "%s%s", v.out, v.err);
	t_run_free(&v);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(validate(&v, "--strict", "rm", bad[i]), 1, "accepted: %s (%s%s)", bad[i],
			     v.out, v.err);
		t_run_free(&v);
	}
	/* A nested object that lets an unknown member through is named. */
	cr_assert_eq(validate(&v, "--strict", "events",
			      "{\"schema\":1,\"command\":\"x\",\"event\":\"warning\",\"message\":\"m\"}"), 0,
		     "%s", v.out);
	t_run_free(&v);
	cr_assert_eq(validate(&v, "--exit 1", "rm",
			      "{\"schema\":1,\"command\":\"rm\",\"error\":{\"code\":\"io\",\"exit_status\":3,"
			      "\"message\":\"m\"},\"image_changed\":false}"), 1,
		     "exit_status 3 of a run that exited 1");
	t_run_free(&v);
	cr_assert_eq(validate(&v, "--lines", "events",
			      "{\"schema\":1,\"command\":\"put\",\"event\":\"warning\",\"message\":\"m\"}\n"
			      "gpup: warning: m\n"), 1, "a plain line among events");
	t_run_free(&v);
}

Test(schema, inspect_and_check, .init = setup, .fini = teardown, .timeout = 120)
{
	char *img = guest("g.vhdx");
	char *lie = bitmap_lie();
	char *txt = t_strdup_printf("%s/text.vhdx", dir);

	cr_assert_eq(t_write_file(txt, "not an image\n", 13), 0);
	check_json("inspect", 0, "inspect '%s' --json", img);
	check_json("inspect", 1, "inspect '%s/missing.vhdx' --json", dir);
	check_json("inspect", 1, "inspect '%s' --json --format vhdx", txt);
	check_json("inspect", 2, "inspect '%s' --json --backend nosuch", img);
	check_json("check", 0, "check '%s' --json", img);
	check_json("check", 2, "check '%s' --json", lie);
	check_json("check", 1, "check '%s/missing.vhdx' --json", dir);
	free(img);
	free(lie);
	free(txt);
}

Test(schema, create_and_disk_write, .init = setup, .fini = teardown, .timeout = 120)
{
	char *data = t_strdup_printf("%s/data", dir);
	struct t_run r;

	check_json("create", 0, "create '%s/a.vhdx' --size 1G --json", dir);
	check_json("create", 0, "create '%s/b.avhdx' --parent '%s/a.vhdx' --json", dir, dir);
	check_json("create", 1, "create '%s/a.vhdx' --size 1G --json", dir); /* exists */
	check_json("create", 2, "create '%s/c.vhdx' --size lots --json", dir);
	cr_assert_eq(t_write_file(data, "0123456789", 10), 0);
	r = expect_json("disk-write", 0, "disk write '%s/a.vhdx' --offset 512 -i '%s' --json", dir,
			data);
	cr_expect(strstr(r.out, "\"bytes\":"), "%s", r.out);
	t_run_free(&r);
	check_json("disk-write", 1, "disk write '%s/missing.vhdx' --offset 0 -i /dev/null --json", dir);
	check_json("disk-write", 2, "disk write '%s/a.vhdx' -i /dev/null --json", dir); /* no --offset */
	free(data);
}

Test(schema, file_commands, .init = setup, .fini = teardown, .timeout = 120)
{
	char *img = guest("g.vhdx");
	char *lie = bitmap_lie();
	char *src = t_strdup_printf("%s/note.txt", dir);

	cr_assert_eq(t_write_file(src, "hello", 5), 0);
	check_json("ls", 0, "ls '%s' 'C:\\Windows' --json", img);
	check_json("ls", 0, "ls '%s' 'C:\\Windows\\System32\\ntoskrnl.exe' --json", img);
	check_json("ls", 1, "ls '%s' 'C:\\NoSuchDir' --json", img);
	check_json("ls", 2, "ls '%s' --json --partition x", img);
	check_json("put", 0, "put '%s' '%s' 'C:\\Temp' --json", img, src);
	check_json("put", 1, "put '%s' '%s/missing.txt' 'C:\\Temp' --json", img, dir);
	/* $Bitmap offers clusters of a live file: refused */
	check_json("put", 3, "put '%s' '%s' 'C:\\Temp' --json", lie, src);
	check_json("put", 2, "put '%s' '%s' --json", img, src);
	check_json("rm", 0, "rm '%s' 'C:\\Temp\\note.txt' --json", img);
	check_json("rm", 1, "rm '%s' 'C:\\Windows' --json", img); /* a directory without -r */
	check_json("rm", 1, "rm '%s/missing.vhdx' 'C:\\x' --json", dir);
	free(img);
	free(lie);
	free(src);
}

Test(schema, drivers_gpus_and_hostconf, .init = setup, .fini = teardown, .timeout = 120)
{
	char *st = t_fixture("mkstore.sh", "");
	const char *data = t_env("GPUP_SRC");

	check_json("drivers", 0, "drivers --driverstore '%s' --json", st);
	check_json("drivers", 0, "drivers --driverstore '%s' --gpu " NV " --json", st);
	/* No package for that GPU: the listing, with why. */
	check_json("drivers", 1, "drivers --driverstore '%s' --gpu 'PCI\\VEN_1234&DEV_5678' --json",
		   st);
	check_json("drivers", 1, "drivers --driverstore '%s/missing' --json", dir);
	check_json("drivers", 2, "drivers --json");
	{
		char *b = make_bundle(st, "drivers.tar.zst");

		check_json("drivers", 0, "drivers --bundle '%s' --build 19045 --json", b);
		check_json("drivers", 1, "drivers --bundle '%s/missing.tar.zst' --json", dir);
		check_json("drivers", 2, "drivers --bundle '%s' --driverstore '%s' --json", b, st);
		free(b);
	}
	check_json("gpus", 0, "gpus --from '%s/tests/hostconf/data/json-array.json' --json", data);
	check_json("gpus", 0, "gpus --from '%s/tests/hostconf/data/win10-get-vmpartitionablegpu.txt'"
		   " --json", data);
	check_json("gpus", 1, "gpus --from '%s/missing.json' --json", dir);
	check_json("hostconf", 0, "hostconf --vm Demo --gpu 10de:2860 --share 50%% --from "
		   "'%s/tests/hostconf/data/howto-two-gpus.txt' -o '%s/h.ps1' --json", data, dir);
	check_json("hostconf", 0, "hostconf --vm Demo --revert -o '%s/r.ps1' --json", dir);
	check_json("hostconf", 1, "hostconf --vm Demo --gpu 10de:2860 --from '%s/missing.txt' "
		   "-o '%s/h.ps1' --json", dir, dir);
	/* --json needs -o or --apply */
	check_json("hostconf", 2, "hostconf --vm Demo --gpu 10de:2860 --from "
		   "'%s/tests/hostconf/data/howto-two-gpus.txt' --json", data);
	free(st);
}

Test(schema, bundle_commands, .init = setup, .fini = teardown, .timeout = 120)
{
	char *st = t_fixture("mkstore.sh", "");
	char *b = make_bundle(st, "nv.tar.gz");
	char *cut = t_strdup_printf("%s/cut.tar.gz", dir);
	struct t_run r;

	t_run(&r, "head -c 20000 '%s' > '%s'", b, cut);
	t_run_free(&r);
	check_json("bundle-list", 0, "bundle list '%s' --json", b);
	check_json("bundle-list", 1, "bundle list '%s/missing.tar.gz' --json", dir);
	check_json("bundle-list", 2, "bundle list '%s' --json --gpu auto", b);
	check_json("bundle-verify", 0, "bundle verify '%s' --json", b);
	check_json("bundle-verify", 1, "bundle verify '%s' --json", cut);
	/* create prints no JSON: --json is a usage error */
	check_json("failure", 2, "bundle create --driverstore '%s' -o '%s/x.tar.gz' --json", st, dir);
	free(st);
	free(b);
	free(cut);
}

Test(schema, prepare, .init = setup, .fini = teardown, .timeout = 240)
{
	char *img = guest("g.vhdx");
	char *old = t_guest_copy(dir, "--size 2G --vhdx --build 17763", "old.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	const char *data = t_env("GPUP_SRC");

	check_json("prepare", 0, "prepare '%s' --driverstore '%s' --gpu " NV " -n --json --vm Demo "
		   "--from '%s/tests/hostconf/data/howto-two-gpus.txt' -o '%s/h.ps1'", img, st, data,
		   dir);
	for (int i = 0; i < 2; i++) /* again: nothing changes */
		check_json("prepare", 0, "prepare '%s' --driverstore '%s' --gpu " NV " --json", img, st);
	check_json("prepare", 0, "prepare '%s' --driverstore '%s' --gpu " NV " --into-child "
		   "'%s/c.avhdx' --json", img, st, dir);
	/* Build 17763 has no GPU-P: refused. */
	check_json("prepare", 3, "prepare '%s' --driverstore '%s' --gpu " NV " --json", old, st);
	check_json("prepare", 1, "prepare '%s/missing.vhdx' --driverstore '%s' --gpu " NV " --json",
		   dir, st);
	check_json("prepare", 1, "prepare '%s' --driverstore '%s' --gpu 'PCI\\VEN_1234&DEV_5678' "
		   "--json", img, st);
	check_json("prepare", 2, "prepare '%s' --json", img); /* no driver source */
	check_json("prepare", 2, "prepare '%s' --driverstore '%s' --partition 0 --json", img, st);
	free(img);
	free(old);
	free(st);
}

Test(schema, verify_and_doctor, .init = setup, .fini = teardown, .timeout = 240)
{
	char *img = guest("g.vhdx");
	char *fresh = guest("fresh.vhdx");
	char *lie = bitmap_lie();
	char *st = t_fixture("mkstore.sh", "");
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu " NV " -q", img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	check_json("verify", 0, "verify '%s' --driverstore '%s' --gpu " NV " --json", img, st);
	check_json("doctor", 0, "doctor '%s' --driverstore '%s' --gpu " NV " --json", img, st);
	/* No driver in the guest, or a damaged image: findings. */
	check_json("doctor", 4, "doctor '%s' --driverstore '%s' --gpu " NV " --json", fresh, st);
	check_json("doctor", 4, "doctor '%s' --json", lie);
	/* Damaged: its files are not read. */
	check_json("verify", 4, "verify '%s' --driverstore '%s' --gpu " NV " --json", lie, st);
	t_gpup(&r, "rm '%s' 'C:\\Windows\\SysWOW64\\OpenCL.dll'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	/* A file missing. */
	check_json("verify", 4, "verify '%s' --driverstore '%s' --gpu " NV " --json", img, st);
	check_json("verify", 1, "verify '%s/missing.vhdx' --driverstore '%s' --json", dir, st);
	check_json("doctor", 1, "doctor '%s/missing.vhdx' --json", dir);
	check_json("verify", 2, "verify --json");
	check_json("doctor", 2, "doctor --json --no-such-option x.vhdx");
	free(img);
	free(fresh);
	free(lie);
	free(st);
}

/* scan (JSON Lines), prepare of several images (JSON Lines), unprepare. */
Test(schema, fleet_commands_and_unprepare, .init = setup, .fini = teardown, .timeout = 300)
{
	char *img = guest("g.vhdx");
	char *fresh = guest("fresh.vhdx");
	char *old = t_guest_copy(dir, "--size 2G --vhdx --build 17763", "old.vhdx");
	char *st = t_fixture("mkstore.sh", "");

	/* One prepared, one refused (build 17763): exit 3, a line each and
	 * the summary. */
	check_json_lines("prepare", 3, "prepare '%s' '%s' --driverstore '%s' --gpu " NV " --json", img,
			 old, st);
	/* current and missing: 5, some image needs prepare; refused: 3 */
	check_json_lines("scan", 5, "scan '%s' '%s' --driverstore '%s' --gpu " NV " --json", img,
			 fresh, st);
	check_json_lines("scan", 3, "scan '%s' --driverstore '%s' --gpu " NV " --json", old, st);
	check_json("scan", 2, "scan '%s' --json", img); /* no driver source */
	check_json("unprepare", 0, "unprepare '%s' -n --json", img);
	check_json("unprepare", 0, "unprepare '%s' --json", img);
	check_json("unprepare", 1, "unprepare '%s' --json", img); /* no record any more */
	check_json("unprepare", 2, "unprepare --json");
	free(img);
	free(fresh);
	free(old);
	free(st);
}

/* An option no command has, with --json: exit 2 and the usage failure on
 * stdout, for every command that prints JSON. */
Test(schema, unknown_option_is_a_json_usage_failure, .init = setup, .fini = teardown)
{
	static const struct {
		const char *schema, *args;
	} cases[] = {
		{ "inspect", "inspect x.vhdx" }, { "check", "check x.vhdx" },
		{ "create", "create x.vhdx --size 1G" }, { "disk-write", "disk write x.vhdx --offset 0" },
		{ "ls", "ls x.vhdx" }, { "put", "put x.vhdx a b" }, { "rm", "rm x.vhdx a" },
		{ "drivers", "drivers --driverstore d" }, { "bundle-list", "bundle list b.tar" },
		{ "bundle-verify", "bundle verify b.tar" }, { "gpus", "gpus" },
		{ "hostconf", "hostconf --vm v --gpu auto -o h.ps1" },
		{ "prepare", "prepare x.vhdx --driverstore d" },
		{ "verify", "verify x.vhdx --driverstore d" }, { "doctor", "doctor x.vhdx" },
		{ "scan", "scan x.vhdx --driverstore d" }, { "unprepare", "unprepare x.vhdx" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t_run r = expect_json(cases[i].schema, 2, "%s --json --no-such-option",
					     cases[i].args);

		cr_expect(strstr(r.out, "\"code\":\"usage\""), "%s: %s", cases[i].args, r.out);
		t_run_free(&r);
	}
}

/* A word that is no command: a pipeline asking for --json still gets one
 * failure object (command "gpup"). */
Test(schema, unknown_command_is_a_json_usage_failure, .init = setup, .fini = teardown)
{
	struct t_run r = expect_json("failure", 2, "frobnicate x.vhdx --json");

	cr_expect(strstr(r.out, "\"command\":\"gpup\""), "%s", r.out);
	cr_expect(strstr(r.err, "'frobnicate' is not a gpup command"), "%s", r.err);
	t_run_free(&r);
}

/* --progress=json: the progress events of the commands that report
 * progress validate, line by line (runs without warnings: a bundle holds
 * no broken package to warn about). */
Test(schema, progress_events_validate, .init = setup, .fini = teardown, .timeout = 240)
{
	char *img = guest("g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *b = make_bundle(st, "nv.tar.gz");
	char *src = t_strdup_printf("%s/note.txt", dir);
	struct t_run r;

	cr_assert_eq(t_write_file(src, "hello", 5), 0);
	t_gpup(&r, "put '%s' '%s' 'C:\\Temp' --progress=json", img, src);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.err, "\"event\":\"end\""), "no progress: %s", r.err);
	expect_events("put", r.err);
	t_run_free(&r);
	t_gpup(&r, "prepare '%s' --bundle '%s' --progress=json --json", img, b);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.err, "\"event\":\"file\""), "no progress: %s", r.err);
	expect_events("prepare", r.err);
	t_run_free(&r);
	t_gpup(&r, "bundle verify '%s' --progress=json", b);
	cr_expect_eq(r.status, 0, "%s", r.err);
	expect_events("bundle verify", r.err);
	t_run_free(&r);
	free(img);
	free(st);
	free(b);
	free(src);
}

/* --progress=json: warnings and notes are events too, so that standard
 * error stays one JSON object a line (the generated DriverStore holds a
 * broken package: every run that reads it warns; -o FILE notes the script
 * it wrote). */
Test(schema, warnings_are_events_under_progress_json, .init = setup, .fini = teardown,
     .timeout = 240)
{
	char *img = guest("g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	const char *data = t_env("GPUP_SRC");
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu " NV " --progress=json --vm Demo --from "
		   "'%s/tests/hostconf/data/howto-two-gpus.txt' -o '%s/h.ps1'", img, st, data, dir);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.err, "\"event\":\"warning\""), "no warning event: %s", r.err);
	expect_events("prepare", r.err);
	t_run_free(&r);
	t_gpup(&r, "bundle create --driverstore '%s' --gpu " NV " -o '%s/nv.tar.gz' --progress=json",
	       st, dir);
	cr_expect_eq(r.status, 0, "%s", r.err);
	expect_events("bundle create", r.err);
	t_run_free(&r);
	/* A failure is an error event. */
	t_gpup(&r, "prepare '%s/missing.vhdx' --driverstore '%s' --gpu " NV " --progress=json", dir,
	       st);
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(strstr(r.err, "\"event\":\"error\""), "no error event: %s", r.err);
	expect_events("prepare", r.err);
	t_run_free(&r);
	free(img);
	free(st);
}
