/* test_mbr.c — MBR tables: primary, extended + logical partitions (built
 * with sfdisk, checked against fdisk), EBR loops and runaway chains,
 * protective MBR, bare volumes, and the Hyper-V-written fixtures. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "helpers.h"
#include "le.h"
#include "part_test.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(mbr, .init = setup, .fini = teardown);

/* 64 MiB disk: 1 primary Linux, 1 extended with three logical partitions. */
static char *make_extended(void)
{
	char *img = t_strdup_printf("%s/ext.img", dir);
	struct t_run r;

	t_run(&r,
	      "truncate -s 64M '%s' && printf 'label: dos\\nlabel-id: 0x12345678\\n\\n"
	      "start=2048, size=20480, type=83\\nstart=22528, type=5\\n"
	      "size=10240, type=7\\nsize=10240, type=83\\nsize=8192, type=82\\n' | sfdisk '%s'",
	      img, img);
	cr_assert_eq(r.status, 0, "sfdisk: %s", r.err);
	t_run_free(&r);
	return img;
}

Test(mbr, windows_mbr_layout)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "m.img", "64M", 512, "mbr");
	struct pt_oracle_part o[4];

	cr_assert_eq(pt_oracle(img, 512, o, 4), 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_MBR);
	cr_assert_eq(pt.mbr_signature, 0x4750555E);
	cr_assert_eq(pt.count, 1);
	cr_assert_eq(pt.parts[0].number, 1);
	cr_assert_eq(pt.parts[0].first_lba, o[0].start);
	cr_assert_eq(pt.parts[0].length, o[0].sectors * 512);
	cr_assert_eq(pt.parts[0].offset, 1048576);
	cr_assert_eq(pt.parts[0].mbr_type, 0x07);
	cr_assert_str_eq(pt.parts[0].type_name, "NTFS/exFAT/IFS");
	cr_assert(pt.parts[0].bootable);
	cr_assert_eq(pt.parts[0].volsig, GP_VOLSIG_NTFS);
	cr_assert_str_eq(pt.parts[0].type_guid, "");
	cr_assert_str_eq(pt.warning, "");
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, extended_and_logical_partitions)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = make_extended();
	struct pt_oracle_part o[8];
	size_t n = pt_oracle(img, 512, o, 8);

	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_MBR);
	cr_assert_eq(pt.mbr_signature, 0x12345678);
	/* fdisk lists the extended container too; gpup lists data partitions. */
	cr_assert_eq(n, 5);
	cr_assert_eq(pt.count, 4);
	static const unsigned numbers[] = { 1, 5, 6, 7 };
	static const uint8_t types[] = { 0x83, 0x07, 0x83, 0x82 };
	for (size_t i = 0; i < 4; i++) {
		const struct gp_partition *p = &pt.parts[i];
		const struct pt_oracle_part *want = NULL;
		for (size_t k = 0; k < n; k++)
			if (o[k].number == numbers[i])
				want = &o[k];
		cr_assert(want, "fdisk has no partition %u", numbers[i]);
		cr_assert_eq(p->number, numbers[i]);
		cr_assert_eq(p->first_lba, want->start, "partition %u", p->number);
		cr_assert_eq(p->length, want->sectors * 512);
		cr_assert_eq(p->mbr_type, types[i]);
		cr_assert_eq(strtoul(want->type, NULL, 16), types[i]);
		cr_assert_eq(p->logical, i > 0);
	}
	cr_assert_str_eq(pt_find(&pt, 7)->type_name, "Linux swap");
	gp_part_table_free(&pt);
	free(img);
}

/* The third EBR's link pointed back at the first EBR. */
Test(mbr, ebr_loop_detected)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = make_extended();
	uint8_t sec[512];
	struct mbr m;

	pt_peek(img, 47104ull * 512, sec, 512);
	cr_assert(mbr_has_signature(sec));
	mbr_parse(sec, &m);
	cr_assert_eq(m.record[0].os_type, 0x82, "not the third EBR");
	m.record[1].os_type = MBR_TYPE_EXTENDED_CHS;
	m.record[1].starting_lba = 0; /* relative to the extended partition: the first EBR */
	m.record[1].size_in_lba = 2048;
	mbr_serialize(&m, sec);
	pt_patch(img, 47104ull * 512, sec, 512);

	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	char *want = t_strdup_printf("%s: EBR at LBA 47104: link to the next EBR loops back to LBA 22528", img);
	cr_assert(strstr(err.msg, want), "%s", err.msg);
	cr_assert_eq(pt.count, 0);
	free(want);
	gp_part_table_free(&pt);
	free(img);
}

