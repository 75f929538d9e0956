/* cmd_verify.c — PLACEHOLDER: `gpup verify` is not written yet. */
#include "cli.h"

int cmd_verify(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'verify' is not implemented yet\n");
	return EXIT_ERROR;
}
