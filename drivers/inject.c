/*
 * inject.c — putting an injection set into a guest volume, and checking it.
 * See inject.h for the contract.
 */
#include "inject.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "le.h"
#include "ntfsvol.h"

/* Guest reads and hashes go through this buffer size (ntfs-3g streams in
 * cluster multiples; 1 MiB keeps syscall and callback counts low). */
#define HASH_CHUNK (1u << 20)

/* ---- guest-side hashing ---- */

struct hash_sink {
	EVP_MD_CTX *ctx;
	uint64_t bytes;
};

static int hash_sink_write(const void *buf, size_t len, void *ctx)
{
	struct hash_sink *h = ctx;

	EVP_DigestUpdate(h->ctx, buf, len);
	h->bytes += len;
	return 0;
}

/* A SHA-256 context kept across files: the type is fetched once, because
 * OpenSSL 3's implicit fetch behind EVP_sha256() costs ~170k instructions
 * per init (bench/RESULTS.md, profile item 5). */
struct sha_ctx {
	EVP_MD *type;
	EVP_MD_CTX *md;
};

static void sha_ctx_free(struct sha_ctx *c)
{
	EVP_MD_CTX_free(c->md);
	EVP_MD_free(c->type);
	c->md = NULL;
	c->type = NULL;
}

/* SHA-256 of guest file @path, with @c set up on first use. */
static int guest_sha256(struct gp_ntfs *v, const char *path, struct sha_ctx *c,
			uint8_t out[32], struct gp_error *err)
{
	struct hash_sink h;
	int ret;

	if (!c->type)
		c->type = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!c->md)
		c->md = EVP_MD_CTX_new();
	if (!c->type || !c->md || !EVP_DigestInit_ex2(c->md, c->type, NULL))
		return gp_error_set(err, GP_ERR_NOMEM, "cannot start SHA-256");
	h.ctx = c->md;
	h.bytes = 0;
	ret = gp_ntfs_cat(v, path, hash_sink_write, &h);
	if (ret)
		gp_error_copy(err, gp_ntfs_error(v));
	else
		EVP_DigestFinal_ex(c->md, out, NULL);
	return ret;
}

int gp_inject_guest_sha256(struct gp_ntfs *v, const char *path, uint8_t out[32],
			   struct gp_error *err)
{
	struct sha_ctx sc = { 0 };
	int ret = guest_sha256(v, path, &sc, out, err);

	sha_ctx_free(&sc);
	return ret;
}

/* ---- stale builds ---- */

/* Length of the INF-name part of a FileRepository folder name
 * ("nv_dispi.inf_amd64_abc" -> strlen("nv_dispi.inf")), or 0. */
static size_t inf_prefix_len(const char *folder)
{
	const char *p = strcasestr(folder, ".inf_");

	return p ? (size_t)(p - folder) + 4 : 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

struct tree_size_ctx {
	struct gp_ntfs *v;
	const char *dir;
	uint64_t bytes;
	int ret;
};

static int tree_size_entry(const char *name, const struct gp_ntfs_stat *st, void *ctx)
{
	struct tree_size_ctx *t = ctx;

	if (!st->is_dir) {
		t->bytes += st->size;
		return 0;
	}
	{
		size_t n = strlen(t->dir) + strlen(name) + 2;
		char *sub = malloc(n);
		struct tree_size_ctx child = { .v = t->v, .dir = sub };

		if (!sub) {
			t->ret = GP_ERR_NOMEM;
			return 1;
		}
		snprintf(sub, n, "%s/%s", t->dir, name);
		t->ret = gp_ntfs_list(t->v, sub, tree_size_entry, &child);
		if (!t->ret)
			t->ret = child.ret;
		t->bytes += child.bytes;
		free(sub);
		return t->ret != 0;
	}
}

int gp_inject_tree_size(struct gp_ntfs *v, const char *path, uint64_t *bytes,
			struct gp_error *err)
{
	struct tree_size_ctx t = { .v = v, .dir = path };
	int ret = gp_ntfs_list(v, path, tree_size_entry, &t);

	if (ret == GP_ERR_ABORTED && t.ret)
		ret = t.ret;
	if (ret) {
		if (ret == GP_ERR_NOMEM)
			return gp_error_set(err, ret, "out of memory");
		gp_error_copy(err, gp_ntfs_error(v));
		return ret;
	}
	*bytes = t.bytes;
	return 0;
}

struct stale_ctx {
	const struct gp_inject_set *set;
	char **names;
	size_t n, cap;
	int ret;
};

static bool set_has_folder(const struct gp_inject_set *set, const char *name)
{
	for (size_t i = 0; i < set->n_folders; i++)
		if (strcasecmp(base_name(set->folders[i]), name) == 0)
			return true;
	return false;
}

static bool set_has_inf(const struct gp_inject_set *set, const char *name, size_t len)
{
	for (size_t i = 0; i < set->n_folders; i++) {
		const char *f = base_name(set->folders[i]);
		size_t flen = inf_prefix_len(f);

		if (flen == len && strncasecmp(f, name, len) == 0)
			return true;
	}
	return false;
}

static int stale_entry(const char *name, const struct gp_ntfs_stat *st, void *ctx)
{
	struct stale_ctx *s = ctx;
	size_t len = inf_prefix_len(name);

	if (!st->is_dir || !len || !set_has_inf(s->set, name, len) ||
	    set_has_folder(s->set, name))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **p = realloc(s->names, cap * sizeof(*p));
		if (!p) {
			s->ret = GP_ERR_NOMEM;
			return 1;
		}
		s->names = p;
		s->cap = cap;
	}
	s->names[s->n] = strdup(name);
	if (!s->names[s->n]) {
		s->ret = GP_ERR_NOMEM;
		return 1;
	}
	s->n++;
	return 0;
}

