/* test_vhd.c — gpup's VHD backend (disk_vhd.c), fixed and dynamic: random
 * writes (1 byte to two blocks, across block boundaries) read back the
 * same through gpup, qemu-img (vpc) and libvhdi, on images made by qemu-img
 * and by Microsoft tools; `gpup check` stays clean; a SIGKILL during a
 * write leaves an image every reader opens; prepare works on a VHD guest.
 * (qemu-img has no `check` for vpc: it exits 63 "not supported".) */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk.h"
#include "disk_check.h"
#include "helpers.h"
#include "imaging_t.h"


static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(vhd, .init = setup, .fini = teardown, .timeout = 300);

/* [0, len) of @img through @backend. */
static uint8_t *read_via(const char *img, enum gp_disk_backend backend, uint64_t len)
{
	struct gp_disk_open_opts o = { .backend = backend };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	uint8_t *buf = malloc(len);

	cr_assert(buf);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "open %s: %s", img, err.msg);
	cr_assert_eq(gp_disk_pread(d, buf, len, 0), 0, "read %s: %s", img, gp_disk_error(d)->msg);
	gp_disk_close(d, NULL);
	return buf;
}

/* [0, len) through qemu's vpc driver (a raw node with a size over it). */
static uint8_t *read_qemu(const char *img, uint64_t len)
{
	char *out = t_strdup_printf("%s/q.raw", dir);
	struct t_run r;
	size_t got;
	uint8_t *buf;

	cr_assert_eq(t_run(&r, "rm -f '%s'; qemu-img convert --image-opts "
			      "'driver=raw,offset=0,size=%llu,file.driver=vpc,"
			      "file.file.driver=file,file.file.filename=%s' -O raw '%s'",
			   out, (unsigned long long)len, img, out), 0, "qemu-img: %s", r.err);
	t_run_free(&r);
	buf = (uint8_t *)t_read_file(out, &got);
	cr_assert(buf && got == len, "qemu read %zu of %llu bytes", got, (unsigned long long)len);
	free(out);
	return buf;
}

static char *qemu_vhd(const char *name, const char *subformat, const char *size)
{
	char *dst = t_strdup_printf("%s/%s", dir, name);
	struct t_run r;

	cr_assert_eq(t_run(&r, "qemu-img create -q -f vpc -o subformat=%s '%s' %s", subformat, dst,
			   size), 0, "%s", r.err);
	t_run_free(&r);
	return dst;
}

/* Two sessions of random writes into the first @span bytes; then every
 * reader sees the same bytes and `gpup check` is clean. */
static void random_writes(const char *img, uint64_t seed)
{
	struct gp_disk_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	uint64_t span, bs = 2 * MiB, size;
	uint8_t *exp, *pat, *got;

	cr_assert_eq(gp_disk_open(img, &rw, &d, &err), 0, "%s: %s", img, err.msg);
	cr_assert_str_eq(gp_disk_backend_name(d), "vhd");
	size = gp_disk_size(d);
	gp_disk_close(d, NULL);
	span = size < 48 * MiB ? size : 48 * MiB;
	exp = read_via(img, GP_DISK_BACKEND_LIBVHDI, span);
	pat = malloc(2 * bs);
	for (int session = 0; session < 2; session++) {
		cr_assert_eq(gp_disk_open(img, &rw, &d, &err), 0, "%s", err.msg);
		for (int i = 0; i < 30; i++) {
			uint64_t len = 1 + t_rand(&seed) % (i % 3 == 0 ? 4096 : 2 * bs);
			uint64_t off;

			if (len > span)
				len = span;
			off = t_rand(&seed) % (span - len + 1);
			if (i % 5 == 0) { /* straddle a block boundary */
				uint64_t b = (off / bs + 1) * bs;

				if (b - len / 2 + len <= span)
					off = b - len / 2;
			}
			t_fill_random(pat, (size_t)len, &seed);
			cr_assert_eq(gp_disk_pwrite(d, pat, len, off), 0, "%s", gp_disk_error(d)->msg);
			memcpy(exp + off, pat, (size_t)len);
		}
		cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	}
	got = read_via(img, GP_DISK_BACKEND_DEFAULT, span);
	cr_assert(memcmp(got, exp, span) == 0, "gpup reads its writes");
	free(got);
	got = read_via(img, GP_DISK_BACKEND_LIBVHDI, span);
	cr_assert(memcmp(got, exp, span) == 0, "libvhdi reads the writes");
	free(got);
	got = read_qemu(img, span);
	cr_assert(memcmp(got, exp, span) == 0, "qemu-img (vpc) reads the writes");
	free(got);
	/* The container only: random bytes over an NTFS partition leave no
	 * volume to check. */
	{
		struct gp_check_opts co = { .container_only = true };
		struct gp_check_report rep;

		cr_assert_eq(gp_check_image(img, &co, &rep, &err), 0, "%s", err.msg);
		cr_assert_eq(gp_check_status(&rep), 0, "%s", rep.count ? rep.findings[0].message : "");
		gp_check_report_free(&rep);
	}
	free(pat);
	free(exp);
}

