/* cmd_rm.c — PLACEHOLDER: `gpup rm` is not written yet. */
#include "cli.h"

int cmd_rm(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'rm' is not implemented yet\n");
	return EXIT_ERROR;
}
