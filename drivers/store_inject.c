/* store_inject.c — the injection set of a package: its folder, the System32
 * / SysWOW64 files its INF copies, and its CopyINF companion packages. See
 * store.h for the rules; this file says why where they are not obvious. */
#include "store_priv.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "inf.h"
#include "le.h"
#include "ntfsvol.h"

/* setupapi AddReg flags (FLG_ADDREG_*). */
#define ADDREG_APPEND 0x00000008u
#define ADDREG_DELVAL 0x00000004u

/* Recursion bounds: section references (Needs=) and folder depth. Real INFs
 * nest a few levels; anything deeper is a loop or an attack. */
#define MAX_NEEDS_DEPTH 16
#define MAX_DIR_DEPTH 32

#define GUEST_SYSTEM32 "Windows/System32"
#define GUEST_SYSWOW64 "Windows/SysWOW64"

/* One CopyToVm* registry value being assembled by AddReg lines. */
struct vmvalue {
	char *subkey;   /* CopyToVmWhenNewer, ... */
	char *name;     /* CudaDriverFiles, ... */
	char **items;   /* REG_MULTI_SZ strings: source, dest, source, dest ... */
	size_t n;
};

/* The set's guest paths (files[] and missing[]) by name, letter case
 * ignored: open addressing, each slot the entry's tag + 1 (0: empty), a
 * tag being 2 * index in files[], or 2 * index in missing[] + 1. A linear
 * search per added file made a package folder of N files cost N^2. */
struct guest_index {
	size_t *slot;
	size_t cap;  /* a power of two, at least twice the entries */
	size_t n;
};

struct ctx {
	struct gp_store *s;
	const struct gp_package *pkg;
	struct gp_inf *inf;
	bool allow_missing;
	struct gp_inject_set *set;
	size_t cap;
	struct guest_index idx;
	char **visited;     /* install/Needs sections already followed */
	size_t n_visited;
	struct vmvalue *vm;
	size_t n_vm;
	char **copyinf;
	size_t n_copyinf;
	int rc;             /* first error */
};

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static int nomem(struct ctx *c)
{
	if (!c->rc)
		c->rc = gp_error_set(&c->s->err, GP_ERR_NOMEM, "%s: out of memory", c->pkg->folder);
	return c->rc;
}

static bool push_str(char ***arr, size_t *n, const char *s)
{
	char **a = realloc(*arr, (*n + 1) * sizeof(*a));

	if (!a)
		return false;
	*arr = a;
	a[*n] = strdup(s);
	if (!a[*n])
		return false;
	(*n)++;
	return true;
}

static void free_strs(char **a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

/* A one-line note on the set; false on allocation failure. */
static bool note(struct ctx *c, char *msg)
{
	bool ok = msg && push_str(&c->set->notes, &c->set->n_notes, msg);

	free(msg);
	return ok;
}

void gp_inject_set_free(struct gp_inject_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->count; i++) {
		free(set->files[i].guest_path);
		free(set->files[i].source_path);
		free(set->files[i].origin);
	}
	free(set->files);
	free(set->copyinf);
	free_strs(set->folders, set->n_folders);
	free_strs(set->missing, set->n_missing);
	free_strs(set->copyinf_missing, set->n_copyinf_missing);
	free_strs(set->notes, set->n_notes);
	free(set);
}

/* ---- adding files -------------------------------------------------------- */

/* FNV-1a of @s with each byte folded as strcasecmp() folds it, so that
 * names equal to strcasecmp() hash alike. */
static size_t hash_ci(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (; *s; s++)
		h = (h ^ (uint64_t)tolower((unsigned char)*s)) * 0x100000001b3u;
	return (size_t)h;
}

static const char *tag_name(const struct ctx *c, size_t tag)
{
	return tag & 1 ? c->set->missing[tag >> 1] : c->set->files[tag >> 1].guest_path;
}

/* The slot holding @guest (letter case ignored), or the empty one where it
 * goes. The table is never full (guest_index_add()). */
static size_t guest_slot(const struct ctx *c, const char *guest)
{
	size_t mask = c->idx.cap - 1, i = hash_ci(guest) & mask;

	while (c->idx.slot[i] && strcasecmp(tag_name(c, c->idx.slot[i] - 1), guest) != 0)
		i = (i + 1) & mask;
	return i;
}

/* Index the entry @tag (whose name is not indexed yet). Returns 0 or
 * nomem(). */
static int guest_index_add(struct ctx *c, size_t tag)
{
	if (2 * (c->idx.n + 1) > c->idx.cap) {
		struct guest_index old = c->idx;

		c->idx.cap = old.cap ? old.cap * 2 : 256;
		c->idx.slot = calloc(c->idx.cap, sizeof(*c->idx.slot));
		if (!c->idx.slot) {
			c->idx = old;
			return nomem(c);
		}
		for (size_t i = 0; i < old.cap; i++)
			if (old.slot[i])
				c->idx.slot[guest_slot(c, tag_name(c, old.slot[i] - 1))] = old.slot[i];
		free(old.slot);
	}
	c->idx.slot[guest_slot(c, tag_name(c, tag))] = tag + 1;
	c->idx.n++;
	return 0;
}

