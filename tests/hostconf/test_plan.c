/* test_plan.c — shares, exact quota arithmetic on both host scales, the
 * validation rules and their messages, MMIO sizing and SurveyDDA output. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "hc_test.h"
#include "plan.h"

/* A GPU whose four resources all have the given host figures. */
static struct gp_gpu fake_gpu(uint64_t max, uint64_t avail, uint64_t min, uint64_t opt)
{
	struct gp_gpu g;

	memset(&g, 0, sizeof(g));
	g.instance_path = "\\\\?\\PCI#VEN_10DE&DEV_2860#x";
	for (int r = 0; r < GP_RES_COUNT; r++) {
		g.res[r].total = max;
		g.res[r].available = avail;
		g.res[r].min = min;
		g.res[r].max = max;
		g.res[r].optimal = opt;
	}
	return g;
}

static void share(struct gp_plan_opts *o, enum gp_gpu_res r, const char *s)
{
	struct gp_error err = { 0 };

	cr_assert_eq(gp_share_parse(s, &o->share[r], &err), 0, "%s: %s", s, err.msg);
}

Test(plan, share_parse)
{
	struct gp_error err = { 0 };
	struct gp_share_spec s;
	static const char *const bad[] = { "", "abc", "-5%", "50", "5%%", "1:2", "1:2:3:4",
					   "50 %", "1.%", "18446744073709551616", "%" };

	cr_assert_eq(gp_share_parse("50%", &s, &err), 0);
	cr_assert(s.set && s.part[0].is_percent && s.part[2].is_percent);
	cr_assert_eq(s.part[0].value, 50 * GP_PERCENT_ONE);
	cr_assert_eq(s.part[1].value, 50 * GP_PERCENT_ONE);
	cr_assert_eq(gp_share_parse("12.5%", &s, &err), 0);
	cr_assert_eq(s.part[0].value, 12500000);
	cr_assert_eq(gp_share_parse("0.000001%", &s, &err), 0);
	cr_assert_eq(s.part[0].value, 1);
	cr_assert_eq(gp_share_parse("0:500000000:100%", &s, &err), 0);
	cr_assert(!s.part[0].is_percent && s.part[0].value == 0);
	cr_assert(!s.part[1].is_percent && s.part[1].value == 500000000);
	cr_assert(s.part[2].is_percent && s.part[2].value == 100 * GP_PERCENT_ONE);
	cr_assert_eq(gp_share_parse("18446744073709551615", &s, &err), 0);
	cr_assert_eq(s.part[1].value, UINT64_MAX);
	cr_assert_eq(gp_share_parse("0.0000001%", &s, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "six decimals"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_share_parse("100.5%", &s, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "cannot exceed 100%"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_share_parse("101%", &s, &err), GP_ERR_INVALID);
	gp_error_clear(&err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!strcmp(bad[i], "50"))
			continue; /* a raw value: valid */
		cr_assert_eq(gp_share_parse(bad[i], &s, &err), GP_ERR_INVALID, "'%s' accepted",
			     bad[i]);
		gp_error_clear(&err);
	}
}

/* Percentages of 2^64-1 (Encode on some hosts) are exact: a double would
 * give 9223372036854775808 for 50%, which is not even a valid share. */
Test(plan, percent_exact_on_u64_max_scale)
{
	struct gp_plan_opts o = { .vm_name = "vm" };
	struct gp_gpu g = fake_gpu(UINT64_MAX, UINT64_MAX, 0, UINT64_MAX);
	struct gp_error err = { 0 };
	struct gp_plan p;

	share(&o, GP_RES_VRAM, "50%");
	share(&o, GP_RES_ENCODE, "12.5%:33.333333%:100%");
	share(&o, GP_RES_DECODE, "0.000001%");
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), 0, "%s", err.msg);
	cr_assert_eq(p.quota[GP_RES_VRAM].max, 9223372036854775807ull);
	cr_assert_eq(p.quota[GP_RES_VRAM].min, 9223372036854775807ull);
	cr_assert_eq(p.quota[GP_RES_ENCODE].min, 2305843009213693951ull);
	cr_assert_eq(p.quota[GP_RES_ENCODE].optimal, 6148914629747370292ull);
	cr_assert_eq(p.quota[GP_RES_ENCODE].max, UINT64_MAX);
	cr_assert_eq(p.quota[GP_RES_DECODE].max, 184467440737ull);
	/* Compute had no share: the host's own figures. */
	cr_assert_eq(p.quota[GP_RES_COMPUTE].min, 0);
	cr_assert_eq(p.quota[GP_RES_COMPUTE].optimal, UINT64_MAX);
	cr_assert_eq(p.quota[GP_RES_COMPUTE].max, UINT64_MAX);
	gp_plan_free(&p);
}

