/*
 * manifest.c — the guest record of prepare's changes: its JSON form,
 * reading and writing it in the guest, and prepare's part (the plan and
 * the hooks that write backups and records). See manifest.h.
 * unprepare and verify's check are in manifest_undo.c.
 */
#include "manifest.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "manifest_priv.h"

/* ---- the record's text ------------------------------------------------- */

static void hex_of(const uint8_t d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static bool unhex(const char *s, uint8_t d[32])
{
	if (!s || strlen(s) != 64)
		return false;
	for (int i = 0; i < 32; i++) {
		unsigned b;

		if (sscanf(s + 2 * i, "%2x", &b) != 1)
			return false;
		d[i] = (uint8_t)b;
	}
	return true;
}

void gp_manifest_free(struct gp_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_files; i++) {
		free(m->files[i].path);
		free(m->files[i].backup);
	}
	free(m->files);
	for (size_t i = 0; i < m->n_dirs; i++)
		free(m->dirs[i]);
	free(m->dirs);
	for (size_t i = 0; i < m->n_lost; i++)
		free(m->lost[i]);
	free(m->lost);
	for (size_t i = 0; i < m->n_fixups; i++)
		free(m->fixups[i]);
	free(m->fixups);
	for (size_t i = 0; i < m->n_regs; i++) {
		for (size_t k = 0; k < m->regs[i].n_values; k++) {
			free(m->regs[i].values[k].name);
			free(m->regs[i].values[k].data);
		}
		free(m->regs[i].values);
		free(m->regs[i].hive);
		free(m->regs[i].key);
	}
	free(m->regs);
	memset(m, 0, sizeof(*m));
}

int gp_manifest_add_string(char ***arr, size_t *n, const char *s)
{
	char **a = realloc(*arr, (*n + 1) * sizeof(*a));

	if (!a)
		return GP_ERR_NOMEM;
	*arr = a;
	a[*n] = strdup(s);
	if (!a[*n])
		return GP_ERR_NOMEM;
	(*n)++;
	return 0;
}

struct gp_manifest_file *gp_manifest_add_file(struct gp_manifest *m, const char *path)
{
	struct gp_manifest_file *a = realloc(m->files, (m->n_files + 1) * sizeof(*a));

	if (!a)
		return NULL;
	m->files = a;
	memset(&a[m->n_files], 0, sizeof(*a));
	a[m->n_files].path = strdup(path);
	if (!a[m->n_files].path)
		return NULL;
	return &a[m->n_files++];
}

static int file_cmp(const void *a, const void *b)
{
	const struct gp_manifest_file *x = a, *y = b;

	return strcasecmp(x->path, y->path);
}

ssize_t gp_manifest_find(const struct gp_manifest *m, const char *path)
{
	for (size_t i = 0; i < m->n_files; i++)
		if (!strcasecmp(m->files[i].path, path))
			return (ssize_t)i;
	return -1;
}

bool gp_manifest_path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncasecmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int parse_strings(struct json_object *root, const char *key, char ***arr, size_t *n,
			 struct gp_error *err)
{
	struct json_object *a;

	if (!json_object_object_get_ex(root, key, &a))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return gp_error_set(err, GP_ERR_CORRUPT, "%s: \"%s\" is not an array",
				    GP_MANIFEST_PATH, key);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *e = json_object_array_get_idx(a, i);

		if (!json_object_is_type(e, json_type_string))
			return gp_error_set(err, GP_ERR_CORRUPT, "%s: \"%s\"[%zu] is not a string",
					    GP_MANIFEST_PATH, key, i);
		if (gp_manifest_add_string(arr, n, json_object_get_string(e)))
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	return 0;
}

