/* test_gpus.c — parsing Get-VMHostPartitionableGpu / Get-VMPartitionableGpu
 * output (console list, wrapped, CRLF, UTF-16LE, JSON), errors with file and
 * line, pci.ids names, and choosing a GPU. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "gpus.h"
#include "hc_test.h"

#define NV_PATH "\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008#{064092b3-625e-43bf-9eb5-dc845897dd59}"
#define INTEL_PATH "\\\\?\\PCI#VEN_8086&DEV_A7A0&SUBSYS_12A31043&REV_04#3&11583659&0&10#{064092b3-625e-43bf-9eb5-dc845897dd59}"

static void load(const char *name, struct gp_gpu_list *l)
{
	struct gp_error err = { 0 };
	char *path = hc_data(name);

	cr_assert_eq(gp_gpus_load(path, l, &err), 0, "%s: %s", name, err.msg);
	free(path);
}

/* The how-to's two GPUs, whatever the input format. */
static void assert_howto(const struct gp_gpu_list *l)
{
	const struct gp_gpu *nv = &l->gpus[0], *in = &l->gpus[1];

	cr_assert_eq(l->count, 2);
	/* The wrapped instance paths are joined without a gap. */
	cr_assert_str_eq(nv->instance_path, NV_PATH);
	cr_assert_str_eq(in->instance_path, INTEL_PATH);
	cr_assert(nv->has_pci_ids && nv->has_subsys && nv->has_rev);
	cr_assert_eq(nv->vendor_id, 0x10de);
	cr_assert_eq(nv->device_id, 0x2860);
	cr_assert_eq(nv->subsys_vendor_id, 0x1043);
	cr_assert_eq(nv->subsys_device_id, 0x252d);
	cr_assert_eq(nv->revision, 0xa1);
	cr_assert_eq(in->vendor_id, 0x8086);
	cr_assert_eq(in->device_id, 0xa7a0);
	cr_assert_eq(in->revision, 0x04);
	cr_assert_eq(nv->partition_count, 32);
	cr_assert_eq(nv->valid_count_n, 1);
	cr_assert_eq(nv->valid_counts[0], 32);
	cr_assert_eq(nv->res[GP_RES_VRAM].total, 1000000000u);
	cr_assert_eq(nv->res[GP_RES_VRAM].min, 0);
	cr_assert_eq(nv->res[GP_RES_ENCODE].max, UINT64_MAX);
	cr_assert_eq(nv->res[GP_RES_ENCODE].optimal, UINT64_MAX);
	cr_assert_eq(nv->res[GP_RES_ENCODE].available, UINT64_MAX);
	cr_assert_eq(nv->res[GP_RES_COMPUTE].max, 1000000000u);
	cr_assert_eq(in->res[GP_RES_ENCODE].max, 1000000000u);
	cr_assert_str_eq(nv->computer_name, "MYHOST");
}

Test(gpus, howto_two_gpu_list)
{
	struct gp_gpu_list l;

	load("howto-two-gpus.txt", &l);
	assert_howto(&l);
	cr_assert_eq(l.gpus[0].line, 2, "records remember where they start");
	cr_assert_eq(l.gpus[1].line, 30);
	gp_gpus_free(&l);
}

Test(gpus, json_array_and_object)
{
	struct gp_gpu_list l;

	load("json-array.json", &l);
	assert_howto(&l);
	gp_gpus_free(&l);
	load("json-object.json", &l);
	cr_assert_eq(l.count, 1);
	cr_assert_str_eq(l.gpus[0].instance_path, NV_PATH);
	cr_assert_eq(l.gpus[0].res[GP_RES_VRAM].available, 400000000u);
	cr_assert_eq(l.gpus[0].res[GP_RES_ENCODE].available, INT64_MAX);
	cr_assert_eq(l.gpus[0].res[GP_RES_ENCODE].max, UINT64_MAX);
	gp_gpus_free(&l);
}

