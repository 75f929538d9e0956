/* cmd_prepare.c — PLACEHOLDER: `gpup prepare` is not written yet. */
#include "cli.h"

int cmd_prepare(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'prepare' is not implemented yet\n");
	return EXIT_ERROR;
}