/* NTFS compares names case-insensitively, so two entries whose guest paths
 * differ only in case are the same file: the first one wins. Returns the
 * index in files[], count + index in missing[], or SIZE_MAX. */
static size_t find_guest(const struct ctx *c, const char *guest)
{
	size_t tag;

	if (!c->idx.n)
		return SIZE_MAX;
	tag = c->idx.slot[guest_slot(c, guest)];
	if (!tag--)
		return SIZE_MAX;
	return tag & 1 ? c->set->count + (tag >> 1) : tag >> 1;
}

/* Record @guest as a file the set lacks (copied). */
static int add_missing(struct ctx *c, const char *guest)
{
	if (!push_str(&c->set->missing, &c->set->n_missing, guest))
		return nomem(c);
	return guest_index_add(c, 2 * (c->set->n_missing - 1) + 1);
}

/* Record a second reason for a file already in the set (nv_dispi.inf names
 * nvcuda.dll both in CopyFiles and in CopyToVmWhenNewer). */
static int merge_origin(struct ctx *c, size_t i, const char *origin)
{
	struct gp_inject_file *f;
	char *n;

	if (i >= c->set->count)
		return 0;
	f = &c->set->files[i];
	if (strcmp(f->origin, origin) == 0 || strstr(f->origin, origin))
		return 0;
	n = fmt("%s; %s", f->origin, origin);
	if (!n)
		return nomem(c);
	free(f->origin);
	f->origin = n;
	return 0;
}

/* Add @source as @guest (strings are copied). */
static int add_file(struct ctx *c, const char *guest, const char *source, uint64_t size,
		    int64_t mtime, enum gp_inject_role role, const char *origin)
{
	struct gp_inject_file *f;

	if (c->set->count == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		f = realloc(c->set->files, cap * sizeof(*f));
		if (!f)
			return nomem(c);
		c->set->files = f;
		c->cap = cap;
	}
	f = &c->set->files[c->set->count];
	memset(f, 0, sizeof(*f));
	f->guest_path = strdup(guest);
	f->source_path = strdup(source);
	f->origin = strdup(origin);
	f->size = size;
	f->mtime = mtime;
	f->role = role;
	c->set->count++;
	if (!f->guest_path || !f->source_path || !f->origin)
		return nomem(c);
	if (add_u64(c->set->total_bytes, f->size, &c->set->total_bytes) < 0)
		c->set->total_bytes = UINT64_MAX;
	return guest_index_add(c, 2 * (c->set->count - 1));
}

/* Add every regular file below @dir as @guest_dir/<relative path>. */
static int add_tree(struct ctx *c, const char *dir, const char *guest_dir,
		    enum gp_inject_role role, const char *origin, unsigned depth)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (depth > MAX_DIR_DEPTH) {
		c->rc = gp_error_set(&c->s->err, GP_ERR_UNSUPPORTED,
				     "%s: folders nested deeper than %d levels", dir, MAX_DIR_DEPTH);
		return c->rc;
	}
	d = opendir(dir);
	if (!d) {
		int en = errno;
		c->rc = gp_error_set_errno(&c->s->err, GP_ERR_IO, en, "%s", dir);
		return c->rc;
	}
	while (!rc && (e = readdir(d))) {
		struct stat st;
		char *src, *guest;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		src = gp_path_join(dir, e->d_name);
		guest = gp_path_join(guest_dir, e->d_name);
		if (!src || !guest) {
			rc = nomem(c);
		} else if (lstat(src, &st) < 0) {
			int en = errno;
			rc = c->rc = gp_error_set_errno(&c->s->err, GP_ERR_IO, en, "%s", src);
		} else if (S_ISDIR(st.st_mode)) {
			rc = add_tree(c, src, guest, role, origin, depth + 1);
		} else if (!S_ISREG(st.st_mode)) {
			/* Symlinks and special files are not driver files: a
			 * copied DriverStore holds none, and following them could
			 * read anything on the host. Skipping one silently would
			 * leave the guest a package without that file (a dangling
			 * link in place of the .sys: Code 43), so refuse, as the
			 * bundle reader does. */
			rc = c->rc = gp_error_set(&c->s->err, GP_ERR_CORRUPT,
						  "%s: %s, not a regular file; a driver package holds only files",
						  src, S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file");
		} else if (find_guest(c, guest) == SIZE_MAX) {
			rc = add_file(c, guest, src, (uint64_t)st.st_size, (int64_t)st.st_mtime, role,
				      origin);
		}
		free(src);
		free(guest);
	}
	closedir(d);
	return rc;
}

/* ---- a listed store's files (gp_store_listed()) --------------------------- */

