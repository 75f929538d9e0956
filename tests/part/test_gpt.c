/* test_gpt.c — GPT reading (512 and 4096-byte sectors) against util-linux
 * fdisk as the independent reader, the primary → backup fallback, every
 * header/array rule, and gp_gpt_write round trips. */
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

TestSuite(gpt, .init = setup, .fini = teardown);

static const char *const win_names[] = {
	"EFI system partition", "Microsoft reserved partition", "Basic data partition",
};
static const char *const win_types[] = {
	"EFI system", "Microsoft reserved", "Microsoft basic data",
};
static const enum gp_volsig win_vols[] = { GP_VOLSIG_FAT32, GP_VOLSIG_NONE, GP_VOLSIG_NTFS };

/* The Windows layout as mkgpt.sh builds it, checked against fdisk. */
static void check_windows(const char *img, const struct gp_partition_table *pt, unsigned ss)
{
	struct pt_oracle_part o[8];
	size_t n = pt_oracle(img, ss, o, 8);

	cr_assert_eq(pt->kind, GP_PT_GPT);
	cr_assert_eq(pt->sector_size, ss);
	cr_assert_str_eq(pt->disk_guid, "4A7F3C21-5B9D-4E86-A1C2-3D4E5F607182");
	cr_assert_eq(n, 3, "fdisk sees %zu partitions", n);
	cr_assert_eq(pt->count, 3);
	for (size_t i = 0; i < 3; i++) {
		const struct gp_partition *p = &pt->parts[i];
		cr_assert_eq(p->number, o[i].number);
		cr_assert_eq(p->first_lba, o[i].start, "partition %u start", p->number);
		cr_assert_eq(p->last_lba - p->first_lba + 1, o[i].sectors);
		cr_assert_eq(p->offset, o[i].start * ss);
		cr_assert_eq(p->length, o[i].sectors * ss);
		cr_assert_str_eq(p->type_guid, o[i].type);
		cr_assert_str_eq(p->guid, o[i].uuid);
		cr_assert_str_eq(p->name, win_names[i]);
		cr_assert_str_eq(p->type_name, win_types[i]);
		cr_assert_eq(p->volsig, win_vols[i], "partition %u volume %s", p->number,
			     gp_volsig_name(p->volsig));
	}
}

Test(gpt, windows_layout_512)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");

	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	check_windows(img, &pt, 512);
	cr_assert_not(pt.used_backup_gpt);
	cr_assert_str_eq(pt.warning, "", "unexpected warning: %s", pt.warning);
	cr_assert_eq(pt.gpt_header_lba, 1);
	cr_assert_eq(pt.gpt_entry_count, 128);
	cr_assert_eq(pt.gpt_entry_size, 128);
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, windows_layout_4096)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w4k.img", "400M", 4096, "windows");

	/* Explicit sector size, as a 4Kn VHDX presents it... */
	cr_assert_eq(pt_read(img, 4096, &pt, &err), 0, "%s", err.msg);
	check_windows(img, &pt, 4096);
	cr_assert_str_eq(pt.warning, "");
	gp_part_table_free(&pt);
	/* ...and the raw-image probe finds it on its own. */
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.sector_size, 4096);
	cr_assert_eq(pt.count, 3);
	gp_part_table_free(&pt);
	/* Read with the wrong sector size, the protective MBR promises a GPT
	 * that is not there: a clear error, not an empty table. */
	cr_assert_eq(pt_read(img, 512, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, img) && strstr(err.msg, "GPT header at LBA 1"), "%s", err.msg);
	cr_assert_eq(pt.count, 0);
	gp_part_table_free(&pt);
	free(img);
}

static void flip_disk_guid(struct gpt_header *h) { h->disk_guid[0] ^= 0xFF; }

