/*
 * cmd_scan.c — `gpup scan (IMAGE... | DIR)`: which guests need the host's
 * driver, read-only. For each image: the guest build, every package in its
 * HostDriverStore with its DriverVer, and a verdict against the package the
 * host's driver source resolves for that build:
 *   current  HostDriverStore holds the host's package folder (the folder
 *            name carries the INF's hash: the same build of the driver);
 *   stale    it holds another build of the host's package (same INF name,
 *            another folder) and not the host's: the Code 43 after a host
 *            driver update;
 *   missing  HostDriverStore holds no package at all (never prepared);
 *   foreign  it holds packages, but none of the host's driver (another
 *            GPU's, or a host this guest was moved from);
 *   refused  the image cannot be judged safely: hibernated or Fast
 *            Startup, BitLocker, dirty volume, unreadable, no Windows, a
 *            build GPU-P does not support -- with the reason;
 *   error    the host's driver could not be resolved for this guest.
 * The verdict compares folders and DriverVer, not file bytes (`gpup verify`
 * reads those back).
 *
 * Nothing is written: images are opened read-only with shared locks; an
 * image another writer holds (a running VM: the lock conflicts) is read
 * without any lock, its volume without the plan checks, and marked
 * "in_use" (what it reads may be changing under the VM).
 *
 * Each image is scanned in a worker process (fleet.h), -j at a time, the
 * source resolved once per guest build. Output: a table, or with --json one
 * line per image:
 *   { "schema", "command": "scan", "image", "in_use", "parents": [the
 *     differencing chain resolved, direct parent first], "guest": {product,
 *     edition, build, ubr, arch} | null, "packages": [{folder, inf,
 *     driver_ver}], "host_package": {folder, inf, driver_ver} | null,
 *     "verdict", "reason": string | null }
 * then { "schema", "command": "scan", "summary": { "images", "current",
 *   "stale", "missing", "foreign", "refused", "error", "exit_status" } }.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fleet.h"
#include "session.h"
#include "vhdx.h"

/* Some image needs `gpup prepare` (stale, missing or foreign). */
#define EXIT_SCAN_OUTDATED 5

static const char *const verdicts[] = { "current", "stale", "missing", "foreign", "refused", "error" };
enum { V_CURRENT, V_STALE, V_MISSING, V_FOREIGN, V_REFUSED, V_ERROR, V_COUNT };

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpup scan (IMAGE... | DIR) (--driverstore DIR | --bundle FILE)\n"
		"                 [--gpu SEL] [-j N] [--json]\n\n"
		"Report, for each image (a DIR's *.vhdx, *.avhdx and *.vhd; differencing\n"
		"chains resolved), the guest build, every package in its HostDriverStore with\n"
		"its DriverVer, and a verdict against the package the driver source resolves\n"
		"for that build. Read-only: no image changes.\n\n"
		"  current   holds the host's package (same folder, same build of the driver)\n"
		"  stale     holds another build of the host's package, not the host's\n"
		"  missing   holds no driver package at all\n"
		"  foreign   holds packages, none of the host's driver\n"
		"  refused   cannot be judged: hibernated, BitLocker, dirty, unreadable, not\n"
		"            Windows, unsupported build (the reason is given)\n"
		"  error     the host's driver could not be resolved for the guest\n"
		"An image a running VM holds (its lock taken) is read without a lock and\n"
		"marked \"in use\".\n\n"
		"  -j N                scan N images at a time (default: the CPUs online)\n");
	session_help(f, true);
	fprintf(f, "\nExit status: 0 every image current, 5 some image stale, missing or\n"
		   "foreign (run 'gpup prepare'), 3 some image refused, 1 an error (a driver\n"
		   "that does not resolve), 2 usage; the highest of these in that order\n"
		   "(1 over 3 over 5).\n");
}

struct scan {
	struct session s;
	/* Collected in this process from the workers. */
	struct json_object *rows;
	size_t count[V_COUNT];
	bool any_broken;      /* a worker died or printed no report */
};

/* ---- One image, in a worker -------------------------------------------- */

static struct json_object *pkg_json(const char *folder, const char *inf, const char *ver)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "folder", json_object_new_string(folder));
	json_object_object_add(o, "inf", json_object_new_string(inf));
	json_object_object_add(o, "driver_ver", json_object_new_string(ver));
	return o;
}

/* An image's report with what every report has; the caller adds
 * "guest", "packages", "host_package" (when known), "verdict", "reason". */
static struct json_object *report_new(const char *image, bool in_use)
{
	struct json_object *o = session_json_new("scan");

	json_object_object_add(o, "image", json_object_new_string(image));
	json_object_object_add(o, "in_use", json_object_new_boolean(in_use));
	return o;
}

