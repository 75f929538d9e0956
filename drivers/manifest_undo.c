/*
 * manifest_undo.c — reading the guest record back: verify's check of the
 * record against the guest, and unprepare. See manifest.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hive.h"
#include "manifest_priv.h"

/* A hive file is at most this large (Windows' own limit is 2 GiB for
 * SYSTEM; real ones are tens of MB). */
#define HIVE_MAX (512u << 20)

/* Does guest file @path exist with SHA-256 @want? *@state: 0 yes, 1 missing,
 * 2 other bytes. Returns 0 or the volume's codes. */
static int file_state(struct gp_ntfs *v, const char *path, const uint8_t want[32], int *state,
		      struct gp_error *err)
{
	struct gp_ntfs_stat st;
	uint8_t have[32];
	int ret = gp_ntfs_stat(v, path, &st);

	if (ret == GP_ERR_NOTFOUND || (!ret && st.is_dir)) {
		gp_ntfs_clear_error(v);
		*state = 1;
		return 0;
	}
	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	ret = gp_inject_guest_sha256(v, path, have, err);
	if (ret)
		return ret;
	*state = memcmp(have, want, 32) ? 2 : 0;
	return 0;
}

/* ---- verify ------------------------------------------------------------ */

void gp_manifest_check_free(struct gp_manifest_check *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_bad; i++)
		free(c->bad[i]);
	free(c->bad);
	memset(c, 0, sizeof(*c));
}

static int add_bad(struct gp_manifest_check *c, const char *path, const char *what)
{
	char *line;
	int ret;

	if (asprintf(&line, "%s: %s", path, what) < 0)
		return GP_ERR_NOMEM;
	ret = gp_manifest_add_string(&c->bad, &c->n_bad, line);
	free(line);
	return ret;
}

int gp_manifest_check(struct gp_ntfs *v, struct gp_manifest_check *c, struct gp_error *err)
{
	struct gp_manifest m;
	int ret, state;

	memset(c, 0, sizeof(*c));
	ret = gp_manifest_read(v, &m, &c->found, err);
	if (ret || !c->found)
		return ret;
	c->n_files = m.n_files;
	for (size_t i = 0; !ret && i < m.n_files; i++) {
		const struct gp_manifest_file *f = &m.files[i];

		if (f->has_sha256) {
			ret = file_state(v, f->path, f->sha256, &state, err);
			if (!ret && state)
				ret = add_bad(c, f->path, state == 1 ? "recorded in the manifest, missing"
							 : "content differs from the manifest (SHA-256)");
		}
		if (!ret && f->action == GP_MANIFEST_REPLACED) {
			ret = file_state(v, f->backup, f->orig_sha256, &state, err);
			if (!ret && state)
				ret = add_bad(c, f->backup, state == 1 ? "backup missing"
							   : "backup differs from the original it keeps (SHA-256)");
		}
	}
	gp_manifest_free(&m);
	if (ret == GP_ERR_NOMEM)
		gp_error_set(err, ret, "out of memory");
	if (!ret && c->n_bad)
		ret = gp_error_set(err, GP_ERR_MISMATCH, "%s (%zu findings against %s)", c->bad[0],
				   c->n_bad, GP_MANIFEST_PATH);
	if (ret && ret != GP_ERR_MISMATCH)
		gp_manifest_check_free(c);
	return ret;
}

/* ---- unprepare --------------------------------------------------------- */

void gp_undo_plan_free(struct gp_undo_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n_steps; i++)
		free(plan->steps[i].hive);
	gp_manifest_free(&plan->m);
	free(plan->steps);
	memset(plan, 0, sizeof(*plan));
}

static struct gp_undo_step *add_step(struct gp_undo_plan *p, enum gp_undo_action a,
				     const char *path, const struct gp_manifest_file *f)
{
	struct gp_undo_step *s = &p->steps[p->n_steps++];

	s->action = a;
	s->path = path;
	s->file = f;
	return s;
}

/* The recorded registry state of hive @path put back, as new hive bytes
 * (a step). */
static int plan_hive(struct gp_ntfs *v, struct gp_undo_plan *p, const char *path,
		     struct gp_ntfs_space *sp, struct gp_error *err)
{
	struct gp_hive *h = NULL;
	uint8_t *buf = NULL, *out = NULL;
	size_t len, out_len;
	bool side;
	int ret = gp_manifest_read_hive(v, path, &buf, &len, &side, err);