Test(plan, min_above_optimal_is_explained)
{
	struct gp_plan_opts o = { .vm_name = "vm" };
	struct gp_gpu g = fake_gpu(UINT64_MAX, UINT64_MAX, 0, UINT64_MAX);
	struct gp_error err = { 0 };
	struct gp_plan p;

	share(&o, GP_RES_ENCODE, "33.333333%:12.5%:100%");
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "Encode: Min 6148914629747370292 (33.333333%) is greater than "
				  "Optimal 2305843009213693951 (12.5%)"), "%s", err.msg);
	cr_assert(strstr(err.msg, "Min <= Optimal <= Max"), "%s", err.msg);
}

Test(plan, percent_exact_on_1e9_scale)
{
	struct gp_plan_opts o = { .vm_name = "vm" };
	struct gp_gpu g = fake_gpu(1000000000, 1000000000, 0, 1000000000);
	struct gp_error err = { 0 };
	struct gp_plan p;

	share(&o, GP_RES_VRAM, "12.5%");
	share(&o, GP_RES_ENCODE, "33.333333%");
	share(&o, GP_RES_DECODE, "10%:50%:100%");
	share(&o, GP_RES_COMPUTE, "0.000001%");
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), 0, "%s", err.msg);
	cr_assert_eq(p.quota[GP_RES_VRAM].optimal, 125000000);
	cr_assert_eq(p.quota[GP_RES_ENCODE].max, 333333330);
	cr_assert_eq(p.quota[GP_RES_DECODE].min, 100000000);
	cr_assert_eq(p.quota[GP_RES_DECODE].optimal, 500000000);
	cr_assert_eq(p.quota[GP_RES_DECODE].max, 1000000000);
	cr_assert_eq(p.quota[GP_RES_COMPUTE].max, 10);
	gp_plan_free(&p);
}

Test(plan, limits_are_explained)
{
	struct gp_plan_opts o = { .vm_name = "vm" };
	struct gp_gpu g = fake_gpu(1000000000, 400000000, 100, 1000000000);
	struct gp_error err = { 0 };
	struct gp_plan p;

	/* The other resources stay within the limits. */
	for (int r = 0; r < GP_RES_COUNT; r++)
		share(&o, r, "0.01%:20%:40%");
	/* Max above what is still available. */
	share(&o, GP_RES_VRAM, "0.01%:40%:50%");
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "VRAM: Max 500000000 (50%) exceeds AvailableVRAM 400000000"),
		  "%s", err.msg);
	gp_error_clear(&err);
	/* A raw value above the host's maximum. */
	share(&o, GP_RES_VRAM, "100000:200000:300000");
	share(&o, GP_RES_DECODE, "2000000000");
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "Decode: Max 2000000000 exceeds the host's MaxPartitionDecode "
				  "1000000000"), "%s", err.msg);
	gp_error_clear(&err);
	/* Below the host's minimum. */
	share(&o, GP_RES_DECODE, "0:10%:40%");
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "Decode: Min 0 is below the host's MinPartitionDecode 100"),
		  "%s", err.msg);
	gp_error_clear(&err);
	/* Optimal above Max. */
	share(&o, GP_RES_DECODE, "1000:30%:20%");
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "Decode: Optimal 300000000 (30%) is greater than Max "
				  "200000000 (20%)"), "%s", err.msg);
	gp_error_clear(&err);
	/* The host's own defaults still break Max <= Available here. */
	memset(o.share, 0, sizeof(o.share));
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "VRAM: Max 1000000000 exceeds AvailableVRAM 400000000"), "%s",
		  err.msg);
}

