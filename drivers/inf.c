/* inf.c — INF parser. See inf.h for the syntax it understands and its limits.
 *
 * Three steps: decode the bytes to UTF-8 (decode()), cut the text into
 * logical lines filed under their sections (split_lines(): comments,
 * continuations and quotes are handled here, so later steps see one clean
 * line at a time), then, once every [Strings] line is known, split each line
 * into key and values with %key% substitution (cook_lines()). [Strings]
 * usually comes last in the file, which is why substitution waits for the
 * whole file.
 *
 * All strings live in one arena whose total size is bounded by the input
 * size (GP_INF_MEM_FACTOR * len + GP_INF_MEM_SLACK), so a hostile file (a
 * %key% bomb, millions of tiny lines) ends in GP_ERR_CORRUPT, not in an
 * unbounded allocation. */
#include "inf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "le.h"

/* ---- arena ------------------------------------------------------------- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	char data[];
};

struct arena {
	struct chunk *head;
	uint64_t total;   /* bytes handed out, counted against budget */
	uint64_t budget;
	bool over;        /* budget exceeded: the file is rejected */
	bool nomem;       /* malloc failed */
};

#define CHUNK_MIN (64u * 1024)

/* Charge @n bytes against the budget without allocating (for arrays the
 * parser reallocs itself). Returns false when over budget. */
static bool charge(struct arena *a, uint64_t n)
{
	if (add_u64(a->total, n, &a->total) < 0 || a->total > a->budget) {
		a->over = true;
		return false;
	}
	return true;
}

