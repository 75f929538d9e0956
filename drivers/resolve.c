/* resolve.c — GPU identities and choosing the display package for a GPU,
 * ranked the way Windows ranks drivers. See store.h. */
#include "store_priv.h"

#include "gpus.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- GPU identities ------------------------------------------------------ */

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
			if (ven || !gp_hex_exact(t + 4, tl - 4, 4, &v))
				return false;
			id->ven = (uint16_t)v;
			ven = true;
		} else if (tl > 4 && strncasecmp(t, "DEV_", 4) == 0) {
			if (dev || !gp_hex_exact(t + 4, tl - 4, 4, &v))
				return false;
			id->dev = (uint16_t)v;
			dev = true;
		} else if (tl > 7 && strncasecmp(t, "SUBSYS_", 7) == 0) {
			if (id->has_subsys || !gp_hex_exact(t + 7, tl - 7, 8, &v))
				return false;
			id->subsys = v;
			id->has_subsys = true;
		} else if (tl > 4 && strncasecmp(t, "REV_", 4) == 0) {
			if (id->has_rev || !gp_hex_exact(t + 4, tl - 4, 2, &v))
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

static int vendor_only(struct gp_error *err, const char *text)
{
	return gp_error_set(err, GP_ERR_INVALID,
			    "'%s' names a vendor, not a GPU: add the device (10de:2860, "
			    "VEN_xxxx&DEV_yyyy; gpup gpus and gpup drivers --explain list them)", text);
}

int gp_gpu_id_parse(const char *text, struct gp_gpu_id *out, struct gp_error *err)
{
	struct gp_gpu_selector sel;
	int rc = gp_gpu_selector_parse(text, &sel, err);

	if (rc)
		return rc;
	if (sel.kind == GP_GPU_SEL_IDS && !sel.has_dev)
		return vendor_only(err, text);
	if (sel.kind != GP_GPU_SEL_IDS && sel.kind != GP_GPU_SEL_INSTANCE)
		return gp_error_set(err, GP_ERR_INVALID,
				    "'%s' is not a PCI GPU identifier (want 10de:2860, "
				    "VEN_xxxx&DEV_yyyy[&SUBSYS_ssssssss][&REV_rr], a device instance path "
				    "or the \\\\?\\PCI#... name Get-VMHostPartitionableGpu lists)", text);
	memset(out, 0, sizeof(*out));
	out->ven = sel.ven;
	out->dev = sel.dev;
	out->subsys = sel.subsys;
	out->has_subsys = sel.has_subsys;
	out->rev = sel.rev;
	out->has_rev = sel.has_rev;
	return 0;
}

/* The PCI VEN&DEV of a model line's hardware or compatible ID, or false. */
static bool model_id(const char *id, struct gp_gpu_id *g)
{
	bool other;

	return strncasecmp(id, "PCI\\", 4) == 0 &&
	       parse_pci_tokens(id + 4, strlen(id + 4), g, &other) && !other;
}

/*
 * A name selector (gpus.h) against a DriverStore: the display packages'
 * model lines whose device description holds @sel's text, reduced to
 * their distinct VEN&DEV. One: *out. None: GP_ERR_NOTFOUND. Several:
 * GP_ERR_INVALID listing them, as for a GPU list.
 */
static int resolve_name(struct gp_store *s, const struct gp_gpu_selector *sel,
			struct gp_gpu_id *out)
{
	struct gp_gpu_id found[8];
	char list[768] = "";
	size_t n = 0, o = 0;

	for (size_t i = 0; i < s->n_pkgs; i++) {
		const struct gp_package *p = s->pkgs[i];

		for (size_t m = 0; p->is_display && m < p->n_models; m++) {
			const struct gp_model *md = &p->models[m];
			struct gp_gpu_id g;
			size_t k;

			if (!gp_gpu_selector_match_name(sel, md->description) || !md->n_ids ||
			    !model_id(md->ids[0], &g))
				continue;
			for (k = 0; k < n && (found[k].ven != g.ven || found[k].dev != g.dev); k++)
				;
			if (k < n || n == sizeof(found) / sizeof(found[0]))
				continue;
			found[n++] = g;
			if (o + 1 < sizeof(list)) {
				int w = snprintf(list + o, sizeof(list) - o, "%sVEN_%04X&DEV_%04X (%s)",
						 o ? ", " : "", g.ven, g.dev, md->description);
				if (w > 0)
					o += (size_t)w;
			}
		}
	}
	if (n == 0)
		return gp_error_set(&s->err, GP_ERR_NOTFOUND,
				    "--gpu '%s': no display driver in %s names such a device",
				    sel->text, s->repo_dir);
	if (n > 1)
		return gp_error_set(&s->err, GP_ERR_INVALID,
				    "--gpu '%s' matches %zu GPUs: %s; name one (10de:2860 or "
				    "VEN_xxxx&DEV_yyyy)", sel->text, n, list);
	memset(out, 0, sizeof(*out));
	out->ven = found[0].ven;
	out->dev = found[0].dev;
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
	case GP_CAND_FEATURE_SCORE: return "worse FeatureScore";
	case GP_CAND_NO_INSTALL_SECTION: return "install section missing";
	}
	return "?";
}

