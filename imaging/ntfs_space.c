/* ntfs_space.c — how many clusters a set of new and replaced files takes,
 * from the volume's real state, so that a run that passes the check never
 * runs out of space half-way (see gp_ntfs_space_check() in ntfsvol.h).
 *
 * What the volume spends on a file beyond its data, and where each figure
 * below comes from:
 *   - data: whole clusters per file; a small new file whose value fits in
 *     its MFT record beside the attributes ntfs_create() writes stays
 *     resident and takes none;
 *   - one MFT record per new file and directory, plus extension records for
 *     fragmented runlists; libntfs-3g reuses free records of the current
 *     $MFT allocation (from record 64 on, ntfs_mft_bitmap_find_free_rec())
 *     and otherwise grows $MFT by 16 records (at least a cluster) at a time
 *     (ntfs_mft_data_extend_allocation()), and the $MFT bitmap by one
 *     cluster at a time;
 *   - directory index entries: B+tree blocks are at least half full after
 *     a split, so entries take at most twice their size in index blocks, and
 *     each directory receiving entries may leave one block partly filled and
 *     take one more for a split or a new root level (rounded to clusters
 *     when index blocks are smaller than clusters);
 *   - new security descriptors: a new file or directory inherits its
 *     parent's ACEs, which may make (at most) one new descriptor for files
 *     and one for directories per directory receiving entries; $Secure keeps
 *     them in $SDS (256 KiB blocks, each followed by its mirror copy, so a
 *     full block makes the stream jump by 512 KiB) and indexes them in $SII
 *     and $SDH;
 *   - a fixed reserve for gpup's in-progress marker (a named stream on the
 *     root directory) and anything else that does not scale.
 * Every free cluster counts as "have": ntfs_alloc.c claims free runs
 * explicitly where libntfs-3g's own allocator would give up, the MFT zone
 * included.
 *
 * The margin. The estimate is an upper bound, so near the edge a package
 * that would just fit may be refused: by the fixed reserve (32 KiB), the
 * $Secure and index allowances (twice the entries, a split per index) and
 * the record rounding, which stays
 * below max(1 % of the payload, 4 MiB) for packages of up to some ten
 * thousand files (tests/ntfs/test_ntfs_space.c measures it). It never errs
 * the other way. */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"

/* Records libntfs-3g never allocates for files (mft.c). */
#define RESERVED_MFT_RECORDS 64
/* $MFT grows by this many records at a time (mft.c). */
#define MFT_GROW_RECORDS 16
/* Bytes of a new file's MFT record other than its data value and name:
 * record header with update sequence array (56), $STANDARD_INFORMATION
 * (96), $FILE_NAME without the name (90, aligned), $DATA header (24), end
 * marker (8), and a $SECURITY_DESCRIPTOR of up to 200 bytes when $Secure
 * is not used. Rounded up for safety. */
#define RECORD_FIXED 480
/* Index entry of a $FILE_NAME key: 16-byte entry header + 66-byte
 * FILE_NAME attribute, 8-byte aligned; the UTF-16 name comes on top. */
#define INDEX_ENTRY_FIXED (16u + 66u + 7u)
/* Bytes of an MFT record usable for mapping pairs in an extension record
 * (header, attribute header, end marker and some slack subtracted). */
#define EXT_RECORD_OVERHEAD 256
/* See the header comment. */
#define FIXED_RESERVE (32u << 10)
/* $SDS: blocks of 256 KiB, each followed by its mirror copy. */
#define SDS_BLOCK (256u << 10)
/* Upper bound of one inherited security descriptor in $SDS (header and
 * alignment included; Windows' System32 descriptor takes ~300 bytes). */
#define SD_MAX 1024u
/* An entry of $SII (40 bytes) or $SDH (48 bytes). */
#define SD_INDEX_ENTRY 48u
/* Bitmap bytes read per step. */
#define SCAN_BYTES (1u << 20)

static uint64_t round_up(uint64_t x, uint64_t to)
{
	return (x + to - 1) / to * to;
}

static uint64_t utf16_units(const char *name)
{
	uint64_t n = 0;

	/* Every UTF-8 sequence is one unit, four-byte ones two. */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if ((*p & 0xc0) != 0x80)
			n++;
		if ((*p & 0xf8) == 0xf0)
			n++;
	}
	return n;
}

