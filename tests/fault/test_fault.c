/*
 * test_fault.c — issue 8's fault-injection suite and its >= 100 random
 * kills of `gpup prepare`.
 *
 * Faults come from tests/fixtures/fault_shim.c, an LD_PRELOAD library that
 * makes the Nth read / write / flush / extend call on one host file fail
 * (EIO, ENOSPC) or changes that file's size under gpup (a source being
 * rewritten). It sits below everything gpup does to a file — the VHDX
 * engine's header, log, BAT and block I/O, libntfs-3g's guest writes
 * (through the gp_disk interface), libvhdi's read-back — so one wrapper
 * reaches every layer without a test hook in production code. Fault points
 * are spread over a real run: a first run with GPUP_FAULT_COUNT counts the
 * calls, then faults land at the first, the last and the quartiles.
 * The host file system filling up is also done for real, with
 * RLIMIT_FSIZE (works without root; a small tmpfs would need it).
 *
 * After every fault: exit status 1, one line on stderr naming the file and
 * the reason, `qemu-img check` clean, and the same prepare run again
 * completes and `gpup verify` (libvhdi) finds every file with the host's
 * SHA-256 (= an uninterrupted run). Refusals before the first write leave
 * the image byte-identical.
 *
 * GPUP_KILLS (default 100) sets the number of random kills; they are split
 * over four tests so that `--jobs 2` runs them in parallel.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define NV_PKG "nv_dispi.inf_amd64_2222bbbb22220002"
#define HDS "Windows/System32/HostDriverStore/FileRepository"
#define STORE_PKG "Windows/System32/DriverStore/FileRepository/" NV_PKG
/* The package's kernel driver: the biggest source file (256 KiB). */
#define BIG_SOURCE STORE_PKG "/nvlddmkm.sys"
#define KILL_TESTS 4

static char *dir;

/* The run's seed (t_seed()): source data and kill moments derive from it,
 * and the messages of the tests that use it name it. */
static uint64_t run_seed;

static void setup(void)
{
	dir = t_tmpdir();
	run_seed = t_seed();
}
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(fault, .init = setup, .fini = teardown, .timeout = 600);

/* ---- fixtures ---------------------------------------------------------- */

static char *guest_copy(const char *args, const char *name)
{
	return t_guest_copy(dir, args, name);
}

static char *big_guest(const char *name) { return guest_copy("--size 2G --vhdx", name); }

/* The shared generated host (read-only: tests that change sources copy it). */
static char *store(void) { return t_fixture("mkstore.sh", ""); }

static char *store_copy(void)
{
	char *src = store(), *dst = t_strdup_printf("%s/host", dir);
	struct t_run r;

	t_run(&r, "cp -a '%s' '%s'", src, dst);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	free(src);
	return dst;
}

static char *shim(void)
{
	char *fx = t_fixture("mkshim.sh", "");
	char *so = t_strdup_printf("%s/fault_shim.so", fx);

	free(fx);
	return so;
}

static char *sha(const char *path)
{
	char hex[65];

	cr_assert_eq(t_sha256_file(path, hex), 0, "cannot hash %s", path);
	return strdup(hex);
}

/* ---- running prepare under a fault ------------------------------------- */

struct counts {
	long read, write, sync, extend;
};

/* LSAN_OPTIONS for a gpup run whose disk fails, as a shell assignment
 * followed by a space (see tests/fault/lsan-disk-failed.supp). */
static char *disk_failed_lsan(void)
{
	return t_strdup_printf("LSAN_OPTIONS='suppressions=%s/tests/fault/lsan-disk-failed.supp:"
			       "print_suppressions=0' ",
			       t_env("GPUP_SRC"));
}

/*
 * `gpup ARGS` with the shim acting on @target per @spec (NULL: count only).
 * @cnt, when given, gets the calls the shim saw. ASan insists on coming
 * first among the preloaded libraries; the shim only forwards calls, so
 * that check is turned off. A sanitized gpup whose disk fails gets
 * tests/fault/lsan-disk-failed.supp (what libntfs-3g's error paths drop;
 * the file says why).
 */
static int gpup_faulted(struct t_run *r, const char *target, const char *spec,
			struct counts *cnt, const char *args)
{
	char *so = shim(), *cf = t_strdup_printf("%s/counts", dir), *lsan = disk_failed_lsan();

	unlink(cf);
	t_run(r,
	      "LD_PRELOAD='%s' GPUP_FAULT_FILE='%s' GPUP_FAULT='%s' GPUP_FAULT_COUNT='%s' "
	      "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" %s"
	      "'%s' %s",
	      so, target, spec ? spec : "", cf, lsan, t_env("GPUP_BIN"), args);
	free(lsan);
	if (cnt) {
		FILE *f = fopen(cf, "r");

		cr_assert_not_null(f, "the fault shim wrote no counts (not preloaded?): %s", r->err);
		cr_assert_eq(fscanf(f, "read %ld write %ld sync %ld extend %ld", &cnt->read,
				    &cnt->write, &cnt->sync, &cnt->extend), 4);
		fclose(f);
	}
	free(so);
	free(cf);
	return r->status;
}

/* `gpup prepare IMG --driverstore ST --gpu NV -q EXTRA` under gpup_faulted(). */
static int prepare_faulted(struct t_run *r, const char *target, const char *spec,
			   const char *img, const char *st, const char *extra, struct counts *cnt)
{
	char *args = t_strdup_printf("prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q %s",
				     img, st, extra ? extra : "");
	int ret = gpup_faulted(r, target, spec, cnt, args);

	free(args);
	return ret;
}

/* The error report: exit 1 and exactly one line, "gpup: ..." holding
 * each of @needles (NULL-terminated). */
static void assert_one_error_line(const struct t_run *r, const char *what, ...)
{
	const char *nl = strchr(r->err, '\n');
	va_list ap;

	cr_assert_eq(r->status, 1, "%s: exit %d, stderr: %s", what, r->status, r->err);
	cr_assert(strncmp(r->err, "gpup: ", 6) == 0, "%s: %s", what, r->err);
	cr_assert(nl && nl[1] == '\0', "%s: not one line: %s", what, r->err);
	va_start(ap, what);
	for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
		cr_assert(strstr(r->err, n), "%s: '%s' not in: %s", what, n, r->err);
	va_end(ap);
}

