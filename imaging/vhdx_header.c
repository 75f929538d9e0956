/*
 * vhdx_header.c — file type identifier (MS-VHDX 2.2.1), the two headers
 * (2.2.2) and GUID helpers.
 */
#include "crc32c.h"
#include "le.h"
#include "vhdx_priv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define VHDX_FILE_SIGNATURE "vhdxfile"
#define VHDX_HEADER_SIGNATURE "head"

/* ---- GUIDs ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int vhdx_guid_parse(const char *s, struct vhdx_guid *g)
{
	/* Textual order: Data1(4) Data2(2) Data3(2) - Data4(8). On disk the
	 * first three groups are little-endian, Data4 is stored as written. */
	uint8_t t[16];
	int n = 0;
	bool brace = false;

	if (*s == '{') {
		brace = true;
		s++;
	}
	for (; *s && n < 32; s++) {
		if (*s == '-')
			continue;
		int h = hexval((unsigned char)*s);
		if (h < 0)
			return -1;
		if (n % 2 == 0)
			t[n / 2] = (uint8_t)(h << 4);
		else
			t[n / 2] |= (uint8_t)h;
		n++;
	}
	if (n != 32)
		return -1;
	if (brace ? strcmp(s, "}") != 0 : *s != '\0')
		return -1;
	g->b[0] = t[3]; g->b[1] = t[2]; g->b[2] = t[1]; g->b[3] = t[0];
	g->b[4] = t[5]; g->b[5] = t[4];
	g->b[6] = t[7]; g->b[7] = t[6];
	memcpy(g->b + 8, t + 8, 8);
	return 0;
}

void vhdx_guid_format(const struct vhdx_guid *g, char out[VHDX_GUID_STR_LEN])
{
	const uint8_t *b = g->b;

	snprintf(out, VHDX_GUID_STR_LEN,
		 "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 get_le32(b), get_le16(b + 4), get_le16(b + 6), b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

bool vhdx_guid_is_zero(const struct vhdx_guid *g)
{
	static const struct vhdx_guid zero;

	return memcmp(g, &zero, sizeof(zero)) == 0;
}

bool vhdx_guid_eq(const struct vhdx_guid *a, const struct vhdx_guid *b)
{
	return memcmp(a->b, b->b, 16) == 0;
}

bool vhdx_guid_matches(const uint8_t *p, const char *s)
{
	struct vhdx_guid g;

	return vhdx_guid_parse(s, &g) == 0 && memcmp(p, g.b, 16) == 0;
}

void vhdx_guid_generate(struct vhdx_guid *g)
{
	uuid_t u;

	uuid_generate_random(u);
	memcpy(g->b, u, 16);
}

/* ---- file type identifier ---- */

int vhdx_file_id_parse(const char *path, const uint8_t *buf, size_t len, char **creator,
		       struct gp_error *err)
{
	size_t n = 0;

	*creator = NULL;
	if (len < VHDX_FILE_ID_CREATOR_OFF + VHDX_FILE_ID_CREATOR_LEN ||
	    memcmp(buf + VHDX_FILE_ID_SIGNATURE_OFF, VHDX_FILE_SIGNATURE, 8) != 0)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: file type identifier at 0x0: signature is not \"vhdxfile\"",
				    path);
	/* The creator is diagnostic only: a NUL-terminated (or full) UTF-16 string. */
	while (n + 1 < VHDX_FILE_ID_CREATOR_LEN &&
	       get_le16(buf + VHDX_FILE_ID_CREATOR_OFF + n) != 0)
		n += 2;
	if (n) {
		*creator = vhdx_utf16_to_utf8(buf + VHDX_FILE_ID_CREATOR_OFF, n);
		/* Undecodable text is not a reason to refuse the image. */
	}
	return 0;
}

void vhdx_file_id_serialize(uint8_t *buf, const char *creator)
{
	memset(buf, 0, 0x10000);
	memcpy(buf + VHDX_FILE_ID_SIGNATURE_OFF, VHDX_FILE_SIGNATURE, 8);
	/* Keep room for the terminating UTF-16 NUL. */
	vhdx_utf8_to_utf16(creator, buf + VHDX_FILE_ID_CREATOR_OFF, VHDX_FILE_ID_CREATOR_LEN - 2);
}

/* ---- headers ---- */

int vhdx_header_parse(const uint8_t *buf, struct vhdx_header *h, const char **why)
{
	uint8_t tmp[VHDX_HEADER_SIZE];

	if (memcmp(buf + VHDX_HDR_SIGNATURE_OFF, VHDX_HEADER_SIGNATURE, 4) != 0) {
		*why = "signature is not \"head\"";
		return -1;
	}
	memcpy(tmp, buf, sizeof(tmp));
	put_le32(tmp + VHDX_HDR_CHECKSUM_OFF, 0);
	if (crc32c(tmp, sizeof(tmp)) != get_le32(buf + VHDX_HDR_CHECKSUM_OFF)) {
		*why = "checksum mismatch";
		return -1;
	}
	h->sequence = get_le64(buf + VHDX_HDR_SEQUENCE_OFF);
	memcpy(h->file_write_guid.b, buf + VHDX_HDR_FILE_WRITE_GUID_OFF, 16);
	memcpy(h->data_write_guid.b, buf + VHDX_HDR_DATA_WRITE_GUID_OFF, 16);
	memcpy(h->log_guid.b, buf + VHDX_HDR_LOG_GUID_OFF, 16);
	h->log_version = get_le16(buf + VHDX_HDR_LOG_VERSION_OFF);
	h->version = get_le16(buf + VHDX_HDR_VERSION_OFF);
	h->log_length = get_le32(buf + VHDX_HDR_LOG_LENGTH_OFF);
	h->log_offset = get_le64(buf + VHDX_HDR_LOG_OFFSET_OFF);
	return 0;
}

void vhdx_header_serialize(const struct vhdx_header *h, uint8_t *buf)
{
	memset(buf, 0, VHDX_HEADER_SIZE);
	memcpy(buf + VHDX_HDR_SIGNATURE_OFF, VHDX_HEADER_SIGNATURE, 4);
	put_le64(buf + VHDX_HDR_SEQUENCE_OFF, h->sequence);
	memcpy(buf + VHDX_HDR_FILE_WRITE_GUID_OFF, h->file_write_guid.b, 16);
	memcpy(buf + VHDX_HDR_DATA_WRITE_GUID_OFF, h->data_write_guid.b, 16);
	memcpy(buf + VHDX_HDR_LOG_GUID_OFF, h->log_guid.b, 16);
	put_le16(buf + VHDX_HDR_LOG_VERSION_OFF, h->log_version);
	put_le16(buf + VHDX_HDR_VERSION_OFF, h->version);
	put_le32(buf + VHDX_HDR_LOG_LENGTH_OFF, h->log_length);
	put_le64(buf + VHDX_HDR_LOG_OFFSET_OFF, h->log_offset);
	put_le32(buf + VHDX_HDR_CHECKSUM_OFF, crc32c(buf, VHDX_HEADER_SIZE));
}
