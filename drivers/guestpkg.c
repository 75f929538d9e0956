/* guestpkg.c — driver packages inside a guest volume. See guestpkg.h. */
#include "guestpkg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inf.h"
#include "store_priv.h"

/* Package folders nested deeper than this are not driver packages (the
 * store's own bound, store_inject.c). */
#define MAX_DIR_DEPTH 32

static const struct {
	const char *prefix; /* a Provider starting with this word */
	const char *vendor;
} vendors[] = {
	{ "NVIDIA", "NVIDIA" },
	{ "Advanced Micro Devices", "AMD" },
	{ "AMD", "AMD" },
	{ "ATI", "AMD" },   /* "ATI Technologies Inc.", AMD's older packages */
	{ "Intel", "Intel" },
	{ "Qualcomm", "Qualcomm" },
};

const char *gp_gpu_vendor(const char *provider)
{
	while (provider && (*provider == ' ' || *provider == '\t' || *provider == '"'))
		provider++;
	for (size_t i = 0; provider && i < sizeof(vendors) / sizeof(vendors[0]); i++) {
		size_t n = strlen(vendors[i].prefix);

		/* A whole word: "AMD" but not "AMDISK", "Intel(R)" but not
		 * "Intellisense". */
		if (strncasecmp(provider, vendors[i].prefix, n) == 0 &&
		    !isalnum((unsigned char)provider[n]))
			return vendors[i].vendor;
	}
	return NULL;
}

/* ---- directory listings -------------------------------------------------- */

struct entry {
	char *name;
	struct gp_ntfs_stat st;
};

struct listing {
	struct entry *e;
	size_t n, cap;
	int err;
};

static int collect(const char *name, const struct gp_ntfs_stat *st, void *ctx)
{
	struct listing *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct entry *e = realloc(l->e, cap * sizeof(*e));

		if (!e) {
			l->err = GP_ERR_NOMEM;
			return 1;
		}
		l->e = e;
		l->cap = cap;
	}
	l->e[l->n].name = strdup(name);
	if (!l->e[l->n].name) {
		l->err = GP_ERR_NOMEM;
		return 1;
	}
	l->e[l->n++].st = *st;
	return 0;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

/* List directory @path into @l. A missing directory is an empty listing
 * when @missing_ok. Returns 0 or the error (recorded in @err). */
static int list_dir(struct gp_ntfs *v, const char *path, bool missing_ok, struct listing *l,
		    struct gp_error *err)
{
	int ret = gp_ntfs_list(v, path, collect, l);

	if (l->err)
		return gp_error_set(err, l->err, "%s: out of memory", path);
	if (ret == GP_ERR_NOTFOUND && missing_ok) {
		gp_ntfs_clear_error(v);
		return 0;
	}
	return ret ? gp_error_copy(err, gp_ntfs_error(v)) : 0;
}

/* ---- INF facts ----------------------------------------------------------- */

struct inf_facts {
	char provider[128];
	char driver_ver[96];
	bool is_display;
};

static void inf_facts(const struct gp_inf *inf, struct inf_facts *f)
{
	const char *cls = gp_inf_get(inf, "Version", "Class");
	const char *guid = gp_inf_get(inf, "Version", "ClassGuid");
	const char *prov = gp_inf_get(inf, "Version", "Provider");
	const struct gp_inf_line *dv = gp_inf_line(gp_inf_section(inf, "Version"), "DriverVer");

	memset(f, 0, sizeof(*f));
	f->is_display = (guid && strcasecmp(guid, GP_DISPLAY_CLASS_GUID) == 0) ||
			(cls && strcasecmp(cls, "Display") == 0);
	snprintf(f->provider, sizeof(f->provider), "%s", prov ? prov : "");
	if (dv && dv->n_values > 0)
		snprintf(f->driver_ver, sizeof(f->driver_ver), "%s%s%s", dv->values[0],
			 dv->n_values > 1 ? "," : "", dv->n_values > 1 ? dv->values[1] : "");
}

