/*
 * vhdx_metadata.c — metadata region (MS-VHDX 2.6): table, known items,
 * parent locator; and the UTF-16 conversions the locator needs.
 */
#include "le.h"
#include "vhdx_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VHDX_MDT_SIGNATURE "metadata"
#define VHDX_MD_ITEM_MAX_LENGTH VHDX_MiB
#define VHDX_MD_MAX_USER_ITEMS 1024

/* Bits of the required-item mask: each known system item sets its bit when
 * found; all but the parent locator must be present in every image. */
enum {
	MD_FILE_PARAMETERS = 1u << 0,
	MD_VIRTUAL_DISK_SIZE = 1u << 1,
	MD_VIRTUAL_DISK_ID = 1u << 2,
	MD_LOGICAL_SECTOR_SIZE = 1u << 3,
	MD_PHYSICAL_SECTOR_SIZE = 1u << 4,
	MD_PARENT_LOCATOR = 1u << 5,
	MD_ALWAYS_REQUIRED = MD_FILE_PARAMETERS | MD_VIRTUAL_DISK_SIZE | MD_VIRTUAL_DISK_ID |
			     MD_LOGICAL_SECTOR_SIZE | MD_PHYSICAL_SECTOR_SIZE,
};

static const struct {
	const char *guid;
	unsigned bit;
	uint32_t length;   /* exact length, 0: variable */
	const char *name;
} known_items[] = {
	{ VHDX_GUID_FILE_PARAMETERS, MD_FILE_PARAMETERS, 8, "file parameters" },
	{ VHDX_GUID_VIRTUAL_DISK_SIZE, MD_VIRTUAL_DISK_SIZE, 8, "virtual disk size" },
	{ VHDX_GUID_VIRTUAL_DISK_ID, MD_VIRTUAL_DISK_ID, 16, "virtual disk id" },
	{ VHDX_GUID_LOGICAL_SECTOR_SIZE, MD_LOGICAL_SECTOR_SIZE, 4, "logical sector size" },
	{ VHDX_GUID_PHYSICAL_SECTOR_SIZE, MD_PHYSICAL_SECTOR_SIZE, 4, "physical sector size" },
	{ VHDX_GUID_PARENT_LOCATOR, MD_PARENT_LOCATOR, 0, "parent locator" },
};
#define NKNOWN (sizeof(known_items) / sizeof(known_items[0]))

/* ---- UTF-16 ---- */

