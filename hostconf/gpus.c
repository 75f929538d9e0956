/* gpus.c — parsing Hyper-V's partitionable-GPU lists and naming the GPUs
 * from pci.ids. See gpus.h. */
#include "gpus.h"
#include "hostconf_priv.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

/* A GPU list is a few KiB; anything this large is not one. */
#define GPU_LIST_MAX_BYTES (16u << 20)

const char *gp_gpu_res_name(enum gp_gpu_res r)
{
	static const char *const names[GP_RES_COUNT] = { "VRAM", "Encode", "Decode", "Compute" };

	return (unsigned)r < GP_RES_COUNT ? names[r] : NULL;
}

/* ---- one record as property/value pairs, whatever the input format ---- */

struct prop {
	char *key;
	char *val;
	unsigned line;      /* 0 when unknown (JSON) */
};

struct record {
	struct prop *props;
	size_t n, cap;
	unsigned line;      /* where the record starts; 0 for JSON */
	unsigned end;       /* the blank line that ended it; 0 at the end of input or JSON */
	size_t index;       /* 1-based record number, for JSON messages */
};

static void record_clear(struct record *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->props[i].key);
		free(r->props[i].val);
	}
	free(r->props);
	memset(r, 0, sizeof(*r));
}

static int record_add(struct record *r, const char *key, size_t klen, const char *val,
		      size_t vlen, unsigned line, struct gp_error *err)
{
	struct prop *p;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		struct prop *np = realloc(r->props, cap * sizeof(*np));
		if (!np)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		r->props = np;
		r->cap = cap;
	}
	p = &r->props[r->n];
	p->key = strndup(key, klen);
	p->val = strndup(val, vlen);
	p->line = line;
	if (!p->key || !p->val) {
		free(p->key);
		free(p->val);
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	r->n++;
	return 0;
}

/* Append a continuation line to the last value. */
static int record_append(struct record *r, const char *s, size_t len, struct gp_error *err)
{
	struct prop *p = &r->props[r->n - 1];
	size_t old = strlen(p->val);
	char *nv = realloc(p->val, old + len + 1);

	if (!nv)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	memcpy(nv + old, s, len);
	nv[old + len] = '\0';
	p->val = nv;
	return 0;
}

static const struct prop *record_get(const struct record *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcasecmp(r->props[i].key, key) == 0)
			return &r->props[i];
	return NULL;
}

/* Where a message about @p (or, when NULL, the record) points:
 * "SOURCE:LINE" for the list format, "SOURCE: GPU record N" for JSON. */
static void where(char *buf, size_t size, const char *source, const struct record *r,
		  const struct prop *p)
{
	unsigned line = p && p->line ? p->line : r->line;

	if (line)
		snprintf(buf, size, "%s:%u", source, line);
	else
		snprintf(buf, size, "%s: GPU record %zu", source, r->index);
}

/* The length of a thousands separator at @s: ',' or '.' (en-US, de-DE
 * consoles), a space, a no-break space (U+00A0) or a narrow no-break space
 * (U+202F, fr-FR); 0 if none. */
static size_t separator_len(const char *s)
{
	if (*s == ',' || *s == '.' || *s == ' ')
		return 1;
	if ((unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xA0)
		return 2;
	if ((unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x80 && (unsigned char)s[2] == 0xAF)
		return 3;
	return 0;
}

/* Strict unsigned decimal: digits only, no sign, no overflow; digit groups
 * separated as a console's culture prints them ("1,000,000,000", as in
 * Microsoft's own Get-VMPartitionableGpu sample): one to three digits, then
 * groups of exactly three after one and the same separator. The values are
 * integers (UInt64), so '.' can only be a group separator here. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t run = 0, sep = 0;
	const char *sep_at = NULL;
	bool grouped = false;

	if (!isdigit((unsigned char)*s))
		return -1;
	while (*s) {
		size_t n;

		if (isdigit((unsigned char)*s)) {
			if (__builtin_mul_overflow(v, (uint64_t)10, &v) ||
			    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
				return -1;
			run++;
			s++;
			continue;
		}
		n = separator_len(s);
		/* A separator follows a group of 1-3 digits (the first) or
		 * exactly 3, and is the same one each time. */
		if (!n || run == 0 || run > 3 || (grouped && run != 3) ||
		    (sep_at && (n != sep || memcmp(s, sep_at, n) != 0)))
			return -1;
		grouped = true;
		sep = n;
		sep_at = s;
		run = 0;
		s += n;
	}
	if (grouped && run != 3)
		return -1;
	*out = v;
	return 0;
}

