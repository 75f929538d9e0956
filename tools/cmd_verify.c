/*
 * cmd_verify.c — `gpup verify`: re-read the image through libvhdi (never
 * through gpup's own VHDX engine, so an engine bug cannot vouch for itself)
 * with a read-only NTFS mount, and check every file of the driver's
 * injection set: present, same size, same SHA-256.
 *
 * JSON (schema 1; doc/schema/verify.schema.json):
 *   { "schema", "command": "verify", "image", "reader",
 *   "ok", "package", "files": N, "bad": [ {path, state, expected_size,
 *   guest_size} ], "stale": [ {path, bytes} ], "check": {...},
 *   "manifest": {found, files, bad: ["PATH: what"]} }
 * The guest's record of gpup's changes (manifest.h) is checked too: every
 * file it records is there with the recorded SHA-256, every backup with
 * the original's, every recorded fix-up still in place ("NAME: what" in
 * manifest.bad).
 * First `gpup check` (check_report.h): a damaged image (corruption) is
 * reported as such, { "image", "ok": false, "check" }, and its files are
 * not read; other findings go to stderr and the files are checked.
 * Exit status 4 when any file differs or the image is damaged.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_report.h"
#include "fixup.h"
#include "manifest.h"
#include "session.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpup verify IMAGE (--driverstore DIR | --bundle FILE) [--gpu SEL]\n"
		"                   [--json] [-p] [-q]\n\n"
		"Check, through libvhdi (independent of gpup's VHDX engine) and a read-only\n"
		"NTFS mount, that every file of the GPU driver is in the guest with the right\n"
		"size and SHA-256, after checking the image's structures (gpup check). Lists\n"
		"each difference; exit status 4 on any, or on a damaged image.\n\n");
	session_help(f, true);
}

/* Add "@what: @why" to the record's findings; false when out of memory. */
static bool add_finding(struct gp_manifest_check *mc, const char *what, const char *why)
{
	char **bad = realloc(mc->bad, (mc->n_bad + 1) * sizeof(*bad));
	char *line;

	if (!bad)
		return false;
	mc->bad = bad;
	if (asprintf(&line, "%s: %s", what, why) < 0)
		return false;
	mc->bad[mc->n_bad++] = line;
	return true;
}

/*
 * The fix-ups the guest's record lists are still in place: each, planned
 * again (fixup.h) against the guest, must change nothing -- the service
 * key with the INF's values, the junction with its target. One finding per
 * fix-up that would change something, or that can no longer be planned (a
 * real folder where the junction was, a damaged hive). Returns 0 or
 * GP_ERR_NOMEM / the volume's I/O codes.
 */
static int check_fixups(struct session *s, struct gp_manifest_check *mc, struct gp_error *err)
{
	struct gp_inject_report rep = { 0 };
	struct gp_fixup_plan fp = { 0 };
	struct gp_manifest m;
	struct gp_error ferr = { 0 };
	bool found, ok = true;
	int ret = gp_manifest_read(s->vol, &m, &found, err);

	if (ret || !found || !m.n_fixups) {
		gp_manifest_free(&m);
		return ret;
	}
	ret = gp_fixup_plan(s->vol, gp_source_set(s->src), (const char *const *)m.fixups,
			    m.n_fixups, &rep, &fp, &ferr);
	if (ret == GP_ERR_NOMEM || ret == GP_ERR_IO) {
		gp_error_copy(err, &ferr);
	} else if (ret) {
		ok = add_finding(mc, "fix-ups", gp_error_message(&ferr));
		ret = 0;
	} else {
		if (fp.service && (fp.n_changed || fp.created_key[0]))
			ok = add_finding(mc, GP_FIXUP_NVLDDMKM_SERVICE,
					 "the service key no longer holds the INF's values");
		if (ok && fp.junction[0] && fp.junction_new)
			ok = add_finding(mc, GP_FIXUP_NGX_JUNCTION, "the junction is missing");
	}
	if (!ok)
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	gp_error_clear(&ferr);
	gp_fixup_plan_free(&fp);
	gp_inject_report_free(&rep);
	gp_manifest_free(&m);
	return ret;
}

