/* bundle_manifest.c — the bundle manifest (gpup-bundle.json): the guest path
 * rules, and the parse/serialize pair between the JSON text and the native
 * form (struct gp_bundle_manifest, store.h shapes). See bundle.h for the
 * schema; bundle_priv.h for the functions. */
#include "bundle_priv.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "inf.h"
#include "le.h"

#define ROLE_PACKAGE "package"
#define ROLE_COMPANION "companion"
#define ROLE_COPYINF "copyinf-package"
/* Bound for free-text fields (provider, origin, ...). */
#define MAX_TEXT 4096u
/* JSON nesting the schema needs is 4; anything deeper is hostile. */
#define MAX_DEPTH 16

const char *gp_bundle_role_name(enum gp_inject_role role)
{
	switch (role) {
	case GP_INJECT_PACKAGE: return ROLE_PACKAGE;
	case GP_INJECT_COMPANION: return ROLE_COMPANION;
	case GP_INJECT_COPYINF_PACKAGE: return ROLE_COPYINF;
	}
	return "unknown";
}

/* ---- Guest path rules -------------------------------------------------- */

/* DOS device names: Windows opens the device for "NUL" or "nul.txt" in any
 * directory, so such a file can never be written or read back as a file. */
static bool reserved_name(const char *c, size_t len)
{
	static const char *const names[] = { "CON", "PRN", "AUX", "NUL" };
	size_t base = 0;

	while (base < len && c[base] != '.')
		base++;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (base == 3 && !strncasecmp(c, names[i], 3))
			return true;
	if (base == 4 && (!strncasecmp(c, "COM", 3) || !strncasecmp(c, "LPT", 3)) &&
	    c[3] >= '1' && c[3] <= '9')
		return true;
	return false;
}

/* One path component: non-empty, not "." or "..", only printable ASCII
 * Windows accepts in names, not ending in '.' or ' ' (Win32 strips those,
 * so "a." and "a" would be the same file), not a device name. */
static const char *check_component(const char *c, size_t len)
{
	if (len == 0)
		return "empty path component";
	if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return "'.' or '..' component";
	if (len > 255)
		return "component longer than 255 characters";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)c[i];

		if (ch == '\\')
			return "backslash in path";
		if (ch == '/')
			return "'/' in a file name";
		if (ch == ':')
			return "':' in path (drive letter or NTFS stream)";
		if (ch >= 0x80)
			return "non-ASCII character in path";
		if (ch < 0x20 || ch == 0x7f)
			return "control character in path";
		if (strchr("*?\"<>|", ch))
			return "character Windows forbids in file names";
	}
	if (c[len - 1] == '.' || c[len - 1] == ' ')
		return "component ends in '.' or ' '";
	if (reserved_name(c, len))
		return "reserved DOS device name";
	return NULL;
}

int gp_bundle_path_check(const char *path, enum gp_bundle_path_kind *kind,
			 const char **folder, size_t *folder_len, const char **why)
{
	/* Component boundaries of the first few components, enough to classify. */
	const char *comp[6];
	size_t clen[6], n = 0, total = strlen(path);
	const char *p = path;

	if (total == 0)
		return *why = "empty path", -1;
	if (total > GP_BUNDLE_MAX_PATH)
		return *why = "path too long", -1;
	if (path[0] == '/' || path[0] == '\\')
		return *why = "absolute path", -1;
	if (isalpha((unsigned char)path[0]) && path[1] == ':')
		return *why = "drive letter in path", -1;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		const char *bad = check_component(p, len);

		if (bad)
			return *why = bad, -1;
		if (n < 6) {
			comp[n] = p;
			clen[n] = len;
		}
		n++;
		if (!slash)
			break;
		p = slash + 1;
	}
#define IS(i, s) (clen[i] == strlen(s) && !memcmp(comp[i], s, clen[i]))
	if (n >= 6 && IS(0, "Windows") && IS(1, "System32") && IS(2, "HostDriverStore") &&
	    IS(3, "FileRepository")) {
		*kind = GP_BUNDLE_PATH_PACKAGE;
		if (folder) {
			*folder = comp[4];
			*folder_len = clen[4];
		}
		return 0;
	}
	if (n == 3 && IS(0, "Windows") && (IS(1, "System32") || IS(1, "SysWOW64"))) {
		/* A file named HostDriverStore would collide with the folder
		 * every package goes into. */
		if (clen[2] == 15 && !strncasecmp(comp[2], "HostDriverStore", 15))
			return *why = "companion named like the HostDriverStore directory", -1;
		*kind = GP_BUNDLE_PATH_COMPANION;
		return 0;
	}
