/*
 * test_layer.c — the shared driver layer (README, "Many VMs"): GOLD, a
 * child `layer.avhdx` that `gpup prepare --into-child` fills with the
 * driver, and per-VM children of the layer made by `gpup create --parent`.
 * The VMs share the layer's one copy of the driver: each VM child holds
 * less than two blocks. libvhdi reads the three-level chain GOLD <- layer
 * <- vm like gpup's own VHDX engine, over the whole virtual disk, and
 * `gpup verify` (libvhdi plus the NTFS reader) finds the driver's files.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "disk.h"
#include "fleet_t.h"
#include "vhdx.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(layer, .init = setup, .fini = teardown, .timeout = 300);

static uint64_t file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return (uint64_t)st.st_size;
}

/* Payload blocks with file space, and the block size, of a VHDX. */
static uint64_t allocated_blocks(const char *path, uint32_t *block_size)
{
	struct gp_error err = { 0 };
	struct vhdx_info info;
	struct vhdx *v;
	uint64_t n;

	cr_assert_eq(vhdx_open(path, NULL, &v, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_get_info(v, &info), 0);
	n = info.allocated_blocks;
	*block_size = info.block_size;
	vhdx_info_free(&info);
	vhdx_close(v, NULL);
	return n;
}

/* Every byte of @img's virtual disk reads the same through libvhdi as
 * through gpup's engine (the chain resolved by each on its own). Returns
 * the bytes compared. */
static uint64_t libvhdi_equals_engine(const char *img)
{
	struct gp_disk_open_opts oe = { 0 }, ol = { .backend = GP_DISK_BACKEND_LIBVHDI };
	enum { CHUNK = 4 << 20 };
	struct gp_error err = { 0 };
	struct gp_disk *de, *dl;
	char *a = malloc(CHUNK), *b = malloc(CHUNK);
	uint64_t size;

	cr_assert(a && b);
	cr_assert_eq(gp_disk_open(img, &oe, &de, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_open(img, &ol, &dl, &err), 0, "%s", err.msg);
	size = gp_disk_size(de);
	cr_assert_eq(gp_disk_size(dl), size);
	for (uint64_t off = 0; off < size; off += CHUNK) {
		uint64_t n = size - off < CHUNK ? size - off : CHUNK;

		cr_assert_eq(gp_disk_pread(de, a, n, off), 0);
		cr_assert_eq(gp_disk_pread(dl, b, n, off), 0, "%s", gp_disk_error(dl)->msg);
		cr_assert(memcmp(a, b, n) == 0, "%s: libvhdi differs from gpup at 0x%llx", img,
			  (unsigned long long)off);
	}
	gp_disk_close(dl, NULL);
	gp_disk_close(de, NULL);
	free(a);
	free(b);
	return size;
}

Test(layer, vms_share_one_driver_layer_and_libvhdi_reads_the_chain_like_gpup)
{
	char *st = t_fixture("mkstore.sh", "");
	char *gold = t_guest_copy(dir, "--size 2G --vhdx", "gold.vhdx");
	char *layer = t_strdup_printf("%s/layer.avhdx", dir);
	char *vm[2] = { t_strdup_printf("%s/vm1.avhdx", dir), t_strdup_printf("%s/vm2.avhdx", dir) };
	char *empty = t_strdup_printf("%s/empty.avhdx", dir);
	char gold_before[65], gold_after[65];
	uint32_t bs;
	uint64_t layer_blocks;
	struct json_object *lines[4];
	struct t_run r;

	cr_assert_eq(t_sha256_file(gold, gold_before), 0);
	t_gpup(&r, "prepare '%s' --into-child '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -q", gold,
	       layer, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(gold, gold_after), 0);
	cr_assert_str_eq(gold_after, gold_before, "the layer's prepare wrote into GOLD");
	layer_blocks = allocated_blocks(layer, &bs);
	cr_assert_gt(layer_blocks, 0, "the driver is in the layer");

	/* What a child holds before anything is written to it. */
	t_gpup(&r, "create '%s' --parent '%s'", empty, gold);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	for (int i = 0; i < 2; i++) {
		uint32_t vbs;

		t_gpup(&r, "create '%s' --parent '%s'", vm[i], layer);
		cr_assert_eq(r.status, 0, "%s", r.err);
		t_run_free(&r);
		cr_assert_lt(allocated_blocks(vm[i], &vbs), 2);
		cr_assert_lt(file_size(vm[i]), file_size(empty) + 2 * (uint64_t)vbs,
			     "VM child %d holds %llu bytes: more than two blocks over an empty child",
			     i + 1, (unsigned long long)file_size(vm[i]));

		/* The whole chain, through both readers. */
		cr_assert_eq(libvhdi_equals_engine(vm[i]), 2ULL << 30);

		/* The driver's files, through libvhdi and the NTFS reader. */
		t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" FT_NV_GPU "'", vm[i], st);
		cr_assert_eq(r.status, 0, "verify %s: %s%s", vm[i], r.out, r.err);
		t_run_free(&r);
	}
	/* ...and the layer alone reads the same too. */
	libvhdi_equals_engine(layer);

	/* scan resolves the three-level chains and finds both VMs current. */
	t_gpup(&r, "scan '%s' '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' --json", vm[0], vm[1], st);
	cr_assert_eq(r.status, 0, "both VMs current: %s%s", r.out, r.err);
	cr_assert_eq(ft_json_lines(r.out, lines, 4), 3, "%s", r.out);
	for (int i = 0; i < 2; i++) {
		struct json_object *chain = ft_jget(lines[i], "parents");

		cr_assert_str_eq(ft_jstr(lines[i], "verdict"), "current");
		cr_assert_eq(json_object_array_length(chain), 2, "%s", r.out);
		cr_assert(strstr(json_object_get_string(json_object_array_get_idx(chain, 0)),
				 "layer.avhdx"), "%s", r.out);
		cr_assert(strstr(json_object_get_string(json_object_array_get_idx(chain, 1)),
				 "gold.vhdx"), "%s", r.out);
	}
	for (int i = 0; i < 3; i++)
		json_object_put(lines[i]);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(gold, gold_after), 0);
	cr_assert_str_eq(gold_after, gold_before);
	free(empty);
	free(vm[0]);
	free(vm[1]);
	free(layer);
	free(gold);
	free(st);
}