static void *arena_alloc(struct arena *a, size_t n, size_t align)
{
	struct chunk *c = a->head;
	size_t off;

	if (!charge(a, n))
		return NULL;
	if (c) {
		off = (c->used + align - 1) & ~(align - 1);
		if (off <= c->cap && c->cap - off >= n) {
			c->used = off + n;
			return c->data + off;
		}
	}
	{
		size_t cap = n + align > CHUNK_MIN ? n + align : CHUNK_MIN;
		/* data[] of a malloc'ed chunk is suitably aligned for max_align_t
		 * minus the header; align offsets within it explicitly. */
		c = malloc(sizeof(*c) + cap);
		if (!c) {
			a->nomem = true;
			return NULL;
		}
		c->next = a->head;
		c->cap = cap;
		c->used = 0;
		a->head = c;
		off = ((uintptr_t)c->data + align - 1) & ~(uintptr_t)(align - 1);
		off -= (uintptr_t)c->data;
		c->used = off + n;
		return c->data + off;
	}
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1, 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static void arena_free(struct arena *a)
{
	struct chunk *c = a->head, *n;

	for (; c; c = n) {
		n = c->next;
		free(c);
	}
	a->head = NULL;
}

/* ---- growable byte buffer (scratch) ------------------------------------ */

struct buf {
	char *p;
	size_t len, cap;
	bool nomem;
};

static bool buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->nomem)
		return false;
	if (__builtin_add_overflow(b->len, extra, &need) || need == SIZE_MAX) {
		b->nomem = true;
		return false;
	}
	need++;  /* room for a NUL */
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (!p) {
		b->nomem = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static inline void buf_putc(struct buf *b, char c)
{
	if (b->len + 1 < b->cap || buf_reserve(b, 1))
		b->p[b->len++] = c;
}

static void buf_put(struct buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void buf_put_cp(struct buf *b, uint32_t cp)
{
	char t[4];
	size_t n;

	if (cp < 0x80) {
		t[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		t[0] = (char)(0xC0 | (cp >> 6));
		t[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		t[0] = (char)(0xE0 | (cp >> 12));
		t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		t[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		t[0] = (char)(0xF0 | (cp >> 18));
		t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		t[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_put(b, t, n);
}

/* ---- the parsed file ---------------------------------------------------- */

struct raw_line {
	const char *text;   /* arena, NUL-terminated, trimmed */
	size_t len;
	uint32_t lineno;
};

struct section {
	struct gp_inf_section pub;
	struct raw_line *raw;
	size_t n_raw, cap_raw;
	struct gp_inf_line *lines;
};

struct strent {
	const char *key;
	const char *value;
};

struct gp_inf {
	char *name;
	enum gp_inf_encoding enc;
	struct arena arena;
	struct section *secs;
	size_t n_secs, cap_secs;
	/* section name -> index + 1 (0 = empty slot); power-of-two size */
	uint32_t *sec_hash;
	size_t sec_hash_size;
	/* [Strings]: open addressing, power-of-two size */
	struct strent *str;
	size_t str_size, n_str;
	char *warn[GP_INF_MAX_WARNINGS];
	size_t n_warn;
	bool depth_warned;
};

static void warn(struct gp_inf *inf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct gp_inf *inf, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL, *line = NULL;

	if (inf->n_warn < GP_INF_MAX_WARNINGS) {
		va_start(ap, fmt);
		if (vasprintf(&s, fmt, ap) < 0)
			s = NULL;
		va_end(ap);
		if (s && asprintf(&line, "%s: %s", inf->name, s) < 0)
			line = NULL;
		free(s);
		inf->warn[inf->n_warn] = line;
	}
	inf->n_warn++;
}

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static uint32_t hash_ci(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ lower((unsigned char)s[i])) * 16777619u;
	return h;
}

/* Case-insensitive compare of @a[0..n) with NUL-terminated @b. ASCII only:
 * INF names are ASCII, and setupapi folds ASCII case too. */
static bool eq_ci_n(const char *a, size_t n, const char *b)
{
	for (size_t i = 0; i < n; i++)
		if (!b[i] || lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return b[n] == '\0';
}

/* ---- step 1: bytes -> UTF-8 -------------------------------------------- */

/* Windows-1252 bytes 0x80..0x9F; the five undefined ones map to the C1
 * control of the same value, as MultiByteToWideChar does. */
static const uint16_t cp1252_hi[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static bool valid_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t k;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			k = 1; cp = c & 0x1F; min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2; cp = c & 0x0F; min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k + 1;
	}
	return true;
}

/* UTF-16LE without a BOM: ASCII-heavy text has a zero high byte in nearly
 * every code unit; 8-bit text almost never has NULs at all. */
static bool looks_utf16le(const uint8_t *p, size_t n)
{
	size_t pairs = n / 2, look = pairs < 512 ? pairs : 512, hits = 0;

	if (look < 2)
		return false;
	for (size_t i = 0; i < look; i++)
		if (p[2 * i] != 0 && p[2 * i + 1] == 0)
			hits++;
	return hits * 10 >= look * 9;
}

static int decode_utf16(struct gp_inf *inf, const uint8_t *p, size_t n, bool be,
			struct buf *out, struct gp_error *err)
{
	size_t units = n / 2;
	bool bad_warned = false, nul_warned = false;

	if (n % 2)
		warn(inf, "UTF-16 text has an odd length (%zu bytes); last byte ignored", n);
	if (!buf_reserve(out, units * 3 / 2 + 16))
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory decoding UTF-16", inf->name);
	for (size_t i = 0; i < units; i++) {
		uint32_t u = be ? (uint32_t)((p[2 * i] << 8) | p[2 * i + 1]) : get_le16(p + 2 * i);

		if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units) {
			uint32_t v = be ? (uint32_t)((p[2 * i + 2] << 8) | p[2 * i + 3])
					: get_le16(p + 2 * i + 2);
			if (v >= 0xDC00 && v <= 0xDFFF) {
				buf_put_cp(out, 0x10000 + ((u - 0xD800) << 10) + (v - 0xDC00));
				i++;
				continue;
			}
		}
		if (u >= 0xD800 && u <= 0xDFFF) {
			if (!bad_warned)
				warn(inf, "invalid UTF-16 at byte offset %zu: unpaired surrogate 0x%04X "
					  "replaced by U+FFFD", 2 * i, (unsigned)u);
			bad_warned = true;
			u = 0xFFFD;
		}
		if (u == 0) {
			/* Some tools pad UTF-16 INFs with NULs; they carry nothing. */
			if (!nul_warned)
				warn(inf, "NUL character at byte offset %zu ignored", 2 * i);
			nul_warned = true;
			continue;
		}
		buf_put_cp(out, u);
	}
	if (out->nomem)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory decoding UTF-16", inf->name);
	return 0;
}

static int decode(struct gp_inf *inf, const uint8_t *p, size_t n, struct buf *out,
		  struct gp_error *err)
{
	if (n >= 2 && p[0] == 0xFF && p[1] == 0xFE) {
		inf->enc = GP_INF_ENC_UTF16LE_BOM;
		return decode_utf16(inf, p + 2, n - 2, false, out, err);
	}
	if (n >= 2 && p[0] == 0xFE && p[1] == 0xFF) {
		inf->enc = GP_INF_ENC_UTF16BE_BOM;
		return decode_utf16(inf, p + 2, n - 2, true, out, err);
	}
	if (looks_utf16le(p, n)) {
		inf->enc = GP_INF_ENC_UTF16LE;
		return decode_utf16(inf, p, n, false, out, err);
	}
	if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
		inf->enc = GP_INF_ENC_UTF8_BOM;
		p += 3;
		n -= 3;
	} else {
		inf->enc = GP_INF_ENC_UTF8;
	}
	{
		const uint8_t *z = memchr(p, 0, n);
		if (z)
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: binary data (NUL byte at offset %zu), not an INF file",
					    inf->name, (size_t)(z - p) + (inf->enc == GP_INF_ENC_UTF8_BOM ? 3 : 0));
	}
	if (valid_utf8(p, n)) {
		buf_put(out, (const char *)p, n);
	} else if (inf->enc == GP_INF_ENC_UTF8_BOM) {
		/* The BOM says UTF-8: keep that, and replace each byte that
		 * starts no valid sequence by U+FFFD (as Windows does), so that
		 * every string handed out is valid UTF-8. */
		size_t i = 0, bad = SIZE_MAX;
		while (i < n) {
			size_t k = 1;
			if (p[i] >= 0x80) {
				k = (p[i] & 0xE0) == 0xC0 ? 2 : (p[i] & 0xF0) == 0xE0 ? 3
				    : (p[i] & 0xF8) == 0xF0 ? 4 : 0;
				if (!k || n - i < k || !valid_utf8(p + i, k)) {
					if (bad == SIZE_MAX)
						bad = i + 3;
					buf_put_cp(out, 0xFFFD);
					i++;
					continue;
				}
			}
			buf_put(out, (const char *)p + i, k);
			i += k;
		}
		warn(inf, "invalid UTF-8 at byte offset %zu (and maybe later) replaced by U+FFFD", bad);
	} else {
		inf->enc = GP_INF_ENC_ANSI;
		if (!buf_reserve(out, n + n / 2))
			return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", inf->name);
		for (size_t i = 0; i < n; i++) {
			uint8_t c = p[i];
			if (c < 0x80)
				buf_putc(out, (char)c);
			else if (c < 0xA0)
				buf_put_cp(out, cp1252_hi[c - 0x80]);
			else
				buf_put_cp(out, c);
		}
	}
	if (out->nomem)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", inf->name);
	return 0;
}

/* ---- step 2: text -> logical lines under sections ---------------------- */

static struct section *find_section_n(const struct gp_inf *inf, const char *name, size_t n)
{
	size_t mask = inf->sec_hash_size - 1;

	if (!inf->sec_hash_size)
		return NULL;
	for (size_t i = hash_ci(name, n) & mask;; i = (i + 1) & mask) {
		uint32_t v = inf->sec_hash[i];
		if (!v)
			return NULL;
		if (eq_ci_n(name, n, inf->secs[v - 1].pub.name))
			return &inf->secs[v - 1];
	}
}

static bool rehash_sections(struct gp_inf *inf, size_t size)
{
	uint32_t *h = calloc(size, sizeof(*h));

	if (!h)
		return false;
	for (size_t s = 0; s < inf->n_secs; s++) {
		const char *nm = inf->secs[s].pub.name;
		size_t i = hash_ci(nm, strlen(nm)) & (size - 1);
		while (h[i])
			i = (i + 1) & (size - 1);
		h[i] = (uint32_t)(s + 1);
	}
	free(inf->sec_hash);
	inf->sec_hash = h;
	inf->sec_hash_size = size;
	return true;
}

/* The section @name (n bytes), created at the end when new. NULL on
 * allocation failure or budget exhaustion (arena flags say which). */
static struct section *get_section(struct gp_inf *inf, const char *name, size_t n)
{
	struct section *s = find_section_n(inf, name, n);

	if (s)
		return s;
	if (inf->n_secs >= UINT32_MAX - 1 || !charge(&inf->arena, sizeof(*s)))
		return NULL;
	if (inf->n_secs == inf->cap_secs) {
		size_t cap = inf->cap_secs ? inf->cap_secs * 2 : 64;
		struct section *p = realloc(inf->secs, cap * sizeof(*p));
		if (!p) {
			inf->arena.nomem = true;
			return NULL;
		}
		inf->secs = p;
		inf->cap_secs = cap;
	}
	s = &inf->secs[inf->n_secs];
	memset(s, 0, sizeof(*s));
	s->pub.name = arena_strndup(&inf->arena, name, n);
	if (!s->pub.name)
		return NULL;
	inf->n_secs++;
	if (inf->n_secs * 2 > inf->sec_hash_size) {
		if (!rehash_sections(inf, inf->sec_hash_size ? inf->sec_hash_size * 2 : 128)) {
			inf->n_secs--;
			inf->arena.nomem = true;
			return NULL;
		}
	} else {
		size_t mask = inf->sec_hash_size - 1, i = hash_ci(name, n) & mask;
		while (inf->sec_hash[i])
			i = (i + 1) & mask;
		inf->sec_hash[i] = (uint32_t)inf->n_secs;
	}
	return s;
}

static bool add_raw(struct gp_inf *inf, struct section *s, const char *text, size_t len,
		    uint32_t lineno)
{
	struct raw_line *r;

	if (s->n_raw == s->cap_raw) {
		size_t cap = s->cap_raw ? s->cap_raw * 2 : 8;
		if (!charge(&inf->arena, (cap - s->cap_raw) * (sizeof(*r) + sizeof(struct gp_inf_line))))
			return false;
		r = realloc(s->raw, cap * sizeof(*r));
		if (!r) {
			inf->arena.nomem = true;
			return false;
		}
		s->raw = r;
		s->cap_raw = cap;
	}
	r = &s->raw[s->n_raw];
	r->text = arena_strndup(&inf->arena, text, len);
	if (!r->text)
		return false;
	r->len = len;
	r->lineno = lineno;
	s->n_raw++;
	return true;
}

static inline bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

/* Cut @t (n bytes, UTF-8) into logical lines and file them under their
 * sections. Returns false on allocation failure / budget exhaustion. */
static bool split_lines(struct gp_inf *inf, const char *t, size_t n)
{
	struct buf cur = { 0 };
	struct section *sec = NULL;
	size_t pos = 0;
	uint32_t lineno = 1;
	bool outside_warned = false, ok = true;

	while (pos < n && ok) {
		uint32_t start_line = lineno;
		bool more = true;

		cur.len = 0;
		while (more) {
			bool in_q = false;
			size_t start = pos;

			/* One physical line: copy it up to a comment or the end. */
			while (pos < n && t[pos] != '\n' && t[pos] != '\r') {
				char c = t[pos];
				if (c == '"') {
					in_q = !in_q;
				} else if (c == ';' && !in_q) {
					/* Copy what came before the comment, skip the rest. */
					break;
				}
				pos++;
			}
			buf_put(&cur, t + start, pos - start);
			while (pos < n && t[pos] != '\n' && t[pos] != '\r')
				pos++;
			if (in_q) {
				warn(inf, "line %u: unterminated quoted string (closed at the end of the line)",
				     (unsigned)lineno);
				buf_putc(&cur, '"');
			}
			/* Line end: CRLF, LF or a lone CR. */
			if (pos < n && t[pos] == '\r') {
				pos++;
				if (pos < n && t[pos] == '\n')
					pos++;
			} else if (pos < n && t[pos] == '\n') {
				pos++;
			}
			lineno++;
			/* Continuation: a '\' ending the line outside quotes. */
			while (cur.len && is_blank(cur.p[cur.len - 1]))
				cur.len--;
			if (!in_q && cur.len && cur.p[cur.len - 1] == '\\' && pos < n) {
				cur.len--;
				continue;
			}
			more = false;
		}
		if (cur.nomem) {
			inf->arena.nomem = true;
			ok = false;
			break;
		}
		{
			size_t b = 0, e = cur.len;
			const char *l = cur.p;

			while (b < e && (is_blank(l[b]) || l[b] == '\0'))
				b++;
			if (b == e)
				continue;
			if (l[b] == '[') {
				const char *close = memchr(l + b + 1, ']', e - b - 1);
				size_t nb = b + 1, ne = close ? (size_t)(close - l) : e;
				if (!close)
					warn(inf, "line %u: section header without ']'", (unsigned)start_line);
				while (nb < ne && is_blank(l[nb]))
					nb++;
				while (ne > nb && is_blank(l[ne - 1]))
					ne--;
				sec = get_section(inf, l + nb, ne - nb);
				if (!sec)
					ok = false;
				continue;
			}
			if (!sec) {
				if (!outside_warned)
					warn(inf, "line %u: text before the first [section] ignored",
					     (unsigned)start_line);
				outside_warned = true;
				continue;
			}
			if (!add_raw(inf, sec, l + b, e - b, start_line))
				ok = false;
		}
	}
	free(cur.p);
	return ok;
}

/* ---- step 3: lines -> key and values, with %key% substitution ----------- */

static const char *lookup_string_n(const struct gp_inf *inf, const char *key, size_t n)
{
	size_t mask = inf->str_size - 1;

	if (!inf->str_size)
		return NULL;
	for (size_t i = hash_ci(key, n) & mask;; i = (i + 1) & mask) {
		if (!inf->str[i].key)
			return NULL;
		if (eq_ci_n(key, n, inf->str[i].key))
			return inf->str[i].value;
	}
}

static bool put_string(struct gp_inf *inf, const char *key, const char *value)
{
	size_t mask, i;

	if ((inf->n_str + 1) * 2 > inf->str_size) {
		size_t size = inf->str_size ? inf->str_size * 2 : 256;
		struct strent *t = calloc(size, sizeof(*t));
		if (!t || !charge(&inf->arena, size * sizeof(*t))) {
			free(t);
			if (!inf->arena.over)
				inf->arena.nomem = true;
			return false;
		}
		for (size_t k = 0; k < inf->str_size; k++) {
			if (!inf->str[k].key)
				continue;
			i = hash_ci(inf->str[k].key, strlen(inf->str[k].key)) & (size - 1);
			while (t[i].key)
				i = (i + 1) & (size - 1);
			t[i] = inf->str[k];
		}
		free(inf->str);
		inf->str = t;
		inf->str_size = size;
	}
	mask = inf->str_size - 1;
	for (i = hash_ci(key, strlen(key)) & mask; inf->str[i].key; i = (i + 1) & mask) {
		if (eq_ci_n(key, strlen(key), inf->str[i].key)) {
			inf->str[i].value = value;   /* later definitions override */
			return true;
		}
	}
	inf->str[i].key = key;
	inf->str[i].value = value;
	inf->n_str++;
	return true;
}

struct cooker {
	struct gp_inf *inf;
	struct buf out;
	uint32_t lineno;
	bool over;         /* the expansion would exceed the budget */
};

/* Append @s[0..n) to c->out with %key% replaced; @quotes: handle `"` as
 * quoting (raw INF text) or as a plain character (expanded [Strings] text,
 * which was unquoted when it was stored). */
static void expand(struct cooker *c, const char *s, size_t n, bool quotes, unsigned depth)
{
	bool in_q = false;
	struct arena *a = &c->inf->arena;

	for (size_t i = 0; i < n;) {
		size_t run = 0;

		/* Plain text up to the next `%` (or `"` in raw text) goes in one
		 * copy: a substitution bomb's output is megabytes of such runs,
		 * and a per-byte loop made it the parser's whole cost. */
		while (i + run < n && s[i + run] != '%' && !(quotes && s[i + run] == '"'))
			run++;
		if (c->out.len > a->budget - a->total || run > a->budget - a->total - c->out.len) {
			c->over = true;
			return;
		}
		if (run) {
			buf_put(&c->out, s + i, run);
			i += run;
			continue;
		}
		if (s[i] == '"') {
			if (in_q && i + 1 < n && s[i + 1] == '"') {
				buf_putc(&c->out, '"');
				i += 2;
			} else {
				in_q = !in_q;
				i++;
			}
			continue;
		}
		/* s[i] == '%' */
		const char *close = memchr(s + i + 1, '%', n - i - 1);
		const char *val;
		size_t kl;

		if (!close) {
			buf_putc(&c->out, '%');
			i++;
			continue;
		}
		kl = (size_t)(close - (s + i + 1));
		if (kl == 0) {
			buf_putc(&c->out, '%');     /* %% */
			i += 2;
			continue;
		}
		val = lookup_string_n(c->inf, s + i + 1, kl);
		if (!val) {
			/* DIRIDs (%13%) and unknown keys stay as written. */
			buf_put(&c->out, s + i, kl + 2);
		} else if (depth >= GP_INF_MAX_SUBST_DEPTH) {
			if (!c->inf->depth_warned)
				warn(c->inf, "line %u: %%%.*s%% nests deeper than %d substitutions "
					     "(a loop?); left unexpanded", (unsigned)c->lineno,
				     (int)(kl > 64 ? 64 : kl), s + i + 1, GP_INF_MAX_SUBST_DEPTH);
			c->inf->depth_warned = true;
			buf_put(&c->out, s + i, kl + 2);
		} else {
			expand(c, val, strlen(val), false, depth + 1);
			if (c->over)
				return;
		}
		i += kl + 2;
	}
}

/* Cook one field: trim, unquote, substitute (when @subst). Returns an arena
 * string or NULL on failure. */
static const char *cook_field(struct cooker *c, const char *s, size_t n, bool subst)
{
	while (n && is_blank(*s)) {
		s++;
		n--;
	}
	while (n && is_blank(s[n - 1]))
		n--;
	c->out.len = 0;
	if (subst) {
		expand(c, s, n, true, 0);
	} else {
		bool in_q = false;
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '"') {
				if (in_q && i + 1 < n && s[i + 1] == '"') {
					buf_putc(&c->out, '"');
					i++;
				} else {
					in_q = !in_q;
				}
				continue;
			}
			buf_putc(&c->out, s[i]);
		}
	}
	if (c->over || c->out.nomem)
		return NULL;
	return arena_strndup(&c->inf->arena, c->out.len ? c->out.p : "", c->out.len);
}

/* Position of the first @ch outside quotes in s[0..n), or n. */
static size_t find_unquoted(const char *s, size_t n, char ch)
{
	bool in_q = false;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			in_q = !in_q;
		else if (s[i] == ch && !in_q)
			return i;
	}
	return n;
}

