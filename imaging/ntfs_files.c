/* ntfs_files.c — file operations on a mounted guest volume: path parsing,
 * Windows name rules, case-insensitive lookup, stat/list/read, mkdir -p,
 * put (streamed, preallocated, hashed), remove. See ntfsvol.h.
 *
 * Work is done by MFT reference: a path is resolved once to the directory's
 * reference, and tree copies pass that reference down instead of walking
 * the path again for every file. */
#include "ntfsvol_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <ntfs-3g/dir.h>
#include <ntfs-3g/index.h>
#include <ntfs-3g/ntfstime.h>
#include <ntfs-3g/unistr.h>

#include "le.h"

/* Longest NTFS file name, in UTF-16 units. */
#define NAME_MAX_UNITS 255
/* I/O chunk: a multiple of every cluster size NTFS allows up to 1 MiB. */
#define CHUNK (1u << 20)
/* Files up to this size may stay resident in their MFT record; no
 * clusters are needed for them. */
#define RESIDENT_MAX 600

/* ---- names ------------------------------------------------------------ */

/* Decode one UTF-8 sequence at @s; returns its length or 0 if invalid. */
static int utf8_decode(const unsigned char *s, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0 && (s[1] & 0xc0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
		return *cp >= 0x80 ? 2 : 0;
	}
	if ((s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
		return *cp >= 0x800 && (*cp < 0xd800 || *cp > 0xdfff) ? 3 : 0;
	}
	if ((s[0] & 0xf8) == 0xf0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
	    (s[3] & 0xc0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
		      ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
		return *cp >= 0x10000 && *cp <= 0x10ffff ? 4 : 0;
	}
	return 0;
}

/* UTF-8 → UTF-16LE (ntfschar). Returns the length in units, or -1 (invalid
 * UTF-8 or longer than @max units). */
int gp_ntfs_to_utf16(const char *s, ntfschar *out, int max)
{
	const unsigned char *p = (const unsigned char *)s;
	int n = 0;

	while (*p) {
		uint32_t cp;
		int l = utf8_decode(p, &cp);

		if (!l)
			return -1;
		p += l;
		if (cp >= 0x10000) {
			if (n + 2 > max)
				return -1;
			cp -= 0x10000;
			out[n++] = cpu_to_le16((u16)(0xd800 | (cp >> 10)));
			out[n++] = cpu_to_le16((u16)(0xdc00 | (cp & 0x3ff)));
		} else {
			if (n + 1 > max)
				return -1;
			out[n++] = cpu_to_le16((u16)cp);
		}
	}
	return n;
}

/* UTF-16LE → UTF-8 into @out (at least 4 * @len + 1 bytes). Unpaired
 * surrogates become U+FFFD. */
static void to_utf8(const ntfschar *in, int len, char *out)
{
	char *o = out;

	for (int i = 0; i < len; i++) {
		uint32_t cp = le16_to_cpu(in[i]);

		if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < len &&
		    le16_to_cpu(in[i + 1]) >= 0xdc00 && le16_to_cpu(in[i + 1]) <= 0xdfff) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (le16_to_cpu(in[i + 1]) - 0xdc00);
			i++;
		} else if (cp >= 0xd800 && cp <= 0xdfff) {
			cp = 0xfffd;
		}
		if (cp < 0x80) {
			*o++ = (char)cp;
		} else if (cp < 0x800) {
			*o++ = (char)(0xc0 | (cp >> 6));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			*o++ = (char)(0xe0 | (cp >> 12));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else {
			*o++ = (char)(0xf0 | (cp >> 18));
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		}
	}
	*o = '\0';
}

int gp_ntfs_check_name(const char *name, struct gp_error *err)
{
	static const char *const reserved[] = { "CON", "PRN", "AUX", "NUL" };
	ntfschar u[NAME_MAX_UNITS];
	size_t len = strlen(name), base;
	int n;

	if (len == 0)
		return gp_error_set(err, GP_ERR_INVALID, "empty file name");
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return gp_error_set(err, GP_ERR_INVALID, "'%s' is not a file name", name);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return gp_error_set(err, GP_ERR_INVALID,
					    "'%s': control character 0x%02x is not allowed in Windows file names",
					    name, *p);
		if (strchr("<>:\"/\\|?*", *p))
			return gp_error_set(err, GP_ERR_INVALID,
					    "'%s': character '%c' is not allowed in Windows file names",
					    name, *p);
	}
	if (name[len - 1] == '.' || name[len - 1] == ' ')
		return gp_error_set(err, GP_ERR_INVALID,
				    "'%s': Windows file names cannot end with a dot or a space", name);
	/* Device names are reserved with any extension: "nul.txt" is NUL. */
	base = strcspn(name, ".");
	while (base > 0 && name[base - 1] == ' ')
		base--;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (base == 3 && !strncasecmp(name, reserved[i], 3))
			return gp_error_set(err, GP_ERR_INVALID,
					    "'%s' is a reserved device name in Windows", name);
	if (base == 4 && (!strncasecmp(name, "COM", 3) || !strncasecmp(name, "LPT", 3)) &&
	    name[3] >= '1' && name[3] <= '9')
		return gp_error_set(err, GP_ERR_INVALID, "'%s' is a reserved device name in Windows",
				    name);
	n = gp_ntfs_to_utf16(name, u, NAME_MAX_UNITS);
	if (n < 0)
		return gp_error_set(err, GP_ERR_INVALID,
				    "'%s': not valid UTF-8, or longer than %d UTF-16 units", name,
				    NAME_MAX_UNITS);
	return 0;
}

/* ---- paths ------------------------------------------------------------ */

/* A parsed path: components, each a NUL-terminated slice of @buf. */
struct gpath {
	char *buf;
	char **comp;
	size_t n;
};

static void gpath_free(struct gpath *p)
{
	free(p->buf);
	free(p->comp);
}

/* Accept "C:\a\b", "/a/b", "a/b", "\a\b"; empty components and "." are
 * dropped, ".." is refused (no guessing what the caller meant). */
