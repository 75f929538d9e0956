/*
 * cmd_unprepare.c — `gpup unprepare`: put the guest back as it was before
 * gpup, from the record prepare keeps in it (drivers/manifest.h): replaced
 * files restored from their backups, added files and directories removed,
 * then the record and the backups. A transaction like prepare: the plan
 * (read-only mount, the image locked for writing; every backup checked
 * by SHA-256, the room for the restored files) writes nothing; -n stops
 * there.
 *
 * JSON output (schema 1): { "schema", "command": "unprepare", "image",
 *   "dry_run", "changed", "image_changed",
 *   "restored": [paths], "removed": [paths], "removed_dirs": [paths],
 *   "hives": [hive files whose recorded registry values are put back],
 *   "lost": [folders gpup removed that were there before it: not restorable],
 *   "space_need", "space_have" (bytes) }
 * (with -n: what the run would do). A failure: cli_fail_json()'s object.
 * A guest without a record (gpup never prepared it, or it was undone):
 * exit 1, error code "notfound", the image byte-identical.
 */
#include <getopt.h>
#include <string.h>

#include "manifest.h"
#include "runlog.h"
#include "session.h"

enum { OPT_DRY_RUN = 1 };

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpup unprepare IMAGE [-n|--dry-run] [--json] [-q]\n\n"
		"Undo what 'gpup prepare' did to the Windows guest on IMAGE, from the record\n"
		"it keeps in the guest (C:\\Windows\\System32\\gpup\\manifest.json): files it\n"
		"replaced are restored from their backups, files and directories it added are\n"
		"removed, then the record and the backups. Fix-ups are undone likewise.\n"
		"Every backup is checked before anything is written.\n\n"
		"  -n, --dry-run       show what would be restored and removed; write nothing\n");
	session_help(f, false);
	fprintf(f, "\nExit status: 0 ok, 1 error (also: no gpup record in the guest; the image\n"
		   "is left unchanged), 2 usage, 3 refused (unsafe guest state, locked image).\n");
}

struct unprepare {
	struct session s;
	bool dry_run;
	struct gp_undo_plan plan;
	bool committing;
};

static void add_paths(struct json_object *o, const char *key, const struct gp_undo_plan *p,
		      enum gp_undo_action a)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < p->n_steps; i++)
		if (p->steps[i].action == a)
			json_object_array_add(arr, json_object_new_string(p->steps[i].path));
	json_object_object_add(o, key, arr);
}

static void report(const struct unprepare *u)
{
	const struct gp_undo_plan *p = &u->plan;

	if (u->s.json) {
		struct json_object *o = session_json_new("unprepare"), *lost = json_object_new_array();

		json_object_object_add(o, "image", json_object_new_string(u->s.image));
		json_object_object_add(o, "dry_run", json_object_new_boolean(u->dry_run));
		json_object_object_add(o, "changed", json_object_new_boolean(true));
		json_object_object_add(o, "image_changed", json_object_new_boolean(u->committing));
		add_paths(o, "restored", p, GP_UNDO_RESTORE);
		add_paths(o, "removed", p, GP_UNDO_REMOVE_FILE);
		add_paths(o, "removed_dirs", p, GP_UNDO_REMOVE_DIR);
		add_paths(o, "hives", p, GP_UNDO_HIVE);
		for (size_t i = 0; i < p->m.n_lost; i++)
			json_object_array_add(lost, json_object_new_string(p->m.lost[i]));
		json_object_object_add(o, "lost", lost);
		json_object_object_add(o, "space_need", json_object_new_int64((int64_t)p->space_need));
		json_object_object_add(o, "space_have", json_object_new_int64((int64_t)p->space_have));
		session_print_json(o);
		return;
	}
	for (size_t i = 0; i < p->n_steps; i++) {
		const char *verb[2][4] = {
			{ "restored: ", "removed:  ", "removed:  ", "registry: " },
			{ "would restore:", "would remove: ", "would remove: ", "would edit:   " } };

		if (u->s.verbose || u->dry_run)
			printf("%s %s%s\n", verb[u->dry_run][p->steps[i].action], p->steps[i].path,
			       p->steps[i].action == GP_UNDO_REMOVE_DIR ? " (with all in it)"
			       : p->steps[i].action == GP_UNDO_HIVE ? " (values gpup set put back)" : "");
	}
	for (size_t i = 0; i < p->m.n_lost; i++)
		printf("not restorable: %s (was in the guest before gpup, removed as a stale build)\n",
		       p->m.lost[i]);
	printf("%s%zu restored, %zu removed, %zu directories removed, %zu hives put back; "
	       "record %s removed\n", u->dry_run ? "dry run: would be " : "", p->n_restore,
	       p->n_remove, p->n_dirs, p->n_hives, GP_MANIFEST_DIR);
}