static int parse_file(struct json_object *e, size_t i, struct gp_manifest *m, struct gp_error *err)
{
	const char *path = jstr(e, "path"), *action = jstr(e, "action"), *sha;
	struct gp_manifest_file *f;
	struct json_object *orig, *v;

	if (!path || !*path || !action ||
	    (strcmp(action, "added") && strcmp(action, "replaced")))
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: files[%zu]: needs \"path\" and \"action\" added|replaced",
				    GP_MANIFEST_PATH, i);
	f = gp_manifest_add_file(m, path);
	if (!f)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	f->action = strcmp(action, "added") ? GP_MANIFEST_REPLACED : GP_MANIFEST_ADDED;
	sha = jstr(e, "sha256");
	if (sha && !unhex(sha, f->sha256))
		return gp_error_set(err, GP_ERR_CORRUPT, "%s: files[%zu] (%s): bad \"sha256\"",
				    GP_MANIFEST_PATH, i, path);
	f->has_sha256 = sha != NULL;
	if (f->action == GP_MANIFEST_ADDED)
		return 0;
	if (!json_object_object_get_ex(e, "original", &orig) ||
	    !unhex(jstr(orig, "sha256"), f->orig_sha256) || !jstr(orig, "backup") ||
	    !gp_manifest_path_under(jstr(orig, "backup"), GP_MANIFEST_BACKUP_DIR))
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: files[%zu] (%s): a replaced file needs \"original\" with "
				    "\"sha256\" and a \"backup\" under %s",
				    GP_MANIFEST_PATH, i, path, GP_MANIFEST_BACKUP_DIR);
	f->backup = strdup(jstr(orig, "backup"));
	if (!f->backup)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (json_object_object_get_ex(orig, "size", &v))
		f->orig_size = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(orig, "mtime", &v))
		f->orig_mtime = json_object_get_int64(v);
	return 0;
}

/* Append a registry record for @hive / @key (no values yet), or NULL. */
struct gp_manifest_reg *gp_manifest_add_reg(struct gp_manifest *m, const char *hive,
					    const char *key, bool key_created)
{
	struct gp_manifest_reg *a = realloc(m->regs, (m->n_regs + 1) * sizeof(*a));

	if (!a)
		return NULL;
	m->regs = a;
	a += m->n_regs;
	memset(a, 0, sizeof(*a));
	a->hive = strdup(hive);
	a->key = strdup(key);
	a->key_created = key_created;
	m->n_regs++;
	return a->hive && a->key ? a : NULL;
}

/* Append a copy of @src's state as value @name of @r. */
int gp_manifest_add_reg_value(struct gp_manifest_reg *r, const struct gp_manifest_reg_value *src)
{
	struct gp_manifest_reg_value *a = realloc(r->values, (r->n_values + 1) * sizeof(*a));

	if (!a)
		return GP_ERR_NOMEM;
	r->values = a;
	a += r->n_values;
	*a = *src;
	a->name = strdup(src->name);
	a->data = src->len ? malloc(src->len) : NULL;
	r->n_values++;
	if (!a->name || (src->len && !a->data))
		return GP_ERR_NOMEM;
	if (src->len)
		memcpy(a->data, src->data, src->len);
	return 0;
}

static int parse_regs(struct json_object *root, struct gp_manifest *m, struct gp_error *err)
{
	struct json_object *regs, *vals, *v;

	if (!json_object_object_get_ex(root, "registry", &regs))
		return 0;
	for (size_t i = 0; i < json_object_array_length(regs); i++) {
		struct json_object *e = json_object_array_get_idx(regs, i);
		const char *hive = jstr(e, "hive"), *key = jstr(e, "key");
		struct gp_manifest_reg *r;

		if (!hive || !key || !json_object_object_get_ex(e, "values", &vals) ||
		    !json_object_is_type(vals, json_type_array))
			return gp_error_set(err, GP_ERR_CORRUPT, "%s: registry[%zu]: needs \"hive\", "
					    "\"key\" and \"values\"", GP_MANIFEST_PATH, i);
		r = gp_manifest_add_reg(m, hive, key, json_object_object_get_ex(e, "key_created", &v) &&
						      json_object_get_boolean(v));
		if (!r)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		for (size_t k = 0; k < json_object_array_length(vals); k++) {
			struct json_object *ve = json_object_array_get_idx(vals, k), *prev = NULL;
			struct gp_manifest_reg_value rv = { .name = (char *)jstr(ve, "name") };
			const char *hex = NULL;
			uint8_t *data = NULL;

			json_object_object_get_ex(ve, "previous", &prev);
			if (prev) {
				hex = jstr(prev, "data");
				rv.existed = true;
				rv.type = json_object_object_get_ex(prev, "type", &v)
						  ? (uint32_t)json_object_get_int64(v) : 0;
			}
			if (!rv.name || (prev && (!hex || strlen(hex) % 2)))
				return gp_error_set(err, GP_ERR_CORRUPT, "%s: registry[%zu] value %zu: "
						    "needs \"name\" and a \"previous\" with hex \"data\"",
						    GP_MANIFEST_PATH, i, k);
			rv.len = hex ? strlen(hex) / 2 : 0;
			data = rv.len ? malloc(rv.len) : NULL;
			for (size_t b = 0; data && b < rv.len; b++) {
				unsigned x;

				if (sscanf(hex + 2 * b, "%2x", &x) != 1) {
					free(data);
					return gp_error_set(err, GP_ERR_CORRUPT, "%s: registry[%zu] "
							    "value %zu: bad hex", GP_MANIFEST_PATH, i, k);
				}
				data[b] = (uint8_t)x;
			}
			if (rv.len && !data)
				return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			rv.data = data;
			if (gp_manifest_add_reg_value(r, &rv)) {
				free(data);
				return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			}
			free(data);
		}
	}
	return 0;
}

