/* cmd_files.c — `gpup ls`, `gpup cat`, `gpup put`, `gpup rm`: files inside
 * the guest's NTFS volume. Thin: opening, choosing the volume, safety
 * checks and all path handling live in imaging/ntfsvol.h. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "disk.h"
#include "ntfsvol.h"
#include "runlog.h"

/* Options every file command takes. */
struct file_opts {
	struct gp_disk_open_opts disk;
	struct gp_ntfs_open_opts vol;
	bool json, recursive, quiet;
	enum cli_progress_mode progress;
};

enum { OPT_PARTITION = 256, OPT_FORCE, OPT_RECOVER, OPT_FORMAT, OPT_PARENT, OPT_JSON, OPT_HELP,
       OPT_PROGRESS };

static const struct option common_long[] = {
	{ "partition", required_argument, NULL, OPT_PARTITION },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "recover", no_argument, NULL, OPT_RECOVER },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "parent", required_argument, NULL, OPT_PARENT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "recursive", no_argument, NULL, 'r' },
	{ "progress", optional_argument, NULL, OPT_PROGRESS },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static const char common_help[] =
	"Guest paths: C:\\Windows\\System32, /Windows/System32 or Windows/System32\n"
	"(looked up case-insensitively, as Windows does).\n\n"
	"Options:\n"
	"  --partition N   use partition N (default: the only NTFS volume, else the\n"
	"                  one holding \\Windows\\System32\\ntoskrnl.exe)\n"
	"  --format F      image format: auto (default), raw, vhdx, vhd\n"
	"  --parent P      parent image of a differencing VHDX\n"
	"  -q, --quiet     nothing on stderr unless the command fails\n";

static const char write_help[] =
	"  --force         write even though the volume is marked dirty (chkdsk pending)\n"
	"  --recover       discard an unclean NTFS journal ($LogFile) and write anyway\n";

/* Parse the options; returns -1 on success (operands from optind), else the
 * exit status (help or usage). @allowed lists the short/long options the
 * command accepts besides the common ones. */
static int parse(const char *cmd, int argc, char **argv, struct file_opts *o, const char *allowed,
		 void (*help)(void))
{
	int c;

	memset(o, 0, sizeof(*o));
	o->progress = CLI_PROGRESS_NONE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "rqh", common_long, NULL)) != -1) {
		switch (c) {
		case OPT_PARTITION: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);

			if (*end || n == 0 || n > 1024)
				return cli_usage(cmd, "--partition wants a partition number (1, 2, ...), not '%s'",
						 optarg);
			o->vol.partition = (unsigned)n;
			break;
		}
		case OPT_FORCE:
		case OPT_RECOVER:
			/* Write options: reading needs neither (help lists them
			 * only for put and rm). */
			if (!strchr(allowed, 'w'))
				return cli_usage(cmd, "%s is not an option of '%s'",
						 c == OPT_FORCE ? "--force" : "--recover", cmd);
			if (c == OPT_FORCE)
				o->vol.force = true;
			else
				o->vol.recover = true;
			break;
		case OPT_FORMAT:
			if (gp_disk_format_parse(optarg, &o->disk.format))
				return cli_usage(cmd, "unknown --format '%s' (auto, raw, vhdx, vhd)", optarg);
			break;
		case OPT_PARENT: o->disk.parent_path = optarg; break;
		case OPT_JSON:
			if (!strchr(allowed, 'j'))
				return cli_usage(cmd, "--json is not an option of '%s'", cmd);
			o->json = true;
			break;
		case 'r':
			if (!strchr(allowed, 'r'))
				return cli_usage(cmd, "-r is not an option of '%s'", cmd);
			o->recursive = true;
			break;
		case 'q':
			o->quiet = true;
			cli_output_quiet(true);
			break;
		case OPT_PROGRESS:
			if (!strchr(allowed, 'p'))
				return cli_usage(cmd, "--progress is not an option of '%s'", cmd);
			if (cli_progress_option(cmd, optarg, &o->progress))
				return EXIT_USAGE;
			break;
		case 'h':
		case OPT_HELP:
			help();
			return EXIT_OK;
		default:
			return cli_usage(cmd, "unknown option");
		}
	}
	if ((o->vol.force || o->vol.recover) && !strchr(allowed, 'w'))
		return cli_usage(cmd, "--force and --recover only apply to commands that write");
	return -1;
}

/* Open IMAGE and its volume. Read-only opens fall back to libvhdi while
 * the VHDX engine cannot open the image. */
