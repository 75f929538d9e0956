/* test_inf.c — the INF parser: the real NVIDIA INFs, encodings, syntax,
 * and hostile input (huge lines, loops, bombs, invalid UTF-16, garbage). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "helpers.h"
#include "inf.h"

static struct gp_inf *parse_ok(const void *buf, size_t len)
{
	struct gp_error err = { 0 };
	struct gp_inf *inf = NULL;

	cr_assert_eq(gp_inf_parse(buf, len, "t.inf", &inf, &err), 0, "%s", err.msg);
	return inf;
}

static struct gp_inf *parse_str(const char *s)
{
	return parse_ok(s, strlen(s));
}

static bool has_warning(const struct gp_inf *inf, const char *needle)
{
	for (size_t i = 0; i < gp_inf_warning_count(inf); i++)
		if (gp_inf_warning(inf, i) && strstr(gp_inf_warning(inf, i), needle))
			return true;
	return false;
}

static char *nv_path(const char *name)
{
	return t_strdup_printf("%s/fixtures/inf/nvidia-470.05/%s", t_env("GPUP_SHARED"), name);
}

/* Model lines (in every models section [Manufacturer] names) with a
 * PCI\VEN_10DE hardware ID. */
static size_t count_nv_models(const struct gp_inf *inf)
{
	const struct gp_inf_section *man = gp_inf_section(inf, "Manufacturer");
	size_t n = 0;

	cr_assert_not_null(man);
	for (size_t i = 0; i < man->n_lines; i++) {
		const struct gp_inf_line *m = &man->lines[i];
		for (size_t d = 1; d < m->n_values; d++) {
			char *name = t_strdup_printf("%s.%s", m->values[0], m->values[d]);
			const struct gp_inf_section *ms = gp_inf_section(inf, name);
			cr_assert_not_null(ms, "models section %s", name);
			for (size_t k = 0; k < ms->n_lines; k++) {
				const struct gp_inf_line *l = &ms->lines[k];
				if (l->n_values >= 2 && strncasecmp(l->values[1], "PCI\\VEN_10DE", 12) == 0)
					n++;
			}
			free(name);
		}
	}
	return n;
}