/* Read and parse the INF at guest path @path. *@buf keeps its bytes
 * (caller frees). Returns 0; GP_ERR_CORRUPT / GP_ERR_NOTFOUND /
 * GP_ERR_UNSUPPORTED for an INF that is absent, too large or no INF
 * (message in @why; the caller decides whether that matters); GP_ERR_IO,
 * GP_ERR_NOMEM into @why too. */
static int read_inf(struct gp_ntfs *v, const char *path, const char *name, struct gp_inf **inf,
		    void **buf, size_t *len, struct gp_error *why)
{
	int ret;

	*inf = NULL;
	*buf = NULL;
	ret = gp_ntfs_read_file(v, path, GP_INF_MAX_FILE, buf, len);
	if (ret) {
		gp_error_copy(why, gp_ntfs_error(v));
		gp_ntfs_clear_error(v);
		return ret;
	}
	ret = gp_inf_parse(*buf, *len, name, inf, why);
	if (!ret && !gp_inf_section(*inf, "Version"))
		ret = gp_error_set(why, GP_ERR_CORRUPT, "%s has no [Version] section, not a driver INF",
				   name);
	if (ret) {
		gp_inf_free(*inf);
		*inf = NULL;
		free(*buf);
		*buf = NULL;
	}
	return ret;
}

/* ---- the guest's own vendor display packages ----------------------------- */

struct found {
	struct gp_guest_driver *d;
	void **text;        /* each package's INF bytes, to find its published copy */
	size_t *len;
	size_t n, cap;
};

static int add_found(struct found *f, const struct gp_guest_driver *d, void *text, size_t len)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct gp_guest_driver *nd = realloc(f->d, cap * sizeof(*nd));
		void **nt;
		size_t *nl;

		if (!nd)
			return GP_ERR_NOMEM;
		f->d = nd;
		nt = realloc(f->text, cap * sizeof(*nt));
		if (!nt)
			return GP_ERR_NOMEM;
		f->text = nt;
		nl = realloc(f->len, cap * sizeof(*nl));
		if (!nl)
			return GP_ERR_NOMEM;
		f->len = nl;
		f->cap = cap;
	}
	f->d[f->n] = *d;
	f->text[f->n] = text;
	f->len[f->n++] = len;
	return 0;
}

/* Read the INF at @path; when it is a GPU vendor's display INF fill @d and
 * hand its bytes back in *@text. Unreadable INFs are skipped: a guest
 * package doctor cannot read is not one it can judge. Returns 0 or
 * GP_ERR_NOMEM. */
static int vendor_display_inf(struct gp_ntfs *v, const char *path, const char *name,
			      struct gp_guest_driver *d, void **text, size_t *len)
{
	struct gp_error why = { 0 };
	struct gp_inf *inf;
	struct inf_facts f;
	int ret = read_inf(v, path, name, &inf, text, len, &why);

	memset(d, 0, sizeof(*d));
	if (ret)
		return ret == GP_ERR_NOMEM ? ret : 0;
	inf_facts(inf, &f);
	gp_inf_free(inf);
	d->vendor = f.is_display ? gp_gpu_vendor(f.provider) : NULL;
	if (!d->vendor) {
		free(*text);
		*text = NULL;
		return 0;
	}
	snprintf(d->inf, sizeof(d->inf), "%s", name);
	snprintf(d->provider, sizeof(d->provider), "%s", f.provider);
	snprintf(d->driver_ver, sizeof(d->driver_ver), "%s", f.driver_ver);
	return 0;
}

