/* cmd_bundle.c — `gpup bundle create|list|verify`: capture a resolved driver
 * injection set into one reproducible archive, show it, check it. The work
 * is in drivers/bundle.h; this file parses options and prints. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bundle.h"
#include "cli.h"
#include "source.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpup bundle create --driverstore DIR [--gpu SEL] [--arch A] [--build N]\n"
		"                          [--allow-missing] [--progress[=json|tty|none]] [-q] -o FILE\n"
		"       gpup bundle list FILE [--json]\n"
		"       gpup bundle verify FILE [--json] [--progress[=json|tty|none]] [-q]\n\n"
		"A bundle holds the GPU driver's package folder with its INF, its CopyINF packages\n"
		"and every System32/SysWOW64 file the INF may copy for any device and Windows\n"
		"build, at their guest paths, with a manifest (%s, first entry) of\n"
		"every file's size and SHA-256. `prepare`, `verify` and `doctor` take --bundle FILE\n"
		"in place of --driverstore DIR and choose the files for the guest's build from the\n"
		"bundle's INF, as from a DriverStore; `gpup drivers --bundle FILE --build N`\n"
		"shows the files a guest of build N gets.\n\n"
		"create    resolve the GPU's driver in the host DriverStore DIR and write FILE;\n"
		"          the format comes from FILE's extension: %s.\n"
		"          The same inputs always give a byte-identical FILE.\n"
		"  --driverstore DIR   host root, Windows, DriverStore or FileRepository directory\n"
		CLI_GPU_HELP
		"  --arch A            architecture to choose the package for (default: amd64)\n"
		"  --build N           Windows build to choose the package for (default: newest)\n"
		"  --allow-missing     skip INF-listed files found nowhere instead of failing\n"
		"  -o, --output FILE   the bundle to write (replaced atomically)\n"
		"list      show the manifest: package, hardware IDs, files with size and SHA-256.\n"
		"verify    read every file and check it against the manifest.\n"
		"  --json              (list, verify) machine-readable output\n"
		"  -p, --progress[=json|tty|none]  (create, verify) progress on stderr\n"
		"  -q, --quiet         nothing on stderr unless the command fails\n\n"
		"Exit status: 0 ok, 1 error (also a corrupt or hostile archive), 2 usage,\n"
		"4 a file's size or SHA-256 differs from the manifest.\n",
		GP_BUNDLE_MANIFEST_NAME, gp_bundle_extensions());
}

enum { OPT_PROGRESS = 256, OPT_ALLOW_MISSING, OPT_JSON, OPT_DRIVERSTORE, OPT_GPU, OPT_ARCH,
       OPT_BUILD };

static const struct option long_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "output", required_argument, NULL, 'o' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "progress", optional_argument, NULL, OPT_PROGRESS },
	{ "allow-missing", no_argument, NULL, OPT_ALLOW_MISSING },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "driverstore", required_argument, NULL, OPT_DRIVERSTORE },
	{ "gpu", required_argument, NULL, OPT_GPU },
	{ "arch", required_argument, NULL, OPT_ARCH },
	{ "build", required_argument, NULL, OPT_BUILD },
	{ NULL, 0, NULL, 0 },
};

struct opts {
	const char *sub;
	/* "bundle create", "bundle list", "bundle verify" (or "bundle" before
	 * a known subcommand): the command in messages and JSON. */
	char name[16];
	const char *output, *driverstore, *gpu, *arch, *file;
	unsigned long build;
	bool allow_missing, json, quiet;
	enum cli_progress_mode progress;
	/* Which options were given, to refuse the ones a subcommand ignores. */
	bool create_only, has_progress;
};

/* Parse argv after the subcommand. Returns 0, 2 (usage, printed), or -1
 * for --help (printed). */
static int parse(int argc, char **argv, struct opts *o)
{
	const char *cmd = o->name;
	int c;

	o->progress = CLI_PROGRESS_AUTO;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "ho:q", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return -1;
		case 'o':
			o->output = optarg;
			o->create_only = true;
			break;
		case 'q':
			o->quiet = true;
			cli_output_quiet(true);
			break;
		case OPT_PROGRESS:
			o->has_progress = true;
			if (cli_progress_option(cmd, optarg, &o->progress))
				return EXIT_USAGE;
			break;
		case OPT_ALLOW_MISSING:
			o->allow_missing = true;
			o->create_only = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_DRIVERSTORE:
			o->driverstore = optarg;
			o->create_only = true;
			break;
		case OPT_GPU:
			if (cli_gpu_option(cmd, optarg))
				return EXIT_USAGE;
			o->gpu = optarg;
			o->create_only = true;
			break;
		case OPT_ARCH:
			o->arch = optarg;
			o->create_only = true;
			break;
		case OPT_BUILD: {
			char *end;

			o->build = strtoul(optarg, &end, 10);
			if (!*optarg || *end || o->build > UINT32_MAX)
				return cli_usage(cmd, "--build '%s': expected a Windows build number",
						 optarg);
			o->create_only = true;
			break;
		}
		case '?':
		default:
			if (optopt)
				return cli_usage(cmd, "option '-%c' is unknown or lacks its argument",
						 optopt);
			return cli_usage(cmd, "option '%s' is unknown or lacks its argument",
					 argv[optind - 1]);
		}
	}
	if (optind < argc)
		o->file = argv[optind++];
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

