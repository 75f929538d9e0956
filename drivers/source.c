/* source.c — a DriverStore or a bundle behind one interface. See source.h. */
#include "source.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bundle.h"

struct gp_source {
	const char *kind;
	const char *path;
	struct gp_store *store;
	struct gp_resolution *res;
	struct gp_inject_set *set;        /* owned when from a store */
	struct gp_bundle *bundle;
};

/* Does the GPU the user named fit one of the bundle's hardware IDs?
 * A bundle made for VEN_10DE&DEV_2860 must not be injected for another
 * card just because the user pointed at it. */
static int check_bundle_gpu(struct gp_source *s, const char *gpu, struct gp_error *err)
{
	const struct gp_bundle_info *bi = gp_bundle_info(s->bundle);
	struct gp_gpu_id want, have;
	int ret;

	if (!gpu || strcasecmp(gpu, "auto") == 0 || bi->n_hardware_ids == 0)
		return 0;
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

		ret = gp_store_injection_set(s->store, s->res->pkg, s->res->model, &io, &s->set);
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
	gp_bundle_close(s->bundle);
	free(s);
}

const struct gp_inject_set *gp_source_set(const struct gp_source *s)
{
	if (s->bundle)
		return gp_bundle_inject_set(s->bundle);
	return s->set;
}

const struct gp_resolution *gp_source_resolution(const struct gp_source *s) { return s->res; }
const char *gp_source_kind(const struct gp_source *s) { return s->kind; }
const char *gp_source_path(const struct gp_source *s) { return s->path; }

size_t gp_source_warning_count(const struct gp_source *s)
{
	return s->store ? gp_store_warning_count(s->store) : 0;
}

const char *gp_source_warning(const struct gp_source *s, size_t i)
{
	return gp_store_warning(s->store, i);
}

int gp_source_stream(struct gp_source *s, struct gp_inject_stream *out, struct gp_error *err)
{
	if (s->bundle)
		return gp_bundle_stream(s->bundle, out, err);
	return gp_inject_stream_host(out, err);
}