static int scan_repository(struct gp_ntfs *v, struct found *found, struct gp_error *err)
{
	struct listing dirs = { 0 };
	int ret = list_dir(v, GP_GUEST_DRIVERSTORE, true, &dirs, err);

	for (size_t i = 0; !ret && i < dirs.n; i++) {
		struct gp_guest_driver d;
		char *inf = NULL, *arch = NULL, path[1024];
		void *text = NULL;
		size_t len = 0;

		/* A reparse point is the NGX junction into the HostDriverStore
		 * (or something else Windows does not install packages as). */
		if (!dirs.e[i].st.is_dir || (dirs.e[i].st.attributes & GP_NTFS_ATTR_REPARSE))
			continue;
		if (!gp_package_folder_name(dirs.e[i].name, &inf, &arch)) {
			/* Neither part set: not named like a package. */
			bool oom = inf || arch;

			free(inf);
			free(arch);
			if (!oom)
				continue;
			ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			break;
		}
		snprintf(path, sizeof(path), GP_GUEST_DRIVERSTORE "/%s/%s", dirs.e[i].name, inf);
		ret = vendor_display_inf(v, path, inf, &d, &text, &len);
		if (!ret && text) {
			snprintf(d.folder, sizeof(d.folder), "%s", dirs.e[i].name);
			ret = add_found(found, &d, text, len);
			if (ret)
				free(text);
		}
		if (ret)
			gp_error_set(err, ret, "%s: out of memory", path);
		free(inf);
		free(arch);
	}
	listing_free(&dirs);
	return ret;
}

/* "oem<digits>.inf", any case: the names Windows publishes third-party
 * INFs under. */
static bool is_published_name(const char *n)
{
	size_t i = 3;

	if (strncasecmp(n, "oem", 3) != 0 || !isdigit((unsigned char)n[3]))
		return false;
	while (isdigit((unsigned char)n[i]))
		i++;
	return strcasecmp(n + i, ".inf") == 0;
}

/* The unpublished package the published INF @d (bytes @text) belongs to:
 * Windows publishes the package's INF as it is, so the same bytes; else
 * (an INF rewritten since) the same Provider and DriverVer. */
static long match_published(const struct found *f, const struct gp_guest_driver *d,
			    const void *text, size_t len)
{
	for (size_t i = 0; i < f->n; i++)
		if (!f->d[i].published[0] && f->d[i].folder[0] && f->len[i] == len &&
		    memcmp(f->text[i], text, len) == 0)
			return (long)i;
	for (size_t i = 0; i < f->n; i++)
		if (!f->d[i].published[0] && f->d[i].folder[0] &&
		    strcasecmp(f->d[i].provider, d->provider) == 0 &&
		    strcmp(f->d[i].driver_ver, d->driver_ver) == 0)
			return (long)i;
	return -1;
}

static int scan_published(struct gp_ntfs *v, struct found *found, struct gp_error *err)
{
	struct listing infs = { 0 };
	int ret = list_dir(v, GP_GUEST_INF_DIR, true, &infs, err);

	for (size_t i = 0; !ret && i < infs.n; i++) {
		struct gp_guest_driver d;
		char path[1024];
		void *text = NULL;
		size_t len = 0;
		long at;

		if (infs.e[i].st.is_dir || !is_published_name(infs.e[i].name))
			continue;
		snprintf(path, sizeof(path), GP_GUEST_INF_DIR "/%s", infs.e[i].name);
		ret = vendor_display_inf(v, path, infs.e[i].name, &d, &text, &len);
		if (ret) {
			gp_error_set(err, ret, "%s: out of memory", path);
			break;
		}
		if (!text)
			continue;
		at = match_published(found, &d, text, len);
		if (at >= 0) {
			snprintf(found->d[at].published, sizeof(found->d[at].published), "%s",
				 infs.e[i].name);
			free(text);
			continue;
		}
		/* Published, but its package folder is gone (or was never
		 * there): pnputil still knows it by this name. */
		snprintf(d.published, sizeof(d.published), "%s", infs.e[i].name);
		ret = add_found(found, &d, text, len);
		if (ret) {
			free(text);
			gp_error_set(err, ret, "%s: out of memory", path);
		}
	}
	listing_free(&infs);
	return ret;
}

static int cmp_driver(const void *a, const void *b)
{
	const struct gp_guest_driver *x = a, *y = b;
	int c = strcasecmp(x->folder, y->folder);

	return c ? c : strcasecmp(x->inf, y->inf);
}