Test(inf, real_nvidia_display_inf)
{
	struct gp_error err = { 0 };
	struct gp_inf *inf;
	struct timespec a, b, ca, cb;
	char *path = nv_path("nv_dispi.inf");
	const struct gp_inf_section *sec;
	const struct gp_inf_line *l;

	clock_gettime(CLOCK_MONOTONIC, &a);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
	cr_assert_eq(gp_inf_load(path, &inf, &err), 0, "%s", err.msg);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* Bench-like: printed, not asserted (target < 50 ms). CPU time too:
	 * on a busy machine the wall time says little. */
	fprintf(stderr, "bench: nv_dispi.inf (790 KB) parsed in %.2f ms (%.2f ms CPU), %zu sections\n",
		(double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6,
		(double)(cb.tv_sec - ca.tv_sec) * 1e3 + (double)(cb.tv_nsec - ca.tv_nsec) / 1e6,
		gp_inf_section_count(inf));

	cr_assert_eq(count_nv_models(inf), 178);
	cr_assert_eq(gp_inf_section_count(inf), 568);
	cr_assert_str_eq(gp_inf_get(inf, "VERSION", "provider"), "NVIDIA");
	cr_assert_str_eq(gp_inf_get(inf, "Version", "Class"), "Display");
	cr_assert_str_eq(gp_inf_get(inf, "Version", "ClassGUID"), "{4D36E968-E325-11CE-BFC1-08002BE10318}");
	l = gp_inf_line(gp_inf_section(inf, "Version"), "DriverVer");
	cr_assert_eq(l->n_values, 2);
	cr_assert_str_eq(l->values[0], "02/26/2021");
	cr_assert_str_eq(l->values[1], "27.21.14.7005");
	/* %key% from [Strings] in a model line's key */
	sec = gp_inf_section(inf, "NVIDIA_Devices.NTamd64.10.0...17098");
	cr_assert_str_eq(sec->lines[0].key, "NVIDIA GeForce GT 640");
	cr_assert_str_eq(sec->lines[0].values[0], "Section002");
	cr_assert_str_eq(sec->lines[0].values[1], "PCI\\VEN_10DE&DEV_0FC0");
	/* renames: dest, source */
	sec = gp_inf_section(inf, "nv_system32_copyfiles__01");
	cr_assert_not_null(sec);
	l = NULL;
	for (size_t i = 0; i < sec->n_lines; i++)
		if (strcmp(sec->lines[i].values[0], "nvml.dll") == 0)
			l = &sec->lines[i];
	cr_assert_not_null(l);
	cr_assert_str_eq(l->values[1], "nvml_loader.dll");
	cr_assert_str_eq(l->values[3], "0x00004000");
	/* CopyToVm AddReg with %REG_MULTI_SZ% substituted, quotes removed */
	sec = gp_inf_section(inf, "nv_commonBase_addreg__01");
	l = NULL;
	for (size_t i = 0; i < sec->n_lines; i++)
		if (sec->lines[i].n_values > 4 && strcmp(sec->lines[i].values[1], "CopyToVmWhenNewer") == 0) {
			l = &sec->lines[i];
			break;
		}
	cr_assert_not_null(l);
	cr_assert_str_eq(l->values[2], "CudaDriverFiles");
	cr_assert_str_eq(l->values[3], "0x00010000");
	cr_assert_str_eq(l->values[4], "nvcuda_loader64.dll");
	/* DIRIDs are not [Strings] keys: kept as written */
	cr_assert_str_eq(gp_inf_get(inf, "DestinationDirs", "nv_libcuda_copyfiles"), "11");
	cr_assert_str_eq(gp_inf_line(gp_inf_section(inf, "DestinationDirs"),
				     "NvDisplayContainer_PluginsLS_Dir")->values[1],
			 "Display.NvContainer\\plugins\\LocalSystem");
	/* Two real lines have an unterminated quote (lines 6410, 6412). */
	cr_assert(has_warning(inf, "line 6410: unterminated"));
	gp_inf_free(inf);
	free(path);
}

Test(inf, real_nvidia_companion_infs)
{
	struct gp_error err = { 0 };
	struct gp_inf *inf;
	char *p1 = nv_path("nvhda.inf"), *p2 = nv_path("nvppc.inf");

	cr_assert_eq(gp_inf_load(p1, &inf, &err), 0, "%s", err.msg);
	cr_assert_str_eq(gp_inf_get(inf, "Version", "Class"), "MEDIA");
	cr_assert_str_eq(gp_inf_get(inf, "Version", "Provider"), "NVIDIA Corporation");
	cr_assert_eq(gp_inf_line(gp_inf_section(inf, "Manufacturer"), "NVIDIA")->n_values, 4);
	gp_inf_free(inf);
	cr_assert_eq(gp_inf_load(p2, &inf, &err), 0, "%s", err.msg);
	cr_assert_str_eq(gp_inf_get(inf, "Version", "Class"), "USB");
	gp_inf_free(inf);
	free(p1);
	free(p2);
}

/* The same INF in every encoding gives the same result. */
static const char enc_text[] =
	"; caf\xc3\xa9 \xc2\xae comment\r\n"
	"[Version]\r\n"
	"Provider = %Mfg%\r\n"
	"[Strings]\r\n"
	"Mfg = \"Caf\xc3\xa9 \xc2\xae Corp\"\r\n";

static void check_enc(const void *buf, size_t len, enum gp_inf_encoding want)
{
	struct gp_inf *inf = parse_ok(buf, len);

	cr_assert_eq(gp_inf_encoding(inf), want, "got %s", gp_inf_encoding_name(gp_inf_encoding(inf)));
	cr_assert_str_eq(gp_inf_get(inf, "Version", "Provider"), "Caf\xc3\xa9 \xc2\xae Corp");
	gp_inf_free(inf);
}

/* UTF-8 -> UTF-16 (BMP only, enough for the test text). */
static size_t to_utf16(const char *s, unsigned char *out, bool be)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		unsigned cp;
		if (*p < 0x80) {
			cp = *p++;
		} else {
			cp = ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
			p += 2;
		}
		out[n++] = be ? (unsigned char)(cp >> 8) : (unsigned char)cp;
		out[n++] = be ? (unsigned char)cp : (unsigned char)(cp >> 8);
	}
	return n;
}

