/* test_vhdx_bad.c — bad input (acceptance test 6): truncated files, bad
 * CRCs (the other copy is used when valid; both bad is an error), garbage
 * metadata, BAT entries beyond EOF or overlapping, absurd sizes. Every
 * refusal is one line naming the file and the structure, the CLI exits
 * non-zero, nothing crashes, and the file is unchanged. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "le.h"
#include "vhdx_priv.h"
#include "vt.h"

#define MiB (1024ull * 1024ull)
#define SIZE (64 * MiB)
/* Layout of an image made by vhdx_create() (see vhdx.h). */
#define META 0x200000ull
#define BAT 0x300000ull
#define MDE(i) (META + 32 + 32 * (i))   /* metadata table entry i */
#define ITEM_FP (META + 0x10000)
#define ITEM_VDS (META + 0x10008)
#define ITEM_LSS (META + 0x10020)

static char *dir;
static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }
TestSuite(vhdx_bad, .init = setup, .fini = teardown, .timeout = 120);

static uint8_t *pattern;

/* A 64 MiB dynamic image with data in blocks 0..2 (1 MiB blocks). */
static char *good_image(const char *name)
{
	char *img = t_strdup_printf("%s/%s", dir, name);
	uint64_t seed = 1;

	pattern = malloc(3 * MiB);
	t_fill_random(pattern, 3 * MiB, &seed);
	vt_create(img, SIZE, 1 * MiB, 512);
	vt_write(img, pattern, 3 * MiB, 0);
	return img;
}

static void poke(const char *img, uint64_t off, const void *buf, size_t len)
{
	int fd = open(img, O_RDWR);

	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void poke32(const char *img, uint64_t off, uint32_t v)
{
	uint8_t b[4];
	put_le32(b, v);
	poke(img, off, b, 4);
}

static void poke64(const char *img, uint64_t off, uint64_t v)
{
	uint8_t b[8];
	put_le64(b, v);
	poke(img, off, b, 8);
}

static uint64_t peek64(const char *img, uint64_t off)
{
	uint8_t b[8];
	int fd = open(img, O_RDONLY);

	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, b, 8, (off_t)off), 8);
	close(fd);
	return get_le64(b);
}

/* Recompute a region table copy's CRC after editing it. */
static void fix_rt_crc(const char *img, uint64_t at)
{
	uint8_t *b = malloc(VHDX_REGION_TABLE_SIZE);
	int fd = open(img, O_RDWR);

	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, b, VHDX_REGION_TABLE_SIZE, (off_t)at), VHDX_REGION_TABLE_SIZE);
	put_le32(b + VHDX_RT_CHECKSUM_OFF, 0);
	put_le32(b + VHDX_RT_CHECKSUM_OFF, crc32c(b, VHDX_REGION_TABLE_SIZE));
	cr_assert_eq(pwrite(fd, b, VHDX_REGION_TABLE_SIZE, (off_t)at), VHDX_REGION_TABLE_SIZE);
	close(fd);
	free(b);
}

/* Edit both region table copies the same way: entry @i's @field := @v. */
static void rt_set(const char *img, int i, int field_off, uint64_t v, int width)
{
	for (int c = 0; c < 2; c++) {
		uint64_t at = c ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET;
		uint64_t e = at + VHDX_RT_ENTRIES_OFF + 32 * (uint64_t)i + (uint64_t)field_off;
		if (width == 8)
			poke64(img, e, v);
		else
			poke32(img, e, (uint32_t)v);
		fix_rt_crc(img, at);
	}
}

/* The image must be refused with @code and a one-line message naming the
 * file and containing @what, read-only and read-write, through the API and
 * the CLI, and stay byte-identical. */