static int fail(struct unprepare *u, const struct gp_error *err)
{
	int status = u->s.json ? cli_fail_json("unprepare", u->s.image, err, u->committing)
			       : cli_fail(err);

	runlog_result(u->s.image, u->committing);
	return status;
}

/* --log (runlog.h): each step of the plan, or what was done. */
static void log_steps(const struct unprepare *u, const char *kind)
{
	/* Indexed by enum gp_undo_action (manifest.h). */
	static const char *const verb[] = {
		[GP_UNDO_RESTORE] = "restore", [GP_UNDO_REMOVE_FILE] = "remove",
		[GP_UNDO_REMOVE_DIR] = "remove the directory",
		[GP_UNDO_HIVE] = "put back the recorded values of the hive",
	};
	const struct gp_undo_plan *p = &u->plan;

	for (size_t i = 0; i < p->n_steps; i++)
		runlog(kind, "%s %s:%s", verb[p->steps[i].action], u->s.image, p->steps[i].path);
}

static int run(struct unprepare *u)
{
	struct gp_error err = { 0 };
	int ret, r;

	ret = session_open_plan(&u->s, !u->dry_run, &err);
	if (!ret)
		ret = gp_undo_plan(u->s.vol, &u->plan, &err);
	if (ret && u->s.vol)
		gp_error_prefix(&err, "%s: ", u->s.image);
	if (!ret)
		log_steps(u, "plan");
	if (!ret && !u->dry_run && cli_interrupted())
		ret = gp_error_set(&err, GP_ERR_ABORTED, "%s: interrupted: nothing was written",
				   u->s.image);
	if (!ret && !u->dry_run) {
		ret = session_begin_commit(&u->s, &err);
		u->committing = true;
		if (!ret)
			ret = gp_undo_commit(u->s.vol, &u->plan, &err);
		if (ret)
			gp_error_prefix(&err, "%s: ", u->s.image);
	}
	r = session_close_image(&u->s, &err);
	if (!ret)
		ret = r;
	if (ret) {
		if (u->committing) {
			size_t n = strlen(err.msg);

			snprintf(err.msg + n, sizeof(err.msg) - n,
				 "; run the same command again to complete it");
		}
		return fail(u, &err);
	}
	if (u->dry_run)
		runlog("action", "dry run: nothing written");
	else
		runlog("action", "%s: %zu restored, %zu removed, %zu directories removed",
		       u->s.image, u->plan.n_restore, u->plan.n_remove, u->plan.n_dirs);
	report(u);
	return EXIT_OK;
}

int cmd_unprepare(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "dry-run", no_argument, NULL, 'n' },
		SESSION_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct unprepare u = { 0 };
	int c, ret;

	session_init(&u.s, "unprepare");
	u.s.ntfs_opts.require_windows = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hn" SESSION_SHORTOPTS, longopts, NULL)) != -1) {
		int r = session_handle(&u.s, c, optarg);

		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'n':
			u.dry_run = true;
			break;
		default:
			return cli_usage("unprepare", "unknown option");
		}
	}
	/* Before the operands: an option it does not take is the first thing
	 * to say (tests/cli/options.py probes options without an IMAGE). */
	if (u.s.src_opts.driverstore || u.s.src_opts.bundle || u.s.src_opts.allow_missing ||
	    u.s.replace_system_files)
		return cli_usage_json("unprepare", u.s.json,
				      "unprepare takes no driver source: the guest's record says what to undo");
	if (optind + 1 != argc)
		return cli_usage_json("unprepare", u.s.json,
				      optind == argc ? "IMAGE is required" : "too many arguments");
	u.s.image = argv[optind];
	cli_catch_interrupts();
	ret = run(&u);
	gp_undo_plan_free(&u.plan);
	session_end(&u.s);
	return ret;
}