/* ---- TargetOS ------------------------------------------------------------ */

/* What the guest reports to a TargetOS decoration: a Windows client
 * (VER_NT_WORKSTATION) with the suites every client has
 * (VER_SUITE_TERMINAL | VER_SUITE_SINGLEUSERTS). */
#define GUEST_PRODUCT_TYPE 1u
#define GUEST_SUITES 0x110u

/* The NT version of a Windows build (0 = newest). */
static void guest_version(uint32_t build, uint32_t *major, uint32_t *minor)
{
	static const struct { uint32_t build, major, minor; } v[] = {
		{ 10240, 10, 0 }, { 9600, 6, 3 }, { 9200, 6, 2 }, { 7600, 6, 1 }, { 6000, 6, 0 },
	};

	*major = 5;
	*minor = 1;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (!build || build >= v[i].build) {
			*major = v[i].major;
			*minor = v[i].minor;
			return;
		}
	}
}

/* Why decoration @t does not apply to the guest, or NULL when it does. The
 * build is compared only when the NT versions are equal: "if the current OS
 * version is greater than the decoration's, the section is applicable
 * regardless of the build number" (Manufacturer section, BuildNumber). */
static const char *target_rejects(const struct gp_target_os *t, const struct gp_package *pkg,
				  const char *arch, uint32_t build)
{
	uint32_t major, minor;

	guest_version(build, &major, &minor);
	if (*t->arch ? strcasecmp(t->arch, arch) != 0 : strcasecmp(pkg->arch, arch) != 0)
		return "another architecture";
	if (t->major > major || (t->major == major && t->minor > minor))
		return "a newer Windows version";
	if (t->major == major && t->minor == minor && build && t->build > build)
		return "a newer build";
	if (t->product_type && t->product_type != GUEST_PRODUCT_TYPE)
		return "another product type";
	if (t->suite_mask & ~GUEST_SUITES)
		return "product suites a client lacks";
	return NULL;
}

/* >0 when @a matches the OS more closely than @b (both apply): the highest
 * version (build included), then a product type, then a suite mask, then an
 * explicit architecture. */
static int closer(const struct gp_target_os *a, const struct gp_target_os *b)
{
	const uint32_t ka[] = { a->major, a->minor, a->build, !!a->product_type,
				!!a->suite_mask, *a->arch != '\0' };
	const uint32_t kb[] = { b->major, b->minor, b->build, !!b->product_type,
				!!b->suite_mask, *b->arch != '\0' };

	for (size_t i = 0; i < sizeof(ka) / sizeof(ka[0]); i++)
		if (ka[i] != kb[i])
			return ka[i] > kb[i] ? 1 : -1;
	return 0;
}

