/* hc_test.h — small helpers shared by the hostconf test files. */
#ifndef GPUP_HC_TEST_H
#define GPUP_HC_TEST_H

#include <criterion/criterion.h>
#include <stdlib.h>

#include "helpers.h"

/* tests/hostconf/data/NAME in the source tree (malloc'ed). */
static inline char *hc_data(const char *name)
{
	return t_strdup_printf("%s/tests/hostconf/data/%s", t_env("GPUP_SRC"), name);
}

/* Contents of tests/hostconf/data/NAME (malloc'ed; aborts when missing). */
static inline char *hc_read_data(const char *name, size_t *len)
{
	char *path = hc_data(name);
	char *buf = t_read_file(path, len);

	cr_assert_not_null(buf, "cannot read %s", path);
	free(path);
	return buf;
}

#endif
