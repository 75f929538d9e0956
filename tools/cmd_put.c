/* cmd_put.c — PLACEHOLDER: `gpup put` is not written yet. */
#include "cli.h"

int cmd_put(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'put' is not implemented yet\n");
	return EXIT_ERROR;
}
