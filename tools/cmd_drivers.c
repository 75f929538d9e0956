/* cmd_drivers.c — `gpup drivers`: the display driver packages of a host
 * DriverStore (or the package of a bundle), the one chosen for the GPU,
 * and its injection set for a guest build. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "bundle.h"
#include "cli.h"
#include "source.h"
#include "store.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup drivers (--driverstore DIR | --bundle FILE) [--gpu SEL]\n"
		   "                    [--arch amd64|arm64] [--build N] [--json] [--explain]\n"
		   "                    [--allow-missing]\n\n"
		   "List the display driver packages of a host DriverStore, choose the GPU's\n"
		   "package the way Windows ranks drivers, and list the files a GPU-P guest\n"
		   "needs: the package folder (as HostDriverStore), the System32/SysWOW64\n"
		   "files its INF copies, and its CopyINF companion packages.\n"
		   "With --bundle, show the bundle's package (provider, DriverVer, the GPU and\n"
		   "hardware IDs it carries) and the files `prepare --bundle` injects into a\n"
		   "guest of build N, resolved from the bundle's INF as prepare resolves them.\n\n"
		   "  --driverstore DIR  host root (/mnt/c), its Windows, DriverStore or\n"
		   "                     FileRepository directory (names in any case)\n"
		   "  --bundle FILE      a bundle from `gpup bundle create` (not with --driverstore)\n"
		   "%s"
		   "                    without --gpu, 'auto' is tried and a store with several\n"
		   "                    GPU vendors is just listed\n"
		   "  --arch ARCH        guest architecture (default amd64)\n"
		   "  --build N          guest Windows build number (default: newest, i.e. every\n"
		   "                     TargetOS build requirement met; prepare reads the\n"
		   "                     guest's build from the image, so give the guest's)\n"
		   "  --json             machine-readable output\n"
		   "  --explain          say why every candidate package won or lost: the\n"
		   "                     TargetOS decoration Windows reads for the guest, then\n"
		   "                     the rank (FeatureScore, hardware-ID match), DriverVer\n"
		   "  --allow-missing    skip INF-listed files found nowhere instead of failing\n"
		   "  -q, --quiet        no warnings or notes on stderr\n"
		   "  -h, --help         show this help\n\n"
		   "Exit status: 0 ok, 1 error (no package for the GPU, a corrupt, hostile or\n"
		   "format-1 bundle), 2 usage.\n", CLI_GPU_HELP);
}

static const char *role_name(enum gp_inject_role r)
{
	switch (r) {
	case GP_INJECT_PACKAGE: return "package";
	case GP_INJECT_COMPANION: return "companion";
	case GP_INJECT_COPYINF_PACKAGE: return "copyinf-package";
	}
	return "?";
}

static const char *rank_text(enum gp_match_rank r)
{
	switch (r) {
	case GP_MATCH_NONE: return "none";
	case GP_MATCH_VEN_DEV: return "VEN&DEV";
	case GP_MATCH_VEN_DEV_REV: return "VEN&DEV&REV";
	case GP_MATCH_VEN_DEV_SUBSYS: return "VEN&DEV&SUBSYS";
	case GP_MATCH_VEN_DEV_SUBSYS_REV: return "VEN&DEV&SUBSYS&REV";
	}
	return "?";
}

struct result {
	struct gp_store *s;             /* --driverstore */
	struct gp_source *src;          /* --bundle */
	struct gp_bundle *b;            /* src's bundle (NULL when it did not open) */
	const char *gpu_arg;
	bool gpu_given;
	const char *arch;
	uint32_t build;
	const struct gp_resolution *res;
	int res_rc;
	const struct gp_inject_set *set;
};

/* ---- human output ---- */

