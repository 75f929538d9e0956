/* source.c — a DriverStore or a bundle behind one interface. See source.h. */
#include "source.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bundle.h"
#include "gpus.h"
#include "store_priv.h"

struct gp_source {
	const char *kind;
	const char *path;
	struct gp_store *store;
	struct gp_resolution *res;
	struct gp_inject_set *set;        /* owned */
	struct gp_bundle *bundle;
	/* gp_source_preload(): the set's bytes, file i at mem + off[i]. */
	uint8_t *mem;
	uint64_t *off;
};

/* Does the GPU the user named fit one of the bundle's hardware IDs?
 * A bundle made for VEN_10DE&DEV_2860 must not be injected for another
 * card just because the user pointed at it. */
static int check_bundle_gpu(struct gp_source *s, const char *gpu, struct gp_error *err)
{
	const struct gp_bundle_info *bi = gp_bundle_info(s->bundle);
	struct gp_gpu_selector sel;
	struct gp_gpu_id want, have;
	int ret;

	if (!gpu || bi->n_hardware_ids == 0)
		return 0;
	ret = gp_gpu_selector_parse(gpu, &sel, err);
	/* "auto", and a name: resolved against the bundle's INF, whose
	 * device descriptions are the names (resolve_bundle()). */
	if (ret || sel.kind == GP_GPU_SEL_AUTO || sel.kind == GP_GPU_SEL_NAME)
		return ret;
	ret = gp_gpu_id_parse(gpu, &want, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < bi->n_hardware_ids; i++) {
		struct gp_error ignore = { 0 };

		if (gp_gpu_id_parse(bi->hardware_ids[i], &have, &ignore))
			continue;
		if (have.ven == want.ven && have.dev == want.dev &&
		    (!have.has_subsys || !want.has_subsys || have.subsys == want.subsys))
			return 0;
	}
	return gp_error_set(err, GP_ERR_INVALID,
			    "%s: bundle was made for %s, not for GPU %s",
			    s->path, bi->hardware_ids[0], gpu);
}

static int cmp_guest(const void *key, const void *f)
{
	return strcmp(key, ((const struct gp_inject_file *)f)->guest_path);
}

static int cmp_files(const void *a, const void *b)
{
	return cmp_guest(((const struct gp_inject_file *)a)->guest_path, b);
}

/* The manifest file at guest path @guest: the exact path (the files are
 * sorted by it), else one differing in case (NTFS), or NULL. */
static const struct gp_inject_file *manifest_file(const struct gp_inject_set *all,
						  const char *guest)
{
	const struct gp_inject_file *f = guest ? bsearch(guest, all->files, all->count,
							 sizeof(*all->files), cmp_guest)
					       : NULL;

	for (size_t i = 0; guest && !f && i < all->count; i++)
		if (!strcasecmp(all->files[i].guest_path, guest))
			f = &all->files[i];
	return f;
}

/* A bundle may carry only files its INF can copy: every companion must be
 * one of @cand (the INF's files for every model and target), every
 * CopyINF folder one it names. Anything else (a manifest naming
 * System32's ntoskrnl.exe, say) is refused before it is believed. */
static int check_manifest(const struct gp_source *s, const struct gp_inject_set *all,
			  const struct gp_inject_set *cand, struct gp_error *err)
{
	for (size_t i = 0; i < all->count; i++) {
		const struct gp_inject_file *f = &all->files[i];
		bool found = false;

		if (f->role != GP_INJECT_COMPANION)
			continue;
		for (size_t k = 0; k < cand->count && !found; k++)
			found = !strcasecmp(cand->files[k].guest_path, f->guest_path);
		if (!found)
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: companion '%s' is no file that %s copies (for any "
					    "device or Windows build); refused", s->path, f->guest_path,
					    all->pkg->inf_name);
	}
	for (size_t i = 1; i < all->n_folders; i++) {
		bool found = false;

		for (size_t k = 0; k < cand->n_folders && !found; k++)
			found = !strcasecmp(cand->folders[k], all->folders[i]);
		if (!found)
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: package folder '%s' is named by no CopyINF of %s; refused",
					    s->path, all->folders[i], all->pkg->inf_name);
	}
	return 0;
}