static int gpath_parse(struct gp_ntfs *v, const char *path, struct gpath *out)
{
	size_t len = strlen(path), cap = 1;
	char *s;

	memset(out, 0, sizeof(*out));
	out->buf = strdup(path);
	if (!out->buf)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
	s = out->buf;
	if (len >= 2 && ((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')) && s[1] == ':')
		s += 2;
	for (const char *q = s; *q; q++)
		if (*q == '/' || *q == '\\')
			cap++;
	out->comp = calloc(cap, sizeof(char *));
	if (!out->comp) {
		gpath_free(out);
		return gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
	}
	while (*s) {
		char *start;

		while (*s == '/' || *s == '\\')
			s++;
		if (!*s)
			break;
		start = s;
		while (*s && *s != '/' && *s != '\\')
			s++;
		if (*s)
			*s++ = '\0';
		if (!strcmp(start, "."))
			continue;
		if (!strcmp(start, "..")) {
			gpath_free(out);
			return gp_error_set(&v->err, GP_ERR_INVALID, "%s: guest path '%s': '..' is not allowed",
					    v->where, path);
		}
		out->comp[out->n++] = start;
	}
	return 0;
}

/* ---- lookup ----------------------------------------------------------- */

/* $INDEX_ROOT value: an INDEX_HEADER at 0x10, whose flags are at 0x0C. */
#define IR_INDEX_HEADER_OFF 0x10
#define IH_FLAGS_OFF 0x0C
#define IR_MIN_SIZE 0x20
#define IH_LARGE_INDEX 0x01

/*
 * Does directory @dir have index blocks ($INDEX_ALLOCATION) that its index
 * root does not reach (the root is not marked LARGE_INDEX)? libntfs-3g
 * turns a full root into a block in several writes (the new attributes in
 * the MFT record, the block, then the root pointing to it); a gpup run
 * killed in between leaves a complete root beside a block nothing points
 * to, which ntfs_readdir() still lists (stale copies of the root's
 * entries, or the entry being added) or fails to read. The root alone is
 * the directory then.
 */
static bool index_blocks_unreachable(ntfs_inode *dir)
{
	ntfs_attr_search_ctx *ctx;
	bool small = false;

	if (!ntfs_attr_exist(dir, AT_INDEX_ALLOCATION, NTFS_INDEX_I30, 4))
		return false;
	ctx = ntfs_attr_get_search_ctx(dir, NULL);
	if (!ctx)
		return false;
	if (!ntfs_attr_lookup(AT_INDEX_ROOT, NTFS_INDEX_I30, 4, CASE_SENSITIVE, 0, NULL, 0, ctx) &&
	    !ctx->attr->non_resident) {
		const uint8_t *a = (const uint8_t *)ctx->attr;
		uint32_t voff = le16_to_cpu(ctx->attr->value_offset);
		uint32_t vlen = le32_to_cpu(ctx->attr->value_length);

		if (vlen >= IR_MIN_SIZE && voff + vlen <= le32_to_cpu(ctx->attr->length))
			small = !(a[voff + IR_INDEX_HEADER_OFF + IH_FLAGS_OFF] & IH_LARGE_INDEX);
	}
	ntfs_attr_put_search_ctx(ctx);
	return small;
}

/* ntfs_readdir() over what @dir's index really holds. With unreachable
 * index blocks (index_blocks_unreachable()), @filldir must skip positions
 * from *@stop on (the blocks: ntfs_readdir() numbers root entries below
 * the MFT record size), and a failure to read those blocks is no failure.
 * Returns 0 or -1 with errno. */
static int readdir_reachable(ntfs_inode *dir, void *ctx, ntfs_filldir_t filldir, s64 *stop)
{
	bool root_only = index_blocks_unreachable(dir);
	s64 pos = 0;

	*stop = root_only ? (s64)dir->vol->mft_record_size : INT64_MAX;
	if (ntfs_readdir(dir, &pos, ctx, filldir) && !root_only)
		return -1;
	return 0;
}

/* Before changing @dir's index: drop the blocks its root does not reach
 * (index_blocks_unreachable()), so that libntfs-3g starts its next block
 * from a consistent index (it would keep the stale block in use beside
 * the new one). Returns 0 or a code recorded on @v. */
static int drop_unreachable_blocks(struct gp_ntfs *v, const char *path, ntfs_inode *dir)
{
	if (!index_blocks_unreachable(dir))
		return 0;
	if (ntfs_attr_remove(dir, AT_INDEX_ALLOCATION, NTFS_INDEX_I30, 4) ||
	    (ntfs_attr_exist(dir, AT_BITMAP, NTFS_INDEX_I30, 4) &&
	     ntfs_attr_remove(dir, AT_BITMAP, NTFS_INDEX_I30, 4))) {
		v->failed = true;
		return gp_ntfs_fail(v, errno, "%s: cannot drop the unreachable index blocks of its directory",
				    path);
	}
	return 0;
}

struct scan_ctx {
	ntfs_volume *vol;
	const ntfschar *name;
	int len;
	u64 mref;
	int matches;
	s64 stop;        /* readdir_reachable() */
};

static int scan_filldir(void *dirent, const ntfschar *name, const int name_len,
			const int name_type, const s64 pos, const MFT_REF mref,
			const unsigned dt_type)
{
	struct scan_ctx *c = dirent;

	(void)dt_type;
	(void)name_type;
	if (pos >= c->stop)
		return 0;
	if (ntfs_names_are_equal(name, (size_t)name_len, c->name, (size_t)c->len, IGNORE_CASE,
				 c->vol->upcase, c->vol->upcase_len)) {
		/* A Win32 name and its DOS alias of the same file are one match. */
		if (!c->matches || MREF(c->mref) != MREF(mref))
			c->matches++;
		c->mref = mref;
	}
	return 0;
}

/* Find @name (UTF-16) in directory @dir the way Windows does: letter case
 * ignored for every name type. The index lookup finds the exact spelling
 * fast; a miss is confirmed by a walk of the index around where the name
 * sorts (gp_ntfs_index_find_ci()), because libntfs-3g's case-insensitive
 * mode ignores case only for Win32 names (names created by ntfs-3g are
 * POSIX names) and lower-cases what ntfs_readdir() reports. A directory
 * whose root does not reach its blocks (index_blocks_unreachable()) is
 * scanned whole instead: rare, and its root alone is the directory.
 * Returns 0 and *@mref, or -1 with errno (ENOENT when absent, EEXIST when
 * several names differ only in case). */
int gp_ntfs_lookup_ci(ntfs_volume *vol, ntfs_inode *dir, const ntfschar *name, int len, u64 *mref)
{
	struct scan_ctx c = { .vol = vol, .name = name, .len = len };
	u64 m;

	m = ntfs_inode_lookup_by_name(dir, name, len);
	if (m != (u64)-1) {
		*mref = m;
		return 0;
	}
	if (errno != ENOENT)
		return -1;
	if (!index_blocks_unreachable(dir)) {
		if (gp_ntfs_index_find_ci(vol, dir, name, len, &c.matches, &c.mref))
			return -1;
	} else if (readdir_reachable(dir, &c, scan_filldir, &c.stop)) {
		return -1;
	}
	if (c.matches == 0) {
		errno = ENOENT;
		return -1;
	}
	if (c.matches > 1) {
		/* Case twins made by a case-sensitive writer: refuse to guess. */
		errno = EEXIST;
		return -1;
	}
	*mref = c.mref;
	return 0;
}

static bool inode_is_dir(ntfs_inode *ni)
{
	return (ni->mrec->flags & MFT_RECORD_IS_DIRECTORY) != 0;
}

/* ---- entries without their file --------------------------------------- */

/*
 * Does the directory entry naming @mref name no file? libntfs-3g adds a new
 * file's entry to its directory's index (written at once when the entry
 * lands in an index block) before it writes the file's MFT record (at
 * inode close), with no journal between them; a gpup run killed in
 * between, or whose host disk failed, leaves an entry naming a record that
 * is free, was never written, or was reused. True for exactly those states
 * of a record that was read without error (chkdsk deletes such entries);
 * false for a read error or a damaged record, which stay errors.
 */
static bool entry_dangles(struct gp_ntfs *v, u64 mref)
{
	ntfs_volume *vol = v->vol;
	u64 no = MREF(mref);
	MFT_RECORD *m;
	bool dangles = false;
	s64 pos;

	if (no < FILE_first_user || v->dev.err.code)
		return false;
	pos = (s64)(no << vol->mft_record_size_bits);
	if (pos >= vol->mft_na->data_size)
		return true; /* past the end of $MFT */
	m = malloc(vol->mft_record_size);
	if (!m)
		return false;
	/* ntfs_attr_mst_pread() leaves a record that fails its fixups marked
	 * BAAD, and reads an unwritten one as zeros. */
	if (ntfs_attr_mst_pread(vol->mft_na, pos, 1, vol->mft_record_size, m) == 1) {
		if (ntfs_is_file_record(m->magic))
			dangles = !(m->flags & MFT_RECORD_IN_USE) ||
				  (MSEQNO(mref) && MSEQNO(mref) != le16_to_cpu(m->sequence_number));
		else
			dangles = m->magic == const_cpu_to_le32(0);
	}
	free(m);
	return dangles;
}

/* Open the inode that an entry of @path names, as ntfs_inode_open(). An
 * entry without its file (entry_dangles()) is GP_ERR_NOTFOUND, and only
 * that: the name holds no file. */
static int open_entry(struct gp_ntfs *v, const char *path, u64 mref, ntfs_inode **out)
{
	int e;

	*out = ntfs_inode_open(v->vol, mref);
	if (*out)
		return 0;
	e = errno;
	if (entry_dangles(v, mref))
		return gp_error_set(&v->err, GP_ERR_NOTFOUND,
				    "%s: %s: no such file or directory (its directory entry names a free MFT record: an interrupted write)",
				    v->where, path);
	/* GP_ERR_NOTFOUND means a dangling entry to the callers. */
	return gp_ntfs_fail(v, e == ENOENT ? EIO : e, "%s: cannot open", path);
}

/* The exact on-disk names (every name type) under which a directory lists
 * one MFT reference. */
struct ref_name {
	ntfschar name[NAME_MAX_UNITS];
	u8 len, type;
};

struct ref_names {
	u64 mref;
	struct ref_name *e;
	size_t n, cap;
	int err;
	s64 stop;        /* readdir_reachable() */
};

static int ref_filldir(void *dirent, const ntfschar *name, const int name_len,
		       const int name_type, const s64 pos, const MFT_REF mref,
		       const unsigned dt_type)
{
	struct ref_names *c = dirent;

	(void)dt_type;
	if (pos >= c->stop || MREF(mref) != MREF(c->mref) || name_len <= 0 ||
	    name_len > NAME_MAX_UNITS)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4;
		struct ref_name *ne = realloc(c->e, cap * sizeof(*ne));

		if (!ne) {
			c->err = ENOMEM;
			return -1;
		}
		c->e = ne;
		c->cap = cap;
	}
	memcpy(c->e[c->n].name, name, (size_t)name_len * sizeof(ntfschar));
	c->e[c->n].len = (u8)name_len;
	c->e[c->n].type = (u8)name_type;
	c->n++;
	return 0;
}

/*
 * Remove from directory @dir_mref every entry naming @mref, an entry
 * without its file (entry_dangles()), the way ntfs_delete() takes a name
 * out of its directory's $I30 index, but without touching the MFT record,
 * which is not that file's. Writable volumes only; the volume is marked
 * dirty first, so chkdsk checks it at the next boot anyway.
 */
static int drop_dangling(struct gp_ntfs *v, const char *path, u64 dir_mref, u64 mref)
{
	struct ref_names c = { .mref = mref };
	FILE_NAME_ATTR *key = NULL;
	ntfs_inode *dir = NULL;
	int ret, e;

	/* Before opening @dir: the first change opens the root itself. */
	ret = gp_ntfs_begin_write(v);
	if (ret)
		return ret;
	dir = ntfs_inode_open(v->vol, dir_mref);
	if (!dir) {
		v->failed = true;
		return gp_ntfs_fail(v, errno, "%s: cannot open the parent directory", path);
	}
	/* The entry may sit in a block the index does not reach: then
	 * dropping those blocks removes it. */
	ret = drop_unreachable_blocks(v, path, dir);
	if (ret)
		goto out;
	if (readdir_reachable(dir, &c, ref_filldir, &c.stop) || c.err) {
		ret = gp_ntfs_fail(v, c.err ? c.err : errno, "%s: cannot read the parent directory", path);
		goto out;
	}
	key = calloc(1, sizeof(*key) + NAME_MAX_UNITS * sizeof(ntfschar));
	if (!key) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; !ret && i < c.n; i++) {
		ntfs_index_context *icx = ntfs_index_ctx_get(dir, NTFS_INDEX_I30, 4);
		int r = STATUS_ERROR;

		if (!icx) {
			ret = gp_ntfs_fail(v, errno, "%s: cannot read the parent's index", path);
			break;
		}
		/* The index collates FILE_NAME keys by name only. */
		key->parent_directory = MK_LE_MREF(dir->mft_no, le16_to_cpu(dir->mrec->sequence_number));
		key->file_name_length = c.e[i].len;
		key->file_name_type = c.e[i].type;
		memcpy(key->file_name, c.e[i].name, c.e[i].len * sizeof(ntfschar));
		/* ntfs_index_rm() may rebalance and ask for another lookup. */
		for (;;) {
			int klen = (int)(sizeof(*key) + c.e[i].len * sizeof(ntfschar));

			if (ntfs_index_lookup(key, klen, icx)) {
				e = errno;
				break;
			}
			if (MREF_LE(icx->entry->indexed_file) != MREF(mref)) {
				e = EEXIST; /* never take a live file's name away */
				break;
			}
			r = ntfs_index_rm(icx);
			e = errno;
			if (r != STATUS_KEEP_SEARCHING)
				break;
			ntfs_inode_mark_dirty(icx->actx->ntfs_ino);
			ntfs_index_ctx_reinit(icx);
		}
		if (r == STATUS_OK)
			ntfs_inode_mark_dirty(icx->actx->ntfs_ino);
		ntfs_index_ctx_put(icx);
		if (r != STATUS_OK)
			ret = gp_ntfs_fail(v, e, "%s: cannot remove its directory entry", path);
	}
out:
	free(key);
	free(c.e);
	if (gp_ntfs_inode_close(dir) && !ret)
		ret = gp_ntfs_fail(v, errno, "%s: cannot write the parent directory", path);
	if (ret)
		v->failed = true;
	return ret;
}

/* Resolve @p's first @depth components from the root to an MFT
 * reference. Errors recorded on @v with @path. */
static int resolve(struct gp_ntfs *v, const char *path, const struct gpath *p, size_t depth,
		   u64 *out)
{
	u64 mref = FILE_root;

	for (size_t i = 0; i < depth; i++) {
		ntfschar u[NAME_MAX_UNITS];
		int len = gp_ntfs_to_utf16(p->comp[i], u, NAME_MAX_UNITS);
		ntfs_inode *dir;
		int r, e = 0;

		if (len < 0)
			return gp_error_set(&v->err, GP_ERR_NOTFOUND, "%s: %s: no such file or directory",
					    v->where, path);
		r = open_entry(v, path, mref, &dir);
		if (r)
			return r;
		if (!inode_is_dir(dir)) {
			ntfs_inode_close(dir);
			return gp_error_set(&v->err, GP_ERR_NOTFOUND, "%s: %s: '%s' is not a directory",
					    v->where, path, p->comp[i - 1]);
		}
		r = gp_ntfs_lookup_ci(v->vol, dir, u, len, &mref);
		if (r)
			e = errno;
		ntfs_inode_close(dir);
		if (r && e == ENOENT)
			return gp_error_set(&v->err, GP_ERR_NOTFOUND, "%s: %s: no such file or directory",
					    v->where, path);
		if (r && e == EEXIST)
			return gp_error_set(&v->err, GP_ERR_CORRUPT,
					    "%s: %s: '%s' exists in several letter cases; Windows cannot tell them apart",
					    v->where, path, p->comp[i]);
		if (r)
			return gp_ntfs_fail(v, e, "%s: lookup of '%s'", path, p->comp[i]);
	}
	*out = mref;
	return 0;
}

static int resolve_path(struct gp_ntfs *v, const char *path, u64 *out)
{
	struct gpath p;
	int ret = gpath_parse(v, path, &p);

	if (ret)
		return ret;
	ret = resolve(v, path, &p, p.n, out);
	gpath_free(&p);
	return ret;
}

/* ---- stat / list / read ----------------------------------------------- */

static void fill_stat(ntfs_inode *ni, u64 mref, struct gp_ntfs_stat *st)
{
	struct timespec ts = ntfs2timespec(ni->last_data_change_time);

	memset(st, 0, sizeof(*st));
	st->mref = mref;
	st->is_dir = inode_is_dir(ni);
	st->attributes = le32_to_cpu(ni->flags) & 0xffff;
	if (st->is_dir) {
		st->attributes |= GP_NTFS_ATTR_DIRECTORY;
	} else {
		st->size = (uint64_t)ni->data_size;
		st->allocated = (uint64_t)ni->allocated_size;
	}
	st->mtime = ts.tv_sec;
	st->mtime_nsec = (uint32_t)ts.tv_nsec;
}

static int stat_mref(struct gp_ntfs *v, const char *path, u64 mref, struct gp_ntfs_stat *st)
{
	ntfs_inode *ni;
	int ret = open_entry(v, path, mref, &ni);

	if (ret)
		return ret;
	fill_stat(ni, mref, st);
	ntfs_inode_close(ni);
	return 0;
}

int gp_ntfs_stat(struct gp_ntfs *v, const char *path, struct gp_ntfs_stat *st)
{
	u64 mref;
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = resolve_path(v, path, &mref);

	return ret ? ret : stat_mref(v, path, mref, st);
}

struct list_ent {
	char *name;
	u64 mref;
};

struct list_ctx {
	struct list_ent *e;
	size_t n, cap;
	bool root;
	bool with_dos;   /* keep DOS aliases too (for deleting every link) */
	int err;
	s64 stop;        /* readdir_reachable() */
};

static int list_filldir(void *dirent, const ntfschar *name, const int name_len,
			const int name_type, const s64 pos, const MFT_REF mref,
			const unsigned dt_type)
{
	struct list_ctx *c = dirent;
	char *u8;

	(void)dt_type;
	if (pos >= c->stop)
		return 0;
	if (name_type == FILE_NAME_DOS && !c->with_dos)
		return 0;
	if (MREF(mref) < FILE_first_user && c->root)
		return 0; /* $MFT, $Bitmap, ... and the root's "." */
	u8 = malloc((size_t)name_len * 4 + 1);
	if (!u8) {
		c->err = ENOMEM;
		return -1;
	}
	to_utf8(name, name_len, u8);
	if (!strcmp(u8, ".") || !strcmp(u8, "..")) {
		free(u8);
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct list_ent *ne = realloc(c->e, cap * sizeof(*ne));

		if (!ne) {
			free(u8);
			c->err = ENOMEM;
			return -1;
		}
		c->e = ne;
		c->cap = cap;
	}
	c->e[c->n].name = u8;
	c->e[c->n].mref = mref;
	c->n++;
	return 0;
}

static void list_free(struct list_ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].name);
	free(c->e);
}