Test(plan, vm_name_rules)
{
	struct gp_plan_opts o = { 0 };
	struct gp_gpu g = fake_gpu(1000, 1000, 0, 1000);
	struct gp_error err = { 0 };
	struct gp_plan p;

	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "--vm"), "%s", err.msg);
	gp_error_clear(&err);
	o.vm_name = "bad \xc3\x28 name";
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "UTF-8"), "%s", err.msg);
	gp_error_clear(&err);
	o.vm_name = "ok";
	cr_assert_eq(gp_plan_build(&o, NULL, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "no GPU"), "%s", err.msg);
}

Test(plan, mmio_defaults_surveydda_and_overrides)
{
	struct gp_plan_opts o = { .vm_name = "vm" };
	struct gp_gpu g = fake_gpu(1000, 1000, 0, 1000);
	struct gp_error err = { 0 };
	struct gp_plan p;
	struct gp_surveydda sv;
	char *path = hc_data("surveydda.txt");

	g.has_pci_ids = true;
	g.vendor_id = 0x10DE;
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), 0);
	cr_assert_eq(p.low_mmio, 1ull << 30);
	cr_assert_eq(p.high_mmio, 32ull << 30);
	cr_assert_eq(p.n_warnings, 0);
	gp_plan_free(&p);

	cr_assert_eq(gp_surveydda_load(path, &sv, &err), 0, "%s", err.msg);
	cr_assert_eq(sv.n, 2);
	cr_assert_str_eq(sv.dev[0].name, "NVIDIA GeForce RTX 4070 Laptop GPU");
	cr_assert_eq(sv.dev[0].mb, 16);
	cr_assert(sv.dev[0].display && sv.dev[1].display);
	cr_assert_eq(sv.dev[1].mb, 272);
	o.surveydda = &sv;
	/* The chosen GPU is NVIDIA's (VEN_10DE): its 16 MB + 512 MiB buffer
	 * = 528 MiB, 1 GiB, raised to GPU-P's 8 GiB with a warning. */
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), 0);
	cr_assert_eq(p.high_mmio, 8ull << 30);
	cr_assert(strstr(p.mmio_reason, "1 display device(s) need 16 MB, plus 512 MiB buffer, "
				       "rounded up to whole GiB, at least 8 GiB"), "%s", p.mmio_reason);
	cr_assert_eq(p.n_warnings, 1);
	cr_assert(strstr(p.warnings[0], "counted NVIDIA GeForce RTX 4070 Laptop GPU 16 MB (not "
				       "counted: Intel(R) Iris(R) Xe Graphics 272 MB)") &&
		  strstr(p.warnings[0], "raised to 8 GiB"), "%s", p.warnings[0]);
	gp_plan_free(&p);
	/* Big GPUs: 2 x 16 GiB + 1 GiB buffer = 33 GiB, whole GiB, not the
	 * next power of two. */
	sv.dev[0].mb = 16 * 1024;
	sv.dev[1].mb = 16 * 1024;
	sv.dev[1].name[0] = 'N';   /* "Ntel(R) ...": no vendor word, not the chosen vendor's */
	o.have_mmio_buffer = true;
	o.mmio_buffer = 1ull << 30;
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), 0);
	cr_assert_eq(p.high_mmio, 17ull << 30, "the chosen vendor's GPU only");
	gp_plan_free(&p);
	o.gpu_select = NULL;
	g.has_pci_ids = false;      /* vendor unknown: every display device */
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), 0);
	cr_assert_eq(p.high_mmio, 33ull << 30, "whole GiB, not the next power of two");
	cr_assert_eq(p.n_warnings, 0);
	gp_plan_free(&p);
	o.surveydda = NULL;
	gp_surveydda_free(&sv);
	/* Explicit sizes win; above 64 GiB warns about 36-bit hosts. */
	o.high_mmio = 128ull << 30;
	o.low_mmio = 3ull << 30;
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), 0);
	cr_assert_eq(p.high_mmio, 128ull << 30);
	cr_assert_eq(p.low_mmio, 3ull << 30);
	cr_assert_eq(p.n_warnings, 1);
	cr_assert(strstr(p.warnings[0], "36-bit"), "%s", p.warnings[0]);
	gp_plan_free(&p);
	o.low_mmio = 4ull << 30;
	cr_assert_eq(gp_plan_build(&o, &g, &p, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "below 4 GiB"), "%s", err.msg);
	free(path);
}