/* Turn the set resolved from the bundle's listed store into one the bundle
 * streams: each file at its manifest entry's path, with its size, mtime and
 * SHA-256. A companion whose bytes the INF takes from a package file must
 * find those bytes in its own entry (a bundle made by gpup has them). */
static int bind_to_manifest(const struct gp_source *s, const struct gp_inject_set *all,
			    struct gp_error *err)
{
	struct gp_inject_set *set = s->set;

	set->total_bytes = 0;
	for (size_t i = 0; i < set->count; i++) {
		struct gp_inject_file *f = &set->files[i];
		const struct gp_inject_file *e = manifest_file(all, f->guest_path);
		const struct gp_inject_file *src = manifest_file(all, f->source_path);
		char *path;

		if (!e)
			return gp_error_set(err, GP_ERR_NOTFOUND,
					    "%s: the bundle lacks %s, which %s copies for this guest; "
					    "recreate it with this gpup", s->path, f->guest_path,
					    all->pkg->inf_name);
		if (src && memcmp(src->sha256, e->sha256, 32))
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: %s differs from %s, whose copy it is (%s); refused",
					    s->path, e->guest_path, src->guest_path, f->origin);
		path = strdup(e->guest_path);
		if (!path)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		free(f->guest_path);
		free(f->source_path);
		f->guest_path = path;
		f->source_path = NULL;
		f->size = e->size;
		f->mtime = e->mtime;
		f->has_sha256 = true;
		memcpy(f->sha256, e->sha256, 32);
		set->total_bytes += f->size;
	}
	/* In the manifest's spelling, the order may differ where only case
	 * did: the stream serves files in manifest order. */
	qsort(set->files, set->count, sizeof(*set->files), cmp_files);
	return 0;
}

/* A bundle of format 2 carries its package's INF and every file it may
 * copy: resolve the GPU and the files for this guest from it, with the
 * code that resolves a DriverStore (a listed store, store_priv.h). */
static int resolve_bundle(struct gp_source *s, const struct gp_source_opts *o,
			  struct gp_error *err)
{
	const struct gp_bundle_info *bi = gp_bundle_info(s->bundle);
	const struct gp_inject_set *all = gp_bundle_inject_set(s->bundle);
	struct gp_inject_opts every = { .allow_missing = true };
	struct gp_inject_opts io = { .allow_missing = o->allow_missing || all->n_missing };
	struct gp_inject_set *cand = NULL;
	const char *gpu = o->gpu && strcasecmp(o->gpu, "auto") ? o->gpu : bi->gpu;
	int ret;

	if (!bi->inf_text)
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: made by an older gpup (bundle format %u: its files were "
				    "chosen for one Windows build when it was made); recreate it "
				    "with 'gpup bundle create'", s->path, bi->format_version);
	ret = gp_store_listed(s->path, all->pkg, bi->inf_text, bi->inf_len, all->copyinf,
			      all->n_copyinf, all->files, all->count, &s->store, err);
	if (ret)
		return ret;
	ret = gp_store_injection_set(s->store, gp_store_package(s->store, 0), NULL, &every, &cand);
	if (!ret)
		ret = check_manifest(s, all, cand, err);
	else
		gp_error_copy(err, gp_store_error(s->store));
	gp_inject_set_free(cand);
	if (ret)
		return ret;
	ret = gp_store_resolve(s->store, gpu, &o->target, &s->res);
	if (!ret)
		ret = gp_store_injection_set(s->store, s->res->pkg, s->res->model, &io, &s->set);
	if (ret)
		return gp_error_copy(err, gp_store_error(s->store));
	return bind_to_manifest(s, all, err);
}

int gp_source_open(const struct gp_source_opts *o, struct gp_source **out,
		   struct gp_error *err)
{
	struct gp_source *s;
	int ret;

