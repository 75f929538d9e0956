/* cmd_create.c — PLACEHOLDER: `gpup create` is not written yet. */
#include "cli.h"

int cmd_create(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'create' is not implemented yet\n");
	return EXIT_ERROR;
}