	if (!ret)
		ret = gp_hive_open(buf, len, path, &h, err);
	for (size_t i = 0; !ret && i < p->m.n_regs; i++) {
		const struct gp_manifest_reg *r = &p->m.regs[i];

		if (strcasecmp(r->hive, path))
			continue;
		if (r->key_created) {
			ret = gp_hive_delete_key(h, r->key, err);
			continue;
		}
		for (size_t k = 0; !ret && k < r->n_values; k++) {
			const struct gp_manifest_reg_value *rv = &r->values[k];

			ret = rv->existed ? gp_hive_set(h, r->key, rv->name, rv->type, rv->data,
						      rv->len, err)
					  : gp_hive_delete_value(h, r->key, rv->name, err);
		}
	}
	if (!ret)
		ret = gp_hive_bytes(h, &out, &out_len, err);
	gp_hive_close(h);
	if (!ret) {
		struct gp_undo_step *s = add_step(p, GP_UNDO_HIVE, path, NULL);

		s->hive = out;
		s->hive_len = out_len;
		p->n_hives++;
		struct gp_ntfs_stat st;

		gp_ntfs_space_add_file(v, sp, "hive.gpup-new", out_len, true, 0);
		if (gp_ntfs_stat(v, path, &st) == 0)
			gp_ntfs_space_add_file(v, sp, "hive", out_len, false, st.allocated);
		gp_ntfs_clear_error(v);
	}
	free(buf);
	return ret;
}

/* A replaced file: restored unless it has the original bytes already; its
 * backup must hold them. */
static int plan_restore(struct gp_ntfs *v, struct gp_undo_plan *p, const struct gp_manifest_file *f,
			struct gp_ntfs_space *sp, struct gp_error *err)
{
	struct gp_ntfs_stat st;
	int state, ret = file_state(v, f->path, f->orig_sha256, &state, err);
	bool exists;

	if (ret || state == 0)
		return ret;
	ret = file_state(v, f->backup, f->orig_sha256, &state, err);
	if (ret)
		return ret;
	if (state)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: the backup of %s is %s; refusing to undo anything",
				    f->backup, f->path, state == 1 ? "missing" : "damaged (SHA-256)");
	exists = gp_ntfs_stat(v, f->path, &st) == 0;
	gp_ntfs_clear_error(v);
	gp_ntfs_space_add_file(v, sp, strrchr(f->path, '/') ? strrchr(f->path, '/') + 1 : f->path,
			       f->orig_size, !exists, exists ? st.allocated : 0);
	add_step(p, GP_UNDO_RESTORE, f->path, f);
	p->n_restore++;
	return 0;
}

int gp_undo_plan(struct gp_ntfs *v, struct gp_undo_plan *p, struct gp_error *err)
{
	struct gp_ntfs_space sp = { 0 };
	struct gp_ntfs_stat st;
	bool found;
	int ret;

	memset(p, 0, sizeof(*p));
	ret = gp_manifest_read(v, &p->m, &found, err);
	if (ret)
		return ret;
	if (!found)
		return gp_error_set(err, GP_ERR_NOTFOUND,
				    "no gpup manifest in the guest (%s): gpup has not prepared it, "
				    "or its changes were undone already; nothing to undo",
				    GP_MANIFEST_PATH_WINDOWS);
	p->steps = calloc(p->m.n_files + p->m.n_dirs + p->m.n_regs + 1, sizeof(*p->steps));
	if (!p->steps)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; !ret && i < p->m.n_files; i++)
		if (p->m.files[i].action == GP_MANIFEST_REPLACED)
			ret = plan_restore(v, p, &p->m.files[i], &sp, err);
	/* Each hive once, in the order first recorded. */
	for (size_t i = 0; !ret && i < p->m.n_regs; i++) {
		bool seen = false;

		for (size_t k = 0; k < i; k++)
			seen |= !strcasecmp(p->m.regs[k].hive, p->m.regs[i].hive);
		if (!seen)
			ret = plan_hive(v, p, p->m.regs[i].hive, &sp, err);
	}
	for (size_t i = 0; !ret && i < p->m.n_files; i++) {
		const struct gp_manifest_file *f = &p->m.files[i];
		bool in_dir = false;

		/* A file in a directory gpup made goes with the directory. */
		for (size_t k = 0; k < p->m.n_dirs; k++)
			in_dir |= gp_manifest_path_under(f->path, p->m.dirs[k]);
		if (f->action != GP_MANIFEST_ADDED || in_dir)
			continue;
		if (gp_ntfs_stat(v, f->path, &st) == 0 && !st.is_dir) {
			add_step(p, GP_UNDO_REMOVE_FILE, f->path, f);
			p->n_remove++;
		}
		gp_ntfs_clear_error(v);
	}
	for (size_t i = 0; !ret && i < p->m.n_dirs; i++) {
		if (gp_ntfs_stat(v, p->m.dirs[i], &st) == 0 && st.is_dir) {
			add_step(p, GP_UNDO_REMOVE_DIR, p->m.dirs[i], NULL);
			p->n_dirs++;
		}
		gp_ntfs_clear_error(v);
	}
	if (!ret && (p->n_restore || p->n_hives)) {
		ret = gp_ntfs_space_check(v, &sp);
		if (ret)
			gp_error_copy(err, gp_ntfs_error(v));
	}
	p->space_need = sp.need;
	p->space_have = sp.have;
	return ret;
}