/* The listed file at guest path @guest, in any case (as NTFS finds it). */
static const struct gp_inject_file *listed_file(const struct gp_store *s, const char *guest)
{
	for (size_t i = 0; i < s->n_listed; i++)
		if (strcasecmp(s->listed[i].guest_path, guest) == 0)
			return &s->listed[i];
	return NULL;
}

/* The package folder of a listed store, as add_tree() walks a host one. */
static int add_listed_tree(struct ctx *c, const char *guest_dir, enum gp_inject_role role,
			   const char *origin)
{
	size_t len = strlen(guest_dir);
	int rc = 0;

	for (size_t i = 0; !rc && i < c->s->n_listed; i++) {
		const struct gp_inject_file *f = &c->s->listed[i];

		if (!strncmp(f->guest_path, guest_dir, len) && f->guest_path[len] == '/' &&
		    find_guest(c, f->guest_path) == SIZE_MAX)
			rc = add_file(c, f->guest_path, f->guest_path, f->size, f->mtime, role, origin);
	}
	return rc;
}

/* The listed copy of package-relative path @rel ('/' or '\' separated):
 * *out is its guest path (malloc'ed), NULL when absent. ".." and "."
 * components find nothing, as gp_find_path_ci() refuses them. */
static int find_listed(struct ctx *c, const char *rel, char **out)
{
	char *guest = fmt("%s/%s/%s", GP_GUEST_HOSTDRIVERSTORE, c->pkg->folder, rel);
	const struct gp_inject_file *f = NULL;

	*out = NULL;
	if (!guest)
		return GP_ERR_NOMEM;
	for (char *p = guest; *p; p++)
		if (*p == '\\')
			*p = '/';
	if (!strstr(guest, "/../") && !strstr(guest, "/./") && (f = listed_file(c->s, guest)))
		*out = strdup(f->guest_path);
	free(guest);
	return f && !*out ? GP_ERR_NOMEM : 0;
}

/* ---- where a companion's bytes come from -------------------------------- */

/* The package-relative directory of @file per [SourceDisksFiles(.arch)]
 * and [SourceDisksNames(.arch)] (disk path + subdir), "" when not listed. */
static char *source_subdir(struct ctx *c, const char *file)
{
	char decorated[64];
	const struct gp_inf_line *l = NULL, *disk = NULL;
	const char *dpath = "", *sub = "";

	snprintf(decorated, sizeof(decorated), "SourceDisksFiles.%s", c->pkg->arch);
	l = gp_inf_line(gp_inf_section(c->inf, decorated), file);
	if (!l)
		l = gp_inf_line(gp_inf_section(c->inf, "SourceDisksFiles"), file);
	if (l && l->n_values > 0) {
		snprintf(decorated, sizeof(decorated), "SourceDisksNames.%s", c->pkg->arch);
		disk = gp_inf_line(gp_inf_section(c->inf, decorated), l->values[0]);
		if (!disk)
			disk = gp_inf_line(gp_inf_section(c->inf, "SourceDisksNames"), l->values[0]);
		if (disk && disk->n_values > 3)
			dpath = disk->values[3];
		if (l->n_values > 1)
			sub = l->values[1];
	}
	return fmt("%s%s%s", dpath, *dpath && *sub ? "/" : "", sub);
}

static bool regular_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The package folder's copy of media file @src: at its SourceDisksFiles
 * place, else at the folder's top (where a DriverStore keeps files whose
 * media subdirectory it flattened). Returns 0 with *out NULL when absent. */
static int find_in_package(struct ctx *c, const char *src, char **out)
{
	char *sub = source_subdir(c, src), *rel, *path = NULL;

	*out = NULL;
	if (!sub)
		return GP_ERR_NOMEM;
	rel = *sub ? fmt("%s/%s", sub, src) : strdup(src);
	free(sub);
	if (!rel)
		return GP_ERR_NOMEM;
	if (c->s->listed) {
		int rc = find_listed(c, rel, out);

		if (!rc && !*out && strcmp(rel, src) != 0)
			rc = find_listed(c, src, out);
		free(rel);
		return rc;
	}
	if (gp_find_path_ci(c->pkg->dir_path, rel, &path) == 0 && regular_file(path)) {
		*out = path;
	} else if (strcmp(rel, src) != 0) {
		free(path);
		path = NULL;
		if (gp_find_path_ci(c->pkg->dir_path, src, &path) == 0 && regular_file(path))
			*out = path;
	}
	if (!*out)
		free(path);
	free(rel);
	return 0;
}

/* Find the host file for a companion: the package folder (find_in_package),
 * else the host's own copy of the installed file (@host_dir relative to
 * Windows, @dest its installed name). Returns a malloc'ed path or NULL
 * (*oom set on allocation failure). */
