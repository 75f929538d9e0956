/*
 * ntfs_rename.c — gp_ntfs_rename(): give a file a new name in its own
 * directory, replacing what had that name, in steps a kill can stop
 * between without losing both (see ntfsvol.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ntfsvol_priv.h"

/* After ntfsvol_priv.h: libntfs-3g's headers are not self-contained. */
#include <ntfs-3g/dir.h>

/* One UTF-16 name component, as NTFS stores it. */
#define RENAME_NAME_UNITS 255

/* The directory part of @path ("a/b/c" -> "a/b", "c" -> ""), malloc'ed. */
static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/'), *b = strrchr(path, '\\');

	if (b && (!s || b > s))
		s = b;
	return s ? strndup(path, (size_t)(s - path)) : strdup("");
}

static const char *last_of(const char *path)
{
	const char *s = strrchr(path, '/'), *b = strrchr(path, '\\');

	if (b && (!s || b > s))
		s = b;
	return s ? s + 1 : path;
}

int gp_ntfs_rename(struct gp_ntfs *v, const char *from, const char *to)
{
	struct gp_ntfs_stat sf, sd, st;
	ntfschar u[RENAME_NAME_UNITS];
	char *dfrom = dir_of(from), *dto = dir_of(to);
	struct gp_error nerr = { 0 };
	ntfs_inode *ni = NULL, *dir = NULL;
	int len, ret;

	if (!dfrom || !dto) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	ret = gp_ntfs_stat(v, from, &sf);
	if (!ret && sf.is_dir)
		ret = gp_error_set(&v->err, GP_ERR_ISDIR, "%s: %s is a directory", v->where, from);
	if (!ret)
		ret = gp_ntfs_stat(v, dto, &sd);
	if (ret)
		goto out;
	if (gp_ntfs_stat(v, dfrom, &st) || st.mref != sd.mref) {
		ret = gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s and %s are not in one directory",
				   v->where, from, to);
		goto out;
	}
	if (gp_ntfs_check_name(last_of(to), &nerr)) {
		ret = gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s: %s", v->where, to, nerr.msg);
		goto out;
	}
	len = gp_ntfs_to_utf16(last_of(to), u, RENAME_NAME_UNITS);
	if (len <= 0) {
		ret = gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s: bad name", v->where, to);
		goto out;
	}
	/* 1. The old file of that name goes (a kill here leaves @from alone,
	 *    complete: the caller's reader falls back to it). */
	ret = gp_ntfs_stat(v, to, &st);
	if (ret == GP_ERR_NOTFOUND) {
		gp_ntfs_clear_error(v);
		ret = 0;
	} else if (!ret) {
		if (st.mref == sf.mref)
			/* Already linked there by an interrupted rename. */
			goto drop_from;
		ret = gp_ntfs_remove(v, to, false);
	}
	if (ret)
		goto out;
	ret = gp_ntfs_begin_write(v);
	if (ret)
		goto out;
	/* 2. The file gets its second name (both names reach it now)... */
	dir = ntfs_inode_open(v->vol, sd.mref);
	if (!dir) {
		ret = gp_ntfs_fail(v, errno, "%s: cannot open its directory", to);
		goto out;
	}
	ni = ntfs_inode_open(v->vol, sf.mref);
	if (!ni) {
		ret = gp_ntfs_fail(v, errno, "%s: cannot open", from);
		goto out;
	}
	if (ntfs_link(ni, dir, u, (u8)len)) {
		v->failed = true;
		ret = gp_ntfs_fail(v, errno, "%s: cannot link it as %s", from, to);
		goto out;
	}
	if (gp_ntfs_inode_close(ni)) {
		ni = NULL;
		v->failed = true;
		ret = gp_ntfs_fail(v, errno, "%s: cannot write its MFT record", to);
		goto out;
	}
	ni = NULL;
	if (gp_ntfs_inode_close(dir)) {
		dir = NULL;
		v->failed = true;
		ret = gp_ntfs_fail(v, errno, "%s: cannot write its directory", to);
		goto out;
	}
	dir = NULL;
drop_from:
	/* 3. ... and loses the old one. */
	ret = gp_ntfs_remove(v, from, false);
out:
	if (ni)
		ntfs_inode_close(ni);
	if (dir)
		ntfs_inode_close(dir);
	free(dfrom);
	free(dto);
	return ret;
}