int gp_manifest_parse(const char *text, size_t len, struct gp_manifest *m, struct gp_error *err)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = NULL, *v, *files;
	int ret = 0;

	memset(m, 0, sizeof(*m));
	if (!tok)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (len <= (size_t)INT32_MAX)
		root = json_tokener_parse_ex(tok, text, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(root, json_type_object)) {
		ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: not a JSON object", GP_MANIFEST_PATH);
		goto out;
	}
	if (!json_object_object_get_ex(root, "gpup_manifest", &v) ||
	    json_object_get_int(v) != GP_MANIFEST_VERSION) {
		ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: \"gpup_manifest\" is not %d",
				   GP_MANIFEST_PATH, GP_MANIFEST_VERSION);
		goto out;
	}
	if (json_object_object_get_ex(root, "files", &files)) {
		if (!json_object_is_type(files, json_type_array)) {
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: \"files\" is not an array",
					   GP_MANIFEST_PATH);
			goto out;
		}
		for (size_t i = 0; !ret && i < json_object_array_length(files); i++)
			ret = parse_file(json_object_array_get_idx(files, i), i, m, err);
	}
	if (!ret)
		ret = parse_strings(root, "created_dirs", &m->dirs, &m->n_dirs, err);
	if (!ret)
		ret = parse_strings(root, "lost", &m->lost, &m->n_lost, err);
	if (!ret)
		ret = parse_strings(root, "fixups", &m->fixups, &m->n_fixups, err);
	if (!ret)
		ret = parse_regs(root, m, err);
	if (!ret && m->n_files)
		qsort(m->files, m->n_files, sizeof(*m->files), file_cmp);
out:
	json_object_put(root);
	json_tokener_free(tok);
	if (ret)
		gp_manifest_free(m);
	return ret;
}

static struct json_object *strings_json(char *const *a, size_t n)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(a[i]));
	return arr;
}

int gp_manifest_render(const struct gp_manifest *m, char **text, size_t *len,
		       struct gp_error *err)
{
	struct json_object *root = json_object_new_object(), *files = json_object_new_array();
	const char *s;
	char hex[65];

