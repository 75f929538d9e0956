/*
 * mbr.c — legacy MBR (UEFI 2.10 §5.2.1) and the EBR chain of extended
 * partitions: the record parse/serialize pair and reading a table into
 * partitions 1-4 (primary) and 5, 6, ... (logical).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "part.h"
#include "part_priv.h"

/* Linux reads at most 256 partitions per disk and Windows 128; a longer EBR
 * chain is damage (or a crafted loop through distinct sectors). */
#define MBR_MAX_EBRS 128

bool mbr_has_signature(const uint8_t *sector)
{
	return sector[MBR_SIGNATURE] == 0x55 && sector[MBR_SIGNATURE + 1] == 0xAA;
}

void mbr_parse(const uint8_t *sector, struct mbr *m)
{
	m->unique_disk_signature = get_le32(sector + MBR_UNIQUE_DISK_SIGNATURE);
	for (int i = 0; i < 4; i++) {
		const uint8_t *p = sector + MBR_PARTITION_RECORD + i * MBR_PARTITION_RECORD_SIZE;
		struct mbr_record *e = &m->record[i];
		e->boot_indicator = p[MBR_PR_BOOT_INDICATOR];
		memcpy(e->starting_chs, p + MBR_PR_STARTING_CHS, 3);
		e->os_type = p[MBR_PR_OS_TYPE];
		memcpy(e->ending_chs, p + MBR_PR_ENDING_CHS, 3);
		e->starting_lba = get_le32(p + MBR_PR_STARTING_LBA);
		e->size_in_lba = get_le32(p + MBR_PR_SIZE_IN_LBA);
	}
}

void mbr_serialize(const struct mbr *m, uint8_t *sector)
{
	put_le32(sector + MBR_UNIQUE_DISK_SIGNATURE, m->unique_disk_signature);
	for (int i = 0; i < 4; i++) {
		uint8_t *p = sector + MBR_PARTITION_RECORD + i * MBR_PARTITION_RECORD_SIZE;
		const struct mbr_record *e = &m->record[i];
		p[MBR_PR_BOOT_INDICATOR] = e->boot_indicator;
		memcpy(p + MBR_PR_STARTING_CHS, e->starting_chs, 3);
		p[MBR_PR_OS_TYPE] = e->os_type;
		memcpy(p + MBR_PR_ENDING_CHS, e->ending_chs, 3);
		put_le32(p + MBR_PR_STARTING_LBA, e->starting_lba);
		put_le32(p + MBR_PR_SIZE_IN_LBA, e->size_in_lba);
	}
	sector[MBR_SIGNATURE] = 0x55;
	sector[MBR_SIGNATURE + 1] = 0xAA;
}

bool mbr_type_is_extended(uint8_t t)
{
	return t == MBR_TYPE_EXTENDED_CHS || t == MBR_TYPE_EXTENDED_LBA ||
	       t == MBR_TYPE_LINUX_EXTENDED;
}

const char *mbr_type_name(uint8_t t)
{
	switch (t) {
	case 0x01: return "FAT12";
	case 0x04: return "FAT16 <32M";
	case 0x05: return "Extended";
	case 0x06: return "FAT16";
	case 0x07: return "NTFS/exFAT/IFS";
	case 0x0B: return "FAT32";
	case 0x0C: return "FAT32 (LBA)";
	case 0x0E: return "FAT16 (LBA)";
	case 0x0F: return "Extended (LBA)";
	case 0x11: return "Hidden FAT12";
	case 0x12: return "Diagnostics";
	case 0x14: return "Hidden FAT16 <32M";
	case 0x16: return "Hidden FAT16";
	case 0x17: return "Hidden NTFS/exFAT";
	case 0x1B: return "Hidden FAT32";
	case 0x1C: return "Hidden FAT32 (LBA)";
	case 0x27: return "Windows recovery";
	case 0x42: return "Windows dynamic (LDM)";
	case 0x82: return "Linux swap";
	case 0x83: return "Linux";
	case 0x85: return "Linux extended";
	case 0x8E: return "Linux LVM";
	case 0xEE: return "GPT protective";
	case 0xEF: return "EFI system";
	case 0xFD: return "Linux RAID";
	}
	return "unknown";
}

static void fill_part(struct part_reader *r, struct gp_partition *p, unsigned number,
		      const struct mbr_record *e, uint64_t start, bool logical)
{
	memset(p, 0, sizeof(*p));
	p->number = number;
	p->first_lba = start;
	p->last_lba = start + e->size_in_lba - 1;
	/* Callers checked start + size <= sectors, so these cannot overflow. */
	p->offset = start * r->ss;
	p->length = (uint64_t)e->size_in_lba * r->ss;
	p->mbr_type = e->os_type;
	p->type_name = mbr_type_name(e->os_type);
	p->bootable = e->boot_indicator == 0x80;
	p->logical = logical;
}

/*
 * Follow the EBR chain of the extended partition [ext_start, ext_end).
 * Each EBR holds the logical partition (record 0, relative to the EBR) and
 * the link to the next EBR (record 1, relative to the extended partition's
 * start). @next_number is the number the next logical partition gets.
 */