/* Remove @path when it exists. */
static int remove_if_there(struct gp_ntfs *v, const char *path, bool recursive,
			   struct gp_error *err)
{
	struct gp_ntfs_stat st;

	if (gp_ntfs_stat(v, path, &st)) {
		gp_ntfs_clear_error(v);
		return 0;
	}
	return gp_ntfs_remove(v, path, recursive) ? gp_error_copy(err, gp_ntfs_error(v)) : 0;
}

int gp_undo_commit(struct gp_ntfs *v, const struct gp_undo_plan *p, struct gp_error *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < p->n_steps; i++) {
		const struct gp_undo_step *s = &p->steps[i];

		switch (s->action) {
		case GP_UNDO_RESTORE:
			ret = gp_manifest_copy(v, s->file->backup, s->path, s->file->orig_mtime,
					       s->file->orig_sha256, err);
			break;
		case GP_UNDO_REMOVE_FILE:
			ret = remove_if_there(v, s->path, false, err);
			break;
		case GP_UNDO_REMOVE_DIR:
			ret = remove_if_there(v, s->path, true, err);
			break;
		case GP_UNDO_HIVE:
			ret = gp_manifest_write_hive(v, s->path, s->hive, s->hive_len, err);
			break;
		}
	}
	/* The record goes last: until then a rerun finds what is left. */
	if (!ret)
		ret = remove_if_there(v, GP_MANIFEST_BACKUP_DIR, true, err);
	if (!ret)
		ret = remove_if_there(v, GP_MANIFEST_NEW, false, err);
	if (!ret)
		ret = remove_if_there(v, GP_MANIFEST_PATH, false, err);
	if (!ret)
		ret = remove_if_there(v, GP_MANIFEST_DIR, true, err);
	return ret;
}

/* ---- hives ------------------------------------------------------------- */

/* Is @buf a hive hivex opens (a side copy written in full)? */
static bool complete_hive(const uint8_t *buf, size_t len, const char *name)
{
	struct gp_error e = { 0 };
	struct gp_hive *h;

	if (gp_hive_open(buf, len, name, &h, &e))
		return false;
	gp_hive_close(h);
	return true;
}

int gp_manifest_read_hive(struct gp_ntfs *v, const char *path, uint8_t **buf, size_t *len,
			  bool *side, struct gp_error *err)
{
	char *next;
	void *b = NULL;
	int ret;

	/* A complete side copy is the newest hive: a write of @path after it
	 * was stopped (gp_manifest_write_hive()). */
	if (asprintf(&next, "%s.gpup-new", path) < 0)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	ret = gp_ntfs_read_file(v, next, HIVE_MAX, &b, len);
	gp_ntfs_clear_error(v);
	*side = !ret && complete_hive(b, *len, next);
	if (*side) {
		free(next);
		*buf = b;
		return 0;
	}
	free(b);
	free(next);
	ret = gp_ntfs_read_file(v, path, HIVE_MAX, &b, len);
	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	*buf = b;
	return 0;
}

int gp_manifest_write_hive(struct gp_ntfs *v, const char *path, const uint8_t *buf, size_t len,
			   struct gp_error *err)
{
	char *next;
	int ret;

	if (asprintf(&next, "%s.gpup-new", path) < 0)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	ret = gp_manifest_write_twice(v, next, path, buf, len, false, err);
	free(next);
	return ret;
}