static void expect_refused(const char *img, int code, const char *what)
{
	struct gp_disk_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	char h1[65], h2[65];
	const char *base = strrchr(img, '/') + 1;

	cr_assert_eq(t_sha256_file(img, h1), 0);
	for (int w = 0; w < 2; w++) {
		o.writable = w;
		gp_error_clear(&err);
		cr_assert_eq(gp_disk_open(img, &o, &d, &err), code, "writable=%d: got '%s'", w, err.msg);
		cr_assert(strstr(err.msg, base), "names the file: %s", err.msg);
		cr_assert(strstr(err.msg, what), "expected '%s' in: %s", what, err.msg);
		cr_assert(!strchr(err.msg, '\n'), "one line: %s", err.msg);
	}
	cr_assert_neq(t_gpup(&r, "disk read '%s' --length 512 -o /dev/null", img), 0);
	cr_assert(strstr(r.err, what), "CLI: %s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
	t_run_free(&r);
	cr_assert_neq(t_gpup(&r, "disk write '%s' --offset 0 -i /dev/null", img), 0);
	t_run_free(&r);
	/* `gpup check`: 2 for corruption; an unsupported feature cannot be
	 * checked (1) unless something else is corrupt. */
	t_gpup(&r, "check '%s'", img);
	if (code == GP_ERR_CORRUPT)
		cr_assert_eq(r.status, 2, "check exit %d: %s%s", r.status, r.out, r.err);
	else
		cr_assert(r.status == 1 || r.status == 2, "check exit %d: %s%s", r.status, r.out, r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, h2), 0);
	cr_assert_str_eq(h1, h2, "the refused file is unchanged");
}

/* `gpup check IMAGE` exits @status; the output names @what. */
static void expect_check(const char *img, int status, const char *what)
{
	struct t_run r;

	t_gpup(&r, "check '%s'", img);
	cr_assert_eq(r.status, status, "check exit %d: %s%s", r.status, r.out, r.err);
	cr_assert(strstr(r.out, what), "expected '%s' in: %s", what, r.out);
	t_run_free(&r);
}

static void expect_reads_pattern(const char *img)
{
	uint8_t *got = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, 3 * MiB);
	cr_assert(memcmp(got, pattern, 3 * MiB) == 0);
	free(got);
}

Test(vhdx_bad, truncated_header_section)
{
	char *img = good_image("t.vhdx");
	cr_assert_eq(truncate(img, 512 * 1024), 0);
	expect_refused(img, GP_ERR_CORRUPT, "shorter than the 1 MiB header section");
	free(img);
}

Test(vhdx_bad, truncated_regions)
{
	char *img = good_image("t.vhdx");
	cr_assert_eq(truncate(img, BAT + MiB / 2), 0);
	expect_refused(img, GP_ERR_CORRUPT, "region table 1 at 0x30000: entry 0");
	free(img);
}

Test(vhdx_bad, truncated_payload)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx *v;
	uint64_t boff;

	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "%s", err.msg);
	boff = vhdx_bat_offset(vhdx_bat_get(v, 0));
	vhdx_close(v, NULL);
	cr_assert_eq(truncate(img, (off_t)(boff + MiB)), 0);
	expect_refused(img, GP_ERR_CORRUPT, "BAT at 0x");
	expect_refused(img, GP_ERR_CORRUPT, "beyond the end of the file");
	free(img);
}

Test(vhdx_bad, one_bad_header_uses_the_other)
{
	char *img = good_image("h.vhdx");
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx *v;
	int cur;

	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "%s", err.msg);
	cur = v->cur_slot;
	vhdx_close(v, NULL);
	/* Damage the current header: the older one still describes the file. */
	poke32(img, (cur ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET) + 100, 0xdeadbeef);
	expect_reads_pattern(img);
	expect_check(img, 2, "checksum");
	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "%s", err.msg);
	cr_assert_eq(v->cur_slot, 1 - cur);
	vhdx_close(v, NULL);
	/* A writer then repairs it (writes go to the damaged slot first). */
	vt_write(img, "z", 1, 5);
	poke32(img, (cur ? VHDX_HEADER1_OFFSET : VHDX_HEADER2_OFFSET) + 100, 0xdeadbeef);
	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "both slots were rewritten: %s", err.msg);
	vhdx_close(v, NULL);
	free(img);
}