Test(gpt, damaged_primary_header_uses_backup)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t b;

	/* One byte inside the CRC-covered header: CRC mismatch. */
	pt_peek(img, 512 + GPT_HDR_DISK_GUID, &b, 1);
	b ^= 0x01;
	pt_patch(img, 512 + GPT_HDR_DISK_GUID, &b, 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	check_windows(img, &pt, 512);
	cr_assert(pt.used_backup_gpt);
	cr_assert_eq(pt.gpt_header_lba, 256 * 2048 - 1);
	char *want = t_strdup_printf("%s: GPT header at LBA 1: CRC mismatch", img);
	cr_assert(strstr(pt.warning, want), "warning: %s", pt.warning);
	cr_assert(strstr(pt.warning, "using the backup at LBA 524287"), "warning: %s", pt.warning);
	free(want);
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, damaged_primary_array_uses_backup)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t b;

	/* A byte of entry 3's name in the primary array: header fine, array CRC not. */
	uint64_t off = 2 * 512 + 2 * 128 + GPT_ENT_PARTITION_NAME;
	pt_peek(img, off, &b, 1);
	b ^= 0x20;
	pt_patch(img, off, &b, 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert(pt.used_backup_gpt);
	cr_assert(strstr(pt.warning, "partition entry array at LBA 2: CRC mismatch"),
		  "warning: %s", pt.warning);
	cr_assert_str_eq(pt_find(&pt, 3)->name, "Basic data partition");
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, both_headers_damaged_is_an_error)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t z[8] = { 0 };

	pt_patch(img, 512, z, 8);                     /* primary signature gone */
	pt_gpt_edit_header(img, 512, 524287, flip_disk_guid); /* valid CRC ... */
	uint8_t b;
	pt_peek(img, 524287ull * 512 + GPT_HDR_MY_LBA, &b, 1);
	b ^= 1;                                       /* ... then broken */
	pt_patch(img, 524287ull * 512 + GPT_HDR_MY_LBA, &b, 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	char *want = t_strdup_printf("%s: GPT header at LBA 1: no \"EFI PART\" signature; "
				     "backup GPT header at LBA 524287: CRC mismatch", img);
	cr_assert(strstr(err.msg, want), "message: %s", err.msg);
	cr_assert_eq(pt.count, 0);
	cr_assert_eq(pt.parts, NULL);
	free(want);
	gp_part_table_free(&pt);
	free(img);
}

/* The backup header with nothing wrong but its CRC (one Disk GUID byte
 * flipped after the CRC was computed): with the primary gone the disk has no
 * valid GPT; with the primary good, the backup is reported damaged. */
Test(gpt, backup_header_with_only_a_bad_crc)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t b, z[8] = { 0 };

	pt_peek(img, 524287ull * 512 + GPT_HDR_DISK_GUID, &b, 1);
	b ^= 0x01;
	pt_patch(img, 524287ull * 512 + GPT_HDR_DISK_GUID, &b, 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_not(pt.used_backup_gpt);
	cr_assert(pt.warning && strstr(pt.warning, "backup GPT header at LBA 524287: CRC mismatch"),
		  "warning: %s", pt.warning ? pt.warning : "(none)");
	gp_part_table_free(&pt);

	pt_patch(img, 512, z, 8); /* primary signature gone */
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT,
		     "a backup with a bad CRC must not be used");
	cr_assert(strstr(err.msg, "backup GPT header at LBA 524287: CRC mismatch"), "%s", err.msg);
	cr_assert_eq(pt.count, 0);
	gp_part_table_free(&pt);
	free(img);
}

static void absurd_count(struct gpt_header *h) { h->number_of_partition_entries = 0xFFFFFFFFu; }
static void odd_size(struct gpt_header *h) { h->size_of_partition_entry = 132; }
static void small_size(struct gpt_header *h) { h->size_of_partition_entry = 64; }
static void huge_size(struct gpt_header *h)
{
	h->size_of_partition_entry = 0x80000000u;
	h->number_of_partition_entries = 1;
}
static void usable_past_end(struct gpt_header *h) { h->last_usable_lba = 1ull << 40; }
static void array_in_usable(struct gpt_header *h) { h->partition_entry_lba = h->first_usable_lba; }
static void bad_revision(struct gpt_header *h) { h->revision = 0x00020000; }
static void big_header(struct gpt_header *h) { h->header_size = 4096; }
static void moved_header(struct gpt_header *h) { h->my_lba += 1; }

/* Each rule broken in the primary (with a valid CRC): the backup is used and
 * the warning names the rule; broken in both: GP_ERR_CORRUPT naming it. */
