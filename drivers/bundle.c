/* bundle.c — driver bundles: creating the archive from an injection set, and
 * reading one back (open, verify, stream) as untrusted input. See bundle.h;
 * the manifest's JSON lives in bundle_manifest.c. */
#include "bundle_priv.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inf.h"
#include "le.h"

/* Buffer sizes below are divided by this in fuzzing builds: the fuzzer's
 * archives are <= 256 KiB, and under ASan every large buffer costs a fresh
 * mapping and its poisoned shadow per input (three quarters of the time
 * at full size); small buffers also wrap the stream ring far more often. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SIZE_DIV 16u
#else
#define SIZE_DIV 1u
#endif
/* Bytes moved per read: bounds the memory any bundle operation uses for
 * file data, whatever the bundle's size. */
#define BUF_SIZE (256u * 1024 / SIZE_DIV)
/* libarchive's read size on the bundle file: 1 MiB, like the injector's
 * image writes, so a bundle costs few read() calls (64 KiB made 16x more;
 * bench/RESULTS.md, profile item 2). */
#define ARCHIVE_BLOCK ((1u << 20) / SIZE_DIV)
/* Fixed compression settings: part of what makes bundles reproducible. */
#define ZSTD_LEVEL "9"
#define XZ_LEVEL "6"
#define GZIP_LEVEL "6"
#define ZIP_LEVEL "6"

static const struct {
	const char *ext;
	enum gp_bundle_format format;
} formats[] = {
	{ ".tar.zst", GP_BUNDLE_TAR_ZSTD },
	{ ".tar.xz", GP_BUNDLE_TAR_XZ },
	{ ".tar.gz", GP_BUNDLE_TAR_GZIP },
	{ ".zip", GP_BUNDLE_ZIP },
};

const char *gp_bundle_extensions(void)
{
	return ".tar.zst, .tar.xz, .tar.gz, .zip";
}

const char *gp_bundle_format_name(enum gp_bundle_format f)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].format == f)
			return formats[i].ext;
	return "unknown";
}

int gp_bundle_format_from_path(const char *path, enum gp_bundle_format *out,
			       struct gp_error *err)
{
	size_t len = strlen(path);

	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		size_t el = strlen(formats[i].ext);

		if (len > el && !strcasecmp(path + len - el, formats[i].ext)) {
			*out = formats[i].format;
			return 0;
		}
	}
	return gp_error_set(err, GP_ERR_INVALID,
			    "%s: unknown bundle format (the name must end in one of %s)", path,
			    gp_bundle_extensions());
}

/* ---- Hashing ----------------------------------------------------------- */

/* (Re)start the digest *@md of type *@type, creating both on first use.
 * The type is fetched once per owner: OpenSSL 3's implicit fetch behind
 * EVP_sha256() costs ~170k instructions per init (bench/RESULTS.md,
 * profile item 5), which adds up over hundreds of files. */
static int sha_init(EVP_MD_CTX **md, EVP_MD **type, struct gp_error *err)
{
	if (!*type)
		*type = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!*md)
		*md = EVP_MD_CTX_new();
	if (!*type || !*md || EVP_DigestInit_ex2(*md, *type, NULL) != 1)
		return gp_error_set(err, GP_ERR_NOMEM, "cannot set up SHA-256");
	return 0;
}

static void sha_final(EVP_MD_CTX *md, uint8_t out[32])
{
	unsigned int n = 32;

	EVP_DigestFinal_ex(md, out, &n);
}