Test(vhdx_bad, both_headers_bad)
{
	char *img = good_image("h.vhdx");
	poke32(img, VHDX_HEADER1_OFFSET + 100, 1);
	poke(img, VHDX_HEADER2_OFFSET, "HEAD", 4);
	expect_refused(img, GP_ERR_CORRUPT, "no valid header");
	free(img);
}

Test(vhdx_bad, equal_sequence_headers)
{
	char *img = good_image("h.vhdx");
	uint8_t b[VHDX_HEADER_SIZE];
	int fd = open(img, O_RDWR);

	/* Disk2VHD: two identical headers with the same sequence number. */
	cr_assert_eq(pread(fd, b, sizeof(b), VHDX_HEADER2_OFFSET), (ssize_t)sizeof(b));
	cr_assert_eq(pwrite(fd, b, sizeof(b), VHDX_HEADER1_OFFSET), (ssize_t)sizeof(b));
	close(fd);
	expect_reads_pattern(img);
	/* Same sequence, different contents: ambiguous. */
	{
		struct vhdx_header h;
		const char *why;
		cr_assert_eq(vhdx_header_parse(b, &h, &why), 0);
		vhdx_guid_generate(&h.file_write_guid);
		vhdx_header_serialize(&h, b);
		poke(img, VHDX_HEADER1_OFFSET, b, sizeof(b));
	}
	expect_refused(img, GP_ERR_CORRUPT, "same sequence number");
	free(img);
}

Test(vhdx_bad, one_bad_region_table_uses_the_other)
{
	char *img = good_image("r.vhdx");
	poke32(img, VHDX_REGION1_OFFSET + 40, 0x12345678);
	expect_reads_pattern(img);
	expect_check(img, 2, "region table 1 at file offset 0x30000");
	poke32(img, VHDX_REGION2_OFFSET + 4, 0);
	expect_refused(img, GP_ERR_CORRUPT, "region table 1 at 0x30000: checksum mismatch");
	free(img);
}

/* Issue 18 item 4: one damaged region-table copy. libvhdi refuses such an
 * image; read-only opens use the good copy and warn (inspect, check,
 * doctor say so); a read-write open rewrites the damaged copy from the good
 * one and says so, after which every reader agrees. */
Test(vhdx_bad, damaged_region_table_is_reported_then_repaired)
{
	char *img = good_image("r.vhdx");
	char *one = t_strdup_printf("%s/one", dir);
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx *v;
	struct t_run r;
	char h1[65], h2[65];
	uint8_t *a = malloc(VHDX_REGION_TABLE_SIZE), *b = malloc(VHDX_REGION_TABLE_SIZE);
	int fd;

	poke32(img, VHDX_REGION2_OFFSET + 40, 0x12345678);
	cr_assert_eq(t_sha256_file(img, h1), 0);
	cr_assert_neq(t_run(&r, "vhdiinfo '%s'", img), 0, "libvhdi refuses it: %s", r.out);
	t_run_free(&r);
	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "%s", err.msg);
	cr_assert(strstr(vhdx_warning(v), "region table 2 at 0x40000") &&
		  strstr(vhdx_warning(v), "read-write open repairs"), "%s", vhdx_warning(v));
	vhdx_close(v, NULL);
	t_gpup(&r, "inspect '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "region table 2 at 0x40000: checksum mismatch"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "doctor '%s'", img);
	cr_assert_eq(r.status, 4, "%s %s", r.out, r.err);
	cr_assert(strstr(r.out, "image-corrupt") && strstr(r.out, "region table 2"), "%s", r.out);
	cr_assert(strstr(r.out, "read-write"), "doctor names the fix: %s", r.out);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, h2), 0);
	cr_assert_str_eq(h1, h2, "read-only looks change nothing");

	cr_assert_eq(t_write_file(one, "Q", 1), 0);
	t_gpup(&r, "disk write '%s' --offset 7 -i '%s'", img, one);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "repaired from region table 1"), "said so: %s", r.err);
	t_run_free(&r);
	pattern[7] = 'Q';
	fd = open(img, O_RDONLY);
	cr_assert_eq(pread(fd, a, VHDX_REGION_TABLE_SIZE, VHDX_REGION1_OFFSET), VHDX_REGION_TABLE_SIZE);
	cr_assert_eq(pread(fd, b, VHDX_REGION_TABLE_SIZE, VHDX_REGION2_OFFSET), VHDX_REGION_TABLE_SIZE);
	close(fd);
	cr_assert(memcmp(a, b, VHDX_REGION_TABLE_SIZE) == 0, "copy 2 rewritten from copy 1");
	expect_check(img, 0, "clean");
	cr_assert_eq(t_run(&r, "vhdiinfo '%s'", img), 0, "libvhdi opens it now: %s", r.err);
	t_run_free(&r);
	{
		uint8_t *got = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, 0, 3 * MiB);
		cr_assert(memcmp(got, pattern, 3 * MiB) == 0);
		free(got);
	}
	expect_reads_pattern(img);
	free(a); free(b); free(one); free(img);
}

