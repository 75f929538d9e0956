/*
 * vhdx_bat.c — block allocation table (MS-VHDX 2.5): geometry, chunk
 * interleave, entry validation.
 */
#include "le.h"
#include "vhdx_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vhdx_geometry_init(struct vhdx_geometry *g, uint64_t virtual_size, uint32_t block_size,
		       uint32_t lss, bool has_parent)
{
	if (!block_size || !lss || !virtual_size)
		return -1;
	memset(g, 0, sizeof(*g));
	g->virtual_size = virtual_size;
	g->block_size = block_size;
	g->logical_sector_size = lss;
	g->has_parent = has_parent;
	/* A sector bitmap block covers 2^23 sectors: chunk = 2^23 * sector size. */
	g->chunk_ratio = (VHDX_SECTORS_PER_BITMAP * lss) / block_size;
	if (g->chunk_ratio == 0)
		return -1;
	g->data_blocks = virtual_size / block_size + (virtual_size % block_size != 0);
	g->bitmap_blocks = g->data_blocks / g->chunk_ratio + (g->data_blocks % g->chunk_ratio != 0);
	if (has_parent)
		g->total_entries = g->bitmap_blocks * (g->chunk_ratio + 1);
	else
		g->total_entries = g->data_blocks + (g->data_blocks - 1) / g->chunk_ratio;
	return 0;
}

struct ext {
	uint64_t start, end;
	uint64_t idx; /* BAT index, or (UINT64_MAX - k) for fixed extent k */
};

