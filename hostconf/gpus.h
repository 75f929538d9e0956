/*
 * gpus.h — the host's partitionable GPUs, as Hyper-V reports them.
 *
 * Input is what PowerShell prints for `Get-VMHostPartitionableGpu`
 * (Windows 11, Server 2025) or `Get-VMPartitionableGpu` (Windows 10,
 * Server 2022), either
 *   - the console's list format ("Name      : value" lines, records
 *     separated by blank lines; values longer than the window wrap onto
 *     continuation lines indented to the value column; numbers may carry
 *     the console culture's thousands separators, "1,000,000,000", as in
 *     Microsoft's published sample; a blank line followed by a property the
 *     record does not have yet is a stray one inside the record, and a
 *     record a blank line cuts short is reported at that line), or
 *   - the same objects piped through `ConvertTo-Json` (one object or an
 *     array of them).
 * Files saved with Windows PowerShell's `>` are UTF-16LE with a byte-order
 * mark; that, UTF-16BE and UTF-8 (with or without BOM, LF or CRLF) are read.
 *
 * Each GPU carries its instance path (the `Name` property, e.g.
 * `\\?\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a7e4f6b&0&0008#{...}`),
 * the PCI IDs decoded from it, the partition counts and, for each of the four
 * resources (VRAM, Encode, Decode, Compute), Total/Available/Min/Max/Optimal
 * on the host's own scale (1e9 on most hosts; Encode is 2^64-1 on some).
 *
 * Names for the PCI IDs come from the system's pci.ids database
 * (Debian package `pci.ids`, GP_PCI_IDS_DEFAULT), read in one streaming pass.
 */
#ifndef GPUP_GPUS_H
#define GPUP_GPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"

/* Where Debian's `pci.ids` package installs the database. */
#define GP_PCI_IDS_DEFAULT "/usr/share/misc/pci.ids"

/* The four partitionable resources, in the order Hyper-V lists them. */
enum gp_gpu_res {
	GP_RES_VRAM = 0,
	GP_RES_ENCODE = 1,
	GP_RES_DECODE = 2,
	GP_RES_COMPUTE = 3,
	GP_RES_COUNT = 4,
};

/* One resource as the host reports it (all on the resource's own scale). */
struct gp_gpu_resource {
	uint64_t total;      /* TotalX */
	uint64_t available;  /* AvailableX */
	uint64_t min;        /* MinPartitionX */
	uint64_t max;        /* MaxPartitionX */
	uint64_t optimal;    /* OptimalPartitionX */
};

#define GP_GPU_MAX_COUNTS 32

struct gp_gpu {
	char *instance_path;          /* the Name property, verbatim (never NULL) */
	bool has_pci_ids;             /* VEN_/DEV_ found in the instance path */
	uint16_t vendor_id, device_id;
	uint16_t subsys_vendor_id;    /* SUBSYS_ddddvvvv: low 16 bits are the vendor */
	uint16_t subsys_device_id;
	bool has_subsys, has_rev;
	uint8_t revision;
	/* Names from pci.ids after gp_gpus_lookup_names(); NULL when unknown. */
	char *vendor_name;
	char *device_name;
	char *subsys_name;            /* subsystem line under the device, or NULL */
	char *subsys_vendor_name;     /* vendor of the subsystem ID, or NULL */
	char *computer_name;          /* ComputerName, or NULL when absent */
	uint32_t partition_count;     /* PartitionCount (0 when absent) */
	size_t valid_count_n;         /* number of ValidPartitionCounts entries */
	uint32_t valid_counts[GP_GPU_MAX_COUNTS];
	bool valid_counts_truncated;  /* the console cut the list ("...") */
	struct gp_gpu_resource res[GP_RES_COUNT];
	unsigned line;                /* input line where the record starts (1-based; JSON: of its '{') */
};

struct gp_gpu_list {
	size_t count;
	struct gp_gpu *gpus;          /* array of @count, owned by the list */
};

/* "VRAM", "Encode", "Decode", "Compute"; NULL for an out-of-range value. */
const char *gp_gpu_res_name(enum gp_gpu_res r);

/*
 * Parse a GPU list from memory. @source names the input in messages (a file
 * name or "powershell"). The format (list or JSON, UTF-8 or UTF-16) is
 * detected. Every record must carry Name and the twenty resource
 * properties; unknown properties are ignored. A Name (instance path) that
 * holds a control character (C0, DEL, C1) is GP_ERR_CORRUPT: it would go
 * into the host script.
 *
 * Returns 0 and fills @out (free with gp_gpus_free(); an empty input gives
 * GP_ERR_NOTFOUND, "no partitionable GPU"), or
 *   GP_ERR_CORRUPT  "SOURCE:LINE: ..." naming the line and what was wrong,
 *   GP_ERR_NOTFOUND the input holds no GPU record,
 *   GP_ERR_NOMEM.
 */
int gp_gpus_parse(const char *text, size_t len, const char *source,
		  struct gp_gpu_list *out, struct gp_error *err);

/* gp_gpus_parse() on a file's contents. Adds GP_ERR_NOTFOUND / GP_ERR_IO
 * for a file that cannot be read and GP_ERR_INVALID for a directory (the
 * message names the file), and refuses files over 16 MiB (GP_ERR_CORRUPT):
 * a GPU list is a few KiB. */
