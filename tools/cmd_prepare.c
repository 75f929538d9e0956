/*
 * cmd_prepare.c — `gpup prepare`: the whole job in one command, as a
 * transaction. Nothing is written until everything that can be known is
 * known:
 *
 *  plan (writes nothing anywhere)
 *   1. --into-child: a new CHILD, or IMAGE's own existing child; anything
 *      else is refused (plan_child);
 *   2. open the image the commit will write (locked for writing; its volume
 *      mounted read-only, refusing what a writable open refuses), read the
 *      guest, check it, resolve the driver for its build and architecture
 *      (plan_guest);
 *   3. decide each file's action, the stale builds to remove and the room
 *      the volume needs (plan_inject);
 *   4. --vm: GPU list, SurveyDDA, the rendered script, its -o target or the
 *      PowerShell for --apply (plan_host);
 *  commit (only executes the plan; -n stops before it)
 *   5. create the child or remount read-write, write the files, remove the
 *      stale builds, close cleanly (commit_inject); a child this run made
 *      and could not complete is removed;
 *   6. verify through libvhdi, independent of gpup's own VHDX engine
 *      (unless --no-verify);
 *   7. write or run the host script (commit_host).
 *
 * JSON output (schema 1; doc/schema/prepare.schema.json):
 *   { "schema", "command": "prepare", "image",
 *   "written_image", "dry_run", "changed", "image_changed",
 *   "guest": {product, edition, installation, build, ubr, arch},
 *   "source": {kind, path},
 *   "package": {folder, inf, provider, driver_ver_date, driver_ver_version},
 *   "files": {new, replaced, unchanged, bytes_written, total, missing (guest
 *            paths skipped by --allow-missing)},
 *   "removed": [{path, bytes}], "fixups": [{name, changed}] (--fixup),
 *   "verified": true|false|null,
 *   "host_script": PATH|"stdout"|"applied"|null,
 *   with -n: "plan": {files: [{path, size, action: new|replace|unchanged}],
 *            manifest: {path, write (a record is written), backups: [{path,
 *            backup}] (guest files backed up before they are replaced)},
 *            space_need, space_have (bytes), create_child, host_vm,
 *            host_script_text} }
 * A failure: { "schema", "command", "image", "error": {code, exit_status,
 *   message}, "image_changed", "dry_run", "rolled_back" } (cli_fail_json()).
 * Several IMAGEs: this transaction once per image in worker processes,
 * each object on one line, then a summary (prepare_many.c).
 */
#include <errno.h>
#include <libgen.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixup.h"
#include "fleet.h"
#include "manifest.h"
#include "plan_opts.h"
#include "prepare_many.h"
#include "runlog.h"
#include "session.h"
#include "vhdx.h"

enum {
	OPT_INTO_CHILD = 1,
	OPT_KEEP_OLD,
	OPT_NO_VERIFY,
	OPT_DRY_RUN,
	OPT_FIXUP,
};

#define MAX_FIXUPS 8

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpup prepare IMAGE... (--driverstore DIR | --bundle FILE) [--gpu SEL]\n"
		"                    [--into-child CHILD.avhdx] [--keep-old] [--no-verify]\n"
		"                    [--vm NAME plan-options (-o host.ps1 | --apply)]\n"
		"                    [--fixup NAME]... [-n|--dry-run] [-j N] [--json] [-p] [-q]\n"
		"       gpup prepare --fixup list\n\n"
		"Inject the GPU's driver package into the Windows guest on IMAGE so that its\n"
		"first boot under Hyper-V GPU partitioning works, then verify it through an\n"
		"independent reader and, with --vm, write or run the host configuration.\n\n"
		"  --into-child CHILD  create a differencing child of IMAGE and write only\n"
		"                      into it (IMAGE stays byte-identical); an existing CHILD\n"
		"                      is reused only when it is IMAGE's own child\n"
		"  --keep-old          keep other builds of the driver in HostDriverStore\n"
		"  --no-verify         skip the independent read-back\n"
		"  --fixup NAME        also apply fix-up NAME to the guest (repeatable);\n"
		"                      '--fixup list' shows them, each with its reason\n"
		"  -n, --dry-run       run only the plan: show what would be written, removed\n"
		"                      and configured, and fail as the real run would\n"
		"  -j N                with several images: prepare N at a time (default: the\n"
		"                      CPUs online); the driver source is resolved (a bundle\n"
		"                      read and checked) once per guest build; one image's\n"
		"                      refusal or failure does not stop the others; each\n"
		"                      image's report, then a summary\n"
		"                      (--json: one line per image, then {\"summary\": ...});\n"
		"                      each of --into-child, --vm and --parent names one\n"
		"                      image's output and takes one IMAGE\n"

		"The guest keeps a record of every change, with a backup of each file\n"
		"replaced, in C:\\Windows\\System32\\gpup; 'gpup unprepare' undoes them.\n");
	session_help(f, true);
	plan_opts_help(f, false);
	fprintf(f, "\nExit status: 0 ok, 1 error, 2 usage, 3 refused (unsafe guest state,\n"
		   "locked image), 4 verification failed; with several images the worst of\n"
		   "them (ok < refused < error < verification failed < interrupted).\n");
}