static void qemu_check(const char *img, const char *what)
{
	struct t_run r;

	cr_assert_eq(t_run(&r, "qemu-img check '%s'", img), 0, "%s: qemu-img check: %s%s", what,
		     r.out, r.err);
	t_run_free(&r);
}

static void verify(const char *img, const char *st, const char *what)
{
	struct t_run r;

	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
	cr_assert_eq(r.status, 0, "%s: verify: %s %s", what, r.out, r.err);
	t_run_free(&r);
}

/*
 * After a failed prepare: the image passes qemu-img check, the same prepare
 * run again completes (without --force), and every file reads back
 * (libvhdi) with the host's hash. No exception: a fault while the volume
 * is being marked leaves at most gpup's marker on a clean volume (marker
 * first, flag second), and an $MFTMirr left one write behind $MFT is
 * repaired by the rerun's writable open.
 */
static void recover(const char *img, const char *st, const char *what)
{
	struct t_run r;

	qemu_check(img, what);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify", img, st);
	cr_assert_eq(r.status, 0, "%s: the rerun failed (exit %d): %s", what, r.status, r.err);
	t_run_free(&r);
	qemu_check(img, what);
	verify(img, st, what);
}

/* 1, 2, the quartiles and the last of @n calls, each once, ascending. */
static size_t spread(long n, long *pts)
{
	long cand[] = { 1, 2, n / 4, n / 2, 3 * n / 4, n - 1, n };
	size_t k = 0;

	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] >= 1 && cand[i] <= n && (k == 0 || cand[i] > pts[k - 1]))
			pts[k++] = cand[i];
	return k;
}

/*
 * Make call @op of a prepare of the big guest fail with @err at spread
 * points (@sticky: that call and every later one, as a full disk does);
 * check the message and the recovery each time. Returns the number of
 * faulted runs.
 */
static int image_faults(const char *op, const char *err, bool sticky, const char *reason)
{
	char *base = big_guest("base.vhdx"), *st = store(), *base_sha = sha(base);
	struct counts c;
	struct t_run r;
	long pts[8], total;
	size_t n;

	cr_assert_eq(prepare_faulted(&r, base, NULL, base, st, NULL, &c), 0, "%s", r.err);
	t_run_free(&r);
	total = !strcmp(op, "read") ? c.read : !strcmp(op, "write") ? c.write : c.sync;
	cr_assert_gt(total, 0, "a prepare made no %s call on the image", op);
	/* The counting run changed @base: fault runs start from a fresh copy. */
	unlink(base);
	free(base);
	base = big_guest("base.vhdx");
	n = spread(total, pts);
	for (size_t i = 0; i < n; i++) {
		char *img = t_strdup_printf("%s/f%ld.vhdx", dir, pts[i]);
		char *spec = t_strdup_printf("%s:%ld:%s%s", op, pts[i], err, sticky ? "+" : "");
		char *what = t_strdup_printf("%s (of %ld)", spec, total);
		char *name = strrchr(img, '/') + 1;

		t_copy(base, img);
		prepare_faulted(&r, img, spec, img, st, NULL, NULL);
		if (r.status == 4) {
			/* A read failing inside the independent read-back. */
			cr_assert(strstr(r.err, reason), "%s: %s", what, r.err);
		} else {
			assert_one_error_line(&r, what, name, reason, NULL);
		}
		if (!strcmp(op, "read") && pts[i] <= 2) {
			/* Format detection and the headers: nothing written. */
			char *now = sha(img);

			cr_assert_str_eq(now, base_sha, "%s: a failed open changed the image", what);
			free(now);
		}
		recover(img, st, what);
		t_run_free(&r);
		unlink(img);
		free(img);
		free(spec);
		free(what);
	}
	free(base);
	free(st);
	free(base_sha);
	return (int)n;
}

/* ---- EIO on the image --------------------------------------------------- */

Test(fault, eio_on_image_reads)
{
	image_faults("read", "EIO", false, "Input/output error");
}

Test(fault, eio_on_image_writes)
{
	image_faults("write", "EIO", false, "Input/output error");
}

Test(fault, eio_on_image_flushes)
{
	image_faults("sync", "EIO", false, "Input/output error");
}

/* A disk that stays dead from the Nth write on. */
Test(fault, eio_on_every_write_from_a_point_on)
{
	image_faults("write", "EIO", true, "Input/output error");
}

/* @size bytes of the run's pseudo-random data in @path (incompressible, as
 * /dev/urandom's, but replayable). */
static void random_file(const char *path, size_t size)
{
	uint64_t seed = run_seed ^ 0x62696766696cULL;
	size_t chunk = 1 << 20;
	unsigned char *buf = malloc(chunk);
	FILE *f = fopen(path, "wb");

	cr_assert(buf && f, "%s", path);
	for (size_t done = 0; done < size; done += chunk) {
		t_fill_random(buf, chunk, &seed);
		cr_assert_eq(fwrite(buf, 1, chunk, f), chunk);
	}
	cr_assert_eq(fclose(f), 0);
	free(buf);
}

/*
 * The VHDX engine flushes ahead on a second thread every 256 MiB written
 * (imaging/vhdx.c, flush_ahead()). Those flushes are host calls like any
 * other: a 320 MiB write makes more of them than a 64 MiB one, and an EIO
 * on each flush of the run, the background ones included, ends the run
 * with one line naming the image, leaves it passing qemu-img check, and a
 * second write completes it to the source's bytes.
 */
