/* test_options.c — every command's long options agree between what its
 * parser accepts, `gpup CMD --help`, the bash completion and gpup.1
 * (tests/cli/options.py: it exercises each parser with every option name
 * of tools/'s tables, then compares). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* A parser probed ~100 times per command: minutes on a loaded machine. */
Test(options, parser_help_completion_and_man_agree, .timeout = 900)
{
	struct t_run r;

	t_run(&r, "python3 '%s/tests/cli/options.py' '%s' '%s'", getenv("GPUP_SRC"),
	      getenv("GPUP_BIN"), getenv("GPUP_SRC"));
	cr_assert_eq(r.status, 0, "disagreements:\n%s%s", r.out, r.err);
	cr_assert_str_empty(r.out);
	t_run_free(&r);
}