/* 130 distinct EBRs, each linking to the next: bounded, not followed forever. */
Test(mbr, runaway_ebr_chain_bounded)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = t_strdup_printf("%s/chain.img", dir);
	uint8_t sec[512] = { 0 };
	struct mbr m = { 0 };
	struct t_run r;

	t_run(&r, "truncate -s 8M '%s'", img);
	t_run_free(&r);
	m.record[0].os_type = MBR_TYPE_EXTENDED_LBA;
	m.record[0].starting_lba = 2048;
	m.record[0].size_in_lba = 8192;
	mbr_serialize(&m, sec);
	pt_patch(img, 0, sec, 512);
	for (uint32_t k = 0; k < 130; k++) {
		struct mbr e = { 0 };
		memset(sec, 0, sizeof(sec));
		e.record[1].os_type = MBR_TYPE_EXTENDED_CHS;
		e.record[1].starting_lba = (k + 1) * 2;
		e.record[1].size_in_lba = 2;
		mbr_serialize(&e, sec);
		pt_patch(img, (2048ull + k * 2) * 512, sec, 512);
	}
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "extended partition at LBA 2048: more than 128 EBRs"), "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, logical_partition_outside_extended)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = make_extended();
	uint8_t sec[512];
	struct mbr m;

	pt_peek(img, 22528ull * 512, sec, 512);
	mbr_parse(sec, &m);
	m.record[0].size_in_lba = 200000;
	mbr_serialize(&m, sec);
	pt_patch(img, 22528ull * 512, sec, 512);
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "EBR at LBA 22528: logical partition (LBA 24576, 200000 sectors) outside the extended partition"),
		  "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, primary_past_end_of_disk)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "m.img", "64M", 512, "mbr");
	uint8_t sec[512];
	struct mbr m;

	pt_peek(img, 0, sec, 512);
	mbr_parse(sec, &m);
	m.record[0].size_in_lba = 0xFFFFFFF0u;
	mbr_serialize(&m, sec);
	pt_patch(img, 0, sec, 512);
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "MBR at LBA 0: partition 1 (LBA 2048, 4294967280 sectors) extends past the end of the disk (131072 sectors)"),
		  "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, protective_mbr_means_gpt)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t sec[512];
	struct mbr m;

	pt_peek(img, 0, sec, 512);
	mbr_parse(sec, &m);
	cr_assert_eq(m.record[0].os_type, MBR_TYPE_GPT_PROTECTIVE);
	cr_assert_str_eq(mbr_type_name(0xEE), "GPT protective");
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_GPT);
	gp_part_table_free(&pt);

	/* Without the 0xEE record the same disk reads as the MBR it claims to
	 * be (here: an MBR with one EFI-system record). */
	m.record[0].os_type = 0xEF;
	mbr_serialize(&m, sec);
	pt_patch(img, 0, sec, 512);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_MBR);
	cr_assert_str_eq(pt.parts[0].type_name, "EFI system");
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, empty_disk_and_bare_volume)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "e.img", "16M", 512, "empty");
	struct t_run r;

	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_NONE);
	cr_assert_eq(pt.count, 0);
	cr_assert_eq(pt.whole_disk_volsig, GP_VOLSIG_NONE);
	gp_part_table_free(&pt);

	/* NTFS on the whole disk ends in 0x55AA too, but is not an MBR. */
	t_run(&r, "mkntfs -F -Q -T '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_NONE);
	cr_assert_eq(pt.count, 0);
	cr_assert_eq(pt.whole_disk_volsig, GP_VOLSIG_NTFS);
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, bad_boot_indicator_is_not_a_table)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "m.img", "64M", 512, "mbr");
	uint8_t b = 0x12;

	pt_patch(img, MBR_PARTITION_RECORD + MBR_PR_BOOT_INDICATOR, &b, 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_NONE);
	cr_assert(strstr(pt.warning, "boot indicator 0x12"), "%s", pt.warning);
	gp_part_table_free(&pt);
	free(img);
}

/* Half of the 0x55AA signature is no signature: without the other byte the
 * sector is not a partition table (and not taken for one). */