	json_object_object_add(root, "gpup_manifest", json_object_new_int(GP_MANIFEST_VERSION));
	for (size_t i = 0; i < m->n_files; i++) {
		const struct gp_manifest_file *f = &m->files[i];
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "path", json_object_new_string(f->path));
		json_object_object_add(e, "action", json_object_new_string(
					       f->action == GP_MANIFEST_ADDED ? "added" : "replaced"));
		hex_of(f->sha256, hex);
		json_object_object_add(e, "sha256", f->has_sha256 ? json_object_new_string(hex) : NULL);
		if (f->action == GP_MANIFEST_REPLACED) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "size", json_object_new_int64((int64_t)f->orig_size));
			json_object_object_add(o, "mtime", json_object_new_int64(f->orig_mtime));
			hex_of(f->orig_sha256, hex);
			json_object_object_add(o, "sha256", json_object_new_string(hex));
			json_object_object_add(o, "backup", json_object_new_string(f->backup));
			json_object_object_add(e, "original", o);
		}
		json_object_array_add(files, e);
	}
	json_object_object_add(root, "files", files);
	json_object_object_add(root, "created_dirs", strings_json(m->dirs, m->n_dirs));
	json_object_object_add(root, "lost", strings_json(m->lost, m->n_lost));
	json_object_object_add(root, "fixups", strings_json(m->fixups, m->n_fixups));
	{
		struct json_object *regs = json_object_new_array();

		for (size_t i = 0; i < m->n_regs; i++) {
			const struct gp_manifest_reg *r = &m->regs[i];
			struct json_object *e = json_object_new_object(), *vals = json_object_new_array();

			json_object_object_add(e, "hive", json_object_new_string(r->hive));
			json_object_object_add(e, "key", json_object_new_string(r->key));
			json_object_object_add(e, "key_created", json_object_new_boolean(r->key_created));
			for (size_t k = 0; k < r->n_values; k++) {
				const struct gp_manifest_reg_value *rv = &r->values[k];
				struct json_object *ve = json_object_new_object(), *prev = NULL;

				json_object_object_add(ve, "name", json_object_new_string(rv->name));
				if (rv->existed) {
					char *hex = malloc(2 * rv->len + 1);

					if (!hex)
						break;
					hex[0] = '\0';
					for (size_t b = 0; b < rv->len; b++)
						snprintf(hex + 2 * b, 3, "%02x", rv->data[b]);
					prev = json_object_new_object();
					json_object_object_add(prev, "type", json_object_new_int64(rv->type));
					json_object_object_add(prev, "data", json_object_new_string(hex));
					free(hex);
				}
				json_object_object_add(ve, "previous", prev);
				json_object_array_add(vals, ve);
			}
			json_object_object_add(e, "values", vals);
			json_object_array_add(regs, e);
		}
		json_object_object_add(root, "registry", regs);
	}
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
						 JSON_C_TO_STRING_NOSLASHESCAPE);
	*text = s ? malloc(strlen(s) + 2) : NULL;
	if (*text) {
		*len = strlen(s) + 1;
		memcpy(*text, s, *len - 1);
		(*text)[*len - 1] = '\n';
		(*text)[*len] = '\0';
	}
	json_object_put(root);
	return *text ? 0 : gp_error_set(err, GP_ERR_NOMEM, "out of memory");
}

/* ---- the record in the guest -------------------------------------------- */

int gp_manifest_read(struct gp_ntfs *v, struct gp_manifest *m, bool *found,
		     struct gp_error *err)
{
	char *text;
	size_t len;
	int ret = gp_manifest_read_text(v, &text, &len, err);

	memset(m, 0, sizeof(*m));
	*found = false;
	if (ret == GP_ERR_NOTFOUND) {
		gp_error_clear(err);
		return 0;
	}
	if (ret)
		return ret;
	ret = gp_manifest_parse(text, len, m, err);
	free(text);
	*found = ret == 0;
	return ret;
}

/* A record is never large; anything bigger is not ours. */
#define MANIFEST_MAX (64u << 20)

/* The text of @path when it is a complete record (it parses), else NULL. */
static char *complete_record(struct gp_ntfs *v, const char *path, size_t *len)
{
	struct gp_error perr = { 0 };
	struct gp_manifest m;
	void *buf = NULL;

	if (gp_ntfs_read_file(v, path, MANIFEST_MAX, &buf, len)) {
		gp_ntfs_clear_error(v);
		return NULL;
	}
	if (gp_manifest_parse(buf, *len, &m, &perr)) {
		free(buf);
		return NULL;
	}
	gp_manifest_free(&m);
	return buf;
}

int gp_manifest_read_text(struct gp_ntfs *v, char **text, size_t *len, struct gp_error *err)
{
	void *buf = NULL;
	int ret;

	/* manifest.json.new is written first, manifest.json second, both in
	 * place (write_record()): a complete .new is the newest record, and
	 * when it is not complete, manifest.json was not touched yet. */
	*text = complete_record(v, GP_MANIFEST_NEW, len);
	if (*text)
		return 0;
	ret = gp_ntfs_read_file(v, GP_MANIFEST_PATH, MANIFEST_MAX, &buf, len);
	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	*text = buf;
	return 0;
}

struct mem_src {
	const uint8_t *p;
	size_t left;
};

static int mem_read(void *buf, size_t len, size_t *got, void *ctx)
{
	struct mem_src *m = ctx;

	*got = len < m->left ? len : m->left;
	memcpy(buf, m->p, *got);
	m->p += *got;
	m->left -= *got;
	return 0;
}

