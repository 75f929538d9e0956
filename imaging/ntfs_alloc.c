/* ntfs_alloc.c — compact placement of new file data.
 *
 * Why: libntfs-3g's allocator (lcnalloc.c) starts every new file at a
 * moving "zone position", which it advances to the end of each allocation
 * plus 4096 clusters, and inside the 32768-cluster window of bitmap it reads
 * at that position it takes the first longest free run. Copying a package
 * of many files therefore scatters them over the whole volume (1.3 GB
 * touched 223 of 256 32-MiB blocks of an 8 GiB volume), and a dynamic VHDX
 * allocates every block that receives a byte.
 *
 * What: before each file's clusters are allocated (and again after, for
 * the directory-index and MFT clusters that follow), the zone position is
 * set where the data should go. Only the position is steered; the
 * allocator itself still decides which free clusters it takes, so
 * correctness never depends on this file.
 *   1. Windows whose container blocks are all allocated already and whose
 *      longest free run holds the whole file: the allocator takes that run,
 *      so the file fills a hole that costs the container nothing.
 *   2. Otherwise one of the longest free runs outside the MFT zone (the
 *      "regions", longest first), each started on a container-block
 *      boundary when it begins in an unallocated block and walked by its
 *      own cursor, so consecutive files land back to back: the first region
 *      whose rest holds the file. One region is not enough: a package
 *      larger than the longest run (x4 bench package: 4.8 GB, longest run
 *      of the 8 GiB guest 3.9 GiB) used to leave the rest to the library,
 *      which spread ~600 small files one per ~4 MiB over 77 blocks.
 * Before steering to a cursor, the allocator's choice is replayed on the
 * current bitmap (probe()): at a region's end the window read at the
 * cursor may hold a longer free run elsewhere, which the allocator would
 * take instead; such a region is passed over.
 * Windows are 32768 clusters (the allocator's 4096-byte bitmap buffer),
 * aligned, and never overlap the MFT zone (positions there would make the
 * allocator search the MFT zone first).
 * The bitmap is scanned 64 clusters at a time (whole free or used words
 * skipped, run edges by count-trailing-zeros) and streamed in 1 MiB pieces:
 * a 2 TiB volume has a 64 MiB bitmap and 2^29 bits. */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ntfs-3g/bitmap.h>
#include <ntfs-3g/lcnalloc.h>
#include <ntfs-3g/runlist.h>

#include "le.h"

/* Clusters covered by one read of the allocator's bitmap buffer
 * (NTFS_LCNALLOC_BSIZE in lcnalloc.c, 4096 bytes). */
#define WINDOW_CLUSTERS 32768
#define NTFS_LCNALLOC_BSIZE_BITS WINDOW_CLUSTERS
/* Clusters kept free in a window for the index/MFT growth a file causes. */
#define WINDOW_SLACK 8
/* Phase-2 regions kept: the longest free runs. */
#define MAX_REGIONS 32
/* Bitmap bytes read per step while building the plan (a multiple of the
 * window's 4096 bytes and of 8). */
#define SCAN_BYTES (1u << 20)

struct window {
	LCN start;
	int64_t len;       /* clusters (the last window may be short) */
	int64_t nfree;     /* free clusters when last counted; only our own */
	int64_t maxrun;    /* allocations shrink them during a session */
};

struct region {
	LCN start, end;    /* the free run when the plan was made */
	LCN cursor;        /* where the next file should start */
};

struct gp_ntfs_placer {
	ntfs_volume *vol;
	struct region r[MAX_REGIONS]; /* phase 2, longest first */
	size_t nr;
	size_t cur;        /* region used last (metadata goes to its cursor) */
	struct window *w;  /* phase 1 candidates, by LCN */
	size_t nw;
	size_t wi;         /* first window that may still have room */
	uint8_t buf[WINDOW_CLUSTERS / 8];
};