static bool cook_line(struct cooker *c, const struct raw_line *r, struct gp_inf_line *out,
		      bool subst)
{
	size_t eq = find_unquoted(r->text, r->len, '=');
	const char *v = r->text;
	size_t vn = r->len, count = 0;
	const char **vals;

	c->lineno = r->lineno;
	out->lineno = r->lineno;
	out->key = NULL;
	if (eq < r->len) {
		out->key = cook_field(c, r->text, eq, subst);
		if (!out->key)
			return false;
		v = r->text + eq + 1;
		vn = r->len - eq - 1;
	}
	/* Count fields first so that one array holds them. */
	{
		size_t i = 0, nblank = 0;
		for (; nblank < vn && is_blank(v[nblank]); nblank++)
			;
		if (nblank < vn) {
			count = 1;
			bool in_q = false;
			for (i = 0; i < vn; i++) {
				if (v[i] == '"')
					in_q = !in_q;
				else if (v[i] == ',' && !in_q)
					count++;
			}
		}
	}
	vals = count ? arena_alloc(&c->inf->arena, count * sizeof(*vals), sizeof(void *)) : NULL;
	if (count && !vals)
		return false;
	for (size_t k = 0; k < count; k++) {
		size_t f = find_unquoted(v, vn, ',');
		vals[k] = cook_field(c, v, f, subst);
		if (!vals[k])
			return false;
		if (f < vn) {
			v += f + 1;
			vn -= f + 1;
		} else {
			vn = 0;
		}
	}
	out->values = (const char *const *)vals;
	out->n_values = count;
	return true;
}

