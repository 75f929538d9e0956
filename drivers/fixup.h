/*
 * fixup.h — guest fix-ups that copying the driver package alone misses
 * (`prepare --fixup NAME`), planned with the files and recorded in the
 * guest's manifest (manifest.h) so that `unprepare` undoes them.
 *
 *  nvlddmkm-service  HKLM\SYSTEM\<current ControlSet>\Services\nvlddmkm with
 *                    Type, Start, ErrorControl, Group and ImagePath from the
 *                    package INF's AddService section for nvlddmkm (values
 *                    the INF does not give are not written). Some
 *                    applications (Diablo IV, DaVinci Resolve) look for the
 *                    NVIDIA kernel driver's service key and refuse to start
 *                    without it. NVIDIA packages only. ImagePath: the
 *                    INF's ServiceBinary with DIRID 13 (the driver's own
 *                    store folder) mapped to the package's HostDriverStore
 *                    folder, 12 to System32\drivers, 11 to System32, as
 *                    \SystemRoot\... (REG_EXPAND_SZ). The SYSTEM hive is
 *                    read through gpup's NTFS layer, edited in memory with
 *                    libhivex and written back crash-safely
 *                    (gp_manifest_write_hive(): the whole new hive as
 *                    SYSTEM.gpup-new first, then SYSTEM in place): a kill
 *                    leaves a complete hive, and the rerun finishes. A
 *                    hive whose last write Windows did not finish
 *                    (pending .LOG replay) is refused.
 *  ngx-junction      C:\Windows\System32\DriverStore\FileRepository\<package>
 *                    as a junction (NTFS mount-point reparse point,
 *                    gp_ntfs_make_junction()) to the package's HostDriverStore
 *                    folder: NVIDIA's NGX (DLSS) loader asks the kernel
 *                    driver for the driver-store path and gets the host's
 *                    DriverStore path, which the guest lacks. The directory
 *                    inherits its parent's ACL like the package's folders.
 *                    A real folder of that name (the driver installed in the
 *                    guest) is refused; a junction already there with the
 *                    same target is left alone.
 */
#ifndef GPUP_FIXUP_H
#define GPUP_FIXUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"
#include "inject.h"
#include "manifest.h"
#include "ntfsvol.h"

#define GP_FIXUP_NVLDDMKM_SERVICE "nvlddmkm-service"
#define GP_FIXUP_NGX_JUNCTION "ngx-junction"
#define GP_FIXUP_SYSTEM_HIVE "Windows/System32/config/SYSTEM"

struct gp_fixup_desc {
	const char *name;
	const char *reason;        /* one line */
};

/* The fix-ups gpup knows, in a fixed order. */
size_t gp_fixup_count(void);
const struct gp_fixup_desc *gp_fixup_at(size_t i);
/* By name (exact), or NULL. */
const struct gp_fixup_desc *gp_fixup_find(const char *name);

/* One registry value a fix-up sets. */
struct gp_fixup_value {
	const char *name;          /* static */
	uint32_t type;             /* GP_REG_* (hive.h) */
	uint8_t *data;             /* owned */
	size_t len;
};

struct gp_fixup_plan {
	const char *names[4];      /* the fix-ups asked for */
	size_t n_names;
	/* nvlddmkm-service */
	bool service;
	char key[96];              /* "ControlSet001\Services\nvlddmkm" */
	char created_key[96];      /* the top-most key this run creates, or "" */
	struct gp_fixup_value want[5];
	size_t n_want;
	size_t n_changed;          /* values that differ in the guest now */
	struct gp_manifest_reg reg; /* the state before this run */
	uint8_t *hive;             /* the new SYSTEM hive; NULL: nothing to write */
	size_t hive_len;
	/* ngx-junction */
	char junction[320];        /* guest path of the junction */
	char junction_target[320]; /* its print name, C:\... */
	bool junction_new;         /* the commit creates it */
	const char *junction_dirs[1];
	/* For gp_manifest_plan_prepare(). */
	struct gp_manifest_extra extra;
};

/*
 * Plan the fix-ups @names (validated with gp_fixup_find()) for @set on @v
 * (read-only is enough): what each changes, with the state before it, and
 * the room its writes need added to rep->space (gp_manifest_plan_prepare()
 * checks the total). A fix-up already in place plans no change.
 * Returns 0, GP_ERR_UNSUPPORTED (nvlddmkm-service for a package that is
 * not NVIDIA's: the message names the package and its provider),
 * GP_ERR_CORRUPT (no AddService for nvlddmkm in the INF, or one without
 * ServiceType / StartType / ServiceBinary, an unknown DIRID; a damaged or
 * unreplayed SYSTEM hive), GP_ERR_NOTFOUND (no SYSTEM hive), the volume's
 * codes, GP_ERR_NOMEM. Free with gp_fixup_plan_free().
 */
int gp_fixup_plan(struct gp_ntfs *v, const struct gp_inject_set *set, const char *const *names,
		  size_t n_names, struct gp_inject_report *rep, struct gp_fixup_plan *fp,
		  struct gp_error *err);
void gp_fixup_plan_free(struct gp_fixup_plan *fp);

#endif