static char *find_source(struct ctx *c, const char *src, const char *host_dir,
			 const char *dest, bool *oom)
{
	char *path = NULL;

	*oom = find_in_package(c, src, &path) != 0;
	if (path || *oom)
		return path;
	if (c->s->listed) {
		/* A host file the package lacks was captured at its guest
		 * path (bundle.h). */
		char *guest = fmt("Windows/%s/%s", host_dir, dest);
		const struct gp_inject_file *f = guest ? listed_file(c->s, guest) : NULL;

		free(guest);
		path = f && f->role == GP_INJECT_COMPANION ? strdup(f->guest_path) : NULL;
		*oom = !guest || (f && f->role == GP_INJECT_COMPANION && !path);
		return path;
	}
	if (c->s->windows_dir) {
		char *hrel = fmt("%s/%s", host_dir, dest);
		if (!hrel) {
			*oom = true;
			return NULL;
		}
		if (gp_find_path_ci(c->s->windows_dir, hrel, &path) == 0 && regular_file(path)) {
			free(hrel);
			return path;
		}
		free(hrel);
		free(path);
	}
	return NULL;
}

/* Every file of the package's media ([SourceDisksFiles] and
 * [SourceDisksFiles.<arch>]) must be in its folder: the DriverStore keeps
 * all of them, so one that is absent means an incomplete copy (a folder
 * copied by hand, a failed download), and a guest given the package
 * without, say, its .sys shows Code 43. Absent files are an error naming
 * the file, or, when missing files are allowed, listed in set->missing
 * under the guest path they would have had. */