int gp_inject_find_stale(struct gp_ntfs *v, const struct gp_inject_set *set,
			 char ***paths, uint64_t **bytes, size_t *n, struct gp_error *err)
{
	struct stale_ctx s = { .set = set };
	struct gp_ntfs_stat st;
	uint64_t *sizes = NULL;
	char **out = NULL;
	int ret;

	*paths = NULL;
	*bytes = NULL;
	*n = 0;
	if (gp_ntfs_stat(v, GP_GUEST_HOSTDRIVERSTORE, &st) == GP_ERR_NOTFOUND)
		return 0;
	ret = gp_ntfs_list(v, GP_GUEST_HOSTDRIVERSTORE, stale_entry, &s);
	if (ret == GP_ERR_ABORTED && s.ret)
		ret = gp_error_set(err, s.ret, "out of memory");
	else if (ret)
		gp_error_copy(err, gp_ntfs_error(v));
	if (ret)
		goto out;
	out = calloc(s.n ? s.n : 1, sizeof(*out));
	sizes = calloc(s.n ? s.n : 1, sizeof(*sizes));
	if (!out || !sizes) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s.n; i++) {
		size_t len = strlen(GP_GUEST_HOSTDRIVERSTORE) + strlen(s.names[i]) + 2;

		out[i] = malloc(len);
		if (!out[i]) {
			ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			goto out;
		}
		snprintf(out[i], len, "%s/%s", GP_GUEST_HOSTDRIVERSTORE, s.names[i]);
		ret = gp_inject_tree_size(v, out[i], &sizes[i], err);
		if (ret)
			goto out;
		*n = i + 1;
	}
	*paths = out;
	*bytes = sizes;
	out = NULL;
	sizes = NULL;
out:
	if (out) {
		for (size_t i = 0; i < s.n; i++)
			free(out[i]);
		free(out);
	}
	free(sizes);
	for (size_t i = 0; i < s.n; i++)
		free(s.names[i]);
	free(s.names);
	if (ret)
		*n = 0;
	return ret;
}

/* ---- applying ---- */

/* Feeds gp_ntfs_put_stream() from a gp_inject_stream and reports progress. */
struct feed {
	struct gp_inject_stream *src;
	struct gp_error *err;
	const struct gp_progress *progress;
	struct gp_progress_info *info;
};

static int feed_read(void *buf, size_t len, size_t *got, void *ctx)
{
	struct feed *f = ctx;
	int64_t n = f->src->ops->read(f->src, buf, len, f->err);

	if (n < 0)
		return (int)n;
	*got = (size_t)n;
	if (n == 0) /* end of the file: no progress to report */
		return 0;
	f->info->done_bytes += (uint64_t)n;
	return gp_progress_call(f->progress, GP_PROGRESS_BYTES, f->info, f->err);
}

/* Decide what to do with file @f: compare with the guest copy. */
static int classify(struct gp_ntfs *v, struct gp_inject_stream *src,
		    const struct gp_inject_file *f, enum gp_inject_action *act,
		    uint64_t *old_alloc, uint8_t sha[32], bool *has_sha, struct gp_error *err)
{
	uint8_t want[32], have[32];
	struct gp_ntfs_stat st;
	int ret;

	*old_alloc = 0;
	ret = gp_ntfs_stat(v, f->guest_path, &st);
	if (ret == GP_ERR_NOTFOUND) {
		*act = GP_INJECT_NEW;
		return 0;
	}
	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	if (st.is_dir)
		return gp_error_set(err, GP_ERR_EXISTS,
				    "guest path %s is a directory, but the driver needs a file there",
				    f->guest_path);
	*old_alloc = st.allocated;
	if (st.size != f->size) {
		*act = GP_INJECT_REPLACE;
		return 0;
	}
	ret = src->ops->expected(src, f, want, err);
	if (ret)
		return ret;
	ret = gp_inject_guest_sha256(v, f->guest_path, have, err);
	if (ret)
		return ret;
	*act = memcmp(want, have, 32) ? GP_INJECT_REPLACE : GP_INJECT_UNCHANGED;
	if (*act == GP_INJECT_UNCHANGED) {
		memcpy(sha, have, 32);
		*has_sha = true;
	}
	return 0;
}

/* Write the files the plan marked new or different. *@began is set once
 * the first write began, *@replaced once a file's old bytes were given up
 * (its replacement began), which no rollback can undo. */
static int write_files(struct gp_ntfs *v, const struct gp_inject_set *set,
		       struct gp_inject_stream *src, const struct gp_inject_apply_opts *o,
		       struct gp_inject_report *rep, bool *began, bool *replaced,
		       struct gp_error *err)
{
	struct gp_progress_info info = { .stage = "inject" };
	int ret;