void gp_targets_select(const struct gp_package *pkg, const char *arch, uint32_t build,
		       bool *sel)
{
	for (size_t t = 0; t < pkg->n_targets; t++)
		sel[t] = false;
	for (size_t t = 0; t < pkg->n_targets; t++) {
		const struct gp_target_os *a = &pkg->targets[t];
		bool best = !target_rejects(a, pkg, arch, build);

		for (size_t u = 0; best && u < pkg->n_targets; u++) {
			const struct gp_target_os *b = &pkg->targets[u];
			int c;

			if (u == t || b->mfg != a->mfg || target_rejects(b, pkg, arch, build))
				continue;
			c = closer(b, a);
			best = c < 0 || (c == 0 && u > t);   /* the first of equals */
		}
		sel[t] = best;
	}
}

/* The guest as the explanations name it. */
static void guest_text(const char *arch, uint32_t build, char *buf, size_t size)
{
	uint32_t major, minor;

	guest_version(build, &major, &minor);
	if (build)
		snprintf(buf, size, "%s, NT %u.%u build %u", arch, (unsigned)major, (unsigned)minor,
			 (unsigned)build);
	else
		snprintf(buf, size, "%s, NT %u.%u newest build", arch, (unsigned)major,
			 (unsigned)minor);
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
	bool fits_some;     /* a decoration Windows uses for the guest has model lines */
	bool matched_any;   /* some model matches, used or not */
	const char *unfit_deco; /* a decoration of a matching model Windows does not use */
	const struct gp_target_os *refused; /* a decoration Windows uses whose models
					     * section is empty: the INF refuses the OS */
	const struct gp_model *bad_model;   /* a matching model line whose install
					     * section does not exist */
};

/* The identifier score's list position of a match: the device reports its
 * IDs most specific first (Identifiers for PCI Devices). */
static uint32_t id_position(enum gp_match_rank r)
{
	switch (r) {
	case GP_MATCH_VEN_DEV_SUBSYS_REV: return 0;
	case GP_MATCH_VEN_DEV_SUBSYS: return 1;
	case GP_MATCH_VEN_DEV_REV: return 2;
	default: return 3;
	}
}

/* Best ranking across all packages: matched first, the lowest rank (score),
 * then date/version desc, folder desc. */
static int cmp_cand(const struct gp_candidate *a, const struct gp_candidate *b)
{
	int c;

	if ((a->rank == GP_MATCH_NONE) != (b->rank == GP_MATCH_NONE))
		return a->rank != GP_MATCH_NONE ? -1 : 1;
	if (a->rank == GP_MATCH_NONE) {
		/* Non-candidates: display first, then folder name. */
		if (a->pkg->is_display != b->pkg->is_display)
			return a->pkg->is_display ? -1 : 1;
		return strcmp(a->pkg->folder, b->pkg->folder);
	}
	if (a->score != b->score)
		return a->score < b->score ? -1 : 1;
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
	for (size_t i = 0; i < r->n_cands; i++) {
		free(r->cands[i].why);
		free(r->cands[i].target_why);
		free(r->cands[i].rank_why);
	}
	free(r->cands);
	free(r);
}

static const char *ver_text(const struct gp_package *p, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", *p->driver_ver_date ? p->driver_ver_date : "(no date)",
		 *p->driver_ver_version ? p->driver_ver_version : "(no version)");
	return buf;
}

/* "TargetOS for amd64, NT 10.0 build 19045: NTamd64.10.0...17134 is the
 * closest ([NVIDIA_Devices.NTamd64.10.0...17134]); not used: ..." for each
 * [Manufacturer] line of @p. NULL on allocation failure. */
