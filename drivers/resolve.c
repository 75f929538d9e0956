/* resolve.c — GPU identities and choosing the display package for a GPU,
 * ranked the way Windows ranks drivers. See store.h. */
#include "store_priv.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- GPU identities ------------------------------------------------------ */

/* Parse @n hex digits exactly (the token's whole length). */
static bool hex_exact(const char *s, size_t len, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int c = tolower((unsigned char)s[i]);
		if (c >= '0' && c <= '9')
			v = (v << 4) | (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = (v << 4) | (uint32_t)(c - 'a' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

/* Parse "VEN_10DE&DEV_2860&SUBSYS_...&REV_.." (s[0..len)). Unknown tokens
 * (CC_0300, ...) mark the ID as a compatible ID: *other set. Returns false
 * when VEN or DEV is missing or a known token is malformed. */
static bool parse_pci_tokens(const char *s, size_t len, struct gp_gpu_id *id, bool *other)
{
	bool ven = false, dev = false;
	size_t i = 0;

	memset(id, 0, sizeof(*id));
	*other = false;
	while (i <= len) {
		size_t j = i;
		uint32_t v;
		while (j < len && s[j] != '&')
			j++;
		const char *t = s + i;
		size_t tl = j - i;
		if (tl > 4 && strncasecmp(t, "VEN_", 4) == 0) {
			if (ven || !hex_exact(t + 4, tl - 4, 4, &v))
				return false;
			id->ven = (uint16_t)v;
			ven = true;
		} else if (tl > 4 && strncasecmp(t, "DEV_", 4) == 0) {
			if (dev || !hex_exact(t + 4, tl - 4, 4, &v))
				return false;
			id->dev = (uint16_t)v;
			dev = true;
		} else if (tl > 7 && strncasecmp(t, "SUBSYS_", 7) == 0) {
			if (id->has_subsys || !hex_exact(t + 7, tl - 7, 8, &v))
				return false;
			id->subsys = v;
			id->has_subsys = true;
		} else if (tl > 4 && strncasecmp(t, "REV_", 4) == 0) {
			if (id->has_rev || !hex_exact(t + 4, tl - 4, 2, &v))
				return false;
			id->rev = (uint8_t)v;
			id->has_rev = true;
		} else {
			*other = true;
		}
		i = j + 1;
	}
	return ven && dev;
}

int gp_gpu_id_parse(const char *text, struct gp_gpu_id *out, struct gp_error *err)
{
	const char *p = text, *end;
	bool other;

	if (!text || !*text)
		return gp_error_set(err, GP_ERR_INVALID, "empty GPU identifier");
	/* "\\?\PCI#VEN_..&..#4&...#{guid}" (Get-VMHostPartitionableGpu Name) */
	if (strncmp(p, "\\\\?\\", 4) == 0 || strncmp(p, "\\\\.\\", 4) == 0)
		p += 4;
	if (strncasecmp(p, "PCI", 3) == 0 && (p[3] == '#' || p[3] == '\\'))
		p += 4;
	/* The ID ends at the next '#' or '\' (instance part follows). */
	end = p + strcspn(p, "#\\");
	if (!parse_pci_tokens(p, (size_t)(end - p), out, &other))
		return gp_error_set(err, GP_ERR_INVALID,
				    "'%s' is not a PCI GPU identifier (want an instance path "
				    "\\\\?\\PCI#VEN_xxxx&DEV_xxxx... or a hardware ID "
				    "PCI\\VEN_xxxx&DEV_xxxx[&SUBSYS_xxxxxxxx][&REV_xx])", text);
	return 0;
}

void gp_gpu_id_format(const struct gp_gpu_id *id, char *buf, size_t size)
{
	int n = snprintf(buf, size, "PCI\\VEN_%04X&DEV_%04X", id->ven, id->dev);

	if (n > 0 && (size_t)n < size && id->has_subsys)
		n += snprintf(buf + n, size - (size_t)n, "&SUBSYS_%08X", (unsigned)id->subsys);
	if (n > 0 && (size_t)n < size && id->has_rev)
		snprintf(buf + n, size - (size_t)n, "&REV_%02X", id->rev);
}

/* How an INF hardware ID matches the GPU. An INF ID names the fields it
 * requires; the device reports IDs with and without SUBSYS/REV, so an
 * INF ID matches when every field it names equals the GPU's. */
static enum gp_match_rank match_id(const char *inf_id, const struct gp_gpu_id *gpu)
{
	struct gp_gpu_id id;
	bool other;

	if (strncasecmp(inf_id, "PCI\\", 4) != 0)
		return GP_MATCH_NONE;
	if (!parse_pci_tokens(inf_id + 4, strlen(inf_id + 4), &id, &other) || other)
		return GP_MATCH_NONE;
	if (id.ven != gpu->ven || id.dev != gpu->dev)
		return GP_MATCH_NONE;
	if (id.has_subsys && (!gpu->has_subsys || id.subsys != gpu->subsys))
		return GP_MATCH_NONE;
	if (id.has_rev && (!gpu->has_rev || id.rev != gpu->rev))
		return GP_MATCH_NONE;
	if (id.has_subsys)
		return id.has_rev ? GP_MATCH_VEN_DEV_SUBSYS_REV : GP_MATCH_VEN_DEV_SUBSYS;
	return id.has_rev ? GP_MATCH_VEN_DEV_REV : GP_MATCH_VEN_DEV;
}

static const char *rank_name(enum gp_match_rank r)
{
	switch (r) {
	case GP_MATCH_NONE: return "no match";
	case GP_MATCH_VEN_DEV: return "VEN&DEV";
	case GP_MATCH_VEN_DEV_REV: return "VEN&DEV&REV";
	case GP_MATCH_VEN_DEV_SUBSYS: return "VEN&DEV&SUBSYS";
	case GP_MATCH_VEN_DEV_SUBSYS_REV: return "VEN&DEV&SUBSYS&REV";
	}
	return "?";
}

const char *gp_candidate_verdict_name(enum gp_candidate_verdict v)
{
	switch (v) {
	case GP_CAND_CHOSEN: return "chosen";
	case GP_CAND_NOT_DISPLAY: return "not a display driver";
	case GP_CAND_NO_MATCH: return "no matching hardware ID";
	case GP_CAND_TARGET_OS: return "TargetOS does not fit the guest";
	case GP_CAND_LESS_SPECIFIC: return "less specific match";
	case GP_CAND_OLDER: return "older DriverVer";
	case GP_CAND_TIE: return "tie, lost on folder name";
	}
	return "?";
}

/* ---- TargetOS ------------------------------------------------------------ */

/* The guest is Windows 10 / 11 (NT 10.0) — GPU-P needs it. A decoration
 * fits when its arch is the guest's (or absent: then the package folder's
 * arch must be the guest's), it asks for no newer OS than 10.0, and its
 * build is not above the guest's (build 0 = newest guest: anything fits). */
bool gp_target_fits(const struct gp_target_os *t, const struct gp_package *pkg,
		    const char *arch, uint32_t build)
{
	if (*t->arch ? strcasecmp(t->arch, arch) != 0 : strcasecmp(pkg->arch, arch) != 0)
		return false;
	if (t->major > 10 || (t->major == 10 && t->minor > 0))
		return false;
	if (build && t->build > build)
		return false;
	return true;
}

/* ---- ranking ------------------------------------------------------------- */

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

/* Score of one candidate before the verdict: */
struct score {
	bool display;
	bool fits_some;     /* some TargetOS fits the guest */
	bool matched_any;   /* some model matches, fitting or not */
	const char *unfit_deco; /* a decoration of a matching but unfit model */
};

/* Best ranking across all packages: rank desc, date/version desc, folder desc. */
static int cmp_cand(const struct gp_candidate *a, const struct gp_candidate *b)
{
	int c;

	if ((a->rank == GP_MATCH_NONE) != (b->rank == GP_MATCH_NONE))
		return a->rank != GP_MATCH_NONE ? -1 : 1;
	if (a->compatible != b->compatible)
		return a->compatible ? 1 : -1;
	if (a->rank != b->rank)
		return a->rank > b->rank ? -1 : 1;
	if (a->rank == GP_MATCH_NONE) {
		/* Non-candidates: display first, then folder name. */
		if (a->pkg->is_display != b->pkg->is_display)
			return a->pkg->is_display ? -1 : 1;
		return strcmp(a->pkg->folder, b->pkg->folder);
	}
	c = gp_package_cmp_version(a->pkg, b->pkg);
	if (c)
		return -c;
	return -strcmp(a->pkg->folder, b->pkg->folder);
}

static int qsort_cand(const void *a, const void *b)
{
	return cmp_cand(a, b);
}

void gp_resolution_free(struct gp_resolution *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_cands; i++)
		free(r->cands[i].why);
	free(r->cands);
	free(r);
}

static const char *ver_text(const struct gp_package *p, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", *p->driver_ver_date ? p->driver_ver_date : "(no date)",
		 *p->driver_ver_version ? p->driver_ver_version : "(no version)");
	return buf;
}

/* Verdict and explanation of every candidate after sorting (cands[0] is
 * the best, and the chosen one when r->pkg is set). */
static bool explain(struct gp_resolution *r, const struct score *sc, const char *arch,
		    uint32_t build, const char *gpu_text)
{
	const struct gp_candidate *best = r->pkg ? &r->cands[0] : NULL;
	char v1[64], v2[64], guest[48];

	if (build)
		snprintf(guest, sizeof(guest), "%s, build %u", arch, (unsigned)build);
	else
		snprintf(guest, sizeof(guest), "%s, newest build", arch);

	for (size_t i = 0; i < r->n_cands; i++) {
		struct gp_candidate *c = &r->cands[i];
		const struct gp_package *p = c->pkg;
		const struct score *s = &sc[i];

		if (best && c == best) {
			c->verdict = GP_CAND_CHOSEN;
			if (c->model)
				c->why = fmt("chosen: %s (%s%s) in [%s], DriverVer %s", c->matched_id,
					     rank_name(c->rank), c->compatible ? ", compatible ID" : "",
					     p->targets[c->model->target].models_section,
					     ver_text(p, v1, sizeof(v1)));
			else
				c->why = fmt("chosen: the newest display driver of the only GPU vendor "
					     "in the store, DriverVer %s", ver_text(p, v1, sizeof(v1)));
		} else if (!s->display) {
			c->verdict = GP_CAND_NOT_DISPLAY;
			c->why = fmt("lost: not a display driver (Class %s, ClassGuid %s)",
				     *p->class_name ? p->class_name : "(none)",
				     *p->class_guid ? p->class_guid : "(none)");
		} else if (c->rank == GP_MATCH_NONE && !s->fits_some) {
			c->verdict = GP_CAND_TARGET_OS;
			c->why = fmt("lost: no TargetOS fits the guest (%s); package arch %s",
				     guest, p->arch);
		} else if (r->automatic && c->rank == GP_MATCH_NONE && !s->matched_any) {
			c->verdict = GP_CAND_NO_MATCH;
			c->why = fmt("lost: drives no PCI GPU (no PCI\\VEN_xxxx&DEV_xxxx hardware ID)");
		} else if (r->automatic && c->rank == GP_MATCH_NONE) {
			c->verdict = GP_CAND_NO_MATCH;
			c->why = fmt("lost: --gpu auto found display drivers for several GPU vendors; "
				     "name the GPU");
		} else if (c->rank == GP_MATCH_NONE && s->matched_any) {
			c->verdict = GP_CAND_TARGET_OS;
			c->why = fmt("lost: %s matches only under TargetOS %s, which does not fit the "
				     "guest (%s)", gpu_text, s->unfit_deco ? s->unfit_deco : "?", guest);
		} else if (c->rank == GP_MATCH_NONE && gpu_text) {
			c->verdict = GP_CAND_NO_MATCH;
			c->why = fmt("lost: no model matches %s", gpu_text);
		} else if (c->rank == GP_MATCH_NONE) {
			c->verdict = GP_CAND_NO_MATCH;
			c->why = fmt("lost: not chosen");
		} else if (best && c->compatible && !best->compatible) {
			c->verdict = GP_CAND_LESS_SPECIFIC;
			c->why = fmt("lost: %s matches only the compatible ID %s; the chosen package "
				     "matches a hardware ID", p->folder, c->matched_id);
		} else if (best && c->rank < best->rank) {
			c->verdict = GP_CAND_LESS_SPECIFIC;
			c->why = fmt("lost: %s matches %s (%s), less specific than the chosen %s",
				     p->folder, c->matched_id ? c->matched_id : "?", rank_name(c->rank),
				     rank_name(best->rank));
		} else if (best && gp_package_cmp_version(p, best->pkg) < 0) {
			c->verdict = GP_CAND_OLDER;
			c->why = fmt("lost: DriverVer %s is older than the chosen %s",
				     ver_text(p, v1, sizeof(v1)), ver_text(best->pkg, v2, sizeof(v2)));
		} else if (best) {
			c->verdict = GP_CAND_TIE;
			c->why = fmt("lost: same match and DriverVer %s as the chosen package; the "
				     "greater folder name wins", ver_text(p, v1, sizeof(v1)));
		} else {
			c->verdict = GP_CAND_NO_MATCH;
			c->why = fmt("lost: not chosen");
		}
		if (!c->why)
			return false;
	}
	return true;
}

/* Score every package for a given GPU. */
static void score_for_gpu(struct gp_store *s, const struct gp_gpu_id *gpu, const char *arch,
			  uint32_t build, struct gp_candidate *cands, struct score *sc)
{
	for (size_t i = 0; i < s->n_pkgs; i++) {
		const struct gp_package *p = s->pkgs[i];
		struct gp_candidate *c = &cands[i];
		uint32_t best_build = 0;

		c->pkg = p;
		sc[i].display = p->is_display;
		for (size_t t = 0; t < p->n_targets; t++)
			if (gp_target_fits(&p->targets[t], p, arch, build))
				sc[i].fits_some = true;
		if (!p->is_display)
			continue;
		for (size_t m = 0; m < p->n_models; m++) {
			const struct gp_model *mo = &p->models[m];
			const struct gp_target_os *t = &p->targets[mo->target];
			bool fits = gp_target_fits(t, p, arch, build);

			for (size_t k = 0; k < mo->n_ids; k++) {
				enum gp_match_rank r = match_id(mo->ids[k], gpu);
				if (r == GP_MATCH_NONE)
					continue;
				sc[i].matched_any = true;
				if (!fits) {
					sc[i].unfit_deco = t->decoration;
					continue;
				}
				/* Best: a hardware-ID (first ID) match, then
				 * the rank; on a tie the decoration for the
				 * newer build (the more specific one) wins. */
				bool compat = k > 0;
				if (c->rank == GP_MATCH_NONE || (c->compatible && !compat) ||
				    (c->compatible == compat &&
				     (r > c->rank || (r == c->rank && t->build > best_build)))) {
					c->rank = r;
					c->compatible = compat;
					c->model = mo;
					c->matched_id = mo->ids[k];
					best_build = t->build;
				}
			}
		}
	}
}

/* The PCI vendor of a display package: that of its first model ID of the
 * form PCI\VEN_xxxx&DEV_xxxx[...], or -1 when it has none. Display-class
 * packages without one (Microsoft Basic Display's PCI\CC_0300, Hyper-V
 * video's VMBUS\..., indirect displays' SWD\...) drive no partitionable
 * GPU, so "auto" ignores them. */
static int package_vendor(const struct gp_package *p)
{
	for (size_t m = 0; m < p->n_models; m++) {
		for (size_t k = 0; k < p->models[m].n_ids; k++) {
			const char *id = p->models[m].ids[k];
			struct gp_gpu_id g;
			bool other;

			if (strncasecmp(id, "PCI\\", 4) == 0 &&
			    parse_pci_tokens(id + 4, strlen(id + 4), &g, &other) && !other)
				return g.ven;
		}
	}
	return -1;
}

/* Newer DriverVer wins; on a tie, the greater folder name. */
static bool newer(const struct gp_package *p, const struct gp_package *than)
{
	int c;

	if (!than)
		return true;
	c = gp_package_cmp_version(p, than);
	return c > 0 || (c == 0 && strcmp(p->folder, than->folder) > 0);
}

/* "auto": the display packages that fit the guest, grouped by GPU vendor.
 * One vendor: its newest package. Several: the caller must name the GPU. */
static int resolve_auto(struct gp_store *s, const char *arch, uint32_t build,
			struct gp_candidate *cands, struct score *sc, struct gp_resolution *r)
{
	const struct gp_package *best[8] = { NULL };   /* newest per vendor */
	int vens[8];
	size_t groups = 0;
	char *list = NULL;

	for (size_t i = 0; i < s->n_pkgs; i++) {
		const struct gp_package *p = s->pkgs[i];
		int ven;
		size_t g;

		cands[i].pkg = p;
		sc[i].display = p->is_display;
		for (size_t t = 0; t < p->n_targets; t++)
			if (gp_target_fits(&p->targets[t], p, arch, build))
				sc[i].fits_some = true;
		if (!p->is_display || !sc[i].fits_some || (ven = package_vendor(p)) < 0)
			continue;
		sc[i].matched_any = true;   /* a GPU driver: ranked below */
		for (g = 0; g < groups && vens[g] != ven; g++)
			;
		if (g == groups) {
			if (groups == sizeof(vens) / sizeof(vens[0]))
				continue;   /* more vendors than anyone has: listed as 8 */
			vens[groups++] = ven;
		}
		if (newer(p, best[g]))
			best[g] = p;
	}
	for (size_t g = 0; g < groups; g++) {
		char *n = fmt("%s%s%s (%s, VEN_%04X)", list ? list : "", list ? ", " : "",
			      best[g]->inf_name, *best[g]->provider ? best[g]->provider : "unknown provider",
			      (unsigned)vens[g]);
		free(list);
		list = n;
		if (!list)
			return gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
	}
	if (groups == 0) {
		free(list);
		return gp_error_set(&s->err, GP_ERR_NOTFOUND,
				    "%s: no display driver package for a PCI GPU on a %s guest in the "
				    "DriverStore", s->repo_dir, arch);
	}
	if (groups > 1) {
		int rc = gp_error_set(&s->err, GP_ERR_INVALID,
				      "--gpu auto: the DriverStore holds display drivers for %zu GPU "
				      "vendors: %s; name the GPU with --gpu", groups, list);
		free(list);
		return rc;
	}
	free(list);
	/* Rank the vendor's packages as equal matches, so that the sort
	 * orders them by DriverVer and the verdicts say "older". */
	for (size_t i = 0; i < s->n_pkgs; i++)
		if (sc[i].matched_any && package_vendor(s->pkgs[i]) == vens[0])
			cands[i].rank = GP_MATCH_VEN_DEV;
	r->pkg = best[0];
	return 0;
}

int gp_store_resolve(struct gp_store *s, const char *gpu, const struct gp_guest_target *target,
		     struct gp_resolution **out)
{
	const char *arch = target && target->arch ? target->arch : "amd64";
	uint32_t build = target ? target->build : 0;
	struct gp_resolution *r;
	struct score *sc;
	char gpu_text[64] = "";
	int rc = 0;

	*out = NULL;
	gp_error_clear(&s->err);
	r = calloc(1, sizeof(*r));
	sc = calloc(s->n_pkgs ? s->n_pkgs : 1, sizeof(*sc));
	if (r)
		r->cands = calloc(s->n_pkgs ? s->n_pkgs : 1, sizeof(*r->cands));
	if (!r || !sc || !r->cands) {
		free(sc);
		gp_resolution_free(r);
		return gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
	}
	r->n_cands = s->n_pkgs;

	if (!gpu || strcasecmp(gpu, "auto") == 0) {
		r->automatic = true;
		rc = resolve_auto(s, arch, build, r->cands, sc, r);
		if (rc && rc != GP_ERR_NOTFOUND && rc != GP_ERR_INVALID)
			goto fail;
	} else {
		rc = gp_gpu_id_parse(gpu, &r->gpu, &s->err);
		if (rc)
			goto fail;
		gp_gpu_id_format(&r->gpu, gpu_text, sizeof(gpu_text));
		score_for_gpu(s, &r->gpu, arch, build, r->cands, sc);
	}
	/* Sort candidates with their scores. */
	{
		struct pair { struct gp_candidate c; struct score s; } *pv;
		pv = calloc(r->n_cands ? r->n_cands : 1, sizeof(*pv));
		if (!pv) {
			rc = gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < r->n_cands; i++) {
			pv[i].c = r->cands[i];
			pv[i].s = sc[i];
		}
		/* cmp_cand reads the first member: a pair starts with its candidate. */
		qsort(pv, r->n_cands, sizeof(*pv), qsort_cand);
		for (size_t i = 0; i < r->n_cands; i++) {
			r->cands[i] = pv[i].c;
			sc[i] = pv[i].s;
		}
		free(pv);
	}
	if (!r->automatic) {
		if (r->n_cands && r->cands[0].rank != GP_MATCH_NONE) {
			r->pkg = r->cands[0].pkg;
			r->model = r->cands[0].model;
		} else {
			rc = gp_error_set(&s->err, GP_ERR_NOTFOUND,
					  "%s: no display driver package in %s matches %s on a %s guest%s",
					  gpu, s->repo_dir, gpu_text, arch,
					  build ? " of that build" : "");
		}
	} else if (r->pkg) {
		/* Only the chosen driver's packages have a rank, so the sort
		 * put its newest package first. */
		r->pkg = r->cands[0].pkg;
	}
	if (!explain(r, sc, arch, build, *gpu_text ? gpu_text : NULL)) {
		rc = gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
		goto fail;
	}
	free(sc);
	*out = r;
	return rc;
fail:
	free(sc);
	gp_resolution_free(r);
	return rc;
}