/* [Strings] and every [Strings.<locale>]: their values are stored as
 * written (unquoted) and expanded where they are used. */
static bool is_strings_section(const char *name)
{
	size_t n = strlen(name);

	if (n < 7)
		return false;
	for (size_t i = 0; i < 7; i++)
		if (lower((unsigned char)name[i]) != (unsigned char)"strings"[i])
			return false;
	return n == 7 || name[7] == '.';
}

/* [Strings] then [Strings.0409] (en-US overrides the neutral table). */
static bool build_strings(struct gp_inf *inf, struct cooker *c)
{
	static const char *const order[] = { "Strings", "Strings.0409" };

	for (size_t o = 0; o < 2; o++) {
		struct section *s = find_section_n(inf, order[o], strlen(order[o]));
		if (!s)
			continue;
		for (size_t i = 0; i < s->n_raw; i++) {
			struct gp_inf_line l;
			if (!cook_line(c, &s->raw[i], &l, false))
				return false;
			if (!l.key || !*l.key)
				continue;
			if (!put_string(inf, l.key, l.n_values ? l.values[0] : ""))
				return false;
		}
	}
	return true;
}

static bool cook_lines(struct gp_inf *inf)
{
	struct cooker c = { .inf = inf };
	bool ok = build_strings(inf, &c);

	for (size_t si = 0; ok && si < inf->n_secs; si++) {
		struct section *s = &inf->secs[si];
		bool strings = is_strings_section(s->pub.name);

		if (s->n_raw) {
			s->lines = calloc(s->n_raw, sizeof(*s->lines));
			if (!s->lines) {
				inf->arena.nomem = true;
				ok = false;
				break;
			}
		}
		for (size_t i = 0; ok && i < s->n_raw; i++)
			ok = cook_line(&c, &s->raw[i], &s->lines[i], !strings);
		s->pub.lines = s->lines;
		s->pub.n_lines = s->n_raw;
		free(s->raw);
		s->raw = NULL;
	}
	if (c.over)
		inf->arena.over = true;
	if (c.out.nomem)
		inf->arena.nomem = true;
	free(c.out.p);
	return ok;
}

