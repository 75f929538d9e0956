/*
 * guest.h — facts about the Windows installation on a mounted guest volume:
 * product, edition, build, client or server, architecture, shutdown state,
 * free space, and the GPU driver packages already in the HostDriverStore.
 *
 * The registry is read with libhivex from the hive files inside the volume
 * (Windows\System32\config\SOFTWARE and SYSTEM). The hive bytes go into an
 * anonymous memory file (memfd) that hivex opens as /proc/self/fd/N: no
 * temporary file touches the host's disk.
 *
 * Missing pieces are not errors: a guest without a SYSTEM hive simply has
 * no architecture from the registry (the kernel's PE header is used then),
 * and every string a fact could not be read for is "". Errors follow
 * gp_error.h and go into the caller's @err.
 */
#ifndef GPUP_GUEST_H
#define GPUP_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"
#include "ntfsvol.h"

/* One package folder of Windows\System32\HostDriverStore\FileRepository. */
struct gp_guest_pkg {
	char folder[256];      /* "nv_dispi.inf_amd64_0123456789abcdef" */
	char inf[256];         /* the .inf inside ("nv_dispi.inf"), "" if none */
	char driver_ver[64];   /* its DriverVer= value ("06/21/2021,30.0.14.7141"), "" if none */
};

struct gp_guest_facts {
	char product_name[128];      /* SOFTWARE ...\CurrentVersion ProductName */
	char edition[64];            /* EditionID ("Professional", "ServerDatacenter") */
	char installation_type[32];  /* InstallationType ("Client", "Server", "Server Core") */
	char build[16];              /* CurrentBuildNumber ("22631") */
	char display_version[16];    /* DisplayVersion ("23H2"), "" on older builds */
	uint32_t ubr;                /* update build revision; 0 when absent */
	bool is_server;              /* InstallationType starts with "Server" */
	char arch[16];               /* "amd64", "x86", "arm64", or "" when unknown */
	uint16_t kernel_machine;     /* PE machine of ntoskrnl.exe (0x8664, 0x14c, 0xaa64); 0 unknown */
	/* Volume state (see gp_ntfs_volinfo). */
	bool hibernated, fast_startup, log_unclean, dirty;
	uint64_t total_bytes, free_bytes;
	/* From the SYSTEM hive, in the control set Windows boots with
	 * (Select\Current). All false / 0 when system_read is false. */
	bool system_read;            /* Windows\System32\config\SYSTEM was found and read */
	unsigned control_set;        /* Select\Current (1 = ControlSet001) */
	/* Control\GraphicsDrivers DriverStoreCopyMode, a DWORD: whether the
	 * guest copies the host's driver store itself when its virtual GPU
	 * starts (0 no, 1 yes without overwriting, 2 yes overwriting). */
	bool copy_mode_set;
	uint32_t copy_mode;
	bool nvlddmkm_service;       /* Services\nvlddmkm exists */
	/* HostDriverStore\FileRepository packages, sorted by folder name;
	 * owned, freed by gp_guest_facts_free(). */
	struct gp_guest_pkg *pkgs;
	size_t pkg_count;
};

/*
 * Read the facts of the guest on @v into @out (zeroed first).
 * Returns 0, or GP_ERR_NOTFOUND (the volume holds no Windows\System32),
 * GP_ERR_CORRUPT (a hive that hivex cannot parse), GP_ERR_IO, GP_ERR_NOMEM.
 * Release with gp_guest_facts_free() (also after a failure).
 */
int gp_guest_read(struct gp_ntfs *v, struct gp_guest_facts *out, struct gp_error *err);

void gp_guest_facts_free(struct gp_guest_facts *f);

/* "amd64" etc. for a PE machine value; NULL when unknown. */
const char *gp_guest_machine_arch(uint16_t machine);

/* Find the DriverVer= value in INF text @buf (@len bytes; ASCII/UTF-8 or
 * UTF-16LE with BOM) into @out (@size bytes, NUL-terminated). Returns true
 * when found. The value is trimmed, its inline comment dropped. */
bool gp_guest_inf_driver_ver(const void *buf, size_t len, char *out, size_t size);

#endif
