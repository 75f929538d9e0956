/*
 * vhdx_region.c — region tables (MS-VHDX 2.2.3).
 */
#include "crc32c.h"
#include "le.h"
#include "vhdx_priv.h"

#include <stdlib.h>
#include <string.h>

#define VHDX_RT_SIGNATURE "regi"

int vhdx_region_table_parse(const char *path, int copy, uint64_t at, const uint8_t *buf,
			    struct vhdx_region_table *rt, struct gp_error *err)
{
	static const uint8_t zero4[4];
	uint32_t count, sum;

	rt->count = 0;
	rt->entries = NULL;
	if (memcmp(buf + VHDX_RT_SIGNATURE_OFF, VHDX_RT_SIGNATURE, 4) != 0)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: region table %d at 0x%llx: signature is not \"regi\"", path,
				    copy, (unsigned long long)at);
	/* CRC over the table with the checksum field taken as zero, without
	 * copying 64 KiB. */
	sum = crc32c(buf, VHDX_RT_CHECKSUM_OFF);
	sum = crc32c_update(sum, zero4, 4);
	sum = crc32c_update(sum, buf + VHDX_RT_CHECKSUM_OFF + 4,
			    VHDX_REGION_TABLE_SIZE - VHDX_RT_CHECKSUM_OFF - 4);
	if (sum != get_le32(buf + VHDX_RT_CHECKSUM_OFF))
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: region table %d at 0x%llx: checksum mismatch", path, copy,
				    (unsigned long long)at);
	count = get_le32(buf + VHDX_RT_ENTRY_COUNT_OFF);
	if (count > VHDX_RT_MAX_ENTRIES)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: region table %d at 0x%llx: %u entries (at most %d allowed)",
				    path, copy, (unsigned long long)at, count, VHDX_RT_MAX_ENTRIES);
	rt->entries = calloc(count ? count : 1, sizeof(*rt->entries));
	if (!rt->entries)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = buf + VHDX_RT_ENTRIES_OFF + (size_t)i * VHDX_RT_ENTRY_SIZE;
		struct vhdx_region *r = &rt->entries[i];
		uint32_t req;

		memcpy(r->guid.b, e + VHDX_RTE_GUID_OFF, 16);
		r->file_offset = get_le64(e + VHDX_RTE_FILE_OFFSET_OFF);
		r->length = get_le32(e + VHDX_RTE_LENGTH_OFF);
		req = get_le32(e + VHDX_RTE_REQUIRED_OFF);
		r->required = req & 1;
		if (r->file_offset % VHDX_MiB || r->file_offset < VHDX_MiB ||
		    r->length % VHDX_MiB || r->length == 0) {
			gp_error_set(err, GP_ERR_CORRUPT,
				     "%s: region table %d at 0x%llx: entry %u (offset 0x%llx, length 0x%x) is not 1 MiB-aligned past the header section",
				     path, copy, (unsigned long long)at, i,
				     (unsigned long long)r->file_offset, r->length);
			vhdx_region_table_free(rt);
			return GP_ERR_CORRUPT;
		}
		for (uint32_t j = 0; j < i; j++) {
			if (vhdx_guid_eq(&rt->entries[j].guid, &r->guid)) {
				vhdx_region_table_free(rt);
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: region table %d at 0x%llx: entry %u repeats the GUID of entry %u",
						    path, copy, (unsigned long long)at, i, j);
			}
		}
		rt->count = i + 1;
	}
	return 0;
}

void vhdx_region_table_serialize(const struct vhdx_region_table *rt, uint8_t *buf)
{
	memset(buf, 0, VHDX_REGION_TABLE_SIZE);
	memcpy(buf + VHDX_RT_SIGNATURE_OFF, VHDX_RT_SIGNATURE, 4);
	put_le32(buf + VHDX_RT_ENTRY_COUNT_OFF, rt->count);
	for (uint32_t i = 0; i < rt->count; i++) {
		uint8_t *e = buf + VHDX_RT_ENTRIES_OFF + (size_t)i * VHDX_RT_ENTRY_SIZE;
		const struct vhdx_region *r = &rt->entries[i];

		memcpy(e + VHDX_RTE_GUID_OFF, r->guid.b, 16);
		put_le64(e + VHDX_RTE_FILE_OFFSET_OFF, r->file_offset);
		put_le32(e + VHDX_RTE_LENGTH_OFF, r->length);
		put_le32(e + VHDX_RTE_REQUIRED_OFF, r->required ? 1 : 0);
	}
	put_le32(buf + VHDX_RT_CHECKSUM_OFF, crc32c(buf, VHDX_REGION_TABLE_SIZE));
}

void vhdx_region_table_free(struct vhdx_region_table *rt)
{
	free(rt->entries);
	rt->entries = NULL;
	rt->count = 0;
}