struct prepare {
	struct session s;
	struct plan_opts po;
	const char *base_image;   /* IMAGE as given */
	const char *into_child;
	bool keep_old, no_verify, dry_run;
	const char *fixups[MAX_FIXUPS];
	size_t n_fixups;
	/* The plan: everything known before the first write. */
	bool child_exists;        /* --into-child names IMAGE's own child (a rerun) */
	struct session_guest guest;
	struct gp_inject_stream stream;
	struct gp_inject_report rep;
	struct gp_fixup_plan fix;         /* --fixup (fixup.h) */
	struct gp_manifest_plan manifest; /* the guest record (manifest.h) */
	struct gp_inject_hooks hooks;     /* that write it in the commit */
	struct plan_opts_prepared host; /* the host configuration (--vm), rendered */
	bool host_planned;
	/* The commit. */
	bool committing;          /* a write to an image began */
	bool child_created;       /* this run created the child ... */
	bool child_removed;       /* ... and removed it again after a failure */
	int verified;             /* -1 not run, 0 failed, 1 ok */
	const char *host_script;
	const char *verify_backend; /* "libvhdi" or "raw": who read it back */
};

/* ---- Plan: nothing below writes anything anywhere ---------------------- */

/*
 * --into-child: a new CHILD is created at commit time; an existing one is
 * reused only when it is IMAGE's own differencing child (its parent linkage
 * names IMAGE's DataWriteGuid): a rerun. Anything else -- IMAGE itself, an
 * unrelated VHDX, another file -- would be written into instead of a new
 * child while IMAGE was promised untouched: refused, both files left alone.
 */
static int plan_child(struct prepare *p, struct gp_error *err)
{
	struct vhdx_open_opts vo = { .writable = false, .parent_path = p->base_image };
	enum gp_disk_format fmt;
	struct stat sb, sc;
	struct vhdx *v;
	struct vhdx_info vi;
	int ret;

	ret = gp_disk_detect_format(p->base_image, &fmt, err);
	if (ret)
		return ret;
	if (fmt != GP_DISK_FORMAT_VHDX)
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: --into-child needs a VHDX base image, this is %s",
				    p->base_image, gp_disk_format_name(fmt));
	if (stat(p->into_child, &sc) != 0) {
		char *dir;
		int e = errno;

		if (e != ENOENT)
			return gp_error_set_errno(err, GP_ERR_IO, e, "%s", p->into_child);
		/* The child is made beside its final name: its directory must
		 * take a new file. */
		dir = strdup(p->into_child);
		if (!dir)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		ret = access(dirname(dir), W_OK) == 0 ? 0 : errno;
		free(dir);
		if (ret)
			return gp_error_set_errno(err, ret == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, ret,
						  "%s: cannot create the child there", p->into_child);
		p->child_exists = false;
		return 0;
	}
	if (stat(p->base_image, &sb) == 0 && sb.st_dev == sc.st_dev && sb.st_ino == sc.st_ino)
		return gp_error_set(err, GP_ERR_EXISTS,
				    "%s: --into-child names IMAGE itself; give the name of a new child",
				    p->into_child);
	if (!S_ISREG(sc.st_mode))
		return gp_error_set(err, GP_ERR_EXISTS, "%s: exists and is not a file", p->into_child);
	ret = gp_disk_detect_format(p->into_child, &fmt, err);
	if (ret)
		return ret;
	if (fmt != GP_DISK_FORMAT_VHDX)
		return gp_error_set(err, GP_ERR_EXISTS,
				    "%s: exists and is not a VHDX child of %s (it is %s); refusing to write into it",
				    p->into_child, p->base_image, gp_disk_format_name(fmt));
	ret = vhdx_open(p->into_child, &vo, &v, err);
	if (ret == GP_ERR_MISMATCH) {
		gp_error_clear(err);
		return gp_error_set(err, GP_ERR_EXISTS,
				    "%s: exists and is not a child of %s (its parent linkage names another image, or %s changed since the child was made); refusing to write into it",
				    p->into_child, p->base_image, p->base_image);
	}
	if (ret)
		return ret;
	ret = vhdx_get_info(v, &vi);
	vhdx_close(v, NULL);
	if (ret)
		return gp_error_set(err, ret, "%s: cannot read its metadata", p->into_child);
	if (!vi.has_parent)
		ret = gp_error_set(err, GP_ERR_EXISTS,
				   "%s: exists and is not a differencing image (it is %s); refusing to write into it",
				   p->into_child, vhdx_disk_type_name(vi.type));
	vhdx_info_free(&vi);
	p->child_exists = ret == 0;
	return ret;
}

/* The guest, and the driver resolved for it. The plan reads the image the
 * commit will write: an existing child, else IMAGE (a new child equals its
 * parent). A real run opens it locked for writing, so that nobody changes
 * it between plan and commit; its volume stays mounted read-only. */
