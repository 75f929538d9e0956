/* test_disk.c — the disk interface: format detection, raw backend, libvhdi
 * backend on the Hyper-V-written fixtures, locking, range checks. */
#include <criterion/criterion.h>
#include <string.h>

#include "disk.h"
#include "vhdx.h"

#include <sys/stat.h>
#include "helpers.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(disk, .init = setup, .fini = teardown);

Test(disk, detects_formats)
{
	struct gp_error err = { 0 };
	enum gp_disk_format f;
	char *vhdx = t_hyperv_fixture("dynamic.vhdx", dir);
	char *vhd = t_hyperv_fixture("fixed.vhd", dir);
	char *raw = t_strdup_printf("%s/raw.img", dir);

	cr_assert_eq(t_write_file(raw, "hello", 5), 0);
	cr_assert_eq(gp_disk_detect_format(vhdx, &f, &err), 0);
	cr_assert_eq(f, GP_DISK_FORMAT_VHDX);
	cr_assert_eq(gp_disk_detect_format(vhd, &f, &err), 0);
	cr_assert_eq(f, GP_DISK_FORMAT_VHD);
	cr_assert_eq(gp_disk_detect_format(raw, &f, &err), 0);
	cr_assert_eq(f, GP_DISK_FORMAT_RAW);
	/* The whole 8-byte "vhdxfile" identifies a VHDX, not its first half. */
	cr_assert_eq(t_write_file(raw, "vhdxdata and more", 17), 0);
	cr_assert_eq(gp_disk_detect_format(raw, &f, &err), 0);
	cr_assert_eq(f, GP_DISK_FORMAT_RAW, "\"vhdxdata\" is no VHDX signature");
	cr_assert_eq(gp_disk_detect_format("/nonexistent/x", &f, &err), GP_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "/nonexistent/x"), "message names the file: %s", err.msg);
	free(vhdx);
	free(vhd);
	free(raw);
}

Test(disk, raw_read_write_and_range)
{
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	char *raw = t_strdup_printf("%s/raw.img", dir);
	char buf[16] = { 0 };
	static char zeros[4096];

	cr_assert_eq(t_write_file(raw, zeros, sizeof(zeros)), 0);
	cr_assert_eq(gp_disk_open(raw, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_size(d), 4096);
	cr_assert_eq(gp_disk_pwrite(d, "abc", 3, 4093), 0);
	cr_assert_eq(gp_disk_pwrite(d, "abcd", 4, 4093), GP_ERR_INVALID);
	cr_assert(strstr(gp_disk_error(d)->msg, "beyond"));
	cr_assert_eq(gp_disk_pread(d, buf, 3, 4093), 0);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	cr_assert_eq(gp_disk_close(d, &err), 0);
	free(raw);
}

Test(disk, second_writer_is_refused)
{
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *a, *b;
	char *raw = t_strdup_printf("%s/raw.img", dir);

	cr_assert_eq(t_write_file(raw, "0123456789", 10), 0);
	cr_assert_eq(gp_disk_open(raw, &o, &a, &err), 0);
	cr_assert_eq(gp_disk_open(raw, &o, &b, &err), GP_ERR_LOCKED);
	cr_assert(strstr(err.msg, "in use"), "%s", err.msg);
	gp_error_clear(&err);
	o.writable = false;
	cr_assert_eq(gp_disk_open(raw, &o, &b, &err), GP_ERR_LOCKED, "a reader waits for the writer");
	gp_disk_close(a, NULL);
	cr_assert_eq(gp_disk_open(raw, &o, &b, &err), 0);
	gp_disk_close(b, NULL);
	free(raw);
}

/* The Hyper-V fixtures hold an MBR whose only partition is NTFS at sector
 * 128: libvhdi must see both, in every container flavour it supports. */
static void check_mbr_ntfs(const char *name)
{
	struct gp_disk_open_opts o = { .backend = GP_DISK_BACKEND_LIBVHDI };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	unsigned char sec[512];
	char *img = t_hyperv_fixture(name, dir);

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s: %s", name, err.msg);
	cr_assert_eq(gp_disk_size(d), 10 * 1024 * 1024, "%s", name);
	cr_assert_eq(gp_disk_pread(d, sec, 512, 0), 0);
	cr_assert(sec[510] == 0x55 && sec[511] == 0xaa, "%s: MBR signature", name);
	cr_assert_eq(gp_disk_pread(d, sec, 512, 128 * 512), 0);
	cr_assert_eq(memcmp(sec + 3, "NTFS    ", 8), 0, "%s: NTFS boot sector", name);
	cr_assert_eq(gp_disk_close(d, &err), 0);
	free(img);
}

Test(disk, libvhdi_reads_hyperv_fixtures)
{
	check_mbr_ntfs("dynamic.vhdx");
	check_mbr_ntfs("fixed.vhdx");
	check_mbr_ntfs("dynamic.vhd");
	check_mbr_ntfs("fixed.vhd");
}

Test(disk, libvhdi_is_read_only)
{
	struct gp_disk_open_opts o = { .backend = GP_DISK_BACKEND_LIBVHDI, .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	char *img = t_hyperv_fixture("dynamic.vhd", dir);

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), GP_ERR_READONLY);
	cr_assert(strstr(err.msg, img), "%s", err.msg);
	free(img);
}

Test(disk, differencing_without_parent_is_a_clear_error)
{
	struct gp_disk_open_opts o = { .backend = GP_DISK_BACKEND_LIBVHDI };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	char *img = t_hyperv_fixture("differencing.avhdx", dir);

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), GP_ERR_NOTFOUND, "%s", err.msg);
	cr_assert(strstr(err.msg, "parent"), "%s", err.msg);
	free(img);
}

/* A FIFO (or anything but a regular file) named as an image is refused at
 * once: it must not hang gpup waiting for a writer. */
Test(disk, fifo_is_refused_without_blocking, .timeout = 10)
{
	struct gp_error err = { 0 };
	struct gp_disk *d;
	enum gp_disk_format f;
	char *fifo = t_strdup_printf("%s/image.vhdx", dir);
	bool dirty;

	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(gp_disk_detect_format(fifo, &f, &err), GP_ERR_UNSUPPORTED);
	cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_disk_open(fifo, NULL, &d, &err), GP_ERR_UNSUPPORTED);
	gp_error_clear(&err);
	cr_assert_eq(vhdx_log_is_dirty(fifo, &dirty, &err), GP_ERR_UNSUPPORTED);
	free(fifo);
}
