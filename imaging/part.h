/*
 * part.h — partition tables (GPT, MBR with extended/logical partitions) and
 * volume signatures of a gp_disk.
 *
 * gp_part_read() reads the table of a disk into a native, self-contained
 * struct gp_partition_table: one entry per used partition, with byte offset
 * and length, type name, GPT name, and the volume signature found in the
 * partition's first sector (NTFS, BitLocker, FAT, exFAT, ...).
 *
 * Rules enforced (UEFI 2.10 §5.2-5.3, and the MBR/EBR conventions):
 *  - GPT: sector size = the disk's logical sector size (512 or 4096). The
 *    primary header at LBA 1 must have the "EFI PART" signature, revision
 *    1.x, 92 <= HeaderSize <= sector size, a matching CRC32 (computed with the
 *    CRC field zeroed), MyLBA = 1, 2 <= FirstUsableLBA <= LastUsableLBA < the
 *    disk's sector count, the header outside the usable LBAs,
 *    SizeOfPartitionEntry a multiple of 8 and >= 128, an entry array of at
 *    most 16 MiB that fits the disk without overlapping the usable LBAs or
 *    the header, and a matching entry-array CRC32. When the primary fails,
 *    the backup header (at the disk's last LBA, else the AlternateLBA of a
 *    primary header whose own CRC is good) is used and the table says so
 *    (used_backup_gpt, warning). Entries with a zero type GUID are unused; a
 *    used entry outside the usable LBAs, with StartingLBA > EndingLBA, or
 *    overlapping another, is corruption. A damaged or misplaced backup next
 *    to a good primary is a warning.
 *  - MBR: 0x55AA signature and boot indicators 0x00/0x80 (else the sector is
 *    not a partition table: kind GP_PT_NONE plus a warning); four primary
 *    entries inside the disk and not overlapping; an extended entry (0x05,
 *    0x0F, 0x85) is followed through its chain of EBRs (logical partitions
 *    5, 6, ... inside the extended one), the chain bounded to 128 EBRs and
 *    loops detected; any 0xEE entry means the disk is GPT (protective or
 *    hybrid MBR: the GPT wins). A missing protective MBR in front of a GPT
 *    is a warning.
 *  - A sector 0 that is a volume boot record (NTFS, exFAT, BitLocker, ReFS;
 *    FAT unless its partition records describe partitions) is a bare
 *    volume: kind GP_PT_NONE, whole_disk_volsig says which.
 *  - Every size, count and loop driven by on-disk data is checked against the
 *    disk's real size with overflow-checked arithmetic.
 *
 * Errors follow gp_error.h: messages name the image, the structure and the
 * LBA: "x.vhdx: GPT header at LBA 1: CRC mismatch".
 */
#ifndef GPUP_PART_H
#define GPUP_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk.h"
#include "gp_error.h"

/* What a partition's first sector says it holds. */
enum gp_volsig {
	GP_VOLSIG_NONE = 0,   /* nothing recognised (blank, unknown file system) */
	GP_VOLSIG_NTFS,       /* "NTFS    " OEM id at offset 3 */
	GP_VOLSIG_BITLOCKER,  /* "-FVE-FS-" at offset 3: BitLocker-encrypted volume */
	GP_VOLSIG_FAT12,
	GP_VOLSIG_FAT16,
	GP_VOLSIG_FAT32,
	GP_VOLSIG_EXFAT,      /* "EXFAT   " at offset 3 */
	GP_VOLSIG_REFS,       /* "ReFS" at offset 3 */
	GP_VOLSIG_UNREADABLE, /* the first sector could not be read (error in warning) */
};

enum gp_pt_kind {
	GP_PT_NONE = 0, /* no partition table: blank disk or a bare volume */
	GP_PT_MBR,
	GP_PT_GPT,
};

/* Longest UTF-8 form of a GPT name (36 UTF-16 units, <= 3 bytes each) + NUL. */
#define GP_PART_NAME_MAX 109
/* "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" + NUL */
#define GP_GUID_STR_LEN 37

struct gp_partition {
	unsigned number;          /* 1-based, as Windows/Linux count: GPT entry index + 1;
	                           * MBR primaries 1-4, logical partitions 5, 6, ... */
	uint64_t first_lba;       /* in units of the table's sector_size */
	uint64_t last_lba;        /* inclusive */
	uint64_t offset;          /* bytes from the start of the disk */
	uint64_t length;          /* bytes */
	char type_guid[GP_GUID_STR_LEN]; /* GPT type GUID, upper case; "" for MBR */
	uint8_t mbr_type;         /* MBR type byte; 0 for GPT */
	const char *type_name;    /* static text: "EFI system", "Microsoft reserved",
	                           * "Microsoft basic data", "Windows recovery",
	                           * "Linux filesystem", "NTFS/exFAT/IFS", ...;
	                           * "unknown" when not known; never NULL */
	char name[GP_PART_NAME_MAX]; /* GPT partition name as UTF-8; "" for MBR */
	char guid[GP_GUID_STR_LEN];  /* GPT unique partition GUID, upper case; "" for MBR */
	uint64_t attributes;      /* GPT attribute bits; 0 for MBR */
	bool bootable;            /* MBR active flag (0x80); GPT legacy-BIOS-bootable bit 2 */
	bool logical;             /* MBR logical partition (inside an extended one) */
	enum gp_volsig volsig;    /* from the partition's first sector */
};