static int open_vol(const char *image, struct file_opts *o, bool writable, struct gp_disk **d,
		    struct gp_ntfs **v, struct gp_error *err)
{
	int ret;

	o->disk.writable = writable;
	o->vol.writable = writable;
	ret = gp_disk_open(image, &o->disk, d, err);
	if (ret == GP_ERR_UNSUPPORTED && !writable && o->disk.backend == GP_DISK_BACKEND_DEFAULT) {
		struct gp_error err2 = { 0 };
		struct gp_disk_open_opts lo = o->disk;

		lo.backend = GP_DISK_BACKEND_LIBVHDI;
		if (gp_disk_open(image, &lo, d, &err2) == 0) {
			gp_error_clear(err);
			ret = 0;
		}
	}
	if (ret)
		return ret;
	ret = gp_ntfs_open(*d, &o->vol, v, err);
	if (ret) {
		gp_disk_close(*d, NULL);
		*d = NULL;
	}
	return ret;
}

/* Close both; the first failure is kept in @err. */
static int close_vol(struct gp_disk *d, struct gp_ntfs *v, int ret, struct gp_error *err)
{
	if (v) {
		if (ret)
			gp_error_copy(err, gp_ntfs_error(v));
		if (gp_ntfs_close(v, err) && !ret)
			ret = err->code;
	}
	if (d && gp_disk_close(d, err) && !ret)
		ret = err->code;
	return ret;
}

/* ---- ls --------------------------------------------------------------- */

static void ls_help(void)
{
	printf("Usage: gpup ls IMAGE [PATH] [--json] [options]\n\n"
	       "List a directory (default: the root) of the guest's Windows volume, or\n"
	       "show one file. Read-only.\n\n%s"
	       "  --json          one JSON object: {\"schema\":1,\"path\":...,\"entries\":[...]}\n",
	       common_help);
}

struct ls_ctx {
	json_object *arr;
};

static void fmt_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, size, "%lld", (long long)t);
}

static json_object *entry_json(const char *name, const struct gp_ntfs_stat *st)
{
	json_object *o = json_object_new_object();
	char t[32];

	fmt_time(st->mtime, t, sizeof(t));
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "type", json_object_new_string(st->is_dir ? "dir" : "file"));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)st->size));
	json_object_object_add(o, "mtime", json_object_new_int64(st->mtime));
	json_object_object_add(o, "mtime_utc", json_object_new_string(t));
	json_object_object_add(o, "attributes", json_object_new_int((int32_t)st->attributes));
	json_object_object_add(o, "mft_record",
			       json_object_new_int64((int64_t)(st->mref & 0xffffffffffffULL)));
	return o;
}

static void print_entry(const char *name, const struct gp_ntfs_stat *st)
{
	char t[32];

	fmt_time(st->mtime, t, sizeof(t));
	printf("%s %12llu %s %s%s\n", st->is_dir ? "d" : "-", (unsigned long long)st->size, t,
	       cli_esc(name),
	       st->is_dir ? "\\" : "");
}

