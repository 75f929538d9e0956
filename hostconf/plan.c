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

static int plan_mmio(const struct gp_plan_opts *o, struct gp_plan *p, struct gp_error *err)
{
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
	} else if (o->have_surveydda) {
		uint64_t buffer = o->have_mmio_buffer ? o->mmio_buffer : GP_MMIO_BUFFER_DEFAULT;
		uint64_t bytes, rounded;

		if (__builtin_mul_overflow(o->surveydda_mb, GP_MIB, &bytes) ||
		    __builtin_add_overflow(bytes, buffer, &bytes) ||
		    __builtin_add_overflow(bytes, GP_GIB - 1, &rounded))
			return gp_error_set(err, GP_ERR_INVALID,
					    "SurveyDDA: %llu MB of MMIO plus the buffer overflows",
					    (unsigned long long)o->surveydda_mb);
		/* Whole GiB, not a power of two: see plan.h. */
		p->high_mmio = rounded / GP_GIB * GP_GIB;
		snprintf(p->mmio_reason, sizeof(p->mmio_reason),
			 "SurveyDDA: %u device(s) need %llu MB, plus %llu MiB buffer, "
			 "rounded up to whole GiB", o->surveydda_devices,
			 (unsigned long long)o->surveydda_mb,
			 (unsigned long long)(buffer / GP_MIB));
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
	rc = plan_mmio(o, out, err);
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

int gp_surveydda_parse(const char *text, size_t len, const char *source,
		       uint64_t *total_mb, unsigned *devices, struct gp_error *err)
{
	static const char key[] = "requires at least:";
	uint64_t sum = 0;
	unsigned n = 0, lineno = 0;
	size_t pos = 0;

	if (!source)
		source = "SurveyDDA output";
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		const char *hit = NULL;

		pos += ll + (nl ? 1 : 0);
		lineno++;
		for (size_t i = 0; i + sizeof(key) - 1 <= ll; i++) {
			if (strncasecmp(line + i, key, sizeof(key) - 1) == 0) {
				hit = line + i + sizeof(key) - 1;
				break;
			}
		}
		if (!hit)
			continue;
		{
			const char *end = line + ll, *q = hit;
			uint64_t mb = 0;
			int digits = 0;

			while (q < end && *q == ' ')
				q++;
			while (q < end && isdigit((unsigned char)*q)) {
				if (__builtin_mul_overflow(mb, (uint64_t)10, &mb) ||
				    __builtin_add_overflow(mb, (uint64_t)(*q - '0'), &mb))
					return gp_error_set(err, GP_ERR_CORRUPT,
							    "%s:%u: MMIO size too large", source,
							    lineno);
				q++;
				digits++;
			}
			while (q < end && *q == ' ')
				q++;
			if (!digits || end - q < 2 || strncmp(q, "MB", 2) != 0)
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s:%u: expected 'requires at least: N MB of MMIO "
						    "gap space'", source, lineno);
			if (__builtin_add_overflow(sum, mb, &sum))
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s:%u: MMIO sizes overflow", source, lineno);
			n++;
		}
	}
	if (n == 0)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: no 'And it requires at least: N MB of MMIO gap space' line "
				    "(is this SurveyDDA.ps1 output?)", source);
	*total_mb = sum;
	*devices = n;
	return 0;
}

int gp_surveydda_load(const char *path, uint64_t *total_mb, unsigned *devices,
		      struct gp_error *err)
{
	char *buf;
	size_t len;
	int rc = gp_hc_read_text(path, SURVEYDDA_MAX_BYTES, "SurveyDDA output", &buf, &len, err);

	if (rc)
		return rc;
	rc = gp_surveydda_parse(buf, len, path, total_mb, devices, err);
	free(buf);
	return rc;
}
