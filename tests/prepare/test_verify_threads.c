/*
 * test_verify_threads.c — `gpup verify` against a host DriverStore reads the
 * host files on a second thread and compares them with the guest's byte for
 * byte (drivers/inject.c, "verifying"). With a file several times the
 * reader's ring (4 x 1 MiB) and differences at the start, the middle and
 * the last bytes of files, every differing file is reported, in the set's
 * order, the same on every run; and a clean image still passes.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define NV_NEW "nv_dispi.inf_amd64_2222bbbb22220002"
#define HDS "Windows/System32/HostDriverStore/FileRepository"
#define REPO "Windows/System32/DriverStore/FileRepository"
/* Appended to nvlddmkm.sys: bigger than the reader's ring, not a multiple
 * of its chunks. */
#define GROW (5u * 1024 * 1024 + 4321)

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(verify_threads, .init = setup, .fini = teardown, .timeout = 300);

/* XOR one byte of @path at @off (negative: from the end). */
static void flip(const char *path, long long off)
{
	size_t len;
	char *data = t_read_file(path, &len);

	cr_assert_not_null(data, "%s", path);
	if (off < 0)
		off += (long long)len;
	cr_assert(off >= 0 && (size_t)off < len);
	data[off] ^= 0x20;
	cr_assert_eq(t_write_file(path, data, len), 0);
	free(data);
}

/* `gpup verify --json`: exit status and the paths and states of "bad". */
static int verify_bad(const char *img, const char *st, char *out, size_t outlen)
{
	struct json_object *o, *bad;
	struct t_run r;
	int status;
	size_t used = 0;

	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "' --json", img, st);
	status = r.status;
	o = json_tokener_parse(r.out);
	cr_assert_not_null(o, "not JSON (exit %d): %s %s", status, r.out, r.err);
	cr_assert(json_object_object_get_ex(o, "bad", &bad));
	out[0] = '\0';
	for (size_t i = 0; i < json_object_array_length(bad); i++) {
		struct json_object *b = json_object_array_get_idx(bad, i), *p, *s;

		cr_assert(json_object_object_get_ex(b, "path", &p));
		cr_assert(json_object_object_get_ex(b, "state", &s));
		used += (size_t)snprintf(out + used, outlen - used, "%s|%s\n",
					 json_object_get_string(p), json_object_get_string(s));
		cr_assert_lt(used, outlen);
	}
	json_object_put(o);
	t_run_free(&r);
	return status;
}

/* A copy of the generated host DriverStore in the test dir whose
 * nvlddmkm.sys is GROW bytes longer (random, from @seed), then @tail
 * (NULL: nothing). */
static char *grown_store(uint64_t seed, const char *tail)
{
	char *orig = t_fixture("mkstore.sh", "");
	char *st = t_strdup_printf("%s/store", dir);
	char *big = t_strdup_printf("%s/" REPO "/" NV_NEW "/nvlddmkm.sys", st);
	char *grow = malloc(GROW);
	struct t_run r;
	FILE *f;

	cr_assert_eq(t_run(&r, "cp -r '%s' '%s'", orig, st), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_not_null(grow);
	t_fill_random(grow, GROW, &seed);
	f = fopen(big, "ab");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(grow, 1, GROW, f), GROW);
	if (tail)
		cr_assert_eq(fwrite(tail, 1, strlen(tail), f), strlen(tail));
	cr_assert_eq(fclose(f), 0);
	free(grow);
	free(big);
	free(orig);
	return st;
}