static int check_media_files(struct ctx *c)
{
	char decorated[64];
	const struct gp_inf_section *secs[2];

	snprintf(decorated, sizeof(decorated), "SourceDisksFiles.%s", c->pkg->arch);
	secs[0] = gp_inf_section(c->inf, decorated);
	secs[1] = gp_inf_section(c->inf, "SourceDisksFiles");
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; secs[k] && i < secs[k]->n_lines; i++) {
			const char *file = secs[k]->lines[i].key;
			char *path = NULL, *guest;
			int rc = 0;

			if (!file || !*file || strpbrk(file, "/\\:"))
				continue;   /* not a plain name: nothing we could look up */
			if (find_in_package(c, file, &path))
				return nomem(c);
			if (path) {
				free(path);
				continue;
			}
			guest = fmt("%s/%s/%s", GP_GUEST_HOSTDRIVERSTORE, c->pkg->folder, file);
			if (!guest)
				return nomem(c);
			if (find_guest(c, guest) != SIZE_MAX) {
				/* Listed in both sections, reported once. */
			} else if (c->allow_missing) {
				rc = add_missing(c, guest);
			} else {
				rc = c->rc = gp_error_set(&c->s->err, GP_ERR_NOTFOUND,
							  "%s: %s, listed in [%s] of %s, is missing from the package "
							  "folder (an incomplete copy of the DriverStore?); allow missing "
							  "files to skip it",
							  c->pkg->dir_path ? c->pkg->dir_path : c->s->repo_dir, file,
							  secs[k]->name, c->pkg->inf_name);
			}
			free(guest);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Add one System32/SysWOW64 companion. @guest_dir is "Windows/System32[/sub]". */
static int add_companion(struct ctx *c, const char *guest_dir, const char *dest, const char *src,
			 const char *origin)
{
	const char *host_dir = guest_dir + strlen("Windows/");
	struct gp_error why = { 0 };
	char *guest, *path;
	struct stat st;
	size_t at;
	bool oom;
	int rc = 0;

	if (!*dest)
		return 0;
	if (strpbrk(dest, "/\\:") || strcmp(dest, "..") == 0 || strcmp(dest, ".") == 0) {
		/* A file name with a path in it would land outside the
		 * destination directory. */
		if (!note(c, fmt("%s: %s: destination name '%s' is not a plain file name; skipped",
				 c->pkg->inf_name, origin, dest)))
			return nomem(c);
		return 0;
	}
	if (gp_ntfs_check_name(dest, &why)) {
		/* The rule the guest writer applies (CON, nul.txt, "a."):
		 * caught here, the run is refused before anything is written
		 * instead of failing half-way through the guest. */
		c->rc = gp_error_set(&c->s->err, GP_ERR_CORRUPT,
				     "%s: %s: bad destination name: %s", c->pkg->inf_name, origin,
				     gp_error_message(&why));
		return c->rc;
	}
	if (!*src)
		src = dest;
	guest = fmt("%s/%s", guest_dir, dest);
	if (!guest)
		return nomem(c);
	at = find_guest(c, guest);
	if (at != SIZE_MAX) {
		rc = merge_origin(c, at, origin);
		free(guest);
		return rc;
	}
	path = find_source(c, src, host_dir, dest, &oom);
	if (oom) {
		free(guest);
		return nomem(c);
	}
	if (!path) {
		if (c->allow_missing) {
			rc = add_missing(c, guest);
		} else {
			rc = c->rc = gp_error_set(&c->s->err, GP_ERR_NOTFOUND,
						  "%s: %s (%s -> %s) is neither in %s nor in the host's %s; "
						  "allow missing files to skip it", c->pkg->inf_name, src,
						  origin, guest, c->pkg->folder, host_dir);
		}
		free(guest);
		return rc;
	}
	if (c->s->listed) {
		const struct gp_inject_file *f = listed_file(c->s, path);

		rc = add_file(c, guest, path, f->size, f->mtime, GP_INJECT_COMPANION, origin);
	} else if (stat(path, &st) < 0) {
		int en = errno;
		rc = c->rc = gp_error_set_errno(&c->s->err, GP_ERR_IO, en, "%s", path);
	} else {
		rc = add_file(c, guest, path, (uint64_t)st.st_size, (int64_t)st.st_mtime,
			      GP_INJECT_COMPANION, origin);
	}
	free(guest);
	free(path);
	return rc;
}

/* ---- following the INF --------------------------------------------------- */

/* Guest directory for a DestinationDirs entry "dirid[,subdir]": *out is
 * NULL when the files do not go to System32 / SysWOW64 (13 = the driver
 * store itself, 12 = drivers, ...). Subdirectories are kept
 * ("11,lxss\\lib"); a component that is no Windows file name
 * (gp_ntfs_check_name(): "..", a drive or stream ':', CON) makes the
 * entry no companion directory. Returns 0 or GP_ERR_NOMEM. */
static int guest_dir_for(const char *dirid_text, const char *sub, char **out)
{
	unsigned long dirid;
	const char *base = NULL;
	char *clean, *dir, *save = NULL, *tok, *end;

	*out = NULL;
	dirid = strtoul(dirid_text, &end, 10);
	if (end == dirid_text || *end)
		return 0;
	clean = strdup(sub ? sub : "");
	if (!clean)
		return GP_ERR_NOMEM;
	for (char *p = clean; *p; p++)
		if (*p == '\\')
			*p = '/';
	if (dirid == 11) {
		base = GUEST_SYSTEM32;
	} else if (dirid == 16425) {
		base = GUEST_SYSWOW64;
	} else if (dirid == 10) {
		/* "10,System32[\sub]" or "10,SysWOW64[\sub]" */
		size_t n = strcspn(clean, "/");
		if (n == 8 && strncasecmp(clean, "System32", 8) == 0)
			base = GUEST_SYSTEM32;
		else if (n == 8 && strncasecmp(clean, "SysWOW64", 8) == 0)
			base = GUEST_SYSWOW64;
		if (base)
			memmove(clean, clean + n, strlen(clean + n) + 1);
	}
	if (!base) {
		free(clean);
		return 0;
	}
	dir = strdup(base);
	for (tok = strtok_r(clean, "/", &save); dir && tok; tok = strtok_r(NULL, "/", &save)) {
		char *n;
		struct gp_error why = { 0 };

		if (gp_ntfs_check_name(tok, &why)) {
			free(dir);
			free(clean);
			return 0;
		}
		n = fmt("%s/%s", dir, tok);
		free(dir);
		dir = n;
	}
	free(clean);
	if (!dir)
		return GP_ERR_NOMEM;
	*out = dir;
	return 0;
}

/* The guest directory for files of copy section @section (NULL = the
 * default): its DestinationDirs entry, else DefaultDestDir, else DIRID 11,
 * setupapi's default when an INF names none. *out NULL when that is no
 * companion directory. Returns 0 or GP_ERR_NOMEM. */
static int dest_dir(struct ctx *c, const char *section, char **out)
{
	const struct gp_inf_section *dd = gp_inf_section(c->inf, "DestinationDirs");
	const struct gp_inf_line *l = section ? gp_inf_line(dd, section) : NULL;

	*out = NULL;
	if (!l)
		l = gp_inf_line(dd, "DefaultDestDir");
	if (!l)
		return guest_dir_for("11", "", out);
	if (l->n_values == 0)
		return 0;
	return guest_dir_for(l->values[0], l->n_values > 1 ? l->values[1] : "", out);
}

/* The file-list section @name of a CopyFiles directive. */
static int copy_files_section(struct ctx *c, const char *name)
{
	const struct gp_inf_section *sec = gp_inf_section(c->inf, name);
	char *gdir, *origin;
	int rc = 0;

	if (!sec)
		return 0;   /* setupapi ignores a missing section, so do we */
	if (dest_dir(c, name, &gdir))
		return nomem(c);
	if (!gdir)
		return 0;
	origin = fmt("CopyFiles %s", name);
	if (!origin) {
		free(gdir);
		return nomem(c);
	}
	/* Lines: "dest[,source[,unused[,flags]]]". */
	for (size_t i = 0; !rc && i < sec->n_lines; i++) {
		const struct gp_inf_line *l = &sec->lines[i];
		if (l->key || l->n_values == 0)
			continue;
		rc = add_companion(c, gdir, l->values[0], l->n_values > 1 ? l->values[1] : "", origin);
	}
	free(origin);
	free(gdir);
	return rc;
}

static bool vm_exists(const struct ctx *c, const char *subkey, const char *name)
{
	for (size_t i = 0; i < c->n_vm; i++)
		if (gp_str_ieq(c->vm[i].subkey, subkey) && gp_str_ieq(c->vm[i].name, name))
			return c->vm[i].n > 0;
	return false;
}

static struct vmvalue *vm_value(struct ctx *c, const char *subkey, const char *name)
{
	struct vmvalue *v;

	for (size_t i = 0; i < c->n_vm; i++)
		if (gp_str_ieq(c->vm[i].subkey, subkey) && gp_str_ieq(c->vm[i].name, name))
			return &c->vm[i];
	v = realloc(c->vm, (c->n_vm + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->vm = v;
	v = &c->vm[c->n_vm];
	memset(v, 0, sizeof(*v));
	v->subkey = strdup(subkey);
	v->name = strdup(name);
	c->n_vm++;
	return v->subkey && v->name ? v : NULL;
}

static bool is_copytovm(const char *subkey)
{
	static const char *const keys[] = { "CopyToVmOverwrite", "CopyToVmWhenNewer",
					    "CopyToVmOverwriteWow64", "CopyToVmWhenNewerWow64" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (gp_str_ieq(subkey, keys[i]))
			return true;
	return false;
}

/* setupapi value types (the FLG_ADDREG_TYPE_MASK bits of an AddReg flags
 * field); CopyToVm* values must be one of the two string types. */
#define ADDREG_TYPE_MASK 0xFFFF0001u
#define ADDREG_TYPE_SZ 0x00000000u
#define ADDREG_TYPE_MULTI_SZ 0x00010000u
#define ADDREG_NOCLOBBER 0x00000002u

/* An AddReg section: only HKR,CopyToVm*,<name>,<flags>,<strings...> lines
 * matter. REG_MULTI_SZ sets the list, FLG_ADDREG_APPEND adds to it (that
 * is how nv_dispi.inf builds "source\0dest\0"), FLG_ADDREG_DELVAL drops it,
 * FLG_ADDREG_NOCLOBBER keeps a value already set; REG_SZ sets a one-string
 * value. Any other type is a value Windows does not read (container-non-dx:
 * "each value type must be REG_MULTI_SZ or REG_SZ"): dropped with a note. */
static int add_reg_section(struct ctx *c, const char *name)
{
	const struct gp_inf_section *sec = gp_inf_section(c->inf, name);

	for (size_t i = 0; sec && i < sec->n_lines; i++) {
		const struct gp_inf_line *l = &sec->lines[i];
		struct vmvalue *v;
		unsigned long flags = 0, type;
		bool existed;

		if (l->key || l->n_values < 3 || !gp_str_ieq(l->values[0], "HKR") ||
		    !is_copytovm(l->values[1]))
			continue;
		if (l->n_values > 3)
			flags = strtoul(l->values[3], NULL, 0);
		type = flags & ADDREG_TYPE_MASK;
		existed = vm_exists(c, l->values[1], l->values[2]);
		v = vm_value(c, l->values[1], l->values[2]);
		if (!v)
			return nomem(c);
		if ((flags & ADDREG_NOCLOBBER) && existed && !(flags & ADDREG_DELVAL))
			continue;
		if (!(flags & ADDREG_APPEND) || (flags & ADDREG_DELVAL) ||
		    type != ADDREG_TYPE_MULTI_SZ) {
			free_strs(v->items, v->n);
			v->items = NULL;
			v->n = 0;
		}
		if (flags & ADDREG_DELVAL)
			continue;
		if (type != ADDREG_TYPE_SZ && type != ADDREG_TYPE_MULTI_SZ) {
			if (!note(c, fmt("%s: line %u: %s %s has type 0x%lX, not REG_SZ or "
					 "REG_MULTI_SZ; Windows does not read it, skipped",
					 c->pkg->inf_name, (unsigned)l->lineno, l->values[1],
					 l->values[2], type)))
				return nomem(c);
			continue;
		}
		/* REG_SZ keeps its first string; REG_MULTI_SZ all of them, empty
		 * ones too: an empty second string means "same name". */
		for (size_t k = 4; k < l->n_values && (type == ADDREG_TYPE_MULTI_SZ || k == 4); k++)
			if (!push_str(&v->items, &v->n, l->values[k]))
				return nomem(c);
		if (v->n == 0 && !note(c, fmt("%s: line %u: %s %s has no file name; skipped",
					      c->pkg->inf_name, (unsigned)l->lineno, l->values[1],
					      l->values[2])))
			return nomem(c);
	}
	return 0;
}

static bool visited(struct ctx *c, const char *name)
{
	for (size_t i = 0; i < c->n_visited; i++)
		if (gp_str_ieq(c->visited[i], name))
			return true;
	return false;
}

static int install_section(struct ctx *c, const char *name, unsigned depth);

static int directive(struct ctx *c, const char *key, const char *v, unsigned depth)
{
	if (gp_str_ieq(key, "CopyFiles")) {
		if (v[0] == '@') {
			/* A single file to DefaultDestDir. */
			char *gdir, *origin;
			int rc;
			if (dest_dir(c, NULL, &gdir))
				return nomem(c);
			if (!gdir)
				return 0;
			origin = fmt("CopyFiles %s", v);
			rc = origin ? add_companion(c, gdir, v + 1, "", origin) : nomem(c);
			free(origin);
			free(gdir);
			return rc;
		}
		return copy_files_section(c, v);
	}
	if (gp_str_ieq(key, "AddReg"))
		return add_reg_section(c, v);
	if (gp_str_ieq(key, "CopyINF")) {
		for (size_t j = 0; j < c->n_copyinf; j++)
			if (gp_str_ieq(c->copyinf[j], v))
				return 0;
		return push_str(&c->copyinf, &c->n_copyinf, v) ? 0 : nomem(c);
	}
	if (gp_str_ieq(key, "Needs"))
		return install_section(c, v, depth + 1);
	return 0;
}

/* An install section (or one it Needs). Directives honoured: CopyFiles
 * (file-list sections and @file), AddReg (for CopyToVm*), CopyINF, and
 * Needs within this INF. Include= names other (in-box) INFs: their files
 * are the guest's own business, so they are not followed, and a Needs of a
 * section this INF lacks is skipped for the same reason. */
static int install_section(struct ctx *c, const char *name, unsigned depth)
{
	const struct gp_inf_section *sec = gp_inf_section(c->inf, name);
	int rc = 0;

	if (!sec || visited(c, name))
		return 0;   /* a section that Needs itself stops here */
	if (depth > MAX_NEEDS_DEPTH) {
		c->rc = gp_error_set(&c->s->err, GP_ERR_CORRUPT,
				     "%s: [%s]: Needs= nested deeper than %d sections",
				     c->pkg->inf_name, name, MAX_NEEDS_DEPTH);
		return c->rc;
	}
	if (!push_str(&c->visited, &c->n_visited, name))
		return nomem(c);
	for (size_t i = 0; !rc && i < sec->n_lines; i++) {
		const struct gp_inf_line *l = &sec->lines[i];
		if (!l->key)
			continue;
		for (size_t k = 0; !rc && k < l->n_values; k++)
			if (*l->values[k])
				rc = directive(c, l->key, l->values[k], depth);
	}
	return rc ? rc : c->rc;
}

/* The install section Windows would run for @base on this package's arch
 * (gp_ddinstall_section()); a model line naming none installs nothing. */
static int model_install(struct ctx *c, const char *base)
{
	const struct gp_inf_section *sec = gp_ddinstall_section(c->inf, base, c->pkg->arch);

	return sec ? install_section(c, sec->name, 0) : 0;
}

/* CopyToVm* values (container-non-dx, "Driver INF modifications"): one
 * string, or a REG_MULTI_SZ of at most two: the file's path relative to the
 * package folder (subfolders allowed), then its name in System32 (SysWOW64
 * for the *Wow64 keys). One string, or an empty second one, means the same
 * name as in the driver store, without its subfolders. */
static int vm_companions(struct ctx *c)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < c->n_vm; i++) {
		const struct vmvalue *v = &c->vm[i];
		size_t sl = strlen(v->subkey);
		bool wow = sl > 5 && strcasecmp(v->subkey + sl - 5, "Wow64") == 0;
		const char *src, *dest;
		char *origin;

		if (v->n == 0 || !*v->items[0])
			continue;
		origin = fmt("%s %s", v->subkey, v->name);
		if (!origin)
			return nomem(c);
		if (v->n > 2 && !note(c, fmt("%s: %s: %zu strings, but a CopyToVm value holds at "
					     "most two (source, name); '%s' and what follows ignored",
					     c->pkg->inf_name, origin, v->n, v->items[2]))) {
			free(origin);
			return nomem(c);
		}
		src = v->items[0];
		dest = v->n > 1 && *v->items[1] ? v->items[1] : NULL;
		if (!dest) {
			dest = src + strlen(src);
			while (dest > src && dest[-1] != '\\' && dest[-1] != '/')
				dest--;
		}
		rc = add_companion(c, wow ? GUEST_SYSWOW64 : GUEST_SYSTEM32, dest, src, origin);
		free(origin);
	}
	return rc;
}

/* The newest package of INF @name for @arch in the store, or NULL. */
static const struct gp_package *find_copyinf(const struct gp_store *s, const char *name,
					     const char *arch)
{
	const struct gp_package *best = NULL;
	const char *base = name + strlen(name);

	/* "CopyINF = .\sub\x.inf" names a file of the package's media;
	 * in the DriverStore that INF is its own package, found by name. */
	while (base > name && base[-1] != '\\' && base[-1] != '/')
		base--;
	name = base;
	for (size_t i = 0; i < s->n_pkgs; i++) {
		const struct gp_package *p = s->pkgs[i];
		int cmp;

		if (!gp_str_ieq(p->inf_name, name) || !gp_str_ieq(p->arch, arch))
			continue;
		cmp = best ? gp_package_cmp_version(p, best) : 1;
		if (cmp > 0 || (cmp == 0 && strcmp(p->folder, best->folder) > 0))
			best = p;
	}
	return best;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct gp_inject_file *)a)->guest_path,
		      ((const struct gp_inject_file *)b)->guest_path);
}

