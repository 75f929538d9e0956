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

/* Are the @n 8-byte entries at @p all zero? (Zero in any byte order.) */
static bool bat_zero(const uint8_t *p, uint64_t n)
{
	uint64_t acc = 0;

	for (uint64_t i = 0; i < n; i++)
		acc |= get_le64(p + i * 8);
	return acc == 0;
}

int vhdx_bat_parse(const char *path, uint64_t bat_offset, const uint8_t *buf,
		   const struct vhdx_geometry *g, uint64_t file_size,
		   const struct vhdx_extent *fixed, size_t nfixed, uint64_t *alloc_end,
		   struct gp_error *err)
{
	uint64_t n = g->total_entries, nalloc = 0, blk = 0, cap = 64;
	struct ext *ex = malloc(cap * sizeof(*ex));
	int ret = 0;

	*alloc_end = 0;
	if (!ex)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	/* k counts position within a chunk's group of chunk_ratio payload
	 * entries followed by one sector-bitmap entry (no division per entry). */
	for (uint64_t i = 0, k = 0; i < n; i++, k = k == g->chunk_ratio ? 0 : k + 1) {
		uint64_t e;

		/* A whole chunk group of zero entries (NOT_PRESENT payload, no
		 * sector bitmap) needs no checks: a new 2 TiB disk is nothing
		 * else, and this was 8 % of `gpup inspect` (bench/RESULTS.md). */
		if (k == 0 && n - i > g->chunk_ratio && bat_zero(buf + i * 8, g->chunk_ratio + 1)) {
			blk += g->chunk_ratio;
			i += g->chunk_ratio;
			k = g->chunk_ratio;
			continue;
		}
		e = get_le64(buf + i * 8);
		unsigned st = vhdx_bat_state(e);
		uint64_t off = vhdx_bat_offset(e), need, span;

		if (k == g->chunk_ratio) { /* sector bitmap entry */
			if (st != VHDX_SB_NOT_PRESENT && !(st == VHDX_SB_PRESENT && g->has_parent)) {
				ret = gp_error_set(err, GP_ERR_CORRUPT,
						   "%s: BAT at 0x%llx: entry %llu: sector bitmap state %u is not valid for this disk type",
						   path, (unsigned long long)bat_offset,
						   (unsigned long long)i, st);
				goto out;
			}
			if (st != VHDX_SB_PRESENT)
				continue;
			need = span = VHDX_SECTOR_BITMAP_BLOCK_SIZE;
		} else {
			uint64_t b = blk++, left;

			if (st == 0 || st == VHDX_PAYLOAD_ZERO || st == VHDX_PAYLOAD_UNDEFINED ||
			    st == VHDX_PAYLOAD_UNMAPPED || st == VHDX_PAYLOAD_UNMAPPED_V095)
				continue;
			if (st == 4 || (st == VHDX_PAYLOAD_PARTIALLY_PRESENT && !g->has_parent)) {
				ret = gp_error_set(err, GP_ERR_CORRUPT,
						   "%s: BAT at 0x%llx: entry %llu: payload state %u is not valid for this disk type",
						   path, (unsigned long long)bat_offset,
						   (unsigned long long)i, st);
				goto out;
			}
			if (b >= g->data_blocks) {
				/* Entries past the last block (a differencing BAT's
				 * tail) must stay unallocated. */
				ret = gp_error_set(err, GP_ERR_CORRUPT,
						   "%s: BAT at 0x%llx: entry %llu: allocated block past the virtual disk's end",
						   path, (unsigned long long)bat_offset,
						   (unsigned long long)i);
				goto out;
			}
			if (st == VHDX_PAYLOAD_PARTIALLY_PRESENT) {
				uint64_t sb = vhdx_bat_bitmap_index(g, b);
				uint64_t sbe = sb < n ? get_le64(buf + sb * 8) : 0;

				if (vhdx_bat_state(sbe) != VHDX_SB_PRESENT) {
					ret = gp_error_set(err, GP_ERR_CORRUPT,
							   "%s: BAT at 0x%llx: entry %llu is partially present but its chunk has no sector bitmap",
							   path, (unsigned long long)bat_offset,
							   (unsigned long long)i);
					goto out;
				}
			}
			/* The last block may be short in the file. */
			left = g->virtual_size - b * g->block_size;
			need = left < g->block_size ? left : g->block_size;
			span = g->block_size;
		}
		if (off < VHDX_HEADER_SECTION_SIZE || off > file_size || need > file_size - off) {
			ret = gp_error_set(err, GP_ERR_CORRUPT,
					   "%s: BAT at 0x%llx: entry %llu: block at file offset 0x%llx lies %s",
					   path, (unsigned long long)bat_offset, (unsigned long long)i,
					   (unsigned long long)off,
					   off < VHDX_HEADER_SECTION_SIZE ? "in the header section"
									  : "beyond the end of the file");
			goto out;
		}
		if (nalloc == cap) {
			struct ext *nx = realloc(ex, 2 * cap * sizeof(*ex));
			if (!nx) {
				ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
				goto out;
			}
			ex = nx;
			cap *= 2;
		}
		ex[nalloc++] = (struct ext){ off, off + span, i };
		if (off + span > *alloc_end)
			*alloc_end = off + span;
	}
	/* Overlaps: sort every occupied range and compare neighbours. */
	{
		struct ext *nx = realloc(ex, (nalloc + nfixed + 1) * sizeof(*ex));
		if (!nx) {
			ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
			goto out;
		}
		ex = nx;
	}
	for (size_t k = 0; k < nfixed; k++)
		ex[nalloc++] = (struct ext){ fixed[k].start, fixed[k].end, UINT64_MAX - k };
	qsort(ex, nalloc, sizeof(*ex), ext_cmp);
	for (uint64_t k = 1; k < nalloc; k++) {
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
out:
	free(ex);
	return ret;
}
