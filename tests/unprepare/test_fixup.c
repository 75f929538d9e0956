/*
 * test_fixup.c — `prepare --fixup nvlddmkm-service` (drivers/fixup.h):
 * the service key read back with hivexget from the SYSTEM hive that
 * ntfs-3g's ntfscat extracts (not gpup), idempotence, unprepare, the
 * refusals, and SIGKILLs at every write of the hive's rewrite (the fault
 * shim, tests/fixtures/fault_shim.c, "write:N:kill"); `--fixup
 * ngx-junction` read back by libfsntfs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define INTEL_GPU "PCI\\VEN_8086&DEV_A7A0"
#define NV_NEW "nv_dispi.inf_amd64_2222bbbb22220002"
#define FR "Windows/System32/DriverStore/FileRepository"
#define FR_WIN "Windows\\System32\\DriverStore\\FileRepository"
#define KEY "ControlSet001\\Services\\nvlddmkm"
#define FIX "--fixup nvlddmkm-service"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(fixup, .init = setup, .fini = teardown, .timeout = 600);

/* The generated store, with ErrorControl and LoadOrderGroup added to the
 * chosen package's nvlddmkm service section (the fixture's has neither),
 * so that every value the fix-up writes comes from the INF. */
static char *nv_store(void)
{
	char *st = t_fixture("mkstore.sh", ""), *copy = t_strdup_printf("%s/store", dir);
	struct t_run r;

	cr_assert_eq(t_run(&r, "cp -r '%s' '%s' && sed -i 's/^StartType     = 3\\r$/StartType     = 3\\r\\n"
			   "ErrorControl  = 0x1\\r\\nLoadOrderGroup = Video\\r/' '%s/" FR "/" NV_NEW
			   "/nv_dispi.inf' && grep -q LoadOrderGroup '%s/" FR "/" NV_NEW "/nv_dispi.inf'",
			   st, copy, copy, copy), 0, "%s", r.err);
	t_run_free(&r);
	free(st);
	return copy;
}

static const char *sha_of(const char *path)
{
	static char hex[65];

	cr_assert_eq(t_sha256_file(path, hex), 0, "cannot hash %s", path);
	return hex;
}

/* The SYSTEM hive of @img, extracted by ntfscat into DIR/SYSTEM: the
 * complete side copy SYSTEM.gpup-new when a killed write left one (it is
 * what gpup reads then), else SYSTEM. *@from_new says which. @raw: @img is
 * a raw disk (no qemu-img). NULL when ntfs-3g will not mount the volume
 * because a kill left $MFTMirr one write behind $MFT (gpup repairs that on
 * its next writable open; ntfs-3g refuses it). */
static char *extract_system(const char *img, const char *args, bool raw, bool *from_new)
{
	char *fx = t_fixture("mkguest.sh", args), *partfile = t_strdup_printf("%s/guest.part", fx);
	char *hive = t_strdup_printf("%s/SYSTEM", dir), *part;
	struct t_run r;

	if (raw) {
		unsigned long long off, len;
		FILE *f = fopen(partfile, "r");

		cr_assert_not_null(f);
		cr_assert_eq(fscanf(f, "%llu %llu", &off, &len), 2);
		fclose(f);
		part = t_strdup_printf("%s/check.part", dir);
		cr_assert_eq(t_run(&r, "dd if='%s' of='%s' bs=1M skip=%llu count=%llu conv=sparse "
				   "status=none", img, part, off >> 20, len >> 20), 0, "%s", r.err);
		t_run_free(&r);
	} else {
		part = t_volume_of(img, partfile, dir);
	}
	*from_new = t_run(&r, "ntfscat -f '%s' /Windows/System32/config/SYSTEM.gpup-new >'%s' && "
			       "hivexget '%s' Select Current", part, hive, hive) == 0;
	if (!*from_new && strstr(r.err, "$MFTMirr does not match $MFT")) {
		t_run_free(&r);
		free(hive);
		hive = NULL;
	} else if (!*from_new) {
		t_run_free(&r);
		cr_assert_eq(t_run(&r, "ntfscat -f '%s' /Windows/System32/config/SYSTEM >'%s'", part,
				   hive), 0, "no SYSTEM: %s", r.err);
	}
	t_run_free(&r);
	unlink(part);
	free(part);
	free(partfile);
	free(fx);
	return hive;
}

