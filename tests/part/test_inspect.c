/* test_inspect.c — `gpup inspect`: human and --json output (parsed with
 * json-c) against fdisk's view, warnings, exit codes, one-line errors, and
 * that inspecting never changes the image. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "helpers.h"
#include "part_test.h"
#include "vhdx.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(inspect, .init = setup, .fini = teardown);

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;
	cr_assert(json_object_object_get_ex(o, key, &v), "no \"%s\" in JSON", key);
	return v;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(inspect, human_output_windows_gpt)
{
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	char before[65], after[65];
	struct t_run r;

	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "inspect '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.err, "");
	cr_assert(strstr(r.out, "Format:           raw"), "%s", r.out);
	cr_assert(strstr(r.out, "Virtual size:     268435456 bytes"), "%s", r.out);
	cr_assert(strstr(r.out, "Partition table:  GPT, disk GUID 4A7F3C21-5B9D-4E86-A1C2-3D4E5F607182"),
		  "%s", r.out);
	cr_assert(strstr(r.out, "EFI system partition"), "%s", r.out);
	cr_assert(strstr(r.out, "Microsoft basic data"), "%s", r.out);
	cr_assert(strstr(r.out, "NTFS       Basic data partition"), "%s", r.out);
	cr_assert(strstr(r.out, "FAT32      EFI system partition"), "%s", r.out);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "inspect changed the image");
	free(img);
}

Test(inspect, json_matches_fdisk)
{
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	struct pt_oracle_part o[4];
	size_t n = pt_oracle(img, 512, o, 4);
	struct t_run r;

	t_gpup(&r, "inspect --json '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j, "not JSON: %s", r.out);
	cr_assert_eq(json_object_get_int(jget(j, "schema")), 1);
	cr_assert_str_eq(json_object_get_string(jget(j, "format")), "raw");
	cr_assert_str_eq(json_object_get_string(jget(j, "backend")), "raw");
	cr_assert_eq(json_object_get_int64(jget(j, "virtual_size")), 268435456);
	cr_assert_eq(json_object_get_int(jget(j, "logical_sector_size")), 512);
	cr_assert(json_object_is_type(jget(j, "vhdx"), json_type_null));
	cr_assert(json_object_is_type(jget(j, "guest"), json_type_null));
	cr_assert_eq(json_object_array_length(jget(j, "warnings")), 0);
	json_object *t = jget(j, "partition_table");
	cr_assert_str_eq(json_object_get_string(jget(t, "kind")), "GPT");
	cr_assert_str_eq(json_object_get_string(jget(t, "disk_guid")),
			 "4A7F3C21-5B9D-4E86-A1C2-3D4E5F607182");
	cr_assert_eq(json_object_get_boolean(jget(t, "used_backup_gpt")), 0);
	json_object *parts = jget(t, "partitions");
	cr_assert_eq(json_object_array_length(parts), n);
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(parts, i);
		cr_assert_eq(json_object_get_int(jget(p, "number")), (int)o[i].number);
		cr_assert_eq(json_object_get_int64(jget(p, "offset")), (int64_t)(o[i].start * 512));
		cr_assert_eq(json_object_get_int64(jget(p, "length")), (int64_t)(o[i].sectors * 512));
		cr_assert_str_eq(json_object_get_string(jget(p, "type_guid")), o[i].type);
		cr_assert_str_eq(json_object_get_string(jget(p, "guid")), o[i].uuid);
		cr_assert(json_object_is_type(jget(p, "mbr_type"), json_type_null));
	}
	json_object *p3 = json_object_array_get_idx(parts, 2);
	cr_assert_str_eq(json_object_get_string(jget(p3, "type")), "Microsoft basic data");
	cr_assert_str_eq(json_object_get_string(jget(p3, "name")), "Basic data partition");
	cr_assert_str_eq(json_object_get_string(jget(p3, "volume")), "NTFS");
	json_object_put(j);
	t_run_free(&r);
	free(img);
}

Test(inspect, json_4096_sector_gpt)
{
	char *img = pt_mkgpt(dir, "w4k.img", "400M", 4096, "windows");
	struct t_run r;

	t_gpup(&r, "inspect --json '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j, "not JSON: %s", r.out);
	json_object *t = jget(j, "partition_table");
	cr_assert_eq(json_object_get_int(jget(t, "sector_size")), 4096);
	json_object *p1 = json_object_array_get_idx(jget(t, "partitions"), 0);
	cr_assert_eq(json_object_get_int64(jget(p1, "first_lba")), 256);
	cr_assert_eq(json_object_get_int64(jget(p1, "offset")), 1048576);
	cr_assert_eq(json_object_get_int64(jget(p1, "length")), 260ll << 20);
	json_object_put(j);
	t_run_free(&r);
	free(img);
}

Test(inspect, backup_gpt_is_a_warning)
{
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t zero[8] = { 0 };
	struct t_run r;

	pt_patch(img, 512, zero, sizeof(zero));
	t_gpup(&r, "inspect '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "gpup: warning: ") &&
		  strstr(r.err, "GPT header at LBA 1: no \"EFI PART\" signature; using the backup at LBA 524287"),
		  "%s", r.err);
	cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.out, "read from the BACKUP header"), "%s", r.out);
	t_run_free(&r);

	t_gpup(&r, "inspect --json '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j);
	cr_assert_eq(json_object_get_boolean(jget(jget(j, "partition_table"), "used_backup_gpt")), 1);
	json_object *w = jget(j, "warnings");
	cr_assert_eq(json_object_array_length(w), 1);
	cr_assert(strstr(json_object_get_string(json_object_array_get_idx(w, 0)), "using the backup"));
	json_object_put(j);
	t_run_free(&r);
	free(img);
}

Test(inspect, corrupt_table_one_line_error)
{
	char *img = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	uint8_t zero[8] = { 0 };
	struct t_run r;

	pt_patch(img, 512, zero, sizeof(zero));
	pt_patch(img, 524287ull * 512, zero, sizeof(zero));
	t_gpup(&r, "inspect --json '%s'", img);
	cr_assert_eq(r.status, 1, "status %d", r.status);
	/* --json: the failure object on stdout, nothing else (its schema:
	 * tests/cli/test_schema.c). */
	cr_assert(strstr(r.out, "\"code\":\"corrupt\"") && strstr(r.out, "\"exit_status\":1") &&
		  strstr(r.out, "no \\\"EFI PART\\\" signature"), "stdout: %s", r.out);
	cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
	char *want = t_strdup_printf("gpup: %s: GPT header at LBA 1: no \"EFI PART\" signature; "
				     "backup GPT header at LBA 524287: no \"EFI PART\" signature\n", img);
	cr_assert_str_eq(r.err, want);
	free(want);
	t_run_free(&r);
	free(img);
}