static int plan_guest(struct prepare *p, struct gp_error *err)
{
	const struct gp_inject_set *set;
	bool lock = !p->dry_run && (!p->into_child || p->child_exists);
	int ret;

	p->s.image = p->into_child && p->child_exists ? p->into_child : p->base_image;
	ret = session_open_plan(&p->s, lock, err);
	if (ret)
		return ret;
	ret = session_guest(&p->s, &p->guest, err);
	if (!ret)
		ret = session_check_guest(&p->s, &p->guest, err);
	if (ret)
		return ret;
	if (!p->guest.known && !p->s.quiet)
		cli_warn("%s: cannot read the guest's registry; assuming amd64, newest build",
			 p->s.image);
	/* Several images: the source resolved for this build before the
	 * workers started (prepare_many.h). */
	p->s.src = fleet_source_for(p->guest.f.arch, p->guest.build_num);
	ret = p->s.src ? 0 : session_open_source(&p->s, p->guest.f.arch[0] ? p->guest.f.arch : NULL,
						 p->guest.build_num, err);
	if (ret)
		return ret;
	set = gp_source_set(p->s.src);
	/* --allow-missing let files through that the guest will lack: say
	 * which, every time (a guest without them may show Code 43). */
	for (size_t i = 0; !p->s.quiet && i < set->n_missing; i++)
		cli_warn("%s: found nowhere on the host, not injected (--allow-missing)",
			 set->missing[i]);
	if (p->guest.f.arch[0] && set->pkg->arch && *set->pkg->arch &&
	    strcasecmp(set->pkg->arch, p->guest.f.arch) != 0)
		return gp_error_set(err, GP_ERR_REFUSED, "%s: package %s is for %s, but the guest is %s",
				    p->s.image, set->pkg->folder, set->pkg->arch, p->guest.f.arch);
	return 0;
}

/* The injector's refusals (guest volume full, a directory where a file
 * goes) know the guest, not the image: name it. Returns @ret. */
static int name_image(const struct prepare *p, int ret, struct gp_error *err)
{
	if ((ret == GP_ERR_NOSPACE || ret == GP_ERR_EXISTS) &&
	    strncmp(gp_error_message(err), p->s.image, strlen(p->s.image)) != 0)
		gp_error_prefix(err, "%s: ", p->s.image);
	return ret;
}

/* Every file to write, replace or leave, the stale builds to remove, and
 * the room the volume needs for them. */
static int plan_inject(struct prepare *p, struct gp_error *err)
{
	struct gp_inject_apply_opts io = { .keep_old = p->keep_old, .dry_run = p->dry_run,
					   .replace_system_files = p->s.replace_system_files };
	int ret;

	struct gp_error files_err = { 0 };
	int files_ret = 0;

	ret = gp_source_stream(p->s.src, &p->stream, err);
	if (!ret)
		ret = gp_inject_plan(p->s.vol, gp_source_set(p->s.src), &p->stream, &io, &p->rep, err);
	/* Too little room for the files alone: the fix-ups and the record are
	 * still planned, so that the refusal states the whole need. */
	if (ret == GP_ERR_NOSPACE) {
		files_ret = ret;
		gp_error_copy(&files_err, err);
		gp_error_clear(err);
		ret = 0;
	}
	/* The record of what the run changes, with the backups of what it
	 * replaces: planned (and its room checked) with the files. */
	if (!ret && p->n_fixups)
		ret = gp_fixup_plan(p->s.vol, gp_source_set(p->s.src), p->fixups, p->n_fixups,
				    &p->rep, &p->fix, err);
	if (!ret)
		ret = gp_manifest_plan_prepare(p->s.vol, gp_source_set(p->s.src), &p->rep,
					       p->n_fixups ? &p->fix.extra : NULL, &p->manifest, err);
	if (!ret && files_ret)
		ret = gp_error_copy(err, &files_err);
	if (!ret && p->manifest.changed)
		p->rep.changed = true;
	return name_image(p, ret, err);
}

/* --vm: the host configuration, computed and rendered before the guest is
 * touched, so that a bad --from, --surveydda or -o fails a run that has
 * written nothing. */
static int plan_host(struct prepare *p, struct gp_error *err)
{
	int ret;

	if (!p->po.plan.vm_name)
		return 0;
	ret = plan_opts_prepare(&p->po, &p->host, err);
	p->host_planned = ret == 0;
	return ret;
}

/* ---- Commit: only executes the plan ------------------------------------ */

