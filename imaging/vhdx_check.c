/*
 * vhdx_check.c — `gpup check` for a VHDX container: each copy of the
 * duplicated structures on its own (the engine's open uses whichever copy is
 * good and says nothing of the other), then the engine's full validation of
 * the current ones (metadata, BAT ranges and overlaps, log, sector bitmaps),
 * then the file space nothing references (leaks).
 */
#include "disk_check.h"
#include "le.h"
#include "vhdx_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The header section up to the end of region table 2. */
#define CHECK_HDR_LEN (VHDX_REGION2_OFFSET + VHDX_REGION_TABLE_SIZE)

/* The structure an engine error message names ("PATH: BAT at 0x...: ..."),
 * for the finding's structure field, and the file offset it gives. */
static const char *structure_of(const char *msg, const char *path, int64_t *off)
{
	static const struct { const char *prefix, *name; } map[] = {
		{ "BAT", "BAT" },
		{ "metadata", "metadata" },
		{ "region table 1", "region table 1" },
		{ "region table 2", "region table 2" },
		{ "region table", "region table" },
		{ "header 1", "header 1" },
		{ "header 2", "header 2" },
		{ "log", "log" },
		{ "parent", "parent locator" },
		{ "file type identifier", "file type identifier" },
	};
	size_t n = strlen(path);
	const char *p = msg, *at;

	if (!strncmp(p, path, n) && !strncmp(p + n, ": ", 2))
		p += n + 2;
	at = strstr(p, " at 0x");
	*off = at ? (int64_t)strtoull(at + 6, NULL, 16) : -1;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strncmp(p, map[i].prefix, strlen(map[i].prefix)))
			return map[i].name;
	return "file";
}