static char *target_decision(const struct gp_package *p, const bool *sel, const char *guest,
			     const char *arch, uint32_t build)
{
	char *out = fmt("TargetOS for %s:", guest);
	size_t last_mfg = SIZE_MAX;

	for (size_t t = 0; out && t < p->n_targets; t++) {
		const struct gp_target_os *a = &p->targets[t];
		const char *deco = *a->decoration ? a->decoration : "(undecorated)";
		char *n;

		if (a->mfg == last_mfg)
			continue;
		last_mfg = a->mfg;
		/* This [Manufacturer] line: the chosen decoration, then the others. */
		n = NULL;
		for (size_t u = t; u < p->n_targets; u++) {
			const struct gp_target_os *b = &p->targets[u];
			if (b->mfg != a->mfg || !sel[u])
				continue;
			if (b->empty)
				n = fmt("%s %s is the closest, and its models section [%s] is empty: the "
					"INF does not install on this OS", out,
					*b->decoration ? b->decoration : "(undecorated)",
					b->models_section);
			else
				n = fmt("%s %s is the closest, models section [%s]", out,
					*b->decoration ? b->decoration : "(undecorated)",
					b->models_section);
		}
		if (!n)
			n = fmt("%s no decoration of [Manufacturer] %s applies", out, deco);
		free(out);
		out = n;
		for (size_t u = t; out && u < p->n_targets; u++) {
			const struct gp_target_os *b = &p->targets[u];
			const char *why;
			if (b->mfg != a->mfg || sel[u])
				continue;
			why = target_rejects(b, p, arch, build);
			n = fmt("%s; not %s (%s)", out, *b->decoration ? b->decoration : "(undecorated)",
				why ? why : "less close");
			free(out);
			out = n;
		}
	}
	return out;
}

/* Verdict and explanation of every candidate after sorting (cands[0] is
 * the best, and the chosen one when r->pkg is set). */