static int commit_inject(struct prepare *p, struct gp_error *err)
{
	struct gp_inject_apply_opts io = { .keep_old = p->keep_old, .hooks = &p->hooks };
	struct cli_progress cp;
	int ret, r;

	if (p->into_child && !p->child_exists) {
		ret = session_close_image(&p->s, err);
		if (ret)
			return ret;
		p->committing = true;
		ret = vhdx_create_child(p->into_child, p->base_image, err);
		if (ret)
			return ret;
		p->child_created = true;
		p->s.image = p->into_child;
		if (!p->rep.changed)
			return 0;
		ret = session_open_image(&p->s, true, false, err);
	} else {
		if (!p->rep.changed)
			return session_close_image(&p->s, err);
		ret = session_begin_commit(&p->s, err);
		p->committing = true;
	}
	if (!ret) {
		gp_manifest_plan_hooks(&p->manifest, &p->hooks);
		cli_progress_init(&cp, p->s.quiet ? CLI_PROGRESS_NONE : p->s.progress);
		io.progress = &cp.progress;
		ret = gp_inject_commit(p->s.vol, gp_source_set(p->s.src), &p->stream, &io, &p->rep,
				       err);
		cli_progress_done(&cp);
		ret = name_image(p, ret, err);
	}
	r = session_close_image(&p->s, err);
	if (!ret)
		ret = r;
	/* A child this run made and could not complete is removed: the run
	 * leaves the directory as it found it. */
	if (ret && p->child_created && unlink(p->into_child) == 0)
		p->child_removed = true;
	return ret;
}

static int verify_independently(struct prepare *p, struct gp_error *err)
{
	struct gp_inject_stream stream = { 0 };
	struct gp_verify_report vr;
	int ret;

	/* A child written next to its parent resolves the parent by name; one
	 * elsewhere needs it spelled out for libvhdi. */
	if (p->into_child && !p->s.disk_opts.parent_path)
		p->s.disk_opts.parent_path = p->base_image;
	ret = session_open_image(&p->s, false, true, err);
	if (ret)
		return ret;
	p->verify_backend = gp_disk_backend_name(p->s.disk);
	ret = gp_source_stream(p->s.src, &stream, err);
	if (!ret) {
		struct cli_progress cp;

		cli_progress_init(&cp, p->s.quiet ? CLI_PROGRESS_NONE : p->s.progress);
		ret = gp_inject_verify(p->s.vol, gp_source_set(p->s.src), &stream, &cp.progress, &vr,
				       err);
		cli_progress_done(&cp);
		if (ret == 0 || ret == GP_ERR_MISMATCH)
			gp_verify_report_free(&vr);
	}
	/* The record in the guest, read back the same way. */
	if (!ret) {
		struct gp_manifest_check mc;

		ret = gp_manifest_check(p->s.vol, &mc, err);
		if (ret == 0 || ret == GP_ERR_MISMATCH)
			gp_manifest_check_free(&mc);
	}
	if (stream.ops && stream.ops->destroy)
		stream.ops->destroy(&stream);
	{
		int r = session_close_image(&p->s, err);
		if (!ret)
			ret = r;
	}
	p->verified = ret == 0;
	return ret;
}

/* The script goes to -o FILE or, with --apply, runs; never mixed into
 * --json stdout. */
static int commit_host(struct prepare *p, struct gp_error *err)
{
	int ret;

	if (!p->host_planned)
		return 0;
	ret = plan_opts_commit(&p->host, err);
	if (!ret)
		p->host_script = p->po.apply ? "applied" : p->po.output ? p->po.output : "stdout";
	return ret;
}

/* ---- Report ------------------------------------------------------------ */

static const char *action_name(enum gp_inject_action a)
{
	switch (a) {
	case GP_INJECT_UNCHANGED: return "unchanged";
	case GP_INJECT_NEW: return "new";
	case GP_INJECT_REPLACE: return "replace";
	}
	return "unknown";
}

static struct json_object *report_json(struct prepare *p)
{
	const struct gp_inject_set *set = p->s.src ? gp_source_set(p->s.src) : NULL;
	struct json_object *o = session_json_new("prepare"), *g, *src, *pkg, *files, *rm;

