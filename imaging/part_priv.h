/*
 * part_priv.h — on-disk layouts of the GPT and MBR structures and the
 * parse/serialize pairs of gpt.c and mbr.c. Private to imaging/ (and the
 * tests in tests/part/, which build corrupt tables with the serializers).
 *
 * Offsets carry the field names of UEFI 2.10 §5.2 (legacy MBR, protective
 * MBR) and §5.3 (GPT header, GPT partition entry).
 */
#ifndef GPUP_PART_PRIV_H
#define GPUP_PART_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "part.h"

/* ---- MBR (UEFI 2.10 table 5-1, 5-2) ---------------------------------- */
#define MBR_BOOT_CODE             0x000 /* 424/440 bytes of x86 code */
#define MBR_UNIQUE_DISK_SIGNATURE 0x1B8 /* 4 bytes, the NT disk signature */
#define MBR_UNKNOWN               0x1BC /* 2 bytes */
#define MBR_PARTITION_RECORD      0x1BE /* 4 records of 16 bytes */
#define MBR_PARTITION_RECORD_SIZE 16
#define MBR_SIGNATURE             0x1FE /* 0x55, 0xAA */
#define MBR_SIZE                  512

/* One partition record (table 5-2). */
#define MBR_PR_BOOT_INDICATOR 0x0 /* 0x80 active, 0x00 not */
#define MBR_PR_STARTING_CHS   0x1
#define MBR_PR_OS_TYPE        0x4
#define MBR_PR_ENDING_CHS     0x5
#define MBR_PR_STARTING_LBA   0x8
#define MBR_PR_SIZE_IN_LBA    0xC

#define MBR_TYPE_EMPTY            0x00
#define MBR_TYPE_EXTENDED_CHS     0x05
#define MBR_TYPE_EXTENDED_LBA     0x0F
#define MBR_TYPE_LINUX_EXTENDED   0x85
#define MBR_TYPE_GPT_PROTECTIVE   0xEE

struct mbr_record {
	uint8_t boot_indicator;
	uint8_t starting_chs[3];
	uint8_t os_type;
	uint8_t ending_chs[3];
	uint32_t starting_lba;
	uint32_t size_in_lba;
};

struct mbr {
	uint32_t unique_disk_signature;
	struct mbr_record record[4];
};

/* Does @sector (>= 512 bytes) end with the 0x55AA boot signature? */
bool mbr_has_signature(const uint8_t *sector);
/* Parse the four records and the disk signature of a 512-byte sector. The
 * caller checks the 0x55AA signature first. */
void mbr_parse(const uint8_t *sector, struct mbr *m);
/* Write the disk signature, the four records and 0x55AA into @sector
 * (512 bytes); the boot code area is left as it is. */
void mbr_serialize(const struct mbr *m, uint8_t *sector);
/* 0x05, 0x0F, 0x85. */
bool mbr_type_is_extended(uint8_t os_type);
/* Static name of an MBR type byte, "unknown" if not known. */
const char *mbr_type_name(uint8_t os_type);

/* ---- GPT header (UEFI 2.10 table 5-5) -------------------------------- */
#define GPT_HDR_SIGNATURE                  0x00 /* "EFI PART" */
#define GPT_HDR_REVISION                   0x08 /* 0x00010000 */
#define GPT_HDR_HEADER_SIZE                0x0C
#define GPT_HDR_HEADER_CRC32               0x10
#define GPT_HDR_RESERVED                   0x14
#define GPT_HDR_MY_LBA                     0x18
#define GPT_HDR_ALTERNATE_LBA              0x20
#define GPT_HDR_FIRST_USABLE_LBA           0x28
#define GPT_HDR_LAST_USABLE_LBA            0x30
#define GPT_HDR_DISK_GUID                  0x38
#define GPT_HDR_PARTITION_ENTRY_LBA        0x48
#define GPT_HDR_NUMBER_OF_PARTITION_ENTRIES 0x50
#define GPT_HDR_SIZE_OF_PARTITION_ENTRY    0x54
#define GPT_HDR_PARTITION_ENTRY_ARRAY_CRC32 0x58
#define GPT_HDR_MIN_SIZE                   92   /* bytes covered by the fields above */

#define GPT_SIGNATURE "EFI PART"
#define GPT_REVISION_1_0 0x00010000u

/* The entry array gpup agrees to load. UEFI sets no limit, but every real
 * table is 16 KiB (128 x 128); 16 MiB leaves room for anything sane while an
 * absurd count x size from a damaged header cannot make us allocate or read
 * gigabytes. */
#define GPT_MAX_ARRAY_BYTES (16u << 20)

struct gpt_header {
	uint32_t revision;
	uint32_t header_size;
	uint32_t header_crc32;
	uint64_t my_lba;
	uint64_t alternate_lba;
	uint64_t first_usable_lba;
	uint64_t last_usable_lba;
	uint8_t disk_guid[16];
	uint64_t partition_entry_lba;
	uint32_t number_of_partition_entries;
	uint32_t size_of_partition_entry;
	uint32_t partition_entry_array_crc32;
};

