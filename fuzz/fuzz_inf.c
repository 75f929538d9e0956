/*
 * fuzz_inf.c — the INF parser (gp_inf_parse(): encoding detection, line
 * splitting, quoting, %key% substitution with its depth and memory bounds)
 * plus the lookups a DriverStore scan makes on the result.
 * Seeds: fuzz/corpus/inf (real INFs, and the big ones cut into groups of
 * sections with the [Strings] they use by fuzz/infsplit.py); dictionary
 * fuzz/inf.dict. Inputs are capped at 256 KiB here and fuzz/run.sh fuzzes
 * with -max_len=8192: every rule (including the expansion budget, reached
 * through nested %key% substitution) is reachable in small files, and the
 * parser's work is linear in the input.
 */
#include <string.h>

#include "fuzz.h"
#include "inf.h"

int fuzz_inf(const uint8_t *data, size_t size)
{
	struct gp_error err = { 0 };
	struct gp_inf *inf;
	volatile size_t sink = 0;

	if (size > (256u << 10))
		return 0;
	if (gp_inf_parse(data, size, "fuzz.inf", &inf, &err) != 0)
		return 0;
	sink += gp_inf_encoding_name(gp_inf_encoding(inf)) != NULL;
	sink += gp_inf_get(inf, "Version", "Class") != NULL;
	sink += gp_inf_get(inf, "Version", "DriverVer") != NULL;
	sink += gp_inf_string(inf, "NVIDIA") != NULL;
	for (size_t i = 0; i < gp_inf_section_count(inf); i++) {
		const struct gp_inf_section *s = gp_inf_section_at(inf, i);

		for (size_t j = 0; j < s->n_lines; j++) {
			/* One keyed lookup per section (not per line: quadratic). */
			if (j == 0 && s->lines[j].key)
				sink += gp_inf_line(s, s->lines[j].key) != NULL;
			for (size_t v = 0; v < s->lines[j].n_values; v++)
				sink += strlen(s->lines[j].values[v]);
		}
		sink += gp_inf_section(inf, s->name) == s;
	}
	for (size_t i = 0; i < gp_inf_warning_count(inf); i++)
		sink += gp_inf_warning(inf, i) != NULL;
	(void)sink;
	gp_inf_free(inf);
	return 0;
}

#ifndef GP_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_inf(data, size);
}
#endif