	for (size_t i = 0; i < set->count; i++) {
		if (rep->actions[i] != GP_INJECT_UNCHANGED) {
			info.total_bytes += set->files[i].size;
			info.total_files++;
		}
	}
	ret = gp_progress_call(o->progress, GP_PROGRESS_BEGIN, &info, err);
	for (size_t i = 0; !ret && i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		struct feed feed = { .src = src, .err = err, .progress = o->progress, .info = &info };
		if (rep->actions[i] == GP_INJECT_UNCHANGED)
			continue;
		info.path = f->guest_path;
		ret = gp_progress_call(o->progress, GP_PROGRESS_FILE, &info, err);
		if (ret)
			break;
		ret = src->ops->open(src, f, err);
		if (ret)
			break;
		/* No second hash here: a stream that knows the expected bytes
		 * (a bundle) hashes what it delivers itself, and host files
		 * are checked by the independent read-back afterwards. */
		*began = true;
		if (rep->actions[i] == GP_INJECT_REPLACE)
			*replaced = true;
		ret = gp_ntfs_put_stream(v, f->guest_path, f->size, f->mtime, feed_read, &feed,
					 rep->sha256[i]);
		if (ret) {
			/* The stream's own error (recorded in @err by feed_read)
			 * wins over the volume's echo of it. */
			gp_error_copy(err, gp_ntfs_error(v));
			src->ops->close(src, NULL, NULL);
			break;
		}
		ret = src->ops->close(src, NULL, err);
		if (ret)
			break;
		rep->has_sha256[i] = true;
		info.done_files++;
		rep->bytes_written += f->size;
	}
	info.path = NULL;
	/* Nothing the stream holds beyond the last file may go unchecked. */
	if (!ret && info.done_files && src->ops->finish)
		ret = src->ops->finish(src, err);
	if (!ret)
		ret = gp_progress_call(o->progress, GP_PROGRESS_END, &info, err);
	return ret;
}

/* Directories the plan touches, for gp_ntfs_space_check(). */
struct dirset {
	char **paths;
	size_t n;
};

/* Add @dir (not NUL-terminated: @len bytes) to @d unless there; returns 1
 * when added, 0 when there already, GP_ERR_NOMEM. Guest paths compare
 * case-insensitively, as NTFS does. */
static int dirset_add(struct dirset *d, const char *dir, size_t len)
{
	char **a;

	for (size_t i = 0; i < d->n; i++)
		if (strlen(d->paths[i]) == len && strncasecmp(d->paths[i], dir, len) == 0)
			return 0;
	a = realloc(d->paths, (d->n + 1) * sizeof(*a));
	if (!a)
		return GP_ERR_NOMEM;
	d->paths = a;
	a[d->n] = strndup(dir, len);
	if (!a[d->n])
		return GP_ERR_NOMEM;
	d->n++;
	return 1;
}

/* Accounts in @sp the directories the new files of the plan need: those
 * that do not exist yet (every level up to one that does) and the
 * existing ones that receive entries. */
static int plan_dirs(struct gp_ntfs *v, const struct gp_inject_set *set,
		     const enum gp_inject_action *actions, struct gp_ntfs_space *sp,
		     struct gp_error *err)
{
	struct dirset seen = { 0 };
	int ret = 0;

	for (size_t i = 0; !ret && i < set->count; i++) {
		const char *p = set->files[i].guest_path;
		const char *slash = strrchr(p, '/');
		size_t len;

		if (actions[i] != GP_INJECT_NEW)
			continue;
		/* Up the tree until a directory seen before or existing. */
		for (len = slash ? (size_t)(slash - p) : 0; len > 0;) {
			struct gp_ntfs_stat st;
			char *dir;
			const char *up;
			int r = dirset_add(&seen, p, len);

			if (r <= 0) {
				ret = r ? gp_error_set(err, GP_ERR_NOMEM, "out of memory") : 0;
				break;
			}
			dir = seen.paths[seen.n - 1];
			r = gp_ntfs_stat(v, dir, &st);
			if (r == 0) {
				sp->n_parents++;
				break;
			}
			if (r != GP_ERR_NOTFOUND) {
				ret = gp_error_copy(err, gp_ntfs_error(v));
				break;
			}
			gp_ntfs_clear_error(v);
			up = memrchr(p, '/', len);
			gp_ntfs_space_add_dir(sp, up ? dir + (up - p) + 1 : dir);
			len = up ? (size_t)(up - p) : 0;
		}
	}
	for (size_t i = 0; i < seen.n; i++)
		free(seen.paths[i]);
	free(seen.paths);
	return ret;
}

/* The directories a run creates: for each new file, the top-most missing
 * directory above it (HostDriverStore itself on a guest without one, else
 * the package folder, or a new System32 subdirectory). Removing these, and
 * the new files outside them, undoes the run. Files are sorted, so a
 * directory seen for the file before is not looked up again. */
static int created_dirs(struct gp_ntfs *v, const struct gp_inject_set *set,
			const enum gp_inject_action *actions, struct dirset *out,
			struct gp_error *err)
{
	const char *prev = NULL;
	size_t prev_len = 0;

	for (size_t i = 0; i < set->count; i++) {
		const char *p = set->files[i].guest_path, *slash = strrchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : 0, top = 0;

		if (actions[i] != GP_INJECT_NEW || len == 0 ||
		    (prev && len == prev_len && !strncmp(p, prev, len)))
			continue;
		prev = p;
		prev_len = len;
		while (len > 0) {
			struct gp_ntfs_stat st;
			char *dir = strndup(p, len);
			const char *up;
			int r;

			if (!dir)
				return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			r = gp_ntfs_stat(v, dir, &st);
			free(dir);
			if (r == 0)
				break;
			if (r != GP_ERR_NOTFOUND)
				return gp_error_copy(err, gp_ntfs_error(v));
			gp_ntfs_clear_error(v);
			top = len;
			up = memrchr(p, '/', len);
			len = up ? (size_t)(up - p) : 0;
		}
		if (top && dirset_add(out, p, top) < 0)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	return 0;
}

int gp_inject_created_dirs(struct gp_ntfs *v, const struct gp_inject_set *set,
			   const struct gp_inject_report *rep, char ***paths, size_t *n,
			   struct gp_error *err)
{
	struct dirset d = { 0 };
	int ret = created_dirs(v, set, rep->actions, &d, err);