/* The guest's facts and (*@pkgs) its HostDriverStore packages. */
static struct json_object *guest_json(const struct session_guest *guest, struct json_object **pkgs)
{
	struct json_object *g = json_object_new_object();

	json_object_object_add(g, "product", json_object_new_string(guest->f.product_name));
	json_object_object_add(g, "edition", json_object_new_string(guest->f.edition));
	json_object_object_add(g, "build", json_object_new_int64(guest->build_num));
	json_object_object_add(g, "ubr", json_object_new_int64(guest->f.ubr));
	json_object_object_add(g, "arch", json_object_new_string(guest->f.arch));
	*pkgs = json_object_new_array();
	for (size_t i = 0; i < guest->f.pkg_count; i++)
		json_object_array_add(*pkgs, pkg_json(guest->f.pkgs[i].folder, guest->f.pkgs[i].inf,
						      guest->f.pkgs[i].driver_ver));
	return g;
}

/* The resolved parent chain of the open image (direct parent first);
 * empty for all but a differencing VHDX. */
static struct json_object *parents_json(struct session *s)
{
	struct json_object *a = json_object_new_array();
	struct vhdx *v = s->disk ? gp_disk_vhdx(s->disk) : NULL;
	struct vhdx_info vi;

	if (v && vhdx_get_info(v, &vi) == 0) {
		for (size_t i = 0; i < vi.parent_chain_len; i++)
			json_object_array_add(a, json_object_new_string(vi.parent_chain[i]));
		vhdx_info_free(&vi);
	}
	return a;
}

/* Open @s->image for reading: shared lock and the plan checks, or -- when
 * a writer holds it -- no lock and no plan checks (*@in_use). */
static int open_for_scan(struct session *s, bool *in_use, struct gp_error *err)
{
	int ret = session_open_plan(s, false, err);

	*in_use = false;
	if (ret != GP_ERR_LOCKED)
		return ret;
	gp_error_clear(err);
	*in_use = true;
	s->disk_opts.no_lock = true;
	return session_open_image(s, false, false, err);
}

/* The verdict for the guest's packages against the host's. */
static int judge(const struct gp_guest_facts *f, const struct gp_package *host)
{
	bool other_build = false;

	for (size_t i = 0; i < f->pkg_count; i++) {
		if (!strcasecmp(f->pkgs[i].folder, host->folder))
			return V_CURRENT;
		if (!strcasecmp(f->pkgs[i].inf, host->inf_name))
			other_build = true;
	}
	return other_build ? V_STALE : f->pkg_count ? V_FOREIGN : V_MISSING;
}

static int scan_one(void *ctx, const char *image)
{
	struct session *s = &((struct scan *)ctx)->s;
	struct json_object *o, *g = NULL, *pkgs = NULL, *host = NULL, *parents = NULL;
	struct session_guest guest = { 0 };
	struct gp_error err = { 0 };
	bool in_use = false;
	int v = V_REFUSED, ret;

	s->image = image;
	ret = open_for_scan(s, &in_use, &err);
	if (!ret)
		parents = parents_json(s);
	if (ret == GP_ERR_REFUSED) {
		/* Hibernated, dirty, ...: refused, but the guest is still
		 * worth naming; a plain read-only open refuses nothing. */
		struct gp_error e2 = { 0 };

		if (session_open_image(s, false, false, &e2) == 0) {
			parents = parents_json(s);
			if (session_guest(s, &guest, &e2) == 0)
				g = guest_json(&guest, &pkgs);
		}
	} else if (!ret) {
		ret = session_guest(s, &guest, &err);
	}
	if (!ret) {
		g = guest_json(&guest, &pkgs);
		if (!guest.known)
			ret = gp_error_set(&err, GP_ERR_REFUSED,
					   "%s: cannot read the guest's build from its registry", image);
		else
			ret = session_check_guest(s, &guest, &err);
	}
	if (!ret) {
		/* Resolved once per build in the parent (fleet_sources_load()). */
		s->src = fleet_source_for(guest.f.arch, guest.build_num);
		ret = s->src ? 0 : session_open_source(s, guest.f.arch[0] ? guest.f.arch : NULL,
						       guest.build_num, &err);
		v = V_ERROR;
	}
	if (!ret) {
		const struct gp_package *p = gp_source_set(s->src)->pkg;
		char ver[160];

		snprintf(ver, sizeof(ver), "%s,%s", p->driver_ver_date, p->driver_ver_version);
		host = pkg_json(p->folder, p->inf_name, ver);
		v = judge(&guest.f, p);
	}
	o = report_new(image, in_use);
	json_object_object_add(o, "parents", parents ? parents : json_object_new_array());
	json_object_object_add(o, "guest", g);
	json_object_object_add(o, "packages", pkgs ? pkgs : json_object_new_array());
	json_object_object_add(o, "host_package", host);
	json_object_object_add(o, "verdict", json_object_new_string(verdicts[v]));
	json_object_object_add(o, "reason", ret ? json_object_new_string(gp_error_message(&err))
						: NULL);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	gp_guest_facts_free(&guest.f);
	session_end(s);
	return EXIT_OK;
}

