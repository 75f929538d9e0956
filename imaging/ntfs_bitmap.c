/* ntfs_bitmap.c — does $Bitmap tell the truth? (gp_ntfs_check_bitmap())
 *
 * Why: a volume whose $Bitmap marks clusters of live files as free mounts
 * fine and passes `ntfsfix -n`, and the allocator then hands those clusters
 * to new files: a prepare overwrote the guest's SYSTEM hive that way and
 * reported success. Only the MFT knows which clusters files own, so every
 * in-use record's non-resident attributes are read and their runs checked
 * against $Bitmap.
 *
 * How, fast: $MFT is read sequentially in large chunks through its own
 * runlist (no per-file path lookup, no inode opens), each record fixed up
 * and its attributes' mapping pairs decoded in place (extension records of
 * attribute lists included: they are records like any other). $Bitmap is
 * read once into memory; a second bitmap of the clusters files own gives
 * the leaked clusters (marked used, owned by nobody) at the end. Only the
 * first offending file's path is resolved, by walking its $FILE_NAME
 * parents. */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ntfs-3g/mst.h>
#include <ntfs-3g/unistr.h>

#include "le.h"

/* MFT_RECORD (NTFS 3.1) and ATTR_RECORD offsets. */
#define REC_MAGIC 0x00
#define REC_ATTRS_OFFSET 0x14
#define REC_FLAGS 0x16
#define REC_BYTES_IN_USE 0x18
#define REC_BASE 0x20
#define REC_IN_USE 0x0001
#define ATTR_TYPE 0x00
#define ATTR_LENGTH 0x04
#define ATTR_NON_RESIDENT 0x08
#define ATTR_VALUE_LENGTH 0x10      /* resident */
#define ATTR_VALUE_OFFSET 0x14      /* resident */
#define ATTR_MAPPING_PAIRS 0x20     /* non-resident */
#define ATTR_END 0xffffffffu
#define ATTR_FILE_NAME_TYPE 0x30
/* FILE_NAME_ATTR */
#define FN_PARENT 0x00
#define FN_NAME_LENGTH 0x40
#define FN_NAMESPACE 0x41
#define FN_NAME 0x42
#define FN_DOS 2
/* Bytes of $MFT read per step. */
#define MFT_CHUNK (4u << 20)
#define MREF_MASK 0xffffffffffffULL

struct bcheck {
	struct gp_ntfs *v;
	const uint8_t *bm;      /* $Bitmap */
	uint8_t *own;           /* clusters some file's runs cover */
	int64_t nr;             /* clusters */
	struct gp_ntfs_bitmap_report *rep;
	uint64_t record;        /* the record being decoded */
	uint64_t base;          /* its base record */
};

static bool bit(const uint8_t *b, int64_t i)
{
	return (b[i >> 3] >> (i & 7)) & 1;
}

/* Check clusters [lcn, lcn + len) of one run. */
static void check_run(struct bcheck *c, int64_t lcn, int64_t len)
{
	struct gp_ntfs_bitmap_report *r = c->rep;

	for (int64_t i = lcn; i < lcn + len;) {
		/* Whole bytes at once where possible. */
		if (!(i & 7) && lcn + len - i >= 8) {
			uint8_t b = c->bm[i >> 3];

			c->own[i >> 3] = 0xff;
			if (b == 0xff) {
				i += 8;
				continue;
			}
		}
		c->own[i >> 3] |= (uint8_t)(1u << (i & 7));
		if (!bit(c->bm, i)) {
			if (r->free_in_use == 0) {
				int64_t e = i;

				while (e < lcn + len && !bit(c->bm, e))
					e++;
				r->first_record = c->base;
				r->first_lcn = (uint64_t)i;
				r->first_count = (uint64_t)(e - i);
			}
			r->free_in_use++;
		}
		i++;
	}
}

/* Decode the mapping pairs at @p (@len bytes) and check every real run.
 * Returns 0 or GP_ERR_CORRUPT. */