static void hex(const uint8_t sha[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", sha[i]);
}

/* ---- Creating ---------------------------------------------------------- */

struct creator {
	const char *path;                     /* the output, for messages */
	const struct gp_inject_set *set;
	const struct gp_bundle_create_opts *opts;
	uint8_t (*sha)[32];                   /* first-pass hashes */
	EVP_MD_CTX *md;
	EVP_MD *md_type;
	uint8_t *buf;
	struct gp_progress_info info;
	struct gp_error *err;
};

static int progress(struct creator *c, enum gp_progress_kind kind, const char *file)
{
	c->info.path = file;
	return gp_progress_call(c->opts->progress, kind, &c->info, c->err);
}

/* Open a source and check it is still the regular file of the planned size. */
static int open_source(struct creator *c, const struct gp_inject_file *f, int *fd)
{
	struct stat st;

	*fd = open(f->source_path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return gp_error_set_errno(c->err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO,
					  errno, "%s", f->source_path);
	if (fstat(*fd, &st) < 0) {
		int e = errno;

		close(*fd);
		*fd = -1;
		return gp_error_set_errno(c->err, GP_ERR_IO, e, "%s", f->source_path);
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
		close(*fd);
		*fd = -1;
		return gp_error_set(c->err, GP_ERR_IO,
				    "%s: changed since the injection set was computed (%s)",
				    f->source_path,
				    S_ISREG(st.st_mode) ? "size differs" : "no longer a regular file");
	}
	posix_fadvise(*fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

/* Read all of @f, hashing into @sha and, when @a is set, writing the bytes
 * as the current entry's data. Exactly f->size bytes must come. */
static int pump_source(struct creator *c, const struct gp_inject_file *f, struct archive *a,
		       uint8_t sha[32])
{
	uint64_t done = 0;
	int fd = -1, ret;

	if ((ret = open_source(c, f, &fd)) || (ret = sha_init(&c->md, &c->md_type, c->err)))
		goto out;
	for (;;) {
		ssize_t n = read(fd, c->buf, BUF_SIZE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = gp_error_set_errno(c->err, GP_ERR_IO, errno, "%s", f->source_path);
			goto out;
		}
		if (n == 0)
			break;
		done += (uint64_t)n;
		if (done > f->size)
			break;
		EVP_DigestUpdate(c->md, c->buf, (size_t)n);
		if (a && archive_write_data(a, c->buf, (size_t)n) != n) {
			ret = gp_error_set(c->err, GP_ERR_IO, "%s: writing %s: %s", c->path,
					   f->guest_path, archive_error_string(a));
			goto out;
		}
		c->info.done_bytes += (uint64_t)n;
		if ((ret = progress(c, GP_PROGRESS_BYTES, f->guest_path)))
			goto out;
	}
	if (done != f->size) {
		ret = gp_error_set(c->err, GP_ERR_IO, "%s: changed size while being bundled",
				   f->source_path);
		goto out;
	}
	sha_final(c->md, sha);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* The hardware IDs the manifest records (see gp_bundle_create_opts.model).
 * Pointers into the set's package; *out is a malloc'ed array. */
static int collect_hwids(const struct gp_package *pkg, const struct gp_model *model,
			 const char ***out, size_t *n, struct gp_error *err)
{
	size_t cap = model ? model->n_ids : pkg->n_models;

	*n = 0;
	*out = calloc(cap ? cap : 1, sizeof(char *));
	if (!*out)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (model) {
		for (size_t i = 0; i < model->n_ids; i++)
			(*out)[(*n)++] = model->ids[i];
		return 0;
	}
	for (size_t i = 0; i < pkg->n_models; i++) {
		const char *id = pkg->models[i].n_ids ? pkg->models[i].ids[0] : NULL;
		bool dup = false;

		for (size_t k = 0; id && k < *n && !dup; k++)
			dup = !strcasecmp((*out)[k], id);
		if (id && !dup)
			(*out)[(*n)++] = id;
	}
	return 0;
}

static struct archive_entry *make_entry(const char *name, uint64_t size, int64_t mtime)
{
	struct archive_entry *e = archive_entry_new();

	if (!e)
		return NULL;
	/* Everything a reproducible archive needs, nothing else: no owner
	 * names, no atime/ctime, one mode. */
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, (time_t)mtime, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	return e;
}

/* Choose format, filter and their fixed options. */
static int setup_writer(struct creator *c, struct archive *a)
{
	const char *filter = NULL, *level = NULL;
	int r;

	switch (c->opts->format) {
	case GP_BUNDLE_TAR_ZSTD:
		r = archive_write_add_filter_zstd(a);
		filter = "zstd", level = ZSTD_LEVEL;
		break;
	case GP_BUNDLE_TAR_XZ:
		r = archive_write_add_filter_xz(a);
		filter = "xz", level = XZ_LEVEL;
		break;
	case GP_BUNDLE_TAR_GZIP:
		r = archive_write_add_filter_gzip(a);
		filter = "gzip", level = GZIP_LEVEL;
		/* The gzip header would otherwise carry the current time. */
		if (r == ARCHIVE_OK)
			r = archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
		break;
	case GP_BUNDLE_ZIP:
		r = archive_write_set_format_zip(a);
		if (r == ARCHIVE_OK)
			r = archive_write_set_format_option(a, "zip", "compression", "deflate");
		if (r == ARCHIVE_OK)
			r = archive_write_set_format_option(a, "zip", "compression-level", ZIP_LEVEL);
		break;
	default:
		return gp_error_set(c->err, GP_ERR_INVALID, "%s: unknown bundle format %d", c->path,
				    (int)c->opts->format);
	}
	if (r == ARCHIVE_OK && filter)
		r = archive_write_set_filter_option(a, filter, "compression-level", level);
	/* zstd on every core (bench/RESULTS.md: one core made bundle create
	 * take 2-3x `tar | zstd -T0`). Multi-threaded zstd writes the same
	 * bytes for any number of workers >= 1, so bundles stay reproducible
	 * across machines. A libarchive without the option compresses on one
	 * thread, the same format. */
	if (r == ARCHIVE_OK && c->opts->format == GP_BUNDLE_TAR_ZSTD) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		char threads[24];

		snprintf(threads, sizeof(threads), "%ld", cpus > 1 ? cpus : 1);
		(void)archive_write_set_filter_option(a, "zstd", "threads", threads);
	}
	/* Restricted pax: ustar headers, an extended header only for what
	 * ustar cannot hold (no times or owner names in pax records). */
	if (r == ARCHIVE_OK && c->opts->format != GP_BUNDLE_ZIP)
		r = archive_write_set_format_pax_restricted(a);
	if (r != ARCHIVE_OK)
		return gp_error_set(c->err, GP_ERR_UNSUPPORTED, "%s: libarchive cannot write %s: %s",
				    c->path, gp_bundle_format_name(c->opts->format),
				    archive_error_string(a));
	return 0;
}

static int write_entry_header(struct creator *c, struct archive *a, const char *name,
			      uint64_t size, int64_t mtime)
{
	struct archive_entry *e = make_entry(name, size, mtime);
	int r;

	if (!e)
		return gp_error_set(c->err, GP_ERR_NOMEM, "out of memory");
	r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return gp_error_set(c->err, GP_ERR_IO, "%s: writing %s: %s", c->path, name,
				    archive_error_string(a));
	return 0;
}

/* Second pass: the archive itself, into the open temporary file @fd. */
static int write_archive(struct creator *c, int fd, const char *manifest, size_t manifest_len)
{
	const struct gp_inject_set *set = c->set;
	struct archive *a = archive_write_new();
	int64_t newest = 0;
	int ret;

	if (!a)
		return gp_error_set(c->err, GP_ERR_NOMEM, "out of memory");
	if ((ret = setup_writer(c, a)))
		goto out;
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		ret = gp_error_set(c->err, GP_ERR_IO, "%s: %s", c->path, archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; i < set->count; i++)
		if (set->files[i].mtime > newest)
			newest = set->files[i].mtime;
	if ((ret = write_entry_header(c, a, GP_BUNDLE_MANIFEST_NAME, manifest_len, newest)))
		goto out;
	if (archive_write_data(a, manifest, manifest_len) != (la_ssize_t)manifest_len) {
		ret = gp_error_set(c->err, GP_ERR_IO, "%s: writing the manifest: %s", c->path,
				   archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		uint8_t again[32];

		if ((ret = progress(c, GP_PROGRESS_FILE, f->guest_path)) ||
		    (ret = write_entry_header(c, a, f->guest_path, f->size, f->mtime)) ||
		    (ret = pump_source(c, f, a, again)))
			goto out;
		if (memcmp(again, c->sha[i], 32)) {
			ret = gp_error_set(c->err, GP_ERR_IO, "%s: changed while being bundled",
					   f->source_path);
			goto out;
		}
		c->info.done_files++;
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		ret = gp_error_set(c->err, GP_ERR_IO, "%s: %s", c->path, archive_error_string(a));
out:
	archive_write_free(a);
	return ret;
}

/* A temporary name beside @path, so that the final rename() stays within
 * one file system. */
static int make_temp(const char *path, char **tmp, int *fd, struct gp_error *err)
{
	if (asprintf(tmp, "%s.tmp-XXXXXX", path) < 0) {
		*tmp = NULL;
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	*fd = mkostemp(*tmp, O_CLOEXEC);
	if (*fd < 0) {
		int e = errno;

		free(*tmp);
		*tmp = NULL;
		return gp_error_set_errno(err, e == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, e,
					  "%s: cannot create a temporary file beside it", path);
	}
	/* mkstemp makes 0600; a bundle is meant to be shared. */
	fchmod(*fd, 0644);
	return 0;
}

/* The bytes of the package's INF, from its file in @set (the manifest
 * carries them, bundle.h). The manifest's parse checks they hash as the
 * file's entry, so a change between the passes fails the creation. */
static int read_inf(const struct gp_inject_set *set, uint8_t **out, size_t *len,
		    struct gp_error *err)
{
	const struct gp_package *p = set->pkg;
	const struct gp_inject_file *f = NULL;
	size_t plen = strlen(GP_GUEST_HOSTDRIVERSTORE), flen = strlen(p->folder);
	ssize_t n;
	int fd;

	*out = NULL;
	for (size_t i = 0; i < set->count && !f; i++) {
		const char *g = set->files[i].guest_path;

		if (!strncmp(g, GP_GUEST_HOSTDRIVERSTORE, plen) && g[plen] == '/' &&
		    !strncmp(g + plen + 1, p->folder, flen) && g[plen + 1 + flen] == '/' &&
		    !strcmp(g + plen + flen + 2, p->inf_name))
			f = &set->files[i];
	}
	if (!f)
		return gp_error_set(err, GP_ERR_INVALID, "%s: the package's INF is not in the set",
				    p->folder);
	if (f->size > GP_INF_MAX_FILE)
		return gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: INF larger than %u bytes",
				    f->source_path, GP_INF_MAX_FILE);
	*out = malloc(f->size + 1);
	if (!*out)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	fd = open(f->source_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(*out);
		*out = NULL;
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					  "%s", f->source_path);
	}
	n = read(fd, *out, f->size + 1);
	close(fd);
	if (n < 0 || (uint64_t)n != f->size) {
		free(*out);
		*out = NULL;
		return gp_error_set(err, GP_ERR_IO, "%s: changed while being bundled", f->source_path);
	}
	*len = (size_t)n;
	return 0;
}

int gp_bundle_create(const char *path, const struct gp_inject_set *set,
		     const struct gp_bundle_create_opts *opts, struct gp_error *err)
{
	struct creator c = { .path = path, .set = set, .opts = opts, .err = err };
	const char **hwids = NULL;
	char *manifest = NULL, *tmp = NULL;
	uint8_t *inf = NULL;
	size_t manifest_len = 0, n_hwids = 0, inf_len = 0;
	int fd = -1, ret;

	if (!opts || !opts->tool_version || !set || !set->pkg)
		return gp_error_set(err, GP_ERR_INVALID, "%s: bundle options incomplete", path);
	for (size_t i = 0; i < set->count; i++)
		if (!set->files[i].source_path)
			return gp_error_set(err, GP_ERR_INVALID, "%s: no host source to bundle",
					    set->files[i].guest_path);
	c.sha = calloc(set->count ? set->count : 1, sizeof(*c.sha));
	c.buf = malloc(BUF_SIZE);
	if (!c.sha || !c.buf) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	c.info.stage = "bundle";
	c.info.total_files = set->count;
	/* Every byte is read twice: once to hash, once to write. */
	if (mul_u64(set->total_bytes, 2, &c.info.total_bytes))
		c.info.total_bytes = UINT64_MAX;
	if ((ret = progress(&c, GP_PROGRESS_BEGIN, NULL)))
		goto out;
	/* Pass 1: hashes for the manifest, which must be the first entry. */
	for (size_t i = 0; i < set->count; i++)
		if ((ret = progress(&c, GP_PROGRESS_FILE, set->files[i].guest_path)) ||
		    (ret = pump_source(&c, &set->files[i], NULL, c.sha[i])))
			goto out;
	if ((ret = collect_hwids(set->pkg, opts->model, &hwids, &n_hwids, err)) ||
	    (ret = read_inf(set, &inf, &inf_len, err)) ||
	    (ret = gp_bundle_manifest_serialize(set, (const uint8_t(*)[32])c.sha, hwids, n_hwids,
						opts->gpu, inf, inf_len, opts->tool_version,
						&manifest, &manifest_len, err)))
		goto out;
	if ((ret = make_temp(path, &tmp, &fd, err)))
		goto out;
	if ((ret = write_archive(&c, fd, manifest, manifest_len)))
		goto out;
	if (fsync(fd) < 0) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", tmp);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: cannot rename %s into place",
					 path, tmp);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	ret = progress(&c, GP_PROGRESS_END, NULL);
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	EVP_MD_CTX_free(c.md);
	EVP_MD_free(c.md_type);
	free(hwids);
	free(inf);
	free(manifest);
	free(c.sha);
	free(c.buf);
	return ret;
}

/* ---- Reading ----------------------------------------------------------- */

struct gp_bundle {
	char *path;
	struct gp_bundle_manifest *m;
	struct gp_bundle_info info;
	char *manifest;                 /* text, NUL-terminated */
	size_t manifest_len;
	uint8_t manifest_sha[32];
	char archive_format[16];
};

static int corrupt(struct gp_error *err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* GP_ERR_CORRUPT with the archive's name in front. */
static int corrupt(struct gp_error *err, const char *path, const char *fmt, ...)
{
	char msg[GP_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return gp_error_set(err, GP_ERR_CORRUPT, "%s: %s", path, msg);
}

/* A reader restricted to what a bundle can be: tar or zip, uncompressed or
 * gzip/xz/zstd. Anything else fails as "not a bundle". */
static int reader_new(const char *path, struct archive **out, struct gp_error *err)
{
	struct archive *a = archive_read_new();

	*out = NULL;
	if (!a)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_format_zip(a) != ARCHIVE_OK ||
	    archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_filter_xz(a) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(a) != ARCHIVE_OK) {
		int ret = gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: libarchive: %s", path,
				       archive_error_string(a));
		archive_read_free(a);
		return ret;
	}
	if (archive_read_open_filename(a, path, ARCHIVE_BLOCK) != ARCHIVE_OK) {
		int e = archive_errno(a);
		int ret = e == ENOENT ? gp_error_set(err, GP_ERR_NOTFOUND, "%s: no such file", path)
				      : corrupt(err, path, "not a bundle: %s", archive_error_string(a));
		archive_read_free(a);
		return ret;
	}
	*out = a;
	return 0;
}

/* Next header; ARCHIVE_WARN counts as corrupt: a bundle gpup wrote never
 * makes libarchive warn. Returns 0, 1 at the end, or an error. */
static int next_header(struct archive *a, const char *path, struct archive_entry **e,
		       const char *after, struct gp_error *err)
{
	int r = archive_read_next_header(a, e);

	if (r == ARCHIVE_OK)
		return 0;
	if (r == ARCHIVE_EOF)
		return 1;
	return corrupt(err, path, "after '%s': %s (truncated or corrupt archive)", after,
		       archive_error_string(a) ? archive_error_string(a) : "unreadable header");
}

/* Read and return the first entry, which must be the manifest. */
static int read_manifest(struct archive *a, const char *path, uint64_t archive_size,
			 char **text, size_t *len, struct gp_error *err)
{
	struct archive_entry *e;
	const char *name;
	uint64_t size, done = 0;
	int ret = next_header(a, path, &e, "the start", err);

	*text = NULL;
	if (ret == 1)
		return corrupt(err, path, "empty archive, no %s", GP_BUNDLE_MANIFEST_NAME);
	if (ret)
		return ret;
	name = archive_entry_pathname(e);
	if (!name || strcmp(name, GP_BUNDLE_MANIFEST_NAME))
		return corrupt(err, path, "first entry '%s' is not %s (not a gpup bundle?)",
			       name ? name : "(unnamed)", GP_BUNDLE_MANIFEST_NAME);
	if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
		return corrupt(err, path, "%s is not a regular file", GP_BUNDLE_MANIFEST_NAME);
	if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
		return corrupt(err, path, "%s: size unknown", GP_BUNDLE_MANIFEST_NAME);
	size = (uint64_t)archive_entry_size(e);
	if (size > GP_BUNDLE_MAX_MANIFEST_SIZE || size / GP_BUNDLE_MAX_RATIO > archive_size)
		return corrupt(err, path, "%s: implausible size %llu bytes", GP_BUNDLE_MANIFEST_NAME,
			       (unsigned long long)size);
	*text = malloc(size + 1);
	if (!*text)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	while (done < size) {
		la_ssize_t n = archive_read_data(a, *text + done, size - done);

		if (n <= 0) {
			free(*text);
			*text = NULL;
			return corrupt(err, path, "%s: %s", GP_BUNDLE_MANIFEST_NAME,
				       n < 0 ? archive_error_string(a) : "truncated");
		}
		done += (uint64_t)n;
	}
	(*text)[size] = '\0';
	*len = size;
	return 0;
}

static void detect_format(struct gp_bundle *b, struct archive *a)
{
	const char *fmt = archive_format(a) == ARCHIVE_FORMAT_ZIP ||
					  (archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) ==
						  ARCHIVE_FORMAT_ZIP
				  ? "zip"
				  : "tar";
	const char *flt = "";

	switch (archive_filter_code(a, 0)) {
	case ARCHIVE_FILTER_ZSTD: flt = ".zst"; break;
	case ARCHIVE_FILTER_XZ: flt = ".xz"; break;
	case ARCHIVE_FILTER_GZIP: flt = ".gz"; break;
	default: break;
	}
	snprintf(b->archive_format, sizeof(b->archive_format), "%s%s", fmt, flt);
}

static int sha256_buf(const void *p, size_t len, uint8_t out[32], struct gp_error *err)
{
	unsigned int n = 32;

	if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1)
		return gp_error_set(err, GP_ERR_NOMEM, "cannot compute SHA-256");
	return 0;
}

int gp_bundle_open(const char *path, struct gp_bundle **out, struct gp_error *err)
{
	struct gp_bundle *b;
	struct archive *a = NULL;
	struct stat st;
	int ret;

	*out = NULL;
	if (stat(path, &st) < 0)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					  "%s", path);
	if (!S_ISREG(st.st_mode))
		return gp_error_set(err, GP_ERR_INVALID, "%s: not a regular file", path);
	b = calloc(1, sizeof(*b));
	if (!b || !(b->path = strdup(path))) {
		free(b);
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	if ((ret = reader_new(path, &a, err)) ||
	    (ret = read_manifest(a, path, (uint64_t)st.st_size, &b->manifest, &b->manifest_len,
				 err)))
		goto fail;
	detect_format(b, a);
	if ((ret = sha256_buf(b->manifest, b->manifest_len, b->manifest_sha, err)) ||
	    (ret = gp_bundle_manifest_parse(b->manifest, b->manifest_len, (uint64_t)st.st_size,
					    path, &b->m, err)))
		goto fail;
	archive_read_free(a);
	b->info.path = b->path;
	b->info.format_version = b->m->format_version;
	b->info.tool_version = b->m->tool_version;
	b->info.archive_format = b->archive_format;
	b->info.archive_size = (uint64_t)st.st_size;
	b->info.hardware_ids = (const char *const *)b->m->hwids;
	b->info.n_hardware_ids = b->m->n_hwids;
	b->info.manifest_json = b->manifest;
	b->info.manifest_len = b->manifest_len;
	b->info.gpu = b->m->gpu;
	b->info.inf_text = b->m->inf_text;
	b->info.inf_len = b->m->inf_len;
	*out = b;
	return 0;
fail:
	archive_read_free(a);
	gp_bundle_close(b);
	return ret;
}

void gp_bundle_close(struct gp_bundle *b)
{
	if (!b)
		return;
	gp_bundle_manifest_free(b->m);
	free(b->manifest);
	free(b->path);
	free(b);
}

const struct gp_bundle_info *gp_bundle_info(const struct gp_bundle *b)
{
	return &b->info;
}

const struct gp_inject_set *gp_bundle_inject_set(struct gp_bundle *b)
{
	return &b->m->set;
}

/* Index of the manifest file named @path, or -1. */
static ssize_t find_file(const struct gp_bundle *b, const char *path)
{
	size_t lo = 0, hi = b->m->set.count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(path, b->m->set.files[mid].guest_path);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* A fresh reader positioned after the manifest, which must still be the
 * one gp_bundle_open() validated. */
static int reopen(struct gp_bundle *b, struct archive **out, struct gp_error *err)
{
	struct archive *a;
	char *text = NULL;
	size_t len = 0;
	uint8_t sha[32];
	int ret;

	*out = NULL;
	if ((ret = reader_new(b->path, &a, err)))
		return ret;
	if ((ret = read_manifest(a, b->path, UINT64_MAX / GP_BUNDLE_MAX_RATIO, &text, &len, err)) ||
	    (ret = sha256_buf(text, len, sha, err)))
		goto fail;
	if (len != b->manifest_len || memcmp(sha, b->manifest_sha, 32)) {
		ret = gp_error_set(err, GP_ERR_MISMATCH, "%s: the manifest changed since it was opened",
				   b->path);
		goto fail;
	}
	free(text);
	*out = a;
	return 0;
fail:
	free(text);
	archive_read_free(a);
	return ret;
}

/* Check that @e is the manifest's file @idx (path, type, size). Returns 0,
 * GP_ERR_CORRUPT (hostile or unexpected entry), GP_ERR_MISMATCH (size). */
static int check_entry(const struct gp_bundle *b, struct archive_entry *e, size_t idx,
		       struct gp_error *err)
{
	const struct gp_inject_file *f = &b->m->set.files[idx];
	const char *name = archive_entry_pathname(e), *why;
	enum gp_bundle_path_kind kind;
	ssize_t at;

	if (!name)
		return corrupt(err, b->path, "entry without a usable name where '%s' should be",
			       f->guest_path);
	if (!strcmp(name, GP_BUNDLE_MANIFEST_NAME))
		return corrupt(err, b->path, "entry '%s': a second manifest", name);
	if (gp_bundle_path_check(name, &kind, NULL, NULL, &why))
		return corrupt(err, b->path, "entry '%s': unsafe path: %s", name, why);
	if (archive_entry_hardlink(e))
		return corrupt(err, b->path, "entry '%s': a hard link (only regular files allowed)",
			       name);
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		break;
	case AE_IFLNK:
		return corrupt(err, b->path, "entry '%s': a symbolic link (only regular files allowed)",
			       name);
	case AE_IFDIR:
		return corrupt(err, b->path, "entry '%s': a directory (only regular files allowed)",
			       name);
	default:
		return corrupt(err, b->path,
			       "entry '%s': a device, FIFO or socket (only regular files allowed)",
			       name);
	}
	at = find_file(b, name);
	if (at < 0) {
		for (size_t i = 0; i < b->m->set.count; i++)
			if (!strcasecmp(name, b->m->set.files[i].guest_path))
				return corrupt(err, b->path,
					       "entry '%s': not in the manifest (differs only in case "
					       "from '%s')", name, b->m->set.files[i].guest_path);
		return corrupt(err, b->path, "entry '%s': not in the manifest", name);
	}
	if ((size_t)at < idx)
		return corrupt(err, b->path, "entry '%s': duplicate or out of manifest order", name);
	if ((size_t)at > idx)
		return corrupt(err, b->path,
			       "file '%s' of the manifest is missing from the archive (found '%s')",
			       f->guest_path, name);
	if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0 ||
	    (uint64_t)archive_entry_size(e) != f->size)
		return gp_error_set(err, GP_ERR_MISMATCH,
				    "%s: file '%s': %lld bytes in the archive, the manifest says %llu",
				    b->path, name,
				    archive_entry_size_is_set(e) ? (long long)archive_entry_size(e) : -1LL,
				    (unsigned long long)f->size);
	return 0;
}

/* The entry for manifest file @idx, read from @a (which just passed file
 * idx - 1, or the manifest). */
static int expect_entry(const struct gp_bundle *b, struct archive *a, size_t idx,
			struct gp_error *err)
{
	struct archive_entry *e;
	const char *after = idx ? b->m->set.files[idx - 1].guest_path : GP_BUNDLE_MANIFEST_NAME;
	int ret = next_header(a, b->path, &e, after, err);

	if (ret == 1)
		return corrupt(err, b->path,
			       "file '%s' of the manifest is missing from the archive (truncated?)",
			       b->m->set.files[idx].guest_path);
	return ret ? ret : check_entry(b, e, idx, err);
}

/* After the last manifest file, the archive must end. */
static int expect_end(const struct gp_bundle *b, struct archive *a, struct gp_error *err)
{
	struct archive_entry *e;
	size_t n = b->m->set.count;
	int ret = next_header(a, b->path, &e, n ? b->m->set.files[n - 1].guest_path
						: GP_BUNDLE_MANIFEST_NAME, err);
	const char *name, *why;
	enum gp_bundle_path_kind kind;

	if (ret)
		return ret == 1 ? 0 : ret;
	name = archive_entry_pathname(e);
	if (name && gp_bundle_path_check(name, &kind, NULL, NULL, &why))
		return corrupt(err, b->path, "entry '%s': unsafe path: %s", name, why);
	if (name && find_file(b, name) >= 0)
		return corrupt(err, b->path, "entry '%s': duplicate", name);
	return corrupt(err, b->path, "entry '%s': not in the manifest",
		       name ? name : "(unnamed)");
}

int gp_bundle_check(struct gp_bundle *b, bool full, struct gp_error *err)
{
	struct archive *a = NULL;
	int ret;

	/* A zip is read through its central directory (libarchive's seekable
	 * reader, a file being seekable): skipping an entry is a seek. A tar
	 * must be read, and decompressed, to its end. */
	if (!full && strcmp(b->archive_format, "zip") != 0)
		return 0;
	if ((ret = reopen(b, &a, err)))
		return ret;
	for (size_t i = 0; !ret && i < b->m->set.count; i++) {
		ret = expect_entry(b, a, i, err);
		if (!ret && archive_read_data_skip(a) != ARCHIVE_OK)
			ret = corrupt(err, b->path, "file '%s': %s", b->m->set.files[i].guest_path,
				      archive_error_string(a));
	}
	if (!ret)
		ret = expect_end(b, a, err);
	archive_read_free(a);
	return ret;
}

static int mismatch_hash(const struct gp_bundle *b, const struct gp_inject_file *f,
			 const uint8_t got[32], const char *what, struct gp_error *err)
{
	char want_hex[65], got_hex[65];

	hex(f->sha256, want_hex);
	hex(got, got_hex);
	return gp_error_set(err, GP_ERR_MISMATCH,
			    "%s: file '%s': %s SHA-256 %s differs from the manifest's %s", b->path,
			    f->guest_path, what, got_hex, want_hex);
}

int gp_bundle_verify(struct gp_bundle *b, const struct gp_progress *prog, struct gp_error *err)
{
	const struct gp_inject_set *set = &b->m->set;
	struct gp_progress_info info = { .stage = "verify-bundle",
					 .total_bytes = set->total_bytes,
					 .total_files = set->count };
	struct archive *a = NULL;
	EVP_MD_CTX *md = NULL;
	EVP_MD *md_type = NULL;
	uint8_t *buf = malloc(BUF_SIZE);
	int ret;

	if (!buf)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if ((ret = gp_progress_call(prog, GP_PROGRESS_BEGIN, &info, err)) ||
	    (ret = reopen(b, &a, err)))
		goto out;
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		uint64_t done = 0;
		uint8_t got[32];

		info.path = f->guest_path;
		if ((ret = gp_progress_call(prog, GP_PROGRESS_FILE, &info, err)) ||
		    (ret = expect_entry(b, a, i, err)) || (ret = sha_init(&md, &md_type, err)))
			goto out;
		for (;;) {
			la_ssize_t n = archive_read_data(a, buf, BUF_SIZE);

			if (n < 0) {
				ret = corrupt(err, b->path, "file '%s': %s", f->guest_path,
					      archive_error_string(a));
				goto out;
			}
			if (n == 0)
				break;
			done += (uint64_t)n;
			if (done > f->size)
				break;
			EVP_DigestUpdate(md, buf, (size_t)n);
			info.done_bytes += (uint64_t)n;
			if ((ret = gp_progress_call(prog, GP_PROGRESS_BYTES, &info, err)))
				goto out;
		}
		if (done != f->size) {
			ret = gp_error_set(err, GP_ERR_MISMATCH,
					   "%s: file '%s': %s than the manifest's %llu bytes", b->path,
					   f->guest_path, done > f->size ? "longer" : "shorter",
					   (unsigned long long)f->size);
			goto out;
		}
		sha_final(md, got);
		if (memcmp(got, f->sha256, 32)) {
			ret = mismatch_hash(b, f, got, "content", err);
			goto out;
		}
		info.done_files++;
	}
	info.path = NULL;
	if ((ret = expect_end(b, a, err)))
		goto out;
	ret = gp_progress_call(prog, GP_PROGRESS_END, &info, err);
out:
	EVP_MD_CTX_free(md);
	EVP_MD_free(md_type);
	archive_read_free(a);
	free(buf);
	return ret;
}

/* ---- Streaming --------------------------------------------------------- */

/*
 * Everything the archive costs — reading, decompressing, checking entries
 * — runs on a reader thread, into a ring the caller's read() copies out of;
 * the caller's thread keeps its image writes.
 *
 * The reader runs ahead across files: once an entry's bytes are in the
 * ring it stands on the next entry and streams that too, so the caller
 * finds a file's first bytes waiting when it opens it. A reader that
 * started each file only when the caller opened it kept the caller
 * waiting at every file's start, 0.45 s over the bench package's 850 files
 * (bench/RESULTS.md, profile item 11). Each entry the reader stands on gets
 * a lane — its span of the stream and, in the end, its digest — queued in
 * archive order; open() passes over the lanes of files the caller does not
 * ask for (those unchanged in the guest), and the reader skips entries
 * below the file asked for without copying them.
 *
 * The SHA-256 of every byte costs more CPU than either side's other work
 * (profile item 2). A digest is sequential, but it can move between
 * threads, so whichever side holds no other work extends it: the caller
 * up to the bytes it just copied out (still in that core's cache), either
 * side instead of sleeping. It moves from lane to lane in order and is
 * finished at each entry's end; lanes passed over are not hashed.
 *
 * Errors: the reader stops at the first one. A missing or hostile entry
 * fails the open() of that file or of any later one, before the caller
 * creates anything; an error in an entry's data comes from read() after
 * the good bytes before it, as reading the archive directly would, and
 * from close(). Entries beyond the last file asked for are read ahead
 * but their errors never reported: the caller did not ask for them.
 *
 * Ownership: everything below the ring pointer is under @mu, except the
 * archive and @next (the reader's) and the digest (the holder's of
 * @hashing). Stream positions count bytes since the first lane; ring bytes
 * from min(@consumed, @hashed) to @produced are in use. Memory: RING bytes
 * and LANES lanes, whatever the bundle's size.
 */
#define RING ((4u << 20) / SIZE_DIV)
/* Bytes decompressed (and hashed) per step: small enough to stay in cache
 * between the two, large enough to keep lock traffic low. */
#define STEP (256u * 1024 / SIZE_DIV)
/* A side waiting for bytes or room is woken once this much is there: a
 * wake-up per STEP cost the reader a tenth of its time in futex calls. */
#define WAKE ((1u << 20) / SIZE_DIV)
/* Entries queued ahead of the caller: a ring full of small files. */
#define LANES 64u

struct lane {
	size_t idx;          /* manifest index of the entry */
	uint64_t start, end; /* its bytes' stream positions (@end once @ended) */
	bool ended;          /* the archive said the entry ends at @end */
	bool skip;           /* not wanted by the caller: neither copied out nor hashed */
	bool final;          /* @digest is the SHA-256 of its bytes */
	bool nohash;         /* the digest could not be started for it */
	uint8_t digest[32];
};

enum caller_wait {
	WAIT_NONE,
	WAIT_BYTES,  /* read(): woken by WAKE bytes or the entry's end */
	WAIT_LANES,  /* open(), close(): woken by any lane's progress */
};

struct bundle_stream {
	struct gp_bundle *b;
	struct archive *a;
	size_t next;            /* reader: manifest index of the next entry */
	EVP_MD_CTX *md;
	EVP_MD *md_type;        /* fetched once per stream (sha_init) */
	uint8_t *ring;

	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* both sides wait on it; one waiter each */
	bool quit;
	size_t floor;           /* the reader skips entries below it */
	struct lane lanes[LANES];
	uint64_t head, tail;    /* queued: lanes head..tail-1 (lane n is lanes[n % LANES]) */
	uint64_t hlane;         /* the lane the digest is in */
	uint64_t md_lane;       /* the lane @md was started for (UINT64_MAX: none) */
	uint64_t produced, consumed, hashed;
	bool hashing;           /* a thread is extending the digest */
	bool reader_waits;      /* for room, a lane, or the end */
	enum caller_wait caller_waits;
	bool stopped;           /* the reader is done: @status, @rerr */
	int status;
	struct gp_error rerr;

	/* The caller's side. */
	ssize_t cur;            /* file open for reading, -1 if none */
	uint64_t cur_lane;
	size_t asked;           /* open() may ask for this index or later */
	uint64_t done;
};

static struct lane *lane_at(struct bundle_stream *bs, uint64_t n)
{
	return &bs->lanes[n % LANES];
}

/* Of @n bytes from stream position @pos, those before the ring wraps. */
static uint64_t ring_span(uint64_t pos, uint64_t n)
{
	uint64_t at = pos % RING;

	return n < RING - at ? n : RING - at;
}

/* Free ring bytes: what is neither to copy out nor to hash. */
static uint64_t ring_room(const struct bundle_stream *bs)
{
	uint64_t low = bs->consumed < bs->hashed ? bs->consumed : bs->hashed;

	return RING - (bs->produced - low);
}

/* The end of @l's bytes so far. */
static uint64_t lane_limit(const struct bundle_stream *bs, const struct lane *l)
{
	return l->ended ? l->end : bs->produced;
}

static void wake_lanes(struct bundle_stream *bs)
{
	if (bs->reader_waits || bs->caller_waits == WAIT_LANES)
		pthread_cond_broadcast(&bs->cv);
}

/* Either side, @mu held: move the digest on by up to @max bytes, finishing
 * the lanes whose bytes are all in it and passing over skipped ones —
 * unless another thread holds it. Returns whether anything moved. */
static bool hash_some(struct bundle_stream *bs, uint64_t max)
{
	bool moved = false;

	if (bs->hashing)
		return false;
	while (bs->hlane < bs->tail) {
		struct lane *l = lane_at(bs, bs->hlane);
		uint64_t limit = lane_limit(bs, l), at, n;

		if (!l->skip && !l->nohash && bs->md_lane != bs->hlane) {
			/* Cannot fail once sha_init() succeeded, short of memory. */
			if (EVP_DigestInit_ex2(bs->md, bs->md_type, NULL) != 1)
				l->nohash = true;
			bs->md_lane = bs->hlane;
		}
		if (l->skip || l->nohash) {
			moved |= bs->hashed != limit;
			bs->hashed = limit;
		}
		if (bs->hashed == limit) {
			if (!l->ended)
				break;
			if (!l->skip && !l->nohash) {
				sha_final(bs->md, l->digest);
				l->final = true;
			}
			bs->md_lane = UINT64_MAX;
			bs->hlane++;
			moved = true;
			continue;
		}
		at = bs->hashed % RING;
		n = ring_span(bs->hashed, limit - bs->hashed);
		if (n > max)
			n = max;
		bs->hashing = true;
		pthread_mutex_unlock(&bs->mu);
		EVP_DigestUpdate(bs->md, bs->ring + at, (size_t)n);
		pthread_mutex_lock(&bs->mu);
		bs->hashing = false;
		bs->hashed += n;
		moved = true;
		break;
	}
	if (moved)
		wake_lanes(bs);
	return moved;
}

/* Reader, @mu held: wait for a change, hashing meanwhile if it can. */
static void reader_idle(struct bundle_stream *bs)
{
	if (hash_some(bs, STEP))
		return;
	bs->reader_waits = true;
	pthread_cond_wait(&bs->cv, &bs->mu);
	bs->reader_waits = false;
}

/* Reader: the bytes of the entry of lane @l into the ring. Called and
 * returns with @mu held. Returns 0 at the entry's end, 1 when told to
 * quit, or an error in @err. */
static int reader_fill(struct bundle_stream *bs, struct lane *l, struct gp_error *err)
{
	const struct gp_inject_file *f = &bs->b->m->set.files[l->idx];

	for (;;) {
		uint64_t at, room;
		la_ssize_t n;

		while (!bs->quit && ring_room(bs) == 0)
			reader_idle(bs);
		if (bs->quit)
			return 1;
		at = bs->produced % RING;
		room = ring_span(bs->produced, ring_room(bs));
		if (room > STEP)
			room = STEP;
		/* [at, at + room) is the reader's until @produced moves. */
		pthread_mutex_unlock(&bs->mu);
		n = archive_read_data(bs->a, bs->ring + at, (size_t)room);
		pthread_mutex_lock(&bs->mu);
		if (n < 0)
			return corrupt(err, bs->b->path, "file '%s': %s", f->guest_path,
				       archive_error_string(bs->a));
		if (n == 0)
			break;
		if (bs->produced - l->start + (uint64_t)n > f->size)
			return gp_error_set(err, GP_ERR_MISMATCH,
					    "%s: file '%s': longer than the manifest's %llu bytes",
					    bs->b->path, f->guest_path, (unsigned long long)f->size);
		bs->produced += (uint64_t)n;
		/* Bytes nobody will copy out: their room is free at once. */
		if (l->skip && bs->consumed >= l->start)
			bs->consumed = bs->produced;
		if (bs->caller_waits == WAIT_BYTES && bs->produced - bs->consumed >= WAKE)
			pthread_cond_broadcast(&bs->cv);
	}
	l->end = bs->produced;
	l->ended = true;
	if (bs->caller_waits != WAIT_NONE)
		pthread_cond_broadcast(&bs->cv);
	return 0;
}

/* Reader: stand on the next entry; 0, or an error in @err. */
static int reader_step(struct bundle_stream *bs, bool skip, struct gp_error *err)
{
	int ret = expect_entry(bs->b, bs->a, bs->next, err);

	if (!ret && skip && archive_read_data_skip(bs->a) != ARCHIVE_OK)
		ret = corrupt(err, bs->b->path, "file '%s': %s",
			      bs->b->m->set.files[bs->next].guest_path, archive_error_string(bs->a));
	if (!ret)
		bs->next++;
	return ret;
}

static void *reader_main(void *arg)
{
	struct bundle_stream *bs = arg;
	size_t count = bs->b->m->set.count;
	struct gp_error err = { 0 };
	int ret = 0;

	pthread_mutex_lock(&bs->mu);
	while (!bs->quit && bs->next < count) {
		struct lane *l;
		bool skip;

		while (!bs->quit && bs->tail - bs->head == LANES)
			reader_idle(bs);
		if (bs->quit)
			break;
		skip = bs->next < bs->floor;
		pthread_mutex_unlock(&bs->mu);
		ret = reader_step(bs, skip, &err);
		pthread_mutex_lock(&bs->mu);
		if (ret)
			break;
		if (skip)
			continue;
		l = lane_at(bs, bs->tail);
		*l = (struct lane){ .idx = bs->next - 1, .start = bs->produced };
		bs->tail++;
		if (bs->caller_waits == WAIT_LANES)
			pthread_cond_broadcast(&bs->cv);
		ret = reader_fill(bs, l, &err);
		if (ret)
			break;
	}
	if (!ret && !bs->quit && bs->next == count) {
		/* Nothing may follow the last file; only finish() reports it. */
		pthread_mutex_unlock(&bs->mu);
		ret = expect_end(bs->b, bs->a, &err);
		pthread_mutex_lock(&bs->mu);
	}
	bs->stopped = true;
	bs->status = ret == 1 ? GP_ERR_ABORTED : ret;
	bs->rerr = err;
	if (bs->caller_waits != WAIT_NONE)
		pthread_cond_broadcast(&bs->cv);
	/* Nothing left to read: help with the digest until told to quit. */
	while (!bs->quit)
		reader_idle(bs);
	pthread_mutex_unlock(&bs->mu);
	return NULL;
}

/* Start the reader at file @from (the first file asked for). */
static int reader_start(struct bundle_stream *bs, size_t from, struct gp_error *err)
{
	int ret;

	if (bs->started)
		return 0;
	if ((ret = sha_init(&bs->md, &bs->md_type, err)))
		return ret;
	bs->md_lane = UINT64_MAX;
	bs->floor = from;
	bs->ring = malloc(RING);
	if (!bs->ring)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (pthread_mutex_init(&bs->mu, NULL))
		goto fail_ring;
	if (pthread_cond_init(&bs->cv, NULL))
		goto fail_mu;
	if (pthread_create(&bs->thread, NULL, reader_main, bs))
		goto fail_cv;
	bs->started = true;
	return 0;
fail_cv:
	pthread_cond_destroy(&bs->cv);
fail_mu:
	pthread_mutex_destroy(&bs->mu);
fail_ring:
	free(bs->ring);
	bs->ring = NULL;
	return gp_error_set(err, GP_ERR_NOMEM, "cannot start the bundle reading thread");
}

/* Caller, @mu held: the head lane is done with (its verdict given, or
 * passed over); its slot and ring bytes are the reader's again. */
static void release_head(struct bundle_stream *bs)
{
	bs->head++;
	if (bs->reader_waits)
		pthread_cond_broadcast(&bs->cv);
}

/* Caller, @mu held: wait for a lane's progress. */
static void caller_wait(struct bundle_stream *bs, enum caller_wait what)
{
	bs->caller_waits = what;
	pthread_cond_wait(&bs->cv, &bs->mu);
	bs->caller_waits = WAIT_NONE;
}

/* Caller, @mu held: pass over the lanes before file @idx and find its own.
 * Returns 0 with the lane at @head, or the reader's error. @path NULL:
 * pass over every lane to the archive's end (0 when all was well). */
static int seek_lane(struct bundle_stream *bs, size_t idx, const char *path,
		     struct gp_error *err)
{
	for (;;) {
		struct lane *l = lane_at(bs, bs->head);

		if (bs->head == bs->tail) {
			if (bs->stopped)
				return bs->status ? gp_error_copy(err, &bs->rerr)
				       : !path    ? 0
						  : gp_error_set(err, GP_ERR_CORRUPT,
								 "%s: '%s' is not in the archive",
								 bs->b->path, path);
		} else if (l->idx == idx) {
			return 0;
		} else if (l->idx > idx) {
			return gp_error_set(err, GP_ERR_INVALID, "%s: '%s' was passed over",
					    bs->b->path, path);
		} else {
			/* A file not asked for, or given up on. */
			l->skip = true;
			if (bs->consumed < lane_limit(bs, l)) {
				bs->consumed = lane_limit(bs, l);
				if (bs->reader_waits)
					pthread_cond_broadcast(&bs->cv);
			}
			if (l->ended && bs->hlane > bs->head) {
				release_head(bs);
				continue;
			}
			if (bs->stopped && !l->ended)
				return gp_error_copy(err, &bs->rerr);
			if (hash_some(bs, RING))
				continue;
		}
		caller_wait(bs, WAIT_LANES);
	}
}

static int stream_open(struct gp_inject_stream *s, const struct gp_inject_file *f,
		       struct gp_error *err)
{
	struct bundle_stream *bs = s->ctx;
	struct gp_bundle *b = bs->b;
	ssize_t idx = find_file(b, f->guest_path);
	int ret;

	bs->cur = -1;
	if (idx < 0)
		return gp_error_set(err, GP_ERR_INVALID, "%s: '%s' is not in the bundle", b->path,
				    f->guest_path);
	if ((size_t)idx < bs->asked)
		return gp_error_set(err, GP_ERR_INVALID,
				    "%s: '%s' asked for after a later file (a bundle streams forward only)",
				    b->path, f->guest_path);
	if ((ret = reader_start(bs, (size_t)idx, err)))
		return ret;
	pthread_mutex_lock(&bs->mu);
	bs->asked = (size_t)idx + 1;
	if (bs->floor < (size_t)idx)
		bs->floor = (size_t)idx;
	ret = seek_lane(bs, (size_t)idx, f->guest_path, err);
	if (!ret) {
		bs->cur = idx;
		bs->cur_lane = bs->head;
		bs->done = 0;
	}
	pthread_mutex_unlock(&bs->mu);
	return ret;
}

static int64_t stream_read(struct gp_inject_stream *s, void *buf, size_t len,
			   struct gp_error *err)
{
	struct bundle_stream *bs = s->ctx;
	struct lane *l;
	uint64_t at, n, from, limit;

	if (bs->cur < 0)
		return gp_error_set(err, GP_ERR_INVALID, "%s: read without an open file", bs->b->path);
	l = lane_at(bs, bs->cur_lane);
	pthread_mutex_lock(&bs->mu);
	while (bs->consumed == (limit = lane_limit(bs, l))) {
		if (l->ended || bs->stopped) {
			/* The file's end, or what went wrong in its bytes. */
			int ret = l->ended ? 0 : gp_error_copy(err, &bs->rerr);

			pthread_mutex_unlock(&bs->mu);
			return ret;
		}
		/* Nothing to copy yet: extend the digest rather than sleep. */
		if (!hash_some(bs, STEP))
			caller_wait(bs, WAIT_BYTES);
	}
	from = bs->consumed;
	at = from % RING;
	n = ring_span(from, limit - from);
	if (n > len)
		n = len;
	/* [at, at + n) stays put until @consumed moves. */
	pthread_mutex_unlock(&bs->mu);
	memcpy(buf, bs->ring + at, (size_t)n);
	pthread_mutex_lock(&bs->mu);
	bs->consumed += n;
	/* Bring the digest up to the bytes just copied (in this core's cache)
	 * unless the reader is at it: a digest left behind the caller pins
	 * the ring, and the reader, which then can only hash, starves the
	 * caller (it waited 0.32-0.42 s for bytes over the bench package,
	 * against 0.10-0.39 s; bench/RESULTS.md, profile item 11). */
	if (bs->hlane == bs->cur_lane && bs->hashed < from + n)
		hash_some(bs, from + n - bs->hashed);
	if (bs->reader_waits && ring_room(bs) >= WAKE)
		pthread_cond_broadcast(&bs->cv);
	pthread_mutex_unlock(&bs->mu);
	bs->done += n;
	return (int64_t)n;
}

static int stream_close(struct gp_inject_stream *s, const uint8_t sha256[32],
			struct gp_error *err)
{
	struct bundle_stream *bs = s->ctx;
	const struct gp_inject_file *f;
	struct lane *l;
	uint8_t got[32];
	int status = GP_ERR_ABORTED;
	bool nohash = false;

	if (bs->cur < 0)
		return gp_error_set(err, GP_ERR_INVALID, "%s: close without an open file", bs->b->path);
	f = &bs->b->m->set.files[bs->cur];
	l = lane_at(bs, bs->cur_lane);
	bs->cur = -1;
	pthread_mutex_lock(&bs->mu);
	if (bs->done == f->size) {
		/* The verdict: every byte in the digest, or the error in them. */
		while (!l->final && !l->nohash && !(bs->stopped && !l->ended))
			if (!hash_some(bs, RING))
				caller_wait(bs, WAIT_LANES);
		status = l->ended ? 0 : gp_error_copy(err, &bs->rerr);
		nohash = l->nohash;
		memcpy(got, l->digest, 32);
		if (l->ended)
			release_head(bs);
	} else {
		/* Given up on (or cut short): the next open() passes over it. */
		l->skip = true;
	}
	pthread_mutex_unlock(&bs->mu);
	if (status && status != GP_ERR_ABORTED)
		return status;
	if (bs->done != f->size)
		return gp_error_set(err, GP_ERR_MISMATCH,
				    "%s: file '%s': %llu bytes read, the manifest says %llu", bs->b->path,
				    f->guest_path, (unsigned long long)bs->done,
				    (unsigned long long)f->size);
	if (nohash)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: file '%s': cannot set up SHA-256",
				    bs->b->path, f->guest_path);
	if (memcmp(got, f->sha256, 32))
		return mismatch_hash(bs->b, f, got, "content", err);
	if (sha256 && memcmp(sha256, f->sha256, 32))
		return mismatch_hash(bs->b, f, sha256, "copied bytes'", err);
	return 0;
}

