/* gpusel.c — the one --gpu selector syntax, and choosing a GPU of a list by
 * it. See gpus.h. */
#include "gpus.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool gp_hex_exact(const char *s, size_t len, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int c = tolower((unsigned char)s[i]);

		if (!isxdigit(c))
			return false;
		v = (v << 4) | (uint32_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
	}
	*out = v;
	return true;
}

/* "VEN_xxxx[&DEV_yyyy][&SUBSYS_ssssssss][&REV_rr]" in s[0..len), fields
 * in any order, each at most once. Any other token is refused: a selector
 * is typed by a person, and "VEN_10DE&DEV_286O" must not quietly select
 * every NVIDIA GPU. */
static bool parse_fields(const char *s, size_t len, struct gp_gpu_selector *sel)
{
	size_t i = 0;

	while (i <= len) {
		size_t j = i;
		const char *t = s + i;
		size_t tl;
		uint32_t v;

		while (j < len && s[j] != '&')
			j++;
		tl = j - i;
		if (tl > 4 && !strncasecmp(t, "VEN_", 4) && !sel->has_ven &&
		    gp_hex_exact(t + 4, tl - 4, 4, &v)) {
			sel->ven = (uint16_t)v;
			sel->has_ven = true;
		} else if (tl > 4 && !strncasecmp(t, "DEV_", 4) && !sel->has_dev &&
			   gp_hex_exact(t + 4, tl - 4, 4, &v)) {
			sel->dev = (uint16_t)v;
			sel->has_dev = true;
		} else if (tl > 7 && !strncasecmp(t, "SUBSYS_", 7) && !sel->has_subsys &&
			   gp_hex_exact(t + 7, tl - 7, 8, &v)) {
			sel->subsys = v;
			sel->has_subsys = true;
		} else if (tl > 4 && !strncasecmp(t, "REV_", 4) && !sel->has_rev &&
			   gp_hex_exact(t + 4, tl - 4, 2, &v)) {
			sel->rev = (uint8_t)v;
			sel->has_rev = true;
		} else {
			return false;
		}
		i = j + 1;
	}
	return sel->has_ven;
}