int gp_guest_vendor_displays(struct gp_ntfs *v, struct gp_guest_driver **out, size_t *count,
			     struct gp_error *err)
{
	struct found f = { 0 };
	int ret;

	*out = NULL;
	*count = 0;
	ret = scan_repository(v, &f, err);
	if (!ret)
		ret = scan_published(v, &f, err);
	for (size_t i = 0; i < f.n; i++)
		free(f.text[i]);
	free(f.text);
	free(f.len);
	if (ret || !f.n) {
		free(f.d);
		return ret;
	}
	qsort(f.d, f.n, sizeof(*f.d), cmp_driver);
	*out = f.d;
	*count = f.n;
	return 0;
}

/* ---- one HostDriverStore package against its INF ------------------------- */

struct files {
	struct gp_inject_file *f;
	size_t n, cap;
};

static void files_free(struct files *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		free(fs->f[i].guest_path);
	free(fs->f);
}

/* Every file below guest directory @dir, as the files of a listed store
 * (guest path = source path, as a bundle's are). */
static int list_tree(struct gp_ntfs *v, const char *dir, unsigned depth, struct files *fs,
		     struct gp_error *err)
{
	struct listing l = { 0 };
	int ret;

	if (depth > MAX_DIR_DEPTH)
		return gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: folders nested deeper than %d levels",
				    dir, MAX_DIR_DEPTH);
	ret = list_dir(v, dir, false, &l, err);
	for (size_t i = 0; !ret && i < l.n; i++) {
		char *path;

		if (asprintf(&path, "%s/%s", dir, l.e[i].name) < 0) {
			ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", dir);
			break;
		}
		if (l.e[i].st.is_dir) {
			ret = list_tree(v, path, depth + 1, fs, err);
			free(path);
			continue;
		}
		if (fs->n == fs->cap) {
			size_t cap = fs->cap ? fs->cap * 2 : 64;
			struct gp_inject_file *nf = realloc(fs->f, cap * sizeof(*nf));

			if (!nf) {
				free(path);
				ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", dir);
				break;
			}
			fs->f = nf;
			fs->cap = cap;
		}
		fs->f[fs->n++] = (struct gp_inject_file){
			.guest_path = path, .source_path = path, .size = l.e[i].st.size,
			.mtime = l.e[i].st.mtime, .role = GP_INJECT_PACKAGE, .origin = "package",
		};
	}
	listing_free(&l);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep the absent files of @set that the guest lacks: those of the folder,
 * and companions the folder cannot supply that are not in the guest's
 * System32 / SysWOW64 already. */
static int keep_missing(struct gp_ntfs *v, const char *dir, const struct gp_inject_set *set,
			struct gp_guest_pkg_check *out, struct gp_error *err)
{
	size_t dl = strlen(dir);

	out->missing = calloc(set->n_missing ? set->n_missing : 1, sizeof(*out->missing));
	if (!out->missing)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", dir);
	for (size_t i = 0; i < set->n_missing; i++) {
		const char *m = set->missing[i];
		struct gp_ntfs_stat st;

		if (strncmp(m, dir, dl) != 0 || m[dl] != '/') {
			if (gp_ntfs_stat(v, m, &st) == 0)
				continue;
			gp_ntfs_clear_error(v);
		}
		out->missing[out->n_missing] = strdup(m);
		if (!out->missing[out->n_missing])
			return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", dir);
		out->n_missing++;
	}
	qsort(out->missing, out->n_missing, sizeof(*out->missing), cmp_str);
	return 0;
}

/* The folder's INF (@inf_name, any case) among @fs, or NULL. */
static const struct gp_inject_file *find_inf(const struct files *fs, const char *dir,
					     const char *inf_name)
{
	size_t dl = strlen(dir);

	for (size_t i = 0; i < fs->n; i++)
		if (!strncmp(fs->f[i].guest_path, dir, dl) && fs->f[i].guest_path[dl] == '/' &&
		    strcasecmp(fs->f[i].guest_path + dl + 1, inf_name) == 0)
			return &fs->f[i];
	return NULL;
}

