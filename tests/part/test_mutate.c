/* test_mutate.c — deterministic random damage to GPT and MBR/EBR structures:
 * gp_part_read must never crash (run under `make check SANITIZE=...` for
 * memory errors), and must either succeed with partitions inside the disk
 * or fail with a message naming the image and an empty table. Half of the
 * damaged GPT headers get their CRCs recomputed so that the checks behind
 * the CRC are reached too. */
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

TestSuite(mutate, .init = setup, .fini = teardown);

#define DISK_BYTES (8u << 20)

static void check_invariants(const char *img, int rc, const struct gp_partition_table *pt,
			     const struct gp_error *err, int iter)
{
	if (rc) {
		cr_assert(rc == GP_ERR_CORRUPT || rc == GP_ERR_UNSUPPORTED,
			  "iteration %d: unexpected code %d (%s)", iter, rc, err->msg);
		cr_assert(strncmp(err->msg, img, strlen(img)) == 0,
			  "iteration %d: message does not start with the image: %s", iter, err->msg);
		cr_assert(!strchr(err->msg, '\n'), "iteration %d: multi-line message", iter);
		cr_assert_eq(pt->count, 0);
		cr_assert_eq(pt->parts, NULL);
		return;
	}
	for (size_t i = 0; i < pt->count; i++) {
		const struct gp_partition *p = &pt->parts[i];
		cr_assert(p->length > 0 && p->offset + p->length <= DISK_BYTES,
			  "iteration %d: partition %u [%llu, +%llu) outside the disk", iter,
			  p->number, (unsigned long long)p->offset, (unsigned long long)p->length);
		cr_assert(p->type_name != NULL);
		cr_assert(strlen(p->name) < GP_PART_NAME_MAX);
		if (i)
			cr_assert(p->number > pt->parts[i - 1].number, "iteration %d: numbers", iter);
	}
}

/* Outcomes over a test, to show both paths were taken. */
struct tally { int ok, failed, backup; };

/* Damage 1-8 random bytes within [lo, hi) of @buf (a copy of that range). */
static void damage(uint8_t *buf, uint64_t len, uint64_t *seed)
{
	int n = 1 + (int)(t_rand(seed) % 8);
	for (int k = 0; k < n; k++) {
		uint64_t at = t_rand(seed) % len;
		buf[at] = (uint8_t)t_rand(seed);
	}
}

/* Each iteration: restore @img from @orig, damage [lo, hi) and, every other
 * time, [lo2, hi2) too (when hi2 > lo2: the other GPT copy), optionally fix
 * the primary's CRCs, read, check. */
static void run(struct tally *t, const char *img, const uint8_t *orig, uint64_t lo, uint64_t hi,
		uint64_t lo2, uint64_t hi2, int iters, uint32_t ss, bool fix_crc, uint64_t seed)
{
	for (int it = 0; it < iters; it++) {
		struct gp_partition_table pt;
		struct gp_error err = { 0 };
		uint64_t len = hi - lo;
		uint8_t *buf = malloc(len);
		bool both = hi2 > lo2 && (t_rand(&seed) & 1);

		memcpy(buf, orig + lo, len);
		damage(buf, len, &seed);
		pt_patch(img, lo, buf, len);
		if (both) {
			uint8_t *b2 = malloc(hi2 - lo2);
			memcpy(b2, orig + lo2, hi2 - lo2);
			damage(b2, hi2 - lo2, &seed);
			pt_patch(img, lo2, b2, hi2 - lo2);
			free(b2);
		}
		if (fix_crc && (t_rand(&seed) & 1)) {
			/* Recompute both CRCs of the primary header at LBA 1 so
			 * the rules behind them are reached. */
			uint8_t *h = malloc(ss);
			pt_peek(img, ss, h, ss);
			uint32_t hs = get_le32(h + GPT_HDR_HEADER_SIZE);
			uint64_t elba = get_le64(h + GPT_HDR_PARTITION_ENTRY_LBA);
			uint64_t bytes = (uint64_t)get_le32(h + GPT_HDR_NUMBER_OF_PARTITION_ENTRIES) *
					 get_le32(h + GPT_HDR_SIZE_OF_PARTITION_ENTRY);
			if (elba < DISK_BYTES / ss && bytes <= DISK_BYTES - elba * ss) {
				uint8_t *arr = malloc(bytes ? bytes : 1);
				pt_peek(img, elba * ss, arr, bytes);
				put_le32(h + GPT_HDR_PARTITION_ENTRY_ARRAY_CRC32, gpt_crc32(arr, bytes));
				free(arr);
			}
			if (hs >= GPT_HDR_MIN_SIZE && hs <= ss) {
				put_le32(h + GPT_HDR_HEADER_CRC32, 0);
				put_le32(h + GPT_HDR_HEADER_CRC32, gpt_crc32(h, hs));
			}
			pt_patch(img, ss, h, ss);
			free(h);
		}
		int rc = pt_read(img, ss, &pt, &err);
		check_invariants(img, rc, &pt, &err, it);
		if (rc)
			t->failed++;
		else
			t->ok++;
		t->backup += pt.used_backup_gpt;
		gp_part_table_free(&pt);
		pt_patch(img, lo, orig + lo, len);
		pt_patch(img, ss, orig + ss, ss);
		if (hi2 > lo2)
			pt_patch(img, lo2, orig + lo2, hi2 - lo2);
		free(buf);
	}
}