static int ext_cmp(const void *a, const void *b)
{
	const struct ext *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static const char *ext_name(const struct ext *e, const struct vhdx_extent *fixed, char *buf,
			    size_t len)
{
	if (e->idx > UINT64_MAX - 64) {
		const struct vhdx_extent *f = &fixed[UINT64_MAX - e->idx];
		return f->what;
	}
	snprintf(buf, len, "entry %llu", (unsigned long long)e->idx);
	return buf;
}

int vhdx_bat_parse(const char *path, uint64_t bat_offset, const uint8_t *buf,
		   const struct vhdx_geometry *g, uint64_t file_size,
		   const struct vhdx_extent *fixed, size_t nfixed, uint64_t *bat,
		   struct gp_error *err)
{
	uint64_t n = g->total_entries, nalloc = 0, stride = g->chunk_ratio + 1;
	struct ext *ex;
	int ret = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t e = get_le64(buf + i * 8);
		bool is_bitmap = (i % stride) == g->chunk_ratio;
		unsigned st = vhdx_bat_state(e);
		uint64_t off = vhdx_bat_offset(e), need;

		bat[i] = e;
		if (is_bitmap) {
			if (st != VHDX_SB_NOT_PRESENT && !(st == VHDX_SB_PRESENT && g->has_parent))
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: BAT at 0x%llx: entry %llu: sector bitmap state %u is not valid for this disk type",
						    path, (unsigned long long)bat_offset,
						    (unsigned long long)i, st);
			if (st != VHDX_SB_PRESENT)
				continue;
			need = VHDX_SECTOR_BITMAP_BLOCK_SIZE;
		} else {
			uint64_t blk = i - i / stride, left;

			if (st == 4 || (st == VHDX_PAYLOAD_PARTIALLY_PRESENT && !g->has_parent))
				return gp_error_set(err, GP_ERR_CORRUPT,
						    "%s: BAT at 0x%llx: entry %llu: payload state %u is not valid for this disk type",
						    path, (unsigned long long)bat_offset,
						    (unsigned long long)i, st);
			if (blk >= g->data_blocks) {
				/* Entries past the last block (a differencing BAT's tail)
				 * must stay unallocated. */
				if (st == VHDX_PAYLOAD_FULLY_PRESENT ||
				    st == VHDX_PAYLOAD_PARTIALLY_PRESENT)
					return gp_error_set(err, GP_ERR_CORRUPT,
							    "%s: BAT at 0x%llx: entry %llu: allocated block past the virtual disk's end",
							    path, (unsigned long long)bat_offset,
							    (unsigned long long)i);
				continue;
			}
			if (st != VHDX_PAYLOAD_FULLY_PRESENT && st != VHDX_PAYLOAD_PARTIALLY_PRESENT)
				continue;
			if (st == VHDX_PAYLOAD_PARTIALLY_PRESENT) {
				uint64_t sb = vhdx_bat_bitmap_index(g, blk);
				uint64_t sbe = sb < n ? get_le64(buf + sb * 8) : 0;

				if (vhdx_bat_state(sbe) != VHDX_SB_PRESENT)
					return gp_error_set(err, GP_ERR_CORRUPT,
							    "%s: BAT at 0x%llx: entry %llu is partially present but its chunk has no sector bitmap",
							    path, (unsigned long long)bat_offset,
							    (unsigned long long)i);
			}
			left = g->virtual_size - blk * g->block_size;
			need = left < g->block_size ? left : g->block_size;
		}
		if (off < VHDX_HEADER_SECTION_SIZE || off > file_size || need > file_size - off)
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: BAT at 0x%llx: entry %llu: block at file offset 0x%llx lies %s",
					    path, (unsigned long long)bat_offset, (unsigned long long)i,
					    (unsigned long long)off,
					    off < VHDX_HEADER_SECTION_SIZE ? "in the header section"
									   : "beyond the end of the file");
		nalloc++;
	}

	/* Overlaps: sort every occupied range and compare neighbours. */
	ex = malloc((nalloc + nfixed) * sizeof(*ex) + sizeof(*ex));
	if (!ex)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	nalloc = 0;
	for (uint64_t i = 0; i < n; i++) {
		unsigned st = vhdx_bat_state(bat[i]);
		bool is_bitmap = (i % stride) == g->chunk_ratio;
		uint64_t off = vhdx_bat_offset(bat[i]);

		if (is_bitmap ? st != VHDX_SB_PRESENT
			      : (st != VHDX_PAYLOAD_FULLY_PRESENT &&
				 st != VHDX_PAYLOAD_PARTIALLY_PRESENT))
			continue;
		if (!is_bitmap && i - i / stride >= g->data_blocks)
			continue;
		ex[nalloc].start = off;
		ex[nalloc].end = off + (is_bitmap ? VHDX_SECTOR_BITMAP_BLOCK_SIZE : g->block_size);
		ex[nalloc].idx = i;
		nalloc++;
	}
	for (size_t k = 0; k < nfixed; k++) {
		ex[nalloc].start = fixed[k].start;
		ex[nalloc].end = fixed[k].end;
		ex[nalloc].idx = UINT64_MAX - k;
		nalloc++;
	}
	qsort(ex, nalloc, sizeof(*ex), ext_cmp);
	for (uint64_t k = 1; k < nalloc; k++) {
		/* The last block may be shorter than a block in the file; only a
		 * real intersection counts. */
		if (ex[k].start < ex[k - 1].end) {
			char a[40], b[40];
			const struct ext *x = &ex[k], *y = &ex[k - 1];

			if (x->idx > UINT64_MAX - 64) { /* name the BAT entry first */
				const struct ext *t = x;
				x = y;
				y = t;
			}
			ret = gp_error_set(err, GP_ERR_CORRUPT,
					   "%s: BAT at 0x%llx: %s (file offset 0x%llx) overlaps %s",
					   path, (unsigned long long)bat_offset,
					   ext_name(x, fixed, a, sizeof(a)), (unsigned long long)x->start,
					   ext_name(y, fixed, b, sizeof(b)));
			break;
		}
	}
	free(ex);
	return ret;
}

void vhdx_bat_serialize(const uint64_t *bat, uint64_t n, uint8_t *buf)
{
	for (uint64_t i = 0; i < n; i++)
		put_le64(buf + i * 8, bat[i]);
}
