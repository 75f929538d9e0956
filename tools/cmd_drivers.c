/* cmd_drivers.c — PLACEHOLDER: `gpup drivers` is not written yet. */
#include "cli.h"

int cmd_drivers(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'drivers' is not implemented yet\n");
	return EXIT_ERROR;
}