int gp_manifest_put_bytes(struct gp_ntfs *v, const char *path, const void *buf, size_t len,
			  int64_t mtime, uint8_t sha256_out[32], struct gp_error *err)
{
	struct mem_src src = { .p = buf, .left = len };

	if (gp_ntfs_put_stream(v, path, len, mtime, mem_read, &src, sha256_out))
		return gp_error_copy(err, gp_ntfs_error(v));
	return 0;
}

/*
 * Write @len bytes of @buf as guest file @path so that a kill or a failed
 * write at any moment leaves one complete copy: first @next (the side
 * copy) in full, then @path, both replaced in place. A reader takes @next
 * when it is complete, else @path. gpup does not rename: libntfs-3g links
 * a name in two writes (MFT record, directory index) that a kill can
 * separate, and such a file then fails every later write. With
 * @keep_next the side copy stays (the record keeps both); without it,
 * it is removed once @path is complete (a hive: Windows reads only @path).
 */
int gp_manifest_write_twice(struct gp_ntfs *v, const char *next, const char *path,
			    const void *buf, size_t len, bool keep_next, struct gp_error *err)
{
	int64_t now = (int64_t)time(NULL);
	int ret = gp_manifest_put_bytes(v, next, buf, len, now, NULL, err);

	if (!ret)
		ret = gp_manifest_put_bytes(v, path, buf, len, now, NULL, err);
	if (!ret && !keep_next && gp_ntfs_remove(v, next, false))
		ret = gp_error_copy(err, gp_ntfs_error(v));
	return ret;
}

static int write_record(struct gp_ntfs *v, const char *text, size_t len, struct gp_error *err)
{
	return gp_manifest_write_twice(v, GP_MANIFEST_NEW, GP_MANIFEST_PATH, text, len, true, err);
}

/* ---- prepare ----------------------------------------------------------- */

void gp_manifest_plan_free(struct gp_manifest_plan *mp)
{
	if (!mp)
		return;
	gp_manifest_free(&mp->m);
	free(mp->old_text);
	free(mp->backups);
	memset(mp, 0, sizeof(*mp));
}

/* A stale build @dir the injector removes: its entries go; it is "lost"
 * unless gpup made it (it, or a directory above it, is in created_dirs). */
static int drop_removed(struct gp_manifest *m, const char *dir)
{
	bool ours = false;
	size_t k = 0;

	for (size_t i = 0; i < m->n_files; i++) {
		if (gp_manifest_path_under(m->files[i].path, dir)) {
			free(m->files[i].path);
			free(m->files[i].backup);
			continue;
		}
		m->files[k++] = m->files[i];
	}
	m->n_files = k;
	k = 0;
	for (size_t i = 0; i < m->n_dirs; i++) {
		if (gp_manifest_path_under(dir, m->dirs[i]) && strcasecmp(dir, m->dirs[i]))
			ours = true;  /* inside a directory gpup made: stays */
		if (!strcasecmp(dir, m->dirs[i]) || gp_manifest_path_under(m->dirs[i], dir)) {
			ours = true;
			free(m->dirs[i]);
			continue;
		}
		m->dirs[k++] = m->dirs[i];
	}
	m->n_dirs = k;
	for (size_t i = 0; !ours && i < m->n_lost; i++)
		if (!strcasecmp(m->lost[i], dir))
			ours = true;  /* already recorded as lost */
	return ours ? 0 : gp_manifest_add_string(&m->lost, &m->n_lost, dir);
}

/* The next free backup number: one past the highest recorded. */
static unsigned next_backup(const struct gp_manifest *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->n_files; i++) {
		const char *b = m->files[i].backup;
		unsigned k;

		if (b && sscanf(b + strlen(GP_MANIFEST_BACKUP_DIR) + 1, "%u-", &k) == 1 && k >= n)
			n = k + 1;
	}
	return n;
}

/* A file the run replaces, not recorded before: size, mtime and SHA-256
 * of the original, and the name of its backup. */
static int record_replaced(struct gp_ntfs *v, struct gp_manifest_file *f, unsigned number,
			   struct gp_error *err)
{
	const char *base = strrchr(f->path, '/');
	struct gp_ntfs_stat st;
	int ret;

