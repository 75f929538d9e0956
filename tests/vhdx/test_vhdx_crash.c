/* test_vhdx_crash.c — crash safety (acceptance test 5): `gpup disk write`
 * killed with SIGKILL at ~50 random moments, and stopped at every flush
 * boundary in turn (GPUP_TEST_CRASH_AT); each time the image opens
 * (replaying its log), passes `qemu-img check`, and holds every write that
 * completed (was flushed) before the kill. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vt.h"

#define MiB (1024ull * 1024ull)
#define DISK (2048 * MiB)
#define NRUNS 50
#define REGION (32 * MiB)

static char *dir;
static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }
TestSuite(vhdx_crash, .init = setup, .fini = teardown, .timeout = 240);

static pid_t spawn_writer(const char *img, uint64_t off, const char *in, const char *crash_at)
{
	char offs[32];
	pid_t pid;

	snprintf(offs, sizeof(offs), "%llu", (unsigned long long)off);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (crash_at)
			setenv("GPUP_TEST_CRASH_AT", crash_at, 1);
		execl(t_env("GPUP_BIN"), "gpup", "disk", "write", img, "--offset", offs, "-i", in,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The run's seed (t_seed()), named in every assertion of the random test. */
static uint64_t run_seed;

/* Open read-write (replays a dirty log), close, then qemu-img check. */
static void recover_and_check(const char *img)
{
	struct gp_disk_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;

	cr_assert_eq(gp_disk_open(img, &rw, &d, &err), 0, "reopen after a crash (GPUP_TEST_SEED=%llu): %s",
		     (unsigned long long)run_seed, err.msg);
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	cr_assert(!vt_dirty(img), "GPUP_TEST_SEED=%llu", (unsigned long long)run_seed);
	cr_assert_eq(vt_qemu_check(img), 0, "qemu-img check after a crash (GPUP_TEST_SEED=%llu)",
		     (unsigned long long)run_seed);
}

Test(vhdx_crash, sigkill_at_random_moments)
{
	char *img = t_strdup_printf("%s/k.vhdx", dir);
	char *in = t_strdup_printf("%s/in.bin", dir);
	uint8_t *pat = malloc(6 * MiB), *got;
	uint64_t seed, off[NRUNS], len[NRUNS], pseed[NRUNS];
	bool done[NRUNS] = { false };
	int completed = 0, killed = 0;
	uint64_t window_us;

	/* Offsets, lengths, data and kill moments all derive from the run's
	 * seed; only the window's width is measured (see below). */
	run_seed = t_seed();
	seed = run_seed ^ 0x637261736bULL;
	vt_create(img, DISK, 1 * MiB, 512);
	/* The kill window follows the machine's speed: a whole writer run
	 * (6 MiB into a fresh image) is timed first, and the kills fall in
	 * 0..1.5x that time, so most land mid-write on a fast idle machine
	 * and on a loaded one alike. */
	{
		char *calib = t_strdup_printf("%s/calib.vhdx", dir);
		struct timespec t0, t1;
		int status;
		pid_t pid;

		vt_create(calib, DISK, 1 * MiB, 512);
		t_fill_random(pat, 6 * MiB, &seed);
		cr_assert_eq(t_write_file(in, pat, 6 * MiB), 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pid = spawn_writer(calib, 0, in, NULL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		window_us = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
		window_us = window_us * 3 / 2 + 1000;
		unlink(calib);
		free(calib);
	}
	for (int i = 0; i < NRUNS; i++) {
		int status;
		pid_t pid;

		off[i] = (uint64_t)i * REGION + t_rand(&seed) % MiB;
		len[i] = MiB + t_rand(&seed) % (5 * MiB);
		pseed[i] = t_rand(&seed) | 1;
		{
			uint64_t s = pseed[i];
			t_fill_random(pat, len[i], &s);
		}
		cr_assert_eq(t_write_file(in, pat, len[i]), 0);
		pid = spawn_writer(img, off[i], in, NULL);
		usleep((useconds_t)(t_rand(&seed) % window_us));
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status)) {
			cr_assert_eq(WEXITSTATUS(status), 0, "writer %d failed (GPUP_TEST_SEED=%llu)", i,
				     (unsigned long long)run_seed);
			done[i] = true;
			completed++;
		} else {
			killed++;
		}
		recover_and_check(img);
		/* Every write that completed before its kill is there. */
		for (int j = 0; j <= i; j++) {
			uint64_t s = pseed[j];
			if (!done[j])
				continue;
			t_fill_random(pat, len[j], &s);
			got = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, off[j], len[j]);
			cr_assert(memcmp(got, pat, len[j]) == 0, "run %d lost write %d (GPUP_TEST_SEED=%llu)", i,
				  j, (unsigned long long)run_seed);
			free(got);
		}
	}
	/* The final image through libvhdi too. */
	for (int j = 0; j < NRUNS; j++) {
		uint64_t s = pseed[j];
		if (!done[j])
			continue;
		t_fill_random(pat, len[j], &s);
		got = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, off[j], len[j]);
		cr_assert(memcmp(got, pat, len[j]) == 0, "libvhdi: write %d (GPUP_TEST_SEED=%llu)", j,
			  (unsigned long long)run_seed);
		free(got);
	}
	cr_log_info("crash test: %d writers completed, %d killed (window %llu us)", completed, killed,
		    (unsigned long long)window_us);
	cr_assert_gt(killed, 5, "most runs should be killed mid-way (GPUP_TEST_SEED=%llu)",
		     (unsigned long long)run_seed);
	free(pat); free(img); free(in);
}

