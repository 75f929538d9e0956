/*
 * vt.h — helpers shared by the VHDX engine's tests (tests/vhdx/test_*.c):
 * reading an image through a chosen backend, writing through the engine,
 * the qemu-img oracle. Header-only because the Makefile links only test_*.c
 * of a test directory.
 */
#ifndef GPUP_TEST_VT_H
#define GPUP_TEST_VT_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "helpers.h"
#include "vhdx.h"
#include "vhdx_priv.h"

/* Read [off, off+len) of @path through @backend (parent override @parent). */
static inline uint8_t *vt_read(const char *path, enum gp_disk_backend backend,
			       const char *parent, uint64_t off, uint64_t len)
{
	struct gp_disk_open_opts o = { .backend = backend, .parent_path = parent };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	uint8_t *buf = malloc(len ? len : 1);

	cr_assert(buf);
	cr_assert_eq(gp_disk_open(path, &o, &d, &err), 0, "open %s: %s", path, err.msg);
	cr_assert_eq(gp_disk_pread(d, buf, len, off), 0, "read %s: %s", path,
		     gp_disk_error(d)->msg);
	gp_disk_close(d, NULL);
	return buf;
}

/* Write through the engine and close cleanly. */
static inline void vt_write(const char *path, const void *buf, uint64_t len, uint64_t off)
{
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;

	cr_assert_eq(gp_disk_open(path, &o, &d, &err), 0, "open %s: %s", path, err.msg);
	cr_assert_eq(gp_disk_pwrite(d, buf, len, off), 0, "write %s: %s", path,
		     gp_disk_error(d)->msg);
	cr_assert_eq(gp_disk_close(d, &err), 0, "close %s: %s", path, err.msg);
}

static inline void vt_create(const char *path, uint64_t size, uint32_t bs, uint32_t lss)
{
	struct vhdx_create_opts co = { .size = size, .block_size = bs, .logical_sector_size = lss };
	struct gp_error err = { 0 };

	cr_assert_eq(vhdx_create(path, &co, &err), 0, "create %s: %s", path, err.msg);
}

/* `qemu-img check` exit status (0: no errors). */
static inline int vt_qemu_check(const char *img)
{
	struct t_run r;
	int st = t_run(&r, "qemu-img check -f vhdx '%s'", img);

	if (st)
		fprintf(stderr, "qemu-img check %s: %s%s\n", img, r.out, r.err);
	t_run_free(&r);
	return st;
}

/* The whole disk through `qemu-img convert -O raw`, into @scratch. */
static inline uint8_t *vt_qemu_raw(const char *img, const char *scratch, size_t *len)
{
	struct t_run r;
	uint8_t *buf;

	cr_assert_eq(t_run(&r, "qemu-img convert -f vhdx -O raw '%s' '%s'", img, scratch), 0,
		     "qemu-img convert %s: %s", img, r.err);
	t_run_free(&r);
	buf = (uint8_t *)t_read_file(scratch, len);
	cr_assert(buf);
	return buf;
}

/* [off, off+len) of the virtual disk through qemu's VHDX driver: a raw
 * format node with offset/size over the vhdx node, so qemu reads only that
 * range (a whole-disk convert of a big sparse image takes qemu minutes).
 * @off and @len must be multiples of 512. */
static inline uint8_t *vt_qemu_range(const char *img, uint64_t off, uint64_t len,
				     const char *scratch)
{
	struct t_run r;
	size_t got;
	uint8_t *buf;

	cr_assert_eq(t_run(&r, "rm -f '%s'; qemu-img convert --image-opts "
			      "'driver=raw,offset=%llu,size=%llu,file.driver=vhdx,"
			      "file.file.driver=file,file.file.filename=%s' -O raw '%s'",
			   scratch, (unsigned long long)off, (unsigned long long)len, img, scratch),
		     0, "qemu-img range read: %s", r.err);
	t_run_free(&r);
	buf = (uint8_t *)t_read_file(scratch, &got);
	cr_assert(buf);
	cr_assert_eq(got, len);
	return buf;
}

/* Compare @child through libvhdi and through the engine, sampled per block:
 * the first 16 KiB of every block (where libvhdi's misread of a missing
 * sector bitmap lands: bits of the child's file identifier and headers) and
 * 4 KiB at a pseudo-random place in it. */
static inline void vt_libvhdi_equals_engine(const char *child)
{
	struct gp_disk_open_opts oe = { 0 }, ol = { .backend = GP_DISK_BACKEND_LIBVHDI };
	struct gp_error err = { 0 };
	struct gp_disk *de, *dl;
	uint8_t a[16384], b[16384];
	uint64_t seed = 5, bs, size;
	struct vhdx_info info;

	cr_assert_eq(gp_disk_open(child, &oe, &de, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_open(child, &ol, &dl, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_get_info(gp_disk_vhdx(de), &info), 0);
	bs = info.block_size;
	size = gp_disk_size(de);
	vhdx_info_free(&info);
	for (uint64_t off = 0; off < size; off += bs) {
		uint64_t r = off + (t_rand(&seed) % (bs / 4096)) * 4096;
		uint64_t n = size - off < sizeof(a) ? size - off : sizeof(a);

		cr_assert_eq(gp_disk_pread(de, a, n, off), 0);
		cr_assert_eq(gp_disk_pread(dl, b, n, off), 0, "%s", gp_disk_error(dl)->msg);
		cr_assert(memcmp(a, b, n) == 0, "libvhdi differs from the engine in the block at 0x%llx",
			  (unsigned long long)off);
		if (r + 4096 <= size) {
			cr_assert_eq(gp_disk_pread(de, a, 4096, r), 0);
			cr_assert_eq(gp_disk_pread(dl, b, 4096, r), 0);
			cr_assert(memcmp(a, b, 4096) == 0, "libvhdi differs from the engine at 0x%llx",
				  (unsigned long long)r);
		}
	}
	gp_disk_close(dl, NULL);
	gp_disk_close(de, NULL);
}

/* Make @child look like a child from Hyper-V or another tool: no sector
 * bitmap block for any chunk (the BAT entries set NOT_PRESENT). */
static inline void vt_strip_bitmaps(const char *child)
{
	struct gp_error err = { 0 };
	struct vhdx *v;
	uint8_t zero[8] = { 0 };
	FILE *f;

	cr_assert_eq(vhdx_open_self(child, &v, &err), 0, "%s", err.msg);
	f = fopen(child, "r+b");
	cr_assert(f);
	for (uint64_t c = 0; c < v->geo.bitmap_blocks; c++) {
		uint64_t i = c * (v->geo.chunk_ratio + 1) + v->geo.chunk_ratio;
		cr_assert_eq(fseeko(f, (off_t)(v->bat_offset + i * 8), SEEK_SET), 0);
		cr_assert_eq(fwrite(zero, 8, 1, f), 1);
	}
	fclose(f);
	vhdx_close(v, NULL);
}

static inline bool vt_dirty(const char *img)
{
	struct gp_error err = { 0 };
	bool dirty = true;

	cr_assert_eq(vhdx_log_is_dirty(img, &dirty, &err), 0, "%s", err.msg);
	return dirty;
}

#endif