	if (ret) {
		for (size_t i = 0; i < d.n; i++)
			free(d.paths[i]);
		free(d.paths);
		d.paths = NULL;
		d.n = 0;
	}
	*paths = d.paths;
	*n = d.n;
	return ret;
}

/* A file the plan would replace that belongs to Windows itself (owned by
 * TrustedInstaller: ntoskrnl.exe, an in-box DLL a driver also ships) is
 * refused unless asked for: replacing one can leave a guest that does not
 * boot, and Windows' own updates would fight over it. */
static int refuse_system_files(struct gp_ntfs *v, const struct gp_inject_set *set,
			       const enum gp_inject_action *actions, struct gp_error *err)
{
	for (size_t i = 0; i < set->count; i++) {
		bool windows;
		int ret;

		if (actions[i] != GP_INJECT_REPLACE)
			continue;
		ret = gp_inject_owned_by_windows(v, set->files[i].guest_path, &windows, err);
		if (ret)
			return ret;
		if (windows)
			return gp_error_set(err, GP_ERR_REFUSED,
					    "%s is a file of Windows itself (owned by TrustedInstaller), "
					    "which the driver would replace (%s); refused (pass "
					    "--replace-system-files to replace it)",
					    set->files[i].guest_path, set->files[i].origin);
	}
	return 0;
}

/* Undo a failed run: remove the directories it created (@dirs, with all
 * in them) and the new files elsewhere. Returns true when that left the
 * volume as it was: every removal worked and no file had been replaced
 * in place (@replaced). Errors here are secondary (the first error wins)
 * but still recorded. */
static bool rollback(struct gp_ntfs *v, const struct gp_inject_set *set,
		     const struct dirset *dirs, const struct gp_inject_report *rep, bool replaced,
		     struct gp_error *err)
{
	bool complete = !replaced;

	for (size_t i = 0; i < dirs->n; i++) {
		struct gp_ntfs_stat st;

		if (gp_ntfs_stat(v, dirs->paths[i], &st) != 0) {
			gp_ntfs_clear_error(v);
		} else if (gp_ntfs_remove(v, dirs->paths[i], true)) {
			gp_error_copy(err, gp_ntfs_error(v));
			complete = false;
		}
	}
	for (size_t i = 0; i < set->count; i++) {
		struct gp_ntfs_stat st;

		if (rep->actions[i] != GP_INJECT_NEW)
			continue;
		if (gp_ntfs_stat(v, set->files[i].guest_path, &st) != 0) {
			gp_ntfs_clear_error(v);
		} else if (gp_ntfs_remove(v, set->files[i].guest_path, false)) {
			gp_error_copy(err, gp_ntfs_error(v));
			complete = false;
		}
	}
	return complete;
}

int gp_inject_plan(struct gp_ntfs *v, const struct gp_inject_set *set,
		   struct gp_inject_stream *src, const struct gp_inject_apply_opts *opts,
		   struct gp_inject_report *rep, struct gp_error *err)
{
	static const struct gp_inject_apply_opts defaults;
	struct gp_ntfs_space sp = { 0 };
	int ret = 0;

	if (!opts)
		opts = &defaults;
	memset(rep, 0, sizeof(*rep));
	rep->actions = calloc(set->count ? set->count : 1, sizeof(*rep->actions));
	rep->sha256 = calloc(set->count ? set->count : 1, sizeof(*rep->sha256));
	rep->has_sha256 = calloc(set->count ? set->count : 1, sizeof(*rep->has_sha256));
	if (!rep->actions || !rep->sha256 || !rep->has_sha256)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");

	/* What is new, what differs, what is already there. */
	for (size_t i = 0; i < set->count; i++) {
		const char *base = strrchr(set->files[i].guest_path, '/');
		uint64_t old_alloc;

		ret = classify(v, src, &set->files[i], &rep->actions[i], &old_alloc, rep->sha256[i],
			       &rep->has_sha256[i], err);
		if (ret)
			return ret;
		switch (rep->actions[i]) {
		case GP_INJECT_UNCHANGED:
			rep->n_unchanged++;
			break;
		case GP_INJECT_NEW:
		case GP_INJECT_REPLACE:
			if (rep->actions[i] == GP_INJECT_NEW)
				rep->n_new++;
			else
				rep->n_replaced++;
			gp_ntfs_space_add_file(v, &sp, base ? base + 1 : set->files[i].guest_path,
					       set->files[i].size, rep->actions[i] == GP_INJECT_NEW,
					       old_alloc);
			break;
		}
	}
	if (!opts->replace_system_files) {
		ret = refuse_system_files(v, set, rep->actions, err);
		if (ret)
			return ret;
	}
	ret = gp_inject_find_stale(v, set, &rep->removed, &rep->removed_bytes, &rep->n_removed, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < rep->n_removed; i++)
		rep->bytes_removed += rep->removed_bytes[i];
	if (opts->keep_old) {
		for (size_t i = 0; i < rep->n_removed; i++)
			free(rep->removed[i]);
		rep->n_removed = 0;
		rep->bytes_removed = 0;
	}
	rep->changed = rep->n_new || rep->n_replaced || rep->n_removed;