void gp_ntfs_space_add_file(const struct gp_ntfs *v, struct gp_ntfs_space *s, const char *name,
			    uint64_t size, bool is_new, uint64_t old_allocated)
{
	uint64_t cs = v->vol->cluster_size, rec = v->vol->mft_record_size;
	uint64_t units = utf16_units(name), clusters = round_up(size, cs);

	s->payload += size;
	if (!is_new) {
		s->data += clusters > old_allocated ? clusters - old_allocated : 0;
		return;
	}
	s->n_files++;
	s->name_units += units;
	/* Stays resident in its record (ntfs_resident_attr_resize_i()). */
	if (size < rec && rec > RECORD_FIXED + 2 * units && size <= rec - RECORD_FIXED - 2 * units)
		return;
	s->data += clusters;
}

void gp_ntfs_space_add_dir(struct gp_ntfs_space *s, const char *name)
{
	s->n_dirs++;
	s->name_units += utf16_units(name);
}

/* Zero bits of @na in bits [@from, @to). */
static int count_free_bits(ntfs_attr *na, int64_t from, int64_t to, uint64_t *out)
{
	uint8_t *buf = malloc(SCAN_BYTES);
	uint64_t n = 0;

	if (!buf)
		return -1;
	for (int64_t at = from & ~(int64_t)7; at < to; at += (int64_t)SCAN_BYTES * 8) {
		int64_t bits = to - at < (int64_t)SCAN_BYTES * 8 ? to - at : (int64_t)SCAN_BYTES * 8;
		s64 bytes = (bits + 7) / 8;

		if (ntfs_attr_pread(na, at / 8, bytes, buf) != bytes) {
			free(buf);
			errno = EIO;
			return -1;
		}
		for (int64_t i = 0; i < bits; i++)
			if (at + i >= from && !((buf[i >> 3] >> (i & 7)) & 1))
				n++;
	}
	free(buf);
	*out = n;
	return 0;
}

/* Number of free runs in $Bitmap (a run is a maximal stretch of zeros). */
static int count_free_runs(ntfs_volume *vol, uint64_t *out)
{
	uint8_t *buf = malloc(SCAN_BYTES);
	int64_t nr = vol->nr_clusters;
	uint64_t runs = 0, prev_free = 0;

	if (!buf)
		return -1;
	for (int64_t at = 0; at < nr; at += (int64_t)SCAN_BYTES * 8) {
		int64_t bits = nr - at < (int64_t)SCAN_BYTES * 8 ? nr - at : (int64_t)SCAN_BYTES * 8;
		s64 bytes = (bits + 7) / 8;

		if (ntfs_attr_pread(vol->lcnbmp_na, at / 8, bytes, buf) != bytes) {
			free(buf);
			errno = EIO;
			return -1;
		}
		/* Pad the last word with "in use". */
		memset(buf + bytes, 0xff, (size_t)(round_up((uint64_t)bytes, 8) - (uint64_t)bytes));
		if (bits & 7)
			buf[bits / 8] |= (uint8_t)(0xff << (bits & 7));
		for (int64_t w = 0; w * 64 < bits; w++) {
			uint64_t f = ~get_le64(buf + w * 8);

			/* A run starts at a free bit whose predecessor is used. */
			runs += (uint64_t)__builtin_popcountll(f & ~((f << 1) | prev_free));
			prev_free = f >> 63;
		}
	}
	free(buf);
	*out = runs;
	return 0;
}

/* Bytes $Secure may grow by for @n_sd new security descriptors (0 when
 * the volume has no $Secure: descriptors then live in the files' records,
 * which RECORD_FIXED allows for). */
static uint64_t secure_growth(ntfs_volume *vol, uint64_t n_sd)
{
	static const ntfschar sds_name[] = { const_cpu_to_le16('$'), const_cpu_to_le16('S'),
					     const_cpu_to_le16('D'), const_cpu_to_le16('S') };
	uint64_t cs = vol->cluster_size, blk = vol->indx_record_size, last, pair, used, end, grow = 0;
	ntfs_attr *na;

	if (!n_sd || !vol->secure_ni)
		return 0;
	na = ntfs_attr_open(vol->secure_ni, AT_DATA, (ntfschar *)sds_name, 4);
	if (!na)
		return 2 * SDS_BLOCK + n_sd * SD_MAX; /* unknown layout: a new block pair */
	last = (uint64_t)na->data_size;
	pair = last ? (last - 1) / (2 * SDS_BLOCK) : 0;
	used = last > pair * 2 * SDS_BLOCK + SDS_BLOCK ? last - pair * 2 * SDS_BLOCK - SDS_BLOCK : 0;
	/* Appended to the last block (and its mirror), or, when that block
	 * is full, in the next pair. */
	if (used + n_sd * SD_MAX <= SDS_BLOCK)
		end = last + n_sd * SD_MAX;
	else
		end = (pair + 1) * 2 * SDS_BLOCK + SDS_BLOCK + n_sd * SD_MAX;
	if (round_up(end, cs) > (uint64_t)na->allocated_size)
		grow = round_up(end, cs) - (uint64_t)na->allocated_size;
	ntfs_attr_close(na);
	/* $SII and $SDH: half-full blocks, a split in each. */
	return grow + round_up(2 * 2 * n_sd * SD_INDEX_ENTRY, cs) + 2 * 2 * round_up(blk, cs);
}

