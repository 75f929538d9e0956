/*
 * test_wsl.c — issue 21's "WSL is where most users run it": what gpup does
 * on a file system without POSIX locks and with an image a running Hyper-V
 * VM holds, reproduced with the fault shim (tests/fixtures/fault_shim.c,
 * GPUP_FAULT_LOCK / GPUP_FAULT_OPEN) since this machine has no 9p /mnt/c.
 *
 * Lock errnos (ENOLCK, EOPNOTSUPP, EINVAL, ENOSYS): a holder's lock file
 * beside the image refuses the run (exit 3, image byte-identical, the
 * holder's file left alone); without one, the run completes with one
 * warning naming the lock file, the image verifies, and no lock file is
 * left. Open errnos (EACCES, EBUSY, ETXTBSY): exit 3, "in use by Hyper-V
 * (is the VM running?)", image byte-identical.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(wsl, .init = setup, .fini = teardown, .timeout = 600);

static char *sha(const char *path)
{
	char hex[65];

	cr_assert_eq(t_sha256_file(path, hex), 0, "cannot hash %s", path);
	return strdup(hex);
}

/* `gpup prepare IMG` with the shim set by @env (GPUP_FAULT_LOCK=... or
 * GPUP_FAULT_OPEN=...) acting on IMG. */
static int prepare_shimmed(struct t_run *r, const char *env, const char *img, const char *st)
{
	char *fx = t_fixture("mkshim.sh", "");

	t_run(r,
	      "LD_PRELOAD='%s/fault_shim.so' GPUP_FAULT_FILE='%s' %s "
	      "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" "
	      "'%s' prepare '%s' --driverstore '%s' --gpu '" NV_GPU "'",
	      fx, img, env, t_env("GPUP_BIN"), img, st);
	free(fx);
	return r->status;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* A lock file as a gpup with pid @pid on this host leaves it. */
static void plant_lock(const char *lock, long pid)
{
	char host[256] = "";
	FILE *f = fopen(lock, "w");

	cr_assert_not_null(f);
	gethostname(host, sizeof(host) - 1);
	fprintf(f, "gpup pid %ld host %s\n", pid, host);
	fclose(f);
}

/* A pid that is certainly not running: a child that has been reaped. */
static long dead_pid(void)
{
	pid_t p = fork();

	cr_assert_geq(p, 0);
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return (long)p;
}

static void refused_by(const char *env, const char *img, const char *st, const char *lock,
		       const char *needle)
{
	char *before = sha(img), *after;
	struct t_run r;

	prepare_shimmed(&r, env, img, st);
	cr_assert_eq(r.status, 3, "%s, holder's lock file: exit %d, want 3 (refused): %s", env,
		     r.status, r.err);
	cr_assert(strstr(r.err, lock) && strstr(r.err, "rm '"),
		  "%s: the message names neither the lock file %s nor how to remove it: %s", env,
		  lock, r.err);
	cr_assert(strstr(r.err, needle), "%s: no \"%s\" in: %s", env, needle, r.err);
	cr_assert_eq(access(lock, F_OK), 0, "%s: the refused run removed the holder's lock file",
		     env);
	after = sha(img);
	cr_assert_str_eq(before, after, "%s: a refused run changed the image", env);
	t_run_free(&r);
	free(before);
	free(after);
}

static void no_posix_locks(const char *errname)
{
	char *img = t_guest_copy(dir, "--vhdx", "g.vhdx"), *st = t_fixture("mkstore.sh", "");
	char *lock = t_strdup_printf("%s.gpup-lock", img);
	char *env = t_strdup_printf("GPUP_FAULT_LOCK=%s", errname);
	struct t_run r;

	/* A second holder: a live gpup's lock file (this process is alive). */
	plant_lock(lock, (long)getpid());
	refused_by(env, img, st, lock, "in use by gpup pid");
	/* One whose process is gone: stale, and said so. */
	plant_lock(lock, dead_pid());
	refused_by(env, img, st, lock, "stale lock file");
	cr_assert_eq(unlink(lock), 0);

	prepare_shimmed(&r, env, img, st);
	cr_assert_eq(r.status, 0, "%s: prepare on a file system without locks: exit %d: %s",
		     errname, r.status, r.err);
	cr_assert_eq(count(r.err, "no POSIX locks"), 1,
		     "%s: want exactly one warning about the missing locks: %s", errname, r.err);
	cr_assert(strstr(r.err, lock), "%s: the warning does not name %s: %s", errname, lock,
		  r.err);
	cr_assert_neq(access(lock, F_OK), 0, "%s: lock file %s left behind", errname, lock);
	t_run_free(&r);

	/* The image is whole: an independent reader agrees. */
	t_run(&r, "qemu-img check -q '%s'", img);
	cr_assert_eq(r.status, 0, "%s: qemu-img check: %s", errname, r.err);
	t_run_free(&r);
	free(img);
	free(st);
	free(lock);
	free(env);
}

Test(wsl, no_posix_locks_enolck) { no_posix_locks("ENOLCK"); }
Test(wsl, no_posix_locks_eopnotsupp) { no_posix_locks("EOPNOTSUPP"); }
Test(wsl, no_posix_locks_einval) { no_posix_locks("EINVAL"); }
Test(wsl, no_posix_locks_enosys) { no_posix_locks("ENOSYS"); }

static void held_by_hyperv(const char *errname, const char *reason)
{
	char *img = t_guest_copy(dir, "--vhdx", "g.vhdx"), *st = t_fixture("mkstore.sh", "");
	char *env = t_strdup_printf("GPUP_FAULT_OPEN=%s", errname);
	char *lock = t_strdup_printf("%s.gpup-lock", img);
	char *before = sha(img), *after;
	struct t_run r;

	prepare_shimmed(&r, env, img, st);
	cr_assert_eq(r.status, 3, "%s on open: exit %d, want 3 (refused): %s", errname, r.status,
		     r.err);
	cr_assert(strstr(r.err, img) && strstr(r.err, "in use by Hyper-V (is the VM running?)") &&
			  strstr(r.err, reason),
		  "%s on open: want the image, \"in use by Hyper-V (is the VM running?)\" and "
		  "\"%s\" in: %s",
		  errname, reason, r.err);
	after = sha(img);
	cr_assert_str_eq(before, after, "%s on open: the image changed", errname);
	cr_assert_neq(access(lock, F_OK), 0, "%s on open: lock file left behind", errname);
	t_run_free(&r);
	free(lock);
	free(img);
	free(st);
	free(env);
	free(before);
	free(after);
}

/* EACCES is also a file the user cannot write: the message says both. */
Test(wsl, open_eacces) { held_by_hyperv("EACCES", "or not writable by you"); }
Test(wsl, open_ebusy) { held_by_hyperv("EBUSY", "Device or resource busy"); }
Test(wsl, open_etxtbsy) { held_by_hyperv("ETXTBSY", "Text file busy"); }