/* Read directory @mref's entries into @c (names UTF-8). */
static int read_dir(struct gp_ntfs *v, const char *path, u64 mref, struct list_ctx *c)
{
	ntfs_inode *dir;
	int r = open_entry(v, path, mref, &dir), e;

	if (r)
		return r;
	if (!inode_is_dir(dir)) {
		ntfs_inode_close(dir);
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s is not a directory", v->where, path);
	}
	c->root = MREF(mref) == FILE_root;
	r = readdir_reachable(dir, c, list_filldir, &c->stop);
	e = c->err ? c->err : errno;
	ntfs_inode_close(dir);
	if (r || c->err)
		return gp_ntfs_fail(v, e, "%s: cannot read the directory", path);
	return 0;
}

int gp_ntfs_list(struct gp_ntfs *v, const char *path, gp_ntfs_list_fn fn, void *ctx)
{
	struct list_ctx c = { 0 };
	u64 mref;
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = resolve_path(v, path, &mref);

	if (ret)
		return ret;
	ret = read_dir(v, path, mref, &c);
	for (size_t i = 0; !ret && i < c.n; i++) {
		struct gp_ntfs_stat st;

		ret = stat_mref(v, path, c.e[i].mref, &st);
		if (ret == GP_ERR_NOTFOUND) {
			/* An entry without its file (entry_dangles()) lists no
			 * file. */
			gp_error_clear(&v->err);
			ret = 0;
			continue;
		}
		if (!ret && fn(c.e[i].name, &st, ctx))
			ret = gp_error_set(&v->err, GP_ERR_ABORTED, "%s: listing %s stopped by the caller",
					   v->where, path);
	}
	list_free(&c);
	return ret;
}