/* One pass over bitmap bits (1 = in use): free clusters, the first longest
 * free run (as the allocator's max_empty_bit_range() picks it), and, with
 * @p set, every free run offered to keep_region(). Runs may span calls. */
struct scan {
	int64_t run_start;  /* -1: not inside a free run */
	bool count;         /* count free clusters (nfree) */
	int64_t nfree;
	int64_t best_start, best_len;
	struct gp_ntfs_placer *p;
};

static void scan_init(struct scan *sc, struct gp_ntfs_placer *p)
{
	sc->run_start = -1;
	/* The volume-wide pass needs runs only: without -mpopcnt every
	 * popcount is a libgcc call (17 % of that pass). */
	sc->count = p == NULL;
	sc->nfree = 0;
	sc->best_start = -1;
	sc->best_len = 0;
	sc->p = p;
}

/* Keep [start, start+len) if it is among the MAX_REGIONS longest so far
 * (equal lengths: the earlier run first). */
static void keep_region(struct gp_ntfs_placer *p, int64_t start, int64_t len)
{
	size_t i = p->nr;

	if (p->nr == MAX_REGIONS && len <= p->r[MAX_REGIONS - 1].end - p->r[MAX_REGIONS - 1].start)
		return;
	if (p->nr < MAX_REGIONS)
		p->nr++;
	else
		i = MAX_REGIONS - 1;
	while (i > 0 && p->r[i - 1].end - p->r[i - 1].start < len) {
		p->r[i] = p->r[i - 1];
		i--;
	}
	p->r[i].start = start;
	p->r[i].end = start + len;
	p->r[i].cursor = start;
}

static void scan_run_end(struct scan *sc, int64_t end)
{
	int64_t len = end - sc->run_start;

	if (len > sc->best_len) {
		sc->best_len = len;
		sc->best_start = sc->run_start;
	}
	if (sc->p)
		keep_region(sc->p, sc->run_start, len);
	sc->run_start = -1;
}

/* Bits [0, @nbits) of @bm are clusters @base.. Bit i is bit i % 8 of byte
 * i / 8, so a little-endian 64-bit load holds 64 consecutive clusters. */
static void scan_bits(struct scan *sc, const uint8_t *bm, int64_t base, int64_t nbits)
{
	for (int64_t wd = 0; wd * 64 < nbits; wd++) {
		int64_t first = wd * 64;
		uint64_t x;

		if (first + 64 <= nbits) {
			x = get_le64(bm + wd * 8);
		} else {
			/* Partial last word: bits past the end count as in use. */
			x = ~(uint64_t)0 << (nbits - first);
			for (int64_t b = 0; b * 8 < nbits - first; b++)
				x |= (uint64_t)bm[wd * 8 + b] << (8 * b);
		}
		if (sc->count)
			sc->nfree += 64 - __builtin_popcountll(x);
		/* Whole words that cannot end or start a run. */
		if ((x == 0 && sc->run_start >= 0) || (x == ~(uint64_t)0 && sc->run_start < 0))
			continue;
		for (int pos = 0; pos < 64;) {
			uint64_t y = sc->run_start >= 0 ? x >> pos : ~x >> pos;
			int k;

			if (!y)
				break;
			k = __builtin_ctzll(y);
			pos += k;
			if (sc->run_start >= 0)
				scan_run_end(sc, base + first + pos);
			else
				sc->run_start = base + first + pos;
		}
	}
}

static void scan_finish(struct scan *sc, int64_t end)
{
	if (sc->run_start >= 0)
		scan_run_end(sc, end);
}

/* Mark clusters [from, to) (relative to @bm) in use in our copy; whole
 * bytes at once (the MFT zone of a 2 TiB volume is 2^26 clusters). */
