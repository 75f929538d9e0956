/*
 * fuzz_hostconf.c — libFuzzer entry point for the hostconf parsers: the GPU
 * list (Get-VMHostPartitionableGpu console list, JSON, UTF-16LE), SurveyDDA
 * output and share specifications. The first input byte picks the parser;
 * a parsed GPU list also goes through GPU selection and a plan + render, so
 * whatever the parser accepts must be safe for the code after it.
 * Build and run from the source tree (the module's sources are compiled in,
 * so that they are instrumented too):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *     -Iimaging -Ihostconf $(pkg-config --cflags json-c) tests/fuzz/fuzz_hostconf.c \
 *     hostconf/gpus.c hostconf/plan.c hostconf/psrender.c hostconf/psapply.c \
 *     hostconf/text.c imaging/gp_error.c $(pkg-config --libs json-c) \
 *     -o build/fuzz_hostconf
 *   mkdir -p build/corpus-hostconf
 *   (the corpus: each file of tests/hostconf/data with a leading 0 byte for the
 *   GPU-list parser, or 1 for SurveyDDA output)
 *   build/fuzz_hostconf build/corpus-hostconf
 *
 * Inputs are capped at 256 KiB: a GPU list is a few KiB.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpus.h"
#include "plan.h"
#include "ps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void plan_and_render(const struct gp_gpu_list *l)
{
	struct gp_plan_opts o = { .vm_name = "fuzz" };
	struct gp_error err = { 0 };
	struct gp_plan p;
	size_t idx;
	char *out;

	if (gp_gpus_select(l, "auto", &idx, &err) != 0)
		idx = 0;
	if (gp_plan_build(&o, &l->gpus[idx], &p, &err) != 0)
		return;
	if (gp_ps_render_string(&p, &out, NULL, &err) == 0)
		free(out);
	gp_plan_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_error err = { 0 };

	if (size < 1 || size > (256u << 10))
		return 0;
	switch (data[0] % 3) {
	case 0: {
		struct gp_gpu_list l;
		if (gp_gpus_parse((const char *)data + 1, size - 1, "fuzz", &l, &err) == 0) {
			plan_and_render(&l);
			gp_gpus_free(&l);
		}
		break;
	}
	case 1: {
		uint64_t mb;
		unsigned n;
		gp_surveydda_parse((const char *)data + 1, size - 1, "fuzz", &mb, &n, &err);
		break;
	}
	default: {
		/* Share specs are NUL-terminated command-line strings. */
		char *s = strndup((const char *)data + 1, size - 1);
		struct gp_share_spec spec;
		if (s)
			gp_share_parse(s, &spec, &err);
		free(s);
		break;
	}
	}
	return 0;
}