Test(fault, eio_on_every_flush_of_a_long_write_including_flush_ahead)
{
	char *big = t_strdup_printf("%s/big.bin", dir), *small = t_strdup_printf("%s/small.bin", dir);
	char *img = t_strdup_printf("%s/w.vhdx", dir);
	struct counts cs, cb;
	struct t_run r;

	random_file(big, 320 << 20);
	cr_assert_eq(t_run(&r, "head -c 67108864 '%s' > '%s'", big, small), 0, "%s", r.err);
	t_run_free(&r);
	for (int pass = 0; pass < 2; pass++) {
		char *args = t_strdup_printf("disk write '%s' --offset 0 -i '%s'", img,
					     pass ? big : small);

		unlink(img);
		cr_assert_eq(t_gpup(&r, "create '%s' --size 1G", img), 0, "%s", r.err);
		t_run_free(&r);
		cr_assert_eq(gpup_faulted(&r, img, NULL, pass ? &cb : &cs, args), 0, "%s", r.err);
		t_run_free(&r);
		free(args);
	}
	cr_assert_gt(cb.sync, cs.sync, "no flush-ahead: %ld flushes for 320 MiB, %ld for 64 MiB",
		     cb.sync, cs.sync);
	for (long n = 1; n <= cb.sync; n++) {
		char *spec = t_strdup_printf("sync:%ld:EIO", n);
		char *what = t_strdup_printf("%s (of %ld)", spec, cb.sync);
		char *args = t_strdup_printf("disk write '%s' --offset 0 -i '%s'", img, big);

		unlink(img);
		cr_assert_eq(t_gpup(&r, "create '%s' --size 1G", img), 0, "%s", r.err);
		t_run_free(&r);
		gpup_faulted(&r, img, spec, NULL, args);
		assert_one_error_line(&r, what, "w.vhdx", "Input/output error", NULL);
		t_run_free(&r);
		qemu_check(img, what);
		cr_assert_eq(t_gpup(&r, "%s", args), 0, "%s: the second write: %s", what, r.err);
		t_run_free(&r);
		cr_assert_eq(t_run(&r, "qemu-img compare -q -f vhdx -F raw '%s' '%s'", img, big), 0,
			     "%s: the image differs from the source: %s%s", what, r.out, r.err);
		t_run_free(&r);
		free(spec);
		free(what);
		free(args);
	}
	free(big);
	free(small);
	free(img);
}

/* ---- host file system full ---------------------------------------------- */

/* ENOSPC on every write from a point on: a full host file system. */
Test(fault, host_fs_full_enospc)
{
	image_faults("write", "ENOSPC", true, "No space left on device");
}

/*
 * The real thing, without root: RLIMIT_FSIZE (SIGXFSZ ignored, so writes
 * past the limit fail with EFBIG) on `prepare --into-child`, whose child
 * grows by a 32 MiB block for each block the package touches. Limits: below
 * the empty child (creation fails), then within each block allocation.
 * The golden parent stays byte-identical throughout.
 */
Test(fault, host_fs_full_rlimit_fsize_during_block_allocation)
{
	char *gold = big_guest("gold.vhdx"), *st = store(), *gold_sha = sha(gold);
	char *child = t_strdup_printf("%s/vm.avhdx", dir);
	struct t_run r;
	long long full;
	int faults = 0;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --into-child '%s'", gold,
	       st, child);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_run(&r, "stat -c %%s '%s'", child);
	full = atoll(r.out);
	t_run_free(&r);
	cr_assert_gt(full, 36LL << 20, "the child did not grow by blocks: %lld bytes", full);
	/* 1 MiB: the empty child (4 MiB) cannot be created; then 4 MiB past
	 * each 32 MiB block boundary: that block's allocation fails. */
	for (long long lim = 1LL << 20; lim < full; lim = lim < (4LL << 20) ? (8LL << 20) : lim + (32LL << 20)) {
		char *what = t_strdup_printf("RLIMIT_FSIZE %lld MiB", lim >> 20);
		char *lsan = disk_failed_lsan();

		unlink(child);
		t_run(&r, "trap '' XFSZ; ulimit -f %lld; %sexec '%s' prepare '%s' --driverstore '%s' "
			  "--gpu '" NV_GPU "' -q --into-child '%s'",
		      lim / 512, lsan, t_env("GPUP_BIN"), gold, st, child);
		free(lsan);
		assert_one_error_line(&r, what, "vm.avhdx", "File too large", NULL);
		faults++;
		t_run_free(&r);
		/* qemu-img cannot open differencing VHDX: gpup's engine checks
		 * a child left behind (it must open; none is fine too). */
		if (access(child, F_OK) == 0) {
			t_gpup(&r, "inspect '%s'", child);
			cr_assert_eq(r.status, 0, "%s: the child left behind does not open: %s", what,
				     r.err);
			t_run_free(&r);
		}
		/* A block allocation cut short may leave an MFT record's
		 * $MFT copy in the child without its $MFTMirr copy: the
		 * rerun repairs that. */
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --into-child '%s'",
		       gold, st, child);
		cr_assert_eq(r.status, 0, "%s: the rerun failed: %s", what, r.err);
		t_run_free(&r);
		t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", child, st);
		cr_assert_eq(r.status, 0, "%s: verify: %s %s", what, r.out, r.err);
		t_run_free(&r);
		{
			char *now = sha(gold);

			cr_assert_str_eq(now, gold_sha, "%s: the golden parent changed", what);
			free(now);
		}
		free(what);
	}
	cr_assert_geq(faults, 3);
	free(child);
	free(gold);
	free(st);
	free(gold_sha);
}

/* ---- guest volume full ---------------------------------------------------- */