/* Open the unnamed data of file @path: *@ni and *@na, closed by caller. */
static int open_data(struct gp_ntfs *v, const char *path, ntfs_inode **ni, ntfs_attr **na)
{
	u64 mref;
	int ret = resolve_path(v, path, &mref);

	if (ret)
		return ret;
	ret = open_entry(v, path, mref, ni);
	if (ret)
		return ret;
	if (inode_is_dir(*ni)) {
		ntfs_inode_close(*ni);
		return gp_error_set(&v->err, GP_ERR_ISDIR, "%s: %s is a directory", v->where, path);
	}
	*na = ntfs_attr_open(*ni, AT_DATA, AT_UNNAMED, 0);
	if (!*na) {
		ret = gp_ntfs_fail(v, errno, "%s: cannot open the data stream", path);
		ntfs_inode_close(*ni);
		return ret;
	}
	return 0;
}

int gp_ntfs_cat(struct gp_ntfs *v, const char *path, gp_ntfs_write_fn fn, void *ctx)
{
	ntfs_inode *ni;
	ntfs_attr *na;
	uint8_t *buf;
	s64 pos = 0;
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = open_data(v, path, &ni, &na);

	if (ret)
		return ret;
	buf = malloc(CHUNK);
	if (!buf) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	while (pos < na->data_size) {
		s64 want = na->data_size - pos < CHUNK ? na->data_size - pos : CHUNK;
		s64 got = ntfs_attr_pread(na, pos, want, buf);

		if (got <= 0) {
			ret = gp_ntfs_fail(v, got < 0 ? errno : EIO, "%s: read at %lld", path,
					   (long long)pos);
			break;
		}
		ret = fn(buf, (size_t)got, ctx);
		if (ret) {
			gp_error_set(&v->err, ret, "%s: %s: the output failed", v->where, path);
			break;
		}
		pos += got;
	}
	free(buf);
out:
	ntfs_attr_close(na);
	ntfs_inode_close(ni);
	return ret;
}

int gp_ntfs_read_file(struct gp_ntfs *v, const char *path, size_t max, void **out, size_t *len)
{
	ntfs_inode *ni;
	ntfs_attr *na;
	uint8_t *buf;
	s64 got;
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = open_data(v, path, &ni, &na);

	*out = NULL;
	*len = 0;
	if (ret)
		return ret;
	if ((uint64_t)na->data_size > max) {
		ret = gp_error_set(&v->err, GP_ERR_UNSUPPORTED, "%s: %s: %lld bytes is more than %zu",
				   v->where, path, (long long)na->data_size, max);
		goto out;
	}
	buf = malloc(na->data_size ? (size_t)na->data_size : 1);
	if (!buf) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	got = na->data_size ? ntfs_attr_pread(na, 0, na->data_size, buf) : 0;
	if (got != na->data_size) {
		ret = gp_ntfs_fail(v, got < 0 ? errno : EIO, "%s: read", path);
		free(buf);
		goto out;
	}
	*out = buf;
	*len = (size_t)got;
out:
	ntfs_attr_close(na);
	ntfs_inode_close(ni);
	return ret;
}

int gp_ntfs_get_sd(struct gp_ntfs *v, const char *path, void **sd, size_t *len)
{
	ntfs_inode *ni;
	u64 mref;
	int need, ret;
	char *buf;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = resolve_path(v, path, &mref);

	*sd = NULL;
	*len = 0;
	if (ret)
		return ret;
	ret = open_entry(v, path, mref, &ni);
	if (ret)
		return ret;
	need = ntfs_get_ntfs_acl(&v->scx, ni, NULL, 0);
	if (need <= 0) {
		ret = gp_ntfs_fail(v, need < 0 ? errno : ENODATA, "%s: no security descriptor", path);
		goto out;
	}
	buf = malloc((size_t)need);
	if (!buf) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (ntfs_get_ntfs_acl(&v->scx, ni, buf, (size_t)need) != need) {
		free(buf);
		ret = gp_ntfs_fail(v, errno, "%s: cannot read the security descriptor", path);
		goto out;
	}
	*sd = buf;
	*len = (size_t)need;
out:
	ntfs_inode_close(ni);
	return ret;
}