int gp_gpu_selector_parse(const char *text, struct gp_gpu_selector *sel, struct gp_error *err)
{
	const char *p = text;
	uint32_t v;

	memset(sel, 0, sizeof(*sel));
	sel->text = text;
	if (!text || !*text)
		return gp_error_set(err, GP_ERR_INVALID, "--gpu: empty GPU selector");
	for (const unsigned char *c = (const unsigned char *)text; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return gp_error_set(err, GP_ERR_INVALID,
					    "--gpu: control character \\x%02x at offset %zu of the "
					    "GPU selector", *c, (size_t)(c - (const unsigned char *)text));
	if (!strcasecmp(text, "auto")) {
		sel->kind = GP_GPU_SEL_AUTO;
		return 0;
	}
	/* 10de:2860, as pci.ids and lspci -n write it. */
	if (strlen(text) == 9 && text[4] == ':' && gp_hex_exact(text, 4, 4, &v)) {
		sel->ven = (uint16_t)v;
		if (gp_hex_exact(text + 5, 4, 4, &v)) {
			sel->dev = (uint16_t)v;
			sel->has_ven = sel->has_dev = true;
			sel->kind = GP_GPU_SEL_IDS;
			return 0;
		}
	}
	/* \\?\PCI#VEN_..#4&..#{guid} (Get-VMHostPartitionableGpu's Name),
	 * PCI\VEN_..\4&.. (a device instance path), PCI\VEN_.. (a hardware
	 * ID): the IDs run to the next '#' or '\'; what follows is the
	 * instance. */
	if (!strncmp(p, "\\\\?\\", 4) || !strncmp(p, "\\\\.\\", 4))
		p += 4;
	if (!strncasecmp(p, "PCI", 3) && (p[3] == '#' || p[3] == '\\')) {
		size_t n = strcspn(p + 4, "#\\");

		if (!parse_fields(p + 4, n, sel) || !sel->has_dev)
			return gp_error_set(err, GP_ERR_INVALID,
					    "--gpu '%s': not a PCI GPU (want PCI\\VEN_xxxx&DEV_yyyy"
					    "[&SUBSYS_ssssssss][&REV_rr], optionally with its instance)",
					    text);
		sel->kind = p[4 + n] ? GP_GPU_SEL_INSTANCE : GP_GPU_SEL_IDS;
		return 0;
	}
	if (!strncasecmp(text, "VEN_", 4)) {
		if (!parse_fields(text, strlen(text), sel))
			return gp_error_set(err, GP_ERR_INVALID,
					    "--gpu '%s': want VEN_xxxx[&DEV_yyyy][&SUBSYS_ssssssss]"
					    "[&REV_rr] (4, 4, 8 and 2 hex digits)", text);
		sel->kind = GP_GPU_SEL_IDS;
		return 0;
	}
	/* A bare "10de" is both a vendor ID (as gpup has always read it) and
	 * a name substring ("4090"): it selects by either. */
	sel->kind = GP_GPU_SEL_NAME;
	if (strlen(text) == 4 && gp_hex_exact(text, 4, 4, &v)) {
		sel->ven = (uint16_t)v;
		sel->has_ven = true;
	}
	return 0;
}

/* An instance path in one spelling: "\\?\PCI#A#B#{guid}" and "PCI\A\B"
 * both become "PCI\A\B" (upper case), so that the Name Hyper-V lists and
 * the instance path Device Manager shows select the same GPU. */
static void canonical_instance(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	if (!strncmp(s, "\\\\?\\", 4) || !strncmp(s, "\\\\.\\", 4))
		s += 4;
	for (; *s && o + 1 < size; s++) {
		if ((*s == '#' || *s == '\\') && s[1] == '{')
			break;           /* the interface class GUID */
		buf[o++] = *s == '#' ? '\\' : (char)toupper((unsigned char)*s);
	}
	buf[o] = '\0';
}

bool gp_gpu_selector_match_ids(const struct gp_gpu_selector *sel, uint16_t ven, uint16_t dev,
			       bool has_subsys, uint32_t subsys, bool has_rev, uint8_t rev)
{
	if (sel->kind != GP_GPU_SEL_IDS && sel->kind != GP_GPU_SEL_INSTANCE)
		return false;
	return ven == sel->ven && (!sel->has_dev || dev == sel->dev) &&
	       (!sel->has_subsys || (has_subsys && subsys == sel->subsys)) &&
	       (!sel->has_rev || (has_rev && rev == sel->rev));
}

bool gp_gpu_selector_match_name(const struct gp_gpu_selector *sel, const char *name)
{
	return sel->kind == GP_GPU_SEL_NAME && name && strcasestr(name, sel->text);
}

bool gp_gpu_selector_matches(const struct gp_gpu_selector *sel, const struct gp_gpu *g)
{
	char a[512], b[512];

	switch (sel->kind) {
	case GP_GPU_SEL_AUTO:
		return true;
	case GP_GPU_SEL_INSTANCE:
		canonical_instance(sel->text, a, sizeof(a));
		canonical_instance(g->instance_path, b, sizeof(b));
		return !strcmp(a, b);
	case GP_GPU_SEL_IDS:
		return g->has_pci_ids &&
		       gp_gpu_selector_match_ids(sel, g->vendor_id, g->device_id, g->has_subsys,
						 ((uint32_t)g->subsys_device_id << 16) |
							 g->subsys_vendor_id,
						 g->has_rev, g->revision);
	case GP_GPU_SEL_NAME:
		return gp_gpu_selector_match_name(sel, g->device_name) ||
		       gp_gpu_selector_match_name(sel, g->subsys_name) ||
		       (sel->has_ven && g->has_pci_ids && g->vendor_id == sel->ven);
	}
	return false;
}

/* "VEN_10DE&DEV_2860 (AD106M [GeForce RTX 4070 Max-Q / Mobile]), ..." for
 * the GPUs of @l that @sel matches (all of them with @sel NULL). */
static void list_candidates(const struct gp_gpu_list *l, const struct gp_gpu_selector *sel,
			    char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->count && o + 1 < size; i++) {
		const struct gp_gpu *g = &l->gpus[i];
		int w;

		if (sel && !gp_gpu_selector_matches(sel, g))
			continue;
		if (g->has_pci_ids)
			w = snprintf(buf + o, size - o, "%sVEN_%04X&DEV_%04X%s%s%s", o ? ", " : "",
				     g->vendor_id, g->device_id, g->device_name ? " (" : "",
				     g->device_name ? g->device_name : "", g->device_name ? ")" : "");
		else
			w = snprintf(buf + o, size - o, "%s%.60s", o ? ", " : "", g->instance_path);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

int gp_gpus_select(const struct gp_gpu_list *l, const char *id, size_t *index,
		   struct gp_error *err)
{
	struct gp_gpu_selector sel;
	char cands[768];
	size_t found = 0, which = 0;
	int rc = gp_gpu_selector_parse(id, &sel, err);

	if (rc)
		return rc;
	if (l->count == 0)
		return gp_error_set(err, GP_ERR_NOTFOUND, "no partitionable GPU on this host");
	for (size_t i = 0; i < l->count; i++)
		if (gp_gpu_selector_matches(&sel, &l->gpus[i])) {
			found++;
			which = i;
		}
	if (found == 1) {
		*index = which;
		return 0;
	}
	if (found > 1 && sel.kind == GP_GPU_SEL_AUTO) {
		list_candidates(l, NULL, cands, sizeof(cands));
		return gp_error_set(err, GP_ERR_INVALID,
				    "--gpu auto: the host has %zu partitionable GPUs: %s; name one",
				    l->count, cands);
	}
	if (found > 1) {
		list_candidates(l, &sel, cands, sizeof(cands));
		return gp_error_set(err, GP_ERR_INVALID,
				    "--gpu '%s' matches %zu GPUs: %s; name one (its VEN_&DEV_&SUBSYS_ "
				    "or instance path)", id, found, cands);
	}
	list_candidates(l, NULL, cands, sizeof(cands));
	return gp_error_set(err, GP_ERR_NOTFOUND,
			    "--gpu '%s': no partitionable GPU matches (the host has: %s)", id, cands);
}
