/* ntfs_alloc.c — compact placement of new file data.
 *
 * Why: libntfs-3g's allocator (lcnalloc.c) starts every new file at a
 * moving "zone position", which it advances to the end of each allocation
 * plus 4096 clusters, and inside the 32768-cluster window of bitmap it reads
 * at that position it takes the largest free run first. Copying a package
 * of many files therefore scatters them over the whole volume (1.3 GB
 * touched 223 of 256 32-MiB blocks of an 8 GiB volume), and a dynamic VHDX
 * allocates every block that receives a byte.
 *
 * What: before each file's clusters are allocated (and again after, for
 * the directory-index and MFT clusters that follow), the zone position is
 * set where the data should go. Only the position is steered; the
 * allocator itself still decides which free clusters it takes, so
 * correctness never depends on this file.
 *   1. Windows whose container blocks are all allocated already and which
 *      hold enough free clusters for the whole file: the allocator stays
 *      inside the window it starts in while the window has free clusters,
 *      so the file fills holes that cost the container nothing.
 *   2. Otherwise one region: the longest free run outside the MFT zone,
 *      started on a container-block boundary when it begins in an
 *      unallocated block, walked by a cursor so consecutive files land back
 *      to back.
 * Windows are 32768 clusters (the allocator's 4096-byte bitmap buffer),
 * aligned, and never overlap the MFT zone (positions there would make the
 * allocator search the MFT zone first). */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <stdlib.h>

#include <ntfs-3g/bitmap.h>
#include <ntfs-3g/runlist.h>

/* Clusters covered by one read of the allocator's bitmap buffer. */
#define WINDOW_CLUSTERS 32768
/* Clusters kept free in a window for the index/MFT growth a file causes. */
#define WINDOW_SLACK 8

struct window {
	LCN start;
	int64_t len;       /* clusters (the last window may be short) */
	int64_t nfree;     /* free clusters when last counted; only our own
	                    * allocations shrink it during a session */
};

struct gp_ntfs_placer {
	ntfs_volume *vol;
	LCN cursor;        /* phase 2: where the next file should start */
	LCN region_end;    /* end of the phase-2 region (exclusive) */
	struct window *w;  /* phase 1 candidates, by LCN */
	size_t nw;
	size_t wi;         /* first window that may still have room */
	uint8_t buf[WINDOW_CLUSTERS / 8];
};

static bool bit_set(const uint8_t *bm, int64_t lcn)
{
	return (bm[lcn >> 3] >> (lcn & 7)) & 1;
}

/* Are all container blocks backing volume clusters [lcn, lcn+n) allocated? */
static bool range_allocated(struct gp_disk *disk, uint64_t vol_offset, uint32_t csize, LCN lcn,
			    int64_t n)
{
	uint64_t off = vol_offset + (uint64_t)lcn * csize, end = off + (uint64_t)n * csize;

	while (off < end) {
		bool alloc = true;
		uint64_t run = 0;

		if (gp_disk_block_status(disk, off, end - off, &alloc, &run) || run == 0) {
			gp_disk_clear_error(disk);
			return false;
		}
		if (!alloc)
			return false;
		off += run;
	}
	return true;
}

static bool in_mft_zone(const ntfs_volume *vol, LCN start, int64_t len)
{
	return start < vol->mft_zone_end && start + len > vol->mft_zone_start;
}

/* Free clusters now in window @w (read from the volume's $Bitmap: the
 * plan's snapshot is stale once metadata has been allocated). */
static int64_t window_free(struct gp_ntfs_placer *p, const struct window *w)
{
	s64 bytes = (w->len + 7) / 8, got;
	int64_t n = 0;

	got = ntfs_attr_pread(p->vol->lcnbmp_na, w->start / 8, bytes, p->buf);
	if (got != bytes)
		return 0;
	for (int64_t i = 0; i < w->len / 8; i++)
		n += 8 - __builtin_popcount(p->buf[i]);
	for (int64_t i = w->len / 8 * 8; i < w->len; i++)
		n += !bit_set(p->buf, i);
	return n;
}

/* Point the library's allocator at @lcn. The allocator chooses the zone by
 * the position's value: data1 lies above the MFT zone, data2 below it. */
static void steer_to(struct gp_ntfs_placer *p, LCN lcn)
{
	p->vol->data1_zone_pos = lcn;
	if (lcn < p->vol->mft_zone_start)
		p->vol->data2_zone_pos = lcn;
}

/* Between files: metadata goes where the next data will go. */
static void steer_idle(struct gp_ntfs_placer *p)
{
	if (p->wi < p->nw)
		steer_to(p, p->w[p->wi].start);
	else if (p->cursor < p->region_end)
		steer_to(p, p->cursor);
}