static uint8_t *load(const char *img)
{
	size_t len;
	uint8_t *b = (uint8_t *)t_read_file(img, &len);
	cr_assert(b && len == DISK_BYTES);
	return b;
}

static char *make_gpt(uint32_t ss)
{
	struct gp_disk_open_opts o = { .format = GP_DISK_FORMAT_RAW, .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	char *img = t_strdup_printf("%s/g.img", dir);
	uint64_t mib = 1048576 / ss;
	struct gp_gpt_new_part p[3] = {
		{ "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "00000000-0000-0000-0000-000000000001",
		  "EFI system partition", mib, 2 * mib - 1, 0 },
		{ "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "00000000-0000-0000-0000-000000000002",
		  "Microsoft reserved partition", 2 * mib, 3 * mib - 1, 0 },
		{ "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "00000000-0000-0000-0000-000000000003",
		  "Basic data partition", 3 * mib, 7 * mib - 1, 0 },
	};

	t_run(&r, "truncate -s %u '%s'", DISK_BYTES, img);
	t_run_free(&r);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_gpt_write(d, ss, "00000000-0000-0000-0000-0000000000AA", p, 3, &err), 0,
		     "%s", err.msg);
	gp_disk_close(d, NULL);
	return img;
}

Test(mutate, gpt_512_headers_and_arrays)
{
	char *img = make_gpt(512);
	uint8_t *orig = load(img);

	struct tally t = { 0 };

	run(&t, img, orig, 0, 34 * 512, DISK_BYTES - 33 * 512, DISK_BYTES, 600, 512, true, 1);
	run(&t, img, orig, DISK_BYTES - 33 * 512, DISK_BYTES, 0, 0, 300, 512, false, 2);
	cr_log_info("GPT 512: %d read, %d refused, %d from the backup", t.ok, t.failed, t.backup);
	cr_assert(t.ok > 0 && t.failed > 0 && t.backup > 0, "ok %d failed %d backup %d", t.ok, t.failed, t.backup);
	free(orig);
	free(img);
}

Test(mutate, gpt_4096_headers_and_arrays)
{
	char *img = make_gpt(4096);
	uint8_t *orig = load(img);

	struct tally t = { 0 };

	run(&t, img, orig, 0, 6 * 4096, DISK_BYTES - 5 * 4096, DISK_BYTES, 600, 4096, true, 3);
	cr_log_info("GPT 4096: %d read, %d refused, %d from the backup", t.ok, t.failed, t.backup);
	cr_assert(t.ok > 0 && t.failed > 0 && t.backup > 0, "ok %d failed %d backup %d", t.ok, t.failed, t.backup);
	free(orig);
	free(img);
}

Test(mutate, mbr_and_ebr_chain)
{
	char *img = t_strdup_printf("%s/e.img", dir);
	struct t_run r;

	t_run(&r,
	      "truncate -s %u '%s' && printf 'label: dos\\nlabel-id: 0x01020304\\n\\nstart=2048, size=2048, type=83\\n"
	      "start=4096, type=5\\nsize=2048, type=7\\nsize=2048, type=83\\nsize=2048, type=82\\n'"
	      " | sfdisk '%s'", DISK_BYTES, img, img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	uint8_t *orig = load(img);
	/* The MBR's records and each EBR's records (sfdisk aligns the EBRs to
	 * 1 MiB: 4096, 8192, 12288). */
	static const uint64_t sectors[] = { 0, 4096, 8192, 12288 };
	struct tally t = { 0 };
	for (int i = 0; i < 4; i++)
		run(&t, img, orig, sectors[i] * 512 + MBR_PARTITION_RECORD, sectors[i] * 512 + 512,
		    0, 0, 250, 512, false, 10 + (uint64_t)i);
	cr_log_info("MBR: %d read, %d refused", t.ok, t.failed);
	cr_assert(t.ok > 0 && t.failed > 0);
	free(orig);
	free(img);
}
