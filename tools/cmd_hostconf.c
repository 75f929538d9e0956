/* cmd_hostconf.c — PLACEHOLDER: `gpup hostconf` is not written yet. */
#include "cli.h"

int cmd_hostconf(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'hostconf' is not implemented yet\n");
	return EXIT_ERROR;
}