Test(gpus, windows10_wrapped_crlf)
{
	struct gp_gpu_list l;
	const struct gp_gpu *g;

	load("win10-get-vmpartitionablegpu.txt", &l);
	cr_assert_eq(l.count, 1);
	g = &l.gpus[0];
	cr_assert_str_eq(g->instance_path,
			 "\\\\?\\PCI#VEN_10DE&DEV_2184&SUBSYS_3FC71458&REV_A1#4&1f3f7a2c&0&0019"
			 "#{064092b3-625e-43bf-9eb5-dc845897dd59}");
	cr_assert_eq(g->device_id, 0x2184);
	cr_assert_eq(g->valid_count_n, 4);
	cr_assert_eq(g->valid_counts[3], 4);
	cr_assert(g->valid_counts_truncated);
	/* A value wrapped across the 80-column console. */
	cr_assert_eq(g->res[GP_RES_ENCODE].total, UINT64_MAX);
	cr_assert_str_eq(g->computer_name, "DESKTOP-W10");
	gp_gpus_free(&l);
}

/* Windows PowerShell's `>` writes UTF-16LE with a BOM. */
Test(gpus, utf16le_file)
{
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	size_t len;
	char *text = hc_read_data("howto-two-gpus.txt", &len);
	char *wide = malloc(2 + 2 * len);

	wide[0] = (char)0xff;
	wide[1] = (char)0xfe;
	for (size_t i = 0; i < len; i++) {
		wide[2 + 2 * i] = text[i];
		wide[3 + 2 * i] = 0;
	}
	cr_assert_eq(gp_gpus_parse(wide, 2 + 2 * len, "wide.txt", &l, &err), 0, "%s", err.msg);
	assert_howto(&l);
	gp_gpus_free(&l);
	free(wide);
	free(text);
}

/* UTF-16 big-endian (`Out-File -Encoding BigEndianUnicode`, iconv), with
 * and without a byte-order mark, converted by iconv -- not by our code. */
