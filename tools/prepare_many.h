/*
 * prepare_many.h — `gpup prepare IMAGE...`: many images in one run
 * (prepare_many.c); cmd_prepare.c keeps the single-image transaction.
 */
#ifndef GPUP_PREPARE_MANY_H
#define GPUP_PREPARE_MANY_H

#include <stddef.h>

#include "session.h"

/*
 * Prepare each of @n @images with @one(@ctx, image) -- the whole
 * single-image command, run in a worker process with @ctx its parsed
 * options -- at most @jobs at a time. @s: the parsed options (driver
 * source, image options, --json, -q); its source is opened here once per
 * guest build (fleet_source_for() hands it to the workers). Prints each
 * image's report and a summary (see prepare_many.c); returns the worst exit
 * status (fleet_worse()).
 */
int prepare_many(const struct session *s, char **images, size_t n, unsigned jobs,
		 int (*one)(void *ctx, const char *image), void *ctx);

#endif