static enum cli_progress_mode progress_mode(const struct opts *o)
{
	return o->quiet ? CLI_PROGRESS_NONE : o->progress;
}

/* ---- create ------------------------------------------------------------ */

static int do_create(const struct opts *o)
{
	struct gp_source_opts so = {
		.driverstore = o->driverstore,
		.gpu = o->gpu ? o->gpu : "auto",
		.target = { .arch = o->arch, .build = (uint32_t)o->build },
		.allow_missing = o->allow_missing,
		/* Every file the INF may copy: the guest's build picks at
		 * inject time (bundle.h). */
		.every_model = true,
	};
	struct gp_bundle_create_opts bo = { .tool_version = GPUP_VERSION };
	struct gp_error err = { 0 };
	struct gp_source *src = NULL;
	const struct gp_inject_set *set;
	const struct gp_resolution *res;
	struct cli_progress cp;
	char gpu[64] = "auto";
	int ret;

	if (o->file)
		return cli_usage(o->name, "create takes no FILE argument (use -o FILE)");
	if (!o->driverstore)
		return cli_usage(o->name, "create needs --driverstore DIR");
	if (!o->output)
		return cli_usage(o->name, "create needs -o FILE");
	if (o->json)
		return cli_usage(o->name, "--json is for list and verify");
	if (gp_bundle_format_from_path(o->output, &bo.format, &err))
		return cli_usage(o->name, "%s", gp_error_message(&err));
	ret = gp_source_open(&so, &src, &err);
	for (size_t i = 0; src && !o->quiet && i < gp_source_warning_count(src); i++)
		cli_warn("%s", gp_source_warning(src, i));
	if (ret) {
		gp_source_close(src);
		return cli_fail(&err);
	}
	set = gp_source_set(src);
	res = gp_source_resolution(src);
	bo.model = res ? res->model : NULL;
	if (res && !res->automatic)
		gp_gpu_id_format(&res->gpu, gpu, sizeof(gpu));
	bo.gpu = gpu;
	for (size_t i = 0; !o->quiet && i < set->n_missing; i++)
		cli_warn("%s: found nowhere, not in the bundle (--allow-missing)", set->missing[i]);
	cli_progress_init(&cp, progress_mode(o));
	bo.progress = &cp.progress;
	ret = gp_bundle_create(o->output, set, &bo, &err);
	cli_progress_done(&cp);
	if (ret) {
		gp_source_close(src);
		return cli_fail(&err);
	}
	if (!o->quiet)
		printf("%s: %s, %zu files, %llu bytes (%s)\n", o->output, set->pkg->folder, set->count,
		       (unsigned long long)set->total_bytes, gp_bundle_format_name(bo.format));
	gp_source_close(src);
	return EXIT_OK;
}

/* ---- list -------------------------------------------------------------- */

static int list_json(struct gp_bundle *b)
{
	const struct gp_bundle_info *bi = gp_bundle_info(b);
	struct json_object *root = json_tokener_parse(bi->manifest_json), *out;
	int ret = EXIT_OK;

	/* The manifest parsed once already (gp_bundle_open); this second
	 * parse only fails when memory does. */
	out = json_object_new_object();
	if (!root || !out) {
		fprintf(stderr, "gpup: out of memory\n");
		ret = EXIT_ERROR;
		goto out;
	}
	json_object_object_add(out, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(out, "bundle", json_object_new_string(bi->path));
	json_object_object_add(out, "command", json_object_new_string("bundle list"));
	json_object_object_add(out, "archive_format", json_object_new_string(bi->archive_format));
	json_object_object_add(out, "archive_size", json_object_new_int64((int64_t)bi->archive_size));
	json_object_object_add(out, "manifest", json_object_get(root));
	puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(root);
	json_object_put(out);
	return ret;
}

static void list_text(struct gp_bundle *b)
{
	const struct gp_bundle_info *bi = gp_bundle_info(b);
	const struct gp_inject_set *set = gp_bundle_inject_set(b);
	const struct gp_package *p = set->pkg;

	printf("bundle:       %s (%s, %llu bytes; format %u, made by gpup %s)\n", bi->path,
	       bi->archive_format, (unsigned long long)bi->archive_size, bi->format_version,
	       bi->tool_version);
	printf("package:      %s\n", p->folder);
	printf("inf:          %s (%s, %s %s, %s)\n", p->inf_name, p->provider, p->driver_ver_date,
	       p->driver_ver_version, p->arch);
	for (size_t i = 0; i < bi->n_hardware_ids; i++)
		printf("%s %s\n", i ? "             " : "hardware ID: ", bi->hardware_ids[i]);
	for (size_t i = 0; i < set->n_copyinf; i++)
		printf("copyinf:      %s\n", set->copyinf[i]->folder);
	for (size_t i = 0; i < set->n_missing; i++)
		printf("missing:      %s\n", set->missing[i]);
	printf("files:        %zu, %llu bytes\n", set->count, (unsigned long long)set->total_bytes);
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		char hex[65];

		for (int k = 0; k < 32; k++)
			snprintf(hex + 2 * k, 3, "%02x", f->sha256[k]);
		printf("  %-15s %12llu  %s  %s\n", gp_bundle_role_name(f->role),
		       (unsigned long long)f->size, hex, f->guest_path);
	}
}

