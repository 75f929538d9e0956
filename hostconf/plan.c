/* plan.c — quota arithmetic, validation, MMIO sizing and SurveyDDA output.
 * See plan.h. */
#include "plan.h"
#include "hostconf_priv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* SurveyDDA output is a few KiB per device. */
#define SURVEYDDA_MAX_BYTES (16u << 20)

static const char *const part_name[3] = { "Min", "Optimal", "Max" };

/* One part: "50%", "12.5%", "100%" or a raw decimal number. @end is where
 * the part stops (exclusive). */
static int parse_part(const char *s, const char *end, struct gp_share_part *p)
{
	uint64_t whole = 0, frac = 0;
	unsigned frac_digits = 0;
	const char *q = s;

	if (q == end || !isdigit((unsigned char)*q))
		return -1;
	while (q < end && isdigit((unsigned char)*q)) {
		if (__builtin_mul_overflow(whole, (uint64_t)10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(*q - '0'), &whole))
			return -1;
		q++;
	}
	if (q == end) {
		p->is_percent = false;
		p->value = whole;
		return 0;
	}
	if (*q == '.') {
		q++;
		while (q < end && isdigit((unsigned char)*q)) {
			if (++frac_digits > 6)
				return -2;
			frac = frac * 10 + (uint64_t)(*q - '0');
			q++;
		}
		if (frac_digits == 0)
			return -1;
	}
	if (q + 1 != end || *q != '%')
		return -1;
	for (unsigned i = frac_digits; i < 6; i++)
		frac *= 10;
	if (whole > 100 || (whole == 100 && frac))
		return -3;
	p->is_percent = true;
	p->value = whole * GP_PERCENT_ONE + frac;
	return 0;
}

int gp_share_parse(const char *s, struct gp_share_spec *out, struct gp_error *err)
{
	const char *colon1, *colon2, *end;
	const char *starts[3], *ends[3];
	int n;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return gp_error_set(err, GP_ERR_INVALID, "empty share");
	end = s + strlen(s);
	colon1 = strchr(s, ':');
	if (!colon1) {
		starts[0] = s;
		ends[0] = end;
		n = 1;
	} else {
		colon2 = strchr(colon1 + 1, ':');
		if (!colon2 || strchr(colon2 + 1, ':'))
			return gp_error_set(err, GP_ERR_INVALID,
					    "share '%s': expected P%%, N or MIN:OPT:MAX", s);
		starts[0] = s;
		ends[0] = colon1;
		starts[1] = colon1 + 1;
		ends[1] = colon2;
		starts[2] = colon2 + 1;
		ends[2] = end;
		n = 3;
	}
	for (int i = 0; i < n; i++) {
		int rc = parse_part(starts[i], ends[i], &out->part[i]);

		if (rc == -2)
			return gp_error_set(err, GP_ERR_INVALID,
					    "share '%s': at most six decimals in a percentage", s);
		if (rc == -3)
			return gp_error_set(err, GP_ERR_INVALID,
					    "share '%s': a percentage cannot exceed 100%%", s);
		if (rc)
			return gp_error_set(err, GP_ERR_INVALID,
					    "share '%s': '%.*s' is neither a percentage (50%%) nor "
					    "an unsigned 64-bit number", s,
					    (int)(ends[i] - starts[i]), starts[i]);
	}
	if (n == 1)
		out->part[1] = out->part[2] = out->part[0];
	out->set = true;
	return 0;
}

/* floor(base * pct / 100%), exact: base < 2^64, pct <= 10^8, so the
 * product fits in 91 bits. */
static uint64_t apply_percent(uint64_t base, uint64_t pct)
{
	unsigned __int128 prod = (unsigned __int128)base * pct;

	return (uint64_t)(prod / (100 * GP_PERCENT_ONE));
}