Test(mbr, half_signature_is_not_a_table)
{
	for (int half = 0; half < 2; half++) {
		struct gp_partition_table pt;
		struct gp_error err = { 0 };
		char *img = pt_mkgpt(dir, "m.img", "64M", 512, "mbr");
		uint8_t z = 0;

		pt_patch(img, MBR_SIGNATURE + half, &z, 1);
		cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
		cr_assert_eq(pt.kind, GP_PT_NONE, "signature byte %d cleared", half);
		cr_assert_eq(pt.count, 0);
		gp_part_table_free(&pt);
		free(img);
	}
}

/* Only 0x80 marks a partition active; an EBR's record is not screened like
 * the MBR's, so its other indicator values must not read as "bootable". */
Test(mbr, logical_partition_boot_indicator)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = make_extended();
	uint8_t b = 0x01;

	/* The first EBR (LBA 22528): its data record is partition 5. */
	pt_patch(img, 22528ull * 512 + MBR_PARTITION_RECORD + MBR_PR_BOOT_INDICATOR, &b, 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.count, 4);
	cr_assert_not(pt_find(&pt, 5)->bootable, "boot indicator 0x01 is not active");
	b = 0x80;
	pt_patch(img, 22528ull * 512 + MBR_PARTITION_RECORD + MBR_PR_BOOT_INDICATOR, &b, 1);
	gp_part_table_free(&pt);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert(pt_find(&pt, 5)->bootable);
	cr_assert_not(pt_find(&pt, 6)->bootable);
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, unsupported_sector_size)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "m.img", "64M", 512, "mbr");

	cr_assert_eq(pt_read(img, 1024, &pt, &err), GP_ERR_UNSUPPORTED);
	cr_assert(strstr(err.msg, "sector size 1024"), "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}

/* The Hyper-V-written fixtures: MBR, one NTFS partition at sector 128. */
static void check_hyperv(const struct gp_partition_table *pt)
{
	cr_assert_eq(pt->kind, GP_PT_MBR);
	cr_assert_eq(pt->count, 1);
	cr_assert_eq(pt->parts[0].number, 1);
	cr_assert_eq(pt->parts[0].first_lba, 128);
	cr_assert_eq(pt->parts[0].offset, 65536);
	cr_assert_eq(pt->parts[0].mbr_type, 0x07);
	cr_assert_eq(pt->parts[0].volsig, GP_VOLSIG_NTFS);
	cr_assert_lt(pt->parts[0].offset + pt->parts[0].length, 10485760 + 1);
	cr_assert_str_eq(pt->warning, "", "%s", pt->warning);
}

static void hyperv_libvhdi(const char *name)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = t_hyperv_fixture(name, dir);

	cr_assert_eq(pt_read_libvhdi(img, &pt, &err), 0, "%s", err.msg);
	check_hyperv(&pt);
	gp_part_table_free(&pt);
	free(img);
}

Test(mbr, hyperv_fixed_vhdx_libvhdi) { hyperv_libvhdi("fixed.vhdx"); }
Test(mbr, hyperv_dynamic_vhdx_libvhdi) { hyperv_libvhdi("dynamic.vhdx"); }
Test(mbr, hyperv_fixed_vhd_libvhdi) { hyperv_libvhdi("fixed.vhd"); }
Test(mbr, hyperv_dynamic_vhd_libvhdi) { hyperv_libvhdi("dynamic.vhd"); }

/* Through the default backend (gpup's VHDX engine). */
static void hyperv_default(const char *name)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	struct gp_disk *d;
	char *img = t_hyperv_fixture(name, dir);
	int rc = gp_disk_open(img, NULL, &d, &err);

	cr_assert_eq(rc, 0, "%s", err.msg);
	cr_assert_eq(gp_part_read(d, &pt, &err), 0, "%s", err.msg);
	check_hyperv(&pt);
	gp_part_table_free(&pt);
	gp_disk_close(d, NULL);
	free(img);
}

Test(mbr, hyperv_fixed_vhdx_engine) { hyperv_default("fixed.vhdx"); }
Test(mbr, hyperv_dynamic_vhdx_engine) { hyperv_default("dynamic.vhdx"); }

/* Logical partition 5 grown over logical 6 (both inside the extended one). */
Test(mbr, overlapping_logical_partitions)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = make_extended();
	uint8_t sec[512];
	struct mbr m;

	pt_peek(img, 22528ull * 512, sec, 512);
	mbr_parse(sec, &m);
	m.record[0].size_in_lba = 20000;
	mbr_serialize(&m, sec);
	pt_patch(img, 22528ull * 512, sec, 512);
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "MBR partitions 5 and 6 overlap (LBAs 24576..44575 and 36864..47103)"),
		  "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}
