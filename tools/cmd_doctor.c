/* cmd_doctor.c — PLACEHOLDER: `gpup doctor` is not written yet. */
#include "cli.h"

int cmd_doctor(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "gpup: 'doctor' is not implemented yet\n");
	return EXIT_ERROR;
}