static int read_ebr_chain(struct part_reader *r, uint64_t ext_start, uint64_t ext_end,
			  unsigned *next_number)
{
	uint64_t visited[MBR_MAX_EBRS];
	size_t nvisited = 0;
	uint64_t ebr = ext_start, prev = 0;
	uint8_t *sec = malloc(r->ss);
	int rc = 0;

	if (!sec)
		return gp_error_set(r->err, GP_ERR_NOMEM, "%s: out of memory", r->path);
	for (;;) {
		struct mbr m;

		for (size_t i = 0; i < nvisited; i++)
			if (visited[i] == ebr) {
				rc = gp_error_set(r->err, GP_ERR_CORRUPT,
						  "%s: EBR at LBA %llu: link to the next EBR loops back to LBA %llu",
						  r->path, (unsigned long long)prev,
						  (unsigned long long)ebr);
				goto out;
			}
		if (nvisited == MBR_MAX_EBRS) {
			rc = gp_error_set(r->err, GP_ERR_CORRUPT,
					  "%s: extended partition at LBA %llu: more than %d EBRs in its chain",
					  r->path, (unsigned long long)ext_start, MBR_MAX_EBRS);
			goto out;
		}
		visited[nvisited++] = ebr;
		if (ebr < ext_start || ebr >= ext_end) {
			rc = gp_error_set(r->err, GP_ERR_CORRUPT,
					  "%s: EBR at LBA %llu: link to LBA %llu leaves the extended partition (LBA %llu..%llu)",
					  r->path, (unsigned long long)prev, (unsigned long long)ebr,
					  (unsigned long long)ext_start,
					  (unsigned long long)(ext_end - 1));
			goto out;
		}
		rc = part_read_sectors(r, ebr, 1, sec, "EBR");
		if (rc)
			goto out;
		if (!mbr_has_signature(sec)) {
			/* Linux and Windows stop here too; say so, since the
			 * partitions after it are lost to every reader. */
			part_warn(r, "%s: EBR at LBA %llu: no 0x55AA signature; the chain ends here",
				  r->path, (unsigned long long)ebr);
			break;
		}
		mbr_parse(sec, &m);

		const struct mbr_record *data = &m.record[0], *link = &m.record[1];
		if (data->os_type != MBR_TYPE_EMPTY && data->size_in_lba != 0) {
			uint64_t start = ebr + data->starting_lba;
			uint64_t end = start + data->size_in_lba; /* < 2^34: no overflow */
			if (data->starting_lba == 0 || end > ext_end) {
				rc = gp_error_set(r->err, GP_ERR_CORRUPT,
						  "%s: EBR at LBA %llu: logical partition (LBA %llu, %u sectors) outside the extended partition (LBA %llu..%llu)",
						  r->path, (unsigned long long)ebr,
						  (unsigned long long)start, data->size_in_lba,
						  (unsigned long long)ext_start,
						  (unsigned long long)(ext_end - 1));
				goto out;
			}
			struct gp_partition p;
			fill_part(r, &p, (*next_number)++, data, start, true);
			rc = part_append(r, &p);
			if (rc)
				goto out;
		}
		if (link->os_type == MBR_TYPE_EMPTY || link->size_in_lba == 0)
			break;
		if (!mbr_type_is_extended(link->os_type)) {
			part_warn(r, "%s: EBR at LBA %llu: link record has type 0x%02X, not extended; the chain ends here",
				  r->path, (unsigned long long)ebr, link->os_type);
			break;
		}
		prev = ebr;
		ebr = ext_start + link->starting_lba;
	}
out:
	free(sec);
	return rc;
}

int mbr_read(struct part_reader *r, const uint8_t *sector0)
{
	struct mbr m;
	unsigned next_logical = 5;
	int rc;

	mbr_parse(sector0, &m);
	r->pt->mbr_signature = m.unique_disk_signature;

	/* Boot indicators other than 0x00/0x80 mean this sector is not a
	 * partition table (Linux's msdos reader uses the same test). */
	for (int i = 0; i < 4; i++)
		if (m.record[i].boot_indicator != 0 && m.record[i].boot_indicator != 0x80) {
			part_warn(r, "%s: MBR at LBA 0: partition record %d has boot indicator 0x%02X; not a partition table",
				  r->path, i + 1, m.record[i].boot_indicator);
			return 0;
		}
	/* Any 0xEE record makes the GPT authoritative (hybrid MBRs included). */
	for (int i = 0; i < 4; i++)
		if (m.record[i].os_type == MBR_TYPE_GPT_PROTECTIVE)
			return gpt_read(r);

	r->pt->kind = GP_PT_MBR;
	for (int i = 0; i < 4; i++) {
		const struct mbr_record *e = &m.record[i];
		uint64_t start = e->starting_lba, end = start + e->size_in_lba;

		if (e->os_type == MBR_TYPE_EMPTY || e->size_in_lba == 0)
			continue;
		if (start == 0 || end > r->sectors)
			return gp_error_set(r->err, GP_ERR_CORRUPT,
					    "%s: MBR at LBA 0: partition %d (LBA %llu, %u sectors) %s (%llu sectors)",
					    r->path, i + 1, (unsigned long long)start, e->size_in_lba,
					    start == 0 ? "overlaps the MBR" : "extends past the end of the disk",
					    (unsigned long long)r->sectors);
		for (int j = 0; j < i; j++) {
			const struct mbr_record *o = &m.record[j];
			if (o->os_type == MBR_TYPE_EMPTY || o->size_in_lba == 0)
				continue;
			if (start < (uint64_t)o->starting_lba + o->size_in_lba &&
			    o->starting_lba < end)
				return gp_error_set(r->err, GP_ERR_CORRUPT,
						    "%s: MBR at LBA 0: partitions %d and %d overlap",
						    r->path, j + 1, i + 1);
		}
		if (mbr_type_is_extended(e->os_type)) {
			rc = read_ebr_chain(r, start, end, &next_logical);
			if (rc)
				return rc;
			continue;
		}
		struct gp_partition p;
		fill_part(r, &p, (unsigned)i + 1, e, start, false);
		rc = part_append(r, &p);
		if (rc)
			return rc;
	}
	/* Primaries were checked against each other above; logical
	 * partitions can still overlap one another. */
	return part_check_overlaps(r, "MBR partitions");
}