static void set_bits(uint8_t *bm, int64_t from, int64_t to)
{
	for (; from < to && (from & 7); from++)
		bm[from >> 3] |= (uint8_t)(1u << (from & 7));
	if (to - from >= 8) {
		memset(bm + (from >> 3), 0xff, (size_t)((to - from) >> 3));
		from += (to - from) & ~(int64_t)7;
	}
	for (; from < to; from++)
		bm[from >> 3] |= (uint8_t)(1u << (from & 7));
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

/* Read the allocator's bitmap buffer at @lcn (rounded down to a byte, as
 * the allocator does) into p->buf and scan it. Returns the number of
 * clusters read (0 on a read error). */
static int64_t read_scan(struct gp_ntfs_placer *p, LCN lcn, int64_t max, struct scan *sc)
{
	LCN from = lcn & ~(LCN)7;
	int64_t n = p->vol->nr_clusters - from;
	s64 bytes, got;

	if (n > max)
		n = max;
	if (n <= 0)
		return 0;
	bytes = (n + 7) / 8;
	got = ntfs_attr_pread(p->vol->lcnbmp_na, from / 8, bytes, p->buf);
	if (got != bytes)
		return 0;
	scan_init(sc, NULL);
	scan_bits(sc, p->buf, from, n);
	scan_finish(sc, from + n);
	return n;
}

/* Recount window @w from the volume's $Bitmap (the plan's snapshot is
 * stale once metadata has been allocated). */
static void window_rescan(struct gp_ntfs_placer *p, struct window *w)
{
	struct scan sc;

	if (read_scan(p, w->start, w->len, &sc) == 0) {
		w->nfree = w->maxrun = 0;
		return;
	}
	w->nfree = sc.nfree;
	w->maxrun = sc.best_len;
}

/* Where the allocator starts a file when its position is @lcn: the first
 * longest free run of the bitmap buffer it reads there (-1: none). */
static LCN probe(struct gp_ntfs_placer *p, LCN lcn)
{
	struct scan sc;

	if (read_scan(p, lcn, WINDOW_CLUSTERS, &sc) == 0)
		return -1;
	return sc.best_start;
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
	if (p->wi < p->nw) {
		steer_to(p, p->w[p->wi].start);
		return;
	}
	if (p->cur < p->nr && p->r[p->cur].cursor < p->r[p->cur].end) {
		steer_to(p, p->r[p->cur].cursor);
		return;
	}
	for (size_t k = 0; k < p->nr; k++)
		if (p->r[k].cursor < p->r[k].end) {
			steer_to(p, p->r[k].cursor);
			return;
		}
}

/* Add window [start, start+len) if its blocks are all allocated and it has
 * room. @bm holds its bits (MFT-zone bits already marked in use). */
static int consider_window(struct gp_ntfs_placer *p, size_t *cap, struct gp_disk *disk,
			   uint64_t vol_offset, const uint8_t *bm, LCN start, int64_t len)
{
	struct scan sc;

	if (in_mft_zone(p->vol, start, len) ||
	    !range_allocated(disk, vol_offset, p->vol->cluster_size, start, len))
		return 0;
	scan_init(&sc, NULL);
	scan_bits(&sc, bm, start, len);
	scan_finish(&sc, start + len);
	if (sc.nfree <= WINDOW_SLACK || sc.best_len == 0)
		return 0;
	if (p->nw == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct window *nw = realloc(p->w, ncap * sizeof(*nw));

		if (!nw)
			return -1;
		p->w = nw;
		*cap = ncap;
	}
	p->w[p->nw].start = start;
	p->w[p->nw].len = len;
	p->w[p->nw].nfree = sc.nfree;
	p->w[p->nw].maxrun = sc.best_len;
	p->nw++;
	return 0;
}

struct gp_ntfs_placer *gp_ntfs_placer_new(ntfs_volume *vol, struct gp_disk *disk,
					  uint64_t vol_offset)
{
	struct gp_ntfs_placer *p;
	uint64_t unit = gp_disk_allocation_unit(disk);
	int64_t nr = vol->nr_clusters;
	uint32_t csize = vol->cluster_size;
	size_t cap = 0;
	uint8_t *bm;
	struct scan sc;

	if (unit == 0 || nr <= 0 || csize == 0)
		return NULL;
	bm = malloc(SCAN_BYTES);
	p = calloc(1, sizeof(*p));
	if (!bm || !p)
		goto fail;
	p->vol = vol;
	/* One pass, SCAN_BYTES of bitmap at a time: the free runs outside the
	 * MFT zone (regions) and the windows (phase 1). */
	scan_init(&sc, p);
	for (int64_t lcn = 0; lcn < nr; lcn += (int64_t)SCAN_BYTES * 8) {
		int64_t n = nr - lcn < (int64_t)SCAN_BYTES * 8 ? nr - lcn : (int64_t)SCAN_BYTES * 8;
		s64 bytes = (n + 7) / 8;

		if (ntfs_attr_pread(vol->lcnbmp_na, lcn / 8, bytes, bm) != bytes)
			goto fail;
		if (in_mft_zone(vol, lcn, n)) {
			int64_t zs = vol->mft_zone_start > lcn ? vol->mft_zone_start - lcn : 0;
			int64_t ze = vol->mft_zone_end - lcn < n ? vol->mft_zone_end - lcn : n;

			set_bits(bm, zs, ze);
		}
		scan_bits(&sc, bm, lcn, n);
		for (int64_t w = 0; w < n; w += WINDOW_CLUSTERS) {
			int64_t len = n - w < WINDOW_CLUSTERS ? n - w : WINDOW_CLUSTERS;

			if (consider_window(p, &cap, disk, vol_offset, bm + w / 8, lcn + w, len))
				goto fail;
		}
	}
	scan_finish(&sc, nr);
	/* A region starting in an unallocated block starts on its boundary, so
	 * the block is not shared with whatever precedes the run. */
	for (size_t k = 0; k < p->nr && unit >= csize; k++) {
		struct region *r = &p->r[k];
		uint64_t per = unit / csize, base = vol_offset / csize;
		uint64_t aligned = ((base + (uint64_t)r->start + per - 1) / per) * per - base;

		if (!range_allocated(disk, vol_offset, csize, r->start, 1) && (int64_t)aligned < r->end)
			r->cursor = (LCN)aligned;
	}
	free(bm);
	if (p->nr == 0 && p->nw == 0) {
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

/* Phase 1: the first window (by LCN) whose longest free run holds the
 * whole file. Windows that cannot even take a small file are retired. */
static struct window *choose_window(struct gp_ntfs_placer *p, int64_t need)
{
	for (size_t i = p->wi; i < p->nw; i++) {
		struct window *w = &p->w[i];

		if (w->maxrun >= need && w->nfree >= need + WINDOW_SLACK)
			window_rescan(p, w); /* confirm with the real bitmap */
		if (w->nfree <= WINDOW_SLACK && i == p->wi) {
			p->wi++;
			continue;
		}
		if (w->maxrun >= need && w->nfree >= need + WINDOW_SLACK)
			return w;
	}
	return NULL;
}

/* Phase 2: the first region (longest first) whose rest holds the file and
 * where the allocator would really start at the cursor; failing that, the
 * reachable region with the most room left (the file starts there and the
 * allocator continues past its end). Returns the index or -1. */
static int choose_region(struct gp_ntfs_placer *p, int64_t need)
{
	int best = -1;

	for (size_t k = 0; k < p->nr; k++) {
		struct region *r = &p->r[k];
		int64_t room = r->end - r->cursor;
		LCN at;

		if (room <= 0 || (room < need && best >= 0 && room <= p->r[best].end - p->r[best].cursor))
			continue;
		at = probe(p, r->cursor);
		if (at < (r->cursor & ~(LCN)7) || at >= r->end)
			continue;
		if (room >= need)
			return (int)k;
		best = (int)k;
	}
	return best;
}

/* Move the cursors past the runs just allocated in their regions. */
static void advance(struct gp_ntfs_placer *p, const runlist_element *rl)
{
	for (; rl->length; rl++) {
		if (rl->lcn < 0)
			continue;
		for (size_t k = 0; k < p->nr; k++) {
			struct region *r = &p->r[k];
			LCN end = rl->lcn + rl->length;

			if (rl->lcn >= r->start && rl->lcn < r->end && end > r->cursor)
				r->cursor = end < r->end ? end : r->end;
		}
	}
}

/* A free run of clusters (alloc_by_runs()). */
struct frun {
	LCN start;
	int64_t len;
};

static int frun_by_len(const void *a, const void *b)
{
	const struct frun *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

static int frun_by_lcn(const void *a, const void *b)
{
	const struct frun *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Every free run of @vol's $Bitmap, into a malloc'ed array. Returns 0 or
 * -1 with errno set. */
static int free_runs(ntfs_volume *vol, struct frun **out, size_t *n)
{
	uint8_t *bm = malloc(SCAN_BYTES);
	struct frun *r = NULL;
	size_t cap = 0;
	int64_t run = -1, nr = vol->nr_clusters;

	*n = 0;
	if (!bm)
		return -1;
	for (int64_t lcn = 0; lcn < nr; lcn += (int64_t)SCAN_BYTES * 8) {
		int64_t cnt = nr - lcn < (int64_t)SCAN_BYTES * 8 ? nr - lcn : (int64_t)SCAN_BYTES * 8;
		s64 bytes = (cnt + 7) / 8;

		if (ntfs_attr_pread(vol->lcnbmp_na, lcn / 8, bytes, bm) != bytes) {
			free(bm);
			free(r);
			errno = EIO;
			return -1;
		}
		for (int64_t i = 0; i <= cnt; i++) {
			bool used = i == cnt ? lcn + cnt == nr : (bm[i >> 3] >> (i & 7)) & 1;

			if (i == cnt && !used)
				break; /* the run continues in the next piece */
			if (!used && run < 0) {
				run = lcn + i;
			} else if (used && run >= 0) {
				if (*n == cap) {
					struct frun *nrl = realloc(r, (cap = cap ? cap * 2 : 64) * sizeof(*r));

					if (!nrl) {
						free(bm);
						free(r);
						return -1;
					}
					r = nrl;
				}
				r[*n].start = run;
				r[*n].len = lcn + i - run;
				(*n)++;
				run = -1;
			}
		}
	}
	free(bm);
	*out = r;
	return 0;
}

/*
 * Why this exists: ntfs_cluster_alloc() takes at most one free run (the
 * longest) from each 4096-byte piece of $Bitmap it reads, and reads each
 * zone in at most two passes, so a file larger than the few longest runs
 * fails with ENOSPC on a volume with plenty of free clusters (a 200 MB
 * guest: 74 MB refused with 83 MB free, the rest being two more runs and
 * the MFT zone). Here the runs are chosen from the bitmap (longest first,
 * so the file has as few fragments as the free space allows; the MFT zone
 * included, as the library's last resort is) and each is claimed with an
 * explicit start, never crossing a 32768-cluster piece, which the
 * allocator then fills exactly. The runlist is attached to @na (empty and
 * non-resident) and ntfs_attr_truncate_solid() sets the size without
 * allocating more. Returns 0 or -1 with errno (ENOSPC: really full).
 */
static int alloc_by_runs(ntfs_volume *vol, ntfs_attr *na, uint64_t size)
{
	int64_t need = (int64_t)((size + vol->cluster_size - 1) / vol->cluster_size);
	struct frun *fr = NULL;
	size_t n = 0, k = 0;
	runlist *rl = NULL;
	int64_t sum = 0;
	VCN vcn = 0;
	int e;

	if (!NAttrNonResident(na) || na->allocated_size != 0 || vol->free_clusters < need) {
		errno = ENOSPC;
		return -1;
	}
	if (free_runs(vol, &fr, &n))
		return -1;
	qsort(fr, n, sizeof(*fr), frun_by_len);
	for (; k < n && sum < need; k++)
		sum += fr[k].len;
	if (sum < need) {
		free(fr);
		errno = ENOSPC;
		return -1;
	}
	qsort(fr, k, sizeof(*fr), frun_by_lcn);
	for (size_t i = 0; i < k && vcn < need; i++) {
		LCN at = fr[i].start, end = fr[i].start + fr[i].len;

		while (at < end && vcn < need) {
			/* The piece of bitmap the allocator reads at @at. */
			LCN piece_end = (at & ~(LCN)7) + (LCN)NTFS_LCNALLOC_BSIZE_BITS;
			int64_t cnt = (piece_end < end ? piece_end : end) - at;
			runlist *one, *merged;

			if (cnt > need - vcn)
				cnt = need - vcn;
			one = ntfs_cluster_alloc(vol, vcn, cnt, at, DATA_ZONE);
			if (!one)
				goto fail;
			if (rl) {
				merged = ntfs_runlists_merge(rl, one);
				if (!merged) {
					e = errno;
					ntfs_cluster_free_from_rl(vol, one);
					free(one);
					errno = e;
					goto fail;
				}
				rl = merged;
			} else {
				rl = one;
			}
			/* The bits were free a moment ago and nothing else
			 * allocates meanwhile: the allocator took exactly
			 * [at, at + cnt) (ntfs_runlists_merge() owns @one). */
			at += cnt;
			vcn += cnt;
		}
	}
	free(fr);
	fr = NULL;
	if (vcn < need) {
		errno = ENOSPC;
		goto fail;
	}
	if (ntfs_attr_map_whole_runlist(na))
		goto fail;
	free(na->rl);
	na->rl = rl;
	rl = NULL;
	NAttrSetRunlistDirty(na);
	na->allocated_size = need * (int64_t)vol->cluster_size;
	if (ntfs_attr_update_mapping_pairs(na, 0) || ntfs_attr_truncate_solid(na, (s64)size)) {
		/* The clusters stay with the attribute: the file is removed or
		 * truncated by the caller's failure path, which frees them. */
		return -1;
	}
	return 0;
fail:
	e = errno;
	if (rl) {
		ntfs_cluster_free_from_rl(vol, rl);
		free(rl);
	}
	free(fr);
	errno = e;
	return -1;
}

/* ntfs_attr_truncate_solid(), and when the library's allocator refuses
 * although the volume has the clusters, alloc_by_runs(). */
static int truncate_solid(ntfs_attr *na, uint64_t size)
{
	ntfs_volume *vol = na->ni->vol;
	int64_t need = (int64_t)((size + vol->cluster_size - 1) / vol->cluster_size);

	if (!ntfs_attr_truncate_solid(na, (s64)size))
		return 0;
	if (errno != ENOSPC || vol->free_clusters < need)
		return -1;
	return alloc_by_runs(vol, na, size);
}

int gp_ntfs_placer_allocate(struct gp_ntfs_placer *p, ntfs_attr *na, uint64_t size)
{
	struct window *chosen;
	int64_t need;
	int k = -1, ret;

	if (!p)
		return truncate_solid(na, size);
	need = (int64_t)((size + p->vol->cluster_size - 1) / p->vol->cluster_size);
	chosen = choose_window(p, need);
	if (chosen) {
		steer_to(p, chosen->start);
	} else {
		k = choose_region(p, need);
		if (k >= 0) {
			steer_to(p, p->r[k].cursor);
			p->cur = (size_t)k;
		}
	}
	ret = truncate_solid(na, size);
	if (!ret && NAttrNonResident(na) && na->rl)
		advance(p, na->rl);
	if (chosen)
		window_rescan(p, chosen);
	/* Also after a failure: the allocator moved the position. */
	steer_idle(p);
	return ret;
}
