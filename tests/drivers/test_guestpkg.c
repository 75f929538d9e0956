/* test_guestpkg.c — guestpkg.h: the guest's own vendor display packages and
 * a HostDriverStore package checked against its INF, read from the guest
 * that tests/fixtures/mkguest.sh --doctor builds (plant-doctor.sh says what
 * it holds). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "guestpkg.h"
#include "helpers.h"
#include "store.h"

#define DOCTOR_GUEST "--size 512M --vhdx --doctor"
#define HNV "nv_dispi.inf_amd64_9999aaaa99990009"
#define HDS GP_GUEST_HOSTDRIVERSTORE "/"

static char *dir;
static struct gp_disk *disk;
static struct gp_ntfs *vol;

static void setup(void) { dir = t_tmpdir(); }

static void teardown(void)
{
	struct gp_error err = { 0 };

	if (vol)
		cr_expect_eq(gp_ntfs_close(vol, &err), 0, "%s", err.msg);
	if (disk)
		cr_expect_eq(gp_disk_close(disk, &err), 0, "%s", err.msg);
	vol = NULL;
	disk = NULL;
	t_rm_rf(dir);
	free(dir);
}

TestSuite(guestpkg, .init = setup, .fini = teardown, .timeout = 300);

/* The --doctor guest, opened read-only. */
static void open_guest(void)
{
	struct gp_disk_open_opts dopts = { .writable = false };
	struct gp_ntfs_open_opts vopts = { .require_windows = true };
	struct gp_error err = { 0 };
	char *img = t_guest_copy(dir, DOCTOR_GUEST, "g.vhdx");

	cr_assert_eq(gp_disk_open(img, &dopts, &disk, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_open(disk, &vopts, &vol, &err), 0, "%s", err.msg);
	free(img);
}

Test(guestpkg, gpu_vendor_by_provider_word)
{
	cr_assert_str_eq(gp_gpu_vendor("NVIDIA"), "NVIDIA");
	cr_assert_str_eq(gp_gpu_vendor("nvidia corporation"), "NVIDIA");
	cr_assert_str_eq(gp_gpu_vendor("Advanced Micro Devices, Inc."), "AMD");
	cr_assert_str_eq(gp_gpu_vendor("ATI Technologies Inc."), "AMD");
	cr_assert_str_eq(gp_gpu_vendor("AMD"), "AMD");
	cr_assert_str_eq(gp_gpu_vendor("Intel(R) Corporation"), "Intel");
	cr_assert_str_eq(gp_gpu_vendor(" \"Qualcomm Technologies\""), "Qualcomm");
	/* Words that only begin like a vendor, and display drivers of no
	 * GPU vendor. */
	cr_assert_null(gp_gpu_vendor("AMDISK Ltd"));
	cr_assert_null(gp_gpu_vendor("Intellisense"));
	cr_assert_null(gp_gpu_vendor("Microsoft"));
	cr_assert_null(gp_gpu_vendor("Parsec Cloud, Inc."));
	cr_assert_null(gp_gpu_vendor(""));
	cr_assert_null(gp_gpu_vendor(NULL));
}

/* The NVIDIA package the guest installed itself, matched to its published
 * oem3.inf, and the published AMD INF whose folder is gone; not the Parsec
 * display (no GPU vendor), the Intel network INF (not Display), Microsoft's
 * basicdisplay, nor the NGX junction of the HostDriverStore package. */
Test(guestpkg, vendor_displays_found_by_class_and_provider)
{
	struct gp_guest_driver *d = NULL;
	struct gp_error err = { 0 };
	size_t n = 0;

	open_guest();
	cr_assert_eq(gp_guest_vendor_displays(vol, &d, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 2, "%zu packages", n);
	cr_assert_str_eq(d[0].folder, "");
	cr_assert_str_eq(d[0].inf, "oem7.inf");
	cr_assert_str_eq(d[0].published, "oem7.inf");
	cr_assert_str_eq(d[0].vendor, "AMD");
	cr_assert_str_eq(d[0].provider, "Advanced Micro Devices, Inc.");
	cr_assert_str_eq(d[0].driver_ver, "08/01/2023,31.0.21001.45002");
	cr_assert_str_eq(d[1].folder, "nv_dispi.inf_amd64_0a1b2c3d4e5f6a7b");
	cr_assert_str_eq(d[1].inf, "nv_dispi.inf");
	cr_assert_str_eq(d[1].published, "oem3.inf");
	cr_assert_str_eq(d[1].vendor, "NVIDIA");
	cr_assert_str_eq(d[1].provider, "NVIDIA");
	cr_assert_str_eq(d[1].driver_ver, "10/10/2023,31.0.15.3742");
	free(d);
}

/* The INF names four files the folder lacks (one in a media subfolder) and a
 * System32 companion whose source is one of them and that the guest lacks;
 * the companion the guest has (nvapi64.dll) is not missing. */
Test(guestpkg, host_package_missing_files_named_by_its_inf)
{
	static const char *const want[] = {
		HDS HNV "/NvCamera64.dll", HDS HNV "/nvcuda_loader64.dll",
		HDS HNV "/nvml_loader.dll", HDS HNV "/nvwgf2umx.dll", "Windows/System32/nvml.dll",
	};
	struct gp_guest_pkg_check c;
	struct gp_error err = { 0 };

	open_guest();
	cr_assert_eq(gp_guest_check_host_package(vol, HNV, &c, &err), 0, "%s", err.msg);
	cr_assert_str_eq(c.problem, "");
	cr_assert_str_eq(c.inf, "nv_dispi.inf");
	cr_assert_str_eq(c.provider, "NVIDIA");
	cr_assert_str_eq(c.vendor, "NVIDIA");
	cr_assert(c.is_display);
	cr_assert_eq(c.n_missing, 5, "%zu missing", c.n_missing);
	for (size_t i = 0; i < 5; i++)
		cr_assert_str_eq(c.missing[i], want[i]);
	gp_guest_pkg_check_free(&c);
	/* The complete package: nothing missing. */
	cr_assert_eq(gp_guest_check_host_package(vol, "nvmdi.inf_amd64_8888bbbb88880008", &c, &err),
		     0, "%s", err.msg);
	cr_assert_str_eq(c.problem, "");
	cr_assert_eq(c.n_missing, 0);
	cr_assert(c.is_display);
	gp_guest_pkg_check_free(&c);
}

Test(guestpkg, host_package_absent_or_misnamed)
{
	struct gp_guest_pkg_check c;
	struct gp_error err = { 0 };

	open_guest();
	cr_assert_eq(gp_guest_check_host_package(vol, "nope.inf_amd64_00", &c, &err),
		     GP_ERR_NOTFOUND);
	gp_guest_pkg_check_free(&c);
	cr_assert_eq(gp_guest_check_host_package(vol, "not-a-package", &c, &err), 0, "%s", err.msg);
	cr_assert(strstr(c.problem, "not named like a driver package"), "%s", c.problem);
	gp_guest_pkg_check_free(&c);
}
