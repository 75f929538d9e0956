/* session.c — see session.h. */
#include "session.h"

#include "part.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void session_init(struct session *s, const char *cmd)
{
	memset(s, 0, sizeof(*s));
	s->cmd = cmd;
	s->progress = CLI_PROGRESS_AUTO;
}

int session_handle(struct session *s, int c, const char *arg)
{
	unsigned long long v;

	switch (c) {
	case SESS_OPT_DRIVERSTORE:
		s->src_opts.driverstore = arg;
		return 1;
	case SESS_OPT_BUNDLE:
		s->src_opts.bundle = arg;
		return 1;
	case SESS_OPT_PARTITION:
		if (cli_parse_size(arg, &v) || v == 0 || v > 128) {
			cli_usage(s->cmd, "--partition takes a partition number (1-128), not '%s'", arg);
			return -1;
		}
		s->ntfs_opts.partition = (unsigned)v;
		return 1;
	case SESS_OPT_FORCE:
		s->ntfs_opts.force = true;
		return 1;
	case SESS_OPT_RECOVER:
		s->ntfs_opts.recover = true;
		return 1;
	case SESS_OPT_FORMAT:
		if (gp_disk_format_parse(arg, &s->disk_opts.format)) {
			cli_usage(s->cmd, "--format takes auto, raw, vhdx or vhd, not '%s'", arg);
			return -1;
		}
		return 1;
	case SESS_OPT_PARENT:
		s->disk_opts.parent_path = arg;
		return 1;
	case SESS_OPT_ALLOW_MISSING:
		s->src_opts.allow_missing = true;
		return 1;
	case SESS_OPT_REPLACE_SYSTEM_FILES:
		s->replace_system_files = true;
		return 1;
	case SESS_OPT_JSON:
		s->json = true;
		return 1;
	case SESS_OPT_PROGRESS:
	case 'p':
		if (cli_progress_option(s->cmd, arg, &s->progress))
			return -1;
		return 1;
	case 'q':
		s->quiet = true;
		cli_output_quiet(true);
		return 1;
	case 'v':
		s->verbose = true;
		return 1;
	}
	return 0;
}

int session_parse_image_cmd(struct session *s, int argc, char **argv,
			    void (*usage)(FILE *), bool source_required)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "gpu", required_argument, NULL, 'g' },
		SESSION_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h" SESSION_SHORTOPTS, longopts, NULL)) != -1) {
		int r = session_handle(s, c, optarg);

		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'g':
			if (cli_gpu_option(s->cmd, optarg))
				return EXIT_USAGE;
			s->src_opts.gpu = optarg;
			break;
		default:
			return cli_usage(s->cmd, "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage(s->cmd, optind == argc ? "IMAGE is required" : "too many arguments");
	s->image = argv[optind];
	if (s->src_opts.driverstore && s->src_opts.bundle)
		return cli_usage(s->cmd, "--driverstore and --bundle exclude each other");
	session_default_source(s);
	if (source_required && !s->src_opts.driverstore && !s->src_opts.bundle)
		return cli_usage(s->cmd, "a driver source is required: --driverstore DIR or --bundle FILE");
	return -1;
}

void session_help(FILE *f, bool with_source)
{
	if (with_source)
		fprintf(f,
			"Driver source (one of; on a WSL Hyper-V host the host's own DriverStore\n"
			"under /mnt/c is used when neither is given):\n"
			"  --driverstore DIR   host root, Windows, DriverStore or FileRepository dir\n"
			"  --bundle FILE       a bundle made by 'gpup bundle create'\n"
			CLI_GPU_HELP
			"  --allow-missing     skip INF-listed files found nowhere (companions, package files)\n"
			"  --replace-system-files  let prepare replace files of Windows itself (owned by\n"
			"                      TrustedInstaller) that the driver also ships; refused otherwise\n");
	fprintf(f,
		"Image:\n"
		"  --partition N       the Windows volume's partition number\n"
		"  --force             accept a volume marked dirty (VOLUME_IS_DIRTY)\n"
		"  --recover           accept an unclean NTFS journal (it is discarded)\n"
		"  --format F          auto, raw, vhdx or vhd (default: detect)\n"
		"  --parent PATH       parent image of a differencing VHDX\n"
		"Output:\n"
		"  --json              machine-readable output (schema 1)\n"
		"  -p, --progress[=json|tty|none]  progress on stderr (default: tty only)\n"
		"  -q, --quiet         nothing on stderr unless the command fails\n"
		"  -v, --verbose       more detail\n");
}

void session_default_source(struct session *s)
{
	struct stat st;

	if (!s->src_opts.driverstore && !s->src_opts.bundle &&
	    stat("/mnt/c/Windows/System32/DriverStore", &st) == 0 && S_ISDIR(st.st_mode))
		s->src_opts.driverstore = "/mnt/c";
}

int session_require_source(struct session *s)
{
	session_default_source(s);
	if (!s->src_opts.driverstore && !s->src_opts.bundle)
		return cli_usage_json(s->cmd, s->json, "a driver source is required: --driverstore DIR or --bundle FILE");
	if (s->src_opts.driverstore && s->src_opts.bundle)
		return cli_usage_json(s->cmd, s->json, "--driverstore and --bundle exclude each other");
	return -1;
}

/* Does @d hold Linux partitions (and so, having no Windows volume, a
 * Linux guest)? */
