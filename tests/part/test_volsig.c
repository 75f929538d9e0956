/* test_volsig.c — volume signatures: boot sectors made by mkntfs and
 * mkfs.fat, a planted BitLocker / exFAT OEM id, blank sectors; and the
 * signature reaching the partition table. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "part_test.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(volsig, .init = setup, .fini = teardown);

/* Run a formatter on a fresh sparse file of @size and return its boot sector. */
static void format_sector(const char *size, const char *cmd, uint8_t sec[512])
{
	char *f = t_strdup_printf("%s/vol.img", dir);
	struct t_run r;

	t_run(&r, "rm -f '%s' && truncate -s %s '%s' && %s '%s'", f, size, f, cmd, f);
	cr_assert_eq(r.status, 0, "%s: %s", cmd, r.err);
	t_run_free(&r);
	pt_peek(f, 0, sec, 512);
	free(f);
}

Test(volsig, ntfs_from_mkntfs)
{
	uint8_t s[512];

	format_sector("16M", "mkntfs -F -Q -T", s);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_NTFS);
	cr_assert_str_eq(gp_volsig_name(GP_VOLSIG_NTFS), "NTFS");
}

Test(volsig, bitlocker_planted)
{
	uint8_t s[512];

	format_sector("16M", "mkntfs -F -Q -T", s);
	memcpy(s + 3, "-FVE-FS-", 8);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_BITLOCKER);
	cr_assert_str_eq(gp_volsig_name(GP_VOLSIG_BITLOCKER), "BitLocker");
}

Test(volsig, fat12_16_32_from_mkfs_fat)
{
	uint8_t s[512];

	format_sector("1M", "mkfs.fat --invariant", s);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_FAT12);
	format_sector("32M", "mkfs.fat -F 16 --invariant", s);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_FAT16);
	format_sector("64M", "mkfs.fat -F 32 --invariant", s);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_FAT32);
	/* The cluster count decides, not the informative type string. */
	memcpy(s + 0x52, "FAT12   ", 8);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_FAT32);
	/* Without the whole 0x55AA signature a FAT boot sector is none:
	 * either byte missing is enough. */
	s[511] = 0;
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_NONE, "0x55 0x00");
	s[510] = 0;
	s[511] = 0xAA;
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_NONE, "0x00 0xAA");
}

Test(volsig, exfat_refs_and_blank)
{
	uint8_t s[512] = { 0 };

	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_NONE);
	memcpy(s + 3, "EXFAT   ", 8);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_EXFAT);
	memcpy(s + 3, "ReFS\0\0\0\0", 8);
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_REFS);
	/* Too short to hold a boot sector: nothing is recognised. */
	cr_assert_eq(gp_volsig_detect(s, 100), GP_VOLSIG_NONE);
	cr_assert_eq(gp_volsig_detect(NULL, 512), GP_VOLSIG_NONE);
	/* A jump and 0x55AA alone do not make a FAT volume. */
	memset(s, 0, sizeof(s));
	s[0] = 0xEB;
	s[510] = 0x55;
	s[511] = 0xAA;
	cr_assert_eq(gp_volsig_detect(s, 512), GP_VOLSIG_NONE);
}

/* BitLocker planted in the basic data partition reaches the table. */
Test(volsig, bitlocker_in_partition_table)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");

	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	uint64_t off = pt_find(&pt, 3)->offset;
	cr_assert_eq(pt_find(&pt, 3)->volsig, GP_VOLSIG_NTFS);
	gp_part_table_free(&pt);
	pt_patch(img, off + 3, "-FVE-FS-", 8);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt_find(&pt, 3)->volsig, GP_VOLSIG_BITLOCKER);
	cr_assert_eq(pt_find(&pt, 1)->volsig, GP_VOLSIG_FAT32);
	gp_part_table_free(&pt);
	free(img);
}

/* An MBR whose boot code starts with a jump over a FAT-shaped BPB (as GRUB's
 * does) is still an MBR when its records describe partitions. */
Test(volsig, jumping_mbr_with_partitions_is_mbr)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "m.img", "64M", 512, "mbr");
	uint8_t fat[512], sec[512];

	format_sector("1M", "mkfs.fat --invariant", fat);
	pt_peek(img, 0, sec, 512);
	memcpy(sec, fat, 0x60); /* jump + BPB into the boot code area */
	pt_patch(img, 0, sec, 512);
	cr_assert_eq(gp_volsig_detect(sec, 512), GP_VOLSIG_FAT12);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_MBR);
	cr_assert_eq(pt.count, 1);
	gp_part_table_free(&pt);
	free(img);
}
