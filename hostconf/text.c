/* text.c — reading PowerShell-saved text files. See hostconf_priv.h. */
#include "hostconf_priv.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One UTF-16 unit at @p, little- or big-endian. */
static uint32_t unit16(const unsigned char *p, int be)
{
	return be ? ((uint32_t)p[0] << 8) | p[1] : (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

/* UTF-16 (LE, or BE with @be) to UTF-8. Lone surrogates become U+FFFD: the
 * text is only parsed, never written back. */
static char *utf16_to_utf8(const unsigned char *p, size_t len, int be, size_t *out_len)
{
	size_t n = len / 2, o = 0;
	char *out = malloc(n * 3 + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = unit16(p + 2 * i, be);

		if (c >= 0xd800 && c < 0xdc00 && i + 1 < n) {
			uint32_t lo = unit16(p + 2 * i + 2, be);
			if (lo >= 0xdc00 && lo < 0xe000) {
				c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
				i++;
			} else {
				c = 0xfffd;
			}
		} else if (c >= 0xd800 && c < 0xe000) {
			c = 0xfffd;
		}
		if (c < 0x80) {
			out[o++] = (char)c;
		} else if (c < 0x800) {
			out[o++] = (char)(0xc0 | (c >> 6));
			out[o++] = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x10000) {
			out[o++] = (char)(0xe0 | (c >> 12));
			out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (c & 0x3f));
		} else {
			/* 4 bytes from two input units: still within n * 3. */
			out[o++] = (char)(0xf0 | (c >> 18));
			out[o++] = (char)(0x80 | ((c >> 12) & 0x3f));
			out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (c & 0x3f));
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

char *gp_hc_text_to_utf8(const char *buf, size_t len, size_t *out_len)
{
	const unsigned char *u = (const unsigned char *)buf;
	char *copy;

	/* UTF-16LE with a BOM, or without one (ASCII first chars, NUL high
	 * bytes). Big-endian too: PowerShell's `Out-File -Encoding
	 * BigEndianUnicode` and iconv write it, and reading it costs less than
	 * explaining it. */
	if (len >= 2 && u[0] == 0xff && u[1] == 0xfe)
		return utf16_to_utf8(u + 2, len - 2, 0, out_len);
	if (len >= 2 && u[0] == 0xfe && u[1] == 0xff)
		return utf16_to_utf8(u + 2, len - 2, 1, out_len);
	if (len >= 4 && u[0] && !u[1] && u[2] && !u[3])
		return utf16_to_utf8(u, len, 0, out_len);
	if (len >= 4 && !u[0] && u[1] && !u[2] && u[3])
		return utf16_to_utf8(u, len, 1, out_len);
	if (len >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) {
		buf += 3;
		len -= 3;
	}
	copy = malloc(len + 1);
	if (!copy)
		return NULL;
	memcpy(copy, buf, len);
	copy[len] = '\0';
	*out_len = len;
	return copy;
}

int gp_hc_read_text(const char *path, size_t max, const char *what, char **out,
		    size_t *out_len, struct gp_error *err)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf = NULL;
	size_t got;
	int rc = 0;

	*out = NULL;
	if (!f)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO,
					  errno, "%s", path);
	if (fstat(fileno(f), &st) != 0) {
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = gp_error_set(err, GP_ERR_INVALID, "%s: is a directory, not a %s", path, what);
		goto out_close;
	}
	buf = malloc(max + 1);
	if (!buf) {
		rc = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		goto out_close;
	}
	got = fread(buf, 1, max + 1, f);
	if (ferror(f)) {
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: read", path);
		goto out_free;
	}
	if (got > max) {
		rc = gp_error_set(err, GP_ERR_CORRUPT, "%s: larger than %zu KiB, not a %s", path,
				  max / 1024, what);
		goto out_free;
	}
	*out = gp_hc_text_to_utf8(buf, got, out_len);
	if (!*out)
		rc = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
out_free:
	free(buf);
out_close:
	fclose(f);
	return rc;
}

int gp_hc_valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t c;
		int n;

		if (*p < 0x80) {
			p++;
			continue;
		} else if ((*p & 0xe0) == 0xc0) {
			c = *p & 0x1f;
			n = 1;
		} else if ((*p & 0xf0) == 0xe0) {
			c = *p & 0x0f;
			n = 2;
		} else if ((*p & 0xf8) == 0xf0) {
			c = *p & 0x07;
			n = 3;
		} else {
			return 0;
		}
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (p[i] & 0x3f);
		}
		if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
		    c > 0x10ffff || (c >= 0xd800 && c < 0xe000))
			return 0;
		p += n + 1;
	}
	return 1;
}