	json_object_object_add(o, "image", json_object_new_string(p->base_image));
	json_object_object_add(o, "written_image",
			       json_object_new_string(p->into_child ? p->into_child : p->base_image));
	json_object_object_add(o, "dry_run", json_object_new_boolean(p->dry_run));
	json_object_object_add(o, "changed", json_object_new_boolean(p->rep.changed));
	json_object_object_add(o, "rolled_back", json_object_new_boolean(p->rep.rolled_back));
	g = json_object_new_object();
	if (p->guest.known) {
		json_object_object_add(g, "product", json_object_new_string(p->guest.f.product_name));
		json_object_object_add(g, "edition", json_object_new_string(p->guest.f.edition));
		json_object_object_add(g, "installation",
				       json_object_new_string(p->guest.f.installation_type));
		json_object_object_add(g, "build", json_object_new_int64(p->guest.build_num));
		json_object_object_add(g, "ubr", json_object_new_int64(p->guest.f.ubr));
		json_object_object_add(g, "arch", json_object_new_string(p->guest.f.arch));
	}
	json_object_object_add(o, "guest", g);
	src = json_object_new_object();
	json_object_object_add(src, "kind", json_object_new_string(gp_source_kind(p->s.src)));
	json_object_object_add(src, "path", json_object_new_string(gp_source_path(p->s.src)));
	json_object_object_add(o, "source", src);
	pkg = json_object_new_object();
	json_object_object_add(pkg, "folder", json_object_new_string(set->pkg->folder));
	json_object_object_add(pkg, "inf", json_object_new_string(set->pkg->inf_name));
	json_object_object_add(pkg, "provider", json_object_new_string(set->pkg->provider));
	json_object_object_add(pkg, "driver_ver_date", json_object_new_string(set->pkg->driver_ver_date));
	json_object_object_add(pkg, "driver_ver_version",
			       json_object_new_string(set->pkg->driver_ver_version));
	json_object_object_add(o, "package", pkg);
	files = json_object_new_object();
	json_object_object_add(files, "new", json_object_new_int64((int64_t)p->rep.n_new));
	json_object_object_add(files, "replaced", json_object_new_int64((int64_t)p->rep.n_replaced));
	json_object_object_add(files, "unchanged", json_object_new_int64((int64_t)p->rep.n_unchanged));
	json_object_object_add(files, "bytes_written", json_object_new_int64((int64_t)p->rep.bytes_written));
	json_object_object_add(files, "total", json_object_new_int64((int64_t)set->count));
	{
		struct json_object *miss = json_object_new_array();

		for (size_t i = 0; i < set->n_missing; i++)
			json_object_array_add(miss, json_object_new_string(set->missing[i]));
		json_object_object_add(files, "missing", miss);
	}
	json_object_object_add(o, "files", files);
	rm = json_object_new_array();
	for (size_t i = 0; i < p->rep.n_removed; i++) {
		struct json_object *r = json_object_new_object();

		json_object_object_add(r, "path", json_object_new_string(p->rep.removed[i]));
		json_object_object_add(r, "bytes", json_object_new_int64((int64_t)p->rep.removed_bytes[i]));
		json_object_array_add(rm, r);
	}
	json_object_object_add(o, "removed", rm);
	{
		struct json_object *fx = json_object_new_array();

		for (size_t i = 0; i < p->fix.n_names; i++) {
			struct json_object *f = json_object_new_object();
			bool ch = !strcmp(p->fix.names[i], GP_FIXUP_NVLDDMKM_SERVICE)
					  ? p->fix.hive != NULL : p->fix.junction_new;

			json_object_object_add(f, "name", json_object_new_string(p->fix.names[i]));
			json_object_object_add(f, "changed", json_object_new_boolean(ch));
			json_object_array_add(fx, f);
		}
		json_object_object_add(o, "fixups", fx);
	}
	if (p->dry_run) {
		/* -n --json: the plan itself, file by file. */
		struct json_object *plan = json_object_new_object(), *arr = json_object_new_array();

		for (size_t i = 0; i < set->count; i++) {
			struct json_object *f = json_object_new_object();

			json_object_object_add(f, "path", json_object_new_string(set->files[i].guest_path));
			json_object_object_add(f, "size", json_object_new_int64((int64_t)set->files[i].size));
			json_object_object_add(f, "action",
					       json_object_new_string(action_name(p->rep.actions[i])));
			json_object_array_add(arr, f);
		}
		json_object_object_add(plan, "files", arr);
		{
			struct json_object *man = json_object_new_object(), *bk = json_object_new_array();

			for (size_t i = 0; i < p->manifest.n_backups; i++) {
				const struct gp_manifest_file *f = &p->manifest.m.files[p->manifest.backups[i]];
				struct json_object *b = json_object_new_object();

				json_object_object_add(b, "path", json_object_new_string(f->path));
				json_object_object_add(b, "backup", json_object_new_string(f->backup));
				json_object_array_add(bk, b);
			}
			json_object_object_add(man, "path", json_object_new_string(GP_MANIFEST_PATH));
			json_object_object_add(man, "write", json_object_new_boolean(p->manifest.changed));
			json_object_object_add(man, "backups", bk);
			json_object_object_add(plan, "manifest", man);
		}
		/* The room the volume needs for them (data and NTFS metadata,
		 * gp_ntfs_space_check()) and what it has. */
		json_object_object_add(plan, "space_need",
				       json_object_new_int64((int64_t)p->rep.space_need));
		json_object_object_add(plan, "space_have",
				       json_object_new_int64((int64_t)p->rep.space_have));
		json_object_object_add(plan, "create_child",
				       json_object_new_boolean(p->into_child && !p->child_exists));
		json_object_object_add(plan, "host_vm", p->host_planned
							? json_object_new_string(p->host.plan.vm_name) : NULL);
		json_object_object_add(plan, "host_script_text",
				       p->host_planned && p->host.script
					       ? json_object_new_string_len(p->host.script,
									    (int)p->host.script_len)
					       : NULL);
		json_object_object_add(o, "plan", plan);
	}
	json_object_object_add(o, "image_changed",
			       json_object_new_boolean(p->committing && !p->child_removed));
	json_object_object_add(o, "verified", p->verified < 0 ? NULL
							      : json_object_new_boolean(p->verified));
	json_object_object_add(o, "host_script",
			       p->host_script ? json_object_new_string(p->host_script) : NULL);
	return o;
}

