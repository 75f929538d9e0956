/*
 * part.c — partition-table entry point: picks GPT, MBR or none from sector 0,
 * and classifies each partition's first sector (volume signature).
 * The structures themselves live in gpt.c and mbr.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "part.h"
#include "part_priv.h"

/* ---- volume signatures ------------------------------------------------ */

/* Boot sector fields shared by FAT12/16/32 (Microsoft FAT specification
 * 1.03, "BPB") and the OEM-name position every volume boot record uses. */
#define VBR_OEM_NAME        0x03 /* 8 bytes: "NTFS    ", "-FVE-FS-", "EXFAT   " */
#define BPB_BYTS_PER_SEC    0x0B
#define BPB_SEC_PER_CLUS    0x0D
#define BPB_RSVD_SEC_CNT    0x0E
#define BPB_NUM_FATS        0x10
#define BPB_ROOT_ENT_CNT    0x11
#define BPB_TOT_SEC16       0x13
#define BPB_FAT_SZ16        0x16
#define BPB_TOT_SEC32       0x20
#define BS_FIL_SYS_TYPE16   0x36 /* "FAT12   " / "FAT16   " (informative only) */
#define BPB_FAT_SZ32        0x24
#define BS_FIL_SYS_TYPE32   0x52 /* "FAT32   " (informative only) */
#define VBR_SIGNATURE       0x1FE