Test(inspect, missing_file_and_usage)
{
	struct t_run r;

	t_gpup(&r, "inspect '%s/nope.vhdx'", dir);
	cr_assert_eq(r.status, 1);
	cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, "nope.vhdx"), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	t_run_free(&r);

	t_gpup(&r, "inspect");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "IMAGE"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "inspect a b");
	cr_assert_eq(r.status, 2);
	t_run_free(&r);
	t_gpup(&r, "inspect --bogus x");
	cr_assert_eq(r.status, 2);
	t_run_free(&r);
	t_gpup(&r, "inspect --format qcow2 x");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "qcow2"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "inspect --help");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "Usage: gpup inspect"), "%s", r.out);
	cr_assert_str_eq(r.err, "");
	t_run_free(&r);
}

Test(inspect, not_a_disk_image)
{
	char *f = t_strdup_printf("%s/text.txt", dir);
	struct t_run r;

	cr_assert_eq(t_write_file(f, "hello\n", 6), 0);
	t_gpup(&r, "inspect --json '%s'", f);
	/* Six bytes: a raw disk smaller than one sector, no table. */
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j);
	cr_assert_str_eq(json_object_get_string(jget(jget(j, "partition_table"), "kind")), "none");
	json_object_put(j);
	t_run_free(&r);
	free(f);
}

Test(inspect, hyperv_fixture_through_libvhdi)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	char before[65], after[65];
	struct t_run r;

	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "inspect --backend libvhdi --json '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j, "not JSON: %s", r.out);
	cr_assert_str_eq(json_object_get_string(jget(j, "format")), "vhdx");
	cr_assert_str_eq(json_object_get_string(jget(j, "backend")), "libvhdi");
	cr_assert_eq(json_object_get_int64(jget(j, "virtual_size")), 10485760);
	json_object *t = jget(j, "partition_table");
	cr_assert_str_eq(json_object_get_string(jget(t, "kind")), "MBR");
	json_object *p = json_object_array_get_idx(jget(t, "partitions"), 0);
	cr_assert_eq(json_object_get_int64(jget(p, "offset")), 65536);
	cr_assert_eq(json_object_get_int(jget(p, "mbr_type")), 7);
	cr_assert_str_eq(json_object_get_string(jget(p, "volume")), "NTFS");
	json_object_put(j);
	t_run_free(&r);

	t_gpup(&r, "inspect --backend libvhdi '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "Partition table:  MBR"), "%s", r.out);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "inspect changed the image");
	free(img);
}