static void check_rule(void (*fn)(struct gpt_header *), const char *rule)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");

	pt_gpt_edit_header(img, 512, 1, fn);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert(pt.used_backup_gpt);
	cr_assert(strstr(pt.warning, rule), "rule \"%s\" not in: %s", rule, pt.warning);
	cr_assert_eq(pt.count, 3);
	gp_part_table_free(&pt);

	pt_gpt_edit_header(img, 512, 524287, fn);
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, rule), "rule \"%s\" not in: %s", rule, err.msg);
	cr_assert(strstr(err.msg, "backup GPT header at LBA 524287"), "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, absurd_entry_count) { check_rule(absurd_count, "4294967295 entries x 128 bytes exceeds 16 MiB"); }
Test(gpt, entry_size_not_multiple_of_8) { check_rule(odd_size, "SizeOfPartitionEntry 132"); }
Test(gpt, entry_size_below_128) { check_rule(small_size, "SizeOfPartitionEntry 64"); }
Test(gpt, absurd_entry_size) { check_rule(huge_size, "exceeds 16 MiB"); }
Test(gpt, usable_lbas_past_disk) { check_rule(usable_past_end, "do not fit the disk"); }
Test(gpt, array_inside_usable_area) { check_rule(array_in_usable, "overlaps the usable LBAs"); }
Test(gpt, unknown_revision) { check_rule(bad_revision, "revision 0x00020000"); }
Test(gpt, header_size_beyond_sector) { check_rule(big_header, "HeaderSize 4096 outside 92..512"); }
/* A header (valid CRC) that says it lives elsewhere: a copy, not this one. */
Test(gpt, my_lba_not_where_read) { check_rule(moved_header, "MyLBA is"); }

static void entry_past_usable(struct gpt_entry *e) { e->ending_lba = 524287; }
static void entry_overlaps_msr(struct gpt_entry *e) { e->starting_lba -= 100; }

Test(gpt, entry_outside_usable_lbas)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");

	pt_gpt_edit_entry(img, 512, 1, 2, entry_past_usable);
	pt_gpt_edit_entry(img, 512, 524287, 2, entry_past_usable);
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "GPT entry 3 at LBA 2: LBAs 239616..524287 outside the usable LBAs 2048..524254"),
		  "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, overlapping_entries)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");

	pt_gpt_edit_entry(img, 512, 1, 2, entry_overlaps_msr);
	cr_assert_eq(pt_read(img, 0, &pt, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "GPT entries 2 and 3 overlap"), "%s", err.msg);
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, missing_protective_mbr_still_reads)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t zero[512] = { 0 };

	pt_patch(img, 0, zero, sizeof(zero));
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_eq(pt.kind, GP_PT_GPT);
	cr_assert_eq(pt.count, 3);
	cr_assert(strstr(pt.warning, "protective MBR missing"), "%s", pt.warning);
	gp_part_table_free(&pt);
	free(img);
}

/* A disk grown after partitioning keeps its backup at the old last LBA:
 * the primary's AlternateLBA still finds it when the primary array is bad. */
