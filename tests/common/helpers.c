/* helpers.c — see helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *t_env(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		cr_assert_fail("environment variable %s is not set (run the tests through `make check`)",
			       name);
	return v;
}

char *t_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	cr_assert_not_null(s);
	return s;
}

char *t_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path = t_strdup_printf("%s/gpup-test-XXXXXX", base && *base ? base : "/tmp");

	cr_assert_not_null(mkdtemp(path), "mkdtemp: %s", strerror(errno));
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void t_rm_rf(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Drain two pipes into growing buffers without deadlocking on either. */
static void drain(int fds[2], char *bufs[2], size_t lens[2])
{
	size_t caps[2] = { 0, 0 };
	struct pollfd p[2] = { { .fd = fds[0], .events = POLLIN }, { .fd = fds[1], .events = POLLIN } };
	int open_fds = 2;

	while (open_fds > 0) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (caps[i] - lens[i] < 65536) {
				caps[i] = caps[i] * 2 + 65536;
				bufs[i] = realloc(bufs[i], caps[i] + 1);
				cr_assert_not_null(bufs[i]);
			}
			ssize_t n = read(p[i].fd, bufs[i] + lens[i], caps[i] - lens[i]);
			if (n <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
			} else {
				lens[i] += (size_t)n;
			}
		}
	}
}