	/* A $Bitmap that marks clusters of live files as free would hand
	 * them to the new files (a guest's SYSTEM hive was overwritten that
	 * way): an unsafe guest state, refused before anything is written. */
	if (rep->changed) {
		struct gp_ntfs_bitmap_report br;

		ret = gp_ntfs_check_bitmap(v, &br);
		if (ret) {
			gp_error_copy(err, gp_ntfs_error(v));
			if (ret == GP_ERR_CORRUPT)
				ret = err->code = GP_ERR_REFUSED;
			return ret;
		}
	}
	/* Refuse up front rather than fail half-way: the new data and the
	 * metadata of the new files must fit beside what is there (stale
	 * builds are removed only after the new package is complete, so
	 * their space does not count). */
	ret = plan_dirs(v, set, rep->actions, &sp, err);
	if (ret)
		return ret;
	ret = gp_ntfs_space_check(v, &sp);
	rep->space = sp;
	rep->space_need = sp.need;
	rep->space_have = sp.have;
	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	/* What the source shows before its bytes: a dry run fails where the
	 * real run would. */
	if (src->ops->check)
		return src->ops->check(src, opts->dry_run, err);
	return 0;
}

int gp_inject_commit(struct gp_ntfs *v, const struct gp_inject_set *set,
		     struct gp_inject_stream *src, const struct gp_inject_apply_opts *opts,
		     struct gp_inject_report *rep, struct gp_error *err)
{
	static const struct gp_inject_apply_opts defaults;
	struct dirset created = { 0 };
	bool began = false, replaced = false;
	int ret = 0;

	if (!opts)
		opts = &defaults;
	if (!rep->actions)
		return gp_error_set(err, GP_ERR_INVALID, "gp_inject_commit() without a plan");
	/* Which directories the run creates, looked up before the first
	 * write: a failed run removes only those. */
	ret = created_dirs(v, set, rep->actions, &created, err);
	if (ret)
		goto out;
	if (opts->hooks && opts->hooks->before_files) {
		char *made = NULL;

		began = true;
		ret = opts->hooks->before_files(opts->hooks->ctx, v, &made, &replaced, err);
		if (made) {
			char **a = realloc(created.paths, (created.n + 1) * sizeof(*a));

			if (a) {
				created.paths = a;
				a[created.n++] = made;
			} else {
				free(made);
				replaced = true; /* cannot remove it again: not undone */
				if (!ret)
					ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			}
		}
	}
	if (!ret)
		ret = write_files(v, set, src, opts, rep, &began, &replaced, err);
	if (ret) {
		bool undone = rollback(v, set, &created, rep, replaced, err);

		/* Only a run that wrote something has something rolled back. */
		rep->rolled_back = gp_ntfs_settle(v, undone) && undone && began;
		if (began) {
			size_t n = strlen(err->msg);

			snprintf(err->msg + n, sizeof(err->msg) - n, "%s",
				 rep->rolled_back ? "; rolled back: the guest volume is as it was"
				 : replaced ? "; files were already replaced: run the same command "
					      "again to complete the package"
					    : "; the guest volume stays marked dirty");
		}
		goto out;
	}
	for (size_t i = 0; i < rep->n_removed; i++) {
		struct gp_progress_info info = { .stage = "remove", .path = rep->removed[i],
						 .done_files = i, .total_files = rep->n_removed };

		ret = gp_progress_call(opts->progress, GP_PROGRESS_REMOVE, &info, err);
		if (ret)
			goto out;
		ret = gp_ntfs_remove(v, rep->removed[i], true);
		if (ret) {
			gp_error_copy(err, gp_ntfs_error(v));
			goto out;
		}
	}
	if (opts->hooks && opts->hooks->after_files)
		ret = opts->hooks->after_files(opts->hooks->ctx, v, err);
out:
	for (size_t i = 0; i < created.n; i++)
		free(created.paths[i]);
	free(created.paths);
	return ret;
}

int gp_inject_apply(struct gp_ntfs *v, const struct gp_inject_set *set,
		    struct gp_inject_stream *src, const struct gp_inject_apply_opts *opts,
		    struct gp_inject_report *rep, struct gp_error *err)
{
	int ret = gp_inject_plan(v, set, src, opts, rep, err);

	if (ret || (opts && opts->dry_run))
		return ret;
	return gp_inject_commit(v, set, src, opts, rep, err);
}

void gp_inject_report_free(struct gp_inject_report *rep)
{
	if (!rep)
		return;
	free(rep->actions);
	free(rep->sha256);
	free(rep->has_sha256);
	for (size_t i = 0; i < rep->n_removed; i++)
		free(rep->removed[i]);
	free(rep->removed);
	free(rep->removed_bytes);
	memset(rep, 0, sizeof(*rep));
}

/* ---- ACLs ---- */

/* SECURITY_DESCRIPTOR_RELATIVE (MS-DTYP 2.4.6), ACL (2.4.5), ACE header
 * (2.4.4.1) and ACCESS_ALLOWED_ACE (2.4.4.2). */
#define SD_CONTROL 2
#define SD_OFFSET_OWNER 4
#define SD_OFFSET_DACL 16
#define SD_HEADER_SIZE 20
#define SE_DACL_PRESENT 0x0004
#define ACL_ACE_COUNT 4
#define ACL_HEADER_SIZE 8
#define ACE_TYPE 0
#define ACE_SIZE 2
#define ACE_MASK 4
#define ACE_SID 8
#define ACE_HEADER_SIZE 4
#define ACCESS_ALLOWED_ACE_TYPE 0
#define FILE_ALL_ACCESS 0x001f01ffu
#define GENERIC_ALL 0x10000000u

/* S-1-1-0: revision 1, one sub-authority, authority 1, sub-authority 0. */
static const uint8_t sid_everyone[12] = { 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 };

/* S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464,
 * NT SERVICE\TrustedInstaller (a service SID: S-1-5-80- and the SHA-1 of
 * "TRUSTEDINSTALLER" in UTF-16LE), which owns the files of Windows itself. */
#define LE32(x) (uint8_t)(x), (uint8_t)((x) >> 8), (uint8_t)((x) >> 16), (uint8_t)((x) >> 24)
static const uint8_t sid_trusted_installer[32] = {
	1, 6, 0, 0, 0, 0, 0, 5,  /* revision 1, 6 sub-authorities, NT authority */
	LE32(80u), LE32(956008885u), LE32(3418522649u), LE32(1831038044u), LE32(1853292631u),
	LE32(2271478464u),
};
#undef LE32

/* The security descriptor of guest @path, at least its fixed header long
 * (*sd malloc'ed). Returns 0, GP_ERR_CORRUPT, or the volume's codes. */
static int read_sd(struct gp_ntfs *v, const char *path, uint8_t **sd, size_t *len,
		   struct gp_error *err)
{
	void *p = NULL;
	int ret = gp_ntfs_get_sd(v, path, &p, len);