	if (gp_ntfs_stat(v, f->path, &st))
		return gp_error_copy(err, gp_ntfs_error(v));
	if (st.size > GP_MANIFEST_BACKUP_MAX)
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: %llu bytes, too large for gpup to back up before replacing it "
				    "(at most %llu)", f->path, (unsigned long long)st.size,
				    GP_MANIFEST_BACKUP_MAX);
	f->action = GP_MANIFEST_REPLACED;
	f->orig_size = st.size;
	f->orig_mtime = st.mtime;
	ret = gp_inject_guest_sha256(v, f->path, f->orig_sha256, err);
	if (ret)
		return ret;
	if (asprintf(&f->backup, "%s/%u-%s", GP_MANIFEST_BACKUP_DIR, number,
		     base ? base + 1 : f->path) < 0) {
		f->backup = NULL;
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* Set each recorded file of the set to the hash the report knows: after
 * the plan the unchanged files', after the commit also the written ones'. */
static void apply_hashes(struct gp_manifest_plan *mp)
{
	for (size_t i = 0; i < mp->set->count; i++) {
		ssize_t k = gp_manifest_find(&mp->m, mp->set->files[i].guest_path);

		if (k < 0)
			continue;
		mp->m.files[k].has_sha256 = mp->rep->has_sha256[i];
		memcpy(mp->m.files[k].sha256, mp->rep->sha256[i], 32);
	}
}

/* Room for the backups, the records and the directories, with the files'. */
static int plan_space(struct gp_ntfs *v, struct gp_manifest_plan *mp,
		      struct gp_inject_report *rep, struct gp_error *err)
{
	struct gp_ntfs_space sp = rep->space;
	struct gp_manifest full;
	struct gp_ntfs_stat st;
	char *text;
	size_t len;
	int ret;

	if (!mp->dir_exists) {
		gp_ntfs_space_add_dir(&sp, "gpup");
		sp.n_parents++;
	}
	if (mp->n_backups) {
		if (!mp->dir_exists || gp_ntfs_stat(v, GP_MANIFEST_BACKUP_DIR, &st)) {
			gp_ntfs_clear_error(v);
			gp_ntfs_space_add_dir(&sp, "backup");
		}
		for (size_t i = 0; i < mp->n_backups; i++) {
			const struct gp_manifest_file *f = &mp->m.files[mp->backups[i]];

			gp_ntfs_space_add_file(v, &sp, strrchr(f->backup, '/') + 1, f->orig_size,
					       true, 0);
		}
	}
	/* The largest record: every hash known. Written twice, the second
	 * while the first still exists. */
	full = mp->m;
	full.files = malloc((mp->m.n_files ? mp->m.n_files : 1) * sizeof(*full.files));
	if (!full.files)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	memcpy(full.files, mp->m.files, mp->m.n_files * sizeof(*full.files));
	for (size_t i = 0; i < full.n_files; i++)
		full.files[i].has_sha256 = true;
	ret = gp_manifest_render(&full, &text, &len, err);
	free(full.files);
	if (ret)
		return ret;
	free(text);
	gp_ntfs_space_add_file(v, &sp, "manifest.json.new", len, true, 0);
	gp_ntfs_space_add_file(v, &sp, "manifest.json.new", len, true, 0);
	ret = gp_ntfs_space_check(v, &sp);
	rep->space = sp;
	rep->space_need = sp.need;
	rep->space_have = sp.have;
	return ret ? gp_error_copy(err, gp_ntfs_error(v)) : 0;
}

static bool covered_by_dirs(const struct gp_manifest *m, const char *path)
{
	for (size_t i = 0; i < m->n_dirs; i++)
		if (gp_manifest_path_under(path, m->dirs[i]))
			return true;
	return false;
}

/* Merge the fix-ups' records: a key or value recorded before keeps its
 * first state. */
static int merge_extra(struct gp_manifest *m, const struct gp_manifest_extra *x)
{
	for (size_t i = 0; i < x->n_fixups; i++) {
		bool have = false;

		for (size_t k = 0; k < m->n_fixups; k++)
			have |= !strcmp(m->fixups[k], x->fixups[i]);
		if (!have && gp_manifest_add_string(&m->fixups, &m->n_fixups, x->fixups[i]))
			return GP_ERR_NOMEM;
	}
	for (size_t i = 0; i < x->n_dirs; i++)
		if (!covered_by_dirs(m, x->dirs[i]) &&
		    gp_manifest_add_string(&m->dirs, &m->n_dirs, x->dirs[i]))
			return GP_ERR_NOMEM;
	for (size_t i = 0; i < x->n_regs; i++) {
		const struct gp_manifest_reg *n = &x->regs[i];
		struct gp_manifest_reg *r = NULL;

		bool covered = false;

		for (size_t k = 0; !r && k < m->n_regs; k++) {
			if (strcasecmp(m->regs[k].hive, n->hive))
				continue;
			if (!strcasecmp(m->regs[k].key, n->key))
				r = &m->regs[k];
			/* Inside a key gpup created: unprepare removes it whole. */
			else if (m->regs[k].key_created && !strncasecmp(n->key, m->regs[k].key,
								      strlen(m->regs[k].key)) &&
				 n->key[strlen(m->regs[k].key)] == '\\')
				covered = true;
		}
		if (covered)
			continue;
		if (!r) {
			r = gp_manifest_add_reg(m, n->hive, n->key, n->key_created);
			if (!r)
				return GP_ERR_NOMEM;
		}
		for (size_t k = 0; k < n->n_values; k++) {
			bool have = false;

			for (size_t j = 0; j < r->n_values; j++)
				have |= !strcasecmp(r->values[j].name, n->values[k].name);
			if (!have && gp_manifest_add_reg_value(r, &n->values[k]))
				return GP_ERR_NOMEM;
		}
	}
	return 0;
}

int gp_manifest_plan_prepare(struct gp_ntfs *v, const struct gp_inject_set *set,
			     struct gp_inject_report *rep, const struct gp_manifest_extra *extra,
			     struct gp_manifest_plan *mp, struct gp_error *err)
{
	struct gp_ntfs_stat st;
	char **made = NULL;
	size_t n_made = 0;
	unsigned number;
	int ret;

	memset(mp, 0, sizeof(*mp));
	mp->set = set;
	mp->rep = rep;
	mp->extra = extra;
	ret = gp_manifest_read_text(v, &mp->old_text, &mp->old_len, err);
	if (ret == GP_ERR_NOTFOUND) {
		gp_error_clear(err);
	} else if (ret) {
		return ret;
	} else {
		ret = gp_manifest_parse(mp->old_text, mp->old_len, &mp->m, err);
		if (ret)
			return ret;
		mp->found = true;
	}
	mp->dir_exists = gp_ntfs_stat(v, GP_MANIFEST_DIR, &st) == 0;
	gp_ntfs_clear_error(v);
	for (size_t i = 0; i < rep->n_removed; i++)
		if (drop_removed(&mp->m, rep->removed[i]))
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	number = next_backup(&mp->m);
	mp->backups = calloc(set->count ? set->count : 1, sizeof(*mp->backups));
	if (!mp->backups)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	/* Each path is recorded at gpup's first change to it, never again. */
	for (size_t i = 0; i < set->count; i++) {
		const char *path = set->files[i].guest_path;
		struct gp_manifest_file *f;

		if (rep->actions[i] == GP_INJECT_UNCHANGED || gp_manifest_find(&mp->m, path) >= 0)
			continue;
		f = gp_manifest_add_file(&mp->m, path);
		if (!f)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		if (rep->actions[i] == GP_INJECT_REPLACE) {
			ret = record_replaced(v, f, number++, err);
			if (ret)
				return ret;
			f->backup_pending = true;
		}
	}
	ret = gp_inject_created_dirs(v, set, rep, &made, &n_made, err);
	for (size_t i = 0; !ret && i < n_made; i++)
		if (!covered_by_dirs(&mp->m, made[i]) &&
		    gp_manifest_add_string(&mp->m.dirs, &mp->m.n_dirs, made[i]))
			ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n_made; i++)
		free(made[i]);
	free(made);
	if (!ret && extra && merge_extra(&mp->m, extra))
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (ret)
		return ret;
	/* Sorted; the backups this run takes are found again by their mark. */
	qsort(mp->m.files, mp->m.n_files, sizeof(*mp->m.files), file_cmp);
	mp->n_backups = 0;
	for (size_t i = 0; i < mp->m.n_files; i++)
		if (mp->m.files[i].backup_pending)
			mp->backups[mp->n_backups++] = i;
	apply_hashes(mp);
	ret = plan_space(v, mp, rep, err);
	if (ret)
		return ret;
	/* Nothing to write when the record on disk is already this one, or
	 * when there is none and gpup has nothing in the guest. */
	if (rep->changed || (extra && extra->changes)) {
		mp->changed = true;
	} else if (mp->found || mp->m.n_files || mp->m.n_dirs || mp->m.n_lost || mp->m.n_fixups ||
		   mp->m.n_regs) {
		char *text;
		size_t len;

		ret = gp_manifest_render(&mp->m, &text, &len, err);
		if (ret)
			return ret;
		mp->changed = !mp->found || len != mp->old_len || memcmp(text, mp->old_text, len);
		free(text);
	}
	return 0;
}

