/* cmd_drivers.c — `gpup drivers`: the display driver packages of a host
 * DriverStore, the one chosen for the GPU, and its injection set. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "store.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup drivers --driverstore DIR [--gpu SEL] [--arch amd64|arm64]\n"
		   "                    [--build N] [--json] [--explain] [--allow-missing]\n\n"
		   "List the display driver packages of a host DriverStore, choose the GPU's\n"
		   "package the way Windows ranks drivers, and list the files a GPU-P guest\n"
		   "needs: the package folder (as HostDriverStore), the System32/SysWOW64\n"
		   "files its INF copies, and its CopyINF companion packages.\n\n"
		   "  --driverstore DIR  host root (/mnt/c), its Windows, DriverStore or\n"
		   "                     FileRepository directory (names in any case)\n"
		   "%s"
		   "                    without --gpu, 'auto' is tried and a store with several\n"
		   "                    GPU vendors is just listed\n"
		   "  --arch ARCH        guest architecture (default amd64)\n"
		   "  --build N          guest Windows build number (default: newest)\n"
		   "  --json             machine-readable output\n"
		   "  --explain          say why every candidate package won or lost: the\n"
		   "                     TargetOS decoration Windows reads for the guest, then\n"
		   "                     the rank (FeatureScore, hardware-ID match), DriverVer\n"
		   "  --allow-missing    skip INF-listed files found nowhere instead of failing\n"
		   "  -q, --quiet        no warnings or notes on stderr\n"
		   "  -h, --help         show this help\n", CLI_GPU_HELP);
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
	struct gp_store *s;
	const char *gpu_arg;
	bool gpu_given;
	const char *arch;
	uint32_t build;
	struct gp_resolution *res;
	int res_rc;
	struct gp_inject_set *set;
};

/* ---- human output ---- */

static void print_human(const struct result *r, bool explain)
{
	const struct gp_store *s = r->s;
	size_t nd = 0;

	printf("DriverStore: %s\n", gp_store_repository_dir(s));
	if (gp_store_windows_dir(s))
		printf("Host Windows: %s\n", gp_store_windows_dir(s));
	printf("Guest: %s, build %s", r->arch, r->build ? "" : "newest");
	if (r->build)
		printf("%" PRIu32, r->build);
	printf("\n\nDisplay driver packages:\n");
	for (size_t i = 0; i < gp_store_package_count(s); i++) {
		const struct gp_package *p = gp_store_package(s, i);
		if (!p->is_display)
			continue;
		nd++;
		/* INF strings and file names: escaped (cli_esc()). */
		printf("  %s%s  %s  %s %s  %zu models\n", cli_esc(p->folder),
		       r->res && r->res->pkg == p ? " (chosen)" : "", cli_esc(p->provider),
		       cli_esc(p->driver_ver_date), cli_esc(p->driver_ver_version), p->n_models);
	}
	if (!nd)
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
			printf("  %s  %" PRIu64 "  <- %s", cli_esc(f->guest_path), f->size,
			       cli_esc(f->source_path));
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

/* The listing; with @error (consumed) also the "error" member of a failure. */
static int print_json(const struct result *r, struct json_object *error)
{
	const struct gp_store *s = r->s;
	json_object *root = json_object_new_object(), *pk = json_object_new_array();
	json_object *guest = json_object_new_object();

	json_object_object_add(root, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(root, "command", json_object_new_string("drivers"));
	json_object_object_add(root, "driverstore", jstr(gp_store_repository_dir(s)));
	json_object_object_add(root, "windows_dir", jstr(gp_store_windows_dir(s)));
	json_object_object_add(guest, "arch", jstr(r->arch));
	json_object_object_add(guest, "build", r->build ? json_object_new_uint64(r->build) : NULL);
	json_object_object_add(root, "guest", guest);
	{
		json_object *w = json_object_new_array();
		for (size_t i = 0; i < gp_store_warning_count(s); i++)
			json_object_array_add(w, jstr(gp_store_warning(s, i)));
		json_object_object_add(root, "warnings", w);
	}
	for (size_t i = 0; i < gp_store_package_count(s); i++)
		if (gp_store_package(s, i)->is_display)
			json_object_array_add(pk, package_json(gp_store_package(s, i)));
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

int cmd_drivers(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "driverstore", required_argument, NULL, 'd' },
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
	const char *store_dir = NULL;
	bool json = false, explain = false, allow_missing = false;
	int c, status = EXIT_OK;

	optind = 1;
	opterr = 0;   /* one message, ours */
	while ((c = getopt_long(argc, argv, ":hq", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': store_dir = optarg; break;
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
	if (!store_dir)
		return cli_usage("drivers", "--driverstore DIR is required");
	if (strcmp(r.arch, "amd64") != 0 && strcmp(r.arch, "arm64") != 0)
		return cli_usage("drivers", "--arch is amd64 or arm64, not '%s'", r.arch);

	if (gp_store_open(store_dir, &r.s, &err))
		return cli_fail_cmd("drivers", json, NULL, &err);
	for (size_t i = 0; i < gp_store_warning_count(r.s); i++)
		cli_warn("%s", gp_store_warning(r.s, i));
	{
		struct gp_guest_target t = { .arch = r.arch, .build = r.build };
		r.res_rc = gp_store_resolve(r.s, r.gpu_arg, &t, &r.res);
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
		if (gp_store_injection_set(r.s, r.res->pkg, r.res->model, &o, &r.set)) {
			gp_error_copy(&err, gp_store_error(r.s));
			status = cli_fail_cmd("drivers", json, NULL, &err);
			goto out;
		}
		for (size_t i = 0; i < r.set->n_notes; i++)
			cli_warn("%s", r.set->notes[i]);
		for (size_t i = 0; i < r.set->n_missing; i++)
			cli_warn("%s: no source found, skipped (--allow-missing)", r.set->missing[i]);
	}
	if (json ? print_json(&r, NULL) : (print_human(&r, explain), fflush(stdout))) {
		gp_error_set(&err, GP_ERR_IO, "standard output: write failed");
		status = cli_fail(&err);
	}
out:
	gp_inject_set_free(r.set);
	gp_resolution_free(r.res);
	gp_store_close(r.s);
	return status;
}