/* Free bytes of the guest volume, from `gpup inspect --json`. */
static long long guest_free(const char *img)
{
	struct t_run r;
	const char *p;
	long long v;

	t_gpup(&r, "inspect '%s' --json", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	p = strstr(r.out, "\"free_bytes\":");
	cr_assert_not_null(p, "%s", r.out);
	v = atoll(p + strlen("\"free_bytes\":"));
	t_run_free(&r);
	return v;
}

/* A 16 MiB guest whose volume keeps @left bytes free (about: a filler file
 * takes the rest). Returns the image path. */
static char *small_guest_with_free(long long left, const char *name)
{
	char *img = guest_copy("--layout mbr --size 16M --vhdx", name);
	char *filler = t_strdup_printf("%s/filler.bin", dir);
	long long fill = guest_free(img) - left;
	struct t_run r;

	cr_assert_gt(fill, 0);
	t_run(&r, "head -c %lld /dev/zero > '%s'", fill, filler);
	t_run_free(&r);
	t_gpup(&r, "put '%s' '%s' / -q", img, filler);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	unlink(filler);
	free(filler);
	return img;
}

/* The package folder is not in the guest (a failed run rolled it back). */
static void assert_no_package(const char *img, const char *what)
{
	struct t_run r;

	t_gpup(&r, "ls '%s' '" HDS "'", img);
	cr_assert(!strstr(r.out, NV_PKG), "%s: a partial package was left: %s", what, r.out);
	t_run_free(&r);
}

/* Make room again (remove the filler), complete, verify. */
static void free_and_complete(const char *img, const char *st, const char *what)
{
	struct t_run r;

	t_gpup(&r, "rm '%s' /filler.bin -q", img);
	cr_assert_eq(r.status, 0, "%s: rm: %s", what, r.err);
	t_run_free(&r);
	recover(img, st, what);
}

/* Less free space than the package needs: refused before any write. */
Test(fault, guest_volume_full_is_refused_before_writing)
{
	char *st = store(), *img = small_guest_with_free(100 << 10, "small.vhdx");
	char *before = sha(img), *after;
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
	assert_one_error_line(&r, "guest full", "small.vhdx", "not enough free space in the guest volume",
			      "need ", NULL);
	t_run_free(&r);
	after = sha(img);
	cr_assert_str_eq(after, before, "a refused prepare changed the image");
	qemu_check(img, "guest full");
	free_and_complete(img, st, "guest full");
	free(before);
	free(after);
	free(img);
	free(st);
}

/*
 * The up-front check counts the new files' NTFS metadata (MFT records,
 * index blocks, $MFT growth) besides their data. Free space above the data
 * but below that need: refused before writing, image byte-identical (a
 * data-only check let such a run out of space half-way). Free space of
 * exactly the stated need: the run completes, so the estimate is enough.
 */
Test(fault, guest_volume_metadata_is_counted_up_front)
{
	char *st = store();
	struct t_run r;
	long long need = 0, data = 0;

	/* The package's need, as the refusal states it. */
	{
		char *img = small_guest_with_free(100 << 10, "probe.vhdx");
		const char *p;

		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
		p = strstr(r.err, "need ");
		cr_assert_not_null(p, "%s", r.err);
		need = atoll(p + 5);
		p = strstr(r.err, " (");
		cr_assert_not_null(p, "%s", r.err);
		data = atoll(p + 2);
		cr_assert(strstr(r.err, " bytes, have ") && strstr(r.err, " of file data, ") &&
			  strstr(r.err, " of NTFS metadata and reserve)"), "%s", r.err);
		cr_assert_gt(data, 0);
		cr_assert_gt(need, data + 16384, "%s", r.err);
		t_run_free(&r);
		free(img);
	}
	for (long long slack = 4096; slack <= 16384; slack += 4096) {
		char *name = t_strdup_printf("mid%lld.vhdx", slack);
		char *what = t_strdup_printf("guest full, %lld bytes above the data", slack);
		char *img = small_guest_with_free(data + slack, name);
		char *before = sha(img), *after;

		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
		assert_one_error_line(&r, what, name, "not enough free space in the guest volume", NULL);
		t_run_free(&r);
		after = sha(img);
		cr_assert_str_eq(after, before, "%s: a refused prepare changed the image", what);
		free_and_complete(img, st, what);
		free(before);
		free(after);
		free(img);
		free(name);
		free(what);
	}
	{
		/* The filler's own metadata can take a cluster more than asked:
		 * ask again for the difference. */
		char *img = small_guest_with_free(need, "exact.vhdx");
		long long got = guest_free(img);

		if (got < need) {
			free(img);
			img = small_guest_with_free(need + (need - got), "exact.vhdx");
			got = guest_free(img);
		}
		cr_assert(got >= need && got < need + 8192, "free %lld for a need of %lld", got, need);
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
		cr_assert_eq(r.status, 0, "free space = the stated need (%lld) was not enough: %s", need,
			     r.err);
		t_run_free(&r);
		qemu_check(img, "free space = need");
		t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "'", img, st);
		cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
		t_run_free(&r);
		free(img);
	}
	free(st);
}

/* ---- unreadable and changing sources ------------------------------------- */

/*
 * A source file fails to read (EIO from the host disk, at the first and at a
 * later read), or changes size while being copied (another program
 * rewriting it). Each: exit 1, the host file named, the half-written package
 * rolled back; a rerun (source readable again / now of its new size)
 * completes and verifies.
 */
static void source_fault(const char *spec, const char *reason)
{
	char *img = big_guest("g.vhdx"), *st = store_copy();
	char *src = t_strdup_printf("%s/" BIG_SOURCE, st);
	char *what = t_strdup_printf("source %s", spec);
	struct t_run r;

	prepare_faulted(&r, src, spec, img, st, NULL, NULL);
	assert_one_error_line(&r, what, src, reason, NULL);
	qemu_check(img, what);
	assert_no_package(img, what);
	recover(img, st, what);
	t_run_free(&r);
	free(img);
	free(st);
	free(src);
	free(what);
}

Test(fault, source_eio_on_first_read) { source_fault("read:1:EIO", "Input/output error"); }
Test(fault, source_eio_on_later_read) { source_fault("read:2:EIO", "Input/output error"); }
Test(fault, source_grows_while_copied) { source_fault("read:1:grow", "grew while being copied"); }
Test(fault, source_shrinks_while_copied) { source_fault("read:1:shrink", "shrank while being copied"); }

/*
 * A package file that is not a file: a dangling symlink, a directory's
 * worth of nothing, a FIFO (all a broken or hostile host copy can hold).
 * Refused before writing (the image stays byte-identical), naming it.
 */
Test(fault, source_not_a_regular_file_is_refused)
{
	static const char *const kinds[] = { "ln -s /nonexistent/nvlddmkm.sys", "mkfifo" };
	char *st = store_copy(), *img = big_guest("g.vhdx"), *before = sha(img);
	char *src = t_strdup_printf("%s/" BIG_SOURCE, st);
	struct t_run r;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char *after;

		t_run(&r, "rm -rf '%s' && %s '%s'", src, kinds[i], src);
		cr_assert_eq(r.status, 0, "%s", r.err);
		t_run_free(&r);
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
		assert_one_error_line(&r, kinds[i], src, "not a regular file", NULL);
		t_run_free(&r);
		after = sha(img);
		cr_assert_str_eq(after, before, "%s: the image changed", kinds[i]);
		free(after);
	}
	free(src);
	free(img);
	free(before);
	free(st);
}

/* Unreadable by permission. Root reads anything, so as root (CI) the run
 * drops to nobody (setpriv, util-linux) over a copy of the host and an
 * image that nobody owns: the EACCES then comes from the kernel, as for a
 * user's run. */