/* The bytes the plan writes (new and replaced files). */
static uint64_t planned_bytes(const struct prepare *p)
{
	const struct gp_inject_set *set = gp_source_set(p->s.src);
	uint64_t n = 0;

	for (size_t i = 0; i < set->count; i++)
		if (p->rep.actions[i] != GP_INJECT_UNCHANGED)
			n += set->files[i].size;
	return n;
}

static void report_human(struct prepare *p)
{
	const struct gp_inject_set *set = gp_source_set(p->s.src);
	char a[32], b[32];

	if (p->s.verbose && !p->dry_run)
		for (size_t i = 0; i < set->count; i++)
			if (p->rep.actions[i] != GP_INJECT_UNCHANGED)
				printf("%s %s (%llu bytes)\n",
				       p->rep.actions[i] == GP_INJECT_NEW ? "wrote:   " : "replaced:",
				       set->files[i].guest_path, (unsigned long long)set->files[i].size);

	if (p->guest.known)
		/* The guest's registry and the INF: escaped (cli_esc()). */
		printf("guest:    %s (%s), build %u.%u, %s\n", cli_esc(p->guest.f.product_name),
		       cli_esc(p->guest.f.installation_type), p->guest.build_num, p->guest.f.ubr,
		       cli_esc(p->guest.f.arch));
	printf("package:  %s (%s, %s %s)\n", cli_esc(set->pkg->folder), cli_esc(set->pkg->provider),
	       cli_esc(set->pkg->driver_ver_date), cli_esc(set->pkg->driver_ver_version));
	printf("%s %zu new, %zu replaced, %zu unchanged (%s of %s)\n",
	       p->dry_run ? "would write:" : "files:   ", p->rep.n_new, p->rep.n_replaced,
	       p->rep.n_unchanged,
	       session_human_size(p->dry_run ? planned_bytes(p) : p->rep.bytes_written, a, sizeof(a)),
	       session_human_size(set->total_bytes, b, sizeof(b)));
	if (p->dry_run && p->rep.changed)
		printf("space:    needs %s of the volume's %s free\n",
		       session_human_size(p->rep.space_need, a, sizeof(a)),
		       session_human_size(p->rep.space_have, b, sizeof(b)));
	for (size_t i = 0; i < p->fix.n_names; i++) {
		bool service = !strcmp(p->fix.names[i], GP_FIXUP_NVLDDMKM_SERVICE);
		bool ch = service ? p->fix.hive != NULL : p->fix.junction_new;

		printf("fix-up:   %s: %s%s%s%s\n", p->fix.names[i],
		       !ch ? "already in place" : p->dry_run ? "would " : "",
		       !ch ? "" : service ? "set HKLM\\SYSTEM\\" : "make the junction ",
		       !ch ? "" : service ? p->fix.key : p->fix.junction,
		       !ch || service ? "" : " -> HostDriverStore");
	}
	for (size_t i = 0; i < p->rep.n_removed; i++)
		printf("%s %s (%s, stale build)\n", p->dry_run ? "would remove:" : "removed: ",
		       cli_esc(p->rep.removed[i]), session_human_size(p->rep.removed_bytes[i], a, sizeof(a)));
	if (p->verified >= 0)
		printf("verified: %s (read back through %s)\n", p->verified ? "ok" : "FAILED",
		       p->verify_backend);
	printf("%s%s\n", p->dry_run ? "dry run: " : "",
	       p->rep.changed ? (p->dry_run ? "the image would change" : "image updated")
			      : "no change: the guest already has this driver");
}

/* Dry-run listing of every file the run would write. */
static void list_planned(struct prepare *p)
{
	const struct gp_inject_set *set = gp_source_set(p->s.src);

	for (size_t i = 0; i < p->manifest.n_backups; i++) {
		const struct gp_manifest_file *f = &p->manifest.m.files[p->manifest.backups[i]];

		printf("would back up:  %s -> %s\n", f->path, f->backup);
	}
	for (size_t i = 0; i < set->count; i++)
		if (p->rep.actions[i] != GP_INJECT_UNCHANGED)
			printf("%s %s (%llu bytes)\n",
			       p->rep.actions[i] == GP_INJECT_NEW ? "would write:  " : "would replace:",
			       set->files[i].guest_path, (unsigned long long)set->files[i].size);
}


/* A failure, after its one line on stderr: with --json also one object on
 * stdout saying what failed and whether the image changed (it did only
 * when the failure came after the commit began and was not undone). */