/* ---- creating --------------------------------------------------------- */

/* Find (case-insensitively) or, when @create, create the child @name of
 * directory @dir_mref; a created child is a directory when @isdir and
 * *@created says so. Returns 0 and *@out; GP_ERR_NOTFOUND without a
 * recorded message when absent and !@create; other codes recorded. */
static int child(struct gp_ntfs *v, const char *path, u64 dir_mref, const char *name, bool isdir,
		 bool create, u64 *out, bool *created)
{
	ntfschar u[NAME_MAX_UNITS];
	ntfs_inode *dir, *ni;
	int len, r, e;
	le32 securid;
	u64 mref;

	*created = false;
	if (create) {
		struct gp_error nerr = { 0 };

		if (gp_ntfs_check_name(name, &nerr))
			return gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s: %s", v->where, path,
					    nerr.msg);
	}
	len = gp_ntfs_to_utf16(name, u, NAME_MAX_UNITS);
	if (len < 0)
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s: '%s' is not a valid name",
				    v->where, path, name);
	dir = ntfs_inode_open(v->vol, dir_mref);
	if (!dir)
		return gp_ntfs_fail(v, errno, "%s: cannot open the parent directory", path);
	if (!inode_is_dir(dir)) {
		ntfs_inode_close(dir);
		return gp_error_set(&v->err, GP_ERR_EXISTS, "%s: %s: a parent is a file, not a directory",
				    v->where, path);
	}
	r = gp_ntfs_lookup_ci(v->vol, dir, u, len, &mref);
	e = errno;
	if (!r) {
		ntfs_inode_close(dir);
		*out = mref;
		return 0;
	}
	if (e == EEXIST) {
		ntfs_inode_close(dir);
		return gp_error_set(&v->err, GP_ERR_CORRUPT,
				    "%s: %s: '%s' exists in several letter cases; Windows cannot tell them apart",
				    v->where, path, name);
	}
	if (e != ENOENT || !create) {
		ntfs_inode_close(dir);
		/* Absent and not to be created: the caller decides (nothing
		 * recorded). */
		if (e == ENOENT)
			return GP_ERR_NOTFOUND;
		return gp_ntfs_fail(v, e, "%s: lookup of '%s'", path, name);
	}
	if (gp_ntfs_write_pending(v)) {
		/* The first change sets gpup's marker on the root directory,
		 * which opens that inode itself: @dir may be the root, and two
		 * open copies of one MFT record overwrite each other. */
		ntfs_inode_close(dir);
		r = gp_ntfs_begin_write(v);
		if (r)
			return r;
		dir = ntfs_inode_open(v->vol, dir_mref);
		if (!dir) {
			v->failed = true;
			return gp_ntfs_fail(v, errno, "%s: cannot open the parent directory", path);
		}
	}
	r = drop_unreachable_blocks(v, path, dir);
	if (r) {
		gp_ntfs_inode_close(dir);
		return r;
	}
	/* Windows gives a new file the ACEs its parent passes on. */
	securid = v->secure_open ? ntfs_inherited_id(&v->scx, dir, isdir) : 0;
	/* Compressed only inside a compressed directory, as on Windows. */
	if (dir->flags & FILE_ATTR_COMPRESSED)
		NVolSetCompression(v->vol);
	else
		NVolClearCompression(v->vol);
	ni = ntfs_create(dir, securid, u, (u8)len, isdir ? S_IFDIR : S_IFREG);
	e = errno;
	NVolClearCompression(v->vol);
	if (!ni) {
		gp_ntfs_inode_close(dir);
		v->failed = true;
		return gp_ntfs_fail(v, e, "%s: cannot create '%s'", path, name);
	}
	mref = MK_MREF(ni->mft_no, le16_to_cpu(ni->mrec->sequence_number));
	r = ntfs_inode_close_in_dir(ni, dir);
	e = errno;
	if (r)
		gp_ntfs_inode_close(ni); /* kept by libntfs-3g after the failure */
	if (gp_ntfs_inode_close(dir) && !r) {
		r = -1;
		e = errno;
	}
	if (r) {
		v->failed = true;
		return gp_ntfs_fail(v, e, "%s: cannot write '%s'", path, name);
	}
	*created = true;
	*out = mref;
	return 0;
}

/* mkdir -p of @p's first @depth components; *@out is the last one. */
static int mkdirs(struct gp_ntfs *v, const char *path, const struct gpath *p, size_t depth,
		  u64 *out)
{
	u64 mref = FILE_root;

	for (size_t i = 0; i < depth; i++) {
		bool created;
		ntfs_inode *ni;
		bool isdir;
		u64 parent = mref;
		int ret = child(v, path, parent, p->comp[i], true, true, &mref, &created);

		if (ret)
			return ret;
		if (created)
			continue;
		ret = open_entry(v, path, mref, &ni);
		if (ret == GP_ERR_NOTFOUND) {
			/* An entry without its directory: make it for real. */
			gp_error_clear(&v->err);
			ret = drop_dangling(v, path, parent, mref);
			if (!ret)
				ret = child(v, path, parent, p->comp[i], true, true, &mref, &created);
			if (ret)
				return ret;
			continue;
		}
		if (ret)
			return ret;
		isdir = inode_is_dir(ni);
		ntfs_inode_close(ni);
		if (!isdir)
			return gp_error_set(&v->err, GP_ERR_EXISTS, "%s: %s: '%s' is a file, not a directory",
					    v->where, path, p->comp[i]);
	}
	*out = mref;
	return 0;
}

int gp_ntfs_mkdir_p(struct gp_ntfs *v, const char *path)
{
	struct gpath p;
	u64 mref;
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = gpath_parse(v, path, &p);

	if (ret)
		return ret;
	ret = mkdirs(v, path, &p, p.n, &mref);
	gpath_free(&p);
	return ret;
}

static uint64_t clusters_for(const struct gp_ntfs *v, uint64_t size)
{
	if (size <= RESIDENT_MAX)
		return 0;
	return (size + v->vol->cluster_size - 1) / v->vol->cluster_size;
}

static int nospace(struct gp_ntfs *v, uint64_t need, uint64_t have)
{
	return gp_error_set(&v->err, GP_ERR_NOSPACE,
			    "%s: not enough free space in the guest volume: need %llu bytes, have %llu bytes",
			    v->where, (unsigned long long)need, (unsigned long long)have);
}

static int unlink_one(struct gp_ntfs *v, const char *path, u64 dir_mref, u64 mref,
		      const char *name);

/* Write @size bytes from @read_cb into the file named @name in directory
 * @dir_mref (created, or replaced in place). */