static int run_v(struct t_run *r, const char *prefix, const char *fmt, va_list ap)
{
	char *cmd = NULL, *full;
	int out[2], err[2], st;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	cr_assert(vasprintf(&cmd, fmt, ap) >= 0);
	full = t_strdup_printf("%s%s", prefix, cmd);
	free(cmd);
	cr_assert(pipe(out) == 0 && pipe(err) == 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		close(out[1]);
		close(err[1]);
		execl("/bin/sh", "sh", "-c", full, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	{
		int fds[2] = { out[0], err[0] };
		char *bufs[2] = { NULL, NULL };
		size_t lens[2] = { 0, 0 };

		drain(fds, bufs, lens);
		r->out = bufs[0] ? bufs[0] : calloc(1, 1);
		r->err = bufs[1] ? bufs[1] : calloc(1, 1);
		r->out[lens[0]] = '\0';
		r->err[lens[1]] = '\0';
		r->out_len = lens[0];
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	free(full);
	return r->status;
}

int t_run(struct t_run *r, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = run_v(r, "", fmt, ap);
	va_end(ap);
	return ret;
}

int t_gpup(struct t_run *r, const char *fmt, ...)
{
	char *prefix = t_strdup_printf("'%s' ", t_env("GPUP_BIN"));
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = run_v(r, prefix, fmt, ap);
	va_end(ap);
	free(prefix);
	return ret;
}

void t_run_free(struct t_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

static void to_hex(const unsigned char *md, unsigned len, char *hex)
{
	for (unsigned i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

int t_sha256_file(const char *path, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE], buf[1 << 16];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	close(fd);
	if (n < 0)
		return -1;
	to_hex(md, mdlen, hex);
	return 0;
}

void t_sha256_buf(const void *buf, size_t len, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
	to_hex(md, mdlen, hex);
}

char *t_hyperv_fixture(const char *name, const char *dir)
{
	char *dst = t_strdup_printf("%s/%s", dir, name);
	struct t_run r;

	t_run(&r, "gzip -dc '%s/fixtures/hyperv/%s.gz' > '%s'", t_env("GPUP_SHARED"), name, dst);
	cr_assert_eq(r.status, 0, "cannot decompress fixture %s: %s", name, r.err);
	t_run_free(&r);
	return dst;
}

char *t_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (cap - n < 65536) {
			cap = cap * 2 + 65536;
			buf = realloc(buf, cap + 1);
			if (!buf) {
				fclose(f);
				return NULL;
			}
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int t_write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	if (fwrite(buf, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

uint64_t t_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

void t_fill_random(void *buf, size_t len, uint64_t *state)
{
	unsigned char *p = buf;

	while (len >= 8) {
		uint64_t v = t_rand(state);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = t_rand(state);
		memcpy(p, &v, len);
	}
}

/*
 * The run's seed. The runner process picks it before any test starts
 * (GPUP_TEST_SEED, or the clock and pid when unset), prints it and exports
 * it, so every test of the run (each in its own worker process) sees the
 * same value and a failure replays with GPUP_TEST_SEED=<seed>.
 */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	const char *env = getenv("GPUP_TEST_SEED");
	char buf[32];

	(void)set;
	if (!env || !*env) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(buf, sizeof(buf), "%llu",
			 (unsigned long long)(((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^
					      ((uint64_t)getpid() << 32)));
		setenv("GPUP_TEST_SEED", buf, 1);
		env = buf;
	}
	fprintf(stderr, "[seed] GPUP_TEST_SEED=%s (set it to replay this run's random choices)\n", env);
}

uint64_t t_seed(void)
{
	const char *env = getenv("GPUP_TEST_SEED");
	char *end;
	unsigned long long v;

	cr_assert(env && *env, "GPUP_TEST_SEED is not set (the PRE_ALL hook sets it)");
	errno = 0;
	v = strtoull(env, &end, 0);
	cr_assert(!errno && !*end, "GPUP_TEST_SEED=%s is not a number", env);
	return v;
}

char *t_fixture(const char *script, const char *args)
{
	const char *build = t_env("GPUP_BUILD");
	char name[256];
	size_t o = 0;
	struct t_run r;
	char *dir;

	/* The directory name spells script and arguments, so different
	 * argument sets never share an output. */
	for (const char *p = script; *p && o + 1 < sizeof(name); p++)
		name[o++] = (*p == '.') ? '_' : *p;
	for (const char *p = args; *p && o + 1 < sizeof(name); p++)
		name[o++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				    (*p >= '0' && *p <= '9') ? *p : '_';
	name[o] = '\0';
	dir = t_strdup_printf("%s/fixtures/%s", build, name);
	/* Built once per build directory and state of tests/fixtures: the
	 * scripts are deterministic, and a marker written after success,
	 * holding the checksum of every fixture source (scripts, C helpers,
	 * hive sources), saves every later test the rebuild -- until one of
	 * those sources changes (a stale fault shim failed new tests). */
	t_run(&r, "mkdir -p '%s/fixtures' && flock '%s/fixtures/.lock' sh -c "
		  "'sum=$(cat \"$3\"/* 2>/dev/null | cksum); "
		  "test \"$(cat \"$1/.t_fixture_done\" 2>/dev/null)\" = \"$sum\" || "
		  "{ rm -rf \"$1\" && sh \"$3/$2\" \"$1\" %s && echo \"$sum\" > \"$1/.t_fixture_done\"; }' "
		  "fixture '%s' '%s' '%s/tests/fixtures'",
	      build, build, args, dir, script, t_env("GPUP_SRC"));
	cr_assert_eq(r.status, 0, "fixture %s %s failed: %s", script, args, r.err);
	t_run_free(&r);
	return dir;
}

void t_copy(const char *src, const char *dst)
{
	struct t_run r;

	t_run(&r, "cp --sparse=always '%s' '%s'", src, dst);
	cr_assert_eq(r.status, 0, "cp %s %s: %s", src, dst, r.err);
	t_run_free(&r);
}

void t_tamper_bundle(const char *good, const char *bad)
{
	char *tar = t_strdup_printf("%s.tar", bad);
	long long at;
	struct t_run r;

	cr_assert_eq(t_run(&r, "gzip -dc '%s' > '%s'", good, tar), 0, "%s", r.err);
	t_run_free(&r);
	at = t_find_in_file(tar, "000000000777 nvlddmkm.sys");
	cr_assert_geq(at, 0);
	t_run(&r, "printf X | dd of='%s' bs=1 seek=%lld conv=notrunc status=none && gzip -c '%s' > '%s'"
		  " && rm -f '%s'", tar, at, tar, bad, tar);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	free(tar);
}

char *t_guest_copy(const char *dir, const char *args, const char *name)
{
	char *fx = t_fixture("mkguest.sh", args);
	char *src = t_strdup_printf("%s/guest.vhdx", fx);
	char *dst = t_strdup_printf("%s/%s", dir, name);

	t_copy(src, dst);
	free(fx);
	free(src);
	return dst;
}

char *t_volume_of(const char *img, const char *partfile, const char *dir)
{
	unsigned long long off, len;
	char *raw = t_strdup_printf("%s/check.raw", dir);
	char *part = t_strdup_printf("%s/check.part", dir);
	FILE *f = fopen(partfile, "r");
	struct t_run r;

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%llu %llu", &off, &len), 2);
	fclose(f);
	t_run(&r, "rm -f '%s' && qemu-img convert -O raw '%s' '%s' && dd if='%s' of='%s' bs=1M "
		  "skip=%llu count=%llu conv=sparse status=none", part, img, raw, raw, part, off >> 20,
	      len >> 20);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	unlink(raw);
	free(raw);
	return part;
}

void t_bundle_prepare_verify(const char *img, const char *store, const char *gpu,
			     const char *bundle)
{
	struct t_run r;

	t_gpup(&r, "bundle create --driverstore '%s' --gpu '%s' -q -o '%s'", store, gpu, bundle);
	cr_assert_eq(r.status, 0, "bundle create: %s", r.err);
	t_run_free(&r);
	t_gpup(&r, "prepare '%s' --bundle '%s' -q", img, bundle);
	cr_assert_eq(r.status, 0, "prepare: %s", r.err);
	t_run_free(&r);
	t_gpup(&r, "verify '%s' --driverstore '%s' --gpu '%s'", img, store, gpu);
	cr_assert_eq(r.status, 0, "verify: %s%s", r.out, r.err);
	t_run_free(&r);
}

long long t_find_in_file(const char *path, const char *needle)
{
	size_t nlen = strlen(needle), chunk = 1 << 20;
	char *buf = malloc(chunk + nlen);
	int fd = open(path, O_RDONLY);
	off_t data = 0, hole;
	long long found = -1;

	cr_assert(fd >= 0 && buf && nlen > 0);
	while (found < 0 && (data = lseek(fd, data, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		for (off_t pos = data; found < 0 && pos < hole; pos += (off_t)chunk) {
			/* Overlap by the needle's length so a match across two
			 * reads is not missed. */
			ssize_t n = pread(fd, buf, chunk + nlen - 1, pos);
			char *hit;

			if (n <= 0)
				break;
			hit = memmem(buf, (size_t)n, needle, nlen);
			if (hit)
				found = (long long)pos + (hit - buf);
		}
		data = hole;
	}
	close(fd);
	free(buf);
	return found;
}

size_t t_make_tree(const char *root, uint64_t total, uint64_t big, uint64_t seed)
{
	static const uint64_t sizes[] = { 200, 3000, 40000, 300000, 2500000 };
	uint64_t state = seed ? seed : 1;
	uint8_t *buf = malloc(2500000);
	FILE *f;
	size_t n = 0;
	struct t_run r;

	cr_assert_not_null(buf);
	t_run(&r, "mkdir -p '%s'", root);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	while (total > 0) {
		uint64_t want = n == 0 && big ? big : sizes[n % 5];
		uint64_t size = want < total ? want : total;
		char *sub = t_strdup_printf("%s/d%02zu", root, n / 16), *path;

		if (n % 16 == 0)
			cr_assert_eq(mkdir(sub, 0755), 0, "mkdir %s", sub);
		path = t_strdup_printf("%s/f%03zu.bin", sub, n);
		f = fopen(path, "wb");
		cr_assert_not_null(f, "%s", path);
		total -= size;
		while (size > 0) {
			size_t k = size < 2500000 ? (size_t)size : 2500000;

			t_fill_random(buf, k, &state);
			cr_assert_eq(fwrite(buf, 1, k, f), k, "%s", path);
			size -= k;
		}
		cr_assert_eq(fclose(f), 0, "%s", path);
		n++;
		free(path);
		free(sub);
	}
	free(buf);
	return n;
}

int t_prepare_blocked_on_progress(const char *img, const char *st, const char *gpu,
				  int *err_fd)
{
	int p[2], avail = 0;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	cr_assert(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 0, "F_SETPIPE_SZ: %m");
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(p[1], 2);
		execl(t_env("GPUP_BIN"), "gpup", "prepare", img, "--driverstore", st, "--gpu", gpu,
		      "--no-verify", "--progress=json", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* Full pipe = gpup is blocked mid-inject (or about to be: a line that
	 * does not fit is never written in part, lines being < PIPE_BUF). */
	for (int i = 0; i < 3000 && avail < 4096 - 300; i++) {
		usleep(10000);
		cr_assert_eq(ioctl(p[0], FIONREAD, &avail), 0);
	}
	cr_assert_geq(avail, 4096 - 300, "gpup never filled its progress pipe (%d bytes)", avail);
	*err_fd = p[0];
	return (int)pid;
}