int gp_gpus_load(const char *path, struct gp_gpu_list *out, struct gp_error *err);

/* Free what a list owns (not @l itself); @l is zeroed. NULL is fine. */
void gp_gpus_free(struct gp_gpu_list *l);

/*
 * Fill vendor/device/subsystem names of every GPU from the pci.ids database
 * at @pci_ids (NULL: GP_PCI_IDS_DEFAULT), one streaming pass over the file.
 * IDs the database does not know keep NULL names.
 * Returns 0, GP_ERR_NOTFOUND / GP_ERR_IO when the database cannot be read
 * (the names stay NULL; callers may treat this as a warning), GP_ERR_NOMEM.
 */
int gp_gpus_lookup_names(struct gp_gpu_list *l, const char *pci_ids,
			 struct gp_error *err);

/*
 * Look up one ID pair: vendor and device names (and, when @subven/@subdev
 * are not both 0, the subsystem name and the subsystem vendor's name).
 * Out pointers receive malloc'ed strings or NULL; any out may be NULL.
 * Returns as gp_gpus_lookup_names().
 */
int gp_pci_ids_lookup(const char *pci_ids, uint16_t ven, uint16_t dev,
		      uint16_t subven, uint16_t subdev, char **ven_name,
		      char **dev_name, char **subsys_name, char **subven_name,
		      struct gp_error *err);

/*
 * The one GPU selector syntax of every command that takes --gpu:
 *   auto                      the only GPU (of the list, or the only GPU
 *                             vendor of a DriverStore)
 *   10de:2860                 VVVV:DDDD, as pci.ids and `lspci -n` write it
 *   VEN_10DE[&DEV_2860][&SUBSYS_252D1043][&REV_A1]
 *                             the fields given must match (VEN_ first; a
 *                             "PCI\" prefix makes it a hardware ID, which
 *                             needs DEV_)
 *   PCI\VEN_..&DEV_..\4&2a7e4f6b&0&0008   a device instance path
 *   \\?\PCI#VEN_..#4&2a7e4f6b&0&0008#{guid}
 *                             the Name Get-VMHostPartitionableGpu lists
 *                             (the two spellings of one instance select
 *                             the same GPU; case-insensitive)
 *   10de                      (4 hex digits) a vendor ID, or a name substring
 *                             ("4090"): either selects
 *   anything else             a case-insensitive substring of the GPU's
 *                             name (pci.ids device or subsystem name for a
 *                             GPU list, the INF's device description for a
 *                             DriverStore), which must match one GPU
 * A selector holding a control character is refused.
 */
enum gp_gpu_selector_kind {
	GP_GPU_SEL_AUTO,
	GP_GPU_SEL_IDS,        /* VVVV:DDDD, VEN_..., PCI\VEN_... (no instance part) */
	GP_GPU_SEL_INSTANCE,   /* an instance path: IDs and the instance */
	GP_GPU_SEL_NAME,       /* a name substring: text (4 hex digits: also has_ven) */
};

struct gp_gpu_selector {
	enum gp_gpu_selector_kind kind;
	const char *text;      /* the selector as given (borrowed) */
	bool has_ven, has_dev, has_subsys, has_rev;
	uint16_t ven, dev;
	uint32_t subsys;       /* SUBSYS_ddddvvvv as written */
	uint8_t rev;
};

/* s[0..len) is exactly @n (<= 8) hex digits, any case: *out their value. */
bool gp_hex_exact(const char *s, size_t len, size_t n, uint32_t *out);

/* Parse @text into @sel (which borrows it). Returns 0, or GP_ERR_INVALID
 * (empty, a control character, malformed VEN_/DEV_/SUBSYS_/REV_ fields or
 * an instance path without them; the message names the rule). */
int gp_gpu_selector_parse(const char *text, struct gp_gpu_selector *sel, struct gp_error *err);

/* Does the GPU of @l fit @sel? (AUTO: every GPU.) */
bool gp_gpu_selector_matches(const struct gp_gpu_selector *sel, const struct gp_gpu *g);

/* The ID and name tests of gp_gpu_selector_matches(), for candidates that
 * are no struct gp_gpu (a DriverStore's hardware IDs and device
 * descriptions): an IDS or INSTANCE selector against PCI IDs (@subsys as
 * SUBSYS_ddddvvvv), a NAME selector against @name (NULL: no match). */
bool gp_gpu_selector_match_ids(const struct gp_gpu_selector *sel, uint16_t ven, uint16_t dev,
			       bool has_subsys, uint32_t subsys, bool has_rev, uint8_t rev);
bool gp_gpu_selector_match_name(const struct gp_gpu_selector *sel, const char *name);

/*
 * Choose one GPU of @l by the selector @id (gp_gpu_selector_parse(); name
 * selectors need gp_gpus_lookup_names() first). Returns 0 and the index in
 * @index, GP_ERR_NOTFOUND (no match; the message lists what exists),
 * GP_ERR_INVALID (@id malformed, or it matches several GPUs: the message
 * lists them).
 */
int gp_gpus_select(const struct gp_gpu_list *l, const char *id, size_t *index,
		   struct gp_error *err);

#endif