/* Issue 18 item 3: a region-table entry with Required = 0 is legal (qemu-img
 * check accepts it) and its file space is taken: a new block must go past
 * it, leaving its bytes alone, and the disk reads zeros around the write. */
Test(vhdx_bad, optional_region_is_not_overwritten)
{
	char *img = good_image("o.vhdx");
	uint8_t *reg = malloc(MiB), *got = malloc(MiB), w[4096];
	struct vhdx_guid g;
	struct stat st;
	uint64_t seed = 8, at;
	int fd;

	cr_assert_eq(stat(img, &st), 0);
	at = (uint64_t)st.st_size;
	cr_assert_eq(at % MiB, 0);
	memset(reg, 0xA5, MiB);
	poke(img, at, reg, MiB);
	vhdx_guid_generate(&g);
	for (int c = 0; c < 2; c++) {
		uint64_t rt = c ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET;
		uint64_t e = rt + VHDX_RT_ENTRIES_OFF + 2 * VHDX_RT_ENTRY_SIZE;

		poke32(img, rt + VHDX_RT_ENTRY_COUNT_OFF, 3);
		poke(img, e + VHDX_RTE_GUID_OFF, g.b, 16);
		poke64(img, e + VHDX_RTE_FILE_OFFSET_OFF, at);
		poke32(img, e + VHDX_RTE_LENGTH_OFF, (uint32_t)MiB);
		poke32(img, e + VHDX_RTE_REQUIRED_OFF, 0);
		fix_rt_crc(img, rt);
	}
	cr_assert_eq(vt_qemu_check(img), 0);
	expect_reads_pattern(img);
	t_fill_random(w, sizeof(w), &seed);
	vt_write(img, w, sizeof(w), 10 * MiB + 512);
	fd = open(img, O_RDONLY);
	cr_assert_eq(pread(fd, got, MiB, (off_t)at), (ssize_t)MiB);
	close(fd);
	cr_assert(memcmp(got, reg, MiB) == 0, "the optional region's bytes are intact");
	free(got);
	got = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 10 * MiB, MiB);
	cr_assert(memcmp(got + 512, w, sizeof(w)) == 0);
	for (size_t i = 0; i < MiB; i++)
		if (i < 512 || i >= 512 + sizeof(w))
			cr_assert_eq(got[i], 0, "zeros around the write, byte %zu", i);
	free(got);
	got = vt_qemu_range(img, 10 * MiB, MiB, t_strdup_printf("%s/q.raw", dir));
	cr_assert(memcmp(got + 512, w, sizeof(w)) == 0 && got[0] == 0 && got[MiB - 1] == 0, "qemu agrees");
	cr_assert_eq(vt_qemu_check(img), 0, "no overlap for qemu-img check");
	expect_check(img, 0, "clean");
	free(got); free(reg); free(img);
}

