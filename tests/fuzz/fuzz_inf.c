/*
 * fuzz_inf.c — libFuzzer entry point for the INF parser (gp_inf_parse():
 * encoding detection, line splitting, %key% substitution with its depth and
 * memory bounds), plus the lookups a DriverStore scan makes on the result.
 * Build and run (from the source tree, after `make`):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *     -Iimaging -Idrivers tests/fuzz/fuzz_inf.c drivers/inf.c imaging/gp_error.c \
 *     -o build/fuzz_inf
 *   mkdir -p build/corpus-inf && cp ../shared/fixtures/inf/nvidia-470.05/nvppc.inf \
 *     build/corpus-inf/ && build/fuzz_inf -dict=tests/fuzz/inf.dict build/corpus-inf
 *
 * Inputs are capped at 256 KiB: every rule is reachable in small files, and
 * the parser's work is linear in the input (substitution is bounded by
 * GP_INF_MEM_FACTOR).
 */
#include <stdint.h>
#include <string.h>

#include "inf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_error err = { 0 };
	struct gp_inf *inf;
	volatile size_t sink = 0;

	if (size > (256u << 10))
		return 0;
	if (gp_inf_parse(data, size, "fuzz.inf", &inf, &err) != 0)
		return 0;
	sink += gp_inf_get(inf, "Version", "Class") != NULL;
	sink += gp_inf_string(inf, "NVIDIA") != NULL;
	for (size_t i = 0; i < gp_inf_section_count(inf); i++) {
		const struct gp_inf_section *s = gp_inf_section_at(inf, i);
		for (size_t j = 0; j < s->n_lines; j++)
			for (size_t v = 0; v < s->lines[j].n_values; v++)
				sink += strlen(s->lines[j].values[v]);
		sink += gp_inf_section(inf, s->name) == s;
	}
	for (size_t i = 0; i < gp_inf_warning_count(inf); i++)
		sink += gp_inf_warning(inf, i) != NULL;
	gp_inf_free(inf);
	return 0;
}