/* ---- Collecting and printing ------------------------------------------- */

static void done(void *ctx, const struct fleet_result *r)
{
	struct scan *sc = ctx;
	struct json_object *o = r->out_len ? json_tokener_parse(r->out) : NULL, *v;
	size_t i;

	/* The worker's warnings (a source it resolved itself). */
	fwrite(r->err, 1, r->err_len, stderr);
	if (!o || !json_object_object_get_ex(o, "verdict", &v)) {
		/* The worker died (or never started): still one line for
		 * the image, verdict "error". */
		char why[512], msg[600];

		json_object_put(o);
		snprintf(msg, sizeof(msg), "%s: the scan failed%s%s", r->image,
			 fleet_reason(r, why, sizeof(why))[0] ? ": " : "", why);
		cli_error_line(gp_status_id(GP_ERR_IO), EXIT_ERROR, msg);
		sc->any_broken = true;
		o = report_new(r->image, false);
		json_object_object_add(o, "parents", json_object_new_array());
		json_object_object_add(o, "guest", NULL);
		json_object_object_add(o, "packages", json_object_new_array());
		json_object_object_add(o, "host_package", NULL);
		json_object_object_add(o, "verdict", json_object_new_string(verdicts[V_ERROR]));
		json_object_object_add(o, "reason", json_object_new_string(msg));
		json_object_object_get_ex(o, "verdict", &v);
		if (sc->s.json)
			puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (sc->s.json) {
		fleet_print_json_line(r);
	}
	for (i = 0; i < V_COUNT && strcmp(json_object_get_string(v), verdicts[i]); i++)
		;
	if (i < V_COUNT)
		sc->count[i]++;
	json_object_array_add(sc->rows, o);
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

/* One table row's detail: the reason, or the guest's packages of the
 * host's INF (all of them when none is). */
static void detail(struct json_object *row, char *buf, size_t size)
{
	struct json_object *pkgs, *host;
	const char *inf = "";
	size_t o = 0;

	buf[0] = '\0';
	if (*jstr(row, "reason")) {
		snprintf(buf, size, "%s", jstr(row, "reason"));
		return;
	}
	if (json_object_object_get_ex(row, "host_package", &host) && host)
		inf = jstr(host, "inf");
	json_object_object_get_ex(row, "packages", &pkgs);
	for (size_t i = 0; pkgs && i < json_object_array_length(pkgs) && o < size; i++) {
		struct json_object *p = json_object_array_get_idx(pkgs, i);

		if (strcasecmp(jstr(row, "verdict"), "foreign") && strcasecmp(jstr(p, "inf"), inf))
			continue;
		o += (size_t)snprintf(buf + o, size - o, "%s%s (%s)", o ? ", " : "",
				      jstr(p, "folder"), jstr(p, "driver_ver"));
	}
}

static void print_table(struct scan *sc)
{
	size_t n = json_object_array_length(sc->rows), w = 5;
	const char *host_folder = NULL, *host_ver = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(jstr(json_object_array_get_idx(sc->rows, i), "image"));

		w = l > w ? l : w;
	}
	printf("%-*s  %-12s %-8s %s\n", (int)w, "IMAGE", "BUILD", "VERDICT", "DETAIL");
	for (size_t i = 0; i < n; i++) {
		struct json_object *row = json_object_array_get_idx(sc->rows, i), *g, *h;
		char build[32] = "-", det[1024];

		if (json_object_object_get_ex(row, "guest", &g) && g)
			snprintf(build, sizeof(build), "%s.%s", jstr(g, "build"), jstr(g, "ubr"));
		if (json_object_object_get_ex(row, "host_package", &h) && h && !host_folder) {
			host_folder = jstr(h, "folder");
			host_ver = jstr(h, "driver_ver");
		}
		detail(row, det, sizeof(det));
		/* The detail holds the guest's folder names: escaped. */
		printf("%-*s  %-12s %-8s %s%s\n", (int)w, jstr(row, "image"), build, jstr(row, "verdict"),
		       !strcmp(jstr(row, "in_use"), "true") ? "[in use] " : "", cli_esc(det));
		if (json_object_object_get_ex(row, "parents", &h) && json_object_array_length(h))
			printf("%-*s  (child of %s)\n", (int)w, "",
			       json_object_get_string(json_object_array_get_idx(h, 0)));
	}
	if (host_folder)
		printf("host:  %s (DriverVer %s)\n", cli_esc(host_folder), cli_esc(host_ver));
}

/* The exit status: 1 over 3 over 5 over 0 (see usage()). */
static int scan_status(const struct scan *sc)
{
	if (sc->count[V_ERROR] || sc->any_broken)
		return EXIT_ERROR;
	if (sc->count[V_REFUSED])
		return EXIT_REFUSED;
	if (sc->count[V_STALE] || sc->count[V_MISSING] || sc->count[V_FOREIGN])
		return EXIT_SCAN_OUTDATED;
	return EXIT_OK;
}

static void print_summary(const struct scan *sc, size_t n, int status)
{
	if (sc->s.json) {
		struct json_object *o = session_json_new("scan"), *sum = json_object_new_object();

		json_object_object_add(sum, "images", json_object_new_int64((int64_t)n));
		for (size_t i = 0; i < V_COUNT; i++)
			json_object_object_add(sum, verdicts[i],
					       json_object_new_int64((int64_t)sc->count[i]));
		json_object_object_add(sum, "exit_status", json_object_new_int(status));
		json_object_object_add(o, "summary", sum);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return;
	}
	printf("%zu images:", n);
	for (size_t i = 0; i < V_COUNT; i++)
		printf("%s %zu %s", i ? "," : "", sc->count[i], verdicts[i]);
	printf("\n");
}

/* ---- Arguments ---------------------------------------------------------- */

static bool is_image_name(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot && (!strcasecmp(dot, ".vhdx") || !strcasecmp(dot, ".avhdx") ||
		       !strcasecmp(dot, ".vhd"));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* DIR's images, sorted, as "DIR/name" (malloc'ed, and the array). Returns
 * the count, or -1 with a message printed. */
static long list_dir(const char *dir, char ***out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0;

	if (!d) {
		struct gp_error err = { 0 };

		gp_error_set_errno(&err, GP_ERR_IO, errno, "%s", dir);
		cli_fail(&err);
		return -1;
	}
	while ((e = readdir(d))) {
		char **nv;

		if (e->d_name[0] == '.' || !is_image_name(e->d_name))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		if (asprintf(&v[n], "%s/%s", dir, e->d_name) < 0)
			break;
		n++;
	}
	closedir(d);
	if (n) /* qsort() of NULL is undefined, even for no elements */
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	return (long)n;
}

int cmd_scan(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "gpu", required_argument, NULL, 'g' },
		SESSION_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct scan sc = { 0 };
	char **images, **listed = NULL;
	long n;
	unsigned jobs = 0;
	struct stat st;
	int c, status;

	session_init(&sc.s, "scan");
	sc.s.ntfs_opts.require_windows = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:" SESSION_SHORTOPTS, longopts, NULL)) != -1) {
		int r = session_handle(&sc.s, c, optarg);

		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'g':
			if (cli_gpu_option("scan", optarg))
				return EXIT_USAGE;
			sc.s.src_opts.gpu = optarg;
			break;
		case 'j':
			if (fleet_parse_jobs("scan", optarg, &jobs))
				return EXIT_USAGE;
			break;
		default:
			return cli_usage("scan", "unknown option");
		}
	}
	if (optind == argc)
		return cli_usage_json("scan", sc.s.json, "IMAGE or DIR is required");
	if (session_require_source(&sc.s) >= 0)
		return EXIT_USAGE;
	images = argv + optind;
	n = argc - optind;
	if (n == 1 && stat(images[0], &st) == 0 && S_ISDIR(st.st_mode)) {
		n = list_dir(images[0], &listed);
		if (n < 0)
			return EXIT_ERROR;
		images = listed;
		if (n == 0) {
			struct gp_error err = { 0 };

			gp_error_set(&err, GP_ERR_NOTFOUND, "%s: holds no .vhdx, .avhdx or .vhd image",
				     argv[optind]);
			cli_fail(&err);
			free(listed);
			return EXIT_ERROR;
		}
	}
	if (n > 1 && sc.s.disk_opts.parent_path)
		return cli_usage_json("scan", sc.s.json, "--parent names one image's parent; it cannot go with several images");
	/* The workers print nothing but their report; -j bars would collide. */
	sc.s.progress = CLI_PROGRESS_NONE;
	sc.rows = json_object_new_array();
	cli_catch_interrupts();
	fleet_sources_load(&sc.s, images, (size_t)n, false);
	fleet_run(images, (size_t)n, jobs ? jobs : fleet_default_jobs(), scan_one, &sc, done, &sc);
	fleet_sources_free();
	status = cli_interrupted() ? EXIT_INTERRUPTED : scan_status(&sc);
	if (!sc.s.json)
		print_table(&sc);
	print_summary(&sc, (size_t)n, status);
	json_object_put(sc.rows);
	for (long i = 0; listed && i < n; i++)
		free(listed[i]);
	free(listed);
	return status;
}