Test(vhdx_bad, region_overlapping_the_log)
{
	char *img = good_image("r.vhdx");
	rt_set(img, 1, VHDX_RTE_FILE_OFFSET_OFF, MiB, 8); /* metadata onto the log */
	expect_refused(img, GP_ERR_CORRUPT, "region table 1 at 0x30000: entry 1 overlaps the log");
	free(img);
}

Test(vhdx_bad, regions_overlapping_each_other)
{
	char *img = good_image("r.vhdx");
	rt_set(img, 0, VHDX_RTE_FILE_OFFSET_OFF, META, 8); /* BAT onto the metadata */
	expect_refused(img, GP_ERR_CORRUPT, "overlaps");
	free(img);
}

Test(vhdx_bad, unknown_required_region)
{
	char *img = good_image("r.vhdx");
	/* A third entry with an unknown GUID, marked required. */
	for (int c = 0; c < 2; c++) {
		uint64_t at = c ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET;
		uint64_t e = at + VHDX_RT_ENTRIES_OFF + 64;
		poke(img, e, "0123456789abcdef", 16);
		poke64(img, e + 16, 8 * MiB);
		poke32(img, e + 24, (uint32_t)MiB);
		poke32(img, e + 28, 1);
		poke32(img, at + VHDX_RT_ENTRY_COUNT_OFF, 3);
		fix_rt_crc(img, at);
	}
	cr_assert_eq(truncate(img, 16 * MiB), 0);
	expect_refused(img, GP_ERR_UNSUPPORTED, "unknown required region");
	/* The same region marked optional is carried along. */
	for (int c = 0; c < 2; c++) {
		uint64_t at = c ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET;
		poke32(img, at + VHDX_RT_ENTRIES_OFF + 64 + 28, 0);
		fix_rt_crc(img, at);
	}
	expect_reads_pattern(img);
	free(img);
}

Test(vhdx_bad, garbage_metadata)
{
	char *img = good_image("m.vhdx");
	poke(img, META, "garbage!", 8);
	expect_refused(img, GP_ERR_CORRUPT, "metadata table at 0x200000: signature");
	free(img);
}

Test(vhdx_bad, unknown_required_metadata_item)
{
	char *img = good_image("m.vhdx");
	poke(img, MDE(4), "0123456789abcdef", 16); /* physical sector size's GUID */
	expect_refused(img, GP_ERR_UNSUPPORTED, "entry 4 is an unknown required item");
	/* Not required: ignored, but then a required item is missing. */
	poke32(img, MDE(4) + 24, 0);
	expect_refused(img, GP_ERR_CORRUPT, "required item physical sector size is missing");
	free(img);
}

Test(vhdx_bad, metadata_item_outside_the_region)
{
	char *img = good_image("m.vhdx");
	poke32(img, MDE(1) + 16, 0xFFFFFFF0u);
	expect_refused(img, GP_ERR_CORRUPT, "entry 1 (offset 0xfffffff0, length 8) lies outside");
	free(img);
}

Test(vhdx_bad, absurd_block_size)
{
	char *img = good_image("b.vhdx");
	poke32(img, ITEM_FP, 3 * MiB);
	expect_refused(img, GP_ERR_CORRUPT, "block size 3145728");
	poke32(img, ITEM_FP, 512 * MiB);
	expect_refused(img, GP_ERR_CORRUPT, "block size");
	poke32(img, ITEM_FP, 0);
	expect_refused(img, GP_ERR_CORRUPT, "block size 0");
	free(img);
}