static int add_package_folder(struct ctx *c, const struct gp_package *p, enum gp_inject_role role)
{
	char *gdir = fmt("%s/%s", GP_GUEST_HOSTDRIVERSTORE, p->folder);
	char *origin = role == GP_INJECT_PACKAGE ? strdup("package") : fmt("CopyINF %s", p->inf_name);
	int rc;

	if (!gdir || !origin) {
		free(gdir);
		free(origin);
		return nomem(c);
	}
	rc = push_str(&c->set->folders, &c->set->n_folders, gdir) ? 0 : nomem(c);
	if (!rc && c->s->listed)
		rc = add_listed_tree(c, gdir, role, origin);
	else if (!rc)
		rc = add_tree(c, p->dir_path, gdir, role, origin, 0);
	free(gdir);
	free(origin);
	return rc;
}

static int add_copyinf_packages(struct ctx *c)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < c->n_copyinf; i++) {
		const struct gp_package *cp = find_copyinf(c->s, c->copyinf[i], c->pkg->arch);
		const struct gp_package **a;

		if (cp == c->pkg)
			continue;
		if (!cp) {
			/* Windows skips a CopyINF it cannot find, too. */
			if (!push_str(&c->set->copyinf_missing, &c->set->n_copyinf_missing,
				      c->copyinf[i]))
				rc = nomem(c);
			continue;
		}
		a = realloc(c->set->copyinf, (c->set->n_copyinf + 1) * sizeof(*a));
		if (!a)
			return nomem(c);
		c->set->copyinf = a;
		a[c->set->n_copyinf++] = cp;
		rc = add_package_folder(c, cp, GP_INJECT_COPYINF_PACKAGE);
	}
	return rc;
}