static int put_at(struct gp_ntfs *v, const char *path, u64 dir_mref, const char *name,
		  uint64_t size, int64_t mtime, gp_ntfs_read_fn read_cb, void *ctx,
		  uint8_t sha256_out[32])
{
	EVP_MD_CTX *md = NULL;
	ntfs_inode *ni = NULL;
	ntfs_attr *na = NULL;
	uint8_t *buf = NULL;
	uint64_t done = 0, have, need, old_clusters = 0;
	bool created, fresh = false, src_fail = false;
	u64 mref, dangling = 0;
	int ret;

	ret = child(v, path, dir_mref, name, false, false, &mref, &created);
	if (ret == GP_ERR_NOTFOUND) {
		mref = 0;
	} else if (ret) {
		return ret;
	}
	if (mref) {
		ret = open_entry(v, path, mref, &ni);
		if (ret == GP_ERR_NOTFOUND) {
			/* An entry without its file: the file is new. */
			gp_error_clear(&v->err);
			dangling = mref;
			mref = 0;
		} else if (ret) {
			return ret;
		}
	}
	if (ni) {
		if (inode_is_dir(ni)) {
			ntfs_inode_close(ni);
			return gp_error_set(&v->err, GP_ERR_EXISTS, "%s: %s is a directory", v->where, path);
		}
		old_clusters = (uint64_t)ni->allocated_size / v->vol->cluster_size;
	}
	/* The whole check happens before the first change. */
	need = clusters_for(v, size) * v->vol->cluster_size;
	have = gp_ntfs_free_bytes(v) + old_clusters * v->vol->cluster_size;
	if (need > have) {
		if (ni)
			ntfs_inode_close(ni);
		return nospace(v, need, have);
	}
	ret = gp_ntfs_begin_write(v);
	if (ret)
		goto out;
	if (dangling) {
		ret = drop_dangling(v, path, dir_mref, dangling);
		if (ret)
			return ret;
	}
	if (!ni) {
		ret = child(v, path, dir_mref, name, false, true, &mref, &created);
		if (ret)
			return ret;
		fresh = true;
		ni = ntfs_inode_open(v->vol, mref);
		if (!ni) {
			v->failed = true;
			return gp_ntfs_fail(v, errno, "%s: cannot open", path);
		}
	}
	na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
	if (!na) {
		ret = gp_ntfs_fail(v, errno, "%s: cannot open the data stream", path);
		goto out;
	}
	if (na->data_size && ntfs_attr_truncate(na, 0)) {
		ret = gp_ntfs_fail(v, errno, "%s: cannot truncate", path);
		goto out;
	}
	/* Preallocate: a full volume fails here, before any data is written,
	 * and the clusters come out where the placer wants them. */
	if (size && gp_ntfs_placer_allocate(v->placer, na, size)) {
		int e = errno;

		/* ENOSPC from the disk is the host file system, not the
		 * guest volume, being full: gp_ntfs_fail() says so. */
		if (e == ENOSPC && !v->dev.err.code)
			ret = nospace(v, need, gp_ntfs_free_bytes(v));
		else
			ret = gp_ntfs_fail(v, e, "%s: cannot allocate %llu bytes", path,
					   (unsigned long long)size);
		goto out;
	}
	buf = malloc(CHUNK);
	/* Hash only for a caller that wants the digest: SHA-256 of every
	 * byte costs as much as writing it (bench/RESULTS.md, "Profile"). */
	if (sha256_out)
		md = EVP_MD_CTX_new();
	if (!buf || (sha256_out && (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)))) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	while (done < size) {
		size_t want = size - done < CHUNK ? (size_t)(size - done) : CHUNK, fill = 0;

		/* Fill the whole chunk so writes stay large and cluster-aligned. */
		while (fill < want) {
			size_t got = 0;

			ret = read_cb(buf + fill, want - fill, &got, ctx);
			if (ret) {
				src_fail = true;
				gp_error_set(&v->err, ret, "%s: %s: reading the source failed", v->where, path);
				goto out;
			}
			if (got == 0)
				break;
			fill += got;
		}
		if (fill == 0) {
			src_fail = true;
			ret = gp_error_set(&v->err, GP_ERR_CORRUPT,
					   "%s: %s: the source ended after %llu of %llu bytes", v->where,
					   path, (unsigned long long)done, (unsigned long long)size);
			goto out;
		}
		if (ntfs_attr_pwrite(na, (s64)done, (s64)fill, buf) != (s64)fill) {
			ret = gp_ntfs_fail(v, errno ? errno : EIO, "%s: write at %llu", path,
					   (unsigned long long)done);
			goto out;
		}
		if (md)
			EVP_DigestUpdate(md, buf, fill);
		done += fill;
	}
	{
		size_t got = 0;
		uint8_t extra;

		ret = read_cb(&extra, 1, &got, ctx);
		src_fail = ret || got;
		if (!ret && got) {
			ret = gp_error_set(&v->err, GP_ERR_CORRUPT,
					   "%s: %s: the source is longer than the declared %llu bytes",
					   v->where, path, (unsigned long long)size);
			goto out;
		}
		if (ret) {
			gp_error_set(&v->err, ret, "%s: %s: reading the source failed", v->where, path);
			goto out;
		}
	}
	if (sha256_out)
		EVP_DigestFinal_ex(md, sha256_out, NULL);
	{
		struct timespec ts = { .tv_sec = mtime, .tv_nsec = 0 };

		ni->last_data_change_time = timespec2ntfs(ts);
		clock_gettime(CLOCK_REALTIME, &ts);
		ni->last_mft_change_time = timespec2ntfs(ts);
		ni->last_access_time = ni->last_mft_change_time;
		ntfs_inode_mark_dirty(ni);
		NInoFileNameSetDirty(ni);
	}
out:
	EVP_MD_CTX_free(md);
	free(buf);
	if (na)
		ntfs_attr_close(na);
	if (gp_ntfs_inode_close(ni)) {
		src_fail = false;   /* the volume failed, whatever the source did */
		if (!ret)
			ret = gp_ntfs_fail(v, errno, "%s: cannot write the MFT record", path);
	}
	if (ret) {
		/* A source that failed (unreadable, short, long) leaves the
		 * volume consistent, only this file's bytes incomplete; the
		 * caller may undo the run and say so (gp_ntfs_settle()).
		 * Anything else leaves the volume in doubt. */
		if (src_fail)
			v->source_failed = true;
		else
			v->failed = true;
		/* No half-written new file is left behind (the first error
		 * stays the one reported). */
		if (fresh && unlink_one(v, path, dir_mref, mref, name))
			v->failed = true;
	}
	return ret;
}

/* Parse @path as a file to create and make its parent directories; *@dir
 * is then the parent's MFT reference and @p holds the components (free
 * with gpath_free() after a 0 return). The file name is checked before any
 * directory is made, so a bad name leaves nothing behind. */
static int file_target(struct gp_ntfs *v, const char *path, struct gpath *p, u64 *dir)
{
	struct gp_error nerr = { 0 };
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = gpath_parse(v, path, p);
	if (ret)
		return ret;
	if (p->n == 0)
		ret = gp_error_set(&v->err, GP_ERR_INVALID, "%s: '%s' names the root, not a file",
				   v->where, path);
	else if (gp_ntfs_check_name(p->comp[p->n - 1], &nerr))
		ret = gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s: %s", v->where, path, nerr.msg);
	else
		ret = mkdirs(v, path, p, p->n - 1, dir);
	if (ret)
		gpath_free(p);
	return ret;
}

int gp_ntfs_put_stream(struct gp_ntfs *v, const char *path, uint64_t size, int64_t mtime,
		       gp_ntfs_read_fn read_cb, void *ctx, uint8_t sha256_out[32])
{
	struct gpath p;
	u64 dir;
	int ret = file_target(v, path, &p, &dir);

	if (ret)
		return ret;
	ret = put_at(v, path, dir, p.comp[p.n - 1], size, mtime, read_cb, ctx, sha256_out);
	gpath_free(&p);
	return ret;
}

static int fd_read(void *buf, size_t len, size_t *got, void *ctx)
{
	int fd = *(int *)ctx;

	for (;;) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return GP_ERR_IO;
		*got = (size_t)n;
		return 0;
	}
}

static int put_host_file(struct gp_ntfs *v, const char *host, const char *gpath_str, u64 dir,
			 const char *name)
{
	struct stat st;
	int fd, ret;

	fd = open(host, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gp_error_set_errno(&v->err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					  "%s", host);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ret = gp_error_set(&v->err, GP_ERR_INVALID, "%s: not a regular file", host);
		goto out;
	}
	ret = put_at(v, gpath_str, dir, name, (uint64_t)st.st_size, st.st_mtim.tv_sec, fd_read, &fd,
		     NULL);
	if (ret == GP_ERR_IO && strstr(v->err.msg, "reading the source"))
		gp_error_prefix(&v->err, "%s: ", host);
out:
	close(fd);
	return ret;
}

