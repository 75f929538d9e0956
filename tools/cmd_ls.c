/* cmd_ls.c — PLACEHOLDER: `gpup ls` is not written yet. */
#include "cli.h"

int cmd_ls(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'ls' is not implemented yet\n");
	return EXIT_ERROR;
}
