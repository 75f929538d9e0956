/*
 * fuzz_vhdx.c — the VHDX engine's readers: file identifier, the two
 * headers, region tables, metadata (file parameters, sizes, parent
 * locator), BAT and log replay, then reads through the BAT.
 *
 * A VHDX is at least ~4 MiB of mostly zeros, and its headers and region
 * tables carry CRC-32C checksums, so raw byte inputs would leave libFuzzer
 * mutating zeros and checksums. The input is therefore a sparse-file
 * description (fuzz/vhdx2seed.py turns a real image into one):
 *
 *   byte 0      flags: bit 0 recompute the CRC-32C of both headers, both
 *               region tables and the log entries (so mutations reach the
 *               code behind the checksums); bit 1 open read-write (replays
 *               a dirty log on "disk", i.e. in the memory file) and write
 *               two small ranges, then close (flush, BAT update).
 *   bytes 1-2   file size in 64 KiB units (LE, at most 2048: 128 MiB)
 *   then records, up to the end of the input:
 *               u32 LE file offset (mod 128 MiB), u16 LE length, the bytes.
 *
 * The file lives in an anonymous memory file, sparse, opened by its
 * /proc/self/fd path. A differencing image's parent is forced to a path
 * that does not exist, so that a hostile parent locator cannot make the
 * harness read host files (deterministic; the locator is still parsed).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "fuzz.h"
#include "le.h"
#include "vhdx.h"
#include "vhdx_priv.h"

#define FUZZ_VHDX_MAX_FILE (128ULL << 20)
#define FUZZ_VHDX_MAX_INPUT (4u << 20)

/* CRC-32C for the harness's own checksum fixing (not the code under test,
 * which verifies with crc32c() of imaging/crc32c.c): the SSE4.2 crc32
 * instruction when the CPU has it (8 bytes per step instead of a byte-wise
 * table loop run under ASan and coverage tracing), else crc32c_update(). */
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target("sse4.2")))
static uint32_t fuzz_vhdx_crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = ~crc & 0xffffffffu;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	for (; len; p++, len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p);
	return ~(uint32_t)c;
}

static uint32_t fuzz_vhdx_crc(uint32_t crc, const uint8_t *p, size_t len)
{
	static int hw = -1;

	if (hw < 0) {
		__builtin_cpu_init();
		hw = __builtin_cpu_supports("sse4.2") != 0;
	}
	return hw ? fuzz_vhdx_crc_hw(crc, p, len) : crc32c_update(crc, p, len);
}
#else
static uint32_t fuzz_vhdx_crc(uint32_t crc, const uint8_t *p, size_t len)
{
	return crc32c_update(crc, p, len);
}
#endif

/* Recompute the checksum (at +4) of the @len-byte structure at @off, in
 * 64 KiB pieces through a static buffer (no allocation per input). */
static void fuzz_vhdx_fix_crc(int fd, uint64_t off, uint32_t len)
{
	static uint8_t b[64 << 10];
	uint8_t head[8];
	uint32_t crc = 0;

	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < sizeof(b) ? (size_t)(len - done) : sizeof(b);

		if (pread(fd, b, n, (off_t)(off + done)) != (ssize_t)n)
			return;
		if (done == 0) {
			if (n < sizeof(head))
				return;
			memcpy(head, b, sizeof(head));
			put_le32(b + 4, 0);
		}
		crc = fuzz_vhdx_crc(crc, b, n);
		done += n;
	}
	put_le32(head + 4, crc);
	(void)!pwrite(fd, head, sizeof(head), (off_t)off);
}

/* Walk the log region named by the header at @hoff and fix the checksum
 * of every "loge" entry found at a 4 KiB boundary whose length fits. Only
 * the data extents of the sparse memory file are visited (SEEK_DATA /
 * SEEK_HOLE): a hole reads as zeros and holds no "loge". */
static void fuzz_vhdx_fix_log(int fd, uint64_t hoff, uint64_t fsize)
{
	uint8_t h[VHDX_HEADER_SIZE], e[16];
	uint64_t loff, llen, p = 0;

	if (pread(fd, h, sizeof(h), (off_t)hoff) != (ssize_t)sizeof(h))
		return;
	llen = get_le32(h + VHDX_HDR_LOG_LENGTH_OFF);
	loff = get_le64(h + VHDX_HDR_LOG_OFFSET_OFF);
	if (loff >= fsize || llen > fsize - loff || llen > (16u << 20))
		return;
	while (p + VHDX_LOG_SECTOR <= llen) {
		off_t d = lseek(fd, (off_t)(loff + p), SEEK_DATA);
		off_t hole = (off_t)(loff + llen);

		if (d >= 0) {
			if ((uint64_t)d >= loff + llen)
				break;
			/* Back to the 4 KiB slot of the log holding d. */
			if ((uint64_t)d > loff + p)
				p += ((uint64_t)d - (loff + p)) / VHDX_LOG_SECTOR * VHDX_LOG_SECTOR;
			hole = lseek(fd, d, SEEK_HOLE);
			if (hole < 0)
				hole = (off_t)(loff + llen);
		} else if (errno == ENXIO) {
			break;  /* no data after loff + p */
		}
		/* (any other error: SEEK_DATA unsupported, scan every slot) */
		for (; p + VHDX_LOG_SECTOR <= llen && loff + p < (uint64_t)hole;
		     p += VHDX_LOG_SECTOR) {
			uint32_t elen;

			if (pread(fd, e, sizeof(e), (off_t)(loff + p)) != (ssize_t)sizeof(e) ||
			    memcmp(e, "loge", 4))
				continue;
			elen = get_le32(e + VHDX_LOGE_ENTRY_LENGTH_OFF);
			if (elen >= VHDX_LOG_SECTOR && elen % VHDX_LOG_SECTOR == 0 &&
			    elen <= llen - p)
				fuzz_vhdx_fix_crc(fd, loff + p, elen);
		}
	}
}

