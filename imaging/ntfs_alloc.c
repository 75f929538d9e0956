/* ntfs_alloc.c — compact placement of new file data.
 *
 * Why: libntfs-3g's allocator starts every new file at a moving "zone
 * position" that it advances by the file's end plus 4096 clusters, and
 * inside a 32768-cluster bitmap window it takes the largest free run first.
 * Copying a package of many files therefore scatters them over the whole
 * volume (1.3 GB touched 223 of 256 32-MiB blocks of an 8 GiB volume), and a
 * dynamic VHDX allocates every block that receives a byte.
 *
 * What: before each file's clusters are allocated, the zone position is set
 * to a cursor that walks one region chosen up front, so consecutive files
 * land back to back:
 *   - the region is the longest free run outside the MFT zone, preferring a
 *     run that starts inside container blocks already allocated (free space
 *     there costs nothing) and otherwise starting it on a block boundary;
 *   - the cursor moves to the end of each file's last run.
 * The allocator still guarantees correctness (it only allocates free
 * clusters); the cursor only steers where it looks first. */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <stdlib.h>

#include <ntfs-3g/bitmap.h>
#include <ntfs-3g/runlist.h>

struct gp_ntfs_placer {
	ntfs_volume *vol;
	LCN cursor;       /* where the next file should start */
	LCN region_end;   /* end of the chosen region (exclusive) */
};

static void steer(struct gp_ntfs_placer *p);

static bool bit_set(const uint8_t *bm, int64_t lcn)
{
	return (bm[lcn >> 3] >> (lcn & 7)) & 1;
}

/* Is the container block holding volume cluster @lcn allocated? */
static bool lcn_allocated(struct gp_disk *disk, uint64_t vol_offset, uint32_t csize, int64_t lcn)
{
	bool alloc = true;
	uint64_t run;

	if (gp_disk_block_status(disk, vol_offset + (uint64_t)lcn * csize, csize, &alloc, &run)) {
		gp_disk_clear_error(disk);
		return true;
	}
	return alloc;
}

struct gp_ntfs_placer *gp_ntfs_placer_new(ntfs_volume *vol, struct gp_disk *disk,
					  uint64_t vol_offset)
{
	struct gp_ntfs_placer *p;
	uint64_t unit = gp_disk_allocation_unit(disk);
	int64_t nr = vol->nr_clusters, bytes = (nr + 7) / 8;
	int64_t best_start = -1, best_len = 0, run_start = -1;
	uint32_t csize = vol->cluster_size;
	uint8_t *bm;

	if (unit == 0 || nr <= 0)
		return NULL;
	bm = malloc((size_t)bytes);
	if (!bm)
		return NULL;
	if (ntfs_attr_pread(vol->lcnbmp_na, 0, bytes, bm) != bytes) {
		free(bm);
		return NULL;
	}
	/* Longest free run outside the MFT zone, scanning once. */
	for (int64_t lcn = 0; lcn <= nr; lcn++) {
		bool free_here = lcn < nr && !bit_set(bm, lcn) &&
				 (lcn < vol->mft_zone_start || lcn >= vol->mft_zone_end);

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
	free(bm);
	if (best_start < 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->vol = vol;
	p->cursor = best_start;
	p->region_end = best_start + best_len;
	/* A run starting in an unallocated block: start on the block boundary
	 * so no block is shared with the space before it needlessly. */
	if (!lcn_allocated(disk, vol_offset, csize, best_start) && csize && unit >= csize) {
		uint64_t per = unit / csize;
		uint64_t abs_c = (vol_offset / csize) + (uint64_t)best_start;
		uint64_t aligned = (abs_c + per - 1) / per * per - vol_offset / csize;

		if ((int64_t)aligned < p->region_end)
			p->cursor = (LCN)aligned;
	}
	steer(p);
	return p;
}

void gp_ntfs_placer_free(struct gp_ntfs_placer *p)
{
	free(p);
}

/* Point the library's allocator at the cursor. Also done between files:
 * directory index blocks and other metadata are allocated from the same
 * zone position, and the allocator moves it 4096 clusters past each
 * allocation; left there, the next file would start beyond a 16 MiB hole
 * (it takes the largest free run of its bitmap window). */
static void steer(struct gp_ntfs_placer *p)
{
	if (p->cursor >= p->region_end)
		return;
	/* The allocator chooses the zone by the position's value: data1
	 * starts at the end of the MFT zone, data2 is below it. */
	p->vol->data1_zone_pos = p->cursor;
	if (p->cursor < p->vol->mft_zone_start)
		p->vol->data2_zone_pos = p->cursor;
}

int gp_ntfs_placer_allocate(struct gp_ntfs_placer *p, ntfs_attr *na, uint64_t size)
{
	runlist_element *rl;
	int ret;

	if (!p)
		return ntfs_attr_truncate_solid(na, (s64)size);
	steer(p);
	ret = ntfs_attr_truncate_solid(na, (s64)size);
	if (ret || !NAttrNonResident(na) || !na->rl)
		return ret;
	for (rl = na->rl; rl->length; rl++)
		if (rl->lcn >= 0 && rl->lcn + rl->length > p->cursor &&
		    rl->lcn + rl->length <= p->region_end)
			p->cursor = rl->lcn + rl->length;
	steer(p);
	return 0;
}