/* Through the VHDX engine: the VHDX section appears. */
Test(inspect, hyperv_fixture_through_engine)
{
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	struct t_run r;

	t_gpup(&r, "inspect --json '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j, "not JSON: %s", r.out);
	cr_assert_str_eq(json_object_get_string(jget(j, "backend")), "vhdx");
	json_object *v = jget(j, "vhdx");
	cr_assert(json_object_is_type(v, json_type_object), "no vhdx section: %s", r.out);
	cr_assert_str_eq(json_object_get_string(jget(v, "type")), "dynamic");
	cr_assert_eq(json_object_get_int64(jget(v, "block_size")), 33554432);
	cr_assert_str_eq(json_object_get_string(jget(v, "log_state")), "empty");
	cr_assert_eq(json_object_array_length(jget(v, "parent_chain")), 0);
	json_object *p = json_object_array_get_idx(jget(jget(j, "partition_table"), "partitions"), 0);
	cr_assert_eq(json_object_get_int64(jget(p, "offset")), 65536);
	json_object_put(j);
	t_run_free(&r);
	free(img);
}

/* Copy [off, off+len) of @raw into the VHDX @vhdx at the same offset with
 * `gpup disk write` (only the regions the table and signatures live in, so
 * the dynamic VHDX stays small). */
static void copy_region(const char *raw, const char *vhdx, uint64_t off, uint64_t len)
{
	char *piece = t_strdup_printf("%s/piece", dir);
	struct t_run r;

	t_run(&r, "dd if='%s' of='%s' bs=4096 skip=%llu count=%llu status=none", raw, piece,
	      (unsigned long long)(off / 4096), (unsigned long long)(len / 4096));
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "disk write '%s' --offset %llu -i '%s'", vhdx, (unsigned long long)off, piece);
	cr_assert_eq(r.status, 0, "disk write: %s", r.err);
	t_run_free(&r);
	free(piece);
}

/* A 4Kn VHDX (which qemu-img cannot make) carrying mkgpt.sh's 4096-byte
 * GPT: the engine presents 4096-byte logical sectors and the table is read
 * with them, without the raw-image probe. */
static char *make_4k_vhdx(void)
{
	char *raw = pt_mkgpt(dir, "w4k.img", "400M", 4096, "windows");
	char *vhdx = t_strdup_printf("%s/w4k.vhdx", dir);
	struct t_run r;

	t_gpup(&r, "create '%s' --size 400M --sector-size 4096", vhdx);
	cr_assert_eq(r.status, 0, "create: %s", r.err);
	t_run_free(&r);
	copy_region(raw, vhdx, 0, 2 << 20);                   /* MBR, GPT, ESP boot sector */
	copy_region(raw, vhdx, 399ull << 20, 1 << 20);        /* backup GPT */
	copy_region(raw, vhdx, 70912ull * 4096, 4096);        /* NTFS boot sector */
	free(raw);
	return vhdx;
}

Test(inspect, vhdx_with_4096_byte_sectors)
{
	char *vhdx = make_4k_vhdx();
	struct t_run r;

	t_gpup(&r, "inspect --json '%s'", vhdx);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j, "not JSON: %s", r.out);
	cr_assert_str_eq(json_object_get_string(jget(j, "backend")), "vhdx");
	cr_assert_eq(json_object_get_int(jget(j, "logical_sector_size")), 4096);
	json_object *t = jget(j, "partition_table");
	cr_assert_str_eq(json_object_get_string(jget(t, "kind")), "GPT");
	cr_assert_eq(json_object_get_int(jget(t, "sector_size")), 4096);
	json_object *parts = jget(t, "partitions");
	cr_assert_eq(json_object_array_length(parts), 3);
	json_object *p1 = json_object_array_get_idx(parts, 0), *p3 = json_object_array_get_idx(parts, 2);
	cr_assert_eq(json_object_get_int64(jget(p1, "offset")), 1048576);
	cr_assert_str_eq(json_object_get_string(jget(p1, "volume")), "FAT32");
	cr_assert_eq(json_object_get_int64(jget(p3, "offset")), 70912ll * 4096);
	cr_assert_str_eq(json_object_get_string(jget(p3, "volume")), "NTFS");
	cr_assert_eq(json_object_array_length(jget(j, "warnings")), 0);
	json_object_put(j);
	t_run_free(&r);
	free(vhdx);
}

