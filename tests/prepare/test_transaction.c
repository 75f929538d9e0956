/*
 * test_transaction.c — `gpup prepare` plans before it writes (issue 17):
 * everything that can be known (the --into-child target, the guest, the
 * driver, the room it needs, the host configuration's inputs and outputs) is
 * checked before the first byte reaches an image, `-n` is exactly that
 * check, and a failure with --json still prints one JSON object saying
 * whether the image changed. "Unchanged" is always checked the hard way:
 * SHA-256 of every file involved, before and after.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define NV_GPU_HOST "PCI\\VEN_10DE&DEV_2860"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(transaction, .init = setup, .fini = teardown, .timeout = 300);

static char *store(void) { return t_fixture("mkstore.sh", ""); }

static char *sha(const char *path)
{
	char hex[65];

	cr_assert_eq(t_sha256_file(path, hex), 0, "cannot hash %s", path);
	return strdup(hex);
}

static void assert_sha(const char *path, const char *want, const char *what)
{
	char *now = sha(path);

	cr_assert_str_eq(now, want, "%s: %s changed", what, path);
	free(now);
}

/* The one JSON object a failed `prepare --json` prints: its error code and
 * image_changed. */
static void assert_json_failure(const struct t_run *r, const char *code, bool changed,
				const char *what)
{
	struct json_object *o = json_tokener_parse(r->out), *e, *v;

	cr_assert_not_null(o, "%s: stdout is not one JSON object: '%s'", what, r->out);
	cr_assert(json_object_object_get_ex(o, "error", &e), "%s: no error: %s", what, r->out);
	cr_assert(json_object_object_get_ex(e, "code", &v));
	if (code)
		cr_assert_str_eq(json_object_get_string(v), code, "%s: %s", what, r->out);
	cr_assert(json_object_object_get_ex(e, "message", &v));
	cr_assert_gt(strlen(json_object_get_string(v)), 0);
	cr_assert(json_object_object_get_ex(e, "exit_status", &v));
	cr_assert_eq(json_object_get_int(v), r->status, "%s: %s", what, r->out);
	cr_assert(json_object_object_get_ex(o, "image_changed", &v), "%s: %s", what, r->out);
	cr_assert_eq(json_object_get_boolean(v), changed, "%s: %s", what, r->out);
	json_object_put(o);
}

/* ---- --into-child ------------------------------------------------------ */

/*
 * An existing CHILD is reused only when it is IMAGE's own differencing
 * child. IMAGE itself, an unrelated VHDX, a child of another image and a
 * file that is not a VHDX are refused (exit 1, the reason named), and both
 * files stay byte-identical; the old code wrote the driver into them.
 */
Test(transaction, into_child_refuses_what_is_not_the_images_own_child)
{
	char *base = t_guest_copy(dir, "--size 2G --vhdx", "base.vhdx");
	char *other = t_guest_copy(dir, "--size 2G --vhdx", "other.vhdx");
	char *foreign = t_strdup_printf("%s/foreign.avhdx", dir);
	char *stranger = t_strdup_printf("%s/stranger.vhdx", dir);
	char *text = t_strdup_printf("%s/notes.txt", dir);
	char *st = store(), *base_sha = sha(base);
	const char *targets[] = { base, other, foreign, text };
	const char *reasons[] = { "IMAGE itself", "not a differencing image", "not a child of",
				  "not a VHDX" };
	struct t_run r;

	/* A copy of the same golden image shares its DataWriteGuid (Hyper-V
	 * would take its children too): the foreign child's parent is a
	 * different image. */
	cr_assert_eq(t_gpup(&r, "create '%s' --size 2G", stranger), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "create '%s' --parent '%s'", foreign, stranger), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_write_file(text, "keep me\n", 8), 0);
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		char *before = sha(targets[i]);

		for (int json = 0; json < 2; json++) {
			t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --into-child '%s'%s",
			       base, st, targets[i], json ? " --json" : "");
			cr_assert_eq(r.status, 1, "%s: exit %d: %s", targets[i], r.status, r.err);
			cr_assert(strstr(r.err, reasons[i]), "%s: %s", targets[i], r.err);
			cr_assert(strstr(r.err, strrchr(targets[i], '/') + 1), "%s", r.err);
			if (json)
				assert_json_failure(&r, "exists", false, targets[i]);
			t_run_free(&r);
			/* -n refuses it the same way. */
			t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q -n --into-child '%s'",
			       base, st, targets[i]);
			cr_assert_eq(r.status, 1, "-n %s: exit %d: %s", targets[i], r.status, r.err);
			t_run_free(&r);
		}
		assert_sha(targets[i], before, "a refused --into-child target");
		assert_sha(base, base_sha, "IMAGE of a refused --into-child");
		free(before);
	}
	free(base);
	free(other);
	free(foreign);
	free(stranger);
	free(text);
	free(st);
	free(base_sha);
}

