/* test_vhdx_random.c — differential test (acceptance test 2): thousands of
 * random unaligned writes on disks > 4 GiB, across block and chunk
 * boundaries, mirrored into a sparse raw shadow; then the written regions
 * and samples of the rest are compared through gpup's engine and libvhdi,
 * and (512-byte sectors) samples of the written ranges through qemu's VHDX
 * driver plus `qemu-img check`. */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vt.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)
#define NWRITES 2000

static char *dir;
static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }
TestSuite(vhdx_random, .init = setup, .fini = teardown, .timeout = 300);

struct ext { uint64_t off, len; };

static uint64_t pick_offset(uint64_t *seed, uint64_t size, uint64_t bs, uint64_t chunk)
{
	uint64_t r = t_rand(seed) % 100, base;

	if (r < 30) /* around a chunk boundary (sector-bitmap interleave) */
		base = chunk * (1 + t_rand(seed) % (size / chunk));
	else if (r < 60) /* around a block boundary in the first GiB */
		base = bs * (t_rand(seed) % (GiB / bs + 1));
	else if (r < 70) /* the end of the disk */
		base = size;
	else
		return t_rand(seed) % size;
	base += (t_rand(seed) % 8192) - 4096;
	return base % size;
}

static uint64_t pick_length(uint64_t *seed)
{
	uint64_t r = t_rand(seed) % 100;

	if (r < 70)
		return 1 + t_rand(seed) % 4096;
	if (r < 95)
		return 1 + t_rand(seed) % (256 * 1024);
	return 1 + t_rand(seed) % (3 * MiB);
}

static void cmp_range(struct gp_disk *a, struct gp_disk *b, int shadow, uint64_t off,
		      uint64_t len, uint8_t *x, uint8_t *y, uint8_t *z)
{
	cr_assert_eq(gp_disk_pread(a, x, len, off), 0, "%s", gp_disk_error(a)->msg);
	cr_assert_eq(gp_disk_pread(b, y, len, off), 0, "%s", gp_disk_error(b)->msg);
	memset(z, 0, len);
	cr_assert(pread(shadow, z, len, (off_t)off) >= 0);
	cr_assert(memcmp(x, z, len) == 0, "engine differs from the shadow at %llu+%llu",
		  (unsigned long long)off, (unsigned long long)len);
	cr_assert(memcmp(y, z, len) == 0, "libvhdi differs from the shadow at %llu+%llu",
		  (unsigned long long)off, (unsigned long long)len);
}