Test(inf, encodings)
{
	unsigned char buf[1024];
	size_t n;
	char ansi[256];
	size_t an = 0;

	check_enc(enc_text, strlen(enc_text), GP_INF_ENC_UTF8);
	buf[0] = 0xEF, buf[1] = 0xBB, buf[2] = 0xBF;
	memcpy(buf + 3, enc_text, strlen(enc_text));
	check_enc(buf, strlen(enc_text) + 3, GP_INF_ENC_UTF8_BOM);
	buf[0] = 0xFF, buf[1] = 0xFE;
	n = to_utf16(enc_text, buf + 2, false);
	check_enc(buf, n + 2, GP_INF_ENC_UTF16LE_BOM);
	check_enc(buf + 2, n, GP_INF_ENC_UTF16LE);
	buf[0] = 0xFE, buf[1] = 0xFF;
	n = to_utf16(enc_text, buf + 2, true);
	check_enc(buf, n + 2, GP_INF_ENC_UTF16BE_BOM);
	/* Windows-1252: é = 0xE9, ® = 0xAE */
	for (const unsigned char *p = (const unsigned char *)enc_text; *p;) {
		if (*p == 0xC3 && p[1] == 0xA9) {
			ansi[an++] = (char)0xE9;
			p += 2;
		} else if (*p == 0xC2 && p[1] == 0xAE) {
			ansi[an++] = (char)0xAE;
			p += 2;
		} else {
			ansi[an++] = (char)*p++;
		}
	}
	check_enc(ansi, an, GP_INF_ENC_ANSI);
	/* 0x80 in Windows-1252 is the euro sign */
	{
		struct gp_inf *inf = parse_str("[S]\nk = \x80\n");
		cr_assert_str_eq(gp_inf_get(inf, "S", "k"), "\xe2\x82\xac");
		gp_inf_free(inf);
	}
}

Test(inf, syntax)
{
	static const char text[] =
		"stray line before any section\n"
		"[Sec]  ; comment after a header\n"
		"Key = a, \"b, c\" , \"d \"\"q\"\" ; not a comment\" ; comment\n"
		"Cont = first, \\\n"
		"       second\n"
		"NoValue =\n"
		"plain,line,,with empties\n"
		"pct = 100%%, %unknown%, %13%\\x.dll\n"
		"[sec]\n"
		"key = later\n"
		"[Other]\r"
		"Sub = %Name%-%NAME%\r"
		"[Strings]\n"
		"Name = \"neutral\"\n"
		"Only = \"only neutral\"\n"
		"[Strings.0409]\n"
		"name = \"en-US\"\n";
	struct gp_inf *inf = parse_str(text);
	const struct gp_inf_section *sec = gp_inf_section(inf, "SEC");
	const struct gp_inf_line *l;

	cr_assert(has_warning(inf, "before the first [section]"));
	cr_assert_not_null(sec);
	cr_assert_eq(sec->n_lines, 6, "repeated [Sec]/[sec] merged: %zu", sec->n_lines);
	l = gp_inf_line(sec, "key");
	cr_assert_eq(l->n_values, 3);
	cr_assert_str_eq(l->values[0], "a");
	cr_assert_str_eq(l->values[1], "b, c");
	cr_assert_str_eq(l->values[2], "d \"q\" ; not a comment");
	cr_assert_eq(l->lineno, 3);
	l = gp_inf_line(sec, "Cont");
	cr_assert_eq(l->n_values, 2);
	cr_assert_str_eq(l->values[1], "second");
	cr_assert_eq(gp_inf_line(sec, "NoValue")->n_values, 0);
	l = &sec->lines[3];
	cr_assert_null(l->key);
	cr_assert_eq(l->n_values, 4);
	cr_assert_str_eq(l->values[2], "");
	cr_assert_str_eq(l->values[3], "with empties");
	l = gp_inf_line(sec, "pct");
	cr_assert_str_eq(l->values[0], "100%");
	cr_assert_str_eq(l->values[1], "%unknown%");
	cr_assert_str_eq(l->values[2], "%13%\\x.dll");
	cr_assert_str_eq(sec->lines[5].values[0], "later", "merged in file order");
	/* CR-only line ends; [Strings.0409] overrides [Strings]; keys fold case */
	cr_assert_str_eq(gp_inf_get(inf, "other", "sub"), "en-US-en-US");
	cr_assert_str_eq(gp_inf_string(inf, "only"), "only neutral");
	cr_assert_null(gp_inf_get(inf, "Sec", "missing"));
	cr_assert_null(gp_inf_section(inf, "nope"));
	gp_inf_free(inf);
}