	*out = NULL;
	if (!!o->driverstore == !!o->bundle)
		return gp_error_set(err, GP_ERR_INVALID,
				    "give exactly one driver source: --driverstore DIR or --bundle FILE");
	s = calloc(1, sizeof(*s));
	if (!s)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	*out = s;
	if (o->bundle) {
		s->kind = "bundle";
		s->path = o->bundle;
		ret = gp_bundle_open(o->bundle, &s->bundle, err);
		if (!ret)
			ret = check_bundle_gpu(s, o->gpu, err);
		if (!ret)
			ret = resolve_bundle(s, o, err);
		return ret;
	}
	s->kind = "driverstore";
	s->path = o->driverstore;
	ret = gp_store_open(o->driverstore, &s->store, err);
	if (ret)
		return ret;
	ret = gp_store_resolve(s->store, o->gpu ? o->gpu : "auto", &o->target, &s->res);
	if (ret) {
		gp_error_copy(err, gp_store_error(s->store));
		return ret;
	}
	{
		struct gp_inject_opts io = { .allow_missing = o->allow_missing };

		ret = gp_store_injection_set(s->store, s->res->pkg, o->every_model ? NULL : s->res->model,
					     &io, &s->set);
		if (ret)
			gp_error_copy(err, gp_store_error(s->store));
	}
	return ret;
}

void gp_source_close(struct gp_source *s)
{
	if (!s)
		return;
	gp_inject_set_free(s->set);
	gp_resolution_free(s->res);
	gp_store_close(s->store);
	/* After the store: its listed files are the bundle's. */
	gp_bundle_close(s->bundle);
	free(s->mem);
	free(s->off);
	free(s);
}

const struct gp_inject_set *gp_source_set(const struct gp_source *s)
{
	return s->set;
}

const struct gp_resolution *gp_source_resolution(const struct gp_source *s) { return s->res; }
const char *gp_source_kind(const struct gp_source *s) { return s->kind; }
const char *gp_source_path(const struct gp_source *s) { return s->path; }
struct gp_bundle *gp_source_bundle(const struct gp_source *s) { return s->bundle; }

size_t gp_source_warning_count(const struct gp_source *s)
{
	return s->store ? gp_store_warning_count(s->store) : 0;
}

const char *gp_source_warning(const struct gp_source *s, size_t i)
{
	return gp_store_warning(s->store, i);
}

/* ---- The preloaded stream: files served from memory -------------------- */

struct mem_stream {
	const struct gp_source *src;
	ssize_t cur;           /* the open file's index, or -1 */
	uint64_t done;
};

/* The index of @f in the set: its own entry, or the one of its name. */
static ssize_t mem_index(const struct gp_source *s, const struct gp_inject_file *f)
{
	const struct gp_inject_set *set = s->set;

	if (f >= set->files && f < set->files + set->count)
		return f - set->files;
	for (size_t i = 0; i < set->count; i++)
		if (!strcmp(set->files[i].guest_path, f->guest_path))
			return (ssize_t)i;
	return -1;
}

static int mem_open(struct gp_inject_stream *st, const struct gp_inject_file *f,
		    struct gp_error *err)
{
	struct mem_stream *m = st->ctx;

	m->cur = mem_index(m->src, f);
	m->done = 0;
	if (m->cur < 0)
		return gp_error_set(err, GP_ERR_NOTFOUND, "%s: '%s' is not in the set", m->src->path,
				    f->guest_path);
	return 0;
}

static int64_t mem_read(struct gp_inject_stream *st, void *buf, size_t len, struct gp_error *err)
{
	struct mem_stream *m = st->ctx;
	uint64_t left;

	if (m->cur < 0)
		return gp_error_set(err, GP_ERR_INVALID, "%s: read without an open file", m->src->path);
	left = m->src->set->files[m->cur].size - m->done;
	if (len > left)
		len = (size_t)left;
	if (len > INT64_MAX)
		len = INT64_MAX;
	memcpy(buf, m->src->mem + m->src->off[m->cur] + m->done, len);
	m->done += len;
	return (int64_t)len;
}