/* One part as the user wrote it: "50", "12.5%", "100%". */
static void part_text(char *buf, size_t size, const struct gp_share_part *p)
{
	uint64_t frac = p->value % GP_PERCENT_ONE;
	int digits = 6;

	if (!p->is_percent) {
		snprintf(buf, size, "%llu", (unsigned long long)p->value);
		return;
	}
	if (frac == 0) {
		snprintf(buf, size, "%llu%%", (unsigned long long)(p->value / GP_PERCENT_ONE));
		return;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, size, "%llu.%0*llu%%", (unsigned long long)(p->value / GP_PERCENT_ONE),
		 digits, (unsigned long long)frac);
}

/* " (50%)" after a value that came from a percentage, else "". */
static void format_part(char *buf, size_t size, const struct gp_share_part *p)
{
	char t[32];

	buf[0] = '\0';
	if (p->is_percent) {
		part_text(t, sizeof(t), p);
		snprintf(buf, size, " (%s)", t);
	}
}

static bool same_part(const struct gp_share_part *a, const struct gp_share_part *b)
{
	return a->is_percent == b->is_percent && a->value == b->value;
}

void gp_share_format(const struct gp_share_spec *spec, char *buf, size_t size)
{
	char t[3][32];

	if (!spec->set) {
		snprintf(buf, size, "%s", "");
		return;
	}
	for (int i = 0; i < 3; i++)
		part_text(t[i], sizeof(t[i]), &spec->part[i]);
	if (same_part(&spec->part[0], &spec->part[1]) && same_part(&spec->part[1], &spec->part[2]))
		snprintf(buf, size, "%s", t[0]);
	else
		snprintf(buf, size, "%s:%s:%s", t[0], t[1], t[2]);
}

/* Without the GPU's figures only raw parts can be compared. */
static int check_raw_order(enum gp_gpu_res r, const struct gp_share_spec *spec,
			   struct gp_error *err)
{
	for (int i = 0; spec->set && i < 2; i++) {
		const struct gp_share_part *a = &spec->part[i], *b = &spec->part[i + 1];

		if (!a->is_percent && !b->is_percent && a->value > b->value)
			return gp_error_set(err, GP_ERR_INVALID,
					    "%s: %s %llu is greater than %s %llu; Hyper-V needs "
					    "Min <= Optimal <= Max", gp_gpu_res_name(r), part_name[i],
					    (unsigned long long)a->value, part_name[i + 1],
					    (unsigned long long)b->value);
	}
	return 0;
}

static int quota_for(enum gp_gpu_res r, const struct gp_share_spec *spec,
		     const struct gp_gpu_resource *host, struct gp_quota *q, struct gp_error *err)
{
	const char *rn = gp_gpu_res_name(r);
	uint64_t v[3];
	char pct[3][40] = { "", "", "" };

	if (!spec->set) {
		v[0] = host->min;
		v[1] = host->optimal;
		v[2] = host->max;
	} else {
		for (int i = 0; i < 3; i++) {
			const struct gp_share_part *p = &spec->part[i];
			v[i] = p->is_percent ? apply_percent(host->max, p->value) : p->value;
			format_part(pct[i], sizeof(pct[i]), p);
		}
	}
	if (v[0] > v[1] || v[1] > v[2]) {
		int a = v[0] > v[1] ? 0 : 1;
		return gp_error_set(err, GP_ERR_INVALID,
				    "%s: %s %llu%s is greater than %s %llu%s; Hyper-V needs "
				    "Min <= Optimal <= Max", rn, part_name[a],
				    (unsigned long long)v[a], pct[a], part_name[a + 1],
				    (unsigned long long)v[a + 1], pct[a + 1]);
	}
	if (v[0] < host->min)
		return gp_error_set(err, GP_ERR_INVALID,
				    "%s: Min %llu%s is below the host's MinPartition%s %llu", rn,
				    (unsigned long long)v[0], pct[0], rn,
				    (unsigned long long)host->min);
	if (v[2] > host->max)
		return gp_error_set(err, GP_ERR_INVALID,
				    "%s: Max %llu%s exceeds the host's MaxPartition%s %llu (raw "
				    "values are on the host's scale; use a percentage)", rn,
				    (unsigned long long)v[2], pct[2], rn,
				    (unsigned long long)host->max);
	if (v[2] > host->available)
		return gp_error_set(err, GP_ERR_INVALID,
				    "%s: Max %llu%s exceeds Available%s %llu (other partitions "
				    "hold the rest of this GPU; lower the share or remove them)",
				    rn, (unsigned long long)v[2], pct[2], rn,
				    (unsigned long long)host->available);
	q->min = v[0];
	q->optimal = v[1];
	q->max = v[2];
	return 0;
}