static void run(uint64_t size, uint32_t bs, uint32_t lss, uint64_t seed)
{
	char *img = t_strdup_printf("%s/r.vhdx", dir);
	char *shadow_path = t_strdup_printf("%s/shadow.raw", dir);
	uint64_t chunk = (1ull << 23) * lss;
	struct gp_disk_open_opts rw = { .writable = true }, ro = { 0 },
				 lv = { .backend = GP_DISK_BACKEND_LIBVHDI };
	struct gp_error err = { 0 };
	struct gp_disk *d, *e;
	struct ext *w = calloc(NWRITES, sizeof(*w));
	uint8_t *buf = malloc(3 * MiB + 8192), *x = malloc(3 * MiB + 8192),
		*y = malloc(3 * MiB + 8192);
	int shadow;

	cr_assert(w && buf && x && y);
	vt_create(img, size, bs, lss);
	shadow = open(shadow_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert(shadow >= 0);
	cr_assert_eq(ftruncate(shadow, (off_t)size), 0);

	cr_assert_eq(gp_disk_open(img, &rw, &d, &err), 0, "%s", err.msg);
	for (int i = 0; i < NWRITES; i++) {
		uint64_t off = pick_offset(&seed, size, bs, chunk), len = pick_length(&seed);

		if (len > size - off)
			len = size - off;
		t_fill_random(buf, len, &seed);
		w[i].off = off;
		w[i].len = len;
		cr_assert_eq(gp_disk_pwrite(d, buf, len, off), 0, "write %d: %s", i,
			     gp_disk_error(d)->msg);
		cr_assert_eq(pwrite(shadow, buf, len, (off_t)off), (ssize_t)len);
		if (i % 300 == 299)
			cr_assert_eq(gp_disk_flush(d), 0, "%s", gp_disk_error(d)->msg);
		if (i == NWRITES / 2) { /* reopen: the BAT went through the log */
			cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
			cr_assert(!vt_dirty(img));
			cr_assert_eq(gp_disk_open(img, &rw, &d, &err), 0, "%s", err.msg);
		}
	}
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	cr_assert(!vt_dirty(img));

	cr_assert_eq(gp_disk_open(img, &ro, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_open(img, &lv, &e, &err), 0, "%s", err.msg);
	for (int i = 0; i < NWRITES; i++) {
		/* The written range with a margin on each side. */
		uint64_t a = w[i].off > 4096 ? w[i].off - 4096 : 0;
		uint64_t b = w[i].off + w[i].len + 4096 < size ? w[i].off + w[i].len + 4096 : size;
		cmp_range(d, e, shadow, a, b - a, x, y, buf);
	}
	for (int i = 0; i < 300; i++) { /* samples of the rest */
		uint64_t off = t_rand(&seed) % (size - 65536);
		cmp_range(d, e, shadow, off, 65536, x, y, buf);
	}
	gp_disk_close(e, NULL);
	gp_disk_close(d, NULL);
	if (lss == 512) { /* qemu refuses 4096-byte sectors */
		char *scratch = t_strdup_printf("%s/q.raw", dir);
		for (int i = 0; i < NWRITES; i += NWRITES / 25) {
			uint64_t a = w[i].off / 512 * 512;
			uint64_t b = (w[i].off + w[i].len + 511) / 512 * 512;
			uint8_t *q = vt_qemu_range(img, a, b - a, scratch);

			memset(buf, 0, b - a);
			cr_assert(pread(shadow, buf, b - a, (off_t)a) >= 0);
			cr_assert(memcmp(q, buf, b - a) == 0, "qemu differs from the shadow at %llu",
				  (unsigned long long)a);
			free(q);
		}
		free(scratch);
		cr_assert_eq(vt_qemu_check(img), 0);
	}
	close(shadow);
	free(w); free(buf); free(x); free(y); free(img); free(shadow_path);
}

Test(vhdx_random, block_1m_sector_512) { run(6 * GiB, 1 * MiB, 512, 1); }
Test(vhdx_random, block_32m_sector_512) { run(6 * GiB, 32 * MiB, 512, 2); }
Test(vhdx_random, block_256m_sector_512) { run(6 * GiB, 256 * MiB, 512, 3); }
Test(vhdx_random, block_1m_sector_4096) { run(40 * GiB, 1 * MiB, 4096, 4); }
Test(vhdx_random, block_32m_sector_4096) { run(40 * GiB, 32 * MiB, 4096, 5); }
Test(vhdx_random, block_256m_sector_4096) { run(40 * GiB, 256 * MiB, 4096, 6); }

/* Writes scattered over 200 BAT sectors force commits without any flush:
 * a writer that then vanishes (no close) leaves those commits durable. */
Test(vhdx_random, large_batches_commit_without_flush)
{
	char *img = t_strdup_printf("%s/l.vhdx", dir);
	const uint64_t stride = 512 * MiB; /* one BAT sector per 512 blocks of 1 MiB */
	pid_t pid;
	int status;

	vt_create(img, 2048 * GiB, 1 * MiB, 512);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct gp_disk_open_opts rw = { .writable = true };
		struct gp_error err = { 0 };
		struct gp_disk *d;

		if (gp_disk_open(img, &rw, &d, &err))
			_exit(1);
		for (uint64_t i = 0; i < 200; i++) {
			uint8_t b = (uint8_t)(i + 1);
			if (gp_disk_pwrite(d, &b, 1, i * stride + 12345))
				_exit(2);
		}
		_exit(0); /* no flush, no close */
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert(!vt_dirty(img));
	for (uint64_t i = 0; i < 120; i++) {
		uint8_t *got = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, i * stride + 12345, 1);
		cr_assert_eq(got[0], (uint8_t)(i + 1), "write %llu was committed", (unsigned long long)i);
		free(got);
	}
	cr_assert_eq(vt_qemu_check(img), 0);
	free(img);
}