static int mem_close(struct gp_inject_stream *st, const uint8_t sha256[32], struct gp_error *err)
{
	struct mem_stream *m = st->ctx;
	const struct gp_inject_file *f;

	if (m->cur < 0)
		return gp_error_set(err, GP_ERR_INVALID, "%s: close without an open file", m->src->path);
	f = &m->src->set->files[m->cur];
	m->cur = -1;
	if (m->done != f->size)
		return gp_error_set(err, GP_ERR_MISMATCH, "%s: file '%s': %llu of %llu bytes read",
				    m->src->path, f->guest_path, (unsigned long long)m->done,
				    (unsigned long long)f->size);
	/* The bytes were checked against the manifest when preloaded. */
	if (sha256 && f->has_sha256 && memcmp(sha256, f->sha256, 32))
		return gp_error_set(err, GP_ERR_MISMATCH, "%s: file '%s': the copied bytes differ",
				    m->src->path, f->guest_path);
	return 0;
}

static int mem_expected(struct gp_inject_stream *st, const struct gp_inject_file *f,
			uint8_t sha256[32], struct gp_error *err)
{
	struct mem_stream *m = st->ctx;
	ssize_t i = mem_index(m->src, f);

	if (i < 0 || !m->src->set->files[i].has_sha256)
		return gp_error_set(err, GP_ERR_INVALID, "%s: no digest for '%s'", m->src->path,
				    f->guest_path);
	memcpy(sha256, m->src->set->files[i].sha256, 32);
	return 0;
}

static void mem_destroy(struct gp_inject_stream *st)
{
	free(st->ctx);
	st->ctx = NULL;
}

static const struct gp_inject_stream_ops mem_stream_ops = {
	.open = mem_open,
	.read = mem_read,
	.close = mem_close,
	.expected = mem_expected,
	.destroy = mem_destroy,
};

/* Read file @i of the set through @st into s->mem + s->off[i]. */
static int preload_file(struct gp_source *s, struct gp_inject_stream *st, size_t i,
			struct gp_error *err)
{
	const struct gp_inject_file *f = &s->set->files[i];
	uint64_t done = 0;
	int ret = st->ops->open(st, f, err);

	while (!ret && done < f->size) {
		int64_t n = st->ops->read(st, s->mem + s->off[i] + done, f->size - done, err);

		if (n < 0)
			ret = (int)n;
		else if (n == 0)
			break;
		else
			done += (uint64_t)n;
	}
	if (!ret)
		ret = st->ops->close(st, NULL, err);
	return ret;
}

int gp_source_preload(struct gp_source *s, uint64_t max_bytes, bool *loaded,
		      struct gp_error *err)
{
	struct gp_inject_stream st = { 0 };
	uint64_t total = 0;
	int ret;

	*loaded = false;
	if (!s->bundle || s->mem)
		return 0;
	for (size_t i = 0; i < s->set->count; i++)
		total += s->set->files[i].size;
	if (total > max_bytes)
		return 0;
	s->off = calloc(s->set->count ? s->set->count : 1, sizeof(*s->off));
	s->mem = malloc(total ? total : 1);
	if (!s->off || !s->mem) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: no memory for %llu bytes", s->path,
				   (unsigned long long)total);
		goto fail;
	}
	for (size_t i = 1; i < s->set->count; i++)
		s->off[i] = s->off[i - 1] + s->set->files[i - 1].size;
	ret = gp_bundle_stream(s->bundle, &st, err);
	for (size_t i = 0; !ret && i < s->set->count; i++)
		ret = preload_file(s, &st, i, err);
	if (!ret && st.ops->finish)
		ret = st.ops->finish(&st, err);
	if (st.ops && st.ops->destroy)
		st.ops->destroy(&st);
	if (!ret) {
		*loaded = true;
		return 0;
	}
fail:
	free(s->mem);
	free(s->off);
	s->mem = NULL;
	s->off = NULL;
	return ret;
}

int gp_source_stream(struct gp_source *s, struct gp_inject_stream *out, struct gp_error *err)
{
	if (s->mem) {
		struct mem_stream *m = calloc(1, sizeof(*m));

		if (!m)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		m->src = s;
		m->cur = -1;
		out->ops = &mem_stream_ops;
		out->ctx = m;
		return 0;
	}
	if (s->bundle)
		return gp_bundle_stream(s->bundle, out, err);
	return gp_inject_stream_host(out, err);
}