/* Parse "{32}", "{1, 2, 4, 8...}" (console list), "[ 1, 2 ]" (JSON text)
 * or a bare number. */
static int parse_counts(const char *s, struct gp_gpu *g)
{
	const char *p = s;
	char close = 0;

	while (*p == ' ')
		p++;
	if (*p == '{')
		close = '}';
	else if (*p == '[')
		close = ']';
	if (close)
		p++;
	g->valid_count_n = 0;
	for (;;) {
		uint64_t v = 0;
		int digits = 0;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (close && *p == close) {
			p++;
			break;
		}
		if (!strncmp(p, "...", 3) || !strncmp(p, "\xe2\x80\xa6", 3)) {
			/* Format-List cuts long arrays ($FormatEnumerationLimit). */
			g->valid_counts_truncated = true;
			p += 3;
			continue;
		}
		if (!*p)
			break;
		while (isdigit((unsigned char)*p)) {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > UINT32_MAX)
				return -1;
			p++;
			digits++;
		}
		if (!digits)
			return -1;
		if (g->valid_count_n < GP_GPU_MAX_COUNTS)
			g->valid_counts[g->valid_count_n++] = (uint32_t)v;
		else
			g->valid_counts_truncated = true;
	}
	while (*p == ' ')
		p++;
	return *p ? -1 : 0;
}

/* Read @n hex digits at @s (no more, no fewer hex digits following). */
static int hexn(const char *s, int n, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (!isxdigit(c))
			return -1;
		v = v * 16 + (uint32_t)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
	}
	if (isxdigit((unsigned char)s[n]))
		return -1;
	*out = v;
	return 0;
}

/* Find "TAG" (case-insensitive) followed by @n hex digits in @s. */
static int find_hex_field(const char *s, const char *tag, int n, uint32_t *out)
{
	size_t tl = strlen(tag);

	for (const char *p = s; *p; p++)
		if (strncasecmp(p, tag, tl) == 0 && hexn(p + tl, n, out) == 0)
			return 0;
	return -1;
}

/* Decode VEN/DEV/SUBSYS/REV from an instance path or hardware ID. */
static void decode_ids(struct gp_gpu *g)
{
	uint32_t v;

	if (find_hex_field(g->instance_path, "VEN_", 4, &v) == 0) {
		g->vendor_id = (uint16_t)v;
		if (find_hex_field(g->instance_path, "DEV_", 4, &v) == 0) {
			g->device_id = (uint16_t)v;
			g->has_pci_ids = true;
		}
	}
	/* SUBSYS_ddddvvvv: subsystem device in the high half, vendor low. */
	if (find_hex_field(g->instance_path, "SUBSYS_", 8, &v) == 0) {
		g->subsys_device_id = (uint16_t)(v >> 16);
		g->subsys_vendor_id = (uint16_t)v;
		g->has_subsys = true;
	}
	if (find_hex_field(g->instance_path, "REV_", 2, &v) == 0) {
		g->revision = (uint8_t)v;
		g->has_rev = true;
	}
}

/* The property names of the twenty resource numbers, by resource. */
static const char *const res_prop_fmt[5] = {
	"Total%s", "Available%s", "MinPartition%s", "MaxPartition%s", "OptimalPartition%s",
};

static int record_to_gpu(const struct record *r, const char *source, struct gp_gpu *g,
			 struct gp_error *err)
{
	char at[512];
	const struct prop *p;