/* ---- prepare's hooks ------------------------------------------------------ */

/* Copy guest file @from to @to through memory, checking the bytes against
 * @sha256. */
int gp_manifest_copy(struct gp_ntfs *v, const char *from, const char *to, int64_t mtime,
		     const uint8_t sha256[32], struct gp_error *err)
{
	uint8_t got[32];
	void *buf = NULL;
	size_t len;
	int ret = gp_ntfs_read_file(v, from, GP_MANIFEST_BACKUP_MAX, &buf, &len);

	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	ret = gp_manifest_put_bytes(v, to, buf, len, mtime, got, err);
	free(buf);
	if (!ret && memcmp(got, sha256, 32))
		ret = gp_error_set(err, GP_ERR_CORRUPT,
				   "%s: its bytes differ from those recorded in %s; not copied to %s",
				   from, GP_MANIFEST_PATH, to);
	return ret;
}

/* Write mp->m as the record unless the guest holds these bytes already
 * (mp->old_text, which then follows what was written). */
static int write_if_changed(struct gp_manifest_plan *mp, struct gp_ntfs *v, struct gp_error *err)
{
	char *text;
	size_t len;
	int ret = gp_manifest_render(&mp->m, &text, &len, err);

	if (ret)
		return ret;
	if (mp->old_text && len == mp->old_len && !memcmp(text, mp->old_text, len)) {
		free(text);
		return 0;
	}
	ret = write_record(v, text, len, err);
	free(mp->old_text);
	mp->old_text = text;
	mp->old_len = len;
	return ret;
}