Test(inf, megabyte_lines)
{
	size_t big = 3u << 20;
	char *buf = malloc(big + 64);
	struct gp_inf *inf;
	size_t n;

	n = (size_t)sprintf(buf, "[S]\nk = ");
	memset(buf + n, 'x', big);
	n += big;
	n += (size_t)sprintf(buf + n, ", y\nnext = 1\n");
	inf = parse_ok(buf, n);
	cr_assert_eq(strlen(gp_inf_get(inf, "S", "k")), big);
	cr_assert_str_eq(gp_inf_line(gp_inf_section(inf, "S"), "k")->values[1], "y");
	cr_assert_str_eq(gp_inf_get(inf, "S", "next"), "1");
	gp_inf_free(inf);
	free(buf);
}

Test(inf, unterminated_quotes)
{
	struct gp_inf *inf = parse_str("[S]\na = \"open, b ; c\nb = \"fine\"\n[T\nc = 3\n\"");

	cr_assert(has_warning(inf, "line 2: unterminated quoted string"));
	/* The quote ends with its line: the next line is intact. */
	cr_assert_str_eq(gp_inf_get(inf, "S", "a"), "open, b ; c");
	cr_assert_str_eq(gp_inf_get(inf, "S", "b"), "fine");
	cr_assert(has_warning(inf, "without ']'"));
	cr_assert_str_eq(gp_inf_get(inf, "T", "c"), "3");
	gp_inf_free(inf);
}

Test(inf, substitution_loops_and_depth)
{
	/* a refers to itself; b and c to each other; d0 -> d1 -> ... -> d20 */
	char text[4096];
	size_t n = (size_t)sprintf(text, "[S]\nself = %%a%%\npair = %%b%%\ndeep = %%d0%%\n"
					 "[Strings]\na = \"<%%a%%>\"\nb = \"%%c%%\"\nc = \"%%b%%\"\n");
	struct gp_inf *inf;
	const char *v;

	for (int i = 0; i < 20; i++)
		n += (size_t)sprintf(text + n, "d%d = \"%%d%d%%\"\n", i, i + 1);
	sprintf(text + n, "d20 = \"bottom\"\n");
	inf = parse_str(text);
	v = gp_inf_get(inf, "S", "self");
	cr_assert(strncmp(v, "<<<<<<<<", 8) == 0, "%s", v);
	cr_assert(strstr(v, "%a%"), "left unexpanded at the limit: %s", v);
	cr_assert(has_warning(inf, "deeper than"));
	cr_assert(strstr(gp_inf_get(inf, "S", "pair"), "%"), "loop stops");
	cr_assert_str_neq(gp_inf_get(inf, "S", "deep"), "bottom");
	gp_inf_free(inf);
	/* within the limit, nesting works */
	inf = parse_str("[S]\nk = %a%\n[Strings]\na = \"1%b%\"\nb = \"2%c%\"\nc = 3\n");
	cr_assert_str_eq(gp_inf_get(inf, "S", "k"), "123");
	gp_inf_free(inf);
}

Test(inf, substitution_bomb_is_bounded)
{
	/* b0 = 16 x %b1%, b1 = 16 x %b2%, ... : 16^8 copies at full depth. */
	char text[8192];
	size_t n = (size_t)sprintf(text, "[S]\nk = %%b0%%\n[Strings]\n");
	struct gp_error err = { 0 };
	struct gp_inf *inf = NULL;

	for (int i = 0; i < 9; i++) {
		n += (size_t)sprintf(text + n, "b%d = \"", i);
		for (int k = 0; k < 16; k++)
			n += (size_t)sprintf(text + n, "%%b%d%%", i + 1);
		n += (size_t)sprintf(text + n, "\"\n");
	}
	cr_assert_eq(gp_inf_parse(text, n, "bomb.inf", &inf, &err), GP_ERR_CORRUPT);
	cr_assert_null(inf);
	cr_assert(strstr(err.msg, "bomb.inf") && strstr(err.msg, "exceeds"), "%s", err.msg);
}