	memset(g, 0, sizeof(*g));
	g->line = r->line;
	p = record_get(r, "Name");
	if (!p || !p->val[0]) {
		where(at, sizeof(at), source, r, NULL);
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: GPU record has no Name (the instance path)", at);
	}
	/* The instance path goes into the host script and names the device to
	 * Hyper-V: a control character in it is a damaged or hostile file,
	 * never a device. */
	for (const unsigned char *c = (const unsigned char *)p->val; *c; c++) {
		if (*c < 0x20 || *c == 0x7f || (c[0] == 0xc2 && c[1] >= 0x80 && c[1] < 0xa0)) {
			where(at, sizeof(at), source, r, p);
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: the instance path (Name) holds control character "
					    "0x%02x; a device instance path never does", at,
					    *c == 0xc2 ? c[1] : *c);
		}
	}
	g->instance_path = strdup(p->val);
	if (!g->instance_path)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	decode_ids(g);

	for (int res = 0; res < GP_RES_COUNT; res++) {
		uint64_t *dst[5] = { &g->res[res].total, &g->res[res].available, &g->res[res].min,
				     &g->res[res].max, &g->res[res].optimal };
		for (int k = 0; k < 5; k++) {
			char key[64];

			snprintf(key, sizeof(key), res_prop_fmt[k], gp_gpu_res_name(res));
			p = record_get(r, key);
			if (!p && r->end)
				/* The blank line that cut the record short is
				 * what to look at. */
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s:%u: the GPU record of line %u ends at this "
						    "blank line without %s", source, r->end, r->line,
						    key);
			if (!p) {
				where(at, sizeof(at), source, r, NULL);
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: GPU record lacks %s", at, key);
			}
			if (parse_u64(p->val, dst[k]) != 0) {
				where(at, sizeof(at), source, r, p);
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: %s: '%.64s' is not an unsigned 64-bit number",
						    at, key, p->val);
			}
		}
	}
	p = record_get(r, "PartitionCount");
	if (p) {
		uint64_t v;
		if (parse_u64(p->val, &v) != 0 || v > UINT32_MAX) {
			where(at, sizeof(at), source, r, p);
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: PartitionCount: '%.64s' is not a count", at, p->val);
		}
		g->partition_count = (uint32_t)v;
	}
	p = record_get(r, "ValidPartitionCounts");
	if (p && parse_counts(p->val, g) != 0) {
		where(at, sizeof(at), source, r, p);
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: ValidPartitionCounts: '%.64s' is not a list of counts",
				    at, p->val);
	}
	p = record_get(r, "ComputerName");
	if (p && p->val[0]) {
		g->computer_name = strdup(p->val);
		if (!g->computer_name)
			return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	return 0;
}

static void gpu_free(struct gp_gpu *g)
{
	free(g->instance_path);
	free(g->vendor_name);
	free(g->device_name);
	free(g->subsys_name);
	free(g->subsys_vendor_name);
	free(g->computer_name);
	memset(g, 0, sizeof(*g));
}

void gp_gpus_free(struct gp_gpu_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		gpu_free(&l->gpus[i]);
	free(l->gpus);
	l->gpus = NULL;
	l->count = 0;
}

static int list_push(struct gp_gpu_list *l, const struct record *r, const char *source,
		     struct gp_error *err)
{
	struct gp_gpu g;
	struct gp_gpu *ng;
	int rc = record_to_gpu(r, source, &g, err);

	if (rc) {
		gpu_free(&g);
		return rc;
	}
	ng = realloc(l->gpus, (l->count + 1) * sizeof(*ng));
	if (!ng) {
		gpu_free(&g);
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	}
	l->gpus = ng;
	l->gpus[l->count++] = g;
	return 0;
}

/* ---- the console's list format ---- */

static bool is_key_char(int c)
{
	return isalnum(c) || c == '_';
}

/* A PowerShell prompt copied along with the output ("PS C:\> Get-..."). */
static bool is_prompt(const char *s, size_t len)
{
	return len >= 4 && !strncmp(s, "PS ", 3) && memchr(s, '>', len) != NULL;
}

/* After a blank line inside a record: does @line continue it? A stray
 * blank line (Microsoft's published Get-VMPartitionableGpu sample has one
 * between MaxPartitionEncode and OptimalPartitionEncode) is followed by a
 * property the record does not have yet; a new record starts with Name, or
 * repeats a property. */
static bool continues_record(const struct record *r, const char *line, size_t ll, size_t indent)
{
	size_t k = 0;
	char key[64];

	if (indent || is_prompt(line, ll))
		return false;
	while (k < ll && k < sizeof(key) - 1 && is_key_char((unsigned char)line[k]))
		k++;
	if (!k)
		return false;
	memcpy(key, line, k);
	key[k] = '\0';
	return strcasecmp(key, "Name") != 0 && !record_get(r, key);
}

static int parse_list(const char *text, size_t len, const char *source,
		      struct gp_gpu_list *out, struct gp_error *err)
{
	struct record rec = { 0 };
	size_t pos = 0;
	unsigned lineno = 0, blank = 0;
	int rc = 0;

	while (pos < len && rc == 0) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		size_t indent = 0;