static int stream_check(struct gp_inject_stream *s, bool full, struct gp_error *err)
{
	return gp_bundle_check(((struct bundle_stream *)s->ctx)->b, full, err);
}

/* The reader goes on past the last file asked for, skipping, to the
 * archive's end; every entry it passes is checked as it goes. */
static int stream_finish(struct gp_inject_stream *s, struct gp_error *err)
{
	struct bundle_stream *bs = s->ctx;
	int ret;

	if (!bs->started)
		return 0;
	pthread_mutex_lock(&bs->mu);
	bs->floor = SIZE_MAX;
	bs->asked = SIZE_MAX;
	if (bs->reader_waits)
		pthread_cond_broadcast(&bs->cv);
	ret = seek_lane(bs, SIZE_MAX, NULL, err);
	pthread_mutex_unlock(&bs->mu);
	return ret;
}

/* The manifest knows every file's hash: no archive reading needed. */
static int stream_expected(struct gp_inject_stream *s, const struct gp_inject_file *f,
			   uint8_t sha256[32], struct gp_error *err)
{
	struct bundle_stream *bs = s->ctx;
	ssize_t idx = find_file(bs->b, f->guest_path);

	if (idx < 0)
		return gp_error_set(err, GP_ERR_INVALID, "%s: '%s' is not in the bundle", bs->b->path,
				    f->guest_path);
	memcpy(sha256, bs->b->m->set.files[idx].sha256, 32);
	return 0;
}

