/* cmd_gpus.c — PLACEHOLDER: `gpup gpus` is not written yet. */
#include "cli.h"

int cmd_gpus(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'gpus' is not implemented yet\n");
	return EXIT_ERROR;
}