Test(fault, source_without_read_permission)
{
	char *st, *img, *src, *as = NULL;
	struct t_run r;

	st = store_copy();
	img = big_guest("g.vhdx");
	src = t_strdup_printf("%s/" BIG_SOURCE, st);
	if (geteuid() == 0) {
		cr_assert_eq(t_run(&r, "command -v setpriv && chown -R 65534:65534 '%s'", dir), 0,
			     "setpriv (util-linux) is needed to drop root: %s", r.err);
		t_run_free(&r);
		as = t_strdup_printf("setpriv --reuid=65534 --regid=65534 --clear-groups "
				     "--inh-caps=-all --bounding-set=-all");
	}
	cr_assert_eq(chmod(src, 0), 0);
	t_run(&r, "%s '%s' prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", as ? as : "",
	      t_env("GPUP_BIN"), img, st);
	assert_one_error_line(&r, "chmod 000", src, "Permission denied", NULL);
	qemu_check(img, "chmod 000");
	assert_no_package(img, "chmod 000");
	t_run_free(&r);
	cr_assert_eq(chmod(src, 0644), 0);
	recover(img, st, "chmod 000");
	free(as);
	free(src);
	free(img);
	free(st);
}

/* ---- a directory entry without its file ------------------------------------ */

/* Little-endian fields of what `gpup disk read` returned. */
static unsigned long long le_at(const unsigned char *p, int n)
{
	unsigned long long v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* @len bytes at disk offset @off of @img (through gpup's own stack). */
static unsigned char *disk_bytes(const char *img, unsigned long long off, size_t len)
{
	char *out = t_strdup_printf("%s/bytes.bin", dir);
	unsigned char *buf;
	struct t_run r;
	size_t got;

	t_gpup(&r, "disk read '%s' --offset %llu --length %zu -o '%s'", img, off, len, out);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	buf = (unsigned char *)t_read_file(out, &got);
	cr_assert(buf && got == len);
	unlink(out);
	free(out);
	return buf;
}

/* MFT record number of guest @path, from `gpup ls --json` of its parent
 * (ls of a directory lists what it holds). */
static unsigned long long mft_record_of(const char *img, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *parent = strndup(path, (size_t)(slash - path));
	char *key = t_strdup_printf("\"name\":\"%s\"", slash + 1);
	struct t_run r;
	const char *p;
	unsigned long long rec;

	t_gpup(&r, "ls '%s' '%s' --json", img, parent);
	cr_assert_eq(r.status, 0, "%s", r.err);
	p = strstr(r.out, key);
	cr_assert_not_null(p, "%s not in %s", key, r.out);
	p = strstr(p, "\"mft_record\":");
	cr_assert_not_null(p, "%s", r.out);
	rec = strtoull(p + strlen("\"mft_record\":"), NULL, 10);
	t_run_free(&r);
	free(parent);
	free(key);
	return rec;
}

/* Disk offset of the NTFS volume of the 2 GiB generated guest (mkguest.sh
 * writes "offset length" to guest.part beside the image). */
static unsigned long long guest_part_offset(const char *fx)
{
	char *pf = t_strdup_printf("%s/guest.part", fx);
	unsigned long long part = 0, len = 0;
	FILE *f = fopen(pf, "r");

	cr_assert_not_null(f, "%s", pf);
	cr_assert_eq(fscanf(f, "%llu %llu", &part, &len), 2);
	fclose(f);
	free(pf);
	return part;
}

/* Disk offset of MFT record @rec of the NTFS volume at disk offset @part,
 * checked: the boot sector gives the place ($MFT of the generated guest is
 * contiguous) and the record's own number (at 0x2C) confirms it. */
static unsigned long long mft_record_at(const char *img, unsigned long long part,
					unsigned long long rec)
{
	unsigned char *bs = disk_bytes(img, part, 512), *m;
	unsigned long long cluster = le_at(bs + 0x0B, 2) * le_at(bs + 0x0D, 1);
	signed char cpr = (signed char)bs[0x40];
	unsigned long long rsize = cpr < 0 ? 1ULL << -cpr : (unsigned long long)cpr * cluster;
	unsigned long long at = part + le_at(bs + 0x30, 8) * cluster + rec * rsize;

	m = disk_bytes(img, at, 64);
	cr_assert(memcmp(m, "FILE", 4) == 0 && le_at(m + 0x2C, 4) == rec,
		  "MFT record %llu is not at %llu", rec, at);
	free(bs);
	free(m);
	return at;
}

/* Write @n bytes at @at of the virtual disk, as `gpup disk write` can. */
static void disk_patch(const char *img, unsigned long long at, const void *bytes, size_t n)
{
	char *patch = t_strdup_printf("%s/patch.bin", dir);
	struct t_run r;

	cr_assert_eq(t_write_file(patch, bytes, n), 0);
	t_gpup(&r, "disk write '%s' --offset %llu -i '%s'", img, at, patch);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	unlink(patch);
	free(patch);
}

/*
 * Mark MFT record @rec of the guest's NTFS volume (at disk offset @part)
 * not in use: the state a kill leaves when libntfs-3g wrote a new file's
 * directory entry and not yet its record.
 */
static void free_mft_record(const char *img, unsigned long long part, unsigned long long rec)
{
	unsigned long long at = mft_record_at(img, part, rec);
	unsigned char *m = disk_bytes(img, at, 64);
	unsigned char flags[2];

	cr_assert(le_at(m + 0x16, 2) & 1, "MFT record %llu is not in use", rec);
	flags[0] = (unsigned char)(m[0x16] & ~1u); /* MFT_RECORD_IN_USE off */
	flags[1] = m[0x17];
	disk_patch(img, at + 0x16, flags, 2);
	free(m);
}

/*
 * Hostile sizes in a record $MFTMirr disagrees with: $Volume's record
 * (number 3, mirrored) claims 64 KiB in use in a 1 KiB record. libntfs-3g
 * refuses the mount; gpup's mirror check then reads the records raw and
 * must not believe that size (it would compare and parse past the record)
 * nor repair from a record that is not whole: a one-line refusal, the
 * image byte-identical (ASan run: no overread).
 */
Test(fault, hostile_record_size_in_a_stale_mirror_is_refused)
{
	char *fx = t_fixture("mkguest.sh", "--size 2G --vhdx");
	char *src = t_strdup_printf("%s/guest.vhdx", fx);
	char *img = t_strdup_printf("%s/hostile.vhdx", dir), *before, *after;
	static const unsigned char huge[4] = { 0x00, 0x00, 0x01, 0x00 };
	const char *nl;
	struct t_run r;

	t_copy(src, img);
	disk_patch(img, mft_record_at(img, guest_part_offset(fx), 3) + 0x18, huge, sizeof(huge));
	before = sha(img);
	t_gpup(&r, "put '%s' '%s' 'C:\\' -q", img, src);
	cr_assert_eq(r.status, 3, "a volume with a broken $Volume record: exit %d: %s", r.status, r.err);
	nl = strchr(r.err, '\n');
	cr_assert(nl && !nl[1] && strstr(r.err, "hostile.vhdx") &&
		  strstr(r.err, "$MFTMirr does not match $MFT (record 3)"), "%s", r.err);
	t_run_free(&r);
	after = sha(img);
	cr_assert_str_eq(after, before, "a refused run changed the image");
	free(before);
	free(after);
	free(src);
	free(img);
	free(fx);
}

/*
 * A directory entry whose MFT record is free (a prepare killed between
 * libntfs-3g's write of a new index entry and of its file's record; seen
 * once in ~200 random kills): read-only readers find the file missing and
 * say why, and the same prepare removes the entry and writes the file.
 * For a file, and for the package folder (every file below it is then
 * unreachable and written again).
 */
Test(fault, entry_without_its_file_is_written_again)
{
	static const char *const victims[] = { "Windows/System32/nvml.dll", HDS "/" NV_PKG };
	char *fx = t_fixture("mkguest.sh", "--size 2G --vhdx"), *base = big_guest("base.vhdx");
	char *st = store();
	unsigned long long part = guest_part_offset(fx);
	struct t_run r;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", base, st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	for (size_t i = 0; i < sizeof(victims) / sizeof(victims[0]); i++) {
		char *img = t_strdup_printf("%s/dangling%zu.vhdx", dir, i);

		t_copy(base, img);
		free_mft_record(img, part, mft_record_of(img, victims[i]));
		if (i == 0) {
			t_gpup(&r, "cat '%s' '%s'", img, victims[i]);
			assert_one_error_line(&r, victims[i], "nvml.dll", "no such file or directory",
					      "names a free MFT record", NULL);
			t_run_free(&r);
		} else {
			t_gpup(&r, "ls '%s' '" HDS "'", img);
			cr_assert_eq(r.status, 0, "%s", r.err);
			cr_assert(!strstr(r.out, NV_PKG), "a folder without its record is listed: %s",
				  r.out);
			t_run_free(&r);
		}
		/* Read-only verification reports the file(s) missing. */
		t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "'", img, st);
		cr_assert_eq(r.status, 4, "%s: verify: exit %d: %s %s", victims[i], r.status, r.out,
			     r.err);
		cr_assert(strstr(r.out, "missing") || strstr(r.err, "missing"), "%s", r.out);
		t_run_free(&r);
		recover(img, st, victims[i]);
		unlink(img);
		free(img);
	}
	free(fx);
	free(base);
	free(st);
}

