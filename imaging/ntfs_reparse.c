/*
 * ntfs_reparse.c — NTFS junctions (mount-point reparse points) through
 * libntfs-3g. See gp_ntfs_make_junction() in ntfsvol.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "ntfsvol_priv.h"

/* After ntfsvol_priv.h: libntfs-3g's headers are not self-contained. */
#include <ntfs-3g/reparse.h>

/* REPARSE_DATA_BUFFER for IO_REPARSE_TAG_MOUNT_POINT (MS-FSCC 2.1.2.5):
 * tag, data length, reserved, then the MountPointReparseBuffer. */
#define RP_TAG 0
#define RP_DATA_LENGTH 4
#define RP_HEADER 8
#define MP_SUBST_OFFSET 8
#define MP_SUBST_LENGTH 10
#define MP_PRINT_OFFSET 12
#define MP_PRINT_LENGTH 14
#define MP_PATH_BUFFER 16
#define TAG_MOUNT_POINT 0xA0000003u
#define JUNCTION_MAX 4096

/* @s (ASCII) as UTF-16LE at @out; returns the bytes written. */
static size_t put_utf16(uint8_t *out, const char *s)
{
	size_t n = 0;

	for (; *s; s++, n += 2)
		put_le16(out + n, (uint8_t)*s);
	return n;
}

/* Open the inode of existing @path. */
static int open_path(struct gp_ntfs *v, const char *path, struct gp_ntfs_stat *st, ntfs_inode **ni)
{
	int ret = gp_ntfs_stat(v, path, st);

	if (ret)
		return ret;
	*ni = ntfs_inode_open(v->vol, st->mref);
	return *ni ? 0 : gp_ntfs_fail(v, errno, "%s: cannot open", path);
}

int gp_ntfs_junction_target(struct gp_ntfs *v, const char *path, char **target)
{
	struct gp_ntfs_stat st;
	uint8_t buf[JUNCTION_MAX];
	ntfs_inode *ni;
	uint16_t off, len;
	int n, ret;
	char *t;

	*target = NULL;
	ret = open_path(v, path, &st, &ni);
	if (ret)
		return ret;
	n = (st.attributes & GP_NTFS_ATTR_REPARSE) ? ntfs_get_ntfs_reparse_data(ni, (char *)buf,
										sizeof(buf)) : 0;
	ntfs_inode_close(ni);
	if (n < MP_PATH_BUFFER || (size_t)n > sizeof(buf) || get_le32(buf + RP_TAG) != TAG_MOUNT_POINT)
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s is not a junction", v->where, path);
	off = get_le16(buf + MP_PRINT_OFFSET);
	len = get_le16(buf + MP_PRINT_LENGTH);
	if ((size_t)MP_PATH_BUFFER + off + len > (size_t)n)
		return gp_error_set(&v->err, GP_ERR_CORRUPT, "%s: %s: print name outside its reparse data",
				    v->where, path);
	t = malloc(len / 2 + 1);
	if (!t)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < len / 2u; i++) {
		uint16_t c = get_le16(buf + MP_PATH_BUFFER + off + 2 * i);

		t[i] = c < 0x80 ? (char)c : '?';
	}
	t[len / 2] = '\0';
	*target = t;
	return 0;
}

int gp_ntfs_make_junction(struct gp_ntfs *v, const char *path, const char *target)
{
	uint8_t buf[JUNCTION_MAX] = { 0 };
	struct gp_ntfs_stat st;
	size_t subst, print;
	ntfs_inode *ni;
	int ret;

	if (strlen(target) * 4 + MP_PATH_BUFFER + 16 > sizeof(buf))
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: junction target too long", v->where);
	for (const char *c = target; *c; c++)
		if ((unsigned char)*c >= 0x80)
			return gp_error_set(&v->err, GP_ERR_INVALID, "%s: junction target '%s': ASCII only",
					    v->where, target);
	ret = gp_ntfs_mkdir_p(v, path);
	if (ret)
		return ret;
	/* The substitute name is the NT path; the print name what Windows
	 * shows (mklink /J writes them so). */
	subst = put_utf16(buf + MP_PATH_BUFFER, "\\??\\");
	subst += put_utf16(buf + MP_PATH_BUFFER + subst, target);
	print = put_utf16(buf + MP_PATH_BUFFER + subst + 2, target);
	put_le32(buf + RP_TAG, TAG_MOUNT_POINT);
	put_le16(buf + RP_DATA_LENGTH, (uint16_t)(MP_PATH_BUFFER - RP_HEADER + subst + 2 + print + 2));
	put_le16(buf + MP_SUBST_OFFSET, 0);
	put_le16(buf + MP_SUBST_LENGTH, (uint16_t)subst);
	put_le16(buf + MP_PRINT_OFFSET, (uint16_t)(subst + 2));
	put_le16(buf + MP_PRINT_LENGTH, (uint16_t)print);
	ret = gp_ntfs_begin_write(v);
	if (!ret)
		ret = open_path(v, path, &st, &ni);
	if (ret)
		return ret;
	if (ntfs_set_ntfs_reparse_data(ni, (const char *)buf, MP_PATH_BUFFER + subst + 2 + print + 2,
				       0)) {
		v->failed = true;
		ret = gp_ntfs_fail(v, errno, "%s: cannot make it a junction", path);
		ntfs_inode_close(ni);
		return ret;
	}
	if (gp_ntfs_inode_close(ni)) {
		v->failed = true;
		return gp_ntfs_fail(v, errno, "%s: cannot write its MFT record", path);
	}
	return 0;
}