int gp_store_injection_set(struct gp_store *s, const struct gp_package *pkg,
			   const struct gp_model *model, const struct gp_inject_opts *opts,
			   struct gp_inject_set **out)
{
	struct ctx c = { .s = s, .pkg = pkg, .allow_missing = opts && opts->allow_missing };
	struct gp_error ierr = { 0 };
	int rc;

	*out = NULL;
	gp_error_clear(&s->err);
	c.set = calloc(1, sizeof(*c.set));
	if (!c.set)
		return gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
	c.set->pkg = pkg;
	if (s->listed && pkg != s->pkgs[0])
		rc = gp_error_set(&ierr, GP_ERR_INVALID, "no INF text for %s", pkg->inf_name);
	else if (s->listed)
		rc = gp_inf_parse(s->inf_text, s->inf_len, pkg->inf_name, &c.inf, &ierr);
	else
		rc = gp_inf_load(pkg->inf_path, &c.inf, &ierr);
	if (rc) {
		gp_error_copy(&s->err, &ierr);
		gp_error_prefix(&s->err, "%s: ", pkg->folder);
		goto out;
	}
	rc = add_package_folder(&c, pkg, GP_INJECT_PACKAGE);
	/* Companions: the model's install section, or every model's. */
	if (!rc && model) {
		rc = model_install(&c, model->install_section);
	} else if (!rc) {
		for (size_t i = 0; !rc && i < pkg->n_models; i++) {
			bool dup = false;
			for (size_t j = 0; j < i; j++)
				dup |= gp_str_ieq(pkg->models[j].install_section,
						  pkg->models[i].install_section);
			if (!dup)
				rc = model_install(&c, pkg->models[i].install_section);
		}
	}
	if (!rc)
		rc = vm_companions(&c);
	/* After the companions: a missing file that is also a companion
	 * source is reported by them, with its System32 name. */
	if (!rc)
		rc = check_media_files(&c);
	if (!rc)
		rc = add_copyinf_packages(&c);
	if (!rc && c.set->count)
		qsort(c.set->files, c.set->count, sizeof(*c.set->files), cmp_file);
out:
	gp_inf_free(c.inf);
	free_strs(c.visited, c.n_visited);
	free_strs(c.copyinf, c.n_copyinf);
	free(c.idx.slot);
	for (size_t i = 0; i < c.n_vm; i++) {
		free(c.vm[i].subkey);
		free(c.vm[i].name);
		free_strs(c.vm[i].items, c.vm[i].n);
	}
	free(c.vm);
	if (rc) {
		gp_inject_set_free(c.set);
		return rc;
	}
	*out = c.set;
	return 0;
}
