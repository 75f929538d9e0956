/*
 * test_scan.c — `gpup scan`: a directory of generated guests, each in a
 * known state against the generated DriverStore (mkstore.sh): prepared
 * (current), holding the older NVIDIA build (stale), never prepared
 * (missing), holding only the Intel package (foreign), hibernated and a
 * Linux disk (refused). Every file is hashed before and after: scan writes
 * nothing.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleet_t.h"

#define FILEREPO "Windows/System32/DriverStore/FileRepository"
#define HDS "C:\\Windows\\System32\\HostDriverStore\\FileRepository"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(scan, .init = setup, .fini = teardown, .timeout = 300);

/* A guest whose HostDriverStore holds @folder of the store (as an earlier
 * prepare would have left it). */
static char *guest_with_package(const char *st, const char *folder, const char *name)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", name);
	struct t_run r;

	t_gpup(&r, "put '%s' '%s/" FILEREPO "/%s' '" HDS "'", img, st, folder);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	return img;
}

/* The verdict line of @image among @lines. */
static struct json_object *row_of(struct json_object **lines, size_t n, const char *image)
{
	for (size_t i = 0; i < n; i++) {
		struct json_object *v;

		if (json_object_object_get_ex(lines[i], "image", &v) &&
		    strstr(json_object_get_string(v), image))
			return lines[i];
	}
	cr_assert_fail("no line for %s", image);
	return NULL;
}

/* SHA-256 of every file in dir/fleet, concatenated in name order. */
static char *hash_all(const char *d)
{
	struct t_run r;
	char *out;

	t_run(&r, "cd '%s' && sha256sum *", d);
	cr_assert_eq(r.status, 0, "%s", r.err);
	out = strdup(r.out);
	t_run_free(&r);
	return out;
}

Test(scan, directory_of_guests_gets_every_verdict_and_stays_byte_identical)
{
	char *st = t_fixture("mkstore.sh", "");
	char *fleet = t_strdup_printf("%s/fleet", dir);
	char *img, *before, *after;
	struct json_object *lines[16], *o, *sum, *pk;
	struct t_run r;
	size_t n;

	cr_assert_eq(mkdir(fleet, 0755), 0);
	/* current: prepared from the store */
	img = t_guest_copy(dir, "--size 2G --vhdx", "fleet/current.vhdx");
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -q --no-verify", img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	free(img);
	free(guest_with_package(st, "nv_dispi.inf_amd64_1111aaaa11110001", "fleet/stale.vhdx"));
	free(t_guest_copy(dir, "--size 2G --vhdx", "fleet/missing.vhdx"));
	free(guest_with_package(st, "iigd_dch.inf_amd64_4444dddd44440004", "fleet/foreign.vhdx"));
	free(ft_hibernated_copy(dir, "fleet/hibernated.vhdx"));
	t_run(&r, "cd '%s' && truncate -s 64M linux.img && sgdisk -n 1:2048:0 -t 1:8300 linux.img "
		  ">/dev/null && qemu-img convert -O vhdx linux.img fleet/linux.vhdx && rm linux.img", dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);

	before = hash_all(fleet);
	t_gpup(&r, "scan '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -j 2 --json", fleet, st);
	cr_assert_eq(r.status, 3, "refused images make exit 3: %d: %s", r.status, r.err);
	n = ft_json_lines(r.out, lines, 16);
	cr_assert_eq(n, 7, "six images and a summary: %s", r.out);
	for (size_t i = 0; i + 1 < n; i++) {
		cr_assert_str_eq(ft_jstr(lines[i], "command"), "scan");
		cr_assert_eq(ft_jint(lines[i], "schema"), 1);
	}

	o = row_of(lines, n, "current.vhdx");
	cr_assert_str_eq(ft_jstr(o, "verdict"), "current", "%s", json_object_to_json_string(o));
	cr_assert_eq(ft_jint(ft_jget(o, "guest"), "build"), 22631);
	pk = json_object_array_get_idx(ft_jget(o, "packages"), 0);
	cr_assert_str_eq(ft_jstr(pk, "folder"), "nv_dispi.inf_amd64_2222bbbb22220002");
	cr_assert_str_eq(ft_jstr(pk, "driver_ver"), "03/20/2024,31.0.15.5222");
	cr_assert_str_eq(ft_jstr(ft_jget(o, "host_package"), "driver_ver"), "03/20/2024,31.0.15.5222");

	o = row_of(lines, n, "stale.vhdx");
	cr_assert_str_eq(ft_jstr(o, "verdict"), "stale", "%s", json_object_to_json_string(o));
	pk = json_object_array_get_idx(ft_jget(o, "packages"), 0);
	cr_assert_str_eq(ft_jstr(pk, "driver_ver"), "01/15/2024,31.0.15.4601");

	o = row_of(lines, n, "missing.vhdx");
	cr_assert_str_eq(ft_jstr(o, "verdict"), "missing", "%s", json_object_to_json_string(o));
	o = row_of(lines, n, "foreign.vhdx");
	cr_assert_str_eq(ft_jstr(o, "verdict"), "foreign", "%s", json_object_to_json_string(o));

	o = row_of(lines, n, "hibernated.vhdx");
	cr_assert_str_eq(ft_jstr(o, "verdict"), "refused");
	cr_assert(strstr(ft_jstr(o, "reason"), "hibernated"), "%s", ft_jstr(o, "reason"));
	o = row_of(lines, n, "linux.vhdx");
	cr_assert_str_eq(ft_jstr(o, "verdict"), "refused");
	cr_assert(strstr(ft_jstr(o, "reason"), "Linux"), "%s", ft_jstr(o, "reason"));

	cr_assert(json_object_object_get_ex(lines[n - 1], "summary", &sum), "%s", r.out);
	cr_assert_eq(ft_jint(sum, "images"), 6);
	cr_assert_eq(ft_jint(sum, "current"), 1);
	cr_assert_eq(ft_jint(sum, "stale"), 1);
	cr_assert_eq(ft_jint(sum, "missing"), 1);
	cr_assert_eq(ft_jint(sum, "foreign"), 1);
	cr_assert_eq(ft_jint(sum, "refused"), 2);
	cr_assert_eq(ft_jint(sum, "exit_status"), 3);
	for (size_t i = 0; i < n; i++)
		json_object_put(lines[i]);
	t_run_free(&r);

	/* The table, on the same directory. */
	t_gpup(&r, "scan '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -j 1", fleet, st);
	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert(strstr(r.out, "VERDICT"), "%s", r.out);
	cr_assert(strstr(r.out, "6 images: 1 current, 1 stale, 1 missing, 1 foreign, 2 refused"),
		  "%s", r.out);
	t_run_free(&r);

	after = hash_all(fleet);
	cr_assert_str_eq(after, before, "scan changed a file");
	free(before);
	free(after);
	free(fleet);
	free(st);
}