#undef IS
	return *why = "outside HostDriverStore/FileRepository/<folder>/, "
		      "Windows/System32/ and Windows/SysWOW64/", -1;
}

static int lower_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* NTFS compares names case-insensitively: two paths equal but for case, or
 * a file that is also another path's parent directory, cannot both exist
 * in the guest. Paths are ASCII (check_component), so ASCII folding is exact
 * here. Returns 0, or -1 with *bad_a / *bad_b (indices into @paths). */
static int case_conflicts(char *const *paths, size_t n, size_t *bad_a, size_t *bad_b,
			  bool *nomem)
{
	char **low = calloc(n ? n : 1, sizeof(*low));
	int ret = 0;

	*nomem = false;
	if (!low)
		return *nomem = true, -1;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(paths[i]);

		/* Index stored after the NUL, to map a sorted copy back. */
		low[i] = malloc(len + 1 + sizeof(size_t));
		if (!low[i]) {
			*nomem = true;
			ret = -1;
			goto out;
		}
		for (size_t k = 0; k <= len; k++)
			low[i][k] = (char)tolower((unsigned char)paths[i][k]);
		memcpy(low[i] + len + 1, &i, sizeof(size_t));
	}
	qsort(low, n, sizeof(*low), lower_cmp);
	for (size_t i = 0; i + 1 < n && ret == 0; i++) {
		if (!strcmp(low[i], low[i + 1])) {
			memcpy(bad_a, low[i] + strlen(low[i]) + 1, sizeof(size_t));
			memcpy(bad_b, low[i + 1] + strlen(low[i + 1]) + 1, sizeof(size_t));
			ret = -1;
		}
	}
	/* A file that is a directory of another: look every parent up (in a
	 * copy: truncating the entry itself would find the entry). */
	for (size_t i = 0; i < n && ret == 0; i++) {
		size_t len = strlen(low[i]), self;
		char *key = malloc(len + 1);

		if (!key) {
			*nomem = true;
			ret = -1;
			break;
		}
		memcpy(&self, low[i] + len + 1, sizeof(size_t));
		memcpy(key, low[i], len + 1);
		for (char *slash = strchr(key, '/'); slash && ret == 0; slash = strchr(slash + 1, '/')) {
			char **hit;

			*slash = '\0';
			hit = bsearch(&key, low, n, sizeof(*low), lower_cmp);
			if (hit) {
				memcpy(bad_a, *hit + strlen(*hit) + 1, sizeof(size_t));
				*bad_b = self;
				ret = -1;
			}
			*slash = '/';
		}
		free(key);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(low[i]);
	free(low);
	return ret;
}

/* ---- Parsing ----------------------------------------------------------- */

struct parse_ctx {
	const char *name;      /* archive name, for messages */
	struct gp_error *err;
};

static int bad(struct parse_ctx *c, const char *field, const char *rule)
{
	return gp_error_set(c->err, GP_ERR_CORRUPT, "%s: %s: %s: %s", c->name,
			    GP_BUNDLE_MANIFEST_NAME, field, rule);
}

static int nomem(struct parse_ctx *c)
{
	return gp_error_set(c->err, GP_ERR_NOMEM, "%s: out of memory reading the manifest", c->name);
}

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A string field: present, a string, no NUL inside, no control characters,
 * at most @max bytes. *out is a malloc'ed copy. */
static int get_text(struct parse_ctx *c, struct json_object *o, const char *key,
		    size_t max, char **out)
{
	struct json_object *v = member(o, key);
	const char *s;
	size_t len;

	if (!v || !json_object_is_type(v, json_type_string))
		return bad(c, key, v ? "not a string" : "missing");
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len)
		return bad(c, key, "NUL character in string");
	if (len > max)
		return bad(c, key, "string too long");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return bad(c, key, "control character in string");
	*out = strdup(s);
	return *out ? 0 : nomem(c);
}

/* An integer field within [min, max]. */
static int get_int(struct parse_ctx *c, struct json_object *o, const char *key,
		   int64_t min, int64_t max, int64_t *out)
{
	struct json_object *v = member(o, key);

	if (!v || !json_object_is_type(v, json_type_int))
		return bad(c, key, v ? "not an integer" : "missing");
	/* json-c saturates out-of-range numbers at INT64_MIN/MAX: both are
	 * outside every range used here. */
	*out = json_object_get_int64(v);
	if (*out < min || *out > max)
		return bad(c, key, "out of range");
	return 0;
}

