/* imaging_t.h — helpers shared by the tests of tests/imaging (header-only:
 * the Makefile links only test_*.c of a test directory). */
#ifndef GPUP_IMAGING_T_H
#define GPUP_IMAGING_T_H

#include <criterion/criterion.h>
#include <stdlib.h>

#include "helpers.h"

#define MiB (1024ull * 1024ull)
#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"

/* Decompress ../shared/fixtures/microsoft/NAME.bz2 into @dir (the original
 * stays untouched); the malloc'ed path. */
static inline char *it_ms_fixture(const char *dir, const char *name)
{
	char *dst = t_strdup_printf("%s/%s", dir, name);
	struct t_run r;

	cr_assert_eq(t_run(&r, "bzip2 -dc '%s/fixtures/microsoft/%s.bz2' > '%s'",
			   t_env("GPUP_SHARED"), name, dst), 0, "%s", r.err);
	t_run_free(&r);
	return dst;
}

#endif