static void add_warning(struct gp_plan *p, const char *fmt, unsigned long long a)
{
	if (p->n_warnings < GP_PLAN_MAX_WARNINGS)
		snprintf(p->warnings[p->n_warnings++], sizeof(p->warnings[0]), fmt, a);
}

static char *gpu_label(const struct gp_gpu *g)
{
	char buf[512];

	if (!g->has_pci_ids)
		return NULL;
	snprintf(buf, sizeof(buf), "%04x:%04x%s%s%s%s", g->vendor_id, g->device_id,
		 g->vendor_name ? " " : "", g->vendor_name ? g->vendor_name : "",
		 g->device_name ? " " : "", g->device_name ? g->device_name : "");
	return strdup(buf);
}

/* The PCI vendor of the chosen GPU: from the listed GPU, else from a
 * "VEN_xxxx" or "xxxx:yyyy" --gpu text; -1 when neither says. */
static int chosen_vendor(const struct gp_plan_opts *o, const struct gp_gpu *gpu)
{
	const char *sel = o->gpu_select, *v;
	unsigned x;
	int n = 0;

	if (gpu && gpu->has_pci_ids)
		return gpu->vendor_id;
	if (!sel)
		return -1;
	v = strcasestr(sel, "VEN_");
	if (v && sscanf(v + 4, "%4x%n", &x, &n) == 1 && n == 4)
		return (int)x;
	if (sscanf(sel, "%4x%n", &x, &n) == 1 && n == 4 && (sel[4] == ':' || !sel[4]))
		return (int)x;
	return -1;
}

/* The word a vendor's devices carry in their FriendlyName, or NULL. */
static const char *vendor_word(int ven)
{
	switch (ven) {
	case 0x10DE: return "NVIDIA";
	case 0x1002: return "AMD";
	case 0x8086: return "Intel";
	case 0x1414: return "Microsoft";
	}
	return NULL;
}

/* High MMIO from the survey: the display devices (of the chosen vendor
 * when the survey lists several vendors' GPUs) plus the buffer, whole GiB,
 * at least GP_MMIO_HIGH_GPUP_MIN; no display device: the default. */
static int survey_mmio(const struct gp_plan_opts *o, const struct gp_gpu *gpu,
		       struct gp_plan *p, struct gp_error *err)
{
	const struct gp_surveydda *sv = o->surveydda;
	uint64_t buffer = o->have_mmio_buffer ? o->mmio_buffer : GP_MMIO_BUFFER_DEFAULT;
	const char *word = vendor_word(chosen_vendor(o, gpu));
	uint64_t mb = 0, bytes, rounded;
	size_t counted = 0, of_vendor = 0, used = 0;
	char names[128] = "", skipped[128] = "";