static int get_array(struct parse_ctx *c, struct json_object *o, const char *key,
		     size_t max, struct json_object **arr, size_t *n)
{
	struct json_object *v = member(o, key);

	if (!v || !json_object_is_type(v, json_type_array))
		return bad(c, key, v ? "not an array" : "missing");
	*n = json_object_array_length(v);
	if (*n > max)
		return bad(c, key, "too many elements");
	*arr = v;
	return 0;
}

/* An array of strings, each checked like get_text(). */
static int get_text_array(struct parse_ctx *c, struct json_object *o, const char *key,
			  size_t max_n, size_t max_len, char ***out, size_t *n)
{
	struct json_object *arr;
	int ret = get_array(c, o, key, max_n, &arr, n);

	if (ret)
		return ret;
	*out = calloc(*n ? *n : 1, sizeof(char *));
	if (!*out)
		return nomem(c);
	for (size_t i = 0; i < *n; i++) {
		struct json_object *wrap = json_object_new_object();

		if (!wrap)
			return nomem(c);
		/* Reuse get_text()'s checks through a one-member object. */
		json_object_object_add(wrap, key, json_object_get(json_object_array_get_idx(arr, i)));
		ret = get_text(c, wrap, key, max_len, &(*out)[i]);
		json_object_put(wrap);
		if (ret)
			return ret;
	}
	return 0;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void free_package(struct gp_package *p)
{
	free(p->folder);
	free(p->inf_name);
	free(p->arch);
	free(p->class_name);
	free(p->class_guid);
	free(p->provider);
	free(p->driver_ver_date);
	free(p->driver_ver_version);
	free(p->catalog_file);
	free_strv(p->copyinf, p->n_copyinf);
}

/* "MM/DD/YYYY" → YYYYMMDD, 0 when not of that shape (as store.h defines
 * date_key). */
static uint64_t date_key(const char *s)
{
	unsigned m, d, y;
	char tail;

	if (sscanf(s, "%u/%u/%u%c", &m, &d, &y, &tail) != 3 || m < 1 || m > 12 || d < 1 ||
	    d > 31 || y > 9999)
		return 0;
	return (uint64_t)y * 10000 + m * 100 + d;
}

static void parse_version(const char *s, uint16_t v[4])
{
	for (int i = 0; i < 4; i++) {
		char *end;
		unsigned long x = strtoul(s, &end, 10);

		v[i] = end == s || x > 65535 ? 0 : (uint16_t)x;
		if (*end != '.')
			break;
		s = end + 1;
	}
}

static int parse_package(struct parse_ctx *c, struct json_object *o, struct gp_package *p)
{
	const char *why;
	int ret;

	if (!json_object_is_type(o, json_type_object))
		return bad(c, "package", "not an object");
	if ((ret = get_text(c, o, "folder", 255, &p->folder)) ||
	    (ret = get_text(c, o, "inf", 255, &p->inf_name)) ||
	    (ret = get_text(c, o, "arch", 64, &p->arch)) ||
	    (ret = get_text(c, o, "class", MAX_TEXT, &p->class_name)) ||
	    (ret = get_text(c, o, "class_guid", 64, &p->class_guid)) ||
	    (ret = get_text(c, o, "provider", MAX_TEXT, &p->provider)) ||
	    (ret = get_text(c, o, "driver_ver_date", 64, &p->driver_ver_date)) ||
	    (ret = get_text(c, o, "driver_ver_version", 64, &p->driver_ver_version)) ||
	    (ret = get_text(c, o, "catalog_file", 255, &p->catalog_file)) ||
	    (ret = get_text_array(c, o, "copyinf", 4096, 255, &p->copyinf, &p->n_copyinf)))
		return ret;
	why = check_component(p->folder, strlen(p->folder));
	if (why)
		return bad(c, "package folder", why);
	why = check_component(p->inf_name, strlen(p->inf_name));
	if (why)
		return bad(c, "package inf", why);
	p->date_key = date_key(p->driver_ver_date);
	parse_version(p->driver_ver_version, p->version);
	p->is_display = !strcasecmp(p->class_guid, GP_DISPLAY_CLASS_GUID);
	return 0;
}

static int hex_nibble(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* The package (index into m->pkgs) whose guest folder is @folder. */
static ssize_t package_of(const struct gp_bundle_manifest *m, const char *folder, size_t len)
{
	for (size_t i = 0; i < m->n_pkgs; i++)
		if (strlen(m->pkgs[i].folder) == len && !memcmp(m->pkgs[i].folder, folder, len))
			return (ssize_t)i;
	return -1;
}

static int parse_file(struct parse_ctx *c, struct gp_bundle_manifest *m,
		      struct json_object *o, size_t i)
{
	struct gp_inject_file *f = &m->set.files[i];
	enum gp_bundle_path_kind kind;
	const char *why, *folder = NULL;
	size_t folder_len = 0;
	char *role = NULL, *sha = NULL;
	char field[64];
	int64_t v;
	ssize_t pkg;
	int ret;

	snprintf(field, sizeof(field), "files[%zu]", i);
	if (!json_object_is_type(o, json_type_object))
		return bad(c, field, "not an object");
	if ((ret = get_text(c, o, "path", GP_BUNDLE_MAX_PATH, &f->guest_path)))
		goto out;
	if (gp_bundle_path_check(f->guest_path, &kind, &folder, &folder_len, &why)) {
		ret = gp_error_set(c->err, GP_ERR_CORRUPT, "%s: %s: file '%s': %s", c->name,
				   GP_BUNDLE_MANIFEST_NAME, f->guest_path, why);
		goto out;
	}
	if ((ret = get_int(c, o, "size", 0, (int64_t)GP_BUNDLE_MAX_FILE_SIZE, &v)))
		goto out;
	f->size = (uint64_t)v;
	/* 2^40 s is 35000 years either way: room for any real clock. */
	if ((ret = get_int(c, o, "mtime", -(INT64_C(1) << 40), INT64_C(1) << 40, &f->mtime)) ||
	    (ret = get_text(c, o, "origin", MAX_TEXT, &f->origin)) ||
	    (ret = get_text(c, o, "sha256", 64, &sha)) ||
	    (ret = get_text(c, o, "role", 32, &role)))
		goto out;
	if (strlen(sha) != 64) {
		ret = bad(c, field, "sha256 is not 64 hex digits");
		goto out;
	}
	for (int k = 0; k < 32; k++) {
		int hi = hex_nibble(sha[2 * k]), lo = hex_nibble(sha[2 * k + 1]);

		if (hi < 0 || lo < 0) {
			ret = bad(c, field, "sha256 is not 64 lower-case hex digits");
			goto out;
		}
		f->sha256[k] = (uint8_t)(hi << 4 | lo);
	}
	f->has_sha256 = true;
	if (!strcmp(role, ROLE_PACKAGE))
		f->role = GP_INJECT_PACKAGE;
	else if (!strcmp(role, ROLE_COMPANION))
		f->role = GP_INJECT_COMPANION;
	else if (!strcmp(role, ROLE_COPYINF))
		f->role = GP_INJECT_COPYINF_PACKAGE;
	else {
		ret = bad(c, field, "unknown role");
		goto out;
	}
	/* The role must say where the path is: a package file inside the
	 * package's folder, a CopyINF file inside a CopyINF package's. */
	pkg = kind == GP_BUNDLE_PATH_PACKAGE ? package_of(m, folder, folder_len) : -1;
	if ((f->role == GP_INJECT_COMPANION) != (kind == GP_BUNDLE_PATH_COMPANION) ||
	    (f->role == GP_INJECT_PACKAGE && pkg != 0) ||
	    (f->role == GP_INJECT_COPYINF_PACKAGE && pkg < 1))
		ret = gp_error_set(c->err, GP_ERR_CORRUPT,
				   "%s: %s: file '%s': role '%s' does not match its path "
				   "(not in a folder of that kind listed by the manifest)",
				   c->name, GP_BUNDLE_MANIFEST_NAME, f->guest_path, role);
out:
	free(role);
	free(sha);
	return ret;
}

/* Fill m->set from the manifest's files, folders and missing lists; checks
 * the limits, the order and the path conflicts. */
static int parse_files(struct parse_ctx *c, struct gp_bundle_manifest *m,
		       struct json_object *root, uint64_t archive_size)
{
	struct json_object *arr;
	int64_t count, total;
	uint64_t sum = 0, bound;
	size_t n, a = 0, b = 0;
	bool oom;
	int ret;

	if ((ret = get_int(c, root, "file_count", 0, GP_BUNDLE_MAX_FILES, &count)) ||
	    (ret = get_int(c, root, "total_bytes", 0, INT64_MAX, &total)) ||
	    (ret = get_array(c, root, "files", GP_BUNDLE_MAX_FILES, &arr, &n)))
		return ret;
	if ((uint64_t)count != n)
		return bad(c, "file_count", "differs from the number of files listed");
	/* A total the archive cannot plausibly hold is refused before anyone
	 * plans disk space or reads for it. */
	if (mul_u64(archive_size, GP_BUNDLE_MAX_RATIO, &bound))
		bound = UINT64_MAX;
	if ((uint64_t)total > bound)
		return bad(c, "total_bytes", "implausibly large for the archive's size");
	/* One spare, zeroed entry: a file that fails half-way through
	 * parse_file() sits at index set.count and owns strings too. */
	m->set.files = calloc(n + 1, sizeof(*m->set.files));
	if (!m->set.files)
		return nomem(c);
	for (size_t i = 0; i < n; i++) {
		if ((ret = parse_file(c, m, json_object_array_get_idx(arr, i), i)))
			return ret;
		m->set.count = i + 1;
		if (add_u64(sum, m->set.files[i].size, &sum))
			return bad(c, "files", "sizes overflow");
		if (i > 0 && strcmp(m->set.files[i - 1].guest_path, m->set.files[i].guest_path) >= 0)
			return gp_error_set(c->err, GP_ERR_CORRUPT,
					    "%s: %s: file '%s': %s", c->name,
					    GP_BUNDLE_MANIFEST_NAME, m->set.files[i].guest_path,
					    strcmp(m->set.files[i - 1].guest_path,
						   m->set.files[i].guest_path)
						    ? "files not sorted by path"
						    : "duplicate path");
	}
	if (sum != (uint64_t)total)
		return bad(c, "total_bytes", "differs from the sum of the file sizes");
	m->set.total_bytes = sum;
	{
		char **paths = malloc((n ? n : 1) * sizeof(char *));

		if (!paths)
			return nomem(c);
		for (size_t i = 0; i < n; i++)
			paths[i] = m->set.files[i].guest_path;
		ret = case_conflicts(paths, n, &a, &b, &oom);
		free(paths);
	}
	if (ret)
		return oom ? nomem(c)
			   : gp_error_set(c->err, GP_ERR_CORRUPT,
					  "%s: %s: file '%s' collides with '%s' "
					  "(NTFS names are case-insensitive)",
					  c->name, GP_BUNDLE_MANIFEST_NAME,
					  m->set.files[b].guest_path, m->set.files[a].guest_path);
	return 0;
}

/* "folders" must be exactly the packages' guest folders, in package order. */
static int parse_folders(struct parse_ctx *c, struct gp_bundle_manifest *m,
			 struct json_object *root)
{
	int ret = get_text_array(c, root, "folders", m->n_pkgs, GP_BUNDLE_MAX_PATH,
				 &m->set.folders, &m->set.n_folders);

	if (ret)
		return ret;
	if (m->set.n_folders != m->n_pkgs)
		return bad(c, "folders", "does not list the package and CopyINF package folders");
	for (size_t i = 0; i < m->n_pkgs; i++) {
		const char *f = m->set.folders[i];
		size_t plen = strlen(GP_GUEST_HOSTDRIVERSTORE);

		if (strncmp(f, GP_GUEST_HOSTDRIVERSTORE, plen) || f[plen] != '/' ||
		    strcmp(f + plen + 1, m->pkgs[i].folder))
			return bad(c, "folders", "does not list the package and CopyINF package folders");
	}
	return 0;
}

/* Format 2: package.inf_text, the INF in base64. It must be the bytes of
 * the package's INF among the files (same SHA-256), which the readers
 * check as they read the archive: what gpup resolves from is what it
 * writes. */
static int parse_inf_text(struct parse_ctx *c, struct gp_bundle_manifest *m,
			  struct json_object *pkg)
{
	const struct gp_package *p = &m->pkgs[0];
	const struct gp_inject_file *f = NULL;
	char *b64 = NULL, *guest;
	uint8_t sha[32];
	unsigned int sha_len = 32;
	size_t n;
	int len, ret;

	if ((ret = get_text(c, pkg, "inf_text", GP_INF_MAX_FILE / 3 * 4 + 4, &b64)))
		return ret;
	n = strlen(b64);
	if (n % 4) {
		free(b64);
		return bad(c, "package.inf_text", "not base64");
	}
	m->inf_text = malloc(n / 4 * 3 + 1);
	if (!m->inf_text) {
		free(b64);
		return nomem(c);
	}
	len = n ? EVP_DecodeBlock(m->inf_text, (const unsigned char *)b64, (int)n) : 0;
	/* EVP_DecodeBlock() counts the padding as bytes. */
	while (len > 0 && n && b64[--n] == '=')
		len--;
	free(b64);
	if (len < 0)
		return bad(c, "package.inf_text", "not base64");
	m->inf_len = (size_t)len;
	guest = malloc(strlen(GP_GUEST_HOSTDRIVERSTORE) + strlen(p->folder) + strlen(p->inf_name) + 3);
	if (!guest)
		return nomem(c);
	sprintf(guest, "%s/%s/%s", GP_GUEST_HOSTDRIVERSTORE, p->folder, p->inf_name);
	for (size_t i = 0; i < m->set.count && !f; i++)
		if (!strcmp(m->set.files[i].guest_path, guest))
			f = &m->set.files[i];
	free(guest);
	if (!f)
		return bad(c, "package.inf_text", "the package's INF is not among the files");
	if (EVP_Digest(m->inf_text, m->inf_len, sha, &sha_len, EVP_sha256(), NULL) != 1)
		return nomem(c);
	if (f->size != m->inf_len || memcmp(sha, f->sha256, 32))
		return bad(c, "package.inf_text", "differs from the package's INF among the files");
	return 0;
}

static int parse_root(struct parse_ctx *c, struct gp_bundle_manifest *m,
		      struct json_object *root, uint64_t archive_size)
{
	struct json_object *arr, *v;
	char *format = NULL;
	int64_t version;
	size_t n;
	int ret;

	if (!json_object_is_type(root, json_type_object))
		return bad(c, "top level", "not an object");
	if ((ret = get_text(c, root, "format", 64, &format)))
		return ret;
	ret = strcmp(format, "gpup-bundle") ? bad(c, "format", "is not \"gpup-bundle\"") : 0;
	free(format);
	if (ret || (ret = get_int(c, root, "format_version", 0, INT32_MAX, &version)))
		return ret;
	if (version < 1 || version > GP_BUNDLE_FORMAT_VERSION)
		return gp_error_set(c->err, GP_ERR_UNSUPPORTED,
				    "%s: %s: format version %lld is not supported (this gpup reads "
				    "1 to %d)", c->name, GP_BUNDLE_MANIFEST_NAME, (long long)version,
				    GP_BUNDLE_FORMAT_VERSION);
	m->format_version = (unsigned)version;
	if ((ret = get_text(c, root, "tool_version", 64, &m->tool_version)) ||
	    (ret = get_text_array(c, root, "hardware_ids", GP_BUNDLE_MAX_HWIDS, 512, &m->hwids,
				  &m->n_hwids)) ||
	    (ret = get_array(c, root, "copyinf_packages", 4096, &arr, &n)))
		return ret;
	m->pkgs = calloc(n + 1, sizeof(*m->pkgs));
	m->copyinf_ptrs = calloc(n + 1, sizeof(*m->copyinf_ptrs));
	if (!m->pkgs || !m->copyinf_ptrs)
		return nomem(c);
	v = member(root, "package");
	if (!v)
		return bad(c, "package", "missing");
	m->n_pkgs = 1;
	if ((ret = parse_package(c, v, &m->pkgs[0])))
		return ret;
	for (size_t i = 0; i < n; i++) {
		m->n_pkgs = i + 2;
		if ((ret = parse_package(c, json_object_array_get_idx(arr, i), &m->pkgs[i + 1])))
			return ret;
		for (size_t k = 0; k <= i; k++)
			if (!strcasecmp(m->pkgs[k].folder, m->pkgs[i + 1].folder))
				return bad(c, "copyinf_packages", "folder listed twice");
		m->copyinf_ptrs[i] = &m->pkgs[i + 1];
	}
	{
		char *arch = NULL;

		if ((ret = get_text(c, root, "arch", 64, &arch)))
			return ret;
		ret = strcmp(arch, m->pkgs[0].arch) ? bad(c, "arch", "differs from the package's") : 0;
		free(arch);
		if (ret)
			return ret;
	}
	if ((ret = parse_folders(c, m, root)) ||
	    (ret = get_text_array(c, root, "missing", GP_BUNDLE_MAX_FILES, GP_BUNDLE_MAX_PATH,
				  &m->set.missing, &m->set.n_missing)) ||
	    (ret = get_text_array(c, root, "copyinf_missing", 4096, 255,
				  &m->set.copyinf_missing, &m->set.n_copyinf_missing)))
		return ret;
	if ((ret = parse_files(c, m, root, archive_size)))
		return ret;
	if (m->format_version >= 2 &&
	    ((ret = get_text(c, root, "gpu", 512, &m->gpu)) ||
	     (ret = parse_inf_text(c, m, member(root, "package")))))
		return ret;
	/* The synthesised package: one model carrying the hardware IDs, under
	 * one undecorated target of the package's architecture. */
	m->target.decoration = (char *)"";
	m->target.models_section = (char *)"";
	m->target.arch = m->pkgs[0].arch;
	m->model.description = (char *)"";
	m->model.install_section = (char *)"";
	m->model.ids = m->hwids;
	m->model.n_ids = m->n_hwids;
	m->model.feature_score = 0xFF;   /* no FeatureScore: the default */
	m->pkgs[0].targets = &m->target;
	m->pkgs[0].n_targets = 1;
	m->pkgs[0].models = &m->model;
	m->pkgs[0].n_models = m->n_hwids ? 1 : 0;
	m->set.pkg = &m->pkgs[0];
	m->set.copyinf = m->copyinf_ptrs;
	m->set.n_copyinf = m->n_pkgs - 1;
	return 0;
}

int gp_bundle_manifest_parse(const char *json, size_t len, uint64_t archive_size,
			     const char *name, struct gp_bundle_manifest **out,
			     struct gp_error *err)
{
	struct parse_ctx c = { .name = name, .err = err };
	struct gp_bundle_manifest *m;
	struct json_tokener *tok;
	struct json_object *root;
	size_t used;
	int ret;

	*out = NULL;
	if (len > GP_BUNDLE_MAX_MANIFEST_SIZE || len > INT32_MAX)
		return bad(&c, "size", "manifest too large");
	if (memchr(json, '\0', len))
		return bad(&c, "text", "NUL byte in the manifest");
	tok = json_tokener_new_ex(MAX_DEPTH);
	if (!tok)
		return nomem(&c);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, json, (int)len);
	used = json_tokener_get_parse_end(tok);
	if (!root || json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error e = json_tokener_get_error(tok);

		json_tokener_free(tok);
		json_object_put(root);
		return gp_error_set(err, GP_ERR_CORRUPT, "%s: %s: not valid JSON: %s at byte %zu",
				    name, GP_BUNDLE_MANIFEST_NAME,
				    e == json_tokener_continue ? "unexpected end"
							       : json_tokener_error_desc(e),
				    used);
	}
	json_tokener_free(tok);
	for (; used < len; used++)
		if (!isspace((unsigned char)json[used])) {
			json_object_put(root);
			return bad(&c, "text", "data after the JSON object");
		}
	m = calloc(1, sizeof(*m));
	if (!m) {
		json_object_put(root);
		return nomem(&c);
	}
	ret = parse_root(&c, m, root, archive_size);
	json_object_put(root);
	if (ret) {
		gp_bundle_manifest_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

void gp_bundle_manifest_free(struct gp_bundle_manifest *m)
{
	if (!m)
		return;
	free(m->tool_version);
	free(m->gpu);
	free(m->inf_text);
	free_strv(m->hwids, m->n_hwids);
	for (size_t i = 0; m->pkgs && i < m->n_pkgs; i++)
		free_package(&m->pkgs[i]);
	free(m->pkgs);
	free(m->copyinf_ptrs);
	/* <= count: the spare entry (see parse_files()). */
	for (size_t i = 0; m->set.files && i <= m->set.count; i++) {
		free(m->set.files[i].guest_path);
		free(m->set.files[i].origin);
	}
	free(m->set.files);
	free_strv(m->set.folders, m->set.n_folders);
	free_strv(m->set.missing, m->set.n_missing);
	free_strv(m->set.copyinf_missing, m->set.n_copyinf_missing);
	free(m);
}

/* ---- Serializing ------------------------------------------------------- */

/* json-c objects keep insertion order, so the text is a pure function of
 * the calls below. Every add is checked through one helper. */
struct builder {
	bool failed;
};

static struct json_object *str(struct builder *bl, const char *s)
{
	struct json_object *o = json_object_new_string(s ? s : "");

	if (!o)
		bl->failed = true;
	return o;
}

static void put(struct builder *bl, struct json_object *obj, const char *key,
		struct json_object *v)
{
	if (!obj || !v || json_object_object_add(obj, key, v)) {
		json_object_put(v);
		bl->failed = true;
	}
}

static void push(struct builder *bl, struct json_object *arr, struct json_object *v)
{
	if (!arr || !v || json_object_array_add(arr, v)) {
		json_object_put(v);
		bl->failed = true;
	}
}

static struct json_object *strv(struct builder *bl, char *const *v, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		push(bl, a, str(bl, v[i]));
	if (!a)
		bl->failed = true;
	return a;
}

static struct json_object *package_json(struct builder *bl, const struct gp_package *p,
					const void *inf, size_t inf_len)
{
	struct json_object *o = json_object_new_object();

	put(bl, o, "folder", str(bl, p->folder));
	put(bl, o, "inf", str(bl, p->inf_name));
	put(bl, o, "provider", str(bl, p->provider));
	put(bl, o, "class", str(bl, p->class_name));
	put(bl, o, "class_guid", str(bl, p->class_guid));
	put(bl, o, "driver_ver_date", str(bl, p->driver_ver_date));
	put(bl, o, "driver_ver_version", str(bl, p->driver_ver_version));
	put(bl, o, "catalog_file", str(bl, p->catalog_file));
	put(bl, o, "arch", str(bl, p->arch));
	put(bl, o, "copyinf", strv(bl, p->copyinf, p->n_copyinf));
	if (inf) {
		char *b64 = inf_len <= GP_INF_MAX_FILE ? malloc((inf_len + 2) / 3 * 4 + 1) : NULL;

		if (b64)
			EVP_EncodeBlock((unsigned char *)b64, inf, (int)inf_len);
		put(bl, o, "inf_text", b64 ? str(bl, b64) : NULL);
		free(b64);
	}
	if (!o)
		bl->failed = true;
	return o;
}

int gp_bundle_manifest_serialize(const struct gp_inject_set *set, const uint8_t (*sha)[32],
				 const char *const *hwids, size_t n_hwids, const char *gpu,
				 const void *inf, size_t inf_len, const char *tool_version,
				 char **out, size_t *len, struct gp_error *err)
{
	struct builder bl = { false };
	struct json_object *root = json_object_new_object(), *files, *copyinf;
	const char *text;
	size_t text_len;
	int ret = 0;

	*out = NULL;
	if (!inf) {
		json_object_put(root);
		return gp_error_set(err, GP_ERR_INVALID, "%s: no INF text to bundle", set->pkg->folder);
	}
	put(&bl, root, "format", str(&bl, "gpup-bundle"));
	put(&bl, root, "format_version", json_object_new_int(GP_BUNDLE_FORMAT_VERSION));
	put(&bl, root, "tool_version", str(&bl, tool_version));
	put(&bl, root, "arch", str(&bl, set->pkg->arch));
	put(&bl, root, "package", package_json(&bl, set->pkg, inf, inf_len));
	copyinf = json_object_new_array();
	for (size_t i = 0; i < set->n_copyinf; i++)
		push(&bl, copyinf, package_json(&bl, set->copyinf[i], NULL, 0));
	put(&bl, root, "copyinf_packages", copyinf);
	put(&bl, root, "hardware_ids", strv(&bl, (char *const *)hwids, n_hwids));
	put(&bl, root, "gpu", str(&bl, gpu ? gpu : "auto"));
	put(&bl, root, "folders", strv(&bl, set->folders, set->n_folders));
	put(&bl, root, "missing", strv(&bl, set->missing, set->n_missing));
	put(&bl, root, "copyinf_missing", strv(&bl, set->copyinf_missing, set->n_copyinf_missing));
	put(&bl, root, "file_count", json_object_new_int64((int64_t)set->count));
	put(&bl, root, "total_bytes", json_object_new_int64((int64_t)set->total_bytes));
	files = json_object_new_array();
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		struct json_object *o = json_object_new_object();
		char hex[65];

		for (int k = 0; k < 32; k++)
			snprintf(hex + 2 * k, 3, "%02x", sha[i][k]);
		put(&bl, o, "path", str(&bl, f->guest_path));
		put(&bl, o, "size", json_object_new_int64((int64_t)f->size));
		put(&bl, o, "sha256", str(&bl, hex));
		put(&bl, o, "mtime", json_object_new_int64(f->mtime));
		put(&bl, o, "role", str(&bl, gp_bundle_role_name(f->role)));
		put(&bl, o, "origin", str(&bl, f->origin));
		push(&bl, files, o);
	}
	put(&bl, root, "files", files);
	if (bl.failed || !root) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory building the bundle manifest");
		goto out;
	}
	text = json_object_to_json_string_length(
		root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE,
		&text_len);
	*out = text ? malloc(text_len + 2) : NULL;
	if (!*out) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory building the bundle manifest");
		goto out;
	}
	memcpy(*out, text, text_len);
	(*out)[text_len] = '\n';
	(*out)[text_len + 1] = '\0';
	*len = text_len + 1;
	/* Whatever is written must open again: run the reader's checks now,
	 * so that a set the reader would refuse fails the creation instead
	 * of producing a bundle nobody can use. */
	{
		struct gp_bundle_manifest *m;
		struct gp_error perr = { 0 };

		ret = gp_bundle_manifest_parse(*out, *len, UINT64_MAX / GP_BUNDLE_MAX_RATIO,
					       "bundle", &m, &perr);
		if (ret) {
			ret = gp_error_set(err, ret == GP_ERR_NOMEM ? GP_ERR_NOMEM : GP_ERR_INVALID,
					   "the injection set cannot be bundled: %s",
					   gp_error_message(&perr));
			free(*out);
			*out = NULL;
		}
		gp_bundle_manifest_free(m);
	}
out:
	json_object_put(root);
	return ret;
}