/* ---- every write point --------------------------------------------------- */

/*
 * The state a kill leaves between two writes, for each of the first writes
 * of a prepare: GPUP_FAULT=write:N:EIO+ fails write N and every later one,
 * so the image holds exactly the run's first N-1 writes, as after a SIGKILL
 * right before write N (a killed process's completed writes survive it).
 * Random kills land between two given writes once in hundreds of tries;
 * these points cover marking the volume, the first files (an MFT record
 * and its $MFTMirr copy; a new index entry and its file's record) and the
 * first new directories (a directory's index root turned into a block).
 * After each: read-only opens say what is wrong in one line or read what
 * is there, and the same prepare completes and verifies. GPUP_WRITE_POINTS
 * (default 160) sets how many points, split over WRITE_POINT_TESTS tests.
 */
#define WRITE_POINT_TESTS 4

struct point_stats {
	int points, mirror, dangling;
};

/* The guest path a faulted run names ("...: volume N: PATH: cannot ..."),
 * or NULL. */
static char *named_guest_path(const char *err)
{
	const char *p = strstr(err, ": volume "), *q;

	if (!p || !(p = strstr(p + 9, ": ")) || !(q = strstr(p + 2, ": cannot")))
		return NULL;
	return strndup(p + 2, (size_t)(q - p - 2));
}

static void write_point(const char *base, const char *st, long n, struct point_stats *ps)
{
	char *img = t_strdup_printf("%s/w%ld.vhdx", dir, n);
	char *spec = t_strdup_printf("write:%ld:EIO+", n);
	char *name = strrchr(img, '/') + 1, *gpath;
	struct t_run r, q;

	t_copy(base, img);
	prepare_faulted(&r, img, spec, img, st, "--no-verify", NULL);
	assert_one_error_line(&r, spec, name, "Input/output error", NULL);
	ps->points++;
	/* A read-only open of a volume whose $MFTMirr lags $MFT names that
	 * and the repair in one line. */
	t_gpup(&q, "ls '%s' /", img);
	if (q.status != 0) {
		assert_one_error_line(&q, spec, name, "$MFTMirr does not match $MFT",
				      "chkdsk /f", NULL);
		ps->mirror++;
	}
	t_run_free(&q);
	/* A file whose directory entry was written and whose MFT record was
	 * not is missing to read-only readers, with the reason. */
	gpath = named_guest_path(r.err);
	if (gpath) {
		t_gpup(&q, "cat '%s' '%s'", img, gpath);
		if (q.status != 0 && strstr(q.err, "names a free MFT record")) {
			assert_one_error_line(&q, spec, name, "no such file or directory", NULL);
			ps->dangling++;
		}
		t_run_free(&q);
	}
	free(gpath);
	t_run_free(&r);
	recover(img, st, spec);
	unlink(img);
	free(img);
	free(spec);
}

static void write_points(int part)
{
	const char *env = getenv("GPUP_WRITE_POINTS");
	long total = env ? atol(env) : 160, per = (total + WRITE_POINT_TESTS - 1) / WRITE_POINT_TESTS;
	long from = 1 + part * per, to = from + per - 1 < total ? from + per - 1 : total;
	char *base = big_guest("base.vhdx"), *st = store();
	struct point_stats ps = { 0 };

	for (long n = from; n <= to; n++)
		write_point(base, st, n, &ps);
	/* The first files' MFT records reach $MFT and $MFTMirr in two
	 * writes: the first points must meet that state, or this test no
	 * longer tests its repair. */
	if (part == 0)
		cr_assert_gt(ps.mirror, 0, "no write point left $MFTMirr behind $MFT");
	cr_log_info("write points %ld-%ld: %d faulted runs completed by the rerun; %d left "
		    "$MFTMirr behind $MFT, %d a directory entry without its file",
		    from, to, ps.points, ps.mirror, ps.dangling);
	free(base);
	free(st);
}