static int fail(struct prepare *p, const struct gp_error *err)
{
	bool changed = p->committing && !p->child_removed;
	struct gp_error e = { 0 };
	int status;

	if (cli_interrupted() && (err->code == GP_ERR_ABORTED || !err->code)) {
		/* Say what state the image is in: the user decides from it
		 * whether to run the command again. */
		gp_error_set(&e, GP_ERR_ABORTED, "%s: interrupted: %s", p->base_image,
			     !p->committing ? "nothing was written"
			     : p->child_removed ? "the new child was removed; nothing was written"
			     : p->rep.rolled_back ? "what was written was rolled back; the volume is as before the run"
			     : "run the same command again to complete it");
		cli_error_line(gp_status_id(GP_ERR_ABORTED), EXIT_INTERRUPTED, gp_error_message(&e));
		err = &e;
		status = EXIT_INTERRUPTED;
	} else {
		status = cli_fail(err);
	}
	if (p->s.json) {
		struct json_object *extra = json_object_new_object();

		json_object_object_add(extra, "dry_run", json_object_new_boolean(p->dry_run));
		json_object_object_add(extra, "rolled_back",
				       json_object_new_boolean(p->rep.rolled_back));
		cli_fail_json_status("prepare", p->base_image, err, changed, status, extra);
	}
	if (!changed || !p->rep.rolled_back)
		runlog_result(p->base_image, changed);
	else
		runlog("result", "%s: rolled back", p->base_image);
	return status;
}

/* --log (runlog.h): the plan, before anything is written. */
static void log_plan(const struct prepare *p)
{
	const struct gp_inject_set *set = gp_source_set(p->s.src);
	size_t unchanged = 0;

	runlog("plan", "%s: package %s (%s %s) from the %s %s", p->s.image, set->pkg->folder,
	       set->pkg->driver_ver_date, set->pkg->driver_ver_version, gp_source_kind(p->s.src),
	       gp_source_path(p->s.src));
	if (p->into_child)
		runlog("plan", "%s child %s of %s", p->child_exists ? "write into the" : "create the",
		       p->into_child, p->base_image);
	for (size_t i = 0; i < set->count; i++) {
		if (p->rep.actions[i] == GP_INJECT_UNCHANGED)
			unchanged++;
		else
			runlog("plan", "%s %s (%llu bytes)", action_name(p->rep.actions[i]),
			       set->files[i].guest_path, (unsigned long long)set->files[i].size);
	}
	runlog("plan", "%zu files unchanged", unchanged);
	for (size_t i = 0; i < p->rep.n_removed; i++)
		runlog("plan", "remove %s (%llu bytes, stale build)", p->rep.removed[i],
		       (unsigned long long)p->rep.removed_bytes[i]);
	runlog("plan", "space: needs %llu bytes, the volume has %llu free",
	       (unsigned long long)p->rep.space_need, (unsigned long long)p->rep.space_have);
	if (p->host_planned)
		runlog("plan", "host: VM %s, the script %s%s", p->host.plan.vm_name,
		       p->po.apply ? "runs (--apply)" : p->po.output ? "goes to " : "goes to stdout",
		       p->po.apply || !p->po.output ? "" : p->po.output);
}

/* --log: what the run did. */
static void log_done(const struct prepare *p)
{
	const char *image = p->into_child ? p->into_child : p->base_image;

	if (p->dry_run) {
		runlog("action", "dry run: nothing written");
		return;
	}
	runlog("action", "%s: %zu new, %zu replaced, %zu unchanged, %llu bytes written%s", image,
	       p->rep.n_new, p->rep.n_replaced, p->rep.n_unchanged,
	       (unsigned long long)p->rep.bytes_written, p->rep.changed ? "" : " (no change)");
	for (size_t i = 0; i < p->rep.n_removed; i++)
		runlog("action", "removed %s", p->rep.removed[i]);
	if (p->verified >= 0)
		runlog("action", "verified through %s: %s", p->verify_backend,
		       p->verified ? "ok" : "FAILED");
	if (p->host_script)
		runlog("action", "host script: %s", p->host_script);
}

/* A stage boundary: stop here when the user pressed Ctrl-C. */
static int check_interrupt(struct gp_error *err)
{
	return cli_interrupted() ? gp_error_set(err, GP_ERR_ABORTED, "interrupted") : 0;
}

/* The stages in order: plan (child, guest and driver, injection, host),
 * then -- unless -n -- commit, independent verification, host. */
static int run(struct prepare *p)
{
	struct gp_error err = { 0 };
	int ret;

	ret = p->into_child ? plan_child(p, &err) : 0;
	if (!ret)
		ret = plan_guest(p, &err);
	if (!ret)
		ret = plan_inject(p, &err);
	if (!ret)
		ret = plan_host(p, &err);
	if (!ret)
		ret = check_interrupt(&err);
	if (ret)
		return fail(p, &err);
	log_plan(p);
	if (p->dry_run) {
		ret = session_close_image(&p->s, &err);
		if (ret)
			return fail(p, &err);
		if (!p->s.json) {
			list_planned(p);
			if (p->host_planned)
				printf("would configure the host for VM '%s'\n", p->host.plan.vm_name);
		}
	} else {
		ret = commit_inject(p, &err);
		if (p->stream.ops && p->stream.ops->destroy)
			p->stream.ops->destroy(&p->stream);
		p->stream.ops = NULL;
		if (!ret && !p->no_verify)
			ret = verify_independently(p, &err);
		if (!ret)
			ret = check_interrupt(&err);
		if (!ret)
			ret = commit_host(p, &err);
		if (ret)
			return fail(p, &err);
	}
	log_done(p);
	if (p->s.json)
		session_print_json(report_json(p));
	else
		report_human(p);
	return EXIT_OK;
}

