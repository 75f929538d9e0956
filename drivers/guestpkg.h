/*
 * guestpkg.h — the driver packages inside a guest volume, read offline
 * through gpup's NTFS layer (ntfsvol.h): what `gpup doctor` needs to judge
 * a guest without a host DriverStore or bundle.
 *
 *  - The guest's own driver store (Windows\System32\DriverStore\
 *    FileRepository\<folder>\<inf> and the published copies
 *    Windows\INF\oem<N>.inf): display packages of a GPU vendor installed
 *    in the guest itself compete with the GPU partition's driver from the
 *    HostDriverStore (Code 43, or the wrong driver bound).
 *  - One HostDriverStore package (Windows\System32\HostDriverStore\
 *    FileRepository\<folder>): the files its own INF names
 *    ([SourceDisksFiles], CopyFiles, CopyToVm*) that are absent, found by
 *    the very rules that compute a DriverStore's injection set (store.h).
 *
 * INFs are parsed by inf.h; a package whose INF is unreadable or no driver
 * INF is skipped (vendor scan) or reported in its result (package check),
 * never an error of the call. Nothing is written. Errors follow gp_error.h
 * and go into the caller's @err.
 */
#ifndef GPUP_GUESTPKG_H
#define GPUP_GUESTPKG_H

#include <stdbool.h>
#include <stddef.h>

#include "gp_error.h"
#include "ntfsvol.h"

/* Where the guest keeps its own packages and their published INFs. */
#define GP_GUEST_DRIVERSTORE "Windows/System32/DriverStore/FileRepository"
#define GP_GUEST_INF_DIR "Windows/INF"

/* The GPU vendor an INF Provider names ("NVIDIA", "AMD", "Intel",
 * "Qualcomm"), case-insensitively ("Advanced Micro Devices, Inc." and
 * "ATI Technologies Inc." are AMD), or NULL: other display drivers
 * (Microsoft's, indirect displays such as virtual monitors) drive no GPU
 * and do not compete with the partition's driver. */
const char *gp_gpu_vendor(const char *provider);

/* A GPU vendor's display package installed in the guest itself. */
struct gp_guest_driver {
	char folder[256];     /* FileRepository folder; "" for a published INF
			       * whose folder is gone */
	char inf[256];        /* "nv_dispi.inf" (or "oem3.inf" without folder) */
	char published[32];   /* its Windows\INF copy ("oem3.inf"), "" if none */
	char provider[128];   /* [Version] Provider, %strings% substituted */
	char driver_ver[96];  /* [Version] DriverVer ("03/20/2024,31.0.15.5222") */
	const char *vendor;   /* gp_gpu_vendor(provider), never NULL here */
};

/*
 * The display packages of GPU vendors in the guest's own driver store:
 * every FileRepository folder whose INF (the one the folder is named
 * after) has [Version] Class=Display or the Display ClassGuid and a
 * vendor Provider, matched to its published Windows\INF\oem<N>.inf (the
 * same bytes; else the same Provider and DriverVer), plus published
 * vendor display INFs whose folder is gone. Reparse points in
 * FileRepository (the NGX junction to the HostDriverStore) are not
 * packages of the guest and are skipped. Sorted by folder, then INF.
 * *@out (malloc'ed, free() it; NULL when *@count is 0) and *@count.
 * Returns 0 (also when the guest has no driver store), GP_ERR_IO,
 * GP_ERR_NOMEM.
 */
int gp_guest_vendor_displays(struct gp_ntfs *v, struct gp_guest_driver **out, size_t *count,
			     struct gp_error *err);

/* What one HostDriverStore package's INF says about its folder. */
struct gp_guest_pkg_check {
	char inf[256];          /* the package's INF, "" if the folder has none */
	char provider[128];     /* [Version] Provider, "" if unknown */
	const char *vendor;     /* gp_gpu_vendor(provider), or NULL */
	bool is_display;        /* Class=Display or the Display ClassGuid */
	/* Why the INF could not be followed ("" when it was): no INF in the
	 * folder, an INF that does not parse or is no driver INF. */
	char problem[GP_ERROR_MSG_MAX];
	/* Files the INF names that are absent, as '/'-separated guest paths:
	 * GP_GUEST_HOSTDRIVERSTORE/<folder>/<file> for a file of the package's
	 * media ([SourceDisksFiles], at its place or the folder's top), or
	 * Windows/System32|SysWOW64/<name> for a companion the INF copies
	 * whose source the folder lacks and that the guest does not hold
	 * either. Sorted; owned, freed by gp_guest_pkg_check_free(). */
	char **missing;
	size_t n_missing;
};

/*
 * Check HostDriverStore package @folder (a folder name, no path) against its
 * own INF: every file of the folder (recursively) stands in for the package
 * as a host DriverStore folder would, and the injection-set rules of
 * store.h (every model's install section, allow_missing) name what is
 * absent. @out is zeroed first; free with gp_guest_pkg_check_free() (also
 * after a failure). Returns 0 (the verdict is in @out), GP_ERR_NOTFOUND
 * (no such folder), GP_ERR_UNSUPPORTED (folders nested deeper than 32),
 * GP_ERR_IO, GP_ERR_NOMEM.
 */
int gp_guest_check_host_package(struct gp_ntfs *v, const char *folder,
				struct gp_guest_pkg_check *out, struct gp_error *err);

void gp_guest_pkg_check_free(struct gp_guest_pkg_check *c);

#endif