/* Stop at each flush boundary in turn: after boundary 5 (log activated)
 * the new data is visible, before it the old state is intact. */
Test(vhdx_crash, every_flush_boundary)
{
	char *img = t_strdup_printf("%s/b.vhdx", dir);
	char *copy = t_strdup_printf("%s/b-%%d.vhdx", dir);
	char *in = t_strdup_printf("%s/in.bin", dir);
	uint8_t old[8192], neu[8192], *got;
	uint64_t seed = 5;
	struct t_run r;

	t_fill_random(old, sizeof(old), &seed);
	t_fill_random(neu, sizeof(neu), &seed);
	vt_create(img, 64 * MiB, 1 * MiB, 512);
	vt_write(img, old, sizeof(old), MiB - 4096); /* blocks 0 and 1 */
	cr_assert_eq(t_write_file(in, neu, sizeof(neu)), 0);
	for (int n = 1; n <= 8; n++) {
		char *c = t_strdup_printf("%s/b-%d.vhdx", dir, n);
		char nbuf[8];
		int status;
		pid_t pid;

		cr_assert_eq(t_run(&r, "cp '%s' '%s'", img, c), 0);
		t_run_free(&r);
		snprintf(nbuf, sizeof(nbuf), "%d", n);
		/* New data: the end of block 1 and block 2 (unallocated). */
		pid = spawn_writer(c, 3 * MiB - 4096, in, nbuf);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status));
		cr_assert_eq(WEXITSTATUS(status), n <= 7 ? 99 : 0, "boundary %d", n);
		recover_and_check(c);
		got = vt_read(c, GP_DISK_BACKEND_LIBVHDI, NULL, MiB - 4096, sizeof(old));
		cr_assert(memcmp(got, old, sizeof(old)) == 0, "old data intact after boundary %d", n);
		free(got);
		got = vt_read(c, GP_DISK_BACKEND_DEFAULT, NULL, 3 * MiB - 4096, sizeof(neu));
		if (n >= 5)
			cr_assert(memcmp(got, neu, sizeof(neu)) == 0, "committed after boundary %d", n);
		else
			cr_assert(memcmp(got + 4096, (uint8_t[4096]){ 0 }, 4096) == 0,
				  "block 2 not yet referenced after boundary %d", n);
		free(got);
		free(c);
	}
	free(img); free(copy); free(in);
}