static int hook_before(void *ctx, struct gp_ntfs *v, char **created, bool *replaced,
		       struct gp_error *err)
{
	struct gp_manifest_plan *mp = ctx;
	int ret;

	*created = NULL;
	if (!mp->changed)
		return 0;
	if (!mp->dir_exists) {
		if (gp_ntfs_mkdir_p(v, GP_MANIFEST_DIR))
			return gp_error_copy(err, gp_ntfs_error(v));
		*created = strdup(GP_MANIFEST_DIR);
		if (!*created)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < mp->n_backups; i++) {
		const struct gp_manifest_file *f = &mp->m.files[mp->backups[i]];

		ret = gp_manifest_copy(v, f->path, f->backup, f->orig_mtime, f->orig_sha256, err);
		if (ret)
			return ret;
	}
	/* The plan, before any file changes: the files about to be written
	 * have no hash yet. */
	for (size_t i = 0; i < mp->set->count; i++) {
		ssize_t k = gp_manifest_find(&mp->m, mp->set->files[i].guest_path);

		if (k >= 0 && mp->rep->actions[i] != GP_INJECT_UNCHANGED)
			mp->m.files[k].has_sha256 = false;
	}
	*replaced = mp->found;
	return write_if_changed(mp, v, err);
}

static int hook_after(void *ctx, struct gp_ntfs *v, struct gp_error *err)
{
	struct gp_manifest_plan *mp = ctx;

	int ret;

	if (!mp->changed)
		return 0;
	if (mp->extra && mp->extra->changes && mp->extra->commit) {
		ret = mp->extra->commit(mp->extra->ctx, v, err);
		if (ret)
			return ret;
	}
	apply_hashes(mp);
	return write_if_changed(mp, v, err);
}

void gp_manifest_plan_hooks(struct gp_manifest_plan *mp, struct gp_inject_hooks *hooks)
{
	hooks->before_files = hook_before;
	hooks->after_files = hook_after;
	hooks->ctx = mp;
}
