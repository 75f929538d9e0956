/*
 * fuzz_gpus.c — the hostconf parsers: the GPU list (Get-VMHostPartitionableGpu
 * console list and JSON, UTF-8 or UTF-16LE, detected), SurveyDDA output and
 * share specifications. The first input byte picks the parser (mod 3); a
 * parsed GPU list also goes through GPU selection, plan building and the
 * PowerShell renderer, so whatever the parser accepts must be safe for the
 * code after it.
 * Seeds: fuzz/corpus/gpus (leading byte 0: list/JSON, 1: SurveyDDA, 2: share).
 * Inputs are capped at 256 KiB: a GPU list is a few KiB.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gpus.h"
#include "plan.h"
#include "ps.h"

static void fuzz_gpus_plan(const struct gp_gpu_list *l)
{
	struct gp_plan_opts o = { .vm_name = "fuzz" };
	struct gp_error err = { 0 };
	struct gp_plan p;
	size_t idx;
	char *out;

	if (gp_gpus_select(l, "auto", &idx, &err) != 0)
		idx = 0;
	gp_error_clear(&err);
	/* The selection forms a user types, over whatever was parsed. */
	(void)gp_gpus_select(l, "10de:2860", &idx, &err);
	gp_error_clear(&err);
	(void)gp_gpus_select(l, "VEN_10DE&DEV_2860", &idx, &err);
	gp_error_clear(&err);
	if (gp_gpus_select(l, "auto", &idx, &err) != 0)
		idx = 0;
	gp_error_clear(&err);
	if (gp_plan_build(&o, &l->gpus[idx], &p, &err) != 0)
		return;
	if (gp_ps_render_string(&p, &out, NULL, &err) == 0)
		free(out);
	gp_plan_free(&p);
}

int fuzz_gpus(const uint8_t *data, size_t size)
{
	struct gp_error err = { 0 };

	if (size < 1 || size > (256u << 10))
		return 0;
	switch (data[0] % 3) {
	case 0: {
		struct gp_gpu_list l;

		if (gp_gpus_parse((const char *)data + 1, size - 1, "fuzz", &l, &err) == 0) {
			if (l.count > 0)
				fuzz_gpus_plan(&l);
			gp_gpus_free(&l);
		}
		break;
	}
	case 1: {
		struct gp_surveydda sv;

		if (gp_surveydda_parse((const char *)data + 1, size - 1, "fuzz", &sv, &err) == 0)
			gp_surveydda_free(&sv);
		break;
	}
	default: {
		/* Share specs arrive as NUL-terminated command-line strings. */
		char *s = strndup((const char *)data + 1, size - 1);
		struct gp_share_spec spec;

		if (s)
			(void)gp_share_parse(s, &spec, &err);
		free(s);
		break;
	}
	}
	return 0;
}

#ifndef GP_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_gpus(data, size);
}
#endif