	*sd = NULL;
	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	if (*len < SD_HEADER_SIZE) {
		free(p);
		return gp_error_set(err, GP_ERR_CORRUPT, "%s: security descriptor of %zu bytes", path,
				    *len);
	}
	*sd = p;
	return 0;
}

int gp_inject_owned_by_windows(struct gp_ntfs *v, const char *path, bool *windows,
			       struct gp_error *err)
{
	uint8_t *sd;
	size_t len;
	uint32_t owner;
	int ret = read_sd(v, path, &sd, &len, err);

	*windows = false;
	if (ret)
		return ret;
	owner = get_le32(sd + SD_OFFSET_OWNER);
	/* A SID: 8 bytes of header, then 4 per sub-authority (count at +1). */
	if (owner && (owner > len || len - owner < 8 ||
		      len - owner < 8 + 4u * sd[owner + 1]))
		ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: owner SID at %u outside the %zu-byte "
				   "descriptor", path, owner, len);
	else if (owner && len - owner >= sizeof(sid_trusted_installer))
		*windows = !memcmp(sd + owner, sid_trusted_installer, sizeof(sid_trusted_installer));
	free(sd);
	return ret;
}

int gp_inject_acl_everyone_full(struct gp_ntfs *v, const char *path, bool *open_acl,
				struct gp_error *err)
{
	uint8_t *p;
	size_t len = 0, off;
	uint32_t dacl;
	int ret;

	*open_acl = false;
	ret = read_sd(v, path, &p, &len, err);
	if (ret)
		return ret;
	dacl = get_le32(p + SD_OFFSET_DACL);
	if (!(get_le16(p + SD_CONTROL) & SE_DACL_PRESENT) || dacl == 0) {
		*open_acl = true;  /* a NULL DACL grants everyone everything */
		goto out;
	}
	if (dacl > len || len - dacl < ACL_HEADER_SIZE) {
		ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: DACL offset %u outside the %zu-byte descriptor",
				   path, dacl, len);
		goto out;
	}
	off = dacl + ACL_HEADER_SIZE;
	for (unsigned i = 0, n = get_le16(p + dacl + ACL_ACE_COUNT); i < n; i++) {
		uint16_t size;

		if (len - off < ACE_HEADER_SIZE) {
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: ACE %u runs past the descriptor", path, i);
			goto out;
		}
		size = get_le16(p + off + ACE_SIZE);
		if (size < ACE_HEADER_SIZE || size > len - off) {
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: ACE %u has size %u", path, i, size);
			goto out;
		}
		if (p[off + ACE_TYPE] == ACCESS_ALLOWED_ACE_TYPE &&
		    size >= ACE_SID + sizeof(sid_everyone) &&
		    memcmp(p + off + ACE_SID, sid_everyone, sizeof(sid_everyone)) == 0 &&
		    ((get_le32(p + off + ACE_MASK) & FILE_ALL_ACCESS) == FILE_ALL_ACCESS ||
		     (get_le32(p + off + ACE_MASK) & GENERIC_ALL))) {
			*open_acl = true;
			break;
		}
		off += size;
	}
out:
	free(p);
	return ret;
}

/* ---- verifying ---- */

const char *gp_verify_state_name(enum gp_verify_state s)
{
	switch (s) {
	case GP_VERIFY_OK: return "ok";
	case GP_VERIFY_MISSING: return "missing";
	case GP_VERIFY_SIZE: return "size differs";
	case GP_VERIFY_HASH: return "content differs (SHA-256)";
	}
	return "unknown";
}

/*
 * Verify's source side on a second thread. Verify used to hash the host
 * file and then the guest file, one after the other on one core
 * (bench/RESULTS.md, profile item 3). When the source can hand out its bytes
 * (open_fd), a reader thread reads the host files, in the order verify
 * checks them, into a small ring of chunks while the calling thread reads the
 * guest copy (libvhdi + libntfs-3g, which stay on the calling thread: neither
 * is shared between threads) and compares the two byte for byte — stronger
 * than comparing digests, and with no SHA-256 at all on either side.
 *
 * Ownership: the reader thread alone calls src->ops->open_fd() and reads
 * host files; everything between the threads (ring, positions, failure) is
 * under @mu. A slot's bytes are written before it is published (count++)
 * and read before it is released (count--), both under @mu.
 */
#define READER_SLOTS 4

struct reader_slot {
	uint8_t *data;          /* HASH_CHUNK bytes */
	size_t len;             /* 0 with @end: the file ended */
	size_t pos;             /* position in reader.todo */
	bool end;
};