/* hivexget HIVE KEY VALUE, its output without the newline; NULL when it
 * fails (malloc'ed). */
static char *hivexget(const char *hive, const char *key, const char *value)
{
	struct t_run r;
	char *out = NULL;

	if (t_run(&r, "hivexget '%s' '%s' %s", hive, key, value) == 0) {
		out = strdup(r.out);
		out[strcspn(out, "\n")] = '\0';
	}
	t_run_free(&r);
	return out;
}

static void expect_value(const char *hive, const char *value, const char *want)
{
	char *got = hivexget(hive, KEY, value);

	cr_assert_not_null(got, "%s\\%s is not in the hive", KEY, value);
	cr_assert_str_eq(got, want, "%s\\%s", KEY, value);
	free(got);
}

static void expect_service(const char *hive)
{
	expect_value(hive, "Type", "1");
	expect_value(hive, "Start", "3");
	expect_value(hive, "ErrorControl", "1");
	expect_value(hive, "Group", "Video");
	expect_value(hive, "ImagePath",
		     "\\SystemRoot\\System32\\HostDriverStore\\FileRepository\\" NV_NEW "\\nvlddmkm.sys");
}

Test(fixup, list_and_unknown_names)
{
	struct t_run r;

	t_gpup(&r, "prepare --fixup list");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "nvlddmkm-service ") && strstr(r.out, "service key"), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "prepare '%s/g.vhdx' --driverstore '%s' --fixup no-such-fixup", dir, dir);
	cr_assert_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "unknown fix-up 'no-such-fixup'"), "%s", r.err);
	t_run_free(&r);
}

/* The key, read back from the extracted hive with hivexget; a second run
 * leaves the image byte-identical; unprepare removes the key (and the
 * Services key the fix-up had to create in this guest). */
Test(fixup, nvlddmkm_service_is_written_once_and_undone)
{
	static const char *const args = "--size 1G --vhdx";
	char *img = t_guest_copy(dir, args, "g.vhdx"), *st = nv_store(), *hive, *got;
	char sum[65];
	bool from_new;
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q " FIX, img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	hive = extract_system(img, args, false, &from_new);
	cr_assert(hive && !from_new);
	expect_service(hive);
	free(hive);
	strcpy(sum, sha_of(img));
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' --json " FIX, img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"changed\":false"), "%s", r.out);
	t_run_free(&r);
	cr_assert_str_eq(sha_of(img), sum, "a second run changed the image");

	t_gpup(&r, "unprepare '%s' --json", img);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "Windows/System32/config/SYSTEM"), "%s", r.out);
	t_run_free(&r);
	hive = extract_system(img, args, false, &from_new);
	cr_assert_not_null(hive);
	got = hivexget(hive, "ControlSet001\\Services", "");
	cr_assert_null(got, "the Services key gpup created is still there");
	got = hivexget(hive, "Select", "Current");
	cr_assert_not_null(got);
	cr_assert_str_eq(got, "1");
	free(got);
	free(hive);
	free(st);
	free(img);
}

/* Not an NVIDIA package: refused before anything is written. */
Test(fixup, nvlddmkm_service_refuses_other_vendors)
{
	char *img = t_guest_copy(dir, "--size 1G --vhdx", "g.vhdx"), *st = nv_store();
	char sum[65];
	struct t_run r;

	strcpy(sum, sha_of(img));
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" INTEL_GPU "' -q " FIX, img, st);
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "is for NVIDIA display drivers"), "%s", r.err);
	t_run_free(&r);
	cr_assert_str_eq(sha_of(img), sum, "a refused run changed the image");
	free(st);
	free(img);
}

/*
 * A prepare whose only change is the fix-up, SIGKILLed before each of its
 * writes to the (raw) image in turn: the guest keeps a hive hivex opens
 * (SYSTEM, or SYSTEM.gpup-new alone when the kill came inside the rename),
 * and rerunning the command completes the fix-up.
 */