/* IMAGE's own child is reused: the rerun completes it and changes nothing
 * the second time; IMAGE stays byte-identical throughout. */
Test(transaction, into_child_reuses_the_images_own_child)
{
	char *base = t_guest_copy(dir, "--size 2G --vhdx", "base.vhdx");
	char *child = t_strdup_printf("%s/vm1.avhdx", dir);
	char *st = store(), *base_sha = sha(base), *child_sha;
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --into-child '%s'", base,
	       st, child);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	child_sha = sha(child);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' --into-child '%s' --json", base,
	       st, child);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"changed\":false"), "%s", r.out);
	t_run_free(&r);
	assert_sha(child, child_sha, "a rerun into the same child");
	assert_sha(base, base_sha, "IMAGE");
	free(base);
	free(child);
	free(st);
	free(base_sha);
	free(child_sha);
}

/*
 * A commit that fails after it created the child (a bundle whose bytes
 * turn out wrong while streaming) removes the child again: the directory
 * is as before, IMAGE untouched, and --json says image_changed: false.
 */
Test(transaction, failed_commit_removes_the_child_it_created)
{
	char *base = t_guest_copy(dir, "--size 2G --vhdx", "base.vhdx");
	char *child = t_strdup_printf("%s/vm1.avhdx", dir);
	char *good = t_strdup_printf("%s/nv.tar.gz", dir);
	char *bad = t_strdup_printf("%s/bad.tar.gz", dir), *st = store(), *base_sha = sha(base);
	struct stat sb;
	struct t_run r;

	t_gpup(&r, "bundle create --driverstore '%s' --gpu '" NV_GPU "' -o '%s'", st, good);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	/* One byte of the kernel driver's data, past its tar header. */
	t_tamper_bundle(good, bad);
	t_gpup(&r, "prepare '%s' --bundle '%s' -q --into-child '%s' --json", base, bad, child);
	cr_assert_neq(r.status, 0, "a tampered bundle went in: %s", r.out);
	assert_json_failure(&r, NULL, false, "tampered bundle into a new child");
	t_run_free(&r);
	cr_assert_neq(stat(child, &sb), 0, "the failed run left its child behind");
	assert_sha(base, base_sha, "IMAGE");
	free(base);
	free(child);
	free(good);
	free(bad);
	free(st);
	free(base_sha);
}

/* ---- host configuration inputs ----------------------------------------- */

/*
 * --vm: the GPU list, the SurveyDDA output, the -o target and, for --apply,
 * a PowerShell are all checked before the guest is touched. Each bad one
 * fails the real run and -n alike, with one JSON object under --json, and
 * the image byte-identical (the old code wrote the guest first).
 */
Test(transaction, host_inputs_are_checked_before_the_guest)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = store(), *img_sha = sha(img);
	char *from = t_strdup_printf("%s/tests/hostconf/data/json-array.json", t_env("GPUP_SRC"));
	char *home = t_strdup_printf("%s/home", dir);
	struct {
		const char *what;
		char *args;
		const char *env;
	} cases[] = {
		{ "missing --from", t_strdup_printf("--from '%s/nope.json' -o '%s/h.ps1'", dir, dir), "" },
		{ "missing --surveydda",
		  t_strdup_printf("--from '%s' --surveydda '%s/nope.txt' -o '%s/h.ps1'", from, dir, dir),
		  "" },
		{ "-o in a missing directory", t_strdup_printf("--from '%s' -o '%s/no/h.ps1'", from, dir),
		  "" },
		{ "-o naming a directory", t_strdup_printf("--from '%s' -o '%s'", from, dir), "" },
		{ "--apply without PowerShell", t_strdup_printf("--from '%s' --apply", from),
		  "PATH=/usr/bin:/bin HOME=" },
	};

	mkdir(home, 0755);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int real = -1;

		for (int dry = 0; dry < 2; dry++) {
			struct t_run r;

			t_run(&r, "%s%s '%s' prepare '%s' --driverstore '%s' --gpu '" NV_GPU_HOST "' -q "
				  "--vm 'VM 1' %s --json%s",
			      cases[i].env, *cases[i].env ? home : "", t_env("GPUP_BIN"), img, st,
			      cases[i].args, dry ? " -n" : "");
			cr_assert_neq(r.status, 0, "%s%s: accepted: %s", cases[i].what,
				      dry ? " (-n)" : "", r.out);
			assert_json_failure(&r, NULL, false, cases[i].what);
			if (dry)
				cr_assert_eq(r.status, real, "%s: -n exits %d, the run %d", cases[i].what,
					     r.status, real);
			real = r.status;
			t_run_free(&r);
			assert_sha(img, img_sha, cases[i].what);
		}
		free(cases[i].args);
	}
	free(img);
	free(st);
	free(img_sha);
	free(from);
	free(home);
}