/* A failed list or verify: its line, and with --json the failure object
 * naming the bundle; verify's also says what the manifest holds (@b, when
 * it could be read). */
static int bundle_fail(const struct opts *o, struct gp_bundle *b, const struct gp_error *err)
{
	struct json_object *extra;
	int status = cli_fail(err);

	if (!o->json)
		return status;
	extra = json_object_new_object();
	json_object_object_add(extra, "bundle", json_object_new_string(o->file));
	if (!strcmp(o->sub, "verify")) {
		json_object_object_add(extra, "ok", json_object_new_boolean(false));
		if (b) {
			const struct gp_inject_set *set = gp_bundle_inject_set(b);

			json_object_object_add(extra, "files", json_object_new_int64((int64_t)set->count));
			json_object_object_add(extra, "total_bytes",
					       json_object_new_int64((int64_t)set->total_bytes));
		}
	}
	return cli_fail_json_status(o->name, NULL, err, false, status, extra);
}

static int do_list(const struct opts *o)
{
	struct gp_error err = { 0 };
	struct gp_bundle *b;
	int ret;

	if (!o->file)
		return cli_usage(o->name, "list needs a bundle FILE");
	if (o->create_only || o->has_progress)
		return cli_usage(o->name, "list takes only FILE and --json");
	if (gp_bundle_open(o->file, &b, &err))
		return bundle_fail(o, NULL, &err);
	if (o->json) {
		ret = list_json(b);
	} else {
		list_text(b);
		ret = EXIT_OK;
	}
	gp_bundle_close(b);
	return ret;
}

/* ---- verify ------------------------------------------------------------ */

static int do_verify(const struct opts *o)
{
	struct gp_error err = { 0 };
	struct gp_bundle *b = NULL;
	struct cli_progress cp;
	int ret;

	if (!o->file)
		return cli_usage(o->name, "verify needs a bundle FILE");
	if (o->create_only)
		return cli_usage(o->name, "verify takes only FILE, --json, --progress and -q");
	ret = gp_bundle_open(o->file, &b, &err);
	if (!ret) {
		cli_progress_init(&cp, progress_mode(o));
		ret = gp_bundle_verify(b, &cp.progress, &err);
		cli_progress_done(&cp);
	}
	if (ret) {
		ret = bundle_fail(o, b, &err);
		gp_bundle_close(b);
		return ret;
	}
	if (o->json) {
		const struct gp_inject_set *set = gp_bundle_inject_set(b);
		struct json_object *out = json_object_new_object();

		json_object_object_add(out, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
		json_object_object_add(out, "bundle", json_object_new_string(o->file));
		json_object_object_add(out, "command", json_object_new_string("bundle verify"));
		json_object_object_add(out, "ok", json_object_new_boolean(true));
		json_object_object_add(out, "files", json_object_new_int64((int64_t)set->count));
		json_object_object_add(out, "total_bytes",
				       json_object_new_int64((int64_t)set->total_bytes));
		puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(out);
	}
	if (!o->json && !o->quiet) {
		const struct gp_inject_set *set = gp_bundle_inject_set(b);

		printf("%s: %zu files, %llu bytes: all match the manifest\n", o->file, set->count,
		       (unsigned long long)set->total_bytes);
	}
	gp_bundle_close(b);
	return EXIT_OK;
}

int cmd_bundle(int argc, char **argv)
{
	struct opts o = { 0 };
	bool known;
	int ret;

	if (argc < 2)
		return cli_usage("bundle", "expected a subcommand: create, list or verify");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	o.sub = argv[1];
	known = !strcmp(o.sub, "create") || !strcmp(o.sub, "list") || !strcmp(o.sub, "verify");
	snprintf(o.name, sizeof(o.name), "bundle%s%s", known ? " " : "", known ? o.sub : "");
	cli_output_command(o.name);
	ret = parse(argc - 1, argv + 1, &o);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (!strcmp(o.sub, "create"))
		return do_create(&o);
	if (!strcmp(o.sub, "list"))
		return do_list(&o);
	if (!strcmp(o.sub, "verify"))
		return do_verify(&o);
	return cli_usage("bundle", "unknown subcommand '%s' (create, list or verify)", o.sub);
}