Test(fixup, sigkill_during_the_hive_write)
{
	static const char *const args = "--size 1G";
	char *fx = t_fixture("mkguest.sh", args), *src = t_strdup_printf("%s/guest.img", fx);
	char *base = t_strdup_printf("%s/base.img", dir), *img = t_strdup_printf("%s/k.img", dir);
	char *st = nv_store(), *so, *cf = t_strdup_printf("%s/counts", dir);
	char *shim = t_fixture("mkshim.sh", "");
	long reads, writes, syncs, extends, step;
	int side_copy = 0, kills = 0, mirror = 0;
	struct t_run r;
	FILE *f;

	so = t_strdup_printf("%s/fault_shim.so", shim);
	t_copy(src, base);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify", base, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	/* How many writes the fix-up run makes. */
	t_copy(base, img);
	cr_assert_eq(t_run(&r, "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" "
		      "LD_PRELOAD='%s' GPUP_FAULT_FILE='%s' GPUP_FAULT_COUNT='%s' '%s' prepare "
			   "'%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify " FIX, so, img,
			   cf, t_env("GPUP_BIN"), img, st), 0, "%s", r.err);
	t_run_free(&r);
	f = fopen(cf, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "read %ld write %ld sync %ld extend %ld", &reads, &writes, &syncs,
			    &extends), 4);
	fclose(f);
	cr_assert_gt(writes, 2);
	step = writes > 40 ? writes / 40 : 1;
	for (long n = 1; n <= writes; n += step) {
		bool from_new;
		char *hive, *got;

		t_copy(base, img);
		t_run(&r, "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" "
		      "LD_PRELOAD='%s' GPUP_FAULT_FILE='%s' GPUP_FAULT='write:%ld:kill' '%s' "
			  "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify " FIX,
		      so, img, n, t_env("GPUP_BIN"), img, st);
		cr_assert_eq(r.status, 128 + 9, "write %ld: not killed (exit %d): %s", n, r.status,
			     r.err);
		t_run_free(&r);
		kills++;
		hive = extract_system(img, args, true, &from_new);
		if (hive) {
			side_copy += from_new;
			got = hivexget(hive, "Select", "Current");
			cr_assert_not_null(got, "write %ld: hivex cannot read the hive the kill left", n);
			free(got);
			free(hive);
		} else {
			mirror++;
		}
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q " FIX, img, st);
		cr_assert_eq(r.status, 0, "write %ld: the rerun failed: %s", n, r.err);
		t_run_free(&r);
		hive = extract_system(img, args, true, &from_new);
		cr_assert(hive && !from_new, "write %ld: the rerun left the side copy", n);
		expect_service(hive);
		free(hive);
	}
	/* Some kills must land while SYSTEM itself was being rewritten (the
	 * side copy complete), or this test no longer covers that window. */
	cr_assert_gt(side_copy, 0, "no kill landed while SYSTEM was rewritten");
	cr_assert_lt(mirror, kills / 2, "ntfs-3g could not read most killed volumes");
	cr_log_info("%d kills, %d while SYSTEM was rewritten, %d left $MFTMirr behind", kills,
		    side_copy, mirror);
	free(shim);
	free(so);
	free(cf);
	free(st);
	free(img);
	free(base);
	free(src);
	free(fx);
}

/* libfsntfs (fsntfsinfo), not gpup or libntfs-3g, reads the junction of
 * --fixup ngx-junction: a mount-point reparse point whose substitute name
 * is \??\ + the HostDriverStore folder and whose print name is that
 * folder. A second run changes nothing; unprepare removes the junction. */