static bool linux_guest(struct gp_disk *d)
{
	struct gp_partition_table pt;
	bool found = false;

	if (gp_part_read(d, &pt, NULL) == 0)
		for (size_t i = 0; i < pt.count; i++)
			if (strstr(pt.parts[i].type_name, "Linux"))
				found = true;
	gp_part_table_free(&pt);
	return found;
}

/* Open the disk (@disk_writable: read-write, exclusive lock) and mount its
 * Windows volume (@vol_writable: read-write). */
static int session_open_image_disk(struct session *s, bool disk_writable, bool vol_writable,
				   bool independent, struct gp_error *err)
{
	struct gp_disk_open_opts dopts = s->disk_opts;
	struct gp_ntfs_open_opts nopts = s->ntfs_opts;
	enum gp_disk_format fmt = dopts.format;
	int ret;

	if (fmt == GP_DISK_FORMAT_AUTO) {
		ret = gp_disk_detect_format(s->image, &fmt, err);
		if (ret)
			return ret;
	}
	dopts.writable = disk_writable;
	dopts.backend = independent && fmt != GP_DISK_FORMAT_RAW ? GP_DISK_BACKEND_LIBVHDI
								 : GP_DISK_BACKEND_DEFAULT;
	ret = gp_disk_open(s->image, &dopts, &s->disk, err);
	if (ret)
		return ret;
	/* Damage the open survived or repaired (a region-table copy): the
	 * user should know, even when the command then succeeds. */
	if (*gp_disk_warning(s->disk) && !s->quiet)
		cli_warn("%s", gp_disk_warning(s->disk));
	nopts.writable = vol_writable;
	ret = gp_ntfs_open(s->disk, &nopts, &s->vol, err);
	if (ret == GP_ERR_NOTFOUND && nopts.require_windows && linux_guest(s->disk))
	{
		/* The volume layer's "no Windows volume" is true but misses the
		 * point: say why this guest can never work. */
		gp_error_clear(err);
		ret = gp_error_set(err, GP_ERR_REFUSED,
				   "%s: no Windows volume, but Linux partitions: Linux guests are not "
				   "supported by Hyper-V GPU-P", s->image);
	}
	if (ret) {
		gp_disk_close(s->disk, NULL);
		s->disk = NULL;
	}
	return ret;
}

int session_open_image(struct session *s, bool writable, bool independent,
		       struct gp_error *err)
{
	return session_open_image_disk(s, writable, writable, independent, err);
}

int session_open_plan(struct session *s, bool lock, struct gp_error *err)
{
	bool plan = s->ntfs_opts.plan;
	int ret;

	s->ntfs_opts.plan = true;
	ret = session_open_image_disk(s, lock, false, false, err);
	s->ntfs_opts.plan = plan;
	return ret;
}

int session_begin_commit(struct session *s, struct gp_error *err)
{
	struct gp_ntfs_open_opts nopts = s->ntfs_opts;
	int ret;

	if (!s->disk || !gp_disk_is_writable(s->disk))
		return gp_error_set(err, GP_ERR_READONLY, "%s: not planned for writing", s->image);
	ret = gp_ntfs_close(s->vol, err);
	s->vol = NULL;
	if (ret)
		return ret;
	nopts.writable = true;
	return gp_ntfs_open(s->disk, &nopts, &s->vol, err);
}

int session_close_image(struct session *s, struct gp_error *err)
{
	int ret = 0, r;

	if (s->vol) {
		ret = gp_ntfs_close(s->vol, err);
		s->vol = NULL;
	}
	if (s->disk) {
		r = gp_disk_close(s->disk, err);
		if (!ret)
			ret = r;
		s->disk = NULL;
	}
	return ret;
}

int session_open_source(struct session *s, const char *guest_arch, uint32_t guest_build,
			struct gp_error *err)
{
	int ret;

	s->src_opts.target.arch = guest_arch;
	s->src_opts.target.build = guest_build;
	ret = gp_source_open(&s->src_opts, &s->src, err);
	if (s->src && !s->quiet)
		for (size_t i = 0; i < gp_source_warning_count(s->src); i++)
			cli_warn("%s", gp_source_warning(s->src, i));
	return ret;
}

void session_end(struct session *s)
{
	session_close_image(s, NULL);
	gp_source_close(s->src);
	s->src = NULL;
}

void session_print_json(struct json_object *obj)
{
	puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
						 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
}

struct json_object *session_json_new(const char *cmd)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(o, "command", json_object_new_string(cmd));
	return o;
}

const char *session_human_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

int session_check_guest(const struct session *s, const struct session_guest *g,
			struct gp_error *err)
{
	if (!g->known)
		return 0;
	if (g->f.is_server ? g->build_num < 20348 : g->build_num < 19041)
		return gp_error_set(err, GP_ERR_REFUSED,
				    "%s: guest runs %s build %u; GPU partitioning needs Windows 10 20H1 "
				    "(build 19041) or later, or Windows Server 2022 (build 20348) or later",
				    s->image, g->f.product_name[0] ? g->f.product_name : "Windows",
				    g->build_num);
	return 0;
}

int session_guest(struct session *s, struct session_guest *g, struct gp_error *err)
{
	int ret;

	memset(g, 0, sizeof(*g));
	ret = gp_guest_read(s->vol, &g->f, err);
	if (ret)
		return ret;
	if (g->f.build[0]) {
		char *end;
		unsigned long b = strtoul(g->f.build, &end, 10);

		if (*end == '\0' && b > 0 && b < 1000000) {
			g->known = true;
			g->build_num = (uint32_t)b;
		}
	}
	return 0;
}