struct gp_partition_table {
	enum gp_pt_kind kind;
	uint32_t sector_size;     /* sector size the table was read with */
	size_t count;             /* used partitions in @parts */
	struct gp_partition *parts; /* sorted by number; owned, freed by gp_part_table_free() */

	/* GPT only */
	char disk_guid[GP_GUID_STR_LEN];
	bool used_backup_gpt;     /* the primary header/array was damaged; the backup was used */
	uint64_t gpt_header_lba;  /* LBA of the header that was used */
	uint64_t first_usable_lba, last_usable_lba;
	uint32_t gpt_entry_count, gpt_entry_size;

	/* MBR (also the protective MBR of a GPT disk) */
	uint32_t mbr_signature;   /* NT disk signature at 0x1B8 */

	/* GP_PT_NONE: what the disk's first sector holds (bare volume). */
	enum gp_volsig whole_disk_volsig;

	/* Non-fatal problems, one line ("x.vhdx: GPT header at LBA 1: CRC
	 * mismatch; using the backup at LBA 20479"), "" when none. */
	char warning[GP_ERROR_MSG_MAX];
};

/*
 * Read the partition table of @d with its logical sector size. A raw image
 * records no sector size (the raw backend says 512), so for raw images the
 * GPT header's position decides: "EFI PART" at byte 4096 and not at 512
 * means 4096-byte sectors.
 * @out is filled (zeroed first); release it with gp_part_table_free() —
 * also after a failure (it is then empty).
 * Returns 0 (also for a disk without a table: kind GP_PT_NONE), or
 *   GP_ERR_CORRUPT   a table is present but violates its rules (e.g. both GPT
 *                    headers damaged, EBR loop, entry outside usable LBAs);
 *   GP_ERR_UNSUPPORTED sector size other than 512 or 4096;
 *   GP_ERR_IO        the disk could not be read;
 *   GP_ERR_NOMEM.
 * Details into @err (may be NULL), starting with the disk's path.
 */
int gp_part_read(struct gp_disk *d, struct gp_partition_table *out,
		 struct gp_error *err);

/* As gp_part_read() with an explicit @sector_size (512 or 4096, else
 * GP_ERR_UNSUPPORTED), for containers that do not record the logical sector
 * size a guest used (raw images). */
int gp_part_read_sector_size(struct gp_disk *d, uint32_t sector_size,
			     struct gp_partition_table *out,
			     struct gp_error *err);

/* Free what @pt owns and reset it to empty. NULL is a no-op. */
void gp_part_table_free(struct gp_partition_table *pt);

/* Classify a volume's first sector (@len bytes, at least 512 to recognise
 * anything). Never fails: GP_VOLSIG_NONE when nothing matches. */
enum gp_volsig gp_volsig_detect(const void *sector, size_t len);

/* "none", "NTFS", "BitLocker", "FAT12", "FAT16", "FAT32", "exFAT", "ReFS",
 * "unreadable". Static strings. */
const char *gp_volsig_name(enum gp_volsig v);

/* "none", "MBR", "GPT". Static strings. */
const char *gp_pt_kind_name(enum gp_pt_kind k);

/*
 * Writing a GPT (used by test helpers to build 4096-byte-sector disks, which
 * sgdisk cannot make on an image file, and by tools that lay out new disks).
 */
struct gp_gpt_new_part {
	const char *type_guid;   /* "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" (any case) */
	const char *guid;        /* unique partition GUID */
	const char *name;        /* UTF-8, at most 36 UTF-16 units */
	uint64_t first_lba, last_lba; /* inclusive, in @sector_size units */
	uint64_t attributes;
};

/*
 * Write a protective MBR, the primary GPT (header at LBA 1, 128 entries of
 * 128 bytes from LBA 2) and the backup GPT (header at the last LBA, array
 * just before it) onto the writable disk @d, with @sector_size (512 or 4096).
 * Partitions must lie within the usable LBAs and not overlap.
 * Returns 0, GP_ERR_INVALID (bad GUID text, name too long, partition outside
 * the usable area, overlap, too many partitions, disk too small),
 * GP_ERR_UNSUPPORTED (sector size), GP_ERR_READONLY, GP_ERR_IO, GP_ERR_NOMEM.
 * Details into @err.
 */
int gp_gpt_write(struct gp_disk *d, uint32_t sector_size, const char *disk_guid,
		 const struct gp_gpt_new_part *parts, size_t count,
		 struct gp_error *err);

#endif
