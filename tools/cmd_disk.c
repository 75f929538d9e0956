/* cmd_disk.c — PLACEHOLDER: `gpup disk` is not written yet. */
#include "cli.h"

int cmd_disk(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'disk' is not implemented yet\n");
	return EXIT_ERROR;
}