/* Follow the package's INF over the listed files @fs of folder @dir. */
static int follow_inf(struct gp_ntfs *v, const char *folder, const char *dir, const char *arch,
		      const struct files *fs, const struct gp_inject_file *inf,
		      struct gp_guest_pkg_check *out, struct gp_error *err)
{
	const struct gp_inject_opts opts = { .allow_missing = true };
	struct gp_package stub = { .folder = (char *)folder, .inf_name = out->inf, .arch = (char *)arch };
	struct gp_store *store = NULL;
	struct gp_inject_set *set = NULL;
	struct gp_error why = { 0 };
	const struct gp_package *pkg;
	void *text = NULL;
	size_t len = 0;
	int ret;

	ret = gp_ntfs_read_file(v, inf->guest_path, GP_INF_MAX_FILE, &text, &len);
	if (ret) {
		gp_error_copy(&why, gp_ntfs_error(v));
		gp_ntfs_clear_error(v);
		if (ret == GP_ERR_IO || ret == GP_ERR_NOMEM)
			return gp_error_copy(err, &why);
		snprintf(out->problem, sizeof(out->problem), "%s", gp_error_message(&why));
		return 0;
	}
	ret = gp_store_listed("HostDriverStore", &stub, text, len, NULL, 0, fs->f, fs->n, &store,
			      &why);
	free(text);
	if (ret == GP_ERR_CORRUPT) {
		snprintf(out->problem, sizeof(out->problem), "%s", gp_error_message(&why));
		return 0;
	}
	if (ret)
		return gp_error_copy(err, &why);
	pkg = gp_store_package(store, 0);
	snprintf(out->provider, sizeof(out->provider), "%s", pkg->provider);
	out->vendor = gp_gpu_vendor(pkg->provider);
	out->is_display = pkg->is_display;
	ret = gp_store_injection_set(store, pkg, NULL, &opts, &set);
	if (ret == GP_ERR_CORRUPT || ret == GP_ERR_NOTFOUND) {
		/* An INF the injection rules refuse (a destination Windows
		 * cannot create, Needs nested too deep): its verdict. */
		snprintf(out->problem, sizeof(out->problem), "%s",
			 gp_error_message(gp_store_error(store)));
		ret = 0;
	} else if (ret) {
		gp_error_copy(err, gp_store_error(store));
	} else {
		ret = keep_missing(v, dir, set, out, err);
	}
	gp_inject_set_free(set);
	gp_store_close(store);
	return ret;
}

int gp_guest_check_host_package(struct gp_ntfs *v, const char *folder,
				struct gp_guest_pkg_check *out, struct gp_error *err)
{
	struct files fs = { 0 };
	const struct gp_inject_file *inf;
	char *inf_name = NULL, *arch = NULL, *dir = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (asprintf(&dir, "%s/%s", GP_GUEST_HOSTDRIVERSTORE, folder) < 0)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (!gp_package_folder_name(folder, &inf_name, &arch)) {
		ret = inf_name || arch ? GP_ERR_NOMEM : 0;
		if (!ret)
			snprintf(out->problem, sizeof(out->problem),
				 "%s is not named like a driver package (<name>.inf_<arch>_<hash>)",
				 folder);
		else
			gp_error_set(err, ret, "out of memory");
		goto out;
	}
	ret = list_tree(v, dir, 0, &fs, err);
	if (ret)
		goto out;
	inf = find_inf(&fs, dir, inf_name);
	if (!inf) {
		snprintf(out->problem, sizeof(out->problem), "the folder holds no %s", inf_name);
		goto out;
	}
	snprintf(out->inf, sizeof(out->inf), "%s", inf->guest_path + strlen(dir) + 1);
	ret = follow_inf(v, folder, dir, arch, &fs, inf, out, err);
out:
	files_free(&fs);
	free(inf_name);
	free(arch);
	free(dir);
	return ret;
}

void gp_guest_pkg_check_free(struct gp_guest_pkg_check *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_missing; i++)
		free(c->missing[i]);
	free(c->missing);
	c->missing = NULL;
	c->n_missing = 0;
}