char *vhdx_utf16_to_utf8(const uint8_t *p, size_t n)
{
	char *out, *o;

	if (n % 2)
		return NULL;
	out = malloc(n / 2 * 3 + 1); /* a UTF-16 unit yields at most 3 bytes */
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i += 2) {
		uint32_t c = get_le16(p + i);

		if (c >= 0xD800 && c < 0xDC00) {
			uint32_t lo;

			if (i + 4 > n)
				goto bad;
			lo = get_le16(p + i + 2);
			if (lo < 0xDC00 || lo >= 0xE000)
				goto bad;
			c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
			i += 2;
		} else if (c >= 0xDC00 && c < 0xE000) {
			goto bad;
		}
		if (c == 0)
			goto bad; /* the spec forbids internal NULs */
		if (c < 0x80) {
			*o++ = (char)c;
		} else if (c < 0x800) {
			*o++ = (char)(0xC0 | (c >> 6));
			*o++ = (char)(0x80 | (c & 0x3F));
		} else if (c < 0x10000) {
			*o++ = (char)(0xE0 | (c >> 12));
			*o++ = (char)(0x80 | ((c >> 6) & 0x3F));
			*o++ = (char)(0x80 | (c & 0x3F));
		} else {
			*o++ = (char)(0xF0 | (c >> 18));
			*o++ = (char)(0x80 | ((c >> 12) & 0x3F));
			*o++ = (char)(0x80 | ((c >> 6) & 0x3F));
			*o++ = (char)(0x80 | (c & 0x3F));
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

long vhdx_utf8_to_utf16(const char *s, uint8_t *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		uint32_t c;
		int extra;

		if (*p < 0x80) {
			c = *p;
			extra = 0;
		} else if ((*p & 0xE0) == 0xC0) {
			c = *p & 0x1F;
			extra = 1;
		} else if ((*p & 0xF0) == 0xE0) {
			c = *p & 0x0F;
			extra = 2;
		} else if ((*p & 0xF8) == 0xF0) {
			c = *p & 0x07;
			extra = 3;
		} else {
			return -1;
		}
		p++;
		for (int i = 0; i < extra; i++, p++) {
			if ((*p & 0xC0) != 0x80)
				return -1;
			c = (c << 6) | (*p & 0x3F);
		}
		if (c >= 0x10000) {
			if (n + 4 > cap)
				return -1;
			c -= 0x10000;
			put_le16(out + n, (uint16_t)(0xD800 + (c >> 10)));
			put_le16(out + n + 2, (uint16_t)(0xDC00 + (c & 0x3FF)));
			n += 4;
		} else {
			if (n + 2 > cap)
				return -1;
			put_le16(out + n, (uint16_t)c);
			n += 2;
		}
	}
	return (long)n;
}

/* ---- parent locator ---- */

void vhdx_locator_free(struct vhdx_parent_locator *l)
{
	free(l->parent_linkage);
	free(l->parent_linkage2);
	free(l->relative_path);
	free(l->volume_path);
	free(l->absolute_win32_path);
	memset(l, 0, sizeof(*l));
}

static char **locator_slot(struct vhdx_parent_locator *l, const char *key)
{
	if (!strcmp(key, "parent_linkage"))
		return &l->parent_linkage;
	if (!strcmp(key, "parent_linkage2"))
		return &l->parent_linkage2;
	if (!strcmp(key, "relative_path"))
		return &l->relative_path;
	if (!strcmp(key, "volume_path"))
		return &l->volume_path;
	if (!strcmp(key, "absolute_win32_path"))
		return &l->absolute_win32_path;
	return NULL;
}

static int locator_parse(const char *path, uint64_t at, const uint8_t *p, uint32_t len,
			 struct vhdx_parent_locator *l, struct gp_error *err)
{
	uint16_t count;

	if (len < VHDX_PL_ENTRIES_OFF)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: parent locator at 0x%llx: %u bytes is too short", path,
				    (unsigned long long)at, len);
	if (!vhdx_guid_matches(p + VHDX_PL_LOCATOR_TYPE_OFF, VHDX_GUID_VHDX_LOCATOR_TYPE))
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: parent locator at 0x%llx: locator type is not VHDX", path,
				    (unsigned long long)at);
	count = get_le16(p + VHDX_PL_KEY_VALUE_COUNT_OFF);
	if ((uint64_t)VHDX_PL_ENTRIES_OFF + (uint64_t)count * VHDX_PL_ENTRY_SIZE > len)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: parent locator at 0x%llx: %u entries do not fit in %u bytes",
				    path, (unsigned long long)at, count, len);
	for (uint16_t i = 0; i < count; i++) {
		const uint8_t *e = p + VHDX_PL_ENTRIES_OFF + (size_t)i * VHDX_PL_ENTRY_SIZE;
		uint32_t ko = get_le32(e + VHDX_PLE_KEY_OFFSET_OFF);
		uint32_t vo = get_le32(e + VHDX_PLE_VALUE_OFFSET_OFF);
		uint16_t kl = get_le16(e + VHDX_PLE_KEY_LENGTH_OFF);
		uint16_t vl = get_le16(e + VHDX_PLE_VALUE_LENGTH_OFF);
		char *key, *val, **slot;

		if (!ko || !vo || !kl || !vl || kl % 2 || vl % 2 || (uint64_t)ko + kl > len ||
		    (uint64_t)vo + vl > len)
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: parent locator at 0x%llx: entry %u points outside the item",
					    path, (unsigned long long)at, i);
		key = vhdx_utf16_to_utf8(p + ko, kl);
		val = vhdx_utf16_to_utf8(p + vo, vl);
		if (!key || !val) {
			free(key);
			free(val);
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: parent locator at 0x%llx: entry %u is not valid UTF-16",
					    path, (unsigned long long)at, i);
		}
		slot = locator_slot(l, key);
		if (slot && *slot) {
			gp_error_set(err, GP_ERR_CORRUPT,
				     "%s: parent locator at 0x%llx: key \"%s\" appears twice", path,
				     (unsigned long long)at, key);
			free(key);
			free(val);
			return GP_ERR_CORRUPT;
		}
		free(key);
		if (slot)
			*slot = val;
		else
			free(val); /* unknown keys are allowed and ignored */
	}
	if (!l->parent_linkage)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: parent locator at 0x%llx: no parent_linkage entry", path,
				    (unsigned long long)at);
	if (!l->relative_path && !l->volume_path && !l->absolute_win32_path)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: parent locator at 0x%llx: no relative_path, volume_path or absolute_win32_path entry",
				    path, (unsigned long long)at);
	return 0;
}