static int ext_cmp(const void *a, const void *b)
{
	const struct vhdx_extent *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Blocks cut off by the end of the file, and file space no structure
 * references, in whole 1 MiB units (the unit of VHDX allocation; a file
 * may end in a partial one, as Disk2VHD's do). The engine's open accepts a
 * last block that holds the virtual disk's end even when the file stops
 * inside its unused tail; every writer allocates whole blocks, so a file
 * that ends inside one was cut short. */
static int check_space(struct vhdx *v, uint64_t real_size, struct gp_check_report *r)
{
	uint64_t n = v->nfixed + 1, cap = n + 64, covered, leaked = 0, first = 0, cut = 0;
	struct vhdx_extent *e = malloc(cap * sizeof(*e)), *last_cut = NULL;
	bool seen_block = false;
	int ret = 0;

	if (!e)
		return GP_ERR_NOMEM;
	e[0] = (struct vhdx_extent){ 0, VHDX_HEADER_SECTION_SIZE, "header section", 0 };
	memcpy(e + 1, v->fixed, v->nfixed * sizeof(*e));
	for (uint64_t i = 0, k = 0; i < v->geo.total_entries;
	     i++, k = k == v->geo.chunk_ratio ? 0 : k + 1) {
		uint64_t ent = vhdx_bat_get(v, i), len = 0;
		unsigned st = vhdx_bat_state(ent);

		if (k == v->geo.chunk_ratio && st == VHDX_SB_PRESENT)
			len = VHDX_SECTOR_BITMAP_BLOCK_SIZE;
		else if (k != v->geo.chunk_ratio && (st == VHDX_PAYLOAD_FULLY_PRESENT ||
						     st == VHDX_PAYLOAD_PARTIALLY_PRESENT))
			len = v->geo.block_size;
		if (!len)
			continue;
		if (n == cap) {
			struct vhdx_extent *ne = realloc(e, (cap *= 2) * sizeof(*e));
			if (!ne) {
				free(e);
				return GP_ERR_NOMEM;
			}
			e = ne;
		}
		e[n++] = (struct vhdx_extent){ vhdx_bat_offset(ent), vhdx_bat_offset(ent) + len,
					       "block", i };
	}
	qsort(e, n, sizeof(*e), ext_cmp);
	for (uint64_t i = 0; i < n; i++)
		if (e[i].end > real_size && !cut++)
			last_cut = &e[i];
	if (cut) {
		char what[96];

		if (!strcmp(last_cut->what, "block"))
			snprintf(what, sizeof(what), "the block of BAT entry %llu",
				 (unsigned long long)last_cut->index);
		else
			snprintf(what, sizeof(what), "%s", last_cut->what);
		ret = gp_check_add(r, GP_CHECK_CORRUPT, "BAT", (int64_t)last_cut->start,
				   "%s: %llu structure(s) extend beyond the end of the file (%llu bytes), first: %s at 0x%llx (truncated file?)",
				   v->path, (unsigned long long)cut, (unsigned long long)real_size, what,
				   (unsigned long long)last_cut->start);
	}
	/* Gaps count from the first block on: space between the metadata
	 * structures and the first block is layout padding (qemu-img starts
	 * blocks at a block-size boundary, leaving 4 MiB of a new image with
	 * 8 MiB blocks unused), and the engine places new blocks at the end of
	 * the structures, not into it. */
	covered = 0;
	for (uint64_t i = 0; i <= n; i++) {
		uint64_t start = i < n ? e[i].start : v->file_size / VHDX_MiB * VHDX_MiB;
		/* Only whole 1 MiB units: structures are 1 MiB-aligned. */
		uint64_t gap0 = (covered + VHDX_MiB - 1) / VHDX_MiB * VHDX_MiB;

		if (seen_block && start > gap0) {
			if (!leaked)
				first = gap0;
			leaked += start - gap0;
		}
		if (i < n && e[i].end > covered)
			covered = e[i].end;
		if (i < n && !strcmp(e[i].what, "block"))
			seen_block = true;
	}
	free(e);
	if (!ret && leaked) {
		r->leaked_bytes += leaked;
		ret = gp_check_add(r, GP_CHECK_LEAK, "file", (int64_t)first,
				   "%llu bytes of file space no structure references (first at 0x%llx)",
				   (unsigned long long)leaked, (unsigned long long)first);
	}
	return ret;
}

/* A child's chunks that read blocks from the parent but have no sector
 * bitmap block: valid, but libvhdi then takes the child's header bytes for
 * the bitmap and misreads those blocks (../shared/UPSTREAM.md), so its
 * read-back cannot vouch for the image. gpup's first write adds them. */
static int check_bitmaps(struct vhdx *v, struct gp_check_report *r)
{
	uint64_t cr = v->geo.chunk_ratio, missing = 0, first = 0;

	for (uint64_t c = 0; c < v->geo.bitmap_blocks; c++) {
		uint64_t sb = c * (cr + 1) + cr;
		bool absent = false;

		if (vhdx_bat_state(vhdx_bat_get(v, sb)) == VHDX_SB_PRESENT)
			continue;
		for (uint64_t b = c * cr; b < (c + 1) * cr && b < v->geo.data_blocks && !absent; b++)
			absent = vhdx_bat_state(vhdx_bat_get(v, vhdx_bat_payload_index(&v->geo, b))) !=
				 VHDX_PAYLOAD_FULLY_PRESENT;
		if (absent && !missing++)
			first = c;
	}
	if (!missing)
		return 0;
	return gp_check_add(r, GP_CHECK_NOTE, "sector bitmap",
			    (int64_t)(v->bat_offset + (first * (cr + 1) + cr) * 8),
			    "%s: %llu chunk(s) of this differencing image, the first chunk %llu, read blocks from the parent but have no sector bitmap block; libvhdi misreads them, so its independent read-back is not available for this image (a write by gpup adds the bitmaps)",
			    v->path, (unsigned long long)missing, (unsigned long long)first);
}

/* Each copy of the headers and region tables on its own. */
static int check_copies(const char *path, int fd, uint64_t size, struct gp_check_report *r,
			bool *fatal)
{
	uint8_t *buf = calloc(1, CHECK_HDR_LEN);
	struct vhdx_header h[2];
	const char *why[2] = { NULL, NULL };
	struct vhdx_region_table rt[2] = { { 0 }, { 0 } };
	struct gp_error e[2] = { { 0 }, { 0 } };
	char *creator = NULL;
	bool ok[2], rok[2];
	int ret = 0;

	if (!buf)
		return GP_ERR_NOMEM;
	if (pread(fd, buf, size < CHECK_HDR_LEN ? size : CHECK_HDR_LEN, 0) < 0) {
		free(buf);
		return GP_ERR_IO;
	}
	if (vhdx_file_id_parse(path, buf, VHDX_HEADER_SIZE, &creator, &e[0])) {
		ret = gp_check_add(r, GP_CHECK_CORRUPT, "file type identifier", 0, "%s", e[0].msg);
		*fatal = true;
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t at = i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET;

		ok[i] = vhdx_header_parse(buf + at, &h[i], &why[i]) == 0;
	}
	for (int i = 0; i < 2 && !ret; i++) {
		uint64_t at = i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET;

		if (!ok[i])
			ret = gp_check_add(r, GP_CHECK_CORRUPT, i ? "header 2" : "header 1", (int64_t)at,
					   "%s: header %d at 0x%llx: %s%s", path, i + 1,
					   (unsigned long long)at, why[i],
					   ok[!i] ? "; the other header is in use" : "");
	}
	if (!ok[0] && !ok[1]) {
		*fatal = true;
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t at = i ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET;

		rok[i] = vhdx_region_table_parse(path, i + 1, at, buf + at, &rt[i], &e[i]) == 0;
		if (!rok[i] && e[i].code == GP_ERR_NOMEM)
			ret = GP_ERR_NOMEM;
	}
	for (int i = 0; !ret && i < 2; i++)
		if (!rok[i] && rok[!i])
			ret = gp_check_add(r, GP_CHECK_CORRUPT, i ? "region table 2" : "region table 1",
					   i ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET,
					   "%s; the other copy is good (a read-write open repairs this one from it)",
					   e[i].msg);
	if (!ret && rok[0] && rok[1] &&
	    memcmp(buf + VHDX_REGION1_OFFSET, buf + VHDX_REGION2_OFFSET, VHDX_REGION_TABLE_SIZE))
		ret = gp_check_add(r, GP_CHECK_CORRUPT, "region table 2", VHDX_REGION2_OFFSET,
				   "%s: region table 2 at 0x40000: differs from region table 1 (both have valid checksums)",
				   path);
out:
	vhdx_region_table_free(&rt[0]);
	vhdx_region_table_free(&rt[1]);
	free(creator);
	free(buf);
	return ret;
}

int vhdx_check(const char *path, const char *parent, struct gp_check_report *r,
	       struct gp_error *err)
{
	struct vhdx_open_opts po = { .parent_path = parent };
	struct gp_error oe = { 0 };
	struct vhdx *v = NULL, *full = NULL;
	uint64_t size;
	bool fatal = false;
	int64_t off;
	int fd, ret;

	ret = gp_check_open(path, &fd, &size, err);
	if (ret)
		return ret;
	ret = check_copies(path, fd, size, r, &fatal);
	close(fd);
	if (ret)
		return gp_error_set(err, ret, "%s: %s", path,
				    ret == GP_ERR_NOMEM ? "out of memory" : "cannot read the header section");
	if (fatal)
		return 0;
	/* The engine's validation of the copies in use and all the rest. */
	ret = vhdx_open_self(path, &v, &oe);
	if (ret == GP_ERR_UNSUPPORTED || ret == GP_ERR_CORRUPT) {
		const char *s = structure_of(oe.msg, path, &off);
		return gp_check_add(r, ret == GP_ERR_CORRUPT ? GP_CHECK_CORRUPT : GP_CHECK_SKIPPED, s,
				    off, "%s", oe.msg);
	}
	if (ret) /* not readable now (locked by a writer, I/O, memory) */
		return gp_error_set(err, ret, "%s", oe.msg);
	if (v->log_was_dirty)
		ret = gp_check_add(r, GP_CHECK_NOTE, "log", (int64_t)v->hdr.log_offset,
				   "%s: log at 0x%llx holds updates not yet applied (a read-write open replays them; readers that ignore the log, like libvhdi, see stale data)",
				   path, (unsigned long long)v->hdr.log_offset);
	if (!ret)
		ret = check_space(v, size, r);
	if (!ret && v->md.has_parent)
		ret = check_bitmaps(v, r);
	if (!ret && v->md.has_parent) {
		gp_error_clear(&oe);
		int pr = vhdx_open(path, &po, &full, &oe);
		if (pr == GP_ERR_NOMEM) {
			ret = pr;
		} else if (pr == GP_ERR_CORRUPT || pr == GP_ERR_MISMATCH) {
			const char *s = structure_of(oe.msg, path, &off);
			ret = gp_check_add(r, GP_CHECK_CORRUPT, s, off, "%s", oe.msg);
		} else if (pr) {
			/* Missing, locked, unreadable: the chain is not checked. */
			ret = gp_check_add(r, GP_CHECK_SKIPPED, "parent locator", -1,
					   "%s (the child itself was checked)", oe.msg);
		}
		vhdx_close(full, NULL);
	}
	vhdx_close(v, NULL);
	if (ret)
		return gp_error_set(err, ret, "%s: out of memory", path);
	return 0;
}
