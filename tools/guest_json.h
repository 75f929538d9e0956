/*
 * guest_json.h — the guest facts of an open disk as JSON, for `gpup
 * inspect` (and any command that shows them). Only tools/ uses json-c.
 */
#ifndef GPUP_GUEST_JSON_H
#define GPUP_GUEST_JSON_H

#include <json-c/json.h>

#include "disk.h"
#include "gp_error.h"

/*
 * Mount the Windows volume of @d read-only (never writes) and describe it:
 * *@out = { "volume", "product_name", "edition", "installation_type",
 * "build", "ubr", "display_version", "server", "arch", "kernel_machine",
 * "hibernated", "fast_startup", "log_unclean", "dirty", "total_bytes",
 * "free_bytes", "host_driver_packages": [ { "folder", "inf", "driver_ver" } ] }
 * (caller puts it), or NULL when the disk holds no Windows installation,
 * or { "error": "why" } when the volume cannot be read (BitLocker, several
 * Windows volumes, corrupt NTFS). Returns 0, or GP_ERR_NOMEM / GP_ERR_IO
 * (details in @err) — a guest that cannot be described is not an error.
 */
int guest_facts_json(struct gp_disk *d, json_object **out, struct gp_error *err);

#endif
