/* test_mkgpt.c — tests/fixtures/mkgpt.sh itself: deterministic output,
 * sparse, file systems that independent tools accept (libfsntfs's
 * fsntfsinfo at the partition offset, fsck.fat on the ESP), boot sectors
 * that know their partition (hidden sectors) and sector size. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"
#include "le.h"
#include "part_test.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(mkgpt, .init = setup, .fini = teardown);

static void deterministic(unsigned ss, const char *size, const char *layout)
{
	char *a = pt_mkgpt(dir, "a.img", size, ss, layout);
	char *b = pt_mkgpt(dir, "b.img", size, ss, layout);
	char ha[65], hb[65];
	struct stat st;

	cr_assert_eq(t_sha256_file(a, ha), 0);
	cr_assert_eq(t_sha256_file(b, hb), 0);
	cr_assert_str_eq(ha, hb, "two %s/%u runs differ", layout, ss);
	cr_assert_eq(stat(a, &st), 0);
	cr_assert_lt((uint64_t)st.st_blocks * 512, 64ull << 20, "image is not sparse");
	free(a);
	free(b);
}

Test(mkgpt, deterministic_and_sparse_512) { deterministic(512, "256M", "windows"); }
Test(mkgpt, deterministic_and_sparse_4096) { deterministic(4096, "400M", "windows"); }
Test(mkgpt, deterministic_mbr) { deterministic(512, "64M", "mbr"); }

/* NTFS boot sector: BPB BytesPerSector (0x0B), HiddenSectors (0x1C) = the
 * partition's start, as Windows writes them; libfsntfs reads the volume. */
static void check_ntfs(const char *img, const struct gp_partition *p, unsigned ss)
{
	uint8_t bs[512];
	struct t_run r;

	pt_peek(img, p->offset, bs, sizeof(bs));
	cr_assert_eq(memcmp(bs + 3, "NTFS    ", 8), 0);
	cr_assert_eq(get_le16(bs + 0x0B), ss);
	cr_assert_eq(get_le32(bs + 0x1C), p->first_lba);
	t_run(&r, "fsntfsinfo -o %llu '%s'", (unsigned long long)p->offset, img);
	cr_assert_eq(r.status, 0, "fsntfsinfo: %s%s", r.out, r.err);
	cr_assert(strstr(r.out, "Windows"), "volume label: %s", r.out);
	t_run_free(&r);
}

static void check_layout(unsigned ss, const char *size)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", size, ss, "windows");
	char *esp = t_strdup_printf("%s/esp.img", dir);
	struct t_run r;

	cr_assert_eq(pt_read(img, ss, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.count, 3);
	const struct gp_partition *p1 = pt_find(&pt, 1), *p2 = pt_find(&pt, 2), *p3 = pt_find(&pt, 3);
	cr_assert_eq(p1->offset, 1 << 20, "ESP at 1 MiB");
	cr_assert_eq(p1->length, (ss == 4096 ? 260ull : 100ull) << 20);
	cr_assert_eq(p2->offset, p1->offset + p1->length);
	cr_assert_eq(p2->length, 16 << 20);
	cr_assert_eq(p3->offset, p2->offset + p2->length);
	cr_assert_eq(p3->offset % (1 << 20), 0);
	check_ntfs(img, p3, ss);
	/* The ESP is a clean FAT32 volume (dosfstools' checker, read-only). */
	t_run(&r, "dd if='%s' of='%s' bs=1M skip=1 count=%llu conv=sparse status=none && fsck.fat -n '%s'",
	      img, esp, (unsigned long long)(p1->length >> 20), esp);
	cr_assert_eq(r.status, 0, "fsck.fat: %s%s", r.out, r.err);
	cr_assert(strstr(r.out, "SYSTEM") || strstr(r.out, "files"), "%s", r.out);
	t_run_free(&r);
	gp_part_table_free(&pt);
	free(esp);
	free(img);
}

Test(mkgpt, windows_file_systems_512) { check_layout(512, "256M"); }
Test(mkgpt, windows_file_systems_4096) { check_layout(4096, "400M"); }

Test(mkgpt, mbr_ntfs_volume)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "m.img", "64M", 512, "mbr");

	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.count, 1);
	check_ntfs(img, &pt.parts[0], 512);
	gp_part_table_free(&pt);
	free(img);
}

Test(mkgpt, bad_arguments)
{
	struct t_run r;
	const char *src = t_env("GPUP_SRC");

	t_run(&r, "sh '%s/tests/fixtures/mkgpt.sh' '%s/x.img' 64M --sector 1024", src, dir);
	cr_assert_neq(r.status, 0);
	cr_assert(strstr(r.err, "--sector must be 512 or 4096"), "%s", r.err);
	t_run_free(&r);
	t_run(&r, "sh '%s/tests/fixtures/mkgpt.sh' '%s/x.img' 64M --layout zfs", src, dir);
	cr_assert_neq(r.status, 0);
	t_run_free(&r);
	t_run(&r, "sh '%s/tests/fixtures/mkgpt.sh' '%s/x.img'", src, dir);
	cr_assert_neq(r.status, 0);
	cr_assert(strstr(r.err, "usage"), "%s", r.err);
	t_run_free(&r);
	/* Too small for the Windows layout: fdisk cannot place the partitions. */
	t_run(&r, "sh '%s/tests/fixtures/mkgpt.sh' '%s/x.img' 32M", src, dir);
	cr_assert_neq(r.status, 0);
	cr_assert(strstr(r.err, "could not lay out the windows partitions: The last usable GPT sector is 65502"),
		  "%s", r.err);
	t_run_free(&r);
	t_run(&r, "test ! -e '%s/x.img'", dir);
	cr_assert_eq(r.status, 0, "a failed build left its image behind");
	t_run_free(&r);
}
