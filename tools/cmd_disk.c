/*
 * cmd_disk.c — `gpup disk read IMAGE [--offset N] [--length N] [-o FILE]`
 *            — `gpup disk write IMAGE --offset N [-i FILE]`
 *   both: [--format raw|vhdx|vhd|auto] [--parent PATH]
 *
 * Raw bytes of the virtual disk, through gp_disk (so any format gpup opens).
 * read: to stdout (or FILE), the whole disk from --offset unless --length;
 * a regular FILE gets holes where the disk reads zeros (unallocated VHDX
 * blocks are not even read). Offsets and lengths take 0x hex too.
 * write: stdin (or FILE) to the disk at --offset; the image is flushed and
 * closed cleanly (an empty VHDX log) before exiting 0.
 * write --json (schema 1; doc/schema/disk-write.schema.json):
 *   { "schema", "command": "disk write", "image",
 *   "offset", "bytes", "changed" }, printed after the clean close. (read's
 * stdout is the data itself.)
 * Exit status: 0 ok, 1 error, 2 usage, 3 image locked.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "disk.h"
#include "runlog.h"
#include "vhdx.h"

#define CHUNK (1u << 20)

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpup disk read IMAGE [--offset N] [--length N] [-o FILE]\n"
		   "       gpup disk write IMAGE --offset N [-i FILE] [--json]\n"
		   "Sizes take K, M, G, T suffixes, or 0x for hex. With -o FILE, runs of zeros\n"
		   "become holes in FILE.\n\n"
		   "  --offset N         first byte of the virtual disk (write: required)\n"
		   "  --length N         bytes to read (default: to the end of the disk)\n"
		   "  -o, --output FILE  read: write the bytes to FILE (default: standard output)\n"
		   "  -i, --input FILE   write: read the bytes from FILE (default: standard input)\n"
		   "  --json             write: report what was written as JSON\n"
		   "  --format F         raw, vhdx, vhd or auto (default: detect)\n"
		   "  --parent PATH      a differencing VHDX's parent\n"
		   "  -h, --help         show this help\n");
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* An offset or length: a size with an optional K/M/G/T suffix, or 0x hex
 * (as `gpup check` prints file offsets). */
static int parse_offset(const char *s, unsigned long long *out)
{
	char *end;

	if ((s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) {
		if (!isxdigit((unsigned char)s[2]))
			return -1;
		errno = 0;
		*out = strtoull(s + 2, &end, 16);
		return errno || *end ? -1 : 0;
	}
	return cli_parse_size(s, out);
}

static bool all_zero(const char *buf, size_t n)
{
	return n == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, n - 1) == 0);
}

/* Bytes from @off known to read as zeros without reading them: a run of
 * unallocated blocks of a VHDX that has no parent (a child's unallocated
 * blocks come from its parent). 0 when not known. */
static uint64_t zero_run(struct gp_disk *d, uint64_t off, uint64_t len)
{
	struct vhdx *v = gp_disk_vhdx(d);
	bool allocated = true;
	uint64_t run = 0;

	if (!v || vhdx_disk_type(v) == VHDX_DISK_DIFFERENCING ||
	    gp_disk_block_status(d, off, len, &allocated, &run) || allocated)
		return 0;
	return run;
}

static int do_read(struct gp_disk *d, uint64_t off, uint64_t len, bool have_len,
		   const char *outpath)
{
	struct gp_error err = { 0 };
	uint64_t size = gp_disk_size(d), pos = 0;
	struct stat st;
	bool sparse = false;
	char *buf;
	int fd = 1, ret = EXIT_OK;

	if (off > size)
		return cli_usage("disk", "--offset %llu is beyond the disk's %llu bytes",
				 (unsigned long long)off, (unsigned long long)size);
	if (!have_len)
		len = size - off;
	if (outpath) {
		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			gp_error_set_errno(&err, GP_ERR_IO, errno, "%s", outpath);
			return cli_fail(&err);
		}
		/* A regular file gets holes where the disk reads zeros: an
		 * empty 127 GiB disk must not fill the host's disk. */
		sparse = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	}
	buf = malloc(CHUNK);
	if (!buf) {
		gp_error_set(&err, GP_ERR_NOMEM, "out of memory");
		ret = cli_fail(&err);
		goto out;
	}
	while (len) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		uint64_t skip = sparse ? zero_run(d, off, len) : 0;

		if (skip) {
			off += skip;
			pos += skip;
			len -= skip;
			continue;
		}
		if (gp_disk_pread(d, buf, n, off)) {
			ret = cli_fail(gp_disk_error(d));
			break;
		}
		if (!(sparse && all_zero(buf, n)) &&
		    (sparse ? pwrite(fd, buf, n, (off_t)pos) != (ssize_t)n : write_all(fd, buf, n))) {
			gp_error_set_errno(&err, GP_ERR_IO, errno, "%s", outpath ? outpath : "stdout");
			ret = cli_fail(&err);
			break;
		}
		off += n;
		pos += n;
		len -= n;
	}
	/* Trailing zeros were skipped: give the file its length. */
	if (sparse && ret == EXIT_OK && ftruncate(fd, (off_t)pos) < 0) {
		gp_error_set_errno(&err, GP_ERR_IO, errno, "%s", outpath);
		ret = cli_fail(&err);
	}
	free(buf);