static bool is_pow2_in(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

/* FAT type by the specification's one rule: the count of clusters. The
 * BS_FilSysType strings are informative (and formatters disagree), so they
 * are only a fallback when the BPB is unusable. */
static enum gp_volsig fat_type(const uint8_t *s)
{
	uint32_t bps = get_le16(s + BPB_BYTS_PER_SEC);
	uint32_t spc = s[BPB_SEC_PER_CLUS];
	uint32_t rsvd = get_le16(s + BPB_RSVD_SEC_CNT);
	uint32_t nfats = s[BPB_NUM_FATS];
	uint32_t root_ent = get_le16(s + BPB_ROOT_ENT_CNT);
	uint64_t tot = get_le16(s + BPB_TOT_SEC16);
	uint64_t fatsz = get_le16(s + BPB_FAT_SZ16);

	if (s[0] != 0xEB && s[0] != 0xE9)
		return GP_VOLSIG_NONE;
	if (is_pow2_in(bps, 512, 4096) && is_pow2_in(spc, 1, 128) && rsvd >= 1 &&
	    nfats >= 1) {
		if (tot == 0)
			tot = get_le32(s + BPB_TOT_SEC32);
		if (fatsz == 0)
			fatsz = get_le32(s + BPB_FAT_SZ32);
		uint64_t root_secs = ((uint64_t)root_ent * 32 + bps - 1) / bps;
		uint64_t meta = rsvd + nfats * fatsz + root_secs;
		if (fatsz != 0 && tot > meta) {
			uint64_t clusters = (tot - meta) / spc;
			if (clusters < 4085)
				return GP_VOLSIG_FAT12;
			if (clusters < 65525)
				return GP_VOLSIG_FAT16;
			return GP_VOLSIG_FAT32;
		}
	}
	if (!memcmp(s + BS_FIL_SYS_TYPE32, "FAT32   ", 8))
		return GP_VOLSIG_FAT32;
	if (!memcmp(s + BS_FIL_SYS_TYPE16, "FAT16   ", 8))
		return GP_VOLSIG_FAT16;
	if (!memcmp(s + BS_FIL_SYS_TYPE16, "FAT12   ", 8))
		return GP_VOLSIG_FAT12;
	return GP_VOLSIG_NONE;
}

enum gp_volsig gp_volsig_detect(const void *sector, size_t len)
{
	const uint8_t *s = sector;

	if (!s || len < 512)
		return GP_VOLSIG_NONE;
	/* BitLocker replaces the OEM id but keeps an NTFS-like boot sector;
	 * test it before anything else. */
	if (!memcmp(s + VBR_OEM_NAME, "-FVE-FS-", 8))
		return GP_VOLSIG_BITLOCKER;
	if (!memcmp(s + VBR_OEM_NAME, "NTFS    ", 8))
		return GP_VOLSIG_NTFS;
	if (!memcmp(s + VBR_OEM_NAME, "EXFAT   ", 8))
		return GP_VOLSIG_EXFAT;
	if (!memcmp(s + VBR_OEM_NAME, "ReFS\0\0\0\0", 8))
		return GP_VOLSIG_REFS;
	if (s[VBR_SIGNATURE] == 0x55 && s[VBR_SIGNATURE + 1] == 0xAA)
		return fat_type(s);
	return GP_VOLSIG_NONE;
}

const char *gp_volsig_name(enum gp_volsig v)
{
	switch (v) {
	case GP_VOLSIG_NONE: return "none";
	case GP_VOLSIG_NTFS: return "NTFS";
	case GP_VOLSIG_BITLOCKER: return "BitLocker";
	case GP_VOLSIG_FAT12: return "FAT12";
	case GP_VOLSIG_FAT16: return "FAT16";
	case GP_VOLSIG_FAT32: return "FAT32";
	case GP_VOLSIG_EXFAT: return "exFAT";
	case GP_VOLSIG_REFS: return "ReFS";
	case GP_VOLSIG_UNREADABLE: return "unreadable";
	}
	return "none";
}

const char *gp_pt_kind_name(enum gp_pt_kind k)
{
	switch (k) {
	case GP_PT_NONE: return "none";
	case GP_PT_MBR: return "MBR";
	case GP_PT_GPT: return "GPT";
	}
	return "none";
}

/* ---- shared reader helpers ------------------------------------------- */

int part_read_sectors(struct part_reader *r, uint64_t lba, uint64_t count,
		      void *buf, const char *what)
{
	uint64_t end, off, len;

	if (add_u64(lba, count, &end) || end > r->sectors)
		return gp_error_set(r->err, GP_ERR_CORRUPT,
				    "%s: %s at LBA %llu: beyond the end of the disk (%llu sectors of %u bytes)",
				    r->path, what, (unsigned long long)lba,
				    (unsigned long long)r->sectors, r->ss);
	/* end <= sectors and sectors * ss <= disk size: cannot overflow. */
	off = lba * r->ss;
	len = count * r->ss;
	int rc = gp_disk_pread(r->d, buf, len, off);
	if (rc) {
		gp_error_set(r->err, rc, "%s: %s at LBA %llu: %s", r->path, what,
			     (unsigned long long)lba,
			     gp_error_message(gp_disk_error(r->d)));
		gp_disk_clear_error(r->d);
	}
	return rc;
}

int part_append(struct part_reader *r, const struct gp_partition *p)
{
	struct gp_partition_table *pt = r->pt;

	if (pt->count == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 8;
		struct gp_partition *n = realloc(pt->parts, ncap * sizeof(*n));
		if (!n)
			return gp_error_set(r->err, GP_ERR_NOMEM,
					    "%s: partition table: out of memory", r->path);
		pt->parts = n;
		r->cap = ncap;
	}
	pt->parts[pt->count++] = *p;
	return 0;
}

void part_warn(struct part_reader *r, const char *fmt, ...)
{
	char *w = r->pt->warning;
	size_t used = strlen(w);
	va_list ap;

	if (used && used + 2 < sizeof(r->pt->warning)) {
		memcpy(w + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= sizeof(r->pt->warning))
		return;
	va_start(ap, fmt);
	vsnprintf(w + used, sizeof(r->pt->warning) - used, fmt, ap);
	va_end(ap);
}

static int cmp_first_lba(const void *a, const void *b)
{
	const struct gp_partition *x = *(const struct gp_partition *const *)a;
	const struct gp_partition *y = *(const struct gp_partition *const *)b;
	return (x->first_lba > y->first_lba) - (x->first_lba < y->first_lba);
}

int part_check_overlaps(struct part_reader *r, const char *what)
{
	const struct gp_partition **v;
	int rc = 0;

	if (r->pt->count < 2)
		return 0;
	v = malloc(r->pt->count * sizeof(*v));
	if (!v)
		return gp_error_set(r->err, GP_ERR_NOMEM, "%s: out of memory", r->path);
	for (size_t i = 0; i < r->pt->count; i++)
		v[i] = &r->pt->parts[i];
	/* Sorted by start, any overlap shows up between neighbours. */
	qsort(v, r->pt->count, sizeof(*v), cmp_first_lba);
	for (size_t i = 1; i < r->pt->count; i++)
		if (v[i]->first_lba <= v[i - 1]->last_lba) {
			rc = gp_error_set(r->err, GP_ERR_CORRUPT,
					  "%s: %s %u and %u overlap (LBAs %llu..%llu and %llu..%llu)",
					  r->path, what, v[i - 1]->number, v[i]->number,
					  (unsigned long long)v[i - 1]->first_lba,
					  (unsigned long long)v[i - 1]->last_lba,
					  (unsigned long long)v[i]->first_lba,
					  (unsigned long long)v[i]->last_lba);
			break;
		}
	free(v);
	return rc;
}

/* Read the first sector of every partition and classify it. A sector that
 * cannot be read is reported ("unreadable" + warning), not fatal: the table
 * itself is fine and inspect should still show it. */
static int detect_volsigs(struct part_reader *r)
{
	uint8_t *buf = malloc(r->ss);

	if (!buf)
		return gp_error_set(r->err, GP_ERR_NOMEM, "%s: out of memory", r->path);
	for (size_t i = 0; i < r->pt->count; i++) {
		struct gp_partition *p = &r->pt->parts[i];
		if (p->length < 512) {
			p->volsig = GP_VOLSIG_NONE;
			continue;
		}
		uint64_t n = p->length < r->ss ? p->length : r->ss;
		int rc = gp_disk_pread(r->d, buf, n, p->offset);
		if (rc) {
			p->volsig = GP_VOLSIG_UNREADABLE;
			part_warn(r, "%s: partition %u: first sector at LBA %llu unreadable: %s",
				  r->path, p->number, (unsigned long long)p->first_lba,
				  gp_error_message(gp_disk_error(r->d)));
			gp_disk_clear_error(r->d);
			continue;
		}
		p->volsig = gp_volsig_detect(buf, n);
	}
	free(buf);
	return 0;
}

static int cmp_number(const void *a, const void *b)
{
	const struct gp_partition *x = a, *y = b;
	return (x->number > y->number) - (x->number < y->number);
}

/* ---- entry points ---------------------------------------------------- */

/* A FAT-looking sector 0 may really be an MBR whose boot code starts with a
 * jump (GRUB's does) over a BPB-shaped gap: the FAT verdict stands only when
 * the partition records do not describe partitions. The NTFS/exFAT/BitLocker
 * OEM ids are unambiguous. */
static bool fat_or_mbr_with_partitions(enum gp_volsig v, const uint8_t *sec0)
{
	struct mbr m;
	bool any = false;

	if (v != GP_VOLSIG_FAT12 && v != GP_VOLSIG_FAT16 && v != GP_VOLSIG_FAT32)
		return false;
	mbr_parse(sec0, &m);
	for (int i = 0; i < 4; i++) {
		const struct mbr_record *e = &m.record[i];
		if (e->boot_indicator != 0 && e->boot_indicator != 0x80)
			return false;
		if (e->os_type != MBR_TYPE_EMPTY && e->size_in_lba != 0)
			any = true;
	}
	return any;
}

int gp_part_read_sector_size(struct gp_disk *d, uint32_t sector_size,
			     struct gp_partition_table *out,
			     struct gp_error *err)
{
	struct part_reader r = { 0 };
	uint8_t *sec0 = NULL;
	int rc;

	if (!out)
		return gp_error_set(err, GP_ERR_INVALID, "gp_part_read: no output table");
	memset(out, 0, sizeof(*out));
	if (!d)
		return gp_error_set(err, GP_ERR_INVALID, "gp_part_read: no disk");
	r.d = d;
	r.path = gp_disk_path(d);
	r.ss = sector_size;
	r.pt = out;
	r.err = err;
	if (sector_size != 512 && sector_size != 4096)
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: logical sector size %u: only 512 and 4096 are supported",
				    r.path, sector_size);
	out->sector_size = sector_size;
	r.sectors = gp_disk_size(d) / sector_size;
	if (r.sectors == 0)
		return 0; /* smaller than one sector: nothing can be there */

	sec0 = malloc(sector_size);
	if (!sec0)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", r.path);
	rc = part_read_sectors(&r, 0, 1, sec0, "MBR");
	if (rc)
		goto out;

	/* A volume boot record also ends in 0x55AA; a disk that starts with a
	 * file system is a bare volume, not an MBR. */
	out->whole_disk_volsig = gp_volsig_detect(sec0, sector_size);
	if (out->whole_disk_volsig != GP_VOLSIG_NONE &&
	    !fat_or_mbr_with_partitions(out->whole_disk_volsig, sec0))
		goto out;
	out->whole_disk_volsig = GP_VOLSIG_NONE;

	if (mbr_has_signature(sec0)) {
		rc = mbr_read(&r, sec0);
	} else {
		/* No MBR at all: UEFI requires a protective MBR, but a GPT
		 * whose sector 0 was wiped is still worth reading. */
		uint8_t *sec1 = malloc(sector_size);
		if (!sec1) {
			rc = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", r.path);
			goto out;
		}
		if (r.sectors > 1 &&
		    !gp_disk_pread(d, sec1, sector_size, sector_size) &&
		    !memcmp(sec1 + GPT_HDR_SIGNATURE, GPT_SIGNATURE, 8)) {
			part_warn(&r, "%s: MBR at LBA 0: no 0x55AA signature (protective MBR missing); reading the GPT anyway",
				  r.path);
			rc = gpt_read(&r);
		}
		gp_disk_clear_error(d);
		free(sec1);
	}
	if (rc)
		goto out;
	if (out->count > 1) /* parts is NULL when empty: qsort's arguments must not be */
		qsort(out->parts, out->count, sizeof(*out->parts), cmp_number);
	rc = detect_volsigs(&r);
out:
	free(sec0);
	if (rc) {
		free(out->parts);
		out->parts = NULL;
		out->count = 0;
		out->kind = GP_PT_NONE;
	}
	return rc;
}

/* A raw image does not record the logical sector size its guest used (the
 * raw backend reports 512). Where the GPT header sits tells: "EFI PART" at
 * byte 4096 and not at 512 means a 4K-sector disk. Containers that record
 * the size (VHDX) are believed as they are. */
static uint32_t probe_sector_size(struct gp_disk *d)
{
	uint32_t lss = gp_disk_logical_sector_size(d);
	uint8_t sig[8];

	if (gp_disk_format(d) != GP_DISK_FORMAT_RAW || gp_disk_size(d) < 2 * 4096)
		return lss;
	if (!gp_disk_pread(d, sig, 8, 512) && !memcmp(sig, GPT_SIGNATURE, 8))
		return 512;
	if (!gp_disk_pread(d, sig, 8, 4096) && !memcmp(sig, GPT_SIGNATURE, 8))
		return 4096;
	gp_disk_clear_error(d);
	return lss;
}

int gp_part_read(struct gp_disk *d, struct gp_partition_table *out,
		 struct gp_error *err)
{
	if (!d) {
		if (out)
			memset(out, 0, sizeof(*out));
		return gp_error_set(err, GP_ERR_INVALID, "gp_part_read: no disk");
	}
	return gp_part_read_sector_size(d, probe_sector_size(d), out, err);
}

void gp_part_table_free(struct gp_partition_table *pt)
{
	if (!pt)
		return;
	free(pt->parts);
	memset(pt, 0, sizeof(*pt));
}
