/* cmd_bundle.c — PLACEHOLDER: `gpup bundle` is not written yet. */
#include "cli.h"

int cmd_bundle(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'bundle' is not implemented yet\n");
	return EXIT_ERROR;
}