/* Bytes one mapping pair can take on this volume: header byte, length and
 * offset as signed little-endian integers of up to the volume's size. */
static uint64_t pair_bytes(const ntfs_volume *vol)
{
	uint64_t n = 1;

	while (n < 8 && ((uint64_t)vol->nr_clusters >> (8 * n - 1)) != 0)
		n++;
	return 1 + 2 * n;
}

int gp_ntfs_space_check(struct gp_ntfs *v, struct gp_ntfs_space *s)
{
	ntfs_volume *vol = v->vol;
	uint64_t cs = vol->cluster_size, rec = vol->mft_record_size, blk = vol->indx_record_size;
	uint64_t free_recs = 0, free_runs = 0, items, entries, index, pieces, ext, recs, grow;
	uint64_t step, mft, mftbmp = 0, total_recs, bmp_need, meta;
	int64_t alloc_recs, lim;

	gp_error_clear(&v->err);
	s->have = gp_ntfs_free_bytes(v);
	/* Counts from a package listing; past 2^32 (no real package) the
	 * products below could wrap, so call it "more than there is". */
	if ((s->n_files | s->n_dirs | s->n_parents | s->name_units) >> 32) {
		s->meta = s->need = UINT64_MAX;
		goto refuse;
	}
	alloc_recs = vol->mft_na->allocated_size / (int64_t)rec;
	lim = vol->mftbmp_na->initialized_size * 8;
	if (lim > alloc_recs)
		lim = alloc_recs;
	if ((lim > RESERVED_MFT_RECORDS &&
	     count_free_bits(vol->mftbmp_na, RESERVED_MFT_RECORDS, lim, &free_recs)) ||
	    count_free_runs(vol, &free_runs))
		return gp_ntfs_fail(v, errno ? errno : EIO, "reading the allocation bitmaps");

	items = s->n_files + s->n_dirs;
	entries = items * INDEX_ENTRY_FIXED + 2 * s->name_units;
	index = 2 * entries + (s->n_dirs + s->n_parents) * 2 * blk;
	if (blk < cs)
		index += (s->n_dirs + s->n_parents) * cs;
	/* Runs the new data can be split into: every free run, cut once more
	 * at each file's end; each needs a mapping pair, and a runlist that
	 * outgrows its record takes extension records (the estimate counts
	 * them twice for the part-filled last record of each file). */
	pieces = free_runs + s->n_files + index / blk + 1;
	if (pieces > s->data / cs + s->n_files + index / blk + 1)
		pieces = s->data / cs + s->n_files + index / blk + 1;
	ext = 2 * ((pieces * pair_bytes(vol) + rec - EXT_RECORD_OVERHEAD - 1) /
		   (rec - EXT_RECORD_OVERHEAD));
	recs = items + ext;
	grow = recs > free_recs ? recs - free_recs : 0;
	/* One growth step more for $MFT's own extension record. */
	step = MFT_GROW_RECORDS * rec > cs ? MFT_GROW_RECORDS : cs / rec;
	grow = grow ? (grow + step - 1) / step * step + step : 0;
	mft = grow * rec;
	total_recs = (uint64_t)alloc_recs + grow;
	bmp_need = (total_recs + 7) / 8;
	if (grow && bmp_need > (uint64_t)vol->mftbmp_na->allocated_size)
		mftbmp = round_up(bmp_need - (uint64_t)vol->mftbmp_na->allocated_size, cs) + cs;
	/* Extension records' attribute lists may go non-resident. */
	meta = round_up(index, cs) + round_up(mft, cs) + mftbmp + round_up(ext * 40, cs) + ext / 16 * cs +
	       secure_growth(vol, 2 * (s->n_dirs + s->n_parents)) + FIXED_RESERVE;
	s->meta = meta;
	s->need = s->data + meta < s->data ? UINT64_MAX : s->data + meta;
	if (s->need <= s->have)
		return 0;
refuse:
	return gp_error_set(&v->err, GP_ERR_NOSPACE,
			    "%s: not enough free space in the guest volume: need %llu bytes, have %llu "
			    "(%llu of file data, %llu of NTFS metadata and reserve)",
			    v->where, (unsigned long long)s->need, (unsigned long long)s->have,
			    (unsigned long long)s->data, (unsigned long long)s->meta);
}