static void fuzz_vhdx_read(struct vhdx *v)
{
	static uint8_t buf[128 << 10];
	uint64_t vs = vhdx_virtual_size(v), bs = vhdx_block_size(v);
	uint32_t ls = vhdx_logical_sector_size(v);
	struct vhdx_info info;
	uint64_t off, run;
	bool alloc;

	if (vhdx_get_info(v, &info) == 0)
		vhdx_info_free(&info);
	(void)vhdx_disk_type_name(vhdx_disk_type(v));
	(void)vhdx_physical_sector_size(v);
	if (!vs || !ls)
		return;
	/* The first 64 KiB, a range across the first block boundary, the last
	 * sector: the BAT lookup, sector bitmaps and the end of the disk. */
	(void)vhdx_pread(v, buf, vs < 65536 ? vs : 65536, 0);
	if (bs && bs < vs) {
		uint64_t len = vs - (bs - ls) < 2ULL * ls ? vs - (bs - ls) : 2ULL * ls;
		(void)vhdx_pread(v, buf, len, bs - ls);
	}
	if (vs >= ls)
		(void)vhdx_pread(v, buf, ls, vs - ls);
	/* Allocation runs of the first blocks (bounded: 64 queries). */
	off = 0;
	for (int i = 0; i < 64 && off < vs; i++) {
		if (vhdx_block_status(v, off, vs - off, &alloc, &run) != 0 || run == 0)
			break;
		off += run;
	}
}

int fuzz_vhdx(const uint8_t *data, size_t size)
{
	struct vhdx_open_opts o = { .parent_path = "/nonexistent/gpup-fuzz-parent.vhdx" };
	struct gp_error err = { 0 };
	uint64_t fsize, end = 0;
	struct vhdx *v;
	char path[64];
	uint8_t flags;
	size_t p;
	int fd;

	if (size < 3 || size > FUZZ_VHDX_MAX_INPUT)
		return 0;
	flags = data[0];
	fsize = (uint64_t)(get_le16(data + 1) % 2049) << 16;
	fd = fuzz_memfd(data, 0, path);
	if (fd < 0)
		return 0;
	for (p = 3; p + 6 <= size;) {
		uint64_t off = get_le32(data + p) % FUZZ_VHDX_MAX_FILE;
		size_t len = get_le16(data + p + 4);

		p += 6;
		if (len > size - p)
			len = size - p;
		if (len > FUZZ_VHDX_MAX_FILE - off)
			len = (size_t)(FUZZ_VHDX_MAX_FILE - off);
		if (pwrite(fd, data + p, len, (off_t)off) != (ssize_t)len)
			goto out;
		if (off + len > end)
			end = off + len;
		p += len;
	}
	if (fsize < end)
		fsize = end;
	if (ftruncate(fd, (off_t)fsize) < 0)
		goto out;
	if (flags & 1) {
		fuzz_vhdx_fix_log(fd, VHDX_HEADER1_OFFSET, fsize);
		fuzz_vhdx_fix_log(fd, VHDX_HEADER2_OFFSET, fsize);
		fuzz_vhdx_fix_crc(fd, VHDX_HEADER1_OFFSET, VHDX_HEADER_SIZE);
		fuzz_vhdx_fix_crc(fd, VHDX_HEADER2_OFFSET, VHDX_HEADER_SIZE);
		fuzz_vhdx_fix_crc(fd, VHDX_REGION1_OFFSET, VHDX_REGION_TABLE_SIZE);
		fuzz_vhdx_fix_crc(fd, VHDX_REGION2_OFFSET, VHDX_REGION_TABLE_SIZE);
	}
	o.writable = (flags & 2) != 0;
	if (vhdx_open(path, &o, &v, &err) != 0)
		goto out;
	fuzz_vhdx_read(v);
	if (o.writable) {
		/* Small writes: at 0 and one block in (allocation, BAT update,
		 * sector bitmap of a differencing image). Blocks are sparse holes
		 * (ftruncate), so even 256 MiB blocks cost no memory. */
		static const uint8_t pat[4096] = { 'g', 'p', 'u', 'p' };
		uint64_t vs = vhdx_virtual_size(v), bs = vhdx_block_size(v);

		if (vs >= sizeof(pat))
			(void)vhdx_pwrite(v, pat, sizeof(pat), 0);
		if (bs && vs >= sizeof(pat) && bs <= vs - sizeof(pat))
			(void)vhdx_pwrite(v, pat, sizeof(pat), bs);
		(void)vhdx_flush(v);
		fuzz_vhdx_read(v);
	}
	vhdx_close(v, NULL);
out:
	close(fd);
	return 0;
}

#ifndef GP_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_vhdx(data, size);
}
#endif