int gp_ntfs_put_file(struct gp_ntfs *v, const char *host_path, const char *guest_path)
{
	struct gpath p;
	u64 dir;
	int ret = file_target(v, guest_path, &p, &dir);

	if (ret)
		return ret;
	ret = put_host_file(v, host_path, guest_path, dir, p.comp[p.n - 1]);
	gpath_free(&p);
	return ret;
}

/* ---- trees ------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of host directory @path (not "." and ".."); caller frees. */
static int host_names(struct gp_ntfs *v, const char *path, char ***out, size_t *n)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char **names = NULL;
	size_t cap = 0;

	*n = 0;
	if (!d)
		return gp_error_set_errno(&v->err, GP_ERR_IO, errno, "%s", path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (*n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 32) * sizeof(*nn));

			if (!nn)
				goto nomem;
			names = nn;
		}
		names[*n] = strdup(de->d_name);
		if (!names[*n])
			goto nomem;
		(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(names, *n, sizeof(*names), cmp_str);
	*out = names;
	return 0;
nomem:
	closedir(d);
	for (size_t i = 0; i < *n; i++)
		free(names[i]);
	free(names);
	return gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

struct tree_ctx {
	const struct gp_progress *progress;
	struct gp_progress_info info;
	struct gp_ntfs_space *space; /* what the files take (gp_ntfs_space_check()) */
};

/* What guest @gpath (NULL: its parent does not exist) holds: *@st, or
 * GP_ERR_NOTFOUND; other failures are the volume's. */
static int guest_stat(struct gp_ntfs *v, const char *gpath, struct gp_ntfs_stat *st)
{
	int ret;

	if (!gpath)
		return GP_ERR_NOTFOUND;
	ret = gp_ntfs_stat(v, gpath, st);
	if (ret == GP_ERR_NOTFOUND)
		gp_error_clear(&v->err);
	return ret;
}

/* First pass: count, size, and check every name before anything changes,
 * and account the space the copy to guest @gpath takes: files and
 * directories there already are replaced or reused. *@parent_counted says
 * whether the (existing) parent directory is already counted as receiving
 * a new entry. */
static int tree_scan(struct gp_ntfs *v, const char *host, const char *name, const char *gpath,
		     bool *parent_counted, struct tree_ctx *t, unsigned depth)
{
	bool counted = false;
	struct gp_error nerr = { 0 };
	struct gp_ntfs_stat gst;
	struct stat st;
	char **names = NULL;
	size_t n = 0;
	int ret, g;

	if (depth > 64)
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: directories nested too deep", host);
	if (stat(host, &st) < 0)
		return gp_error_set_errno(&v->err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					  "%s", host);
	if (gp_ntfs_check_name(name, &nerr))
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s", host, nerr.msg);
	g = guest_stat(v, gpath, &gst);
	if (g && g != GP_ERR_NOTFOUND)
		return g;
	if (g && gpath && !*parent_counted) {
		t->space->n_parents++; /* a new entry in an existing directory */
		*parent_counted = true;
	}
	if (S_ISREG(st.st_mode)) {
		t->info.total_files++;
		t->info.total_bytes += (uint64_t)st.st_size;
		/* A directory of that name fails the put itself. */
		gp_ntfs_space_add_file(v, t->space, name, (uint64_t)st.st_size, g != 0,
				       g ? 0 : gst.allocated);
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return gp_error_set(&v->err, GP_ERR_INVALID,
				    "%s: only regular files and directories can be copied", host);
	if (g)
		gp_ntfs_space_add_dir(t->space, name);
	ret = host_names(v, host, &names, &n);
	for (size_t i = 0; !ret && i < n; i++) {
		char *sub, *gsub = NULL;

		if (asprintf(&sub, "%s/%s", host, names[i]) < 0 ||
		    (!g && asprintf(&gsub, "%s/%s", gpath, names[i]) < 0)) {
			ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
			break;
		}
		ret = tree_scan(v, sub, names[i], gsub, &counted, t, depth + 1);
		free(gsub);
		free(sub);
	}
	free_names(names, n);
	return ret;
}

static int tree_put(struct gp_ntfs *v, const char *host, const char *gdir_path, u64 gdir,
		    const char *name, struct tree_ctx *t)
{
	struct stat st;
	char *gpath_str;
	int ret;

	if (asprintf(&gpath_str, "%s\\%s", gdir_path, name) < 0)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
	if (stat(host, &st) < 0) {
		ret = gp_error_set_errno(&v->err, GP_ERR_IO, errno, "%s", host);
		goto out;
	}
	t->info.path = gpath_str;
	if (S_ISREG(st.st_mode)) {
		ret = gp_progress_call(t->progress, GP_PROGRESS_FILE, &t->info, &v->err);
		if (!ret)
			ret = put_host_file(v, host, gpath_str, gdir, name);
		if (!ret) {
			t->info.done_files++;
			t->info.done_bytes += (uint64_t)st.st_size;
			ret = gp_progress_call(t->progress, GP_PROGRESS_BYTES, &t->info, &v->err);
		}
	} else {
		char **names = NULL;
		size_t n = 0;
		bool created;
		u64 sub_mref;

		ret = child(v, gpath_str, gdir, name, true, true, &sub_mref, &created);
		if (!ret && !created) {
			struct gp_ntfs_stat gst;

			ret = stat_mref(v, gpath_str, sub_mref, &gst);
			if (ret == GP_ERR_NOTFOUND) {
				/* An entry without its directory: make it. */
				gp_error_clear(&v->err);
				ret = drop_dangling(v, gpath_str, gdir, sub_mref);
				if (!ret)
					ret = child(v, gpath_str, gdir, name, true, true, &sub_mref,
						    &created);
			} else if (!ret && !gst.is_dir)
				ret = gp_error_set(&v->err, GP_ERR_EXISTS, "%s: %s is a file, not a directory",
						   v->where, gpath_str);
		}
		if (!ret)
			ret = host_names(v, host, &names, &n);
		for (size_t i = 0; !ret && i < n; i++) {
			char *sub;

			if (asprintf(&sub, "%s/%s", host, names[i]) < 0) {
				ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
				break;
			}
			ret = tree_put(v, sub, gpath_str, sub_mref, names[i], t);
			free(sub);
		}
		free_names(names, n);
	}
out:
	t->info.path = NULL;
	free(gpath_str);
	return ret;
}

/* A copy of @host_path without trailing slashes ("dir/" copies "dir" as
 * "dir", like cp -r), and *@base its last component. NULL: no memory. */
static char *host_copy(const char *host_path, char **base)
{
	char *hcopy = strdup(host_path);
	size_t hl;

	if (!hcopy)
		return NULL;
	hl = strlen(hcopy);
	while (hl > 1 && hcopy[hl - 1] == '/')
		hcopy[--hl] = '\0';
	*base = strrchr(hcopy, '/');
	*base = *base ? *base + 1 : hcopy;
	return hcopy;
}

/* tree_scan() of @hcopy (named @base) into guest directory @guest_dir,
 * whose missing components count as new directories. */
static int tree_plan(struct gp_ntfs *v, const char *hcopy, const char *base,
		     const char *guest_dir, struct tree_ctx *t)
{
	struct gp_ntfs_stat st;
	struct gpath p;
	char *prefix = NULL, *gpath = NULL;
	bool exists = true, counted = false;
	int ret = gpath_parse(v, guest_dir, &p);

	if (ret)
		return ret;
	/* "" is the root; each level appended in turn. */
	prefix = strdup("");
	for (size_t i = 0; prefix && i < p.n && exists; i++) {
		char *next;

		if (asprintf(&next, "%s/%s", prefix, p.comp[i]) < 0)
			next = NULL;
		free(prefix);
		prefix = next;
		if (!prefix)
			break;
		ret = guest_stat(v, prefix, &st);
		if (ret == GP_ERR_NOTFOUND) {
			exists = false;
			ret = 0;
		} else if (ret) {
			goto out;
		}
	}
	if (!prefix) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* The missing levels of @guest_dir are created. */
	for (size_t i = 0; !exists && i < p.n; i++)
		gp_ntfs_space_add_dir(t->space, p.comp[i]);
	if (exists && asprintf(&gpath, "%s/%s", prefix, base) < 0) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* The deepest existing level receives the first new directory. */
	if (!exists)
		t->space->n_parents++;
	ret = tree_scan(v, hcopy, base, gpath, &counted, t, 0);
out:
	free(gpath);
	free(prefix);
	gpath_free(&p);
	return ret;
}

int gp_ntfs_put_tree_space(struct gp_ntfs *v, const char *host_path, const char *guest_dir,
			   struct gp_ntfs_space *space)
{
	struct tree_ctx t = { .space = space };
	char *base, *hcopy;
	int ret;

	gp_error_clear(&v->err);
	hcopy = host_copy(host_path, &base);
	if (!hcopy)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
	ret = tree_plan(v, hcopy, base, guest_dir, &t);
	free(hcopy);
	return ret;
}

int gp_ntfs_put_tree(struct gp_ntfs *v, const char *host_path, const char *guest_dir,
		     const struct gp_progress *progress)
{
	struct gp_ntfs_space space = { 0 };
	struct tree_ctx t = { .progress = progress, .info = { .stage = "put" }, .space = &space };
	struct gpath p;
	char *hcopy, *base, *shown;
	u64 dir;
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */

	hcopy = host_copy(host_path, &base);
	if (!hcopy)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
	ret = tree_plan(v, hcopy, base, guest_dir, &t);
	if (!ret)
		ret = gp_ntfs_space_check(v, &space);
	if (ret)
		goto out_h;
	ret = gpath_parse(v, guest_dir, &p);
	if (ret)
		goto out_h;
	ret = gp_progress_call(progress, GP_PROGRESS_BEGIN, &t.info, &v->err);
	if (!ret)
		ret = mkdirs(v, guest_dir, &p, p.n, &dir);
	shown = NULL;
	if (!ret) {
		/* Messages show the guest path in Windows form. */
		size_t len = 3;

		for (size_t i = 0; i < p.n; i++)
			len += strlen(p.comp[i]) + 1;
		shown = malloc(len);
		if (!shown) {
			ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		} else {
			strcpy(shown, "C:");
			for (size_t i = 0; i < p.n; i++) {
				strcat(shown, "\\");
				strcat(shown, p.comp[i]);
			}
		}
	}
	if (!ret)
		ret = tree_put(v, hcopy, shown, dir, base, &t);
	if (!ret)
		ret = gp_progress_call(progress, GP_PROGRESS_END, &t.info, &v->err);
	free(shown);
	gpath_free(&p);
out_h:
	free(hcopy);
	return ret;
}

/* ---- removing --------------------------------------------------------- */

/* Remove every link @name (exact on-disk name) of @mref from directory
 * @dir_mref; directories must already be empty. */
static int unlink_one(struct gp_ntfs *v, const char *path, u64 dir_mref, u64 mref,
		      const char *name)
{
	ntfschar u[NAME_MAX_UNITS];
	ntfs_inode *dir, *ni;
	int len = gp_ntfs_to_utf16(name, u, NAME_MAX_UNITS);

	if (len < 0)
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: %s: bad name", v->where, path);
	dir = ntfs_inode_open(v->vol, dir_mref);
	if (!dir)
		return gp_ntfs_fail(v, errno, "%s: cannot open the parent", path);
	ni = ntfs_inode_open(v->vol, mref);
	if (!ni) {
		int e = errno;

		ntfs_inode_close(dir);
		return gp_ntfs_fail(v, e, "%s: cannot open", path);
	}
	/* ntfs_delete() closes both inodes, also when it fails. */
	if (ntfs_delete(v->vol, NULL, ni, dir, u, (u8)len)) {
		v->failed = true;
		return gp_ntfs_fail(v, errno, "%s: cannot delete", path);
	}
	return 0;
}

static int remove_tree(struct gp_ntfs *v, const char *path, u64 dir_mref, u64 mref,
		       const char *name, unsigned depth)
{
	struct gp_ntfs_stat st;
	int ret = stat_mref(v, path, mref, &st);

	/* An entry without its file: only the entry is left to remove. */
	if (ret == GP_ERR_NOTFOUND) {
		gp_error_clear(&v->err);
		return drop_dangling(v, path, dir_mref, mref);
	}
	if (ret)
		return ret;
	if (depth > 256)
		return gp_error_set(&v->err, GP_ERR_CORRUPT, "%s: %s: directories nested too deep",
				    v->where, path);
	if (st.is_dir) {
		struct list_ctx c = { 0 };

		ret = read_dir(v, path, mref, &c);
		for (size_t i = 0; !ret && i < c.n; i++) {
			char *sub;

			if (asprintf(&sub, "%s\\%s", path, c.e[i].name) < 0) {
				ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
				break;
			}
			ret = remove_tree(v, sub, mref, c.e[i].mref, c.e[i].name, depth + 1);
			free(sub);
		}
		list_free(&c);
		if (ret)
			return ret;
	}
	return unlink_one(v, path, dir_mref, mref, name);
}

int gp_ntfs_remove(struct gp_ntfs *v, const char *path, bool recursive)
{
	struct gpath p;
	struct gp_ntfs_stat st;
	struct list_ctx c = { 0 };
	u64 dir, mref;
	char *stored = NULL;
	int ret;

	gp_error_clear(&v->err); /* each call reports its own failure */
	ret = gpath_parse(v, path, &p);

	if (ret)
		return ret;
	if (p.n == 0) {
		ret = gp_error_set(&v->err, GP_ERR_INVALID, "%s: refusing to remove the root directory",
				   v->where);
		goto out;
	}
	ret = resolve(v, path, &p, p.n - 1, &dir);
	if (!ret)
		ret = resolve(v, path, &p, p.n, &mref);
	if (!ret)
		ret = stat_mref(v, path, mref, &st);
	if (ret)
		goto out;
	if (st.is_dir && !recursive) {
		ret = gp_error_set(&v->err, GP_ERR_ISDIR, "%s: %s is a directory (remove it recursively)",
				   v->where, path);
		goto out;
	}
	ret = gp_ntfs_begin_write(v);
	if (ret)
		goto out;
	/* ntfs_delete() wants the name exactly as stored: find it among the
	 * parent's entries (the caller's letter case may differ). */
	ret = read_dir(v, path, dir, &c);
	for (size_t i = 0; !ret && i < c.n; i++) {
		ntfschar a[NAME_MAX_UNITS], b[NAME_MAX_UNITS];
		int la, lb;

		if (MREF(c.e[i].mref) != MREF(mref))
			continue;
		la = gp_ntfs_to_utf16(c.e[i].name, a, NAME_MAX_UNITS);
		lb = gp_ntfs_to_utf16(p.comp[p.n - 1], b, NAME_MAX_UNITS);
		if (la > 0 && lb > 0 &&
		    ntfs_names_are_equal(a, (size_t)la, b, (size_t)lb, IGNORE_CASE, v->vol->upcase,
					 v->vol->upcase_len)) {
			stored = c.e[i].name;
			break;
		}
	}
	if (!ret && !stored) {
		for (size_t i = 0; i < c.n; i++)
			if (MREF(c.e[i].mref) == MREF(mref)) {
				stored = c.e[i].name; /* reached through its 8.3 alias */
				break;
			}
	}
	if (!ret && !stored)
		ret = gp_error_set(&v->err, GP_ERR_NOTFOUND, "%s: %s: no such file or directory", v->where,
				   path);
	if (!ret)
		ret = remove_tree(v, path, dir, mref, stored, 0);
	list_free(&c);
out:
	gpath_free(&p);
	return ret;
}
