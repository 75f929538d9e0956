/* test_ntfs_vhdx.c — writing into VHDX guests through gpup's VHDX engine,
 * read back independently (libvhdi backend + read-only NTFS, qemu-img
 * check), and the growth bound of compact placement. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "disk.h"
#include "helpers.h"
#include "ntfs_test.h"
#include "ntfsvol.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(ntfs_vhdx, .init = setup, .fini = teardown, .timeout = 300);

/* Copy the cached 8 GiB dynamic VHDX guest (32 MiB blocks) into @dir. */
static char *vhdx_guest(void)
{
	char *cache = nt_guest_cache("--size 8G --vhdx");
	char *img = t_strdup_printf("%s/g.vhdx", dir);
	struct t_run r;

	t_run(&r, "cp --sparse=always %s/guest.vhdx %s", cache, img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	free(cache);
	return img;
}

/* Deterministic, non-zero, cheap content for file @n: a 4 KiB pattern
 * repeated, different per file. */
struct gen {
	uint64_t n, size, pos;
	uint8_t pat[4096];
};

static int gen_read(void *buf, size_t len, size_t *got, void *ctx)
{
	struct gen *g = ctx;
	size_t n = g->size - g->pos < len ? (size_t)(g->size - g->pos) : len;

	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = g->pat[(g->pos + i) & 4095];
	g->pos += n;
	*got = n;
	return 0;
}

static void gen_init(struct gen *g, uint64_t n, uint64_t size)
{
	uint64_t seed = n * 7919 + 1;

	g->n = n;
	g->size = size;
	g->pos = 0;
	t_fill_random(g->pat, sizeof(g->pat), &seed);
	g->pat[0] |= 1; /* never an all-zero first cluster */
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

struct hash_sink {
	unsigned char *p;
	size_t len;
};

static int hash_write(const void *buf, size_t len, void *ctx)
{
	struct hash_sink *s = ctx;

	s->p = realloc(s->p, s->len + len);
	memcpy(s->p + s->len, buf, len);
	s->len += len;
	return 0;
}

/* Read @path through libvhdi (read-only NTFS) and compare with @want. */
static void libvhdi_compare(const char *img, const char *path, const void *want, size_t len)
{
	struct gp_disk_open_opts o = { .backend = GP_DISK_BACKEND_LIBVHDI };
	struct gp_error err = { 0 };
	struct hash_sink s = { 0 };
	struct gp_disk *d;
	struct gp_ntfs *v;

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_open(d, NULL, &v, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_cat(v, path, hash_write, &s), 0, "%s", gp_ntfs_error(v)->msg);
	cr_assert_eq(s.len, len);
	cr_assert_eq(memcmp(s.p, want, len), 0, "%s differs through libvhdi", path);
	free(s.p);
	gp_ntfs_close(v, NULL);
	gp_disk_close(d, NULL);
}

Test(ntfs_vhdx, put_reads_back_through_libvhdi)
{
	char *img = vhdx_guest();
	char *f = t_strdup_printf("%s/drv.sys", dir);
	unsigned char *data = malloc(3 << 20);
	uint64_t seed = 11;
	struct t_run r;

	t_fill_random(data, 3 << 20, &seed);
	cr_assert_eq(t_write_file(f, data, 3 << 20), 0);
	t_gpup(&r, "put %s %s 'C:\\Windows\\System32\\HostDriverStore\\FileRepository\\x.inf_amd64_1'", img, f);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	t_run(&r, "qemu-img check %s", img);
	cr_assert_eq(r.status, 0, "qemu-img check: %s %s", r.out, r.err);
	t_run_free(&r);
	libvhdi_compare(img, "/Windows/System32/HostDriverStore/FileRepository/x.inf_amd64_1/drv.sys", data,
			3 << 20);
	free(data);
	free(f);
	free(img);
}

Test(ntfs_vhdx, hyperv_fixtures_take_files)
{
	static const char *const names[] = { "dynamic.vhdx", "fixed.vhdx" };

	for (size_t i = 0; i < 2; i++) {
		char *img = t_hyperv_fixture(names[i], dir);
		char *f = t_strdup_printf("%s/hello.txt", dir);
		struct t_run r;

		cr_assert_eq(t_write_file(f, "hello from gpup\n", 16), 0);
		/* No ntoskrnl.exe here: the sole NTFS volume is the target. */
		t_gpup(&r, "put %s %s /gpup", img, f);
		cr_assert_eq(r.status, 0, "%s: %s", names[i], r.err);
		t_run_free(&r);
		t_gpup(&r, "cat %s --partition 1 'C:\\GPUP\\HELLO.TXT'", img);
		cr_assert_str_eq(r.out, "hello from gpup\n", "%s", names[i]);
		t_run_free(&r);
		libvhdi_compare(img, "/gpup/hello.txt", "hello from gpup\n", 16);
		remove(img);
		free(f);
		free(img);
	}
}

/*
 * The measured problem: ntfs-3g's own allocator scattered a 1.3 GB package
 * over 223 of 256 32-MiB blocks of an 8 GiB volume. gpup must keep a
 * dynamic VHDX's growth within payload x 1.10 + 2 blocks.
 */
Test(ntfs_vhdx, growth_bound_1g_package, .timeout = 600)
{
	const uint64_t block = 32u << 20, files = 1000;
	char *img = vhdx_guest();
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_ntfs_open_opts vo = { .writable = true, .require_windows = true };
	struct gp_error err = { 0 };
	uint64_t before, after, payload = 0, bound, seed = 5;
	struct gp_disk *d;
	struct gp_ntfs *v;
	struct gen g;
	double t0, t1;
	struct timespec ts;

	before = file_size(img);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_open(d, &vo, &v, &err), 0, "%s", err.msg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	for (uint64_t i = 0; i < files; i++) {
		/* 1 GB in ~1000 files of 4 KiB .. 2 MiB, in 20 folders. */
		uint64_t size = 4096 + t_rand(&seed) % (2u << 20);
		char path[160];

		snprintf(path, sizeof(path),
			 "C:\\Windows\\System32\\HostDriverStore\\FileRepository\\pkg.inf_amd64_%02llu\\f%04llu.bin",
			 (unsigned long long)(i % 20), (unsigned long long)i);
		gen_init(&g, i, size);
		cr_assert_eq(gp_ntfs_put_stream(v, path, size, 1700000000, gen_read, &g, NULL), 0, "%s",
			     gp_ntfs_error(v)->msg);
		payload += size;
	}
	cr_assert_eq(gp_ntfs_close(v, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t1 = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	after = file_size(img);
	bound = payload + payload / 10 + 2 * block;
	cr_log_info("growth: payload %llu bytes in %llu files, VHDX %llu -> %llu (+%llu = %.3f x payload, %llu blocks); bound %llu; %.1f s",
		    (unsigned long long)payload, (unsigned long long)files, (unsigned long long)before,
		    (unsigned long long)after, (unsigned long long)(after - before),
		    (double)(after - before) / (double)payload,
		    (unsigned long long)((after - before + block - 1) / block), (unsigned long long)bound,
		    t1 - t0);
	fprintf(stderr, "growth: payload %llu, VHDX +%llu (%.3f x payload), bound %llu, %.1f s\n",
		(unsigned long long)payload, (unsigned long long)(after - before),
		(double)(after - before) / (double)payload, (unsigned long long)bound, t1 - t0);
	cr_assert(after - before <= bound, "VHDX grew by %llu bytes for a %llu-byte payload (bound %llu)",
		  (unsigned long long)(after - before), (unsigned long long)payload,
		  (unsigned long long)bound);
	/* Spot-check content through the independent reader. */
	for (uint64_t i = 0; i < files; i += 97) {
		char path[160];
		uint64_t s2 = 5, size = 0;
		unsigned char *want;
		size_t got;

		for (uint64_t k = 0; k <= i; k++)
			size = 4096 + t_rand(&s2) % (2u << 20);
		snprintf(path, sizeof(path),
			 "/Windows/System32/HostDriverStore/FileRepository/pkg.inf_amd64_%02llu/f%04llu.bin",
			 (unsigned long long)(i % 20), (unsigned long long)i);
		gen_init(&g, i, size);
		want = malloc(size);
		cr_assert_eq(gen_read(want, size, &got, &g), 0);
		libvhdi_compare(img, path, want, size);
		free(want);
	}
	free(img);
}

Test(ntfs_vhdx, refusal_leaves_vhdx_byte_identical)
{
	char *img = vhdx_guest();
	char *h = t_strdup_printf("%s/hiberfil.sys", dir), *f = t_strdup_printf("%s/x.txt", dir);
	char before[65], after[65];
	struct t_run r;

	cr_assert_eq(t_write_file(h, "hibrHIBR", 8), 0);
	cr_assert_eq(t_write_file(f, "x", 1), 0);
	t_gpup(&r, "put %s %s /", img, h);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "put %s %s /Windows", img, f);
	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert(strstr(r.err, "hibernated"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "the VHDX engine must not write before the refusal");
	free(f);
	free(h);
	free(img);
}

/* Free clusters inside blocks the VHDX already has are used before the
 * container grows: fill 200 MiB, delete every other file (100 MiB of holes
 * in allocated blocks), then put 80 MiB: the file must not grow by more
 * than one block (the directory's own metadata may need one). */
Test(ntfs_vhdx, fills_holes_in_allocated_blocks_first)
{
	const uint64_t block = 32u << 20, mib = 1u << 20;
	char *img = vhdx_guest();
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_ntfs_open_opts vo = { .writable = true };
	struct gp_error err = { 0 };
	uint64_t before, after;
	struct gp_disk *d;
	struct gp_ntfs *v;
	struct gen g;
	char path[128];

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_open(d, &vo, &v, &err), 0, "%s", err.msg);
	for (int i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), "/Windows/Temp/old%03d.bin", i);
		gen_init(&g, (uint64_t)i, 2 * mib);
		cr_assert_eq(gp_ntfs_put_stream(v, path, 2 * mib, 0, gen_read, &g, NULL), 0, "%s",
			     gp_ntfs_error(v)->msg);
	}
	for (int i = 0; i < 100; i += 2) {
		snprintf(path, sizeof(path), "/Windows/Temp/old%03d.bin", i);
		cr_assert_eq(gp_ntfs_remove(v, path, false), 0, "%s", gp_ntfs_error(v)->msg);
	}
	cr_assert_eq(gp_ntfs_close(v, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	before = file_size(img);

	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_ntfs_open(d, &vo, &v, &err), 0, "%s", err.msg);
	for (int i = 0; i < 80; i++) {
		snprintf(path, sizeof(path), "/Windows/System32/HostDriverStore/FileRepository/p/new%03d.bin", i);
		gen_init(&g, 1000 + (uint64_t)i, mib);
		cr_assert_eq(gp_ntfs_put_stream(v, path, mib, 0, gen_read, &g, NULL), 0, "%s",
			     gp_ntfs_error(v)->msg);
	}
	cr_assert_eq(gp_ntfs_close(v, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	after = file_size(img);
	fprintf(stderr, "holes: 80 MiB into 100 MiB of freed clusters: VHDX +%llu bytes\n",
		(unsigned long long)(after - before));
	cr_assert(after - before <= block, "VHDX grew by %llu bytes although allocated blocks had room",
		  (unsigned long long)(after - before));
	gen_init(&g, 1000 + 79, mib);
	{
		unsigned char *want = malloc(mib);
		size_t got;

		cr_assert_eq(gen_read(want, mib, &got, &g), 0);
		libvhdi_compare(img, "/Windows/System32/HostDriverStore/FileRepository/p/new079.bin", want, mib);
		free(want);
	}
	free(img);
}