Test(gpt, grown_disk_backup_found_through_alternate_lba)
{
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	struct t_run r;

	t_run(&r, "truncate -s 300M '%s'", img);
	cr_assert_eq(r.status, 0);
	t_run_free(&r);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert_not(pt.used_backup_gpt);
	cr_assert(strstr(pt.warning, "backup GPT header at LBA 524287 is not at the last LBA 614399"),
		  "%s", pt.warning);
	gp_part_table_free(&pt);

	uint8_t b;
	pt_peek(img, 2 * 512 + 40, &b, 1);
	b ^= 0xFF;
	pt_patch(img, 2 * 512 + 40, &b, 1);
	cr_assert_eq(pt_read(img, 0, &pt, &err), 0, "%s", err.msg);
	cr_assert(pt.used_backup_gpt);
	cr_assert_eq(pt.gpt_header_lba, 524287);
	cr_assert_eq(pt.count, 3);
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, header_parse_serialize_round_trip)
{
	struct gpt_header h = {
		.revision = GPT_REVISION_1_0, .header_size = 92, .my_lba = 1,
		.alternate_lba = 999, .first_usable_lba = 34, .last_usable_lba = 966,
		.partition_entry_lba = 2, .number_of_partition_entries = 128,
		.size_of_partition_entry = 128, .partition_entry_array_crc32 = 0xDEADBEEF,
	}, back;
	uint8_t sec[512];
	char why[128];

	memset(h.disk_guid, 0xA5, 16);
	gpt_header_serialize(&h, sec, sizeof(sec));
	cr_assert_eq(memcmp(sec, "EFI PART", 8), 0);
	cr_assert_eq(gpt_header_parse(sec, sizeof(sec), &back, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(back.alternate_lba, 999);
	cr_assert_eq(back.partition_entry_array_crc32, 0xDEADBEEF);
	cr_assert_eq(back.header_crc32, get_le32(sec + GPT_HDR_HEADER_CRC32));
	/* The CRC is zlib's CRC-32 of the 92 bytes with the CRC field zeroed. */
	uint8_t copy[92];
	memcpy(copy, sec, 92);
	memset(copy + GPT_HDR_HEADER_CRC32, 0, 4);
	cr_assert_eq(back.header_crc32, gpt_crc32(copy, 92));
	cr_assert_eq(gpt_crc32("123456789", 9), 0xCBF43926); /* the CRC-32 check value */
}

Test(gpt, guid_and_name_conversions)
{
	uint8_t g[16];
	char s[GP_GUID_STR_LEN];
	uint16_t name[GPT_ENT_NAME_UNITS];
	char out[GP_PART_NAME_MAX];

	cr_assert_eq(gpt_guid_parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", g), 0);
	cr_assert_eq(g[0], 0x28); /* first field little-endian */
	cr_assert_eq(g[8], 0xBA); /* last two fields as bytes */
	gpt_guid_format(g, s);
	cr_assert_str_eq(s, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
	cr_assert_neq(gpt_guid_parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93", g), 0);
	cr_assert_neq(gpt_guid_parse("C12A7328+F81F-11D2-BA4B-00A0C93EC93B", g), 0);

	cr_assert_eq(gpt_name_from_utf8("Données €𝄞", name), 0);
	cr_assert_eq(name[9], 0xD834); /* U+1D11E as a surrogate pair */
	cr_assert_eq(name[10], 0xDD1E);
	gpt_name_to_utf8(name, out);
	cr_assert_str_eq(out, "Données €𝄞");
	cr_assert_neq(gpt_name_from_utf8("0123456789012345678901234567890123456", name), 0);
	cr_assert_neq(gpt_name_from_utf8("\xC3\x28", name), 0);
	/* A lone surrogate on disk becomes U+FFFD, and a full 36-unit name
	 * (no NUL) is read to its end. */
	for (int i = 0; i < GPT_ENT_NAME_UNITS; i++)
		name[i] = 'a';
	name[0] = 0xDC00;
	gpt_name_to_utf8(name, out);
	cr_assert_eq(strlen(out), 3 + 35);
	cr_assert_eq(memcmp(out, "\xEF\xBF\xBD", 3), 0);
}

/* gp_gpt_write, read back by fdisk (independent) and by gp_part_read. */
static void write_and_check(unsigned ss, const char *size)
{
	struct gp_disk_open_opts o = { .format = GP_DISK_FORMAT_RAW, .writable = true };
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	char *img = t_strdup_printf("%s/new.img", dir);
	uint64_t mib = 1048576 / ss;
	struct gp_gpt_new_part parts[2] = {
		{ "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "11111111-2222-3333-4444-000000000001",
		  "EFI system partition", mib, 101 * mib - 1, 0 },
		{ "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "11111111-2222-3333-4444-000000000002",
		  "Données", 101 * mib, 150 * mib - 1, 1ull << 63 },
	};

	t_run(&r, "truncate -s %s '%s'", size, img);
	cr_assert_eq(r.status, 0);
	t_run_free(&r);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_gpt_write(d, ss, "11111111-2222-3333-4444-555555555555", parts, 2, &err), 0,
		     "%s", err.msg);
	/* Bad input is refused before anything is written. */
	struct gp_gpt_new_part bad = parts[1];
	bad.first_lba = 2;
	cr_assert_eq(gp_gpt_write(d, ss, "11111111-2222-3333-4444-555555555555", &bad, 1, &err),
		     GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "outside the usable LBAs"), "%s", err.msg);
	gp_disk_close(d, NULL);

	struct pt_oracle_part or[4];
	size_t n = pt_oracle(img, ss, or, 4);
	cr_assert_eq(n, 2);
	cr_assert_eq(or[0].start, mib);
	cr_assert_eq(or[0].sectors, 100 * mib);
	cr_assert_str_eq(or[1].type, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
	cr_assert_str_eq(or[1].uuid, "11111111-2222-3333-4444-000000000002");
	t_run(&r, "fdisk -b %u -l -o Device,Name '%s'", ss, img);
	cr_assert(strstr(r.out, "Données"), "%s", r.out);
	cr_assert_not(strstr(r.out, "corrupt") || strstr(r.err, "corrupt"), "%s%s", r.out, r.err);
	t_run_free(&r);

	err.code = 0;
	cr_assert_eq(pt_read(img, ss, &pt, &err), 0, "%s", err.msg);
	cr_assert_str_eq(pt.warning, "", "%s", pt.warning);
	cr_assert_eq(pt.count, 2);
	cr_assert_str_eq(pt.parts[1].name, "Données");
	cr_assert_eq(pt.parts[1].attributes, 1ull << 63);
	gp_part_table_free(&pt);
	free(img);
}

Test(gpt, write_512_read_back_by_fdisk) { write_and_check(512, "200M"); }
Test(gpt, write_4096_read_back_by_fdisk) { write_and_check(4096, "200M"); }

Test(gpt, write_512_verified_by_sgdisk)
{
	struct gp_disk_open_opts o = { .format = GP_DISK_FORMAT_RAW, .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	char *img = t_strdup_printf("%s/sg.img", dir);
	struct gp_gpt_new_part p = { "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
				     "11111111-2222-3333-4444-000000000009", "root", 2048, 4095, 0 };

	t_run(&r, "truncate -s 8M '%s'", img);
	t_run_free(&r);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_gpt_write(d, 512, "11111111-2222-3333-4444-555555555555", &p, 1, &err), 0,
		     "%s", err.msg);
	gp_disk_close(d, NULL);
	t_run(&r, "sgdisk -v '%s'", img);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "No problems found"), "%s", r.out);
	t_run_free(&r);
	free(img);
}