/* ---- metadata table ---- */

static bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

int vhdx_metadata_parse(const char *path, uint64_t at, const uint8_t *buf, size_t len,
			uint64_t region_len, struct vhdx_metadata *md, struct gp_error *err)
{
	unsigned found = 0, user = 0;
	uint16_t count;
	int ret;

	memset(md, 0, sizeof(*md));
	if (len < VHDX_METADATA_TABLE_SIZE ||
	    memcmp(buf + VHDX_MDT_SIGNATURE_OFF, VHDX_MDT_SIGNATURE, 8) != 0)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: metadata table at 0x%llx: signature is not \"metadata\"", path,
				    (unsigned long long)at);
	count = get_le16(buf + VHDX_MDT_ENTRY_COUNT_OFF);
	if (count > VHDX_MDT_MAX_ENTRIES)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: metadata table at 0x%llx: %u entries (at most %d allowed)", path,
				    (unsigned long long)at, count, VHDX_MDT_MAX_ENTRIES);
	for (uint16_t i = 0; i < count; i++) {
		const uint8_t *e = buf + VHDX_MDT_ENTRIES_OFF + (size_t)i * VHDX_MDT_ENTRY_SIZE;
		uint32_t off = get_le32(e + VHDX_MDE_OFFSET_OFF);
		uint32_t ilen = get_le32(e + VHDX_MDE_LENGTH_OFF);
		uint32_t flags = get_le32(e + VHDX_MDE_FLAGS_OFF);
		uint64_t item_at = at + off;
		const uint8_t *item = buf + off;
		size_t k;

		if (ilen == 0 ? off != 0
			      : (off < VHDX_METADATA_TABLE_SIZE || ilen > VHDX_MD_ITEM_MAX_LENGTH ||
				 (uint64_t)off + ilen > region_len || (uint64_t)off + ilen > len))
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: metadata table at 0x%llx: entry %u (offset 0x%x, length %u) lies outside the metadata region",
					    path, (unsigned long long)at, i, off, ilen);
		for (uint16_t j = 0; j < i; j++) {
			const uint8_t *o = buf + VHDX_MDT_ENTRIES_OFF + (size_t)j * VHDX_MDT_ENTRY_SIZE;
			uint32_t ooff = get_le32(o + VHDX_MDE_OFFSET_OFF);
			uint32_t olen = get_le32(o + VHDX_MDE_LENGTH_OFF);
			uint32_t oflags = get_le32(o + VHDX_MDE_FLAGS_OFF);

			if (memcmp(o, e, 16) == 0 &&
			    (oflags & VHDX_MDE_IS_USER) == (flags & VHDX_MDE_IS_USER))
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: metadata table at 0x%llx: entry %u repeats the item of entry %u",
						    path, (unsigned long long)at, i, j);
			if (ilen && olen && off < (uint64_t)ooff + olen && ooff < (uint64_t)off + ilen)
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: metadata table at 0x%llx: entry %u overlaps entry %u",
						    path, (unsigned long long)at, i, j);
		}
		if (flags & VHDX_MDE_IS_USER) {
			if (++user > VHDX_MD_MAX_USER_ITEMS)
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: metadata table at 0x%llx: more than %d user items",
						    path, (unsigned long long)at, VHDX_MD_MAX_USER_ITEMS);
			continue; /* user metadata is carried, never interpreted */
		}
		for (k = 0; k < NKNOWN; k++)
			if (vhdx_guid_matches(e + VHDX_MDE_ITEM_ID_OFF, known_items[k].guid))
				break;
		if (k == NKNOWN) {
			struct vhdx_guid g;
			char s[VHDX_GUID_STR_LEN];

			if (!(flags & VHDX_MDE_IS_REQUIRED))
				continue;
			memcpy(g.b, e, 16);
			vhdx_guid_format(&g, s);
			return gp_error_set(err, GP_ERR_UNSUPPORTED,
					    "%s: metadata table at 0x%llx: entry %u is an unknown required item {%s}",
					    path, (unsigned long long)at, i, s);
		}
		if (known_items[k].length ? ilen != known_items[k].length : ilen == 0)
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: metadata item %s at 0x%llx: length %u is wrong", path,
					    known_items[k].name, (unsigned long long)item_at, ilen);
		found |= known_items[k].bit;
		switch (known_items[k].bit) {
		case MD_FILE_PARAMETERS: {
			uint32_t fl = get_le32(item + VHDX_FP_FLAGS_OFF);

			md->block_size = get_le32(item + VHDX_FP_BLOCK_SIZE_OFF);
			md->leave_block_allocated = fl & VHDX_FP_LEAVE_BLOCK_ALLOCATED;
			md->has_parent = fl & VHDX_FP_HAS_PARENT;
			if (md->block_size < VHDX_MIN_BLOCK_SIZE ||
			    md->block_size > VHDX_MAX_BLOCK_SIZE || !is_pow2(md->block_size))
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: metadata item file parameters at 0x%llx: block size %u is not a power of 2 in 1..256 MiB",
						    path, (unsigned long long)item_at, md->block_size);
			break;
		}
		case MD_VIRTUAL_DISK_SIZE:
			md->virtual_size = get_le64(item);
			break;
		case MD_VIRTUAL_DISK_ID:
			memcpy(md->disk_id.b, item, 16);
			break;
		case MD_LOGICAL_SECTOR_SIZE:
		case MD_PHYSICAL_SECTOR_SIZE: {
			uint32_t s = get_le32(item);

			if (s != 512 && s != 4096)
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: metadata item %s at 0x%llx: %u is neither 512 nor 4096",
						    path, known_items[k].name,
						    (unsigned long long)item_at, s);
			if (known_items[k].bit == MD_LOGICAL_SECTOR_SIZE)
				md->logical_sector_size = s;
			else
				md->physical_sector_size = s;
			break;
		}
		case MD_PARENT_LOCATOR:
			ret = locator_parse(path, item_at, item, ilen, &md->locator, err);
			if (ret) {
				vhdx_locator_free(&md->locator);
				return ret;
			}
			break;
		}
	}
	if ((found & MD_ALWAYS_REQUIRED) != MD_ALWAYS_REQUIRED) {
		for (size_t k = 0; k < NKNOWN; k++)
			if ((known_items[k].bit & MD_ALWAYS_REQUIRED) && !(found & known_items[k].bit)) {
				ret = gp_error_set(err, GP_ERR_CORRUPT,
						   "%s: metadata table at 0x%llx: required item %s is missing",
						   path, (unsigned long long)at, known_items[k].name);
				break;
			}
		vhdx_locator_free(&md->locator);
		return GP_ERR_CORRUPT;
	}
	if (md->has_parent && !(found & MD_PARENT_LOCATOR)) {
		vhdx_locator_free(&md->locator);
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: metadata table at 0x%llx: HasParent is set but there is no parent locator",
				    path, (unsigned long long)at);
	}
	if (md->virtual_size == 0 || md->virtual_size > VHDX_MAX_VIRTUAL_SIZE ||
	    md->virtual_size % md->logical_sector_size) {
		vhdx_locator_free(&md->locator);
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: metadata item virtual disk size at 0x%llx: %llu is not a non-zero multiple of the %u-byte sector up to 64 TiB",
				    path, (unsigned long long)at, (unsigned long long)md->virtual_size,
				    md->logical_sector_size);
	}
	return 0;
}