/* The pipeline other fixtures use: mkgpt.sh, then qemu-img convert to a
 * dynamic VHDX with 32 MiB blocks. The engine and libvhdi (independent)
 * must report the same table as the raw image. */
Test(inspect, qemu_converted_vhdx_engine_and_libvhdi_agree)
{
	char *raw = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	char *vhdx = t_strdup_printf("%s/w.vhdx", dir);
	const char *how[3] = { "--format raw '%s'", "'%s'", "--backend libvhdi '%s'" };
	const char *src[3] = { raw, vhdx, vhdx };
	char *tables[3];
	struct t_run r;

	t_run(&r, "qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=33554432 '%s' '%s'",
	      raw, vhdx);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	for (int i = 0; i < 3; i++) {
		char *args = t_strdup_printf(how[i], src[i]);
		t_gpup(&r, "inspect --json %s", args);
		cr_assert_eq(r.status, 0, "inspect %s: %s", args, r.err);
		json_object *j = json_tokener_parse(r.out);
		cr_assert(j, "not JSON: %s", r.out);
		tables[i] = strdup(json_object_to_json_string(jget(j, "partition_table")));
		json_object_put(j);
		t_run_free(&r);
		free(args);
	}
	cr_assert_str_eq(tables[1], tables[0]);
	cr_assert_str_eq(tables[2], tables[0]);
	cr_assert(strstr(tables[0], "\"Basic data partition\""), "%s", tables[0]);
	for (int i = 0; i < 3; i++)
		free(tables[i]);
	free(raw);
	free(vhdx);
}

/* A VHDX whose log holds unapplied updates (a writer crashed through the
 * engine's test hook) inspects read-only: replayed in memory, file
 * untouched. Every one of the first 8 flush boundaries is checked: each
 * leaves an image inspect reads (its log dirty or empty, as reported), and
 * at least one leaves the log dirty. */
Test(inspect, dirty_log_vhdx_inspects_read_only)
{
	char *vhdx = make_4k_vhdx();
	char *data = t_strdup_printf("%s/data", dir);
	char *copy = t_strdup_printf("%s/dirty.vhdx", dir);
	char before[65], after[65];
	struct t_run r;
	int ndirty = 0;
	uint8_t buf[4096];
	uint64_t seed = t_seed();

	t_fill_random(buf, sizeof(buf), &seed);
	cr_assert_eq(t_write_file(data, buf, sizeof(buf)), 0);
	for (int n = 1; n <= 8; n++) {
		struct gp_error err = { 0 };
		bool dirty = false;

		t_run(&r, "cp '%s' '%s' && GPUP_TEST_CRASH_AT=%d '%s' disk write '%s' --offset %d -i '%s'",
		      vhdx, copy, n, t_env("GPUP_BIN"), copy, 200 << 20, data);
		cr_assert(r.status == 99 || r.status == 0, "crash at %d: exit %d: %s", n, r.status, r.err);
		t_run_free(&r);
		cr_assert_eq(vhdx_log_is_dirty(copy, &dirty, &err), 0, "crash at %d: %s", n, err.msg);
		ndirty += dirty;
		cr_assert_eq(t_sha256_file(copy, before), 0);
		t_gpup(&r, "inspect --json '%s'", copy);
		cr_assert_eq(r.status, 0, "crash at %d: inspect: %s", n, r.err);
		json_object *j = json_tokener_parse(r.out);
		cr_assert(j, "not JSON: %s", r.out);
		json_object *v = jget(j, "vhdx");
		cr_assert_str_eq(json_object_get_string(jget(v, "log_state")), dirty ? "dirty" : "empty",
				 "crash at %d", n);
		cr_assert_eq(json_object_get_boolean(jget(v, "log_replayed")), 0, "crash at %d", n);
		cr_assert_str_eq(json_object_get_string(jget(jget(j, "partition_table"), "kind")), "GPT",
				 "crash at %d", n);
		json_object_put(j);
		t_run_free(&r);
		if (dirty) {
			t_gpup(&r, "inspect '%s'", copy);
			cr_assert_eq(r.status, 0, "%s", r.err);
			cr_assert(strstr(r.out, "Log:              dirty (updates applied in memory only"),
				  "crash at %d: %s", n, r.out);
			t_run_free(&r);
		}
		cr_assert_eq(t_sha256_file(copy, after), 0);
		cr_assert_str_eq(before, after, "crash at %d: inspect changed the image", n);
	}
	cr_assert_gt(ndirty, 0, "no crash point left a dirty log");
	free(copy);
	free(data);
	free(vhdx);
}