/* The bundle's manifest: what it carries, whichever guest it is for. */
static void print_bundle(const struct result *r)
{
	const struct gp_bundle_info *bi = gp_bundle_info(r->b);
	const struct gp_package *p = gp_bundle_inject_set(r->b)->pkg;

	/* The bundle's manifest and INF are file contents: escaped (cli_esc()). */
	printf("Bundle: %s (%s, format %u, gpup %s)\n", cli_esc(bi->path), bi->archive_format,
	       bi->format_version, cli_esc(bi->tool_version));
	printf("Package: %s  %s  %s  %s %s\n", cli_esc(p->folder), cli_esc(p->inf_name),
	       cli_esc(p->provider), cli_esc(p->driver_ver_date), cli_esc(p->driver_ver_version));
	printf("Made for GPU: %s\n", bi->gpu ? cli_esc(bi->gpu) : "(not recorded)");
	printf("Hardware IDs:%s\n", bi->n_hardware_ids ? "" : " (none)");
	for (size_t i = 0; i < bi->n_hardware_ids; i++)
		printf("  %s\n", cli_esc(bi->hardware_ids[i]));
}

static void print_human(const struct result *r, bool explain)
{
	const struct gp_store *s = r->s;
	size_t nd = 0;

	if (s) {
		printf("DriverStore: %s\n", gp_store_repository_dir(s));
		if (gp_store_windows_dir(s))
			printf("Host Windows: %s\n", gp_store_windows_dir(s));
	} else {
		print_bundle(r);
	}
	printf("Guest: %s, build %s", r->arch, r->build ? "" : "newest");
	if (r->build)
		printf("%" PRIu32, r->build);
	else if (!s)
		printf(" (no --build: prepare uses the image's build)");
	putchar('\n');
	if (s)
		printf("\nDisplay driver packages:\n");
	for (size_t i = 0; s && i < gp_store_package_count(s); i++) {
		const struct gp_package *p = gp_store_package(s, i);
		if (!p->is_display)
			continue;
		nd++;
		/* INF strings and file names: escaped (cli_esc()). */
		printf("  %s%s  %s  %s %s  %zu models\n", cli_esc(p->folder),
		       r->res && r->res->pkg == p ? " (chosen)" : "", cli_esc(p->provider),
		       cli_esc(p->driver_ver_date), cli_esc(p->driver_ver_version), p->n_models);
	}
	if (s && !nd)
		printf("  (none)\n");
	if (r->res) {
		char id[64];
		putchar('\n');
		if (!r->res->automatic) {
			gp_gpu_id_format(&r->res->gpu, id, sizeof(id));
			printf("GPU: %s\n", id);
		} else {
			printf("GPU: auto\n");
		}
		if (r->res->pkg) {
			printf("Chosen: %s (%s %s)\n", cli_esc(r->res->pkg->folder),
			       cli_esc(r->res->pkg->inf_name), cli_esc(r->res->pkg->driver_ver_version));
			if (r->res->model)
				printf("  model \"%s\", install section [%s], matched %s (%s)\n",
				       cli_esc(r->res->model->description),
				       cli_esc(r->res->model->install_section),
				       cli_esc(r->res->cands[0].matched_id),
				       rank_text(r->res->cands[0].rank));
		} else {
			printf("Chosen: none\n");
		}
		if (explain) {
			printf("\nCandidates:\n");
			for (size_t i = 0; i < r->res->n_cands; i++) {
				const struct gp_candidate *c = &r->res->cands[i];
				printf("  %-7s %s: %s\n", c->verdict == GP_CAND_CHOSEN ? "WON" : "lost",
				       cli_esc(c->pkg->folder), cli_esc(c->why));
				/* The steps behind the verdict: which models
				 * section Windows reads, then the rank. */
				if (c->target_why)
					printf("          %s\n", cli_esc(c->target_why));
				if (c->rank_why)
					printf("          %s\n", cli_esc(c->rank_why));
			}
		}
	}
	if (r->set) {
		const struct gp_inject_set *set = r->set;
		printf("\nInjection set: %zu files, %" PRIu64 " bytes\n", set->count, set->total_bytes);
		for (size_t i = 0; i < set->count; i++) {
			const struct gp_inject_file *f = &set->files[i];
			printf("  %s  %" PRIu64, cli_esc(f->guest_path), f->size);
			if (f->source_path)  /* a bundle's files come from the archive */
				printf("  <- %s", cli_esc(f->source_path));
			if (f->role == GP_INJECT_COMPANION)
				printf("  [%s]", cli_esc(f->origin));
			putchar('\n');
		}
		for (size_t i = 0; i < set->n_copyinf; i++)
			printf("CopyINF: %s -> %s\n", cli_esc(set->copyinf[i]->inf_name),
			       cli_esc(set->copyinf[i]->folder));
		for (size_t i = 0; i < set->n_copyinf_missing; i++)
			printf("CopyINF: %s -> not in the DriverStore (skipped, as Windows does)\n",
			       cli_esc(set->copyinf_missing[i]));
		for (size_t i = 0; i < set->n_missing; i++)
			printf("Missing (skipped): %s\n", cli_esc(set->missing[i]));
	}
}