		pos += ll + (nl ? 1 : 0);
		lineno++;
		while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
			ll--;
		if (memchr(line, '\0', ll)) {
			rc = gp_error_set(err, GP_ERR_CORRUPT, "%s:%u: NUL byte in a text list",
					  source, lineno);
			break;
		}
		if (ll == 0) {
			/* A blank line ends the record, unless what follows
			 * continues it (see below). */
			if (rec.n && !blank)
				blank = lineno;
			continue;
		}
		while (indent < ll && line[indent] == ' ')
			indent++;
		if (blank && !continues_record(&rec, line, ll, indent)) {
			rec.end = blank;
			rc = list_push(out, &rec, source, err);
			record_clear(&rec);
			if (rc)
				break;
		}
		blank = 0;
		if (indent > 0) {
			/* Format-List wraps a long value onto lines indented to the
			 * value column; the wrap falls mid-word, so the pieces join
			 * without a separator. */
			if (!rec.n) {
				rc = gp_error_set(err, GP_ERR_CORRUPT,
						  "%s:%u: indented line outside a GPU record "
						  "(expected 'Property : value')", source, lineno);
				break;
			}
			rc = record_append(&rec, line + indent, ll - indent, err);
			continue;
		}
		if (!rec.n && is_prompt(line, ll))
			continue;
		{
			size_t k = 0, colon;

			while (k < ll && is_key_char((unsigned char)line[k]))
				k++;
			colon = k;
			while (colon < ll && line[colon] == ' ')
				colon++;
			if (k == 0 || colon >= ll || line[colon] != ':' ||
			    (colon + 1 < ll && line[colon + 1] != ' ')) {
				rc = gp_error_set(err, GP_ERR_CORRUPT,
						  "%s:%u: expected 'Property : value' of "
						  "Get-VMHostPartitionableGpu output, got '%.*s'",
						  source, lineno, (int)(ll < 40 ? ll : 40), line);
				break;
			}
			colon++;
			if (colon < ll)
				colon++; /* the space after ':' */
			if (!rec.n)
				rec.line = lineno;
			rc = record_add(&rec, line, k, line + colon, ll - colon, lineno, err);
		}
	}
	if (rc == 0 && rec.n)
		rc = list_push(out, &rec, source, err);
	record_clear(&rec);
	return rc;
}

/* ---- ConvertTo-Json output ---- */