/* One image, the whole transaction: run() and the cleanup. @ctx: the
 * parsed options (struct prepare); with several images each runs in its
 * own worker process, on its own copy. */
static int prepare_image(void *ctx, const char *image)
{
	struct prepare *p = ctx;
	int ret;

	p->base_image = p->s.image = image;
	ret = run(p);
	if (p->stream.ops && p->stream.ops->destroy)
		p->stream.ops->destroy(&p->stream);
	plan_opts_prepared_free(&p->host);
	gp_manifest_plan_free(&p->manifest);
	gp_fixup_plan_free(&p->fix);
	gp_inject_report_free(&p->rep);
	gp_guest_facts_free(&p->guest.f);
	session_end(&p->s);
	return ret;
}

int cmd_prepare(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "into-child", required_argument, NULL, OPT_INTO_CHILD },
		{ "keep-old", no_argument, NULL, OPT_KEEP_OLD },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "fixup", required_argument, NULL, OPT_FIXUP },
		SESSION_LONGOPTS,
		PLAN_OPTS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct prepare p = { .verified = -1 };
	size_t n_images;
	unsigned jobs = 0;
	bool list_fixups = false;
	int c;

	session_init(&p.s, "prepare");
	p.s.ntfs_opts.require_windows = true;
	plan_opts_init(&p.po);
	optind = 1;
	while ((c = getopt_long(argc, argv, "hnj:" SESSION_SHORTOPTS PLAN_OPTS_SHORTOPTS, longopts,
				NULL)) != -1) {
		int r = session_handle(&p.s, c, optarg);

		if (r == 0)
			r = plan_opts_handle(&p.po, c, optarg, "prepare");
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case OPT_INTO_CHILD:
			p.into_child = optarg;
			break;
		case OPT_KEEP_OLD:
			p.keep_old = true;
			break;
		case OPT_NO_VERIFY:
			p.no_verify = true;
			break;
		case 'n':
			p.dry_run = true;
			break;
		case 'j':
			if (fleet_parse_jobs("prepare", optarg, &jobs))
				return EXIT_USAGE;
			break;
		case OPT_FIXUP:
			if (!strcmp(optarg, "list")) {
				list_fixups = true;
				break;
			}
			if (!gp_fixup_find(optarg))
				return cli_usage_json("prepare", p.s.json,
						      "unknown fix-up '%s' (gpup prepare --fixup list shows them)",
						      optarg);
			if (p.n_fixups == MAX_FIXUPS)
				return cli_usage_json("prepare", p.s.json, "too many --fixup");
			p.fixups[p.n_fixups++] = optarg;
			break;
		default:
			return cli_usage("prepare", "unknown option");
		}
	}
	if (list_fixups) {
		for (size_t i = 0; i < gp_fixup_count(); i++)
			printf("%-18s %s\n", gp_fixup_at(i)->name, gp_fixup_at(i)->reason);
		return EXIT_OK;
	}
	if (optind == argc)
		return cli_usage_json("prepare", p.s.json, "IMAGE is required");
	n_images = (size_t)(argc - optind);
	/* --gpu is both the driver's GPU and the plan's. */
	p.s.src_opts.gpu = p.po.gpu;
	if (session_require_source(&p.s) >= 0)
		return EXIT_USAGE;
	if (p.po.plan.vm_name && plan_opts_check(&p.po, "prepare") != 0)
		return EXIT_USAGE;
	if (p.po.plan.revert)
		return cli_usage_json("prepare", p.s.json, "--revert removes the host configuration; it cannot go with an injection (use 'gpup hostconf --revert')");
	if (!p.po.plan.vm_name && (p.po.apply || p.po.output))
		return cli_usage_json("prepare", p.s.json, "-o and --apply configure the host and need --vm NAME");
	if (p.s.json && p.po.plan.vm_name && !p.po.output && !p.po.apply)
		return cli_usage_json("prepare", p.s.json, "with --json, the host script needs -o FILE or --apply");
	if (n_images > 1 && (p.into_child || p.po.plan.vm_name || p.s.disk_opts.parent_path))
		return cli_usage_json("prepare", p.s.json, "%s names one image's output; it cannot go with several images (prepare them one by one)",
				      p.into_child ? "--into-child" : p.po.plan.vm_name ? "--vm" : "--parent");
	cli_catch_interrupts();
	if (n_images == 1)
		return prepare_image(&p, argv[optind]);
	/* Workers write no progress bars over each other. */
	p.s.progress = CLI_PROGRESS_NONE;
	return prepare_many(&p.s, argv + optind, n_images, jobs ? jobs : fleet_default_jobs(),
			    prepare_image, &p);
}