/* ---- -n is the plan ---------------------------------------------------- */

/* Guests the real run refuses are refused by -n with the same status
 * (the old -n opened read-only, refused nothing and exited 0). */
Test(transaction, dry_run_exits_as_the_real_run_would)
{
	char *old = t_guest_copy(dir, "--size 2G --vhdx --build 17763", "old.vhdx");
	char *hib = t_guest_copy(dir, "--size 2G --vhdx", "hib.vhdx");
	char *hf = t_strdup_printf("%s/hiberfil.sys", dir), *st = store();
	const char *imgs[] = { old, hib };
	const char *needles[] = { "19041", "hibernat" };
	struct t_run r;

	cr_assert_eq(t_write_file(hf, "HIBR\0\0\0\0", 8), 0);
	cr_assert_eq(t_gpup(&r, "put '%s' '%s' 'C:\\'", hib, hf), 0, "%s", r.err);
	t_run_free(&r);
	for (size_t i = 0; i < 2; i++) {
		char *before = sha(imgs[i]);

		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -n --json", imgs[i], st);
		cr_assert_eq(r.status, 3, "%s: -n exit %d: %s", imgs[i], r.status, r.err);
		cr_assert(strstr(r.err, needles[i]), "%s", r.err);
		assert_json_failure(&r, "refused", false, imgs[i]);
		t_run_free(&r);
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", imgs[i], st);
		cr_assert_eq(r.status, 3, "%s: exit %d: %s", imgs[i], r.status, r.err);
		t_run_free(&r);
		assert_sha(imgs[i], before, "a refused guest");
		free(before);
	}
	free(old);
	free(hib);
	free(hf);
	free(st);
}

/* `prepare -n --json` prints the plan: every file with its size and
 * action, whether a child would be made, the host script it would write. */
Test(transaction, dry_run_json_is_the_plan)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = store(), *img_sha = sha(img);
	char *from = t_strdup_printf("%s/tests/hostconf/data/json-array.json", t_env("GPUP_SRC"));
	struct json_object *o, *plan, *files, *v;
	struct t_run r;
	int64_t sum = 0;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU_HOST "' -n --json --vm VM1 "
		   "--from '%s' -o '%s/h.ps1' --into-child '%s/c.avhdx'",
	       img, st, from, dir, dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	o = json_tokener_parse(r.out);
	cr_assert_not_null(o, "%s", r.out);
	cr_assert(json_object_object_get_ex(o, "plan", &plan), "%s", r.out);
	cr_assert(json_object_object_get_ex(plan, "files", &files));
	cr_assert_gt(json_object_array_length(files), 10);
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		struct json_object *f = json_object_array_get_idx(files, i), *a, *s;

		cr_assert(json_object_object_get_ex(f, "action", &a));
		cr_assert_str_eq(json_object_get_string(a), "new");
		cr_assert(json_object_object_get_ex(f, "size", &s));
		sum += json_object_get_int64(s);
	}
	cr_assert(json_object_object_get_ex(plan, "space_need", &v));
	cr_assert_geq(json_object_get_int64(v), sum, "the plan needs less than the data: %s", r.out);
	cr_assert(json_object_object_get_ex(plan, "space_have", &v));
	cr_assert_gt(json_object_get_int64(v), 0);
	cr_assert(json_object_object_get_ex(plan, "create_child", &v));
	cr_assert(json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(plan, "host_script_text", &v));
	cr_assert(strstr(json_object_get_string(v), "Add-VMGpuPartitionAdapter"), "%s", r.out);
	cr_assert(json_object_object_get_ex(o, "image_changed", &v));
	cr_assert_not(json_object_get_boolean(v));
	cr_assert_gt(sum, 0);
	json_object_put(o);
	t_run_free(&r);
	assert_sha(img, img_sha, "-n");
	{
		char *script = t_strdup_printf("%s/h.ps1", dir), *child = t_strdup_printf("%s/c.avhdx", dir);

		cr_assert_neq(access(script, F_OK), 0, "-n wrote the script");
		cr_assert_neq(access(child, F_OK), 0, "-n made the child");
		free(script);
		free(child);
	}
	free(img);
	free(st);
	free(img_sha);
	free(from);
}

/* ---- rm plans too -------------------------------------------------------- */

