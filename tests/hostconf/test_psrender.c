/* test_psrender.c — the rendered PowerShell: golden files for client,
 * server, Windows 10 and revert scripts, and hostile VM names that must stay
 * one literal (checked by parsing the param block back with a small reader
 * of PowerShell single-quoted literals). Regenerate the golden files with
 * GPUP_UPDATE_GOLDEN=1. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gpus.h"
#include "hc_test.h"
#include "plan.h"
#include "ps.h"

/* Build a plan from a data file, a GPU id and options, render it. */
static char *render(const char *gpus_file, const char *gpu_id, struct gp_plan_opts *o)
{
	struct gp_error err = { 0 };
	struct gp_gpu_list l = { 0 };
	const struct gp_gpu *gpu = NULL;
	struct gp_plan p;
	char *out;
	size_t len;

	if (gpus_file) {
		char *path = hc_data(gpus_file);
		size_t idx;

		cr_assert_eq(gp_gpus_load(path, &l, &err), 0, "%s", err.msg);
		cr_assert_eq(gp_gpus_select(&l, gpu_id, &idx, &err), 0, "%s", err.msg);
		gpu = &l.gpus[idx];
		free(path);
	}
	cr_assert_eq(gp_plan_build(o, gpu, &p, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ps_render_string(&p, &out, &len, &err), 0, "%s", err.msg);
	cr_assert_eq(strlen(out), len);
	gp_plan_free(&p);
	gp_gpus_free(&l);
	return out;
}

static void golden(const char *name, const char *text)
{
	char *path = t_strdup_printf("%s/tests/hostconf/golden/%s", t_env("GPUP_SRC"), name);
	const char *update = getenv("GPUP_UPDATE_GOLDEN");
	size_t len;
	char *want;

	if (update && !strcmp(update, "1"))
		cr_assert_eq(t_write_file(path, text, strlen(text)), 0, "cannot write %s", path);
	want = t_read_file(path, &len);
	cr_assert_not_null(want, "%s is missing (GPUP_UPDATE_GOLDEN=1 writes it)", path);
	if (len != strlen(text) || memcmp(want, text, len) != 0) {
		size_t i = 0;
		while (i < len && text[i] == want[i])
			i++;
		cr_assert_fail("%s differs at byte %zu: got '%.60s', golden '%.60s' "
			       "(GPUP_UPDATE_GOLDEN=1 regenerates after review)",
			       name, i, text + i, want + i);
	}
	free(want);
	free(path);
}

static void share(struct gp_plan_opts *o, enum gp_gpu_res r, const char *s)
{
	struct gp_error err = { 0 };

	cr_assert_eq(gp_share_parse(s, &o->share[r], &err), 0, "%s", err.msg);
}

Test(psrender, golden_client)
{
	struct gp_plan_opts o = { .vm_name = "Win11 GPU-P" };
	char *s;

	for (int r = 0; r < GP_RES_COUNT; r++)
		share(&o, r, "50%");
	s = render("howto-two-gpus.txt", "VEN_10DE&DEV_2860", &o);
	golden("client.ps1", s);
	/* What the golden file must say, independent of its bytes. */
	cr_assert(!strncmp(s, "\xef\xbb\xbf# ", 5), "UTF-8 BOM first");
	cr_assert(strstr(s, "#Requires -RunAsAdministrator\n#Requires -Modules Hyper-V\n"));
	cr_assert(strstr(s, "$ErrorActionPreference = 'Stop'\n"));
	cr_assert(strstr(s, "    [string] $Encode = '50%',\n"));
	cr_assert(strstr(s, "#   Encode   on the listed GPU: Min 9223372036854775807  "
			    "Optimal 9223372036854775807  Max 9223372036854775807\n"));
	cr_assert(strstr(s, "    [UInt64] $HighMemoryMappedIoSpace = '34359738368',\n"));
	cr_assert(strstr(s, "    [int] $UseInstancePath = '1',\n"));
	cr_assert(strstr(s, "Hyper-V\\Add-VMGpuPartitionAdapter @add"));
	cr_assert(strstr(s, "no change"));
	cr_assert(strstr(s, "    [int] $ServerPolicy = '0',\n"), "no server policy on a client");
	free(s);
}

Test(psrender, golden_server)
{
	struct gp_plan_opts o = { .vm_name = "Render Node 01", .server = true, .stop_vm = true };
	struct gp_error err = { 0 };
	char *path = hc_data("surveydda.txt");
	char *s;

	share(&o, GP_RES_VRAM, "10%:50%:100%");
	share(&o, GP_RES_ENCODE, "25%");
	struct gp_surveydda sv;

	cr_assert_eq(gp_surveydda_load(path, &sv, &err), 0);
	o.surveydda = &sv;
	s = render("howto-two-gpus.txt", "8086:a7a0", &o);
	golden("server.ps1", s);
	cr_assert(strstr(s, "'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\HyperV'"));
	cr_assert(strstr(s, "'RequireSecureDeviceAssignment', 'RequireSupportedDeviceAssignment'"));
	cr_assert(strstr(s, "Kind = 'DWord'; Value = '0'"));
	cr_assert(strstr(s, "    [int] $ServerPolicy = '1',\n"));
	cr_assert(strstr(s, "    [string] $VRAM = '10%:50%:100%',\n"));
	cr_assert(strstr(s, "    [int] $StopVM = '1',\n"));
	/* Intel's 272 MB + 512 MiB = 1 GiB, raised to GPU-P's 8 GiB (the
	 * survey's NVIDIA GPU is not the chosen vendor's). */
	cr_assert(strstr(s, "    [UInt64] $HighMemoryMappedIoSpace = '8589934592',\n"));
	free(s);
	gp_surveydda_free(&sv);
	free(path);
}

Test(psrender, golden_windows10)
{
	struct gp_plan_opts o = { .vm_name = "gaming", .host_os = GP_HOST_WIN10 };
	char *s;

	share(&o, GP_RES_ENCODE, "0:9223372036854775807:18446744073709551615");
	s = render("win10-get-vmpartitionablegpu.txt", "auto", &o);
	golden("win10.ps1", s);
	cr_assert(strstr(s, "    [int] $UseInstancePath = '0',\n"));
	cr_assert(strstr(s, "Parameters.ContainsKey('InstancePath')"));
	free(s);
}

Test(psrender, golden_revert)
{
	struct gp_plan_opts o = { .vm_name = "Win11 GPU-P", .revert = true, .stop_vm = true };
	char *s = render(NULL, NULL, &o);

	golden("revert.ps1", s);
	cr_assert(strstr(s, "    [UInt64] $LowMemoryMappedIoSpace = '134217728',\n"));
	cr_assert(strstr(s, "    [UInt64] $HighMemoryMappedIoSpace = '536870912',\n"));
	cr_assert(strstr(s, "restoring Hyper-V's defaults"));
	cr_assert_null(strstr(s, "Get-GpupQuota"), "a revert computes no quotas");
	free(s);
}

/* Without a GPU list the script gets the --gpu choice and the shares, and
 * no figures (the host has them at run time). */
Test(psrender, without_gpu_list)
{
	struct gp_plan_opts o = { .vm_name = "v", .gpu_select = "VEN_10DE&DEV_2860" };
	char *s;

	share(&o, GP_RES_VRAM, "12.5%");
	s = render(NULL, NULL, &o);
	cr_assert(strstr(s, "    [string] $Gpu = 'VEN_10DE&DEV_2860',\n"), "%s", s);
	cr_assert(strstr(s, "    [string] $VRAM = '12.5%',\n"));
	cr_assert(strstr(s, "    [string] $Encode = '',\n"));
	cr_assert(strstr(s, "# GPU: chosen on the host from the $Gpu parameter\n"));
	cr_assert_null(strstr(s, "on the listed GPU"));
	free(s);
	/* What needs no figures is still checked. */
	{
		struct gp_error err = { 0 };
		struct gp_plan p;

		share(&o, GP_RES_DECODE, "9:5:10%");
		cr_assert_eq(gp_plan_build(&o, NULL, &p, &err), GP_ERR_INVALID);
		cr_assert(strstr(err.msg, "Decode: Min 9 is greater than Optimal 5"), "%s", err.msg);
	}
}

/* ---- reading the param block back ---- */

/* PowerShell's tokenizer: these end a single-quoted string. */
static size_t quote_len(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	if (u[0] == '\'')
		return 1;
	if (u[0] == 0xe2 && u[1] == 0x80 && u[2] >= 0x98 && u[2] <= 0x9b)
		return 3;
	return 0;
}

/* Read a single-quoted literal at *pp (which must start with a quote):
 * a quote followed by another quote stands for that second quote
 * character; a quote followed by anything else ends the string. */
static char *read_literal(const char **pp)
{
	const char *p = *pp;
	size_t q = quote_len(p), cap = strlen(p) + 1, n = 0;
	char *out = malloc(cap);

	cr_assert(q, "literal expected at '%.20s'", p);
	p += q;
	for (;;) {
		cr_assert(*p, "unterminated literal");
		q = quote_len(p);
		if (q) {
			size_t q2 = quote_len(p + q);
			if (!q2)
				break;
			memcpy(out + n, p + q, q2);
			n += q2;
			p += q + q2;
			continue;
		}
		out[n++] = *p++;
	}
	out[n] = '\0';
	*pp = p + q;
	return out;
}

struct param {
	char type[16];
	char name[64];
	char *value;
};

/* Parse "param(\n" ... "\n)\n": entries "    [TYPE] $NAME = 'LITERAL'" joined
 * by ",\n". Returns the count; the text before and after goes to before_len and after. */
static size_t parse_params(const char *s, struct param *ps, size_t max, size_t *before_len,
			   const char **after)
{
	const char *p = strstr(s, "\nparam(\n");
	size_t n = 0;

	cr_assert_not_null(p, "no param block");
	*before_len = (size_t)(p - s);
	p += strlen("\nparam(\n");
	for (;;) {
		int tl = 0, nl = 0;

		cr_assert(n < max);
		cr_assert_eq(sscanf(p, "    [%15[A-Za-z0-9]]%n", ps[n].type, &tl), 1, "at '%.30s'", p);
		p += tl;
		cr_assert(!strncmp(p, " $", 2), "at '%.30s'", p);
		p += 2;
		cr_assert_eq(sscanf(p, "%63[A-Za-z0-9]%n", ps[n].name, &nl), 1);
		p += nl;
		cr_assert(!strncmp(p, " = ", 3), "at '%.30s'", p);
		p += 3;
		ps[n].value = read_literal(&p);
		n++;
		if (!strncmp(p, ",\n", 2)) {
			p += 2;
			continue;
		}
		cr_assert(!strncmp(p, "\n)\n", 3), "param block must close at '%.30s'", p);
		*after = p;
		return n;
	}
}

Test(psrender, hostile_vm_names_stay_one_literal)
{
	static const char *const names[] = {
		"x'; Remove-Item C:\\ -Recurse #",
		"$(Stop-Computer -Force)",
		"`$env:PATH`n\"double\"",
		"line one\nline two\r\n'); Invoke-Expression 'evil",
		"smart \xe2\x80\x98quotes\xe2\x80\x99 \xe2\x80\x9alow\xe2\x80\x9b and 'plain'",
		"''",
		"\xe2\x80\x99",
		"trailing'",
		"\xe2\x80\x98\xe2\x80\x98'\xe2\x80\x9b",
		"\xe5\x90\x8d\xe5\x89\x8d \xf0\x9f\x8e\xae \xc3\xa9moji",
		"; & | < > @{} [x] *? #> <# ${a}",
		"\"@\n'@\nhere",
	};
	struct gp_plan_opts benign_o = { .vm_name = "benign" };
	struct param bp[32], hp[32];
	size_t bn, b_before, h_before;
	const char *b_after, *h_after;
	char *benign = render("howto-two-gpus.txt", "10de:2860", &benign_o);

	bn = parse_params(benign, bp, 32, &b_before, &b_after);
	cr_assert_str_eq(bp[0].name, "VMName");
	cr_assert_str_eq(bp[0].value, "benign");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct gp_plan_opts o = { .vm_name = names[i] };
		char *s = render("howto-two-gpus.txt", "10de:2860", &o);
		size_t hn = parse_params(s, hp, 32, &h_before, &h_after);

		/* The name comes back exactly, as the first parameter's value... */
		cr_assert_eq(hn, bn);
		cr_assert_str_eq(hp[0].name, "VMName");
		cr_assert_str_eq(hp[0].value, names[i], "name %zu read back as '%s'", i, hp[0].value);
		/* ... every other parameter is untouched ... */
		for (size_t k = 1; k < hn; k++) {
			cr_assert_str_eq(hp[k].name, bp[k].name);
			cr_assert_str_eq(hp[k].type, bp[k].type);
			cr_assert_str_eq(hp[k].value, bp[k].value);
		}
		/* ... and the code around the param block is byte for byte the
		 * code rendered for a harmless name: the name is never code. */
		cr_assert_eq(h_before, b_before);
		cr_assert_eq(memcmp(s, benign, b_before), 0);
		cr_assert_str_eq(h_after, b_after);
		for (size_t k = 0; k < hn; k++)
			free(hp[k].value);
		free(s);
	}
	for (size_t k = 0; k < bn; k++)
		free(bp[k].value);
	free(benign);
}

Test(psrender, quote_rules)
{
	struct gp_error err = { 0 };
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	cr_assert_eq(gp_ps_quote(f, "a'b\xe2\x80\x99" "c", &err), 0);
	fclose(f);
	cr_assert_str_eq(buf, "'a''b\xe2\x80\x99\xe2\x80\x99" "c'");
	free(buf);
}

Test(psrender, refuses_non_utf8)
{
	struct gp_error err = { 0 };
	struct gp_plan p;
	char *out = NULL;

	memset(&p, 0, sizeof(p));
	p.vm_name = "bad\xff";
	p.revert = true;
	cr_assert_eq(gp_ps_render_string(&p, &out, NULL, &err), GP_ERR_INVALID);
	cr_assert_null(out);
}