Test(plan, revert_uses_hyperv_defaults)
{
	struct gp_plan_opts o = { .vm_name = "vm", .revert = true };
	struct gp_error err = { 0 };
	struct gp_plan p;

	cr_assert_eq(gp_plan_build(&o, NULL, &p, &err), 0, "%s", err.msg);
	cr_assert_eq(p.low_mmio, 128ull << 20);
	cr_assert_eq(p.high_mmio, 512ull << 20);
	cr_assert_null(p.instance_path);
	gp_plan_free(&p);
}

Test(plan, surveydda_errors)
{
	struct gp_error err = { 0 };
	struct gp_surveydda sv;
	char *path = hc_data("surveydda-bad.txt");
	const char *none = "Generic USB xHCI Host Controller\nNot assignable.\n";

	cr_assert_eq(gp_surveydda_load(path, &sv, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "surveydda-bad.txt:3:"), "%s", err.msg);
	cr_assert_eq(sv.n, 0);
	gp_error_clear(&err);
	cr_assert_eq(gp_surveydda_parse(none, strlen(none), "s.txt", &sv, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "s.txt: no 'And it requires at least"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_surveydda_load("/nonexistent/s.txt", &sv, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "/nonexistent/s.txt"), "%s", err.msg);
	free(path);
}

/* Microsoft's K520 sample (176 MB) and a survey whose only device is an AMD
 * security processor: High MMIO never drops below GPU-P's 8 GiB unless the
 * user forces it, and a warning says what was counted. */
Test(plan, surveydda_small_or_non_gpu_devices_keep_8_gib)
{
	struct gp_plan_opts o = { .vm_name = "vm", .gpu_select = "auto" };
	struct gp_error err = { 0 };
	struct gp_surveydda sv;
	struct gp_plan p;
	char *k520 = hc_data("surveydda-k520.txt"), *psp = hc_data("surveydda-amd-psp.txt");

	cr_assert_eq(gp_surveydda_load(k520, &sv, &err), 0, "%s", err.msg);
	cr_assert_eq(sv.n, 1);
	cr_assert_str_eq(sv.dev[0].name, "NVIDIA GRID K520");
	cr_assert(sv.dev[0].display);
	o.surveydda = &sv;
	cr_assert_eq(gp_plan_build(&o, NULL, &p, &err), 0, "%s", err.msg);
	cr_assert_eq(p.high_mmio, 8ull << 30);
	cr_assert_eq(p.n_warnings, 1);
	cr_assert(strstr(p.warnings[0], "SurveyDDA: counted NVIDIA GRID K520 176 MB (not counted: "
				       "nothing) + 512 MiB buffer = 1 GiB; High MMIO raised to 8 GiB"),
		  "%s", p.warnings[0]);
	gp_plan_free(&p);
	/* Forced: the user's size stands, no warning. */
	o.high_mmio = 1ull << 30;
	cr_assert_eq(gp_plan_build(&o, NULL, &p, &err), 0);
	cr_assert_eq(p.high_mmio, 1ull << 30);
	cr_assert_eq(p.n_warnings, 0);
	gp_plan_free(&p);
	o.high_mmio = 0;
	gp_surveydda_free(&sv);

	cr_assert_eq(gp_surveydda_load(psp, &sv, &err), 0, "%s", err.msg);
	cr_assert_eq(sv.n, 1);
	cr_assert_str_eq(sv.dev[0].name, "AMD PSP 3.0 Device");
	cr_assert_eq(sv.dev[0].mb, 2);
	cr_assert_eq(sv.dev[0].line, 8);
	cr_assert(!sv.dev[0].display);
	cr_assert_eq(gp_plan_build(&o, NULL, &p, &err), 0);
	cr_assert_eq(p.high_mmio, 32ull << 30);
	cr_assert_eq(p.n_warnings, 1);
	cr_assert(strstr(p.warnings[0], "SurveyDDA lists no display device (not counted: AMD PSP 3.0 "
				       "Device 2 MB); High MMIO stays at the 32 GiB default"),
		  "%s", p.warnings[0]);
	gp_plan_free(&p);
	o.surveydda = NULL;
	gp_surveydda_free(&sv);
	free(k520);
	free(psp);
}