Test(inf, invalid_utf16)
{
	/* BOM, "[S]\nk=A", a lone high surrogate, "B", odd trailing byte */
	const char *t = "[S]\nk=A";
	unsigned char buf[64];
	size_t n = 0;
	struct gp_inf *inf;

	buf[n++] = 0xFF;
	buf[n++] = 0xFE;
	for (const char *p = t; *p; p++) {
		buf[n++] = (unsigned char)*p;
		buf[n++] = 0;
	}
	buf[n++] = 0x00;
	buf[n++] = 0xD8;
	buf[n++] = 'B';
	buf[n++] = 0;
	buf[n++] = 'Z';
	inf = parse_ok(buf, n);
	cr_assert(has_warning(inf, "unpaired surrogate"));
	cr_assert(has_warning(inf, "odd length"));
	cr_assert_str_eq(gp_inf_get(inf, "S", "k"), "A\xef\xbf\xbd" "B");
	gp_inf_free(inf);
}

Test(inf, garbage_is_rejected)
{
	struct gp_error err = { 0 };
	struct gp_inf *inf = NULL;
	unsigned char bin[256];

	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	cr_assert_eq(gp_inf_parse(bin, sizeof(bin), "bin.inf", &inf, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "bin.inf: binary data"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_inf_parse("", 0, "empty.inf", &inf, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "no [section]"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_inf_load("/nonexistent/x.inf", &inf, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "/nonexistent/x.inf"), "%s", err.msg);
}

/* A crude fuzz pass: random byte mutations of a small INF must parse or
 * fail cleanly, never crash. */
Test(inf, mutations_never_crash)
{
	static const char seed[] =
		"[Version]\nSignature=\"$Windows NT$\"\nClass=Display\n"
		"[Manufacturer]\n%M%=Dev,NTamd64.10.0...17098\n"
		"[Dev.NTamd64.10.0...17098]\n%D%=Inst, PCI\\VEN_10DE&DEV_2860\n"
		"[Inst]\nCopyFiles=a,@b.dll\nNeeds=Inst\n"
		"[Strings]\nM=\"m %D%\"\nD=\"d %M%\"\n";
	uint64_t st = 42;
	char buf[sizeof(seed) + 16];

	for (int round = 0; round < 3000; round++) {
		struct gp_error err = { 0 };
		struct gp_inf *inf = NULL;
		size_t len = sizeof(seed) - 1;

		memcpy(buf, seed, len);
		for (int k = 0; k < 1 + (int)(t_rand(&st) % 8); k++)
			buf[t_rand(&st) % len] = (char)(t_rand(&st) & 0xFF);
		if (t_rand(&st) % 4 == 0)
			len = t_rand(&st) % len;
		if (gp_inf_parse(buf, len, "fuzz.inf", &inf, &err) == 0) {
			for (size_t i = 0; i < gp_inf_section_count(inf); i++) {
				const struct gp_inf_section *s = gp_inf_section_at(inf, i);
				for (size_t j = 0; j < s->n_lines; j++)
					for (size_t v = 0; v < s->lines[j].n_values; v++)
						cr_assert_not_null(s->lines[j].values[v]);
			}
			gp_inf_free(inf);
		} else {
			cr_assert(err.msg[0], "failure without a message");
		}
	}
}

Test(inf, invalid_utf8_after_bom)
{
	static const char t[] = "\xef\xbb\xbf[S]\nk = a\xff" "b\xc3\xa9\n";
	struct gp_inf *inf = parse_ok(t, sizeof(t) - 1);

	cr_assert_eq(gp_inf_encoding(inf), GP_INF_ENC_UTF8_BOM);
	cr_assert_str_eq(gp_inf_get(inf, "S", "k"), "a\xef\xbf\xbd" "b\xc3\xa9");
	cr_assert(has_warning(inf, "invalid UTF-8 at byte offset 12"));
	gp_inf_free(inf);
}