static void stream_destroy(struct gp_inject_stream *s)
{
	struct bundle_stream *bs = s->ctx;

	if (bs) {
		if (bs->started) {
			pthread_mutex_lock(&bs->mu);
			bs->quit = true;
			pthread_cond_broadcast(&bs->cv);
			pthread_mutex_unlock(&bs->mu);
			pthread_join(bs->thread, NULL);
			pthread_cond_destroy(&bs->cv);
			pthread_mutex_destroy(&bs->mu);
		}
		free(bs->ring);
		EVP_MD_CTX_free(bs->md);
		EVP_MD_free(bs->md_type);
		archive_read_free(bs->a);
		free(bs);
	}
	s->ctx = NULL;
}

static const struct gp_inject_stream_ops bundle_stream_ops = {
	.open = stream_open,
	.read = stream_read,
	.close = stream_close,
	.expected = stream_expected,
	.check = stream_check,
	.finish = stream_finish,
	.destroy = stream_destroy,
};

int gp_bundle_stream(struct gp_bundle *b, struct gp_inject_stream *out, struct gp_error *err)
{
	struct bundle_stream *bs = calloc(1, sizeof(*bs));
	int ret;

	if (!bs)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	bs->b = b;
	bs->cur = -1;
	if ((ret = reopen(b, &bs->a, err))) {
		free(bs);
		return ret;
	}
	out->ops = &bundle_stream_ops;
	out->ctx = bs;
	return 0;
}
