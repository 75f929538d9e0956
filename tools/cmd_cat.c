/* cmd_cat.c — PLACEHOLDER: `gpup cat` is not written yet. */
#include "cli.h"

int cmd_cat(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'cat' is not implemented yet\n");
	return EXIT_ERROR;
}