/*
 * Parse the header in @sector (@len = the sector size) and check the rules
 * that need nothing but the header: signature, revision 1.x, 92 <= HeaderSize
 * <= @len, HeaderCRC32 (computed on a copy with the CRC field zeroed),
 * SizeOfPartitionEntry >= 128 and a multiple of 8.
 * Returns 0, or -1 with the broken rule in @why ("CRC mismatch").
 */
int gpt_header_parse(const uint8_t *sector, size_t len, struct gpt_header *h,
		     char *why, size_t whylen);

/* Write @h into @sector (@len bytes, zero-filled first) with the
 * signature and a freshly computed HeaderCRC32 (h->header_crc32 ignored;
 * h->header_size must be 92..@len). */
void gpt_header_serialize(const struct gpt_header *h, uint8_t *sector, size_t len);

/* ---- GPT partition entry (UEFI 2.10 table 5-6) ----------------------- */
#define GPT_ENT_PARTITION_TYPE_GUID   0x00
#define GPT_ENT_UNIQUE_PARTITION_GUID 0x10
#define GPT_ENT_STARTING_LBA          0x20
#define GPT_ENT_ENDING_LBA            0x28
#define GPT_ENT_ATTRIBUTES            0x30
#define GPT_ENT_PARTITION_NAME        0x38 /* 36 UTF-16LE units */
#define GPT_ENT_NAME_UNITS            36
#define GPT_ENT_MIN_SIZE              128

/* Attribute bit 2: legacy BIOS bootable. */
#define GPT_ATTR_LEGACY_BIOS_BOOTABLE (1ull << 2)

struct gpt_entry {
	uint8_t partition_type_guid[16];
	uint8_t unique_partition_guid[16];
	uint64_t starting_lba;
	uint64_t ending_lba;
	uint64_t attributes;
	uint16_t partition_name[GPT_ENT_NAME_UNITS];
};

/* Parse / write one entry of at least 128 bytes. */
void gpt_entry_parse(const uint8_t *p, struct gpt_entry *e);
void gpt_entry_serialize(const struct gpt_entry *e, uint8_t *p);
/* Is the type GUID all zero (unused entry)? */
bool gpt_entry_is_unused(const struct gpt_entry *e);

/* CRC32 as UEFI uses it (the zlib / IEEE 802.3 polynomial). */
uint32_t gpt_crc32(const void *buf, size_t len);

/* GUID bytes (mixed endian, as stored) <-> "XXXXXXXX-XXXX-..." upper case.
 * gpt_guid_parse() accepts either case, returns 0 or -1. */
void gpt_guid_format(const uint8_t g[16], char out[GP_GUID_STR_LEN]);
int gpt_guid_parse(const char *s, uint8_t g[16]);

/* Static name for a GPT type GUID string, "unknown" if not known. */
const char *gpt_type_name(const char *type_guid);

/* GPT name <-> UTF-8. gpt_name_to_utf8 stops at the first NUL unit and puts
 * U+FFFD for unpaired surrogates; @out holds at least GP_PART_NAME_MAX.
 * gpt_name_from_utf8 returns 0, or -1 for invalid UTF-8 or more than 36
 * units. */
void gpt_name_to_utf8(const uint16_t name[GPT_ENT_NAME_UNITS], char *out);
int gpt_name_from_utf8(const char *s, uint16_t name[GPT_ENT_NAME_UNITS]);

/* ---- shared reading context (part.c) --------------------------------- */
struct part_reader {
	struct gp_disk *d;
	const char *path;        /* for messages */
	uint32_t ss;             /* sector size */
	uint64_t sectors;        /* whole sectors on the disk */
	struct gp_partition_table *pt;
	struct gp_error *err;
	size_t cap;              /* allocated entries in pt->parts */
};

/* Read @count sectors at @lba into @buf; range-checked against the disk.
 * On failure records "<path>: <what> at LBA n: <reason>" and returns the code. */
int part_read_sectors(struct part_reader *r, uint64_t lba, uint64_t count,
		      void *buf, const char *what);
/* Append a copy of @p to the table. Returns 0 or GP_ERR_NOMEM. */
int part_append(struct part_reader *r, const struct gp_partition *p);
/* Append a line to the table's warning ("; " separated). */
void part_warn(struct part_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* GP_ERR_CORRUPT "<path>: <what> N and M overlap (...)" when two of the
 * table's partitions share a sector, else 0. */
int part_check_overlaps(struct part_reader *r, const char *what);

/* gpt.c: read the GPT (protective MBR already seen). */
int gpt_read(struct part_reader *r);
/* mbr.c: read an MBR table whose sector 0 is @sector0 (has 0x55AA). */
int mbr_read(struct part_reader *r, const uint8_t *sector0);

#endif