	for (size_t i = 0; word && i < sv->n; i++)
		of_vendor += sv->dev[i].display && strcasestr(sv->dev[i].name, word) != NULL;
	for (size_t i = 0; i < sv->n; i++) {
		const struct gp_surveydda_device *d = &sv->dev[i];
		bool take = d->display && (!of_vendor || strcasestr(d->name, word));
		char *list = take ? names : skipped;
		size_t len = strlen(list);

		if (len < sizeof(names) - 1)
			snprintf(list + len, sizeof(names) - len, "%s%s %llu MB", len ? ", " : "",
				 *d->name ? d->name : "(unnamed)", (unsigned long long)d->mb);
		if (!take)
			continue;
		counted++;
		if (__builtin_add_overflow(mb, d->mb, &mb))
			return gp_error_set(err, GP_ERR_INVALID, "SurveyDDA: MMIO sizes overflow");
	}
	used = sv->n - counted;
	if (!counted) {
		p->high_mmio = GP_MMIO_HIGH_DEFAULT;
		snprintf(p->mmio_reason, sizeof(p->mmio_reason),
			 "SurveyDDA lists no display device: default for GPU partitioning (High 32 GiB)");
		if (p->n_warnings < GP_PLAN_MAX_WARNINGS)
			snprintf(p->warnings[p->n_warnings++], sizeof(p->warnings[0]),
				 "SurveyDDA lists no display device (not counted: %s); High MMIO "
				 "stays at the 32 GiB default for GPU partitioning",
				 *skipped ? skipped : "nothing");
		return 0;
	}
	if (__builtin_mul_overflow(mb, GP_MIB, &bytes) ||
	    __builtin_add_overflow(bytes, buffer, &bytes) ||
	    __builtin_add_overflow(bytes, GP_GIB - 1, &rounded))
		return gp_error_set(err, GP_ERR_INVALID,
				    "SurveyDDA: %llu MB of MMIO plus the buffer overflows",
				    (unsigned long long)mb);
	/* Whole GiB, not a power of two: see plan.h. */
	p->high_mmio = rounded / GP_GIB * GP_GIB;
	snprintf(p->mmio_reason, sizeof(p->mmio_reason),
		 "SurveyDDA: %zu display device(s) need %llu MB, plus %llu MiB buffer, rounded up "
		 "to whole GiB%s", counted, (unsigned long long)mb,
		 (unsigned long long)(buffer / GP_MIB),
		 p->high_mmio < GP_MMIO_HIGH_GPUP_MIN ? ", at least 8 GiB" : "");
	if (p->high_mmio < GP_MMIO_HIGH_GPUP_MIN) {
		if (p->n_warnings < GP_PLAN_MAX_WARNINGS)
			snprintf(p->warnings[p->n_warnings++], sizeof(p->warnings[0]),
				 "SurveyDDA: counted %s (not counted: %s) + %llu MiB buffer = %llu GiB; "
				 "High MMIO raised to 8 GiB, GPU partitioning's minimum (--high-mmio "
				 "forces a size)", names, used ? skipped : "nothing",
				 (unsigned long long)(buffer / GP_MIB),
				 (unsigned long long)(p->high_mmio / GP_GIB));
		p->high_mmio = GP_MMIO_HIGH_GPUP_MIN;
	}
	return 0;
}

static int plan_mmio(const struct gp_plan_opts *o, const struct gp_gpu *gpu, struct gp_plan *p,
		     struct gp_error *err)
{
	int rc;

	if (o->revert) {
		p->low_mmio = GP_MMIO_LOW_HYPERV;
		p->high_mmio = GP_MMIO_HIGH_HYPERV;
		snprintf(p->mmio_reason, sizeof(p->mmio_reason),
			 "Hyper-V defaults (Low 128 MiB, High 512 MiB)");
		return 0;
	}
	p->low_mmio = o->low_mmio ? o->low_mmio : GP_MMIO_LOW_DEFAULT;
	if (o->high_mmio) {
		p->high_mmio = o->high_mmio;
		snprintf(p->mmio_reason, sizeof(p->mmio_reason), "High MMIO as given");
	} else if (o->surveydda) {
		rc = survey_mmio(o, gpu, p, err);
		if (rc)
			return rc;
	} else {
		p->high_mmio = GP_MMIO_HIGH_DEFAULT;
		snprintf(p->mmio_reason, sizeof(p->mmio_reason),
			 "default for GPU partitioning (Low 1 GiB, High 32 GiB)");
	}
	/* The low MMIO gap sits below 4 GiB: it cannot reach 4 GiB. */
	if (p->low_mmio >= 4 * GP_GIB)
		return gp_error_set(err, GP_ERR_INVALID,
				    "Low MMIO %llu MiB: the low gap lies below 4 GiB and must be "
				    "smaller than 4096 MiB", (unsigned long long)(p->low_mmio / GP_MIB));
	if (p->high_mmio == 0)
		return gp_error_set(err, GP_ERR_INVALID, "High MMIO must not be 0");
	if (p->low_mmio % GP_MIB || p->high_mmio % GP_MIB)
		return gp_error_set(err, GP_ERR_INVALID,
				    "MMIO sizes must be whole MiB (Hyper-V stores them in MB)");
	if (p->high_mmio > GP_MMIO_36BIT_LIMIT)
		add_warning(p, "High MMIO %llu GiB is above 64 GiB: hosts with 36-bit "
			       "physical addressing fail to start the VM", (unsigned long long)(p->high_mmio / GP_GIB));
	return 0;
}

