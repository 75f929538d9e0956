/* cmd_inspect.c — PLACEHOLDER: `gpup inspect` is not written yet. */
#include "cli.h"

int cmd_inspect(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'inspect' is not implemented yet\n");
	return EXIT_ERROR;
}