Test(vhd, random_writes_qemu_dynamic) { random_writes(qemu_vhd("d.vhd", "dynamic", "256M"), 1); }
Test(vhd, random_writes_qemu_fixed) { random_writes(qemu_vhd("f.vhd", "fixed", "64M"), 2); }
Test(vhd, random_writes_hyperv_fixed) { random_writes(t_hyperv_fixture("fixed.vhd", dir), 3); }
Test(vhd, random_writes_hyperv_dynamic) { random_writes(t_hyperv_fixture("dynamic.vhd", dir), 4); }
Test(vhd, random_writes_hyperv2012r2) { random_writes(it_ms_fixture(dir, "hyperv2012r2-dynamic.vhd"), 5); }
Test(vhd, random_writes_virtualpc) { random_writes(it_ms_fixture(dir, "virtualpc-dynamic.vhd"), 6); }

/* SIGKILL in the middle of `gpup disk write` into a dynamic VHD: the image
 * still opens in every reader, `gpup check` finds no corruption (at most
 * leaked space), and an earlier completed write is intact. */
Test(vhd, sigkill_during_a_write)
{
	char *img = qemu_vhd("k.vhd", "dynamic", "1G");
	char *in = t_strdup_printf("%s/in", dir), *first = t_strdup_printf("%s/first", dir);
	uint8_t *a = malloc(4 * MiB), *big = malloc(64 * MiB), *got;
	uint64_t seed = 77;
	struct t_run r;

	t_fill_random(a, 4 * MiB, &seed);
	t_fill_random(big, 64 * MiB, &seed);
	cr_assert_eq(t_write_file(first, a, 4 * MiB), 0);
	cr_assert_eq(t_write_file(in, big, 64 * MiB), 0);
	cr_assert_eq(t_gpup(&r, "disk write '%s' --offset 1M -i '%s'", img, first), 0, "%s", r.err);
	t_run_free(&r);
	for (int k = 0; k < 6; k++) {
		unsigned ms = 5 + (unsigned)(t_rand(&seed) % 400);

		t_run(&r, "timeout -s KILL %u.%03us '%s' disk write '%s' --offset %lluM -i '%s'",
		      ms / 1000, ms % 1000, t_env("GPUP_BIN"), img, 8ull + 70ull * (uint64_t)k, in);
		t_run_free(&r);
		t_gpup(&r, "check '%s'", img);
		cr_assert(r.status == 0 || r.status == 3, "after kill %d: %s%s", k, r.out, r.err);
		t_run_free(&r);
		got = read_qemu(img, 5 * MiB);
		cr_assert(memcmp(got + MiB, a, 4 * MiB) == 0, "qemu: the first write survives kill %d", k);
		free(got);
		got = read_via(img, GP_DISK_BACKEND_LIBVHDI, 5 * MiB);
		cr_assert(memcmp(got + MiB, a, 4 * MiB) == 0, "libvhdi: the first write survives");
		free(got);
	}
	/* A write after the kills still lands and reads back everywhere. */
	cr_assert_eq(t_gpup(&r, "disk write '%s' --offset 900M -i '%s'", img, first), 0, "%s", r.err);
	t_run_free(&r);
	got = read_qemu(img, 904 * MiB);
	cr_assert(memcmp(got + 900 * MiB, a, 4 * MiB) == 0);
	free(got);
	free(a); free(big); free(in); free(first); free(img);
}

/* prepare on a guest converted to a dynamic VHD: written by gpup's VHD
 * backend, verified through libvhdi, clean for `gpup check`. */
Test(vhd, prepare_on_a_vhd_guest)
{
	char *src = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *img = t_strdup_printf("%s/g.vhd", dir);
	char *st = t_fixture("mkstore.sh", "");
	struct t_run r;

	cr_assert_eq(t_run(&r, "qemu-img convert -f vhdx -O vpc -o subformat=dynamic '%s' '%s'", src,
			   img), 0, "%s", r.err);
	t_run_free(&r);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);
	cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
	t_run_free(&r);
	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '" NV_GPU "'", img, st);
	cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
	cr_assert(strstr(r.out, "through libvhdi: all match"), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "check '%s'", img);
	cr_assert_eq(r.status, 0, "%s", r.out);
	t_run_free(&r);
	free(src); free(img); free(st);
}