Test(vhdx_bad, absurd_sector_size)
{
	char *img = good_image("s.vhdx");
	poke32(img, ITEM_LSS, 1000);
	expect_refused(img, GP_ERR_CORRUPT, "logical sector size at 0x210020: 1000 is neither 512 nor 4096");
	free(img);
}

Test(vhdx_bad, absurd_virtual_size)
{
	char *img = good_image("v.vhdx");
	poke64(img, ITEM_VDS, 1ull << 60);
	expect_refused(img, GP_ERR_CORRUPT, "virtual disk size");
	poke64(img, ITEM_VDS, (64ull << 40)); /* legal, but the BAT is far too small */
	expect_refused(img, GP_ERR_CORRUPT, "cannot hold");
	poke64(img, ITEM_VDS, SIZE + 1);
	expect_refused(img, GP_ERR_CORRUPT, "multiple");
	free(img);
}

Test(vhdx_bad, bat_entry_beyond_eof)
{
	char *img = good_image("e.vhdx");
	poke64(img, BAT + 10 * 8, vhdx_bat_make(VHDX_PAYLOAD_FULLY_PRESENT, 1ull << 40));
	expect_refused(img, GP_ERR_CORRUPT, "BAT at 0x300000: entry 10: block at file offset 0x10000000000 lies beyond the end of the file");
	free(img);
}

Test(vhdx_bad, bat_entries_overlapping)
{
	char *img = good_image("o.vhdx");
	poke64(img, BAT + 5 * 8, peek64(img, BAT)); /* block 5 := block 0's space */
	expect_refused(img, GP_ERR_CORRUPT, "overlaps entry");
	poke64(img, BAT + 5 * 8, vhdx_bat_make(VHDX_PAYLOAD_FULLY_PRESENT, META));
	expect_refused(img, GP_ERR_CORRUPT, "entry 5 (file offset 0x200000) overlaps the metadata region");
	poke64(img, BAT + 5 * 8, vhdx_bat_make(VHDX_PAYLOAD_FULLY_PRESENT, MiB));
	expect_refused(img, GP_ERR_CORRUPT, "overlaps the log");
	poke64(img, BAT + 5 * 8, vhdx_bat_make(VHDX_PAYLOAD_FULLY_PRESENT, 0));
	expect_refused(img, GP_ERR_CORRUPT, "in the header section");
	free(img);
}

/* A differencing child's BAT has payload entries past the virtual disk's
 * last block (it covers whole chunks); the first of them, block 64 of a
 * 64-block disk, must stay unallocated like the rest. */
Test(vhdx_bad, bat_entry_one_block_past_the_end)
{
	char *base = good_image("base.vhdx"), *child = t_strdup_printf("%s/c.vhdx", dir);
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "create '%s' --parent '%s'", child, base), 0, "%s", r.err);
	t_run_free(&r);
	/* 1 MiB blocks, 512-byte sectors: chunk ratio 4096, so block 64 is
	 * BAT entry 64. */
	poke64(child, BAT + 64 * 8, vhdx_bat_make(VHDX_PAYLOAD_FULLY_PRESENT, 1ull << 40));
	expect_refused(child, GP_ERR_CORRUPT, "entry 64: allocated block past the virtual disk's end");
	free(child);
	free(base);
}

/* Two region table entries with the same GUID (here both the BAT's): which
 * one is the BAT is ambiguous, so the table is corrupt. */
Test(vhdx_bad, region_guid_repeated)
{
	char *img = good_image("g.vhdx");
	uint64_t g0 = peek64(img, VHDX_REGION1_OFFSET + VHDX_RT_ENTRIES_OFF);
	uint64_t g1 = peek64(img, VHDX_REGION1_OFFSET + VHDX_RT_ENTRIES_OFF + 8);

	rt_set(img, 1, VHDX_RTE_GUID_OFF, g0, 8);
	rt_set(img, 1, VHDX_RTE_GUID_OFF + 8, g1, 8);
	expect_refused(img, GP_ERR_CORRUPT, "entry 1 repeats the GUID of entry 0");
	free(img);
}