/* `rm a b missing` used to remove a and b, then fail: every path is looked
 * up first, so it removes nothing, says which path is missing, and the
 * image stays byte-identical; --json says image_changed: false. */
Test(transaction, rm_removes_nothing_when_one_path_is_missing)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx"), *before = sha(img);
	struct t_run r;

	t_gpup(&r, "rm '%s' 'C:\\Windows\\System32\\ntoskrnl.exe' 'C:\\nope.txt' --json", img);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "nope.txt"), "%s", r.err);
	assert_json_failure(&r, "notfound", false, "rm with a missing path");
	t_run_free(&r);
	t_gpup(&r, "rm '%s' 'C:\\Windows' --json", img);
	cr_assert_eq(r.status, 1, "%s", r.err);
	assert_json_failure(&r, "isdir", false, "rm of a directory without -r");
	cr_assert(strstr(r.err, "-r"), "%s", r.err);
	t_run_free(&r);
	assert_sha(img, before, "a refused rm");
	t_gpup(&r, "ls '%s' 'C:\\Windows\\System32\\ntoskrnl.exe'", img);
	cr_assert_eq(r.status, 0, "ntoskrnl.exe is gone: %s", r.err);
	t_run_free(&r);
	free(img);
	free(before);
}

/* ---- Ctrl-C ------------------------------------------------------------- */

/*
 * SIGINT in the middle of the inject (gpup blocked on its progress pipe,
 * several files into the package): gpup stops at its next progress call,
 * rolls back like any failure, says in one line what state the image is
 * in and exits 130; the image passes qemu-img check and the same command
 * completes it. Before the commit began, an interrupt writes nothing.
 */
Test(transaction, ctrl_c_says_what_state_the_image_is_in)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx"), *st = store();
	char buf[65536], *err = NULL;
	size_t len = 0;
	int fd, status;
	struct t_run r;
	pid_t pid = t_prepare_blocked_on_progress(img, st, NV_GPU, &fd);
	ssize_t n;

	kill(pid, SIGINT);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		err = realloc(err, len + (size_t)n + 1);
		memcpy(err + len, buf, (size_t)n);
		len += (size_t)n;
		err[len] = '\0';
	}
	close(fd);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "gpup died of the signal instead of handling it");
	cr_assert_eq(WEXITSTATUS(status), 130, "exit %d", WEXITSTATUS(status));
	cr_assert_not_null(err);
	/* Every file of the interrupted run was new: the rollback is complete,
	 * and the volume is not left marked dirty. */
	cr_assert(strstr(err, "interrupted: what was written was rolled back"), "%s", err);
	cr_assert_eq(t_run(&r, "qemu-img check '%s'", img), 0, "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "inspect '%s' --json", img);
	cr_assert(strstr(r.out, "\"dirty\":false"), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "ls '%s' 'C:\\Windows\\System32\\HostDriverStore\\FileRepository'", img);
	cr_assert_null(strstr(r.out, "nv_dispi"), "a partial package was left: %s", r.out);
	t_run_free(&r);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
	cr_assert_eq(r.status, 0, "the rerun: %s", r.err);
	t_run_free(&r);
	free(err);
	free(img);
	free(st);
}

/* A usage error found after the options are read still answers --json
 * with one object (code "usage", exit 2, nothing written). */
Test(transaction, usage_errors_answer_json_too)
{
	struct t_run r;

	t_gpup(&r, "prepare '%s/g.vhdx' --json", dir);
	cr_assert_eq(r.status, 2, "%s", r.err);
	assert_json_failure(&r, "usage", false, "prepare without a source");
	t_run_free(&r);
	t_gpup(&r, "prepare '%s/g.vhdx' --driverstore '%s' --bundle x.tar.zst --json", dir, dir);
	cr_assert_eq(r.status, 2, "%s", r.err);
	assert_json_failure(&r, "usage", false, "two sources");
	t_run_free(&r);
}

/* -q is quiet: a successful prepare with host configuration prints nothing
 * on stderr (no plan warning, no "wrote FILE" hint, no progress). */
Test(transaction, quiet_is_quiet)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx"), *st = store();
	char *from = t_strdup_printf("%s/tests/hostconf/data/json-array.json", t_env("GPUP_SRC"));
	char *survey = t_strdup_printf("%s/tests/hostconf/data/surveydda.txt", t_env("GPUP_SRC"));
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU_HOST "' --vm VM1 --from '%s' "
		   "--surveydda '%s' --high-mmio 100G -o '%s/h.ps1' -q",
	       img, st, from, survey, dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.err, "", "-q printed on stderr");
	t_run_free(&r);
	free(img);
	free(st);
	free(from);
	free(survey);
}