/* ---- public ------------------------------------------------------------- */

void gp_inf_free(struct gp_inf *inf)
{
	if (!inf)
		return;
	for (size_t i = 0; i < inf->n_secs; i++) {
		free(inf->secs[i].raw);
		free(inf->secs[i].lines);
	}
	free(inf->secs);
	free(inf->sec_hash);
	free(inf->str);
	for (size_t i = 0; i < inf->n_warn && i < GP_INF_MAX_WARNINGS; i++)
		free(inf->warn[i]);
	arena_free(&inf->arena);
	free(inf->name);
	free(inf);
}

int gp_inf_parse(const void *buf, size_t len, const char *name, struct gp_inf **out,
		 struct gp_error *err)
{
	struct gp_inf *inf;
	struct buf text = { 0 };
	uint64_t budget;
	int rc = 0;

	*out = NULL;
	if (!name)
		name = "(inf)";
	if (!buf && len)
		return gp_error_set(err, GP_ERR_INVALID, "%s: no buffer", name);
	inf = calloc(1, sizeof(*inf));
	if (!inf || !(inf->name = strdup(name))) {
		free(inf);
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", name);
	}
	if (mul_u64(len, GP_INF_MEM_FACTOR, &budget) < 0 ||
	    add_u64(budget, GP_INF_MEM_SLACK, &budget) < 0)
		budget = UINT64_MAX;
	inf->arena.budget = budget;