Test(vhdx_bad, bat_states)
{
	char *img = good_image("st.vhdx");
	uint64_t e0 = peek64(img, BAT);

	poke64(img, BAT + 8, 4);
	expect_refused(img, GP_ERR_CORRUPT, "entry 1: payload state 4");
	poke64(img, BAT + 8, (e0 & ~7ull) | VHDX_PAYLOAD_PARTIALLY_PRESENT);
	expect_refused(img, GP_ERR_CORRUPT, "not valid for this disk type");
	/* ZERO, UNMAPPED (3, and 5 of spec 0.95), UNDEFINED read as zeros. */
	poke64(img, BAT + 8, VHDX_PAYLOAD_ZERO);
	poke64(img, BAT + 16, VHDX_PAYLOAD_UNMAPPED_V095);
	{
		uint8_t *got = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, 3 * MiB);
		static uint8_t zero[2 * MiB];
		cr_assert(memcmp(got, pattern, MiB) == 0);
		cr_assert(memcmp(got + MiB, zero, 2 * MiB) == 0);
		free(got);
	}
	free(img);
}

Test(vhdx_bad, garbage_file_with_signature)
{
	char *img = t_strdup_printf("%s/g.vhdx", dir);
	uint8_t *buf = malloc(2 * MiB);
	uint64_t seed = 8;

	t_fill_random(buf, 2 * MiB, &seed);
	memcpy(buf, "vhdxfile", 8);
	cr_assert_eq(t_write_file(img, buf, 2 * MiB), 0);
	expect_refused(img, GP_ERR_CORRUPT, "no valid header");
	free(buf);
	free(img);
}

Test(vhdx_bad, fuzzed_metadata_never_crashes)
{
	/* Random bytes over the metadata table and items: refused or read, never
	 * a crash (Criterion reports crashes), and the file stays unchanged. */
	char *img = good_image("f.vhdx");
	uint64_t seed = 77;
	uint8_t junk[64];
	struct gp_disk_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct gp_disk *d;

	for (int i = 0; i < 200; i++) {
		uint64_t off = t_rand(&seed) % 2 ? META + t_rand(&seed) % 256
						 : ITEM_FP + t_rand(&seed) % 64;
		t_fill_random(junk, 1 + t_rand(&seed) % 8, &seed);
		poke(img, off, junk, 1 + t_rand(&seed) % 8);
		gp_error_clear(&err);
		if (gp_disk_open(img, &o, &d, &err) == 0) {
			uint8_t b[4096];
			gp_disk_pread(d, b, sizeof(b), 0);
			gp_disk_close(d, NULL);
		} else {
			cr_assert(strstr(err.msg, "f.vhdx"), "%s", err.msg);
		}
	}
	free(img);
}

Test(vhdx_bad, misaligned_region_entry)
{
	char *img = good_image("a.vhdx");

	/* Copy 1 only: the other copy is used. */
	poke64(img, VHDX_REGION1_OFFSET + VHDX_RT_ENTRIES_OFF + VHDX_RTE_FILE_OFFSET_OFF, BAT + 4096);
	fix_rt_crc(img, VHDX_REGION1_OFFSET);
	expect_reads_pattern(img);
	rt_set(img, 0, VHDX_RTE_FILE_OFFSET_OFF, BAT + 4096, 8);
	expect_refused(img, GP_ERR_CORRUPT, "entry 0 (offset 0x301000, length 0x100000) is not 1 MiB-aligned");
	free(img);
	/* The length too (a BAT region of 1 MiB - 4 KiB still holds this BAT). */
	img = good_image("l.vhdx");
	rt_set(img, 0, VHDX_RTE_LENGTH_OFF, MiB - 4096, 4);
	expect_refused(img, GP_ERR_CORRUPT, "entry 0 (offset 0x300000, length 0xff000) is not 1 MiB-aligned");
	free(img);
}
