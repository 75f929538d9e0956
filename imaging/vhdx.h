/*
 * vhdx.h — gpup's VHDX engine (MS-VHDX 1.0). PLACEHOLDER: being written.
 */
#ifndef GPUP_VHDX_H
#define GPUP_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "gp_error.h"

struct vhdx;

/* Does @path's current header carry a non-zero LogGuid (a log with updates
 * not yet applied)? Reads headers only; never writes.
 * Returns 0 and sets *@dirty, or GP_ERR_IO / GP_ERR_CORRUPT. */
int vhdx_log_is_dirty(const char *path, bool *dirty, struct gp_error *err);

#endif