struct gp_ntfs_placer *gp_ntfs_placer_new(ntfs_volume *vol, struct gp_disk *disk,
					  uint64_t vol_offset)
{
	struct gp_ntfs_placer *p;
	uint64_t unit = gp_disk_allocation_unit(disk);
	int64_t nr = vol->nr_clusters, bytes = (nr + 7) / 8;
	int64_t best_start = -1, best_len = 0, run_start = -1;
	uint32_t csize = vol->cluster_size;
	size_t cap = 0;
	uint8_t *bm;

	if (unit == 0 || nr <= 0 || csize == 0)
		return NULL;
	bm = malloc((size_t)bytes);
	p = calloc(1, sizeof(*p));
	if (!bm || !p || ntfs_attr_pread(vol->lcnbmp_na, 0, bytes, bm) != bytes)
		goto fail;
	p->vol = vol;
	/* Phase 2 region: the longest free run outside the MFT zone. Whole
	 * bytes that cannot change the state are skipped (volumes of
	 * terabytes have hundreds of millions of bits). */
	for (int64_t lcn = 0; lcn <= nr; lcn++) {
		bool free_here;

		if ((lcn & 7) == 0 && lcn + 8 <= nr && !in_mft_zone(vol, lcn, 8)) {
			uint8_t b = bm[lcn >> 3];

			if ((b == 0xff && run_start < 0) || (b == 0 && run_start >= 0)) {
				lcn += 7;
				continue;
			}
		}
		free_here = lcn < nr && !bit_set(bm, lcn) && !in_mft_zone(vol, lcn, 1);
		if (free_here && run_start < 0)
			run_start = lcn;
		if (!free_here && run_start >= 0) {
			if (lcn - run_start > best_len) {
				best_start = run_start;
				best_len = lcn - run_start;
			}
			run_start = -1;
		}
	}
	if (best_start >= 0) {
		p->cursor = best_start;
		p->region_end = best_start + best_len;
		/* Starting in an unallocated block: start on its boundary, so
		 * the block is not shared with whatever precedes the run. */
		if (!range_allocated(disk, vol_offset, csize, best_start, 1) && unit >= csize) {
			uint64_t per = unit / csize, base = vol_offset / csize;
			uint64_t aligned = ((base + (uint64_t)best_start + per - 1) / per) * per - base;

			if ((int64_t)aligned < p->region_end)
				p->cursor = (LCN)aligned;
		}
	}
	/* Phase 1: windows fully backed by allocated container blocks that
	 * have free clusters. */
	for (LCN w = 0; w < nr; w += WINDOW_CLUSTERS) {
		int64_t len = nr - w < WINDOW_CLUSTERS ? nr - w : WINDOW_CLUSTERS, nfree = 0;

		if (in_mft_zone(vol, w, len))
			continue;
		for (int64_t i = 0; i < len / 8; i++)
			nfree += 8 - __builtin_popcount(bm[(w >> 3) + i]);
		for (int64_t i = len / 8 * 8; i < len; i++)
			nfree += !bit_set(bm, w + i);
		if (nfree <= WINDOW_SLACK || !range_allocated(disk, vol_offset, csize, w, len))
			continue;
		if (p->nw == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct window *nw = realloc(p->w, ncap * sizeof(*nw));

			if (!nw)
				goto fail;
			p->w = nw;
			cap = ncap;
		}
		p->w[p->nw].start = w;
		p->w[p->nw].len = len;
		p->w[p->nw].nfree = nfree;
		p->nw++;
	}
	free(bm);
	if (best_start < 0 && p->nw == 0) {
		gp_ntfs_placer_free(p);
		return NULL;
	}
	steer_idle(p);
	return p;
fail:
	free(bm);
	gp_ntfs_placer_free(p);
	return NULL;
}

void gp_ntfs_placer_free(struct gp_ntfs_placer *p)
{
	if (!p)
		return;
	free(p->w);
	free(p);
}

int gp_ntfs_placer_allocate(struct gp_ntfs_placer *p, ntfs_attr *na, uint64_t size)
{
	struct window *chosen = NULL;
	int64_t need;
	bool phase1 = false;
	runlist_element *rl;
	int ret;

	if (!p)
		return ntfs_attr_truncate_solid(na, (s64)size);
	need = (int64_t)((size + p->vol->cluster_size - 1) / p->vol->cluster_size);
	/* Phase 1: the first window (by LCN) with room for the whole file.
	 * Windows that cannot even take a small file are retired. */
	for (size_t i = p->wi; i < p->nw; i++) {
		struct window *w = &p->w[i];

		if (w->nfree >= need + WINDOW_SLACK)
			w->nfree = window_free(p, w); /* confirm with the real bitmap */
		if (w->nfree <= WINDOW_SLACK && i == p->wi) {
			p->wi++;
			continue;
		}
		if (w->nfree >= need + WINDOW_SLACK) {
			steer_to(p, w->start);
			phase1 = true;
			chosen = w;
			break;
		}
	}
	if (!phase1 && p->cursor < p->region_end)
		steer_to(p, p->cursor);
	ret = ntfs_attr_truncate_solid(na, (s64)size);
	if (!ret && !phase1 && NAttrNonResident(na) && na->rl) {
		for (rl = na->rl; rl->length; rl++)
			if (rl->lcn >= 0 && rl->lcn + rl->length > p->cursor &&
			    rl->lcn + rl->length <= p->region_end)
				p->cursor = rl->lcn + rl->length;
	}
	if (chosen)
		chosen->nfree = window_free(p, chosen);
	/* Also after a failure: the allocator moved the position. */
	steer_idle(p);
	return ret;
}