static int check_pairs(struct bcheck *c, const uint8_t *p, size_t len)
{
	int64_t lcn = 0;
	size_t off = 0;

	while (off < len && p[off]) {
		unsigned ls = p[off] & 0xf, os = p[off] >> 4;
		int64_t rlen = 0, delta = 0;

		if (ls == 0 || ls > 8 || os > 8 || off + 1 + ls + os > len)
			return gp_error_set(&c->v->err, GP_ERR_CORRUPT,
					    "%s: MFT record %llu: malformed mapping pairs", c->v->where,
					    (unsigned long long)c->record);
		for (unsigned k = 0; k < ls; k++)
			rlen |= (int64_t)((uint64_t)p[off + 1 + k] << (8 * k));
		if (ls < 8 && (p[off + ls] & 0x80))
			rlen |= (int64_t)(~(uint64_t)0 << (8 * ls));
		if (os) {
			for (unsigned k = 0; k < os; k++)
				delta |= (int64_t)((uint64_t)p[off + 1 + ls + k] << (8 * k));
			if (os < 8 && (p[off + ls + os] & 0x80))
				delta |= (int64_t)(~(uint64_t)0 << (8 * os));
			lcn += delta;
			if (rlen <= 0 || lcn < 0 || lcn > c->nr || rlen > c->nr - lcn)
				return gp_error_set(&c->v->err, GP_ERR_CORRUPT,
						    "%s: MFT record %llu: a run of %lld clusters at %lld lies outside the volume",
						    c->v->where, (unsigned long long)c->record,
						    (long long)rlen, (long long)lcn);
			check_run(c, lcn, rlen);
		}
		off += 1 + ls + os;
	}
	return 0;
}

/* One fixed-up, in-use record of @size bytes. */
static int check_record(struct bcheck *c, const uint8_t *m, uint32_t size)
{
	uint32_t off = get_le16(m + REC_ATTRS_OFFSET), used = get_le32(m + REC_BYTES_IN_USE);

	if (used > size)
		used = size;
	c->base = get_le64(m + REC_BASE) & MREF_MASK;
	if (!c->base)
		c->base = c->record;
	while (off + 8 <= used) {
		uint32_t type = get_le32(m + off + ATTR_TYPE), alen;

		if (type == ATTR_END)
			break;
		alen = get_le32(m + off + ATTR_LENGTH);
		if (alen < 24 || alen > used - off || (alen & 7))
			return gp_error_set(&c->v->err, GP_ERR_CORRUPT,
					    "%s: MFT record %llu: attribute at %u has length %u",
					    c->v->where, (unsigned long long)c->record, off, alen);
		if (m[off + ATTR_NON_RESIDENT]) {
			uint16_t mp = alen >= ATTR_MAPPING_PAIRS + 2 ? get_le16(m + off + ATTR_MAPPING_PAIRS) : 0;
			int ret;

			if (mp < 0x40 || mp > alen)
				return gp_error_set(&c->v->err, GP_ERR_CORRUPT,
						    "%s: MFT record %llu: attribute at %u: mapping pairs at %u",
						    c->v->where, (unsigned long long)c->record, off, mp);
			ret = check_pairs(c, m + off + mp, alen - mp);
			if (ret)
				return ret;
		}
		off += alen;
	}
	return 0;
}

/* Read and fix up record @n into @buf (one record). */
static int read_record(struct gp_ntfs *v, uint64_t n, uint8_t *buf)
{
	ntfs_volume *vol = v->vol;
	s64 rs = vol->mft_record_size;

	if (ntfs_attr_pread(vol->mft_na, (s64)n * rs, rs, buf) != rs ||
	    ntfs_mst_post_read_fixup((NTFS_RECORD *)buf, (u32)rs))
		return gp_ntfs_fail(v, errno ? errno : EIO, "MFT record %llu", (unsigned long long)n);
	return 0;
}

/* "\dir\...\name" of base record @n into @out, from $FILE_NAME parents;
 * "MFT record N" when that fails. */