static unsigned line_of_offset(const char *text, size_t off)
{
	unsigned line = 1;

	for (size_t i = 0; i < off; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

static int json_record(struct json_object *obj, size_t index, const char *source,
		       struct gp_gpu_list *out, struct gp_error *err)
{
	struct record rec = { 0 };
	int rc = 0;

	rec.index = index;
	if (!json_object_is_type(obj, json_type_object))
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: GPU record %zu: expected a JSON object", source, index);
	json_object_object_foreach(obj, key, val) {
		const char *s;

		/* Nested objects (CimSession) carry nothing we need. */
		if (json_object_is_type(val, json_type_object) ||
		    json_object_is_type(val, json_type_null))
			continue;
		s = json_object_get_string(val);
		if (!s)
			continue;
		rc = record_add(&rec, key, strlen(key), s, strlen(s), 0, err);
		if (rc)
			break;
	}
	if (rc == 0)
		rc = list_push(out, &rec, source, err);
	record_clear(&rec);
	return rc;
}

static int parse_json(const char *text, size_t len, const char *source,
		      struct gp_gpu_list *out, struct gp_error *err)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root;
	size_t end;
	int rc = 0;

	if (!tok)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (len > INT32_MAX)
		len = INT32_MAX;
	root = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (!root) {
		enum json_tokener_error je = json_tokener_get_error(tok);
		if (je == json_tokener_continue)
			rc = gp_error_set(err, GP_ERR_CORRUPT, "%s:%u: JSON ends early",
					  source, line_of_offset(text, len));
		else
			rc = gp_error_set(err, GP_ERR_CORRUPT, "%s:%u: bad JSON: %s", source,
					  line_of_offset(text, end < len ? end : len),
					  json_tokener_error_desc(je));
		json_tokener_free(tok);
		return rc;
	}
	for (size_t i = end; i < len; i++) {
		if (!isspace((unsigned char)text[i]) && text[i] != '\0') {
			rc = gp_error_set(err, GP_ERR_CORRUPT,
					  "%s:%u: text after the JSON value", source,
					  line_of_offset(text, i));
			break;
		}
	}
	if (rc == 0) {
		if (json_object_is_type(root, json_type_array)) {
			size_t n = json_object_array_length(root);
			for (size_t i = 0; i < n && rc == 0; i++)
				rc = json_record(json_object_array_get_idx(root, i), i + 1, source,
						 out, err);
		} else {
			rc = json_record(root, 1, source, out, err);
		}
	}
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

int gp_gpus_parse(const char *text, size_t len, const char *source,
		  struct gp_gpu_list *out, struct gp_error *err)
{
	char *conv;
	size_t i = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!source)
		source = "GPU list";
	conv = gp_hc_text_to_utf8(text, len, &len);
	if (!conv)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	text = conv;
	while (i < len && isspace((unsigned char)text[i]))
		i++;
	if (i < len && (text[i] == '{' || text[i] == '['))
		rc = parse_json(text, len, source, out, err);
	else
		rc = parse_list(text, len, source, out, err);
	if (rc == 0 && out->count == 0)
		rc = gp_error_set(err, GP_ERR_NOTFOUND,
				  "%s: no partitionable GPU listed (is GPU-P supported and the "
				  "GPU driver installed on the host?)", source);
	if (rc)
		gp_gpus_free(out);
	free(conv);
	return rc;
}

int gp_gpus_load(const char *path, struct gp_gpu_list *out, struct gp_error *err)
{
	char *buf;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = gp_hc_read_text(path, GPU_LIST_MAX_BYTES, "GPU list", &buf, &len, err);
	if (rc)
		return rc;
	rc = gp_gpus_parse(buf, len, path, out, err);
	free(buf);
	return rc;
}

/* ---- pci.ids ---- */

/* Copy the name that follows the ID column(s) on a pci.ids line. */
static char *name_after(const char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	return strndup(s, n);
}

static int set_name(char **dst, const char *s, struct gp_error *err)
{
	if (*dst)
		return 0;
	*dst = name_after(s);
	return *dst ? 0 : gp_error_set(err, GP_ERR_NOMEM, "out of memory");
}

int gp_pci_ids_lookup(const char *pci_ids, uint16_t ven, uint16_t dev, uint16_t subven,
		      uint16_t subdev, char **ven_name, char **dev_name, char **subsys_name,
		      char **subven_name, struct gp_error *err)
{
	char *vn = NULL, *dn = NULL, *sn = NULL, *svn = NULL;
	bool want_sub = subven || subdev;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long cur_ven = -1, cur_dev = -1;
	FILE *f;
	int rc = 0;

	if (!pci_ids)
		pci_ids = GP_PCI_IDS_DEFAULT;
	f = fopen(pci_ids, "r");
	if (!f)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO,
					  errno, "%s", pci_ids);
	/* One pass, line by line: vendor lines start in column 0, devices
	 * with one tab, subsystems ("subvendor subdevice  name") with two.
	 * The class list ("C xx") after the vendors is not needed. */
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		uint32_t a, b;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (line[0] == 'C' && line[1] == ' ')
			break;
		if (line[0] != '\t') {
			if (hexn(line, 4, &a) != 0)
				continue;
			cur_ven = a;
			cur_dev = -1;
			if (a == ven)
				rc = set_name(&vn, line + 4, err);
			if (rc == 0 && want_sub && a == subven)
				rc = set_name(&svn, line + 4, err);
		} else if (line[1] != '\t') {
			if (hexn(line + 1, 4, &a) != 0)
				continue;
			cur_dev = a;
			if (cur_ven == ven && a == dev)
				rc = set_name(&dn, line + 5, err);
		} else if (want_sub && cur_ven == ven && cur_dev == dev) {
			if (hexn(line + 2, 4, &a) == 0 && line[6] == ' ' &&
			    hexn(line + 7, 4, &b) == 0 && a == subven && b == subdev)
				rc = set_name(&sn, line + 11, err);
		}
		if (vn && dn && (!want_sub || (sn && svn)))
			break;
	}
	if (rc == 0 && ferror(f))
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: read", pci_ids);
	free(line);
	fclose(f);
	if (rc) {
		free(vn);
		free(dn);
		free(sn);
		free(svn);
		return rc;
	}
#define HAND_OVER(out, v) do { if (out) *(out) = (v); else free(v); } while (0)
	HAND_OVER(ven_name, vn);
	HAND_OVER(dev_name, dn);
	HAND_OVER(subsys_name, sn);
	HAND_OVER(subven_name, svn);
#undef HAND_OVER
	return 0;
}

int gp_gpus_lookup_names(struct gp_gpu_list *l, const char *pci_ids, struct gp_error *err)
{
	for (size_t i = 0; i < l->count; i++) {
		struct gp_gpu *g = &l->gpus[i];
		int rc;

		if (!g->has_pci_ids)
			continue;
		free(g->vendor_name);
		free(g->device_name);
		free(g->subsys_name);
		free(g->subsys_vendor_name);
		g->vendor_name = g->device_name = g->subsys_name = g->subsys_vendor_name = NULL;
		rc = gp_pci_ids_lookup(pci_ids, g->vendor_id, g->device_id,
				       g->has_subsys ? g->subsys_vendor_id : 0,
				       g->has_subsys ? g->subsys_device_id : 0, &g->vendor_name,
				       &g->device_name, &g->subsys_name, &g->subsys_vendor_name,
				       err);
		if (rc)
			return rc;
	}
	return 0;
}
