/*
 * gpt.c — GUID Partition Table (UEFI 2.10 §5.3): header and entry
 * parse/serialize pairs, reading with the primary → backup fallback, and
 * writing a complete GPT (gp_gpt_write).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "le.h"
#include "part.h"
#include "part_priv.h"

/* ---- small pieces ---------------------------------------------------- */

uint32_t gpt_crc32(const void *buf, size_t len)
{
	/* zlib's crc32 is the same CRC-32 (poly 0x04C11DB7, reflected, init
	 * and final xor 0xFFFFFFFF) the UEFI spec names. Callers stay below
	 * GPT_MAX_ARRAY_BYTES, far from zlib's uInt limit. */
	return (uint32_t)crc32(0L, buf, (uInt)len);
}

/* A GUID's first three fields are stored little-endian, the last two as
 * bytes (RFC 4122 "mixed endian" as Microsoft lays it out). */
void gpt_guid_format(const uint8_t g[16], char out[GP_GUID_STR_LEN])
{
	snprintf(out, GP_GUID_STR_LEN,
		 "%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		 get_le32(g), get_le16(g + 4), get_le16(g + 6), g[8], g[9],
		 g[10], g[11], g[12], g[13], g[14], g[15]);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int gpt_guid_parse(const char *s, uint8_t g[16])
{
	/* Text order of the 16 bytes: fields 1-3 reversed (little-endian). */
	static const uint8_t order[16] = { 3, 2, 1, 0, 5, 4, 7, 6,
					   8, 9, 10, 11, 12, 13, 14, 15 };
	uint8_t text[16];
	size_t n = 0;

	if (!s || strlen(s) != 36)
		return -1;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		text[n++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	for (size_t i = 0; i < 16; i++)
		g[order[i]] = text[i];
	return 0;
}

static const struct {
	const char *guid;
	const char *name;
} gpt_types[] = {
	{ "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI system" },
	{ "024DEE41-33E7-11D3-9D69-0008C781F39F", "MBR partition scheme" },
	{ "21686148-6449-6E6F-744E-656564454649", "BIOS boot" },
	{ "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved" },
	{ "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "Microsoft basic data" },
	{ "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "Windows recovery" },
	{ "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3", "LDM metadata" },
	{ "AF9B60A0-1431-4F62-BC68-3311714A69AD", "LDM data" },
	{ "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D", "Storage Spaces" },
	{ "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem" },
	{ "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap" },
	{ "E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM" },
	{ "A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID" },
	{ "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux root (x86-64)" },
	{ "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux home" },
	{ "BC13C2FF-59E6-4262-A352-B275FD6F7172", "Linux extended boot" },
};

const char *gpt_type_name(const char *type_guid)
{
	for (size_t i = 0; i < sizeof(gpt_types) / sizeof(gpt_types[0]); i++)
		if (!strcasecmp(type_guid, gpt_types[i].guid))
			return gpt_types[i].name;
	return "unknown";
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

void gpt_name_to_utf8(const uint16_t name[GPT_ENT_NAME_UNITS], char *out)
{
	/* 36 units: a BMP unit takes <= 3 bytes, a surrogate pair (2 units)
	 * 4 bytes, so the output never exceeds 108 bytes + NUL. */
	size_t o = 0;

	for (size_t i = 0; i < GPT_ENT_NAME_UNITS && name[i]; i++) {
		uint32_t u = name[i];
		if (u >= 0xD800 && u <= 0xDBFF && i + 1 < GPT_ENT_NAME_UNITS &&
		    name[i + 1] >= 0xDC00 && name[i + 1] <= 0xDFFF) {
			u = 0x10000 + ((u - 0xD800) << 10) + (name[i + 1] - 0xDC00);
			i++;
		} else if (u >= 0xD800 && u <= 0xDFFF) {
			u = 0xFFFD;
		}
		o += put_utf8(out + o, u);
	}
	out[o] = '\0';
}

int gpt_name_from_utf8(const char *s, uint16_t name[GPT_ENT_NAME_UNITS])
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = 0;

	memset(name, 0, GPT_ENT_NAME_UNITS * sizeof(*name));
	while (*p) {
		uint32_t cp;
		int extra;
		if (*p < 0x80) {
			cp = *p;
			extra = 0;
		} else if ((*p & 0xE0) == 0xC0) {
			cp = *p & 0x1F;
			extra = 1;
		} else if ((*p & 0xF0) == 0xE0) {
			cp = *p & 0x0F;
			extra = 2;
		} else if ((*p & 0xF8) == 0xF0) {
			cp = *p & 0x07;
			extra = 3;
		} else {
			return -1;
		}
		p++;
		for (int k = 0; k < extra; k++, p++) {
			if ((*p & 0xC0) != 0x80)
				return -1;
			cp = cp << 6 | (*p & 0x3F);
		}
		/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
		if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
		    (extra == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		if (cp >= 0x10000) {
			if (n + 2 > GPT_ENT_NAME_UNITS)
				return -1;
			cp -= 0x10000;
			name[n++] = (uint16_t)(0xD800 + (cp >> 10));
			name[n++] = (uint16_t)(0xDC00 + (cp & 0x3FF));
		} else {
			if (n + 1 > GPT_ENT_NAME_UNITS)
				return -1;
			name[n++] = (uint16_t)cp;
		}
	}
	return 0;
}

/* ---- header ---------------------------------------------------------- */

int gpt_header_parse(const uint8_t *sector, size_t len, struct gpt_header *h,
		     char *why, size_t whylen)
{
	uint8_t copy[512];

	memset(h, 0, sizeof(*h));
	if (len < GPT_HDR_MIN_SIZE) {
		snprintf(why, whylen, "sector too small");
		return -1;
	}
	if (memcmp(sector + GPT_HDR_SIGNATURE, GPT_SIGNATURE, 8)) {
		snprintf(why, whylen, "no \"EFI PART\" signature");
		return -1;
	}
	h->revision = get_le32(sector + GPT_HDR_REVISION);
	h->header_size = get_le32(sector + GPT_HDR_HEADER_SIZE);
	h->header_crc32 = get_le32(sector + GPT_HDR_HEADER_CRC32);
	h->my_lba = get_le64(sector + GPT_HDR_MY_LBA);
	h->alternate_lba = get_le64(sector + GPT_HDR_ALTERNATE_LBA);
	h->first_usable_lba = get_le64(sector + GPT_HDR_FIRST_USABLE_LBA);
	h->last_usable_lba = get_le64(sector + GPT_HDR_LAST_USABLE_LBA);
	memcpy(h->disk_guid, sector + GPT_HDR_DISK_GUID, 16);
	h->partition_entry_lba = get_le64(sector + GPT_HDR_PARTITION_ENTRY_LBA);
	h->number_of_partition_entries = get_le32(sector + GPT_HDR_NUMBER_OF_PARTITION_ENTRIES);
	h->size_of_partition_entry = get_le32(sector + GPT_HDR_SIZE_OF_PARTITION_ENTRY);
	h->partition_entry_array_crc32 = get_le32(sector + GPT_HDR_PARTITION_ENTRY_ARRAY_CRC32);

	/* Minor revisions are compatible by the spec's versioning rule. */
	if ((h->revision >> 16) != 1) {
		snprintf(why, whylen, "revision 0x%08X is not 1.x", h->revision);
		return -1;
	}
	/* The CRC covers HeaderSize bytes, which must fit the sector; more than
	 * 512 is legal on 4K sectors but never written, so check a copy of
	 * at most the sector. */
	if (h->header_size < GPT_HDR_MIN_SIZE || h->header_size > len) {
		snprintf(why, whylen, "HeaderSize %u outside %u..%zu", h->header_size,
			 GPT_HDR_MIN_SIZE, len);
		return -1;
	}
	uint8_t *buf = copy;
	if (h->header_size > sizeof(copy)) {
		buf = malloc(h->header_size);
		if (!buf) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
	}
	memcpy(buf, sector, h->header_size);
	put_le32(buf + GPT_HDR_HEADER_CRC32, 0);
	uint32_t crc = gpt_crc32(buf, h->header_size);
	if (buf != copy)
		free(buf);
	if (crc != h->header_crc32) {
		snprintf(why, whylen, "CRC mismatch (stored 0x%08X, computed 0x%08X)",
			 h->header_crc32, crc);
		return -1;
	}
	if (h->size_of_partition_entry < GPT_ENT_MIN_SIZE ||
	    h->size_of_partition_entry % 8) {
		snprintf(why, whylen,
			 "SizeOfPartitionEntry %u is not a multiple of 8 of at least 128",
			 h->size_of_partition_entry);
		return -1;
	}
	return 0;
}

void gpt_header_serialize(const struct gpt_header *h, uint8_t *sector, size_t len)
{
	memset(sector, 0, len);
	memcpy(sector + GPT_HDR_SIGNATURE, GPT_SIGNATURE, 8);
	put_le32(sector + GPT_HDR_REVISION, h->revision);
	put_le32(sector + GPT_HDR_HEADER_SIZE, h->header_size);
	put_le32(sector + GPT_HDR_HEADER_CRC32, 0);
	put_le64(sector + GPT_HDR_MY_LBA, h->my_lba);
	put_le64(sector + GPT_HDR_ALTERNATE_LBA, h->alternate_lba);
	put_le64(sector + GPT_HDR_FIRST_USABLE_LBA, h->first_usable_lba);
	put_le64(sector + GPT_HDR_LAST_USABLE_LBA, h->last_usable_lba);
	memcpy(sector + GPT_HDR_DISK_GUID, h->disk_guid, 16);
	put_le64(sector + GPT_HDR_PARTITION_ENTRY_LBA, h->partition_entry_lba);
	put_le32(sector + GPT_HDR_NUMBER_OF_PARTITION_ENTRIES, h->number_of_partition_entries);
	put_le32(sector + GPT_HDR_SIZE_OF_PARTITION_ENTRY, h->size_of_partition_entry);
	put_le32(sector + GPT_HDR_PARTITION_ENTRY_ARRAY_CRC32, h->partition_entry_array_crc32);
	size_t n = h->header_size <= len ? h->header_size : len;
	put_le32(sector + GPT_HDR_HEADER_CRC32, gpt_crc32(sector, n));
}

/* ---- entry ----------------------------------------------------------- */

void gpt_entry_parse(const uint8_t *p, struct gpt_entry *e)
{
	memcpy(e->partition_type_guid, p + GPT_ENT_PARTITION_TYPE_GUID, 16);
	memcpy(e->unique_partition_guid, p + GPT_ENT_UNIQUE_PARTITION_GUID, 16);
	e->starting_lba = get_le64(p + GPT_ENT_STARTING_LBA);
	e->ending_lba = get_le64(p + GPT_ENT_ENDING_LBA);
	e->attributes = get_le64(p + GPT_ENT_ATTRIBUTES);
	for (size_t i = 0; i < GPT_ENT_NAME_UNITS; i++)
		e->partition_name[i] = get_le16(p + GPT_ENT_PARTITION_NAME + 2 * i);
}

void gpt_entry_serialize(const struct gpt_entry *e, uint8_t *p)
{
	memcpy(p + GPT_ENT_PARTITION_TYPE_GUID, e->partition_type_guid, 16);
	memcpy(p + GPT_ENT_UNIQUE_PARTITION_GUID, e->unique_partition_guid, 16);
	put_le64(p + GPT_ENT_STARTING_LBA, e->starting_lba);
	put_le64(p + GPT_ENT_ENDING_LBA, e->ending_lba);
	put_le64(p + GPT_ENT_ATTRIBUTES, e->attributes);
	for (size_t i = 0; i < GPT_ENT_NAME_UNITS; i++)
		put_le16(p + GPT_ENT_PARTITION_NAME + 2 * i, e->partition_name[i]);
}

bool gpt_entry_is_unused(const struct gpt_entry *e)
{
	static const uint8_t zero[16];
	return !memcmp(e->partition_type_guid, zero, 16);
}

/* ---- reading --------------------------------------------------------- */

/* A header with its entry array, both checked. */
struct gpt_copy {
	struct gpt_header h;
	uint8_t *array;        /* malloc'ed, array_sectors * ss bytes */
	uint64_t array_bytes;  /* entries * entry size (what the CRC covers) */
	bool header_valid;     /* header parsed with a good CRC (array may be bad) */
	char why[512];
};

/* A read of the table failed: the disk's error, with what was read. A
 * copy that cannot be read is not a damaged copy: falling back to the
 * backup would hide a failing disk from the caller, which trusts no image
 * that fails a read. */
static int read_failed(struct part_reader *r, const char *what, uint64_t lba)
{
	const struct gp_error *de = gp_disk_error(r->d);
	int rc = gp_error_set(r->err, de->code ? de->code : GP_ERR_IO, "%s: %s %llu: %s", r->path,
			      what, (unsigned long long)lba, gp_error_message(de));

	gp_disk_clear_error(r->d);
	return rc;
}

/*
 * Load and check the header at @lba and its entry array against the disk.
 * Returns 0 when both are good, 1 when they are not (@c->why says which
 * rule failed), or a negative code (recorded on @r) when the disk fails a
 * read or memory runs out.
 */
static int gpt_load(struct part_reader *r, uint64_t lba, struct gpt_copy *c)
{
	struct gpt_header *h = &c->h;
	uint64_t array_sectors, array_end;
	uint8_t *sec;

	memset(c, 0, sizeof(*c));
	sec = malloc(r->ss);
	if (!sec)
		return gp_error_set(r->err, GP_ERR_NOMEM, "%s: out of memory", r->path);
	if (lba >= r->sectors) {
		snprintf(c->why, sizeof(c->why), "beyond the end of the disk (%llu sectors)",
			 (unsigned long long)r->sectors);
		goto bad;
	}
	if (gp_disk_pread(r->d, sec, r->ss, lba * r->ss)) {
		free(sec);
		return read_failed(r, "GPT header at LBA", lba);
	}
	if (gpt_header_parse(sec, r->ss, h, c->why, sizeof(c->why)))
		goto bad;
	c->header_valid = true;
	if (h->my_lba != lba) {
		snprintf(c->why, sizeof(c->why), "MyLBA is %llu", (unsigned long long)h->my_lba);
		goto bad;
	}
	if (h->first_usable_lba > h->last_usable_lba || h->last_usable_lba >= r->sectors ||
	    h->first_usable_lba < 2) {
		snprintf(c->why, sizeof(c->why),
			 "usable LBAs %llu..%llu do not fit the disk (%llu sectors)",
			 (unsigned long long)h->first_usable_lba,
			 (unsigned long long)h->last_usable_lba,
			 (unsigned long long)r->sectors);
		goto bad;
	}
	if (lba >= h->first_usable_lba && lba <= h->last_usable_lba) {
		snprintf(c->why, sizeof(c->why), "header lies inside the usable LBAs");
		goto bad;
	}
	if (mul_u64(h->number_of_partition_entries, h->size_of_partition_entry,
		    &c->array_bytes) || c->array_bytes > GPT_MAX_ARRAY_BYTES) {
		snprintf(c->why, sizeof(c->why),
			 "partition entry array of %u entries x %u bytes exceeds %u MiB",
			 h->number_of_partition_entries, h->size_of_partition_entry,
			 GPT_MAX_ARRAY_BYTES >> 20);
		goto bad;
	}
	array_sectors = (c->array_bytes + r->ss - 1) / r->ss;
	if (h->partition_entry_lba < 1 ||
	    add_u64(h->partition_entry_lba, array_sectors, &array_end) ||
	    array_end > r->sectors) {
		snprintf(c->why, sizeof(c->why),
			 "partition entry array at LBA %llu (%llu sectors) does not fit the disk (%llu sectors)",
			 (unsigned long long)h->partition_entry_lba,
			 (unsigned long long)array_sectors, (unsigned long long)r->sectors);
		goto bad;
	}
	if (array_sectors &&
	    ((h->partition_entry_lba <= h->last_usable_lba &&
	      array_end > h->first_usable_lba) ||
	     (lba >= h->partition_entry_lba && lba < array_end))) {
		snprintf(c->why, sizeof(c->why),
			 "partition entry array at LBA %llu..%llu overlaps the usable LBAs or the header",
			 (unsigned long long)h->partition_entry_lba,
			 (unsigned long long)(array_end - 1));
		goto bad;
	}
	if (array_sectors) {
		c->array = malloc(array_sectors * r->ss);
		if (!c->array) {
			free(sec);
			return gp_error_set(r->err, GP_ERR_NOMEM, "%s: out of memory", r->path);
		}
		if (gp_disk_pread(r->d, c->array, array_sectors * r->ss,
				  h->partition_entry_lba * r->ss)) {
			free(sec);
			free(c->array);
			c->array = NULL;
			return read_failed(r, "partition entry array at LBA", h->partition_entry_lba);
		}
	}
	uint32_t crc = gpt_crc32(c->array, c->array_bytes);
	if (crc != h->partition_entry_array_crc32) {
		snprintf(c->why, sizeof(c->why),
			 "partition entry array at LBA %llu: CRC mismatch (stored 0x%08X, computed 0x%08X)",
			 (unsigned long long)h->partition_entry_lba,
			 h->partition_entry_array_crc32, crc);
		goto bad;
	}
	free(sec);
	return 0;
bad:
	free(sec);
	free(c->array);
	c->array = NULL;
	return 1;
}

/* Turn the checked array of @c into partitions; a used entry outside the
 * usable LBAs, reversed, or overlapping another is corruption. */
static int gpt_collect(struct part_reader *r, const struct gpt_copy *c)
{
	const struct gpt_header *h = &c->h;
	int rc = 0;

	for (uint32_t i = 0; i < h->number_of_partition_entries; i++) {
		uint64_t at = (uint64_t)i * h->size_of_partition_entry;
		uint64_t at_lba = h->partition_entry_lba + at / r->ss;
		struct gpt_entry e;
		struct gp_partition p = { 0 };

		gpt_entry_parse(c->array + at, &e);
		if (gpt_entry_is_unused(&e))
			continue;
		if (e.starting_lba > e.ending_lba ||
		    e.starting_lba < h->first_usable_lba ||
		    e.ending_lba > h->last_usable_lba)
			return gp_error_set(r->err, GP_ERR_CORRUPT,
					    "%s: GPT entry %u at LBA %llu: LBAs %llu..%llu outside the usable LBAs %llu..%llu",
					    r->path, i + 1, (unsigned long long)at_lba,
					    (unsigned long long)e.starting_lba,
					    (unsigned long long)e.ending_lba,
					    (unsigned long long)h->first_usable_lba,
					    (unsigned long long)h->last_usable_lba);
		p.number = i + 1;
		p.first_lba = e.starting_lba;
		p.last_lba = e.ending_lba;
		/* ending_lba < sectors, and sectors * ss <= disk size. */
		p.offset = e.starting_lba * r->ss;
		p.length = (e.ending_lba - e.starting_lba + 1) * r->ss;
		gpt_guid_format(e.partition_type_guid, p.type_guid);
		gpt_guid_format(e.unique_partition_guid, p.guid);
		p.type_name = gpt_type_name(p.type_guid);
		gpt_name_to_utf8(e.partition_name, p.name);
		p.attributes = e.attributes;
		p.bootable = (e.attributes & GPT_ATTR_LEGACY_BIOS_BOOTABLE) != 0;
		rc = part_append(r, &p);
		if (rc)
			return rc;
	}
	return part_check_overlaps(r, "GPT entries");
}

int gpt_read(struct part_reader *r)
{
	struct gpt_copy primary, backup = { 0 };
	const struct gpt_copy *use = NULL;
	uint64_t last = r->sectors - 1;
	int rc;

	r->pt->kind = GP_PT_GPT;
	rc = gpt_load(r, 1, &primary);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		use = &primary;
		/* The primary is good: look at the backup header only to warn
		 * (a resized disk has its backup away from the last LBA). */
		struct gpt_header bh;
		char why[256];
		uint8_t *sec = malloc(r->ss);
		if (!sec) {
			rc = gp_error_set(r->err, GP_ERR_NOMEM, "%s: out of memory", r->path);
			goto out;
		}
		uint64_t alt = primary.h.alternate_lba;
		if (alt >= r->sectors || alt <= primary.h.last_usable_lba) {
			part_warn(r, "%s: GPT header at LBA 1: AlternateLBA %llu is not past the usable LBAs within the disk (%llu sectors)",
				  r->path, (unsigned long long)alt,
				  (unsigned long long)r->sectors);
		} else if (gp_disk_pread(r->d, sec, r->ss, alt * r->ss)) {
			/* A read error is a failing disk, not a damaged copy:
			 * not trusted, as for the primary. */
			rc = gp_error_set(r->err, GP_ERR_IO, "%s: backup GPT header at LBA %llu: %s",
					  r->path, (unsigned long long)alt,
					  gp_error_message(gp_disk_error(r->d)));
			gp_disk_clear_error(r->d);
			free(sec);
			goto out;
		} else if (gpt_header_parse(sec, r->ss, &bh, why, sizeof(why))) {
			part_warn(r, "%s: backup GPT header at LBA %llu: %s", r->path,
				  (unsigned long long)alt, why);
		} else if (alt != last) {
			part_warn(r, "%s: backup GPT header at LBA %llu is not at the last LBA %llu (disk resized?)",
				  r->path, (unsigned long long)alt, (unsigned long long)last);
		}
		free(sec);
	} else {
		/* Primary damaged: the backup sits at the last LBA; a primary
		 * with a good header CRC may point elsewhere (resized disk). */
		uint64_t cand[2] = { last, last };
		int ncand = 1;
		if (primary.header_valid && primary.h.alternate_lba != last &&
		    primary.h.alternate_lba > 1 && primary.h.alternate_lba < r->sectors)
			cand[ncand++] = primary.h.alternate_lba;
		uint64_t tried = last;
		for (int i = 0; i < ncand && !use; i++) {
			free(backup.array);
			tried = cand[i];
			rc = gpt_load(r, cand[i], &backup);
			if (rc < 0)
				goto out;
			if (rc == 0)
				use = &backup;
		}
		rc = 0;
		if (!use) {
			rc = gp_error_set(r->err, GP_ERR_CORRUPT,
					  "%s: GPT header at LBA 1: %s; backup GPT header at LBA %llu: %s",
					  r->path, primary.why, (unsigned long long)tried,
					  backup.why);
			goto out;
		}
		r->pt->used_backup_gpt = true;
		part_warn(r, "%s: GPT header at LBA 1: %s; using the backup at LBA %llu",
			  r->path, primary.why, (unsigned long long)use->h.my_lba);
	}

	gpt_guid_format(use->h.disk_guid, r->pt->disk_guid);
	r->pt->gpt_header_lba = use->h.my_lba;
	r->pt->first_usable_lba = use->h.first_usable_lba;
	r->pt->last_usable_lba = use->h.last_usable_lba;
	r->pt->gpt_entry_count = use->h.number_of_partition_entries;
	r->pt->gpt_entry_size = use->h.size_of_partition_entry;
	rc = gpt_collect(r, use);
out:
	free(primary.array);
	free(backup.array);
	return rc;
}

/* ---- writing --------------------------------------------------------- */

#define GPT_WRITE_ENTRIES 128u

static int write_sectors(struct gp_disk *d, const void *buf, uint64_t len,
			 uint64_t off, const char *what, struct gp_error *err)
{
	int rc = gp_disk_pwrite(d, buf, len, off);
	if (rc) {
		gp_error_set(err, rc, "%s: writing %s: %s", gp_disk_path(d), what,
			     gp_error_message(gp_disk_error(d)));
		gp_disk_clear_error(d);
	}
	return rc;
}

int gp_gpt_write(struct gp_disk *d, uint32_t sector_size, const char *disk_guid,
		 const struct gp_gpt_new_part *parts, size_t count,
		 struct gp_error *err)
{
	const uint64_t array_bytes = GPT_WRITE_ENTRIES * GPT_ENT_MIN_SIZE;
	uint64_t sectors, array_sectors;
	struct gpt_header h = { 0 };
	uint8_t *array = NULL, *sec = NULL;
	const char *path;
	int rc = 0;

	if (!d)
		return gp_error_set(err, GP_ERR_INVALID, "gp_gpt_write: no disk");
	path = gp_disk_path(d);
	if (sector_size != 512 && sector_size != 4096)
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: sector size %u: only 512 and 4096 are supported",
				    path, sector_size);
	if (count > GPT_WRITE_ENTRIES || (count && !parts))
		return gp_error_set(err, GP_ERR_INVALID, "%s: %zu partitions: at most %u",
				    path, count, GPT_WRITE_ENTRIES);
	sectors = gp_disk_size(d) / sector_size;
	array_sectors = array_bytes / sector_size;
	/* MBR + 2 headers + 2 arrays + at least one usable sector. */
	if (sectors < 3 + 2 * array_sectors + 1)
		return gp_error_set(err, GP_ERR_INVALID, "%s: disk of %llu sectors is too small for a GPT",
				    path, (unsigned long long)sectors);
	h.revision = GPT_REVISION_1_0;
	h.header_size = GPT_HDR_MIN_SIZE;
	h.first_usable_lba = 2 + array_sectors;
	h.last_usable_lba = sectors - 2 - array_sectors;
	h.number_of_partition_entries = GPT_WRITE_ENTRIES;
	h.size_of_partition_entry = GPT_ENT_MIN_SIZE;
	if (gpt_guid_parse(disk_guid, h.disk_guid))
		return gp_error_set(err, GP_ERR_INVALID, "%s: disk GUID \"%s\" is not a GUID",
				    path, disk_guid ? disk_guid : "(null)");

	array = calloc(1, array_bytes);
	sec = calloc(1, sector_size);
	if (!array || !sec) {
		rc = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		const struct gp_gpt_new_part *p = &parts[i];
		struct gpt_entry e = { 0 };
		if (gpt_guid_parse(p->type_guid, e.partition_type_guid) ||
		    gpt_guid_parse(p->guid, e.unique_partition_guid) ||
		    gpt_entry_is_unused(&e)) {
			rc = gp_error_set(err, GP_ERR_INVALID,
					  "%s: new partition %zu: bad type or partition GUID", path, i + 1);
			goto out;
		}
		if (gpt_name_from_utf8(p->name ? p->name : "", e.partition_name)) {
			rc = gp_error_set(err, GP_ERR_INVALID,
					  "%s: new partition %zu: name is not UTF-8 of at most 36 UTF-16 units",
					  path, i + 1);
			goto out;
		}
		if (p->first_lba > p->last_lba || p->first_lba < h.first_usable_lba ||
		    p->last_lba > h.last_usable_lba) {
			rc = gp_error_set(err, GP_ERR_INVALID,
					  "%s: new partition %zu: LBAs %llu..%llu outside the usable LBAs %llu..%llu",
					  path, i + 1, (unsigned long long)p->first_lba,
					  (unsigned long long)p->last_lba,
					  (unsigned long long)h.first_usable_lba,
					  (unsigned long long)h.last_usable_lba);
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (p->first_lba <= parts[j].last_lba && parts[j].first_lba <= p->last_lba) {
				rc = gp_error_set(err, GP_ERR_INVALID,
						  "%s: new partitions %zu and %zu overlap", path, j + 1, i + 1);
				goto out;
			}
		e.starting_lba = p->first_lba;
		e.ending_lba = p->last_lba;
		e.attributes = p->attributes;
		gpt_entry_serialize(&e, array + i * GPT_ENT_MIN_SIZE);
	}
	h.partition_entry_array_crc32 = gpt_crc32(array, array_bytes);

	/* Backup first, primary last: a crash in between leaves the old
	 * primary (or none) rather than a primary pointing at nothing. */
	h.my_lba = sectors - 1;
	h.alternate_lba = 1;
	h.partition_entry_lba = sectors - 1 - array_sectors;
	rc = write_sectors(d, array, array_bytes, h.partition_entry_lba * sector_size,
			   "backup GPT entry array", err);
	if (rc)
		goto out;
	gpt_header_serialize(&h, sec, sector_size);
	rc = write_sectors(d, sec, sector_size, h.my_lba * sector_size, "backup GPT header", err);
	if (rc)
		goto out;
	h.my_lba = 1;
	h.alternate_lba = sectors - 1;
	h.partition_entry_lba = 2;
	rc = write_sectors(d, array, array_bytes, 2ull * sector_size, "GPT entry array", err);
	if (rc)
		goto out;
	gpt_header_serialize(&h, sec, sector_size);
	rc = write_sectors(d, sec, sector_size, sector_size, "GPT header", err);
	if (rc)
		goto out;

	/* Protective MBR (UEFI 2.10 table 5-4): one 0xEE record from LBA 1
	 * over the whole disk, capped at 0xFFFFFFFF sectors. */
	struct mbr m = { 0 };
	memset(sec, 0, sector_size);
	m.record[0].os_type = MBR_TYPE_GPT_PROTECTIVE;
	m.record[0].starting_chs[1] = 0x02; /* CHS 0/0/2 = LBA 1 */
	memset(m.record[0].ending_chs, 0xFF, 3);
	m.record[0].starting_lba = 1;
	m.record[0].size_in_lba = sectors - 1 > 0xFFFFFFFFull ? 0xFFFFFFFFu
							       : (uint32_t)(sectors - 1);
	mbr_serialize(&m, sec);
	rc = write_sectors(d, sec, sector_size, 0, "protective MBR", err);
out:
	free(array);
	free(sec);
	return rc;
}