/* ---- JSON output ---- */

static json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *package_json(const struct gp_package *p)
{
	json_object *o = json_object_new_object(), *ids = json_object_new_array();

	json_object_object_add(o, "folder", jstr(p->folder));
	json_object_object_add(o, "path", jstr(p->dir_path));
	json_object_object_add(o, "inf", jstr(p->inf_name));
	json_object_object_add(o, "arch", jstr(p->arch));
	json_object_object_add(o, "class", jstr(p->class_name));
	json_object_object_add(o, "class_guid", jstr(p->class_guid));
	json_object_object_add(o, "provider", jstr(p->provider));
	json_object_object_add(o, "driver_date", jstr(p->driver_ver_date));
	json_object_object_add(o, "driver_version", jstr(p->driver_ver_version));
	json_object_object_add(o, "display", json_object_new_boolean(p->is_display));
	json_object_object_add(o, "models", json_object_new_uint64(p->n_models));
	for (size_t m = 0; m < p->n_models; m++) {
		const struct gp_model *mo = &p->models[m];
		json_object *x = json_object_new_object(), *a = json_object_new_array();
		json_object_object_add(x, "description", jstr(mo->description));
		json_object_object_add(x, "install_section", jstr(mo->install_section));
		json_object_object_add(x, "target_os", jstr(p->targets[mo->target].decoration));
		json_object_object_add(x, "line", json_object_new_uint64(mo->lineno));
		json_object_object_add(x, "feature_score", json_object_new_int(mo->feature_score));
		json_object_object_add(x, "install_section_missing",
				       json_object_new_boolean(mo->no_install));
		for (size_t k = 0; k < mo->n_ids; k++)
			json_object_array_add(a, jstr(mo->ids[k]));
		json_object_object_add(x, "ids", a);
		json_object_array_add(ids, x);
	}
	json_object_object_add(o, "model_list", ids);
	return o;
}

static json_object *strs_json(char *const *a, size_t n)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, jstr(a[i]));
	return arr;
}

static json_object *bundle_json(struct gp_bundle *b)
{
	const struct gp_bundle_info *bi = gp_bundle_info(b);
	json_object *o = json_object_new_object();

	json_object_object_add(o, "path", jstr(bi->path));
	json_object_object_add(o, "archive_format", jstr(bi->archive_format));
	json_object_object_add(o, "format_version", json_object_new_uint64(bi->format_version));
	json_object_object_add(o, "tool_version", jstr(bi->tool_version));
	json_object_object_add(o, "gpu", jstr(bi->gpu));
	json_object_object_add(o, "hardware_ids",
			       strs_json((char *const *)bi->hardware_ids, bi->n_hardware_ids));
	return o;
}