int gp_plan_build(const struct gp_plan_opts *o, const struct gp_gpu *gpu,
		  struct gp_plan *out, struct gp_error *err)
{
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!o->vm_name || !*o->vm_name)
		return gp_error_set(err, GP_ERR_INVALID, "no VM name given (--vm NAME)");
	if (!gp_hc_valid_utf8(o->vm_name))
		return gp_error_set(err, GP_ERR_INVALID,
				    "VM name is not valid UTF-8 (Hyper-V names are Unicode)");
	if (!o->revert && !gpu && (!o->gpu_select || !*o->gpu_select))
		return gp_error_set(err, GP_ERR_INVALID, "no GPU chosen (--gpu)");
	out->server = o->server;
	out->stop_vm = o->stop_vm;
	out->revert = o->revert;
	out->host_os = o->host_os;
	out->vm_name = strdup(o->vm_name);
	if (!out->vm_name) {
		rc = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		goto fail;
	}
	memcpy(out->share, o->share, sizeof(out->share));
	if (!o->revert && !gpu) {
		if (!gp_hc_valid_utf8(o->gpu_select)) {
			rc = gp_error_set(err, GP_ERR_INVALID, "--gpu is not valid UTF-8");
			goto fail;
		}
		out->gpu_select = strdup(o->gpu_select);
		if (!out->gpu_select) {
			rc = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			goto fail;
		}
		for (int r = 0; r < GP_RES_COUNT && rc == 0; r++)
			rc = check_raw_order(r, &o->share[r], err);
		if (rc)
			goto fail;
	} else if (!o->revert) {
		if (!gp_hc_valid_utf8(gpu->instance_path)) {
			rc = gp_error_set(err, GP_ERR_INVALID,
					  "the GPU's instance path is not valid UTF-8");
			goto fail;
		}
		out->instance_path = strdup(gpu->instance_path);
		if (!out->instance_path) {
			rc = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			goto fail;
		}
		out->gpu_label = gpu_label(gpu);
		for (int r = 0; r < GP_RES_COUNT && rc == 0; r++)
			rc = quota_for(r, &o->share[r], &gpu->res[r], &out->quota[r], err);
		if (rc)
			goto fail;
		out->have_quota = true;
	}
	rc = plan_mmio(o, gpu, out, err);
	if (rc)
		goto fail;
	return 0;
fail:
	gp_plan_free(out);
	return rc;
}

void gp_plan_free(struct gp_plan *p)
{
	if (!p)
		return;
	free(p->vm_name);
	free(p->instance_path);
	free(p->gpu_label);
	free(p->gpu_select);
	memset(p, 0, sizeof(*p));
}

/* ---- SurveyDDA.ps1 output ---- */