Test(verify_threads, reports_every_differing_file_in_order)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	/* nvlddmkm.sys grows past the reader's ring. */
	char *st = grown_store(9, NULL);
	char *pkg = t_strdup_printf("%s/" REPO "/" NV_NEW, st);
	char *big = t_strdup_printf("%s/nvlddmkm.sys", pkg);
	char *first = t_strdup_printf("%s/AsusOverlay.dll", pkg);
	char *last = t_strdup_printf("%s/vulkan-1-x86.dll", pkg);
	static char got[8192], again[8192];
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify", img, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	/* Positive control: the threaded comparison passes a clean image. */
	cr_assert_eq(verify_bad(img, st, got, sizeof(got)), 0, "clean image: %s", got);
	cr_assert_str_empty(got);

	/* Same sizes, other bytes: the first byte of one file, a byte in the
	 * last chunk of the big one, the last byte of a third. */
	flip(first, 0);
	flip(big, -3);
	flip(last, -1);
	cr_assert_eq(verify_bad(img, st, got, sizeof(got)), 4);
	/* The companions copied from the same host files differ too; the
	 * order is the set's (guest paths, strcmp). */
	cr_assert_str_eq(got,
			 "Windows/SysWOW64/vulkan-1.dll|content differs (SHA-256)\n"
			 "Windows/System32/AsusOverlay.dll|content differs (SHA-256)\n"
			 HDS "/" NV_NEW "/AsusOverlay.dll|content differs (SHA-256)\n"
			 HDS "/" NV_NEW "/nvlddmkm.sys|content differs (SHA-256)\n"
			 HDS "/" NV_NEW "/vulkan-1-x86.dll|content differs (SHA-256)\n");
	cr_assert_eq(verify_bad(img, st, again, sizeof(again)), 4);
	cr_assert_str_eq(again, got, "a second run reports differently");

	/* Text mode names the first difference and the count on stderr. */
	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "'", img, st);
	cr_assert_eq(r.status, 4);
	cr_assert(strstr(r.err, "Windows/SysWOW64/vulkan-1.dll: content differs (SHA-256) (5 of "),
		  "%s", r.err);
	t_run_free(&r);

	/* Undo the flips: clean again. */
	flip(first, 0);
	flip(big, -3);
	flip(last, -1);
	cr_assert_eq(verify_bad(img, st, got, sizeof(got)), 0, "%s", got);

	free(img);
	free(st);
	free(pkg);
	free(big);
	free(first);
	free(last);
}

/* The same image through a bundle: verify compares the guest's SHA-256 with
 * the manifest (no second thread), and agrees with the byte-for-byte
 * comparison against the directory afterwards. */
Test(verify_threads, big_file_through_a_bundle)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = grown_store(11, NULL);
	char *bundle = t_strdup_printf("%s/nv.tar.zst", dir);

	/* prepare verifies after writing against the manifest (exit 0 means
	 * it matched), and the directory, byte for byte, agrees. */
	t_bundle_prepare_verify(img, st, NV_GPU, bundle);
	free(img);
	free(st);
	free(bundle);
}

/* A bundle whose big nvlddmkm.sys differs from its manifest in its last
 * MiB, found only after megabytes of it were written into the image:
 * prepare fails naming the file and leaves no partial package and none of
 * the companions. */
Test(verify_threads, late_mismatch_in_a_big_bundle_file_rolls_back)
{
	static const char tail[] = "GPUP-TAIL-MARKER-0123456789";
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = grown_store(13, tail);
	char *good = t_strdup_printf("%s/nv.tar.gz", dir);
	char *tar = t_strdup_printf("%s/nv.tar", dir);
	char *bad = t_strdup_printf("%s/bad.tar.gz", dir);
	long long at;
	struct t_run r;

	t_gpup(&r, "bundle create --driverstore '%s' --gpu '" NV_GPU "' -q -o '%s'", st, good);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_run(&r, "gzip -dc '%s' > '%s'", good, tar);
	cr_assert_eq(r.status, 0);
	t_run_free(&r);
	at = t_find_in_file(tar, tail);
	cr_assert_geq(at, 0);
	t_run(&r, "printf X | dd of='%s' bs=1 seek=%lld conv=notrunc status=none && gzip -c '%s' > '%s'",
	      tar, at + 5, tar, bad);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);

	t_gpup(&r, "prepare '%s' --bundle '%s' -q", img, bad);
	cr_assert_eq(r.status, 4, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "nvlddmkm.sys': content SHA-256"), "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "ls '%s' 'C:\\Windows\\System32\\HostDriverStore\\FileRepository'", img);
	cr_assert_not(strstr(r.out, "nv_dispi"), "partial package left: %s", r.out);
	t_run_free(&r);
	t_gpup(&r, "ls '%s' 'C:\\Windows\\SysWOW64\\nvapi.dll'", img);
	cr_assert_neq(r.status, 0, "a companion of the failed run was left: %s", r.out);
	t_run_free(&r);
	cr_assert_eq(t_run(&r, "qemu-img check '%s'", img), 0, "%s", r.out);
	t_run_free(&r);
	free(img);
	free(st);
	free(good);
	free(tar);
	free(bad);
}