/* Only stale, missing or foreign guests: exit 5 (run prepare); all
 * current: 0. */
Test(scan, exit_status_says_whether_to_prepare)
{
	char *st = t_fixture("mkstore.sh", "");
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	struct t_run r;

	t_gpup(&r, "scan '%s' --driverstore '%s' --gpu '" FT_NV_GPU "'", img, st);
	cr_assert_eq(r.status, 5, "%d: %s%s", r.status, r.out, r.err);
	cr_assert(strstr(r.out, "missing"), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -q --no-verify", img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "scan '%s' --driverstore '%s' --gpu '" FT_NV_GPU "'", img, st);
	cr_assert_eq(r.status, 0, "%d: %s%s", r.status, r.out, r.err);
	t_run_free(&r);
	free(img);
	free(st);
}

/* An image a running VM holds (its write lock taken: here by this process,
 * with the same open-file-description lock gpup and Hyper-V's stand-in
 * take) is read without a lock and marked in use. */
Test(scan, image_locked_by_a_writer_is_read_and_marked_in_use)
{
	char *st = t_fixture("mkstore.sh", "");
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char before[65], after[65];
	struct json_object *lines[4];
	struct t_run r;
	int fd = open(img, O_RDWR);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fcntl(fd, F_OFD_SETLK, &fl), 0);
	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' -q", img, st);
	cr_assert_eq(r.status, 3, "the lock holds writers off: %s", r.err);
	t_run_free(&r);
	t_gpup(&r, "scan '%s' --driverstore '%s' --gpu '" FT_NV_GPU "' --json", img, st);
	cr_assert_eq(r.status, 5, "%d: %s", r.status, r.err);
	cr_assert_eq(ft_json_lines(r.out, lines, 4), 2);
	cr_assert(ft_jbool(lines[0], "in_use"), "%s", r.out);
	cr_assert_str_eq(ft_jstr(lines[0], "verdict"), "missing", "%s", r.out);
	json_object_put(lines[0]);
	json_object_put(lines[1]);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(after, before);
	close(fd);
	free(img);
	free(st);
}

Test(scan, usage_errors_and_an_empty_directory)
{
	char *st = t_fixture("mkstore.sh", "");
	struct t_run r;

	t_gpup(&r, "scan --driverstore '%s'", st);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "IMAGE or DIR is required"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "scan '%s' --driverstore '%s' --bundle x.tar.zst", dir, st);
	cr_assert_eq(r.status, 2, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "scan '%s' --driverstore '%s' -j 0", dir, st);
	cr_assert_eq(r.status, 2, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "scan '%s' --driverstore '%s'", dir, st);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "holds no .vhdx"), "%s", r.err);
	t_run_free(&r);
	free(st);
}