out:
	if (outpath && close(fd) < 0 && ret == EXIT_OK) {
		gp_error_set_errno(&err, GP_ERR_IO, errno, "%s", outpath);
		ret = cli_fail(&err);
	}
	return ret;
}

/* Copy stdin (or @inpath) to the disk at @off. Returns 0 or a GP_ERR_*
 * code with @err set; *@began: a write to the disk was attempted (the
 * image may have changed). */
static int do_write(struct gp_disk *d, uint64_t off, const char *inpath, uint64_t *written,
		    bool *began, struct gp_error *err)
{
	char *buf;
	int fd = 0, ret = 0;

	if (inpath) {
		fd = open(inpath, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return gp_error_set_errno(err, GP_ERR_IO, errno, "%s", inpath);
	}
	buf = malloc(CHUNK);
	if (!buf) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		size_t have = 0;
		/* Fill whole chunks so the disk sees large writes. */
		while (have < CHUNK) {
			ssize_t n = read(fd, buf + have, CHUNK - have);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s",
							 inpath ? inpath : "stdin");
				goto out_buf;
			}
			if (n == 0)
				break;
			have += (size_t)n;
		}
		if (have) {
			*began = true;
			if (gp_disk_pwrite(d, buf, have, off)) {
				ret = gp_error_copy(err, gp_disk_error(d));
				break;
			}
		}
		off += have;
		*written += have;
		if (have < CHUNK)
			break;
	}
out_buf:
	free(buf);
out:
	if (inpath)
		close(fd);
	return ret;
}

int cmd_disk(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'O' },
		{ "length", required_argument, NULL, 'l' },
		{ "output", required_argument, NULL, 'o' },
		{ "input", required_argument, NULL, 'i' },
		{ "format", required_argument, NULL, 'f' },
		{ "parent", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct gp_disk_open_opts o = { 0 };
	uint64_t written = 0;
	bool json = false;
	struct gp_error err = { 0 };
	struct gp_disk *d;
	const char *outpath = NULL, *inpath = NULL, *mode, *name;
	unsigned long long off = 0, len = 0;
	bool have_off = false, have_len = false, began = false;
	int c, ret;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc < 2)
		return cli_usage("disk", "expected 'read' or 'write'");
	mode = argv[1];
	if (strcmp(mode, "read") && strcmp(mode, "write"))
		return cli_usage("disk", "unknown subcommand '%s' (expected read or write)", mode);
	name = !strcmp(mode, "write") ? "disk write" : "disk read";
	cli_output_command(name);
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "o:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'O':
			if (parse_offset(optarg, &off))
				return cli_usage(name, "invalid --offset '%s'", optarg);
			have_off = true;
			break;
		case 'l':
			if (parse_offset(optarg, &len))
				return cli_usage(name, "invalid --length '%s'", optarg);
			have_len = true;
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'i':
			inpath = optarg;
			break;
		case 'f':
			if (gp_disk_format_parse(optarg, &o.format))
				return cli_usage(name, "unknown --format '%s'", optarg);
			break;
		case 'P':
			o.parent_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'j':
			json = true;
			break;
		default:
			return cli_usage(name, "unknown option");
		}
	}
	if (optind + 1 != argc - 1)
		return cli_usage(name, "expected exactly one IMAGE argument");
	if (!strcmp(mode, "read") && inpath)
		return cli_usage(name, "-i is for 'disk write'");
	if (!strcmp(mode, "write") && (outpath || have_len))
		return cli_usage(name, "-o and --length are for 'disk read'");
	if (!strcmp(mode, "write") && !have_off)
		return cli_usage(name, "'disk write' needs --offset");
	if (!strcmp(mode, "read") && json)
		return cli_usage(name, "--json is for 'disk write' ('disk read' writes the data itself)");
	o.writable = !strcmp(mode, "write");
	if (gp_disk_open(argv[optind + 1], &o, &d, &err))
		return cli_fail_cmd(name, json, argv[optind + 1], &err);
	if (gp_disk_warning(d)[0])
		cli_warn("%s", gp_disk_warning(d));
	if (!o.writable) {
		ret = do_read(d, off, len, have_len, outpath);
		if (gp_disk_close(d, &err) && ret == EXIT_OK)
			ret = cli_fail(&err);
		return ret;
	}
	ret = do_write(d, off, inpath, &written, &began, &err);
	if (gp_disk_close(d, &err) && !ret)
		ret = err.code;
	if (ret) {
		ret = json ? cli_fail_json(name, argv[optind + 1], &err, began) : cli_fail(&err);
		runlog_result(argv[optind + 1], began);
		return ret;
	}
	runlog("action", "%s: wrote %llu bytes at offset %llu", argv[optind + 1],
	       (unsigned long long)written, off);
	if (json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
		json_object_object_add(j, "command", json_object_new_string(name));
		json_object_object_add(j, "image", json_object_new_string(argv[optind + 1]));
		json_object_object_add(j, "offset", json_object_new_int64((int64_t)off));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)written));
		json_object_object_add(j, "changed", json_object_new_boolean(written > 0));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
								JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	}
	return EXIT_OK;
}