/* A differencing child whose parent moved: the locator fails with a
 * one-line error, --parent finds it, and the table comes through the
 * parent (the child has no blocks of its own). */
Test(inspect, differencing_child_with_parent_override)
{
	char *raw = pt_mkgpt(dir, "w.img", "256M", 512, "windows");
	char *a = t_strdup_printf("%s/a", dir), *b = t_strdup_printf("%s/b", dir);
	char *base = t_strdup_printf("%s/base.vhdx", a);
	char *moved = t_strdup_printf("%s/base.vhdx", b);
	char *child = t_strdup_printf("%s/child.vhdx", a);
	struct t_run r;

	t_run(&r, "mkdir '%s' '%s' && qemu-img convert -f raw -O vhdx -o subformat=dynamic '%s' '%s'",
	      a, b, raw, base);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "create '%s' --parent '%s'", child, base);
	cr_assert_eq(r.status, 0, "create child: %s", r.err);
	t_run_free(&r);
	cr_assert_eq(rename(base, moved), 0);

	t_gpup(&r, "inspect '%s'", child);
	cr_assert_eq(r.status, 1, "%s", r.out);
	cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, child) && strstr(r.err, "--parent"), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	t_run_free(&r);

	t_gpup(&r, "inspect --json '%s' --parent '%s'", child, moved);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j, "not JSON: %s", r.out);
	json_object *v = jget(j, "vhdx");
	cr_assert_str_eq(json_object_get_string(jget(v, "type")), "differencing");
	json_object *chain = jget(v, "parent_chain");
	cr_assert_eq(json_object_array_length(chain), 1);
	cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(chain, 0)), moved);
	cr_assert(json_object_is_type(jget(v, "parent_locator"), json_type_object));
	json_object *t = jget(j, "partition_table");
	cr_assert_str_eq(json_object_get_string(jget(t, "kind")), "GPT");
	cr_assert_eq(json_object_array_length(jget(t, "partitions")), 3);
	json_object_put(j);
	t_run_free(&r);

	t_gpup(&r, "inspect '%s' --parent '%s'", child, moved);
	cr_assert_eq(r.status, 0, "%s", r.err);
	char *line = t_strdup_printf("Parent chain:     1. %s\n", moved);
	cr_assert(strstr(r.out, line), "%s", r.out);
	cr_assert(strstr(r.out, "VHDX type:        differencing"), "%s", r.out);
	free(line);
	t_run_free(&r);
	free(raw); free(a); free(b); free(base); free(moved); free(child);
}

/* GPT attribute bit 63 (Windows sets it on MSR: "no drive letter") must come
 * out as an unsigned JSON integer, not a negative one. */
Test(inspect, gpt_attribute_bit_63_is_unsigned)
{
	struct gp_disk_open_opts o = { .format = GP_DISK_FORMAT_RAW, .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	char *img = t_strdup_printf("%s/attr.img", dir);
	struct gp_gpt_new_part p = { "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
				     "11111111-2222-3333-4444-000000000001",
				     "Microsoft reserved partition", 2048, 4095,
				     (1ull << 63) | 1 };

	t_run(&r, "truncate -s 4M '%s'", img);
	t_run_free(&r);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_gpt_write(d, 512, "11111111-2222-3333-4444-555555555555", &p, 1, &err), 0,
		     "%s", err.msg);
	gp_disk_close(d, NULL);
	t_gpup(&r, "inspect --json '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"attributes\":9223372036854775809"), "%s", r.out);
	json_object *j = json_tokener_parse(r.out);
	cr_assert(j);
	json_object *p1 = json_object_array_get_idx(jget(jget(j, "partition_table"), "partitions"), 0);
	cr_assert_eq(json_object_get_uint64(jget(p1, "attributes")), (1ull << 63) | 1);
	json_object_put(j);
	t_run_free(&r);
	free(img);
}

/* Hyper-V's differencing fixture comes without its parent: one line naming
 * the image and what is missing, nothing on stdout, exit 1. */
Test(inspect, differencing_fixture_without_parent)
{
	char *img = t_hyperv_fixture("differencing.avhdx", dir);
	struct t_run r;

	t_gpup(&r, "inspect '%s'", img);
	cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
	cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, img) && strstr(r.err, "parent"), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	t_run_free(&r);
	free(img);
}