	rc = decode(inf, buf, len, &text, err);
	if (rc)
		goto out;
	if (!split_lines(inf, text.p ? text.p : "", text.len) || !cook_lines(inf)) {
		if (inf->arena.nomem)
			rc = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", name);
		else
			rc = gp_error_set(err, GP_ERR_CORRUPT,
					  "%s: parsed form exceeds %llu bytes (%d x the file size + %u): "
					  "substitutions expand too far", name,
					  (unsigned long long)inf->arena.budget, GP_INF_MEM_FACTOR,
					  (unsigned)GP_INF_MEM_SLACK);
		goto out;
	}
	if (inf->n_secs == 0) {
		rc = gp_error_set(err, GP_ERR_CORRUPT, "%s: no [section] found, not an INF file", name);
		goto out;
	}
out:
	free(text.p);
	if (rc) {
		gp_inf_free(inf);
		return rc;
	}
	*out = inf;
	return 0;
}

int gp_inf_load(const char *path, struct gp_inf **out, struct gp_error *err)
{
	struct stat st;
	const char *base = strrchr(path, '/');
	char *data = NULL;
	size_t got = 0;
	int fd, rc, e;

	*out = NULL;
	base = base ? base + 1 : path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return gp_error_set_errno(err, e == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, e, "%s", path);
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		return gp_error_set_errno(err, GP_ERR_IO, e, "%s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return gp_error_set(err, GP_ERR_IO, "%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > GP_INF_MAX_FILE) {
		close(fd);
		return gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: %llu bytes, larger than the %u-byte "
				    "limit for INF files", path, (unsigned long long)st.st_size,
				    (unsigned)GP_INF_MAX_FILE);
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		close(fd);
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			close(fd);
			free(data);
			return gp_error_set_errno(err, GP_ERR_IO, e, "%s", path);
		}
		if (r == 0)
			break;   /* the file shrank: parse what is there */
		got += (size_t)r;
	}
	close(fd);
	rc = gp_inf_parse(data, got, base, out, err);
	free(data);
	return rc;
}