/* ---- serialize ---- */

static void put_entry(uint8_t *buf, int i, const char *guid, uint32_t off, uint32_t len,
		      uint32_t flags)
{
	uint8_t *e = buf + VHDX_MDT_ENTRIES_OFF + (size_t)i * VHDX_MDT_ENTRY_SIZE;
	struct vhdx_guid g;

	vhdx_guid_parse(guid, &g);
	memcpy(e + VHDX_MDE_ITEM_ID_OFF, g.b, 16);
	put_le32(e + VHDX_MDE_OFFSET_OFF, off);
	put_le32(e + VHDX_MDE_LENGTH_OFF, len);
	put_le32(e + VHDX_MDE_FLAGS_OFF, flags);
}

/* Serialize the parent locator at @p (capacity @cap); returns its length or -1. */
static long locator_serialize(const struct vhdx_parent_locator *l, uint8_t *p, size_t cap)
{
	static const char *keys[] = { "parent_linkage", "parent_linkage2", "relative_path",
				      "volume_path", "absolute_win32_path" };
	const char *vals[] = { l->parent_linkage, l->parent_linkage2, l->relative_path,
			       l->volume_path, l->absolute_win32_path };
	struct vhdx_guid g;
	uint16_t n = 0;
	size_t pos;

	for (size_t i = 0; i < 5; i++)
		n += vals[i] != NULL;
	pos = VHDX_PL_ENTRIES_OFF + (size_t)n * VHDX_PL_ENTRY_SIZE;
	if (pos > cap)
		return -1;
	memset(p, 0, pos);
	vhdx_guid_parse(VHDX_GUID_VHDX_LOCATOR_TYPE, &g);
	memcpy(p + VHDX_PL_LOCATOR_TYPE_OFF, g.b, 16);
	put_le16(p + VHDX_PL_KEY_VALUE_COUNT_OFF, n);
	n = 0;
	for (size_t i = 0; i < 5; i++) {
		uint8_t *e = p + VHDX_PL_ENTRIES_OFF + (size_t)n * VHDX_PL_ENTRY_SIZE;
		long kl, vl;

		if (!vals[i])
			continue;
		kl = vhdx_utf8_to_utf16(keys[i], p + pos, cap - pos);
		if (kl <= 0 || kl > 0xFFFF)
			return -1;
		put_le32(e + VHDX_PLE_KEY_OFFSET_OFF, (uint32_t)pos);
		put_le16(e + VHDX_PLE_KEY_LENGTH_OFF, (uint16_t)kl);
		pos += (size_t)kl;
		vl = vhdx_utf8_to_utf16(vals[i], p + pos, cap - pos);
		if (vl <= 0 || vl > 0xFFFF)
			return -1;
		put_le32(e + VHDX_PLE_VALUE_OFFSET_OFF, (uint32_t)pos);
		put_le16(e + VHDX_PLE_VALUE_LENGTH_OFF, (uint16_t)vl);
		pos += (size_t)vl;
		n++;
	}
	return (long)pos;
}