static void record_path(struct gp_ntfs *v, uint64_t n, char *out, size_t size)
{
	uint8_t *buf = malloc(v->vol->mft_record_size);
	char path[1024] = "";

	snprintf(out, size, "MFT record %llu", (unsigned long long)n);
	for (unsigned depth = 0; buf && n != FILE_root && depth < 64; depth++) {
		uint32_t off, used;
		const uint8_t *fn = NULL;
		char *name = NULL, tmp[1024];

		if (read_record(v, n, buf)) {
			gp_ntfs_clear_error(v);
			break;
		}
		off = get_le16(buf + REC_ATTRS_OFFSET);
		used = get_le32(buf + REC_BYTES_IN_USE);
		if (used > v->vol->mft_record_size)
			break;
		while (off + 24 <= used && get_le32(buf + off) != ATTR_END) {
			uint32_t alen = get_le32(buf + off + ATTR_LENGTH);

			if (alen < 24 || alen > used - off)
				break;
			if (get_le32(buf + off) == ATTR_FILE_NAME_TYPE && !buf[off + ATTR_NON_RESIDENT]) {
				uint32_t vo = get_le16(buf + off + ATTR_VALUE_OFFSET);
				uint32_t vl = get_le32(buf + off + ATTR_VALUE_LENGTH);

				if (vo + vl <= alen && vl >= FN_NAME &&
				    (uint32_t)FN_NAME + 2u * buf[off + vo + FN_NAME_LENGTH] <= vl &&
				    (!fn || fn[FN_NAMESPACE] == FN_DOS))
					fn = buf + off + vo;
			}
			off += alen;
		}
		if (!fn || ntfs_ucstombs((const ntfschar *)(fn + FN_NAME), fn[FN_NAME_LENGTH], &name, 0) < 0)
			break;
		snprintf(tmp, sizeof(tmp), "\\%s%s", name, path);
		free(name);
		memcpy(path, tmp, sizeof(path));
		n = get_le64(fn + FN_PARENT) & MREF_MASK;
		if (n == FILE_root)
			snprintf(out, size, "%s", path);
	}
	free(buf);
}

int gp_ntfs_check_bitmap(struct gp_ntfs *v, struct gp_ntfs_bitmap_report *rep)
{
	ntfs_volume *vol = v->vol;
	uint32_t rs = vol->mft_record_size;
	s64 bytes = (vol->nr_clusters + 7) / 8, total = vol->mft_na->initialized_size;
	struct bcheck c = { .v = v, .nr = vol->nr_clusters, .rep = rep };
	uint8_t *bm = malloc((size_t)bytes), *chunk = malloc(MFT_CHUNK);
	int ret = 0;

	gp_error_clear(&v->err);
	memset(rep, 0, sizeof(*rep));
	c.own = calloc(1, (size_t)bytes);
	if (!bm || !chunk || !c.own) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	c.bm = bm;
	if (ntfs_attr_pread(vol->lcnbmp_na, 0, bytes, bm) != bytes) {
		ret = gp_ntfs_fail(v, errno ? errno : EIO, "reading $Bitmap");
		goto out;
	}
	for (s64 pos = 0; !ret && pos < total; pos += MFT_CHUNK) {
		s64 want = total - pos < MFT_CHUNK ? total - pos : MFT_CHUNK;

		want -= want % rs;
		if (want == 0 || ntfs_attr_pread(vol->mft_na, pos, want, chunk) != want) {
			ret = gp_ntfs_fail(v, errno ? errno : EIO, "reading $MFT at %lld", (long long)pos);
			break;
		}
		for (s64 o = 0; !ret && o < want; o += rs) {
			uint8_t *m = chunk + o;

			c.record = (uint64_t)((pos + o) / rs);
			/* Free, never used or torn records own nothing. */
			if (get_le32(m + REC_MAGIC) != 0x454c4946 /* "FILE" */ ||
			    !(get_le16(m + REC_FLAGS) & REC_IN_USE) ||
			    ntfs_mst_post_read_fixup((NTFS_RECORD *)m, rs))
				continue;
			rep->records++;
			ret = check_record(&c, m, rs);
		}
	}
	if (ret)
		goto out;
	for (s64 i = 0; i < bytes; i++) {
		uint8_t lost = bm[i] & (uint8_t)~c.own[i];

		/* Bits past the last cluster are padding. */
		if (i == bytes - 1 && (vol->nr_clusters & 7))
			lost &= (uint8_t)((1u << (vol->nr_clusters & 7)) - 1);
		rep->leaked += (uint64_t)__builtin_popcount(lost);
	}
	if (rep->free_in_use) {
		record_path(v, rep->first_record, rep->first_path, sizeof(rep->first_path));
		ret = gp_error_set(&v->err, GP_ERR_CORRUPT,
				   "%s: NTFS $Bitmap marks clusters %llu-%llu of %s as free "
				   "(%llu clusters of files in all; run chkdsk /f in Windows)",
				   v->where, (unsigned long long)rep->first_lcn,
				   (unsigned long long)(rep->first_lcn + rep->first_count - 1),
				   rep->first_path, (unsigned long long)rep->free_in_use);
	}
out:
	free(c.own);
	free(chunk);
	free(bm);
	return ret;
}