Test(gpus, utf16be_file)
{
	char *dir = t_tmpdir(), *src = hc_data("howto-two-gpus.txt");
	char *bom = t_strdup_printf("%s/be-bom.txt", dir), *raw = t_strdup_printf("%s/be.txt", dir);
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	struct t_run r;

	cr_assert_eq(t_run(&r, "{ printf '\\376\\377'; iconv -f UTF-8 -t UTF-16BE '%s'; } > '%s' && "
			       "iconv -f UTF-8 -t UTF-16BE '%s' > '%s'", src, bom, src, raw), 0,
		     "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(gp_gpus_load(bom, &l, &err), 0, "%s", err.msg);
	assert_howto(&l);
	gp_gpus_free(&l);
	cr_assert_eq(gp_gpus_load(raw, &l, &err), 0, "%s", err.msg);
	assert_howto(&l);
	gp_gpus_free(&l);
	t_rm_rf(dir);
	free(dir);
	free(src);
	free(bom);
	free(raw);
}

Test(gpus, garbage_names_file_and_line)
{
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	char *path = hc_data("garbage.txt");

	cr_assert_eq(gp_gpus_load(path, &l, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "garbage.txt:3:"), "%s", err.msg);
	cr_assert(strstr(err.msg, "this is not a property line'"), "%s", err.msg);
	cr_assert_eq(l.count, 0);
	free(path);
	gp_error_clear(&err);
	path = hc_data("garbage.json");
	cr_assert_eq(gp_gpus_load(path, &l, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "garbage.json:2:"), "%s", err.msg);
	free(path);
}

Test(gpus, record_errors)
{
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	const char *bad_number = "Name : X\nTotalVRAM : 12a\n";
	const char *missing = "\n\nName : X\nTotalVRAM : 1\n";
	const char *indented = "   : x\n";

	cr_assert_eq(gp_gpus_parse(bad_number, strlen(bad_number), "n.txt", &l, &err),
		     GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "n.txt:2: TotalVRAM: '12a'"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_parse(missing, strlen(missing), "m.txt", &l, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "m.txt:3: GPU record lacks AvailableVRAM"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_parse(indented, strlen(indented), "i.txt", &l, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "i.txt:1:"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_parse("\r\n\n", 3, "e.txt", &l, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "e.txt: no partitionable GPU"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_parse("[]", 2, "e.json", &l, &err), GP_ERR_NOTFOUND);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_parse("[1]", 3, "one.json", &l, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "one.json: GPU record 1"), "%s", err.msg);
	gp_error_clear(&err);
	/* 2^64 does not fit. */
	{
		size_t len;
		char *text = hc_read_data("howto-two-gpus.txt", &len);
		char *p = strstr(text, "18446744073709551615");
		char *big = t_strdup_printf("%.*s18446744073709551616%s", (int)(p - text), text,
					    p + 20);
		cr_assert_eq(gp_gpus_parse(big, strlen(big), "big.txt", &l, &err), GP_ERR_CORRUPT);
		cr_assert(strstr(err.msg, "big.txt:11: TotalEncode"), "%s", err.msg);
		free(big);
		free(text);
	}
}

Test(gpus, pci_ids_names)
{
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	char *v = NULL, *d = NULL;

	load("howto-two-gpus.txt", &l);
	cr_assert_eq(gp_gpus_lookup_names(&l, NULL, &err), 0, "%s", err.msg);
	cr_assert_str_eq(l.gpus[0].vendor_name, "NVIDIA Corporation");
	cr_assert(strstr(l.gpus[0].device_name, "RTX 4070"), "%s", l.gpus[0].device_name);
	cr_assert_str_eq(l.gpus[0].subsys_vendor_name, "ASUSTeK Computer Inc.");
	cr_assert_str_eq(l.gpus[1].vendor_name, "Intel Corporation");
	cr_assert(strstr(l.gpus[1].device_name, "Iris Xe"), "%s", l.gpus[1].device_name);
	gp_gpus_free(&l);

	/* A subsystem the database lists under its device. */
	cr_assert_eq(gp_pci_ids_lookup(NULL, 0x10df, 0x0720, 0x103c, 0x1934, &v, &d, NULL, NULL,
				       &err), 0);
	free(v);
	free(d);
	{
		char *s = NULL;
		cr_assert_eq(gp_pci_ids_lookup(NULL, 0x10df, 0x0720, 0x103c, 0x1934, NULL, NULL, &s,
					       NULL, &err), 0);
		cr_assert_str_eq(s, "FlexFabric 20Gb 2-port 650M Adapter");
		free(s);
	}
	/* Unknown IDs: no names, no error. */
	cr_assert_eq(gp_pci_ids_lookup(NULL, 0x0002, 0x1234, 0, 0, &v, &d, NULL, NULL, &err), 0);
	cr_assert_null(v);
	cr_assert_null(d);
	cr_assert_eq(gp_pci_ids_lookup("/nonexistent/pci.ids", 0x10de, 0x2860, 0, 0, &v, &d, NULL,
				       NULL, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "/nonexistent/pci.ids"), "%s", err.msg);
}

Test(gpus, select)
{
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	size_t i = 99;

	load("howto-two-gpus.txt", &l);
	cr_assert_eq(gp_gpus_select(&l, "auto", &i, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "VEN_10DE&DEV_2860, VEN_8086&DEV_A7A0"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_select(&l, "VEN_10DE&DEV_2860", &i, &err), 0, "%s", err.msg);
	cr_assert_eq(i, 0);
	cr_assert_eq(gp_gpus_select(&l, "PCI\\VEN_8086&DEV_A7A0&SUBSYS_12A31043&REV_04", &i, &err), 0);
	cr_assert_eq(i, 1);
	cr_assert_eq(gp_gpus_select(&l, "8086:a7a0", &i, &err), 0);
	cr_assert_eq(i, 1);
	cr_assert_eq(gp_gpus_select(&l, "10de", &i, &err), 0);
	cr_assert_eq(i, 0);
	/* Instance paths compare case-insensitively, as Windows does. */
	cr_assert_eq(gp_gpus_select(&l, "\\\\?\\pci#ven_8086&dev_a7a0&subsys_12a31043&rev_04#3&11583659&0&10#{064092b3-625e-43bf-9eb5-dc845897dd59}", &i, &err), 0);
	cr_assert_eq(i, 1);
	cr_assert_eq(gp_gpus_select(&l, "VEN_1002", &i, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "no partitionable GPU matches"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_select(&l, "VEN_10DE&SUBSYS_00000000", &i, &err), GP_ERR_NOTFOUND);
	gp_error_clear(&err);
	/* Without names (no gp_gpus_lookup_names()), a name matches nothing. */
	cr_assert_eq(gp_gpus_select(&l, "nvidia", &i, &err), GP_ERR_NOTFOUND);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpus_select(&l, "VEN_10DE&DEV_28", &i, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "want VEN_xxxx"), "%s", err.msg);
	gp_error_clear(&err);
	gp_gpus_free(&l);
	load("json-object.json", &l);
	cr_assert_eq(gp_gpus_select(&l, "auto", &i, &err), 0);
	cr_assert_eq(i, 0);
	gp_gpus_free(&l);
}

/*
 * The one selector syntax (issue 21): every form selects the same GPU of
 * the list -- pci.ids style, VEN_/DEV_ fields, the hardware ID, the device
 * instance path as Device Manager shows it and the \\?\PCI# Name Hyper-V
 * lists, a unique name substring (pci.ids names, any case); an ambiguous
 * one lists the candidates with their names; a control character is
 * refused before anything is looked up.
 */
Test(gpus, one_selector_syntax)
{
	static const char *const nvidia[] = {
		"10de:2860", "10DE:2860", "VEN_10DE&DEV_2860", "ven_10de&rev_a1&dev_2860",
		"VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1", "PCI\\VEN_10DE&DEV_2860",
		"PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1\\4&2A7E4F6B&0&0008",
		"\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008#"
		"{064092b3-625e-43bf-9eb5-dc845897dd59}",
		"rtx 4070", "GeForce", "10de",
	};
	struct gp_error err = { 0 };
	struct gp_gpu_selector sel;
	struct gp_gpu_list l;
	size_t i;

	load("howto-two-gpus.txt", &l);
	cr_assert_eq(gp_gpus_lookup_names(&l, NULL, &err), 0, "%s", err.msg);
	for (size_t k = 0; k < sizeof(nvidia) / sizeof(nvidia[0]); k++) {
		i = 99;
		cr_assert_eq(gp_gpus_select(&l, nvidia[k], &i, &err), 0, "%s: %s", nvidia[k], err.msg);
		cr_assert_eq(i, 0, "%s", nvidia[k]);
	}
	cr_assert_eq(gp_gpus_select(&l, "iris xe", &i, &err), 0, "%s", err.msg);
	cr_assert_eq(i, 1);
	/* Both pci.ids names hold an "a". */
	cr_assert_eq(gp_gpus_select(&l, "a", &i, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "matches 2 GPUs") && strstr(err.msg, "GeForce RTX 4070") &&
		  strstr(err.msg, "Iris Xe"), "the candidates with their names: %s", err.msg);
	gp_error_clear(&err);
	/* Another instance of the same device is another GPU. */
	cr_assert_eq(gp_gpus_select(&l, "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1\\4&1111&0&0008",
				    &i, &err), GP_ERR_NOTFOUND);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpu_selector_parse("RTX\x1b]0;pwned\x07", &sel, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "control character \\x1b"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpu_selector_parse("PCI\\VEN_10DE", &sel, &err), GP_ERR_INVALID,
		     "a hardware ID needs DEV_");
	gp_error_clear(&err);
	cr_assert_eq(gp_gpu_selector_parse("", &sel, &err), GP_ERR_INVALID);
	gp_gpus_free(&l);
}

/* Fuzz-style: thousands of deterministic mutations of the samples (byte
 * flips, truncations, inserted separators) must parse or fail with a
 * message; never crash or read out of bounds (run under ASan in
 * `make check SANITIZE=address,undefined`). */
Test(gpus, survives_mutations)
{
	static const char *const samples[] = { "howto-two-gpus.txt", "json-array.json",
					       "win10-get-vmpartitionablegpu.txt" };
	static const char noise[] = { ':', ' ', '\n', '{', '}', '[', ']', '"', '\\', '\0',
				      '\xff', '\xfe', '9', ',', '\r' };
	uint64_t state = 0x9e3779b97f4a7c15ull;

	for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
		size_t len;
		char *orig = hc_read_data(samples[s], &len);
		char *buf = malloc(len + 1);

		for (int iter = 0; iter < 700; iter++) {
			struct gp_error err = { 0 };
			struct gp_gpu_list l;
			size_t n = len;
			int rc;

			memcpy(buf, orig, len);
			for (int k = 0; k < 1 + (int)(t_rand(&state) % 4); k++)
				buf[t_rand(&state) % len] = noise[t_rand(&state) % sizeof(noise)];
			if (iter % 5 == 0)
				n = t_rand(&state) % len;
			rc = gp_gpus_parse(buf, n, "fuzz", &l, &err);
			if (rc == 0) {
				cr_assert_gt(l.count, 0);
				for (size_t i = 0; i < l.count; i++)
					cr_assert_not_null(l.gpus[i].instance_path);
				gp_gpus_free(&l);
			} else {
				cr_assert(err.msg[0], "failure %d without a message", rc);
				cr_assert(strstr(err.msg, "fuzz"), "%s", err.msg);
			}
		}
		free(buf);
		free(orig);
	}
}

/* PowerShell property names are case-insensitive, and so are the names
 * read here: the how-to's list with every name in lowercase parses alike. */
Test(gpus, property_names_in_any_case)
{
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	char *src = hc_data("howto-two-gpus.txt"), *dir = t_tmpdir();
	char *lower = t_strdup_printf("%s/lower.txt", dir);
	struct t_run r;

	cr_assert_eq(t_run(&r, "sed 's/^\\([A-Za-z]*\\)\\( *:\\)/\\L\\1\\E\\2/' '%s' > '%s' && "
			   "grep -q '^partitioncount' '%s'", src, lower, lower), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(gp_gpus_load(lower, &l, &err), 0, "%s", err.msg);
	assert_howto(&l);
	gp_gpus_free(&l);
	t_rm_rf(dir);
	free(dir);
	free(lower);
	free(src);
}

/* Replace every occurrence of @from in @s by @to (malloc'ed). */
static char *replace_all(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	char *out, *o;

	for (const char *p = strstr(s, from); p; p = strstr(p + fl, from))
		n++;
	out = malloc(strlen(s) + n * (tl + 1) + 1);
	cr_assert_not_null(out);
	for (o = out; *s;) {
		if (!strncmp(s, from, fl)) {
			memcpy(o, to, tl);
			o += tl;
			s += fl;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

/* Microsoft's own example output (the GPU partitioning page): numbers with
 * thousands separators, a stray blank line inside the record, a Name
 * wrapped and ending in \GPUPARAV. A user pasting it gets the GPU. */
Test(gpus, microsoft_published_sample)
{
	struct gp_gpu_list l = { 0 };
	const struct gp_gpu *g;

	load("ms-get-vmpartitionablegpu.txt", &l);
	cr_assert_eq(l.count, 1);
	g = &l.gpus[0];
	cr_assert_str_eq(g->instance_path, "\\\\?\\PCI#VEN_10DE&DEV_1C02&SUBSYS_11C210DE&REV_A1#"
			 "4&275d7527&0&0010#{064092b3-625e-43bf-9eb5-dc845897dd59}\\GPUPARAV");
	cr_assert_eq(g->device_id, 0x1c02);
	cr_assert_eq(g->res[GP_RES_VRAM].total, 1000000000);
	cr_assert_eq(g->res[GP_RES_ENCODE].max, UINT64_MAX);
	cr_assert_eq(g->res[GP_RES_ENCODE].optimal, UINT64_MAX, "after the stray blank line");
	cr_assert_eq(g->res[GP_RES_COMPUTE].optimal, 1000000000);
	cr_assert_str_eq(g->computer_name, "MYCOMPUTER-TEST2");
	gp_gpus_free(&l);
}

/* Separators as other cultures print them parse the same; a malformed
 * grouping is an error naming its line. */
Test(gpus, thousands_separators)
{
	static const char *const seps[] = { ".", " ", "\xC2\xA0", "\xE2\x80\xAF", "" };
	static const char *const bad[] = { "1,00,000,000", "1,000.000,000", "1000,000,000",
					   "1,000,000,", ",000", "1,,000" };
	size_t len;
	char *text = hc_read_data("ms-get-vmpartitionablegpu.txt", &len);
	struct gp_error err = { 0 };
	struct gp_gpu_list l;

	for (size_t i = 0; i < sizeof(seps) / sizeof(seps[0]); i++) {
		/* The sample's only commas are its separators. */
		char *t = replace_all(text, ",", seps[i]);

		cr_assert_eq(gp_gpus_parse(t, strlen(t), "s.txt", &l, &err), 0, "'%s': %s", seps[i],
			     err.msg);
		cr_assert_eq(l.gpus[0].res[GP_RES_VRAM].max, 1000000000);
		cr_assert_eq(l.gpus[0].res[GP_RES_ENCODE].total, UINT64_MAX);
		gp_gpus_free(&l);
		free(t);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *t = replace_all(text, "MaxPartitionVRAM        : 1,000,000,000",
				      "MaxPartitionVRAM        : Z");
		char *u = replace_all(t, "Z", bad[i]);

		cr_assert_eq(gp_gpus_parse(u, strlen(u), "b.txt", &l, &err), GP_ERR_CORRUPT, "%s",
			     bad[i]);
		cr_assert(strstr(err.msg, "b.txt:8: MaxPartitionVRAM"), "%s: %s", bad[i], err.msg);
		gp_error_clear(&err);
		free(t);
		free(u);
	}
	free(text);
}

/* A blank line that cuts a record short, before the next record: the error
 * points at that blank line, not at the record's first line. */
Test(gpus, blank_line_errors_point_at_the_blank_line)
{
	size_t len;
	char *text = hc_read_data("ms-get-vmpartitionablegpu.txt", &len);
	struct gp_error err = { 0 };
	struct gp_gpu_list l;
	char *cut = strstr(text, "TotalDecode");
	/* The record up to OptimalPartitionEncode (line 15), a blank line 16,
	 * then the whole record again as a second GPU. */
	char *two = t_strdup_printf("%.*s\n%s", (int)(cut - text), text, text);

	cr_assert_eq(gp_gpus_parse(two, strlen(two), "two.txt", &l, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "two.txt:16: the GPU record of line 1 ends at this blank line "
				  "without TotalDecode"), "%s", err.msg);
	gp_error_clear(&err);
	/* Whole records separated by blank lines (and the stray one) parse. */
	free(two);
	two = t_strdup_printf("%s\n\n%s", text, text);
	cr_assert_eq(gp_gpus_parse(two, strlen(two), "two.txt", &l, &err), 0, "%s", err.msg);
	cr_assert_eq(l.count, 2);
	cr_assert_eq(l.gpus[1].line, 31);
	gp_gpus_free(&l);
	free(two);
	free(text);
}