/* The listing; with @error (consumed) also the "error" member of a failure. */
static int print_json(const struct result *r, struct json_object *error)
{
	const struct gp_store *s = r->s;
	json_object *root = json_object_new_object(), *pk = json_object_new_array();
	json_object *guest = json_object_new_object();

	json_object_object_add(root, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(root, "command", json_object_new_string("drivers"));
	json_object_object_add(root, "driverstore", s ? jstr(gp_store_repository_dir(s)) : NULL);
	json_object_object_add(root, "windows_dir", s ? jstr(gp_store_windows_dir(s)) : NULL);
	json_object_object_add(root, "bundle", r->b ? bundle_json(r->b) : NULL);
	json_object_object_add(guest, "arch", jstr(r->arch));
	json_object_object_add(guest, "build", r->build ? json_object_new_uint64(r->build) : NULL);
	json_object_object_add(root, "guest", guest);
	{
		json_object *w = json_object_new_array();
		for (size_t i = 0; s && i < gp_store_warning_count(s); i++)
			json_object_array_add(w, jstr(gp_store_warning(s, i)));
		json_object_object_add(root, "warnings", w);
	}
	for (size_t i = 0; s && i < gp_store_package_count(s); i++)
		if (gp_store_package(s, i)->is_display)
			json_object_array_add(pk, package_json(gp_store_package(s, i)));
	/* A bundle's one package, as the INF it carries describes it. */
	if (!s && r->res && r->res->pkg)
		json_object_array_add(pk, package_json(r->res->pkg));
	json_object_object_add(root, "packages", pk);
	json_object_object_add(root, "gpu", jstr(r->gpu_arg));
	if (r->res) {
		json_object *ch = NULL, *cands = json_object_new_array();
		char id[64] = "";

		if (!r->res->automatic)
			gp_gpu_id_format(&r->res->gpu, id, sizeof(id));
		json_object_object_add(root, "hardware_id", *id ? jstr(id) : NULL);
		if (r->res->pkg) {
			ch = json_object_new_object();
			json_object_object_add(ch, "folder", jstr(r->res->pkg->folder));
			json_object_object_add(ch, "inf", jstr(r->res->pkg->inf_name));
			json_object_object_add(ch, "install_section",
					       r->res->model ? jstr(r->res->model->install_section) : NULL);
			json_object_object_add(ch, "matched_id", jstr(r->res->cands[0].matched_id));
			json_object_object_add(ch, "match", jstr(rank_text(r->res->cands[0].rank)));
		}
		json_object_object_add(root, "chosen", ch);
		for (size_t i = 0; i < r->res->n_cands; i++) {
			const struct gp_candidate *c = &r->res->cands[i];
			json_object *o = json_object_new_object();
			json_object_object_add(o, "folder", jstr(c->pkg->folder));
			json_object_object_add(o, "verdict", jstr(gp_candidate_verdict_name(c->verdict)));
			json_object_object_add(o, "won", json_object_new_boolean(c->verdict == GP_CAND_CHOSEN));
			json_object_object_add(o, "match", jstr(rank_text(c->rank)));
			json_object_object_add(o, "matched_id", jstr(c->matched_id));
			json_object_object_add(o, "compatible_id", json_object_new_boolean(c->compatible));
			json_object_object_add(o, "why", jstr(c->why));
			json_object_object_add(o, "target_os_decision", jstr(c->target_why));
			json_object_object_add(o, "rank", c->model ? json_object_new_uint64(c->score) : NULL);
			json_object_object_add(o, "feature_score",
					       c->model ? json_object_new_int(c->feature_score) : NULL);
			json_object_object_add(o, "rank_why", jstr(c->rank_why));
			json_object_array_add(cands, o);
		}
		json_object_object_add(root, "candidates", cands);
	} else {
		json_object_object_add(root, "chosen", NULL);
	}
	if (r->set) {
		const struct gp_inject_set *set = r->set;
		json_object *inj = json_object_new_object(), *files = json_object_new_array();
		json_object *ci = json_object_new_array();

		for (size_t i = 0; i < set->count; i++) {
			const struct gp_inject_file *f = &set->files[i];
			json_object *o = json_object_new_object();
			json_object_object_add(o, "guest_path", jstr(f->guest_path));
			json_object_object_add(o, "source_path", jstr(f->source_path));
			json_object_object_add(o, "size", json_object_new_uint64(f->size));
			json_object_object_add(o, "mtime", json_object_new_int64(f->mtime));
			json_object_object_add(o, "role", jstr(role_name(f->role)));
			json_object_object_add(o, "origin", jstr(f->origin));
			json_object_array_add(files, o);
		}
		for (size_t i = 0; i < set->n_copyinf; i++)
			json_object_array_add(ci, jstr(set->copyinf[i]->folder));
		json_object_object_add(inj, "count", json_object_new_uint64(set->count));
		json_object_object_add(inj, "total_bytes", json_object_new_uint64(set->total_bytes));
		json_object_object_add(inj, "folders", strs_json(set->folders, set->n_folders));
		json_object_object_add(inj, "copyinf", ci);
		json_object_object_add(inj, "copyinf_missing",
				       strs_json(set->copyinf_missing, set->n_copyinf_missing));
		json_object_object_add(inj, "missing", strs_json(set->missing, set->n_missing));
		json_object_object_add(inj, "notes", strs_json(set->notes, set->n_notes));
		json_object_object_add(inj, "files", files);
		json_object_object_add(root, "injection", inj);
	} else {
		json_object_object_add(root, "injection", NULL);
	}
	if (error)
		json_object_object_add(root, "error", error);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return fflush(stdout) == 0 ? 0 : -1;
}

/* Warnings of a computed set: what was skipped. */
static void warn_set(const struct gp_inject_set *set)
{
	for (size_t i = 0; i < set->n_notes; i++)
		cli_warn("%s", set->notes[i]);
	for (size_t i = 0; i < set->n_missing; i++)
		cli_warn("%s: no source found, skipped (--allow-missing)", set->missing[i]);
}

static int print_result(const struct result *r, bool json, bool explain, struct gp_error *err)
{
	if (json ? print_json(r, NULL) : (print_human(r, explain), fflush(stdout))) {
		gp_error_set(err, GP_ERR_IO, "standard output: write failed");
		return cli_fail(err);
	}
	return EXIT_OK;
}

/* --bundle: the source prepare uses (source.h), so that the set shown is
 * the one prepare would inject into a guest of this build. */
static int run_bundle(struct result *r, const char *path, bool json, bool explain,
		      bool allow_missing)
{
	struct gp_source_opts o = {
		.bundle = path,
		.gpu = r->gpu_given ? r->gpu_arg : NULL,
		.target = { .arch = r->arch, .build = r->build },
		.allow_missing = allow_missing,
	};
	struct gp_error err = { 0 };
	int status;

	if (gp_source_open(&o, &r->src, &err)) {
		r->b = r->src ? gp_source_bundle(r->src) : NULL;
		r->res = r->src ? gp_source_resolution(r->src) : NULL;
		/* A resolution that failed is explained as for a DriverStore. */
		if (r->b && r->res) {
			if (explain && !json)
				print_human(r, explain);
			status = cli_fail(&err);
			if (json)
				print_json(r, cli_error_json(&err, status));
		} else {
			status = cli_fail_cmd("drivers", json, NULL, &err);
		}
	} else {
		r->b = gp_source_bundle(r->src);
		r->res = gp_source_resolution(r->src);
		r->set = gp_source_set(r->src);
		warn_set(r->set);
		status = print_result(r, json, explain, &err);
	}
	gp_source_close(r->src);
	return status;
}

int cmd_drivers(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "driverstore", required_argument, NULL, 'd' },
		{ "bundle", required_argument, NULL, 'B' },
		{ "gpu", required_argument, NULL, 'g' },
		{ "arch", required_argument, NULL, 'a' },
		{ "build", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "explain", no_argument, NULL, 'e' },
		{ "allow-missing", no_argument, NULL, 'm' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct result r = { .gpu_arg = "auto", .arch = "amd64" };
	struct gp_error err = { 0 };
	const char *store_dir = NULL, *bundle = NULL;
	struct gp_resolution *res = NULL;
	struct gp_inject_set *set = NULL;
	bool json = false, explain = false, allow_missing = false;
	int c, status = EXIT_OK;

	optind = 1;
	opterr = 0;   /* one message, ours */
	while ((c = getopt_long(argc, argv, ":hq", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': store_dir = optarg; break;
		case 'B': bundle = optarg; break;
		case 'g':
			if (cli_gpu_option("drivers", optarg))
				return EXIT_USAGE;
			r.gpu_arg = optarg;
			r.gpu_given = true;
			break;
		case 'a': r.arch = optarg; break;
		case 'b': {
			char *end;
			unsigned long v;
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || v == 0 || v > UINT32_MAX)
				return cli_usage("drivers", "--build wants a Windows build number, not '%s'",
						 optarg);
			r.build = (uint32_t)v;
			break;
		}
		case 'j': json = true; break;
		case 'e': explain = true; break;
		case 'm': allow_missing = true; break;
		case 'q': cli_output_quiet(true); break;
		case 'h': usage(stdout); return EXIT_OK;
		case ':': return cli_usage("drivers", "%s needs an argument", argv[optind - 1]);
		default: return cli_usage("drivers", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage("drivers", "unexpected argument '%s'", argv[optind]);
	if (store_dir && bundle)
		return cli_usage("drivers", "--driverstore and --bundle exclude each other");
	if (!store_dir && !bundle)
		return cli_usage("drivers", "--driverstore DIR or --bundle FILE is required");
	if (strcmp(r.arch, "amd64") != 0 && strcmp(r.arch, "arm64") != 0)
		return cli_usage("drivers", "--arch is amd64 or arm64, not '%s'", r.arch);
	if (bundle)
		return run_bundle(&r, bundle, json, explain, allow_missing);

	if (gp_store_open(store_dir, &r.s, &err))
		return cli_fail_cmd("drivers", json, NULL, &err);
	for (size_t i = 0; i < gp_store_warning_count(r.s); i++)
		cli_warn("%s", gp_store_warning(r.s, i));
	{
		struct gp_guest_target t = { .arch = r.arch, .build = r.build };
		r.res_rc = gp_store_resolve(r.s, r.gpu_arg, &t, &res);
		r.res = res;
	}
	if (r.res_rc && (r.gpu_given || (r.res_rc != GP_ERR_INVALID && r.res_rc != GP_ERR_NOTFOUND))) {
		/* Print what is known (--explain shows why each lost), then fail. */
		gp_error_copy(&err, gp_store_error(r.s));
		if (explain && !json)
			print_human(&r, explain);
		status = cli_fail(&err);
		if (json)
			print_json(&r, cli_error_json(&err, status));
		goto out;
	}
	if (r.res_rc) {
		/* No --gpu and "auto" cannot decide: a listing, not an error. */
		cli_note("note: %s", gp_error_message(gp_store_error(r.s)));
	} else {
		struct gp_inject_opts o = { .allow_missing = allow_missing };
		if (gp_store_injection_set(r.s, r.res->pkg, r.res->model, &o, &set)) {
			gp_error_copy(&err, gp_store_error(r.s));
			status = cli_fail_cmd("drivers", json, NULL, &err);
			goto out;
		}
		r.set = set;
		warn_set(set);
	}
	status = print_result(&r, json, explain, &err);
out:
	gp_inject_set_free(set);
	gp_resolution_free(res);
	gp_store_close(r.s);
	return status;
}