static int ls_one(const char *name, const struct gp_ntfs_stat *st, void *ctx)
{
	struct ls_ctx *c = ctx;

	if (c->arr)
		json_object_array_add(c->arr, entry_json(name, st));
	else
		print_entry(name, st);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	struct gp_error err = { 0 };
	struct file_opts o;
	struct gp_disk *d = NULL;
	struct gp_ntfs *v = NULL;
	struct gp_ntfs_stat st;
	struct ls_ctx c = { NULL };
	const char *path;
	int ret = parse("ls", argc, argv, &o, "j", ls_help);

	if (ret >= 0)
		return ret;
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage("ls", "expected IMAGE [PATH]");
	path = argc - optind == 2 ? argv[optind + 1] : "\\";
	ret = open_vol(argv[optind], &o, false, &d, &v, &err);
	if (ret)
		return cli_fail_cmd("ls", o.json, argv[optind], &err);
	ret = gp_ntfs_stat(v, path, &st);
	if (!ret && o.json)
		c.arr = json_object_new_array();
	if (!ret && st.is_dir) {
		ret = gp_ntfs_list(v, path, ls_one, &c);
	} else if (!ret) {
		const char *base = path + strlen(path);

		while (base > path && base[-1] != '\\' && base[-1] != '/')
			base--;
		ls_one(base, &st, &c);
	}
	if (!ret && c.arr) {
		json_object *root = json_object_new_object();

		json_object_object_add(root, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
		json_object_object_add(root, "path", json_object_new_string(path));
		json_object_object_add(root, "command", json_object_new_string("ls"));
		json_object_object_add(root, "entries", c.arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
	} else if (c.arr) {
		json_object_put(c.arr);
	}
	ret = close_vol(d, v, ret, &err);
	return ret ? cli_fail_cmd("ls", o.json, argv[optind], &err) : EXIT_OK;
}

/* ---- cat -------------------------------------------------------------- */

static void cat_help(void)
{
	printf("Usage: gpup cat IMAGE PATH [options]\n\n"
	       "Write a file of the guest's Windows volume to standard output. Read-only.\n\n%s",
	       common_help);
}

static int to_stdout(const void *buf, size_t len, void *ctx)
{
	(void)ctx;
	return fwrite(buf, 1, len, stdout) == len ? 0 : GP_ERR_IO;
}

int cmd_cat(int argc, char **argv)
{
	struct gp_error err = { 0 };
	struct file_opts o;
	struct gp_disk *d = NULL;
	struct gp_ntfs *v = NULL;
	int ret = parse("cat", argc, argv, &o, "", cat_help);

	if (ret >= 0)
		return ret;
	if (argc - optind != 2)
		return cli_usage("cat", "expected IMAGE PATH");
	ret = open_vol(argv[optind], &o, false, &d, &v, &err);
	if (ret)
		return cli_fail(&err);
	ret = gp_ntfs_cat(v, argv[optind + 1], to_stdout, NULL);
	if (fflush(stdout) && !ret)
		ret = gp_error_set(&err, GP_ERR_IO, "standard output: write failed");
	ret = close_vol(d, v, ret, &err);
	return ret ? cli_fail(&err) : EXIT_OK;
}

/* ---- put -------------------------------------------------------------- */

static void put_help(void)
{
	printf("Usage: gpup put IMAGE SRC... DESTDIR [options]\n\n"
	       "Copy host files and directory trees into directory DESTDIR of the guest's\n"
	       "Windows volume (created if missing), like `cp -r`: SRC becomes\n"
	       "DESTDIR\\<name of SRC>. Existing files are replaced in place. New files\n"
	       "inherit the directory's permissions as on Windows.\n\n%s%s"
	       "  -p, --progress[=json|tty|none]  report progress on standard error\n"
	       "  --json          report {\"schema\":1,\"command\":\"put\",\"changed\":true,...}\n",
	       common_help, write_help);
}

/* --json report of a writing command: what it was asked to do, done. */
static void print_write_json(const char *cmd, const char *image, const char *list_key,
			     char **items, int n, const char *dest)
{
	json_object *root = json_object_new_object(), *arr = json_object_new_array();

	json_object_object_add(root, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
	json_object_object_add(root, "command", json_object_new_string(cmd));
	json_object_object_add(root, "image", json_object_new_string(image));
	for (int i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(items[i]));
	json_object_object_add(root, list_key, arr);
	if (dest)
		json_object_object_add(root, "destination", json_object_new_string(dest));
	json_object_object_add(root, "changed", json_object_new_boolean(n > 0));
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

/* A failed put or rm: its line, with --json the error object saying
 * whether the image changed (only a failure after the first write can), and
 * the --log record's result. */
static int write_fail(const char *cmd, const struct file_opts *o, const char *image,
		      const struct gp_error *err, bool changed)
{
	int status = o->json ? cli_fail_json(cmd, image, err, changed) : cli_fail(err);

	runlog_result(image, changed);
	return status;
}

int cmd_put(int argc, char **argv)
{
	struct gp_error err = { 0 };
	struct file_opts o;
	struct gp_ntfs_space space = { 0 };
	struct gp_ntfs_bitmap_report br;
	struct cli_progress cp;
	struct gp_disk *d = NULL;
	struct gp_ntfs *v = NULL;
	const char *dest;
	bool changed = false;
	int ret = parse("put", argc, argv, &o, "wpj", put_help);

	if (ret >= 0)
		return ret;
	if (argc - optind < 3)
		return cli_usage("put", "expected IMAGE SRC... DESTDIR");
	dest = argv[argc - 1];
	/* A missing source is reported before the image is touched. */
	for (int i = optind + 1; i < argc - 1; i++) {
		if (access(argv[i], R_OK) != 0) {
			gp_error_set_errno(&err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					   "%s", argv[i]);
			return write_fail("put", &o, argv[optind], &err, false);
		}
	}
	ret = open_vol(argv[optind], &o, true, &d, &v, &err);
	if (ret)
		return write_fail("put", &o, argv[optind], &err, false);
	/* Before the first write: $Bitmap must not offer clusters of live
	 * files (an unsafe guest state, exit 3), and the space all sources
	 * take together must be there (each put_tree() checks only its own). */
	ret = gp_ntfs_check_bitmap(v, &br);
	if (ret == GP_ERR_CORRUPT) {
		gp_error_copy(&err, gp_ntfs_error(v));
		err.code = GP_ERR_REFUSED;
		gp_ntfs_close(v, NULL);
		gp_disk_close(d, NULL);
		return write_fail("put", &o, argv[optind], &err, false);
	}
	for (int i = optind + 1; !ret && i < argc - 1; i++)
		ret = gp_ntfs_put_tree_space(v, argv[i], dest, &space);
	if (!ret)
		ret = gp_ntfs_space_check(v, &space);
	for (int i = optind + 1; !ret && i < argc - 1; i++)
		runlog("plan", "copy %s to %s:%s", argv[i], argv[optind], dest);
	if (!ret)
		runlog("plan", "space: needs %llu bytes, the volume has %llu free",
		       (unsigned long long)space.need, (unsigned long long)space.have);
	cli_progress_init(&cp, o.progress);
	for (int i = optind + 1; !ret && i < argc - 1; i++)
		ret = gp_ntfs_put_tree(v, argv[i], dest, &cp.progress);
	cli_progress_done(&cp);
	changed = gp_ntfs_began_writing(v);
	ret = close_vol(d, v, ret, &err);
	if (ret)
		return write_fail("put", &o, argv[optind], &err, changed);
	runlog("action", "%s: copied %d sources to %s", argv[optind], argc - optind - 2, dest);
	if (o.json)
		print_write_json("put", argv[optind], "sources", argv + optind + 1, argc - optind - 2, dest);
	return EXIT_OK;
}

/* ---- rm --------------------------------------------------------------- */

static void rm_help(void)
{
	printf("Usage: gpup rm IMAGE PATH... [-r] [options]\n\n"
	       "Remove files from the guest's Windows volume; directories only with -r\n"
	       "(then with everything in them).\n\n%s%s"
	       "  -r, --recursive remove directories and their contents\n"
	       "  --json          report {\"schema\":1,\"command\":\"rm\",\"changed\":true,...}\n",
	       common_help, write_help);
}

int cmd_rm(int argc, char **argv)
{
	struct gp_error err = { 0 };
	struct file_opts o;
	struct gp_disk *d = NULL;
	struct gp_ntfs *v = NULL;
	bool changed;
	int ret = parse("rm", argc, argv, &o, "wrj", rm_help);

	if (ret >= 0)
		return ret;
	if (argc - optind < 2)
		return cli_usage("rm", "expected IMAGE PATH...");
	ret = open_vol(argv[optind], &o, true, &d, &v, &err);
	if (ret)
		return write_fail("rm", &o, argv[optind], &err, false);
	/* Plan: every path exists, and is a file unless -r, before the first
	 * one goes; `rm a b missing` removes nothing. */
	for (int i = optind + 1; !ret && i < argc; i++) {
		struct gp_ntfs_stat st;

		ret = gp_ntfs_stat(v, argv[i], &st);
		if (!ret && st.is_dir && !o.recursive)
			ret = gp_error_set(&err, GP_ERR_ISDIR, "%s: %s is a directory (use -r)",
					   argv[optind], argv[i]);
		else if (ret)
			gp_error_copy(&err, gp_ntfs_error(v));
	}
	if (ret) {
		gp_ntfs_clear_error(v);
		gp_ntfs_close(v, NULL);
		gp_disk_close(d, NULL);
		return write_fail("rm", &o, argv[optind], &err, false);
	}
	for (int i = optind + 1; i < argc; i++)
		runlog("plan", "remove %s:%s%s", argv[optind], argv[i],
		       o.recursive ? " (with all in it)" : "");
	for (int i = optind + 1; !ret && i < argc; i++)
		ret = gp_ntfs_remove(v, argv[i], o.recursive);
	changed = gp_ntfs_began_writing(v);
	ret = close_vol(d, v, ret, &err);
	if (ret)
		return write_fail("rm", &o, argv[optind], &err, changed);
	runlog("action", "%s: removed %d paths", argv[optind], argc - optind - 1);
	if (o.json)
		print_write_json("rm", argv[optind], "removed", argv + optind + 1, argc - optind - 1, NULL);
	return EXIT_OK;
}