enum gp_inf_encoding gp_inf_encoding(const struct gp_inf *inf)
{
	return inf->enc;
}

const char *gp_inf_encoding_name(enum gp_inf_encoding e)
{
	switch (e) {
	case GP_INF_ENC_ANSI: return "ANSI (Windows-1252)";
	case GP_INF_ENC_UTF8: return "UTF-8";
	case GP_INF_ENC_UTF8_BOM: return "UTF-8 with BOM";
	case GP_INF_ENC_UTF16LE_BOM: return "UTF-16LE with BOM";
	case GP_INF_ENC_UTF16LE: return "UTF-16LE without BOM";
	case GP_INF_ENC_UTF16BE_BOM: return "UTF-16BE with BOM";
	}
	return "unknown";
}

size_t gp_inf_warning_count(const struct gp_inf *inf)
{
	return inf->n_warn;
}

const char *gp_inf_warning(const struct gp_inf *inf, size_t i)
{
	return i < inf->n_warn && i < GP_INF_MAX_WARNINGS ? inf->warn[i] : NULL;
}

size_t gp_inf_section_count(const struct gp_inf *inf)
{
	return inf->n_secs;
}

const struct gp_inf_section *gp_inf_section_at(const struct gp_inf *inf, size_t i)
{
	return i < inf->n_secs ? &inf->secs[i].pub : NULL;
}

const struct gp_inf_section *gp_inf_section(const struct gp_inf *inf, const char *name)
{
	struct section *s = find_section_n(inf, name, strlen(name));

	return s ? &s->pub : NULL;
}

const struct gp_inf_line *gp_inf_line(const struct gp_inf_section *sec, const char *key)
{
	if (!sec)
		return NULL;
	for (size_t i = 0; i < sec->n_lines; i++)
		if (sec->lines[i].key && eq_ci_n(key, strlen(key), sec->lines[i].key))
			return &sec->lines[i];
	return NULL;
}

const char *gp_inf_get(const struct gp_inf *inf, const char *section, const char *key)
{
	const struct gp_inf_line *l = gp_inf_line(gp_inf_section(inf, section), key);

	return l && l->n_values ? l->values[0] : NULL;
}

const char *gp_inf_string(const struct gp_inf *inf, const char *key)
{
	return lookup_string_n(inf, key, strlen(key));
}