static int run(struct session *s)
{
	struct gp_inject_stream stream = { 0 };
	struct gp_verify_report vr = { 0 };
	struct session_guest g = { 0 };
	struct gp_error err = { 0 };
	const struct gp_inject_set *set;
	struct gp_check_report cr;
	struct gp_manifest_check mc = { 0 };
	const char *reader;
	int ret, checked = 0;

	/* The container first (`gpup check`): libvhdi reads a truncated file
	 * or a corrupt virtual-size item without a word, and the files it
	 * then reads may all match. */
	ret = check_report_run(s->image, &s->disk_opts, &cr, &err);
	if (ret) {
		gp_check_report_free(&cr);
		return cli_fail_cmd("verify", s->json, s->image, &err);
	}
	if (gp_check_status(&cr) == 2) {
		if (s->json) {
			struct json_object *o = session_json_new("verify");

			json_object_object_add(o, "image", json_object_new_string(s->image));
			json_object_object_add(o, "ok", json_object_new_boolean(false));
			json_object_object_add(o, "check", check_report_json(&cr));
			session_print_json(o);
		} else {
			check_report_print(stdout, s->image, &cr);
			printf("%s: the image is damaged; its files were not checked: MISMATCH\n",
			       s->image);
		}
		gp_check_report_free(&cr);
		return EXIT_MISMATCH;
	}
	if (gp_check_status(&cr) && !s->json)
		check_report_warn(s->image, &cr);
	for (size_t i = 0; i < cr.count; i++) {
		/* A child libvhdi misreads: no independent check, say so. */
		if (strcmp(cr.findings[i].structure, "sector bitmap"))
			continue;
		gp_error_set(&err, GP_ERR_UNSUPPORTED, "%s; not verified",
			     cr.findings[i].message);
		gp_check_report_free(&cr);
		return cli_fail_cmd("verify", s->json, s->image, &err);
	}
	ret = session_open_image(s, false, true, &err);
	if (ret) {
		gp_check_report_free(&cr);
		return cli_fail_cmd("verify", s->json, s->image, &err);
	}
	reader = gp_disk_backend_name(s->disk);
	ret = session_guest(s, &g, &err);
	if (!ret)
		ret = session_open_source(s, g.f.arch[0] ? g.f.arch : NULL, g.build_num, &err);
	if (!ret)
		ret = gp_source_stream(s->src, &stream, &err);
	/* A bundle's bytes are not read here (the manifest has their
	 * digests), but a hostile or truncated archive is still no good:
	 * that fails the command (a size lie with exit 4), with no report. */
	if (!ret && stream.ops->check)
		checked = ret = stream.ops->check(&stream, true, &err);
	if (!ret) {
		struct cli_progress cp;

		cli_progress_init(&cp, s->progress);
		ret = gp_inject_verify(s->vol, gp_source_set(s->src), &stream, &cp.progress, &vr,
				       &err);
		cli_progress_done(&cp);
	}
	if (!ret || ret == GP_ERR_MISMATCH) {
		/* The first difference wins the message; the record's findings
		 * are listed either way. */
		struct gp_error merr = { 0 };
		int r = gp_manifest_check(s->vol, &mc, &merr);
		size_t before = mc.n_bad;

		if (!r || r == GP_ERR_MISMATCH) {
			int f = check_fixups(s, &mc, &merr);

			if (f)
				r = f;
			else if (!r && mc.n_bad > before)
				r = gp_error_set(&merr, GP_ERR_MISMATCH, "%s (%zu findings against %s)",
						 mc.bad[before], mc.n_bad, GP_MANIFEST_PATH);
		}
		if (r && (!ret || r != GP_ERR_MISMATCH)) {
			if (r != GP_ERR_MISMATCH)
				gp_error_clear(&err);
			gp_error_copy(&err, &merr);
			ret = r;
		}
	}
	if (stream.ops && stream.ops->destroy)
		stream.ops->destroy(&stream);
	gp_guest_facts_free(&g.f);
	if (checked || (ret && ret != GP_ERR_MISMATCH)) {
		gp_check_report_free(&cr);
		return cli_fail_cmd("verify", s->json, s->image, &err);
	}
	set = gp_source_set(s->src);
	if (s->json) {
		struct json_object *o = session_json_new("verify"), *bad, *stale;

		json_object_object_add(o, "image", json_object_new_string(s->image));
		json_object_object_add(o, "reader", json_object_new_string(reader));
		json_object_object_add(o, "ok", json_object_new_boolean(ret == 0));
		json_object_object_add(o, "package", json_object_new_string(set->pkg->folder));
		json_object_object_add(o, "files", json_object_new_int64((int64_t)set->count));
		bad = json_object_new_array();
		for (size_t i = 0; i < set->count; i++) {
			struct json_object *b;

			if (vr.states[i] == GP_VERIFY_OK)
				continue;
			b = json_object_new_object();
			json_object_object_add(b, "path", json_object_new_string(set->files[i].guest_path));
			json_object_object_add(b, "state",
					       json_object_new_string(gp_verify_state_name(vr.states[i])));
			json_object_object_add(b, "expected_size",
					       json_object_new_int64((int64_t)set->files[i].size));
			json_object_object_add(b, "guest_size",
					       json_object_new_int64((int64_t)vr.guest_sizes[i]));
			json_object_array_add(bad, b);
		}
		json_object_object_add(o, "bad", bad);
		stale = json_object_new_array();
		for (size_t i = 0; i < vr.n_stale; i++) {
			struct json_object *st = json_object_new_object();

			json_object_object_add(st, "path", json_object_new_string(vr.stale[i]));
			json_object_object_add(st, "bytes", json_object_new_int64((int64_t)vr.stale_bytes[i]));
			json_object_array_add(stale, st);
		}
		json_object_object_add(o, "stale", stale);
		json_object_object_add(o, "check", check_report_json(&cr));
		{
			struct json_object *m = json_object_new_object(), *mb = json_object_new_array();

			for (size_t i = 0; i < mc.n_bad; i++)
				json_object_array_add(mb, json_object_new_string(mc.bad[i]));
			json_object_object_add(m, "found", json_object_new_boolean(mc.found));
			json_object_object_add(m, "files", json_object_new_int64((int64_t)mc.n_files));
			json_object_object_add(m, "bad", mb);
			json_object_object_add(o, "manifest", m);
		}
		session_print_json(o);
	} else {
		for (size_t i = 0; i < mc.n_bad; i++)
			printf("%s\n", mc.bad[i]);
		for (size_t i = 0; i < set->count; i++)
			if (vr.states[i] != GP_VERIFY_OK)
				printf("%s: %s (expected %llu bytes, guest has %llu)\n",
				       set->files[i].guest_path, gp_verify_state_name(vr.states[i]),
				       (unsigned long long)set->files[i].size,
				       (unsigned long long)vr.guest_sizes[i]);
		for (size_t i = 0; i < vr.n_stale; i++)
			printf("%s: stale build of the driver (%llu bytes)\n", vr.stale[i],
			       (unsigned long long)vr.stale_bytes[i]);
		printf("%s: %zu files of %s checked through %s: %s\n", s->image, set->count,
		       set->pkg->folder, reader,
		       ret == 0 ? "all match" : "MISMATCH");
	}
	if (ret && !s->json)
		cli_error_line(gp_status_id(ret), EXIT_MISMATCH, gp_error_message(&err));
	gp_verify_report_free(&vr);
	gp_manifest_check_free(&mc);
	gp_check_report_free(&cr);
	return ret ? EXIT_MISMATCH : EXIT_OK;
}

int cmd_verify(int argc, char **argv)
{
	struct session s;
	int ret;

	session_init(&s, "verify");
	s.ntfs_opts.require_windows = true;
	ret = session_parse_image_cmd(&s, argc, argv, usage, true);
	if (ret >= 0)
		return ret;
	ret = run(&s);
	session_end(&s);
	return ret;
}