Test(fault, every_write_point_0) { write_points(0); }
Test(fault, every_write_point_1) { write_points(1); }
Test(fault, every_write_point_2) { write_points(2); }
Test(fault, every_write_point_3) { write_points(3); }

/* ---- crash-kill ----------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The median of three timings: one slow run (cold caches, a burst of load)
 * must not stretch a kill window past the runs it is meant to cover. */
static double median3(const double t[3])
{
	double lo = t[0] < t[1] ? t[0] : t[1], hi = t[0] < t[1] ? t[1] : t[0];

	return t[2] < lo ? lo : (t[2] > hi ? hi : t[2]);
}

struct kill_stats {
	int kills, landed, log_dirty, completed_by_rerun;
};

/*
 * Kill a prepare of a fresh copy of @base with @killer (a command prefix),
 * then: the image opens read-only (log replayed in memory) and its log
 * state is noted, the rerun of the same prepare completes (its own
 * libvhdi read-back compares every file with the host's SHA-256, i.e. with
 * an uninterrupted run), and qemu-img check is clean.
 */
static void kill_once(const char *base, const char *st, const char *killer, const char *tag,
		      struct kill_stats *ks)
{
	char *img = t_strdup_printf("%s/%s.vhdx", dir, tag);
	struct t_run r;

	t_copy(base, img);
	t_run(&r, "%s '%s' prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify", killer,
	      t_env("GPUP_BIN"), img, st);
	ks->kills++;
	ks->landed += r.status != 0;
	t_run_free(&r);
	t_gpup(&r, "inspect '%s' --json", img);
	cr_assert_eq(r.status, 0, "%s (%s, GPUP_TEST_SEED=%llu): the killed image does not open: %s",
		     tag, killer, (unsigned long long)run_seed, r.err);
	ks->log_dirty += strstr(r.out, "\"log_state\":\"empty\"") == NULL;
	t_run_free(&r);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --json", img, st);
	cr_assert_eq(r.status, 0, "%s (%s, GPUP_TEST_SEED=%llu): the rerun failed: %s", tag, killer,
		     (unsigned long long)run_seed, r.err);
	cr_assert(strstr(r.out, "\"verified\":true") || strstr(r.out, "\"verified\": true"),
		  "%s: the rerun did not verify: %s", tag, r.out);
	ks->completed_by_rerun += strstr(r.out, "\"changed\":true") != NULL;
	t_run_free(&r);
	qemu_check(img, tag);
	unlink(img);
	free(img);
}

/* GPUP_TEST_CRASH_AT=N: killed right after each flush boundary of a run. */
Test(fault, killed_at_each_flush_boundary)
{
	char *base = big_guest("base.vhdx"), *st = store();
	struct kill_stats ks = { 0 };
	struct counts c;
	struct t_run r;

	cr_assert_eq(prepare_faulted(&r, base, NULL, base, st, "--no-verify", &c), 0, "%s", r.err);
	t_run_free(&r);
	unlink(base);
	free(base);
	base = big_guest("base.vhdx");
	cr_assert_geq(c.sync, 2);
	for (long n = 1; n <= c.sync; n++) {
		char *k = t_strdup_printf("GPUP_TEST_CRASH_AT=%ld", n);
		char *tag = t_strdup_printf("flush%ld", n);

		kill_once(base, st, k, tag, &ks);
		free(k);
		free(tag);
	}
	cr_assert_eq(ks.landed, ks.kills, "a crash hook did not fire");
	cr_log_info("flush boundaries: %d kills, %d left a non-empty log", ks.kills, ks.log_dirty);
	free(base);
	free(st);
}

/*
 * SIGKILL at random moments. The window is calibrated: the median of three
 * uninterrupted runs of the same prepare on this machine, now, so that kills
 * spread over the whole run whatever the load. Part @part of KILL_TESTS.
 */
static void random_kills(int part)
{
	const char *env = getenv("GPUP_KILLS");
	int total = env ? atoi(env) : 100;
	int mine = total / KILL_TESTS + (part < total % KILL_TESTS);
	char *base = big_guest("base.vhdx"), *st = store();
	uint64_t seed = run_seed ^ 0x6b696c6c73ULL * (uint64_t)(part + 1);
	struct kill_stats ks = { 0 };
	double t[3], window;

	for (int i = 0; i < 3; i++) {
		char *img = t_strdup_printf("%s/cal.vhdx", dir);
		struct t_run r;
		double t0;

		t_copy(base, img);
		t0 = now_s();
		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify", img, st);
		t[i] = now_s() - t0;
		cr_assert_eq(r.status, 0, "%s", r.err);
		t_run_free(&r);
		unlink(img);
		free(img);
	}
	window = median3(t);
	for (int i = 0; i < mine; i++) {
		unsigned us = (unsigned)(t_rand(&seed) % (uint64_t)(window * 1e6 + 1));
		char *k = t_strdup_printf("timeout -s KILL %u.%06us", us / 1000000, us % 1000000);
		char *tag = t_strdup_printf("kill%d-%d", part, i);

		kill_once(base, st, k, tag, &ks);
		free(k);
		free(tag);
	}
	/* Kills that all came after the end would test nothing. */
	cr_assert_geq(ks.landed * 2, ks.kills, "only %d of %d kills landed before the end (GPUP_TEST_SEED=%llu)",
		      ks.landed, ks.kills, (unsigned long long)run_seed);
	cr_log_info("random kills part %d: window %.0f ms, %d kills, %d landed, %d left a "
		    "non-empty log, %d completed by the rerun",
		    part, window * 1e3, ks.kills, ks.landed, ks.log_dirty, ks.completed_by_rerun);
	free(base);
	free(st);
}

Test(fault, random_kills_0) { random_kills(0); }
Test(fault, random_kills_1) { random_kills(1); }
Test(fault, random_kills_2) { random_kills(2); }
Test(fault, random_kills_3) { random_kills(3); }