Test(fixup, ngx_junction_is_read_back_by_libfsntfs_and_undone)
{
	static const char *const args = "--size 1G --vhdx";
	char *img = t_guest_copy(dir, args, "g.vhdx"), *st = t_fixture("mkstore.sh", "");
	char *fx = t_fixture("mkguest.sh", args), *partfile = t_strdup_printf("%s/guest.part", fx);
	char *part, *ref;
	char sum[65];
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --fixup ngx-junction", img,
	       st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	part = t_volume_of(img, partfile, dir);
	cr_assert_eq(t_run(&r, "fsntfsinfo -F '\\" FR_WIN "\\" NV_NEW "' '%s'", part), 0, "%s%s",
		     r.out, r.err);
	ref = strstr(r.out, "File reference");
	cr_assert_not_null(ref, "%s", r.out);
	ref = t_strdup_printf("%ld", strtol(strchr(ref, ':') + 1, NULL, 10));
	t_run_free(&r);
	cr_assert_eq(t_run(&r, "fsntfsinfo -E %s '%s'", ref, part), 0, "%s", r.err);
	cr_assert(strstr(r.out, "$REPARSE_POINT") && strstr(r.out, ": 0xa0000003"), "%s", r.out);
	cr_assert(strstr(r.out, ": \\??\\C:\\Windows\\System32\\HostDriverStore\\FileRepository\\" NV_NEW
			 "\n"), "substitute name: %s", r.out);
	cr_assert(strstr(r.out, ": C:\\Windows\\System32\\HostDriverStore\\FileRepository\\" NV_NEW
			 "\n"), "print name: %s", r.out);
	t_run_free(&r);
	unlink(part);
	free(part);
	free(ref);

	strcpy(sum, sha_of(img));
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --fixup ngx-junction", img,
	       st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_str_eq(sha_of(img), sum, "a second run changed the image");

	t_gpup(&r, "unprepare '%s' -q", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	part = t_volume_of(img, partfile, dir);
	cr_assert_eq(t_run(&r, "ntfsls -f -p '/" FR "' '%s'", part), 0, "%s", r.err);
	cr_assert_null(strstr(r.out, NV_NEW), "the junction is still there: %s", r.out);
	cr_assert(strstr(r.out, "basicdisplay.inf_amd64_8f0b4b1c1a2d3e4f"), "%s", r.out);
	t_run_free(&r);
	unlink(part);
	free(part);
	free(partfile);
	free(fx);
	free(st);
	free(img);
}

/* A real folder of the package's name in the guest's own DriverStore (the
 * driver installed in the guest) is not turned into a junction: refused,
 * the image byte-identical. */
Test(fixup, ngx_junction_refuses_a_real_folder)
{
	char *img = t_guest_copy(dir, "--size 1G --vhdx", "g.vhdx"), *st = t_fixture("mkstore.sh", "");
	char *src = t_strdup_printf("%s/" NV_NEW, dir);
	char sum[65];
	struct t_run r;

	cr_assert_eq(t_run(&r, "mkdir '%s' && echo inf >'%s/nv_dispi.inf'", src, src), 0);
	t_run_free(&r);
	t_gpup(&r, "put '%s' '%s' '" FR "'", img, src);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	strcpy(sum, sha_of(img));
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --fixup ngx-junction", img,
	       st);
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "is not a junction"), "%s", r.err);
	t_run_free(&r);
	cr_assert_str_eq(sha_of(img), sum, "a refused run changed the image");
	free(src);
	free(st);
	free(img);
}

/* doctor, which recommends both fix-ups for an NVIDIA package, finds
 * nothing to recommend once prepare applied them. */
Test(fixup, doctor_recommends_no_fixup_once_applied)
{
	char *img = t_guest_copy(dir, "--size 1G --vhdx", "g.vhdx"), *st = nv_store();
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --fixup ngx-junction "
		   "--fixup nvlddmkm-service", img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "doctor '%s' --driverstore '%s' --gpu '" NV_GPU "' --json", img, st);
	cr_assert_null(strstr(r.out, "fixup-"), "doctor still recommends a fix-up: %s", r.out);
	cr_assert(strstr(r.out, "\"command\":\"doctor\""), "%s", r.out);
	t_run_free(&r);
	free(st);
	free(img);
}

/* verify checks the recorded fix-ups, not only the files: the service key
 * deleted behind gpup's back (the hive edited and put back, as a tool in
 * the guest could) is a finding, exit 4. */
Test(fixup, verify_finds_a_fixup_no_longer_in_place)
{
	char *img = t_guest_copy(dir, "--size 1G --vhdx", "g.vhdx"), *st = nv_store();
	char *sys = t_strdup_printf("%s/SYSTEM", dir);
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q " FIX, img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "'", img, st);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	t_run_free(&r);

	t_gpup(&r, "cat '%s' Windows/System32/config/SYSTEM > '%s'", img, sys);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_run(&r, "printf '%%s\\n' 'cd ControlSet001\\Services\\nvlddmkm' del commit | "
		  "hivexsh -w '%s'", sys);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "put '%s' '%s' Windows/System32/config", img, sys);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);

	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "'", img, st);
	cr_assert_eq(r.status, 4, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "nvlddmkm-service: the service key no longer holds the INF's values"),
		  "%s", r.out);
	t_run_free(&r);
	free(sys);
	free(st);
	free(img);
}