struct reader {
	struct gp_inject_stream *src;
	const struct gp_inject_set *set;
	const size_t *todo;     /* set indices to compare, increasing */
	size_t n_todo;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* broadcast on every change */
	struct reader_slot ring[READER_SLOTS];
	size_t head, count;
	size_t skip_below;      /* the checker is done with positions below this */
	bool quit;
	bool failed;            /* the reader stopped on an error at @fail_pos */
	size_t fail_pos;
	int status;
	struct gp_error err;
};

/* Reader: a free slot for position @pos, or NULL when the checker no
 * longer wants this file (or verify is over). */
static struct reader_slot *reader_slot(struct reader *r, size_t pos)
{
	struct reader_slot *slot = NULL;

	pthread_mutex_lock(&r->mu);
	while (r->count == READER_SLOTS && !r->quit && r->skip_below <= pos)
		pthread_cond_wait(&r->cv, &r->mu);
	if (!r->quit && r->skip_below <= pos)
		slot = &r->ring[(r->head + r->count) % READER_SLOTS];
	pthread_mutex_unlock(&r->mu);
	return slot;
}

static void reader_publish(struct reader *r)
{
	pthread_mutex_lock(&r->mu);
	r->count++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct gp_error err = { 0 };
	int ret = 0;
	size_t pos;

	for (pos = 0; pos < r->n_todo; pos++) {
		const struct gp_inject_file *f = &r->set->files[r->todo[pos]];
		struct reader_slot *slot;
		int fd;

		if (!reader_slot(r, pos))
			continue;  /* skipped, or quit (then every later one is too) */
		ret = r->src->ops->open_fd(r->src, f, &fd, &err);
		if (ret)
			break;
		while ((slot = reader_slot(r, pos))) {
			ssize_t n = read(fd, slot->data, HASH_CHUNK);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				ret = gp_error_set_errno(&err, GP_ERR_IO, errno, "%s", f->source_path);
				break;
			}
			slot->len = (size_t)n;
			slot->pos = pos;
			slot->end = n == 0;
			reader_publish(r);
			if (n == 0)
				break;
		}
		close(fd);
		if (ret)
			break;
	}
	pthread_mutex_lock(&r->mu);
	if (ret) {
		r->failed = true;
		r->fail_pos = pos;
		r->status = ret;
		gp_error_copy(&r->err, &err);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Checker: the next slot of position @pos, dropping what is left of files
 * before it. NULL when the reader failed (on this file: its error is what
 * verify reports). The slot stays queued until reader_release(). */
static struct reader_slot *reader_next(struct reader *r, size_t pos)
{
	struct reader_slot *slot = NULL;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->count && r->ring[r->head].pos < pos) {
			r->head = (r->head + 1) % READER_SLOTS;
			r->count--;
			pthread_cond_broadcast(&r->cv);
		}
		if (r->count) {
			slot = &r->ring[r->head];
			break;
		}
		if (r->failed)
			break;
		pthread_cond_wait(&r->cv, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return slot;
}

static void reader_release(struct reader *r)
{
	pthread_mutex_lock(&r->mu);
	r->head = (r->head + 1) % READER_SLOTS;
	r->count--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Checker: done with position @pos (compared to the end or given up). */
static void reader_done_with(struct reader *r, size_t pos)
{
	pthread_mutex_lock(&r->mu);
	r->skip_below = pos + 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* The reader's error, when it failed at or before position @pos. */
static int reader_error(struct reader *r, size_t pos, struct gp_error *err)
{
	int ret = 0;

	pthread_mutex_lock(&r->mu);
	if (r->failed && r->fail_pos <= pos)
		ret = gp_error_copy(err, &r->err);
	pthread_mutex_unlock(&r->mu);
	return ret;
}

static int reader_start(struct reader *r, struct gp_error *err)
{
	int e;

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	for (size_t i = 0; i < READER_SLOTS; i++) {
		r->ring[i].data = malloc(HASH_CHUNK);
		if (!r->ring[i].data)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	e = pthread_create(&r->thread, NULL, reader_main, r);
	if (e)
		return gp_error_set_errno(err, GP_ERR_NOMEM, e, "cannot start the source reader thread");
	return 0;
}

/* Stop the reader (when it was started: @started) and free the ring. */
static void reader_stop(struct reader *r, bool started)
{
	if (started) {
		pthread_mutex_lock(&r->mu);
		r->quit = true;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->thread, NULL);
	}
	for (size_t i = 0; i < READER_SLOTS; i++)
		free(r->ring[i].data);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
}

/* gp_ntfs_cat() sink comparing the guest bytes with the reader's. */
struct compare_sink {
	struct reader *r;
	size_t pos;
	size_t off;             /* bytes of the head slot already compared */
	bool differ;
};

static int compare_sink_write(const void *buf, size_t len, void *ctx)
{
	struct compare_sink *c = ctx;
	const uint8_t *p = buf;

	while (len) {
		struct reader_slot *slot = reader_next(c->r, c->pos);
		size_t n;

		if (!slot)
			return GP_ERR_ABORTED;  /* the reader failed: see reader_error() */
		n = slot->len - c->off < len ? slot->len - c->off : len;
		if (slot->end || memcmp(p, slot->data + c->off, n)) {
			/* The host file ended early, or the bytes differ: no
			 * need to read further. */
			c->differ = true;
			return GP_ERR_ABORTED;
		}
		p += n;
		len -= n;
		c->off += n;
		if (c->off == slot->len) {
			c->off = 0;
			reader_release(c->r);
		}
	}
	return 0;
}

/* Compare guest file @f with the reader's bytes of position @pos. Sets
 * *@same; returns 0 or the error that stops verify (the reader's error on
 * this file wins over the guest's, as the source is checked first). */
static int compare_bytes(struct gp_ntfs *v, const struct gp_inject_file *f, struct reader *r,
			 size_t pos, bool *same, struct gp_error *err)
{
	struct compare_sink c = { .r = r, .pos = pos };
	int ret = gp_ntfs_cat(v, f->guest_path, compare_sink_write, &c);

	*same = false;
	if (ret && c.differ) {
		ret = 0;
	} else if (ret) {
		ret = reader_error(r, pos, err);
		if (!ret)
			ret = gp_error_copy(err, gp_ntfs_error(v));
	} else {
		/* The guest file ended: so must the host file, right here. */
		struct reader_slot *slot = reader_next(r, pos);

		if (!slot)
			ret = reader_error(r, pos, err);
		else
			*same = slot->end && !c.differ;
	}
	reader_done_with(r, pos);
	return ret;
}

int gp_inject_verify(struct gp_ntfs *v, const struct gp_inject_set *set,
		     struct gp_inject_stream *src, const struct gp_progress *progress,
		     struct gp_verify_report *rep, struct gp_error *err)
{
	struct gp_progress_info info = { .stage = "verify", .total_bytes = set->total_bytes,
					 .total_files = set->count };
	struct reader r = { .src = src, .set = set };
	struct sha_ctx sc = { 0 };
	size_t first_bad = set->count, stat_fail = set->count, n_todo = 0, pos = 0;
	struct gp_error stat_err = { 0 };
	size_t *todo = NULL;
	bool *check = NULL, threaded, started = false;
	int ret;

	memset(rep, 0, sizeof(*rep));
	rep->states = calloc(set->count ? set->count : 1, sizeof(*rep->states));
	rep->guest_sizes = calloc(set->count ? set->count : 1, sizeof(*rep->guest_sizes));
	todo = calloc(set->count ? set->count : 1, sizeof(*todo));
	check = calloc(set->count ? set->count : 1, sizeof(*check));
	if (!rep->states || !rep->guest_sizes || !todo || !check) {
		free(todo);
		free(check);
		gp_verify_report_free(rep);
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	/* Sizes first (cheap, guest only): the files whose content must be
	 * compared are known before the reader starts, so it reads exactly
	 * those, in order. A failed stat ends the list there; its error is
	 * reported when the loop below reaches that file, as before. */
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		struct gp_ntfs_stat st;
		int r2 = gp_ntfs_stat(v, f->guest_path, &st);

		if (r2 == GP_ERR_NOTFOUND) {
			rep->states[i] = GP_VERIFY_MISSING;
		} else if (r2) {
			gp_error_copy(&stat_err, gp_ntfs_error(v));
			stat_fail = i;
			break;
		} else {
			rep->guest_sizes[i] = st.size;
			if (st.is_dir || st.size != f->size) {
				rep->states[i] = GP_VERIFY_SIZE;
			} else {
				check[i] = true;
				todo[n_todo++] = i;
			}
		}
	}
	ret = 0;
	threaded = src->ops->open_fd && n_todo;
	if (threaded) {
		r.todo = todo;
		r.n_todo = n_todo;
		ret = reader_start(&r, err);
		started = ret == 0;
	}
	if (!ret)
		ret = gp_progress_call(progress, GP_PROGRESS_BEGIN, &info, err);
	for (size_t i = 0; !ret && i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];

		info.path = f->guest_path;
		ret = gp_progress_call(progress, GP_PROGRESS_FILE, &info, err);
		if (ret)
			break;
		if (i == stat_fail) {
			ret = gp_error_copy(err, &stat_err);
			break;
		}
		if (check[i]) {
			bool same;

			if (started) {
				ret = compare_bytes(v, f, &r, pos++, &same, err);
			} else {
				uint8_t want[32], have[32];

				ret = src->ops->expected(src, f, want, err);
				if (!ret)
					ret = guest_sha256(v, f->guest_path, &sc, have, err);
				same = !ret && !memcmp(want, have, 32);
			}
			if (ret)
				break;
			if (!same)
				rep->states[i] = GP_VERIFY_HASH;
		}
		if (rep->states[i] != GP_VERIFY_OK) {
			rep->n_bad++;
			if (first_bad == set->count)
				first_bad = i;
		}
		info.done_files++;
		info.done_bytes += f->size;
	}
	if (threaded)
		reader_stop(&r, started);
	sha_ctx_free(&sc);
	free(todo);
	free(check);
	if (!ret)
		ret = gp_inject_find_stale(v, set, &rep->stale, &rep->stale_bytes, &rep->n_stale, err);
	if (!ret)
		ret = gp_progress_call(progress, GP_PROGRESS_END, &info, err);
	if (!ret && rep->n_bad)
		ret = gp_error_set(err, GP_ERR_MISMATCH, "%s: %s (%zu of %zu files differ)",
				   set->files[first_bad].guest_path,
				   gp_verify_state_name(rep->states[first_bad]), rep->n_bad, set->count);
	/* The report means something only after 0 or MISMATCH (inject.h);
	 * after any other failure the caller gets nothing to free. */
	if (ret && ret != GP_ERR_MISMATCH)
		gp_verify_report_free(rep);
	return ret;
}

void gp_verify_report_free(struct gp_verify_report *rep)
{
	if (!rep)
		return;
	free(rep->states);
	free(rep->guest_sizes);
	for (size_t i = 0; i < rep->n_stale; i++)
		free(rep->stale[i]);
	free(rep->stale);
	free(rep->stale_bytes);
	memset(rep, 0, sizeof(*rep));
}