/* ---- crash-kill of prepare --into-child ------------------------------------- */

/*
 * `prepare GOLD --into-child CHILD` allocates every block it writes in the
 * child, so its BAT updates go through the VHDX log: these kills leave
 * logs with unapplied entries, which the kills of an in-place prepare
 * (whose package lands in allocated blocks) never do. After each kill:
 * a child left behind opens (log replayed in memory), the same command
 * run again completes and verifies (libvhdi read-back of every file with
 * the host's SHA-256), and the golden parent is byte-identical. A kill
 * while the child is being created leaves at most its temporary file,
 * never a half-written CHILD that the rerun would refuse to open.
 */
struct child_kill_stats {
	int kills, landed, child_left, log_dirty, tmp_left;
};

static void kill_child_once(const char *gold, const char *st, const char *killer,
			    bool crash_hook, struct child_kill_stats *ks)
{
	char *child = t_strdup_printf("%s/vm.avhdx", dir);
	bool landed;
	struct t_run r;

	t_run(&r, "rm -f '%s' '%s'.tmp-*", child, child);
	t_run_free(&r);
	t_run(&r, "%s '%s' prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify "
		  "--into-child '%s'", killer, t_env("GPUP_BIN"), gold, st, child);
	ks->kills++;
	landed = r.status != 0;
	ks->landed += landed;
	/* The crash hook fires only on CHILD opened read-write, i.e. after
	 * it was created and renamed into place: such a kill, and a run that
	 * completed, always leave CHILD and never its temporary file. */
	cr_assert(!landed || !crash_hook || r.status == 99, "%s: exit %d, not the crash hook: %s",
		  killer, r.status, r.err);
	t_run_free(&r);
	t_run(&r, "ls '%s'.tmp-* 2>/dev/null", child);
	ks->tmp_left += r.out[0] != '\0';
	if (crash_hook || !landed) {
		cr_assert_eq(r.out[0], '\0', "%s: a temporary child is left: %s", killer, r.out);
		cr_assert_eq(access(child, F_OK), 0, "%s: no child left behind", killer);
	}
	t_run_free(&r);
	if (access(child, F_OK) == 0) {
		ks->child_left++;
		t_gpup(&r, "inspect '%s' --json", child);
		cr_assert_eq(r.status, 0, "%s (GPUP_TEST_SEED=%llu): the child left behind does not open: %s",
			     killer, (unsigned long long)run_seed, r.err);
		ks->log_dirty += strstr(r.out, "\"log_state\":\"empty\"") == NULL;
		t_run_free(&r);
	}
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --json --into-child '%s'",
	       gold, st, child);
	cr_assert_eq(r.status, 0, "%s (GPUP_TEST_SEED=%llu): the rerun failed: %s", killer,
		     (unsigned long long)run_seed, r.err);
	cr_assert(strstr(r.out, "\"verified\":true") || strstr(r.out, "\"verified\": true"),
		  "%s: the rerun did not verify: %s", killer, r.out);
	t_run_free(&r);
	free(child);
}

Test(fault, into_child_killed_at_each_flush_boundary)
{
	char *gold = big_guest("gold.vhdx"), *st = store(), *gold_sha = sha(gold);
	struct child_kill_stats ks = { 0 };
	long n;

	/* GPUP_TEST_CRASH_AT=N dies after the child's Nth flush; a run that
	 * has fewer flushes completes, which ends the sweep. */
	for (n = 1; n < 200; n++) {
		char *k = t_strdup_printf("GPUP_TEST_CRASH_AT=%ld", n);
		int landed = ks.landed;

		kill_child_once(gold, st, k, true, &ks);
		free(k);
		if (ks.landed == landed)
			break;
	}
	cr_assert_lt(n, 200, "the crash hook never stopped firing");
	cr_assert_eq(ks.child_left, ks.kills, "every crash left the child (and the last run made it)");
	/* The point of this test: logs with unapplied BAT updates. */
	cr_assert_gt(ks.log_dirty, 0, "no flush boundary left an active log in the child");
	{
		char *now = sha(gold);

		cr_assert_str_eq(now, gold_sha, "the golden parent changed");
		free(now);
	}
	cr_log_info("into-child flush boundaries: %d kills, %d left an active log", ks.landed,
		    ks.log_dirty);
	free(gold);
	free(st);
	free(gold_sha);
}

Test(fault, into_child_random_kills)
{
	const char *env = getenv("GPUP_CHILD_KILLS");
	int total = env ? atoi(env) : 16;
	char *gold = big_guest("gold.vhdx"), *st = store(), *gold_sha = sha(gold);
	char *child = t_strdup_printf("%s/vm.avhdx", dir);
	uint64_t seed = run_seed ^ 0x6368696c64ULL;
	struct child_kill_stats ks = { 0 };
	double t[3], window;

	for (int i = 0; i < 3; i++) {
		struct t_run r;
		double t0 = now_s();

		t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --no-verify "
			   "--into-child '%s'", gold, st, child);
		t[i] = now_s() - t0;
		cr_assert_eq(r.status, 0, "%s", r.err);
		t_run_free(&r);
		unlink(child);
	}
	window = median3(t);
	/* Half the kills in the first eighth of the run, where the child is
	 * being created; the rest anywhere. */
	for (int i = 0; i < total; i++) {
		double w = i % 2 ? window : window / 8;
		unsigned us = (unsigned)(t_rand(&seed) % (uint64_t)(w * 1e6 + 1));
		char *k = t_strdup_printf("timeout -s KILL %u.%06us", us / 1000000, us % 1000000);

		kill_child_once(gold, st, k, false, &ks);
		free(k);
	}
	cr_assert_geq(ks.landed * 2, ks.kills, "only %d of %d kills landed before the end (GPUP_TEST_SEED=%llu)",
		      ks.landed, ks.kills, (unsigned long long)run_seed);
	{
		char *now = sha(gold);

		cr_assert_str_eq(now, gold_sha, "the golden parent changed");
		free(now);
	}
	cr_log_info("into-child random kills: window %.0f ms, %d kills, %d landed, %d left a "
		    "child (%d with an active log), %d left the child's temporary file",
		    window * 1e3, ks.kills, ks.landed, ks.child_left, ks.log_dirty, ks.tmp_left);
	free(child);
	free(gold);
	free(st);
	free(gold_sha);
}