static bool explain(struct gp_resolution *r, const struct score *sc, const char *guest,
		    const char *gpu_text)
{
	const struct gp_candidate *best = r->pkg ? &r->cands[0] : NULL;
	char v1[64], v2[64];

	for (size_t i = 0; i < r->n_cands; i++) {
		struct gp_candidate *c = &r->cands[i];
		const struct gp_package *p = c->pkg;
		const struct score *s = &sc[i];

		if (c->rank != GP_MATCH_NONE && c->model) {
			c->rank_why = fmt("rank 0x%06X = FeatureScore 0x%02X (of [%s]) + identifier score "
					  "0x%04X (%s %s, %s); DriverVer %s",
					  (unsigned)c->score, c->feature_score, c->model->install_section,
					  (unsigned)(c->score & 0xFFFF), c->compatible ? "compatible ID" :
					  "hardware ID", c->matched_id, rank_name(c->rank),
					  ver_text(p, v1, sizeof(v1)));
			if (!c->rank_why)
				return false;
		}
		if (best && c == best) {
			c->verdict = GP_CAND_CHOSEN;
			if (c->model)
				c->why = fmt("chosen: %s (%s%s) in [%s], FeatureScore 0x%02X, DriverVer %s",
					     c->matched_id, rank_name(c->rank),
					     c->compatible ? ", compatible ID" : "",
					     p->targets[c->model->target].models_section, c->feature_score,
					     ver_text(p, v1, sizeof(v1)));
			else
				c->why = fmt("chosen: the newest display driver of the only GPU vendor "
					     "in the store, DriverVer %s", ver_text(p, v1, sizeof(v1)));
		} else if (!s->display) {
			c->verdict = GP_CAND_NOT_DISPLAY;
			c->why = fmt("lost: not a display driver (Class %s, ClassGuid %s)",
				     *p->class_name ? p->class_name : "(none)",
				     *p->class_guid ? p->class_guid : "(none)");
		} else if (c->rank == GP_MATCH_NONE && !s->fits_some && s->refused) {
			c->verdict = GP_CAND_TARGET_OS;
			c->why = fmt("lost: %s refuses this guest (%s): [%s], its models section for "
				     "this OS, is empty", p->inf_name, guest, s->refused->models_section);
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
		} else if (c->rank == GP_MATCH_NONE && s->bad_model) {
			c->verdict = GP_CAND_NO_INSTALL_SECTION;
			c->why = fmt("lost: %s matches %s line %u, whose install section [%s] does not "
				     "exist; Windows cannot install from it", gpu_text ? gpu_text : "the GPU",
				     p->inf_name, (unsigned)s->bad_model->lineno,
				     s->bad_model->install_section);
		} else if (c->rank == GP_MATCH_NONE && s->matched_any) {
			c->verdict = GP_CAND_TARGET_OS;
			c->why = fmt("lost: %s matches only under TargetOS %s, which Windows does not use "
				     "for the guest (%s)", gpu_text ? gpu_text : "the GPU",
				     s->unfit_deco ? s->unfit_deco : "?", guest);
		} else if (c->rank == GP_MATCH_NONE && gpu_text) {
			c->verdict = GP_CAND_NO_MATCH;
			c->why = fmt("lost: no model matches %s", gpu_text);
		} else if (c->rank == GP_MATCH_NONE) {
			c->verdict = GP_CAND_NO_MATCH;
			c->why = fmt("lost: not chosen");
		} else if (best && !r->automatic && c->feature_score > best->feature_score) {
			c->verdict = GP_CAND_FEATURE_SCORE;
			c->why = fmt("lost: FeatureScore 0x%02X is worse than the chosen package's 0x%02X "
				     "(lower wins; Windows ranks it before the hardware-ID match)",
				     c->feature_score, best->feature_score);
		} else if (best && c->compatible && !best->compatible) {
			c->verdict = GP_CAND_LESS_SPECIFIC;
			c->why = fmt("lost: %s matches only the compatible ID %s; the chosen package "
				     "matches a hardware ID", p->folder, c->matched_id);
		} else if (best && c->score > best->score) {
			c->verdict = GP_CAND_LESS_SPECIFIC;
			c->why = fmt("lost: %s matches %s (%s), less specific than the chosen %s",
				     p->folder, c->matched_id ? c->matched_id : "?", rank_name(c->rank),
				     rank_name(best->rank));
		} else if (best && gp_package_cmp_version(p, best->pkg) < 0) {
			c->verdict = GP_CAND_OLDER;
			c->why = fmt("lost: DriverVer %s is older than the chosen %s (same rank)",
				     ver_text(p, v1, sizeof(v1)), ver_text(best->pkg, v2, sizeof(v2)));
		} else if (best) {
			c->verdict = GP_CAND_TIE;
			c->why = fmt("lost: same rank and DriverVer %s as the chosen package; the "
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

/* The TargetOS facts of package @p: sel[] (gp_targets_select()), whether a
 * used decoration has models, and the first used one that is empty. */
static void score_targets(const struct gp_package *p, const bool *sel, struct score *sc)
{
	for (size_t t = 0; t < p->n_targets; t++) {
		if (!sel[t])
			continue;
		if (p->targets[t].empty) {
			if (!sc->refused)
				sc->refused = &p->targets[t];
		} else {
			sc->fits_some = true;
		}
	}
}

/* Score every package for a given GPU. */
static void score_for_gpu(struct gp_store *s, const struct gp_gpu_id *gpu, bool *const *sels,
			  struct gp_candidate *cands, struct score *sc)
{
	for (size_t i = 0; i < s->n_pkgs; i++) {
		const struct gp_package *p = s->pkgs[i];
		struct gp_candidate *c = &cands[i];

		c->pkg = p;
		sc[i].display = p->is_display;
		score_targets(p, sels[i], &sc[i]);
		if (!p->is_display)
			continue;
		for (size_t m = 0; m < p->n_models; m++) {
			const struct gp_model *mo = &p->models[m];

			for (size_t k = 0; k < mo->n_ids; k++) {
				enum gp_match_rank r = match_id(mo->ids[k], gpu);
				uint32_t score;

				if (r == GP_MATCH_NONE)
					continue;
				sc[i].matched_any = true;
				if (!sels[i][mo->target]) {
					sc[i].unfit_deco = p->targets[mo->target].decoration;
					continue;
				}
				if (mo->no_install) {
					if (!sc[i].bad_model)
						sc[i].bad_model = mo;
					continue;
				}
				/* Rank 0xGGTHHH: FeatureScore, then hardware (T 0) or
				 * compatible (T 1) ID, then the ID's position. */
				score = (uint32_t)mo->feature_score << 16 | (k > 0 ? 0x1000u : 0) |
					id_position(r);
				if (c->rank == GP_MATCH_NONE || score < c->score) {
					c->rank = r;
					c->score = score;
					c->feature_score = mo->feature_score;
					c->compatible = k > 0;
					c->model = mo;
					c->matched_id = mo->ids[k];
				}
			}
		}
	}
}

/* The PCI vendor of a display package: that of its first usable model ID
 * of the form PCI\VEN_xxxx&DEV_xxxx[...] (under a decoration Windows uses,
 * with an install section), or -1 when it has none. Display-class packages
 * without one (Microsoft Basic Display's PCI\CC_0300, Hyper-V video's
 * VMBUS\..., indirect displays' SWD\...) drive no partitionable GPU, so
 * "auto" ignores them. */
static int package_vendor(const struct gp_package *p, const bool *sel)
{
	for (size_t m = 0; m < p->n_models; m++) {
		if (!sel[p->models[m].target] || p->models[m].no_install)
			continue;
		for (size_t k = 0; k < p->models[m].n_ids; k++) {
			struct gp_gpu_id g;

			if (model_id(p->models[m].ids[k], &g))
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
static int resolve_auto(struct gp_store *s, bool *const *sels, struct gp_candidate *cands,
			struct score *sc, struct gp_resolution *r, const char *arch)
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
		score_targets(p, sels[i], &sc[i]);
		if (!p->is_display || !sc[i].fits_some || (ven = package_vendor(p, sels[i])) < 0)
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
		if (sc[i].matched_any && package_vendor(s->pkgs[i], sels[i]) == vens[0])
			cands[i].rank = GP_MATCH_VEN_DEV;
	r->pkg = best[0];
	return 0;
}

/* The error for a GPU no package can take, naming what came closest: a
 * model line without install section, an INF that refuses the OS. */
static int no_package(struct gp_store *s, const char *gpu, const char *gpu_text,
		      const char *guest, const struct gp_resolution *r, const struct score *sc)
{
	const struct score *bad = NULL, *refused = NULL;
	const struct gp_package *bp = NULL, *rp = NULL;

	for (size_t i = 0; i < r->n_cands; i++) {
		if (sc[i].bad_model && !bad) {
			bad = &sc[i];
			bp = r->cands[i].pkg;
		}
		if (sc[i].refused && !sc[i].fits_some && sc[i].matched_any && !refused) {
			refused = &sc[i];
			rp = r->cands[i].pkg;
		}
	}
	if (bad)
		return gp_error_set(&s->err, GP_ERR_NOTFOUND,
				    "%s: no display driver package in %s can install %s: %s line %u "
				    "(%s) matches it but names install section [%s], which the INF does "
				    "not have", gpu, s->repo_dir, gpu_text, bp->inf_name,
				    (unsigned)bad->bad_model->lineno, bp->folder,
				    bad->bad_model->install_section);
	if (refused)
		return gp_error_set(&s->err, GP_ERR_NOTFOUND,
				    "%s: no display driver package in %s installs %s on this guest (%s): "
				    "%s (%s) refuses it, its models section for this OS, [%s], is empty",
				    gpu, s->repo_dir, gpu_text, guest, rp->inf_name, rp->folder,
				    refused->refused->models_section);
	return gp_error_set(&s->err, GP_ERR_NOTFOUND,
			    "%s: no display driver package in %s matches %s on this guest (%s)",
			    gpu, s->repo_dir, gpu_text, guest);
}

int gp_store_resolve(struct gp_store *s, const char *gpu, const struct gp_guest_target *target,
		     struct gp_resolution **out)
{
	const char *arch = target && target->arch ? target->arch : "amd64";
	uint32_t build = target ? target->build : 0;
	struct gp_resolution *r;
	struct score *sc;
	bool **sels;
	char gpu_text[64] = "", guest[64];
	int rc = 0;

	*out = NULL;
	gp_error_clear(&s->err);
	guest_text(arch, build, guest, sizeof(guest));
	r = calloc(1, sizeof(*r));
	sc = calloc(s->n_pkgs ? s->n_pkgs : 1, sizeof(*sc));
	sels = calloc(s->n_pkgs ? s->n_pkgs : 1, sizeof(*sels));
	if (r)
		r->cands = calloc(s->n_pkgs ? s->n_pkgs : 1, sizeof(*r->cands));
	if (!r || !sc || !sels || !r->cands) {
		rc = gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
		goto fail;
	}
	r->n_cands = s->n_pkgs;
	for (size_t i = 0; i < s->n_pkgs; i++) {
		sels[i] = calloc(s->pkgs[i]->n_targets ? s->pkgs[i]->n_targets : 1, sizeof(bool));
		if (!sels[i]) {
			rc = gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
			goto fail;
		}
		gp_targets_select(s->pkgs[i], arch, build, sels[i]);
	}

	if (!gpu || strcasecmp(gpu, "auto") == 0) {
		r->automatic = true;
		rc = resolve_auto(s, sels, r->cands, sc, r, arch);
		if (rc && rc != GP_ERR_NOTFOUND && rc != GP_ERR_INVALID)
			goto fail;
	} else {
		struct gp_gpu_selector sel;

		rc = gp_gpu_selector_parse(gpu, &sel, &s->err);
		if (!rc && sel.kind != GP_GPU_SEL_NAME) {
			rc = gp_gpu_id_parse(gpu, &r->gpu, &s->err);
		} else if (!rc) {
			rc = resolve_name(s, &sel, &r->gpu);
			if (rc == GP_ERR_NOTFOUND && sel.has_ven) {
				/* "10de" named no device: a vendor, which a
				 * driver store cannot narrow to one GPU. */
				gp_error_clear(&s->err);
				rc = vendor_only(&s->err, gpu);
			}
		}
		if (rc)
			goto fail;
		gp_gpu_id_format(&r->gpu, gpu_text, sizeof(gpu_text));
		score_for_gpu(s, &r->gpu, sels, r->cands, sc);
	}
	/* The TargetOS decision of every display package, before the sort
	 * moves candidates away from their sels[]. */
	for (size_t i = 0; i < r->n_cands; i++) {
		if (!r->cands[i].pkg->is_display)
			continue;
		r->cands[i].target_why = target_decision(r->cands[i].pkg, sels[i], guest, arch, build);
		if (!r->cands[i].target_why) {
			rc = gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
			goto fail;
		}
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
			rc = no_package(s, gpu, gpu_text, guest, r, sc);
		}
	} else if (r->pkg) {
		/* Only the chosen driver's packages have a rank, so the sort
		 * put its newest package first. */
		r->pkg = r->cands[0].pkg;
	}
	if (!explain(r, sc, guest, *gpu_text ? gpu_text : NULL)) {
		rc = gp_error_set(&s->err, GP_ERR_NOMEM, "out of memory");
		goto fail;
	}
	*out = r;
	r = NULL;
fail:
	for (size_t i = 0; sels && i < s->n_pkgs; i++)
		free(sels[i]);
	free(sels);
	free(sc);
	gp_resolution_free(r);
	return rc;
}