/* Does a SurveyDDA FriendlyName name a GPU? The script prints no class. */
static bool gpu_name(const char *name)
{
	static const char *const words[] = { "graphics", "gpu", "geforce", "quadro", "tesla",
					     "grid", "rtx", "radeon", "firepro", "instinct",
					     "arc(tm)", "arc ", "display", "vga" };
	static const char *const not_nvidia[] = { "audio", "usb", "ucsi", "serial" };

	if (strcasestr(name, "audio"))
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(name, words[i]))
			return true;
	if (strncasecmp(name, "NVIDIA", 6) != 0)
		return false;
	for (size_t i = 0; i < sizeof(not_nvidia) / sizeof(not_nvidia[0]); i++)
		if (strcasestr(name, not_nvidia[i]))
			return false;
	return true;
}

void gp_surveydda_free(struct gp_surveydda *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->dev[i].name);
	free(s->dev);
	memset(s, 0, sizeof(*s));
}

int gp_surveydda_parse(const char *text, size_t len, const char *source,
		       struct gp_surveydda *out, struct gp_error *err)
{
	static const char key[] = "requires at least:";
	static const char legacy_gpu[] = "Legacy Express Endpoint -- graphics controller.";
	unsigned lineno = 0;
	size_t pos = 0;
	char name[256] = "";
	bool after_blank = true, legacy = false;

	memset(out, 0, sizeof(*out));
	if (!source)
		source = "SurveyDDA output";
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		const char *hit = NULL;
		size_t b = 0;

		pos += ll + (nl ? 1 : 0);
		lineno++;
		while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' '))
			ll--;
		while (b < ll && (line[b] == ' ' || line[b] == '\t'))
			b++;
		if (b == ll) {
			after_blank = true;
			continue;
		}
		/* The script writes two blank lines, then the FriendlyName. */
		if (after_blank && b == 0) {
			snprintf(name, sizeof(name), "%.*s", (int)ll, line);
			legacy = false;
		}
		after_blank = false;
		if (ll - b == sizeof(legacy_gpu) - 1 && !memcmp(line + b, legacy_gpu, ll - b))
			legacy = true;
		for (size_t i = b; i + sizeof(key) - 1 <= ll; i++) {
			if (strncasecmp(line + i, key, sizeof(key) - 1) == 0) {
				hit = line + i + sizeof(key) - 1;
				break;
			}
		}
		if (!hit)
			continue;
		{
			const char *end = line + ll, *q = hit;
			struct gp_surveydda_device *d;
			uint64_t mb = 0;
			int digits = 0;

			while (q < end && *q == ' ')
				q++;
			while (q < end && isdigit((unsigned char)*q)) {
				if (__builtin_mul_overflow(mb, (uint64_t)10, &mb) ||
				    __builtin_add_overflow(mb, (uint64_t)(*q - '0'), &mb)) {
					gp_surveydda_free(out);
					return gp_error_set(err, GP_ERR_CORRUPT,
							    "%s:%u: MMIO size too large", source,
							    lineno);
				}
				q++;
				digits++;
			}
			while (q < end && *q == ' ')
				q++;
			if (!digits || end - q < 2 || strncmp(q, "MB", 2) != 0) {
				gp_surveydda_free(out);
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s:%u: expected 'requires at least: N MB of MMIO "
						    "gap space'", source, lineno);
			}
			d = realloc(out->dev, (out->n + 1) * sizeof(*d));
			if (!d) {
				gp_surveydda_free(out);
				return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			}
			out->dev = d;
			d = &out->dev[out->n];
			d->name = strdup(name);
			if (!d->name) {
				gp_surveydda_free(out);
				return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			}
			d->mb = mb;
			d->display = legacy || gpu_name(name);
			d->line = lineno;
			out->n++;
		}
	}
	if (out->n == 0)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: no 'And it requires at least: N MB of MMIO gap space' line "
				    "(is this SurveyDDA.ps1 output?)", source);
	return 0;
}

int gp_surveydda_load(const char *path, struct gp_surveydda *out, struct gp_error *err)
{
	char *buf;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = gp_hc_read_text(path, SURVEYDDA_MAX_BYTES, "SurveyDDA output", &buf, &len, err);
	if (rc)
		return rc;
	rc = gp_surveydda_parse(buf, len, path, out, err);
	free(buf);
	return rc;
}