int vhdx_metadata_serialize(const struct vhdx_metadata *md, uint8_t *buf, size_t len)
{
	/* Items follow the 64 KiB table back to back, in the spec's order. */
	uint32_t off = VHDX_METADATA_TABLE_SIZE;
	const uint32_t vd_req = VHDX_MDE_IS_VIRTUAL_DISK | VHDX_MDE_IS_REQUIRED;
	int n = 0;

	if (len < 2 * VHDX_METADATA_TABLE_SIZE)
		return -1;
	memset(buf, 0, len);
	memcpy(buf + VHDX_MDT_SIGNATURE_OFF, VHDX_MDT_SIGNATURE, 8);

	put_le32(buf + off + VHDX_FP_BLOCK_SIZE_OFF, md->block_size);
	put_le32(buf + off + VHDX_FP_FLAGS_OFF,
		 (md->leave_block_allocated ? VHDX_FP_LEAVE_BLOCK_ALLOCATED : 0) |
			 (md->has_parent ? VHDX_FP_HAS_PARENT : 0));
	put_entry(buf, n++, VHDX_GUID_FILE_PARAMETERS, off, 8, VHDX_MDE_IS_REQUIRED);
	off += 8;
	put_le64(buf + off, md->virtual_size);
	put_entry(buf, n++, VHDX_GUID_VIRTUAL_DISK_SIZE, off, 8, vd_req);
	off += 8;
	memcpy(buf + off, md->disk_id.b, 16);
	put_entry(buf, n++, VHDX_GUID_VIRTUAL_DISK_ID, off, 16, vd_req);
	off += 16;
	put_le32(buf + off, md->logical_sector_size);
	put_entry(buf, n++, VHDX_GUID_LOGICAL_SECTOR_SIZE, off, 4, vd_req);
	off += 4;
	put_le32(buf + off, md->physical_sector_size);
	put_entry(buf, n++, VHDX_GUID_PHYSICAL_SECTOR_SIZE, off, 4, vd_req);
	off += 4;
	if (md->has_parent) {
		long pl = locator_serialize(&md->locator, buf + off, len - off);

		if (pl < 0 || pl > (long)VHDX_MD_ITEM_MAX_LENGTH)
			return -1;
		put_entry(buf, n++, VHDX_GUID_PARENT_LOCATOR, off, (uint32_t)pl, VHDX_MDE_IS_REQUIRED);
	}
	put_le16(buf + VHDX_MDT_ENTRY_COUNT_OFF, (uint16_t)n);
	return 0;
}
