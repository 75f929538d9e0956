/* test_vhdx_log.c — images with a dirty log (acceptance test 3): built by
 * killing a writer at a flush boundary (GPUP_TEST_CRASH_AT) or by writing
 * log entries the engine itself never writes (payload data, zeroing,
 * multi-entry sequences, file extension). A read-only open presents the
 * replayed view without changing the file; a read-write open replays it on
 * disk and leaves an empty log that libvhdi and qemu-img then read right. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "le.h"
#include "vhdx_priv.h"
#include "vt.h"

#define MiB (1024ull * 1024ull)
#define SIZE (64 * MiB)

static char *dir;
static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }
TestSuite(vhdx_log, .init = setup, .fini = teardown, .timeout = 120);

/* Run `gpup disk write IMG --offset OFF -i FILE` with GPUP_TEST_CRASH_AT=N. */
static int crash_write(const char *img, uint64_t off, const void *buf, size_t len, int n)
{
	char *in = t_strdup_printf("%s/in.bin", dir);
	struct t_run r;
	int st;

	cr_assert_eq(t_write_file(in, buf, len), 0);
	st = t_run(&r, "GPUP_TEST_CRASH_AT=%d '%s' disk write '%s' --offset %llu -i '%s'", n,
		   t_env("GPUP_BIN"), img, (unsigned long long)off, in);
	t_run_free(&r);
	free(in);
	return st;
}

/* The expected whole-disk image after base + pattern. */
struct scene {
	char *img;
	uint8_t *expect;   /* with the crashed write applied */
	uint8_t *before;   /* without it */
};

static void scene_init(struct scene *s, uint64_t off, size_t len, int crash_at)
{
	uint64_t seed = 99;
	uint8_t *p0 = malloc(3 * MiB), *p1 = malloc(len);

	s->img = t_strdup_printf("%s/d.vhdx", dir);
	vt_create(s->img, SIZE, 1 * MiB, 512);
	t_fill_random(p0, 3 * MiB, &seed);
	vt_write(s->img, p0, 3 * MiB, 100);
	s->before = calloc(1, SIZE);
	memcpy(s->before + 100, p0, 3 * MiB);
	s->expect = malloc(SIZE);
	memcpy(s->expect, s->before, SIZE);
	t_fill_random(p1, len, &seed);
	memcpy(s->expect + off, p1, len);
	cr_assert_eq(crash_write(s->img, off, p1, len, crash_at), 99,
		     "the writer dies at flush boundary %d", crash_at);
	free(p0);
	free(p1);
}

static void scene_free(struct scene *s)
{
	free(s->img);
	free(s->expect);
	free(s->before);
}

/* Read-only through the engine: the replayed view, the file untouched. */
static void check_readonly_view(const char *img, const uint8_t *expect)
{
	char h1[65], h2[65];
	struct gp_disk_open_opts ro = { 0 }, lv = { .backend = GP_DISK_BACKEND_LIBVHDI };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct vhdx_info info;
	struct stat st1, st2;
	uint8_t *got;

	cr_assert(vt_dirty(img), "the log must hold updates");
	cr_assert_eq(t_sha256_file(img, h1), 0);
	cr_assert_eq(stat(img, &st1), 0);
	cr_assert_eq(gp_disk_open(img, &ro, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_get_info(gp_disk_vhdx(d), &info), 0);
	cr_assert_eq(info.log_state, VHDX_LOG_DIRTY);
	cr_assert(!info.log_replayed);
	vhdx_info_free(&info);
	got = malloc(SIZE);
	cr_assert_eq(gp_disk_pread(d, got, SIZE, 0), 0, "%s", gp_disk_error(d)->msg);
	cr_assert(memcmp(got, expect, SIZE) == 0, "read-only view of the replayed log");
	gp_disk_close(d, NULL);
	free(got);
	cr_assert_eq(t_sha256_file(img, h2), 0);
	cr_assert_eq(stat(img, &st2), 0);
	cr_assert_str_eq(h1, h2, "a read-only open must not write");
	cr_assert_eq(st1.st_size, st2.st_size);
	cr_assert(vt_dirty(img));
	/* libvhdi would read the stale BAT: the backend refuses. */
	cr_assert_eq(gp_disk_open(img, &lv, &d, &err), GP_ERR_UNSUPPORTED);
	cr_assert(strstr(err.msg, "log"), "%s", err.msg);
}

/* Read-write open replays; afterwards every reader agrees. */
static void check_replay(const char *img, const uint8_t *expect)
{
	struct gp_disk_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct vhdx_info info;
	char *q = t_strdup_printf("%s/q.raw", dir);
	size_t qlen;
	uint8_t *got;

	cr_assert_eq(gp_disk_open(img, &rw, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(vhdx_get_info(gp_disk_vhdx(d), &info), 0);
	cr_assert(info.log_replayed);
	vhdx_info_free(&info);
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	cr_assert(!vt_dirty(img), "the log is empty after a read-write open");
	got = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, SIZE);
	cr_assert(memcmp(got, expect, SIZE) == 0, "engine after replay");
	free(got);
	got = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, 0, SIZE);
	cr_assert(memcmp(got, expect, SIZE) == 0, "libvhdi after replay");
	free(got);
	got = vt_qemu_raw(img, q, &qlen);
	cr_assert_eq(qlen, SIZE);
	cr_assert(memcmp(got, expect, SIZE) == 0, "qemu-img after replay");
	free(got);
	cr_assert_eq(vt_qemu_check(img), 0);
	free(q);
}

Test(vhdx_log, crash_after_log_activation_replays_unapplied_bat)
{
	struct scene s;

	/* A new block (8 MiB is unallocated) plus an allocated one: the BAT
	 * update exists only in the log. */
	scene_init(&s, 8 * MiB - 1000, 5000, 5);
	check_readonly_view(s.img, s.expect);
	check_replay(s.img, s.expect);
	scene_free(&s);
}

Test(vhdx_log, crash_after_bat_applied_replays_idempotently)
{
	struct scene s;

	scene_init(&s, 20 * MiB + 3, 2 * MiB, 6);
	check_readonly_view(s.img, s.expect);
	check_replay(s.img, s.expect);
	scene_free(&s);
}

Test(vhdx_log, crash_before_log_activation_keeps_previous_state)
{
	struct scene s;
	uint8_t *got;

	scene_init(&s, 30 * MiB, 4096, 4);
	cr_assert(!vt_dirty(s.img), "the log entry is written but not yet active");
	got = vt_read(s.img, GP_DISK_BACKEND_LIBVHDI, NULL, 0, SIZE);
	cr_assert(memcmp(got, s.before, SIZE) == 0, "unflushed write not visible, old data intact");
	free(got);
	cr_assert_eq(vt_qemu_check(s.img), 0);
	scene_free(&s);
}

/* Write @entries into the log and point the header at @guid, as a writer
 * that died after activating its log would leave them. */
static void plant_log(const char *img, const struct vhdx_guid *guid, const uint8_t *log,
		      size_t loglen)
{
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx *v;
	struct vhdx_header h;
	uint8_t hb[VHDX_HEADER_SIZE];
	int fd, slot;

	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "%s", err.msg);
	h = v->hdr;
	slot = 1 - v->cur_slot;
	vhdx_close(v, NULL);
	h.sequence++;
	h.log_guid = *guid;
	vhdx_header_serialize(&h, hb);
	fd = open(img, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, log, loglen, (off_t)h.log_offset), (ssize_t)loglen);
	cr_assert_eq(pwrite(fd, hb, sizeof(hb), slot ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET),
		     (ssize_t)sizeof(hb));
	close(fd);
}

Test(vhdx_log, replays_data_zero_descriptors_sequences_and_extension)
{
	char *img = t_strdup_printf("%s/c.vhdx", dir);
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx *v;
	uint64_t seed = 5, b0, b1, bat_off, bat5, newoff, last;
	uint8_t *expect = malloc(SIZE), sec_a[4096], sec_b[4096], batsec[4096];
	uint8_t *e1, *e2, *log;
	size_t l1, l2;
	struct vhdx_guid g;
	struct stat st;

	vt_create(img, SIZE, 1 * MiB, 512);
	t_fill_random(expect, SIZE, &seed);
	memset(expect + 2 * MiB, 0, SIZE - 2 * MiB);
	vt_write(img, expect, 2 * MiB, 0); /* blocks 0 and 1 */

	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "%s", err.msg);
	b0 = vhdx_bat_offset(vhdx_bat_get(v, vhdx_bat_payload_index(&v->geo, 0)));
	b1 = vhdx_bat_offset(vhdx_bat_get(v, vhdx_bat_payload_index(&v->geo, 1)));
	bat_off = v->bat_offset;
	bat5 = vhdx_bat_payload_index(&v->geo, 5);
	memcpy(batsec, v->bat, sizeof(batsec));
	newoff = (v->file_size + MiB - 1) / MiB * MiB + 4 * MiB; /* past the end */
	last = newoff + MiB;
	vhdx_close(v, NULL);

	/* Entry 1 (seq 7, tail 0): payload sector of block 0 := A; zero the
	 * first 8 KiB of block 1; block 5 := FULLY_PRESENT at newoff. */
	t_fill_random(sec_a, sizeof(sec_a), &seed);
	t_fill_random(sec_b, sizeof(sec_b), &seed);
	put_le64(batsec + bat5 * 8, vhdx_bat_make(VHDX_PAYLOAD_FULLY_PRESENT, newoff));
	struct vhdx_log_update u1[] = {
		{ b0 + 4096, 4096, sec_a }, { b1, 8192, NULL }, { bat_off, 4096, batsec },
	};
	vhdx_guid_generate(&g);
	cr_assert_eq(vhdx_log_build_entry(&g, 7, 0, 0, last, u1, 3, &e1, &l1), 0);
	/* Entry 2 (seq 8, tail 0): the same payload sector := B (later wins). */
	struct vhdx_log_update u2[] = { { b0 + 4096, 4096, sec_b } };
	cr_assert_eq(vhdx_log_build_entry(&g, 8, 0, 0, last, u2, 1, &e2, &l2), 0);
	log = calloc(1, l1 + l2);
	memcpy(log, e1, l1);
	memcpy(log + l1, e2, l2);
	plant_log(img, &g, log, l1 + l2);
	memcpy(expect + 4096, sec_b, 4096);
	memset(expect + MiB, 0, 8192);
	/* block 5 now maps past the old end of the file: zeros after extension */

	check_readonly_view(img, expect);
	check_replay(img, expect);
	cr_assert_eq(stat(img, &st), 0);
	cr_assert_geq((uint64_t)st.st_size, last, "file extended to LastFileOffset");
	free(e1); free(e2); free(log); free(expect); free(img);
}

/* Apply @n updates in order to @buf (the reference: what the log means). */
static void apply_naive(uint8_t *buf, const struct vhdx_log_update *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (u[i].data)
			memcpy(buf + u[i].off, u[i].data, u[i].len);
		else
			memset(buf + u[i].off, 0, u[i].len);
	}
}

/* The replay plan: sorted disjoint pieces covering exactly the union of the
 * updates, each byte from its last writer. Applied one by one, a hostile
 * log of thousands of zero descriptors over the whole file took minutes
 * (found by fuzz_vhdx); flattened, every byte is written once. */
Test(vhdx_log, flatten_keeps_the_last_writer_and_writes_each_byte_once)
{
	enum { SPAN = 1 << 20, N = 3000 };
	struct vhdx_log_update *u = calloc(N, sizeof(*u)), *p;
	uint8_t *ref = malloc(SPAN), *got = malloc(SPAN), *covered = calloc(1, SPAN);
	uint64_t seed = 11, total = 0, union_len = 0;
	size_t np;

	for (size_t i = 0; i < N; i++) {
		uint64_t r = t_rand(&seed);

		u[i].off = (r % (SPAN / 4096)) * 4096;
		if (i % 3) {
			u[i].len = 4096;
			u[i].data = malloc(4096);
			t_fill_random(u[i].data, 4096, &seed);
		} else {
			/* zero ranges of 0 up to the whole span */
			u[i].len = (t_rand(&seed) % (SPAN / 4096 + 1)) * 4096;
			if (u[i].off + u[i].len > SPAN)
				u[i].len = SPAN - u[i].off;
		}
		memset(covered + u[i].off, 1, u[i].len);
	}
	memset(ref, 0xA5, SPAN);
	memset(got, 0xA5, SPAN);
	apply_naive(ref, u, N);
	cr_assert_eq(vhdx_log_flatten(u, N, &p, &np), 0);
	for (size_t i = 0; i < np; i++) {
		cr_assert_gt(p[i].len, 0);
		if (i)
			cr_assert_geq(p[i].off, p[i - 1].off + p[i - 1].len, "pieces overlap or are unsorted");
		total += p[i].len;
	}
	for (size_t i = 0; i < SPAN; i++)
		union_len += covered[i];
	cr_assert_eq(total, union_len, "the pieces write %llu bytes, the updates cover %llu",
		     (unsigned long long)total, (unsigned long long)union_len);
	apply_naive(got, p, np);
	cr_assert(memcmp(got, ref, SPAN) == 0, "the flattened replay differs from the log");
	cr_assert_lt(np, (size_t)N, "runs were not merged");
	free(p);
	for (size_t i = 0; i < N; i++)
		free(u[i].data);
	free(u);
	free(ref);
	free(got);
	free(covered);
}

/* End to end: a log entry of 400 zero descriptors over a whole block,
 * interleaved with data sectors, reads and replays as the log says. */
Test(vhdx_log, overlapping_zero_descriptors_replay_as_written)
{
	enum { NZ = 400, ND = 100 };
	char *img = t_strdup_printf("%s/z.vhdx", dir);
	struct vhdx_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx *v;
	struct vhdx_log_update u[NZ + ND];
	uint8_t *expect = malloc(SIZE), *e;
	uint8_t (*sec)[4096] = malloc(ND * sizeof(*sec));
	uint64_t seed = 21, b1, last;
	struct vhdx_guid g;
	size_t n = 0, nd = 0, len;

	vt_create(img, SIZE, 1 * MiB, 512);
	t_fill_random(expect, SIZE, &seed);
	memset(expect + 2 * MiB, 0, SIZE - 2 * MiB);
	vt_write(img, expect, 2 * MiB, 0);
	cr_assert_eq(vhdx_open(img, &o, &v, &err), 0, "%s", err.msg);
	b1 = vhdx_bat_offset(vhdx_bat_get(v, vhdx_bat_payload_index(&v->geo, 1)));
	last = v->file_size;
	vhdx_close(v, NULL);
	for (size_t i = 0; i < NZ; i++) {
		u[n++] = (struct vhdx_log_update){ b1, MiB, NULL };
		if (i % 4 == 3 && nd < ND) {
			uint64_t s = t_rand(&seed) % (MiB / 4096);

			t_fill_random(sec[nd], 4096, &seed);
			u[n++] = (struct vhdx_log_update){ b1 + s * 4096, 4096, sec[nd++] };
		}
	}
	/* Block 1 of the disk is at b1 in the file: replaying means zeroing it
	 * 400 times over, with the data sectors written after the last zero
	 * surviving. */
	for (size_t i = 0; i < n; i++) {
		uint8_t *dst = expect + MiB + (u[i].off - b1);

		if (u[i].data)
			memcpy(dst, u[i].data, u[i].len);
		else
			memset(dst, 0, u[i].len);
	}
	vhdx_guid_generate(&g);
	cr_assert_eq(vhdx_log_build_entry(&g, 3, 0, 0, last, u, n, &e, &len), 0);
	plant_log(img, &g, e, len);
	check_readonly_view(img, expect);
	check_replay(img, expect);
	free(e);
	free(sec);
	free(expect);
	free(img);
}

Test(vhdx_log, a_log_guid_without_valid_entries_is_corrupt)
{
	char *img = t_strdup_printf("%s/e.vhdx", dir);
	struct gp_disk_open_opts ro = { 0 };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct vhdx_guid g;
	uint8_t junk[4096] = { 0 };
	char h1[65], h2[65];

	vt_create(img, SIZE, 1 * MiB, 512);
	vhdx_guid_generate(&g);
	plant_log(img, &g, junk, sizeof(junk));
	cr_assert_eq(t_sha256_file(img, h1), 0);
	cr_assert_eq(gp_disk_open(img, &ro, &d, &err), GP_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "e.vhdx: log at 0x100000"), "%s", err.msg);
	ro.writable = true;
	gp_error_clear(&err);
	cr_assert_eq(gp_disk_open(img, &ro, &d, &err), GP_ERR_CORRUPT);
	cr_assert_eq(t_sha256_file(img, h2), 0);
	cr_assert_str_eq(h1, h2);
	free(img);
}

/* One byte flipped inside a well-formed, active log entry (in a logged
 * data sector, past its signature): the entry's CRC-32C no longer matches,
 * so it is no entry, and a header naming a log without a valid entry is
 * corrupt. Replaying it would write the flipped byte into the BAT. */
Test(vhdx_log, a_flipped_byte_inside_a_log_entry_fails_its_crc)
{
	struct scene s;
	struct gp_disk_open_opts o = { 0 };
	struct gp_error err = { 0 };
	struct vhdx_open_opts vo = { 0 };
	struct gp_disk *d;
	struct vhdx *v;
	uint64_t log_off;
	uint8_t sec[VHDX_LOG_SECTOR];
	char h1[65], h2[65];
	int fd;

	scene_init(&s, 8 * MiB - 1000, 5000, 5);
	cr_assert(vt_dirty(s.img));
	/* The log region's offset, from the header (a read-only open of a
	 * dirty log does not replay). */
	cr_assert_eq(vhdx_open(s.img, &vo, &v, &err), 0, "%s", err.msg);
	log_off = v->hdr.log_offset;
	vhdx_close(v, NULL);
	fd = open(s.img, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, sec, sizeof(sec), (off_t)log_off), (ssize_t)sizeof(sec));
	cr_assert(memcmp(sec, "loge", 4) == 0, "the entry starts the log");
	cr_assert_eq(pread(fd, sec, sizeof(sec), (off_t)(log_off + VHDX_LOG_SECTOR)),
		     (ssize_t)sizeof(sec));
	cr_assert(memcmp(sec, "data", 4) == 0, "a data sector follows the descriptors");
	sec[1000] ^= 0x40;
	cr_assert_eq(pwrite(fd, sec, sizeof(sec), (off_t)(log_off + VHDX_LOG_SECTOR)),
		     (ssize_t)sizeof(sec));
	close(fd);
	cr_assert_eq(t_sha256_file(s.img, h1), 0);
	cr_assert_eq(gp_disk_open(s.img, &o, &d, &err), GP_ERR_CORRUPT,
		     "an entry with a bad CRC must not be replayed");
	cr_assert(strstr(err.msg, "log"), "%s", err.msg);
	o.writable = true;
	gp_error_clear(&err);
	cr_assert_eq(gp_disk_open(s.img, &o, &d, &err), GP_ERR_CORRUPT);
	cr_assert_eq(t_sha256_file(s.img, h2), 0);
	cr_assert_str_eq(h1, h2, "a refused image stays byte-identical");
	scene_free(&s);
}

/* A descriptor whose sequence number is not its entry's (the entry's CRC
 * recomputed, so only that rule is broken): a torn or stale entry, not
 * replayed; the log names nothing valid and the image is corrupt. */
Test(vhdx_log, a_descriptor_of_another_sequence_is_not_replayed)
{
	struct scene s;
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_error err = { 0 };
	struct vhdx_open_opts vo = { 0 };
	struct gp_disk *d;
	struct vhdx *v;
	uint64_t log_off;
	uint32_t len;
	uint8_t *e;
	int fd;

	scene_init(&s, 8 * MiB - 1000, 5000, 5);
	cr_assert_eq(vhdx_open(s.img, &vo, &v, &err), 0, "%s", err.msg);
	log_off = v->hdr.log_offset;
	vhdx_close(v, NULL);
	fd = open(s.img, O_RDWR);
	cr_assert(fd >= 0);
	e = malloc(VHDX_LOG_SECTOR);
	cr_assert_eq(pread(fd, e, VHDX_LOG_SECTOR, (off_t)log_off), VHDX_LOG_SECTOR);
	len = get_le32(e + VHDX_LOGE_ENTRY_LENGTH_OFF);
	cr_assert(len >= VHDX_LOG_SECTOR && len <= 64 * VHDX_LOG_SECTOR, "entry length %u", len);
	e = realloc(e, len);
	cr_assert_eq(pread(fd, e, len, (off_t)log_off), (ssize_t)len);
	put_le64(e + VHDX_LOG_HDR_SIZE + VHDX_LOGD_SEQUENCE_OFF,
		 get_le64(e + VHDX_LOG_HDR_SIZE + VHDX_LOGD_SEQUENCE_OFF) + 1);
	put_le32(e + VHDX_LOGE_CHECKSUM_OFF, 0);
	put_le32(e + VHDX_LOGE_CHECKSUM_OFF, crc32c(e, len));
	cr_assert_eq(pwrite(fd, e, len, (off_t)log_off), (ssize_t)len);
	close(fd);
	free(e);
	cr_assert_eq(gp_disk_open(s.img, &o, &d, &err), GP_ERR_CORRUPT,
		     "an entry with a descriptor of another sequence must not be replayed");
	scene_free(&s);
}

/*
 * A power cut at every write of a commit, with a disk cache that kept only
 * that write of all those issued since the last flush (fault_shim's
 * "lose"). Every flush the commit protocol needs is then load-bearing:
 * without the flush after the log entry, the cut at the header naming the
 * log leaves a header pointing at a log whose entry never reached the disk
 * (a corrupt image), which a crash at a flush boundary never shows. After
 * each cut the image opens, replays, reads the data written before the
 * run unchanged and, in the new range, old or new bytes only.
 */
Test(vhdx_log, power_cut_at_every_write_loses_nothing_flushed)
{
	char *shim = t_fixture("mkshim.sh", ""), *base = t_strdup_printf("%s/base.vhdx", dir);
	char *img = t_strdup_printf("%s/cut.vhdx", dir), *in = t_strdup_printf("%s/in.bin", dir);
	char *cnt = t_strdup_printf("%s/count", dir);
	const uint64_t off = 8 * MiB - 1000;
	const size_t len = 5000;
	uint64_t seed = 7;
	uint8_t *p0 = malloc(3 * MiB), *p1 = malloc(len), *before = calloc(1, SIZE), *got;
	long writes = 0, cut = 0;
	struct gp_disk_open_opts rw = { .writable = true };
	struct gp_error err = { 0 };
	struct gp_disk *d;
	struct t_run r;
	char *text;

	vt_create(base, SIZE, 1 * MiB, 512);
	t_fill_random(p0, 3 * MiB, &seed);
	vt_write(base, p0, 3 * MiB, 100);
	memcpy(before + 100, p0, 3 * MiB);
	t_fill_random(p1, len, &seed);
	cr_assert_eq(t_write_file(in, p1, len), 0);
	/* Count the writes of one whole run. */
	t_copy(base, img);
	/* ASan insists on coming first among preloaded libraries; the shim
	 * only forwards calls (as in tests/fault). */
	cr_assert_eq(t_run(&r, "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" "
			   "LD_PRELOAD='%s/fault_shim.so' GPUP_FAULT_FILE='%s' GPUP_FAULT_COUNT='%s' "
			   "'%s' disk write '%s' --offset %llu -i '%s'", shim, img, cnt, t_env("GPUP_BIN"),
			   img, (unsigned long long)off, in), 0, "%s", r.err);
	t_run_free(&r);
	text = t_read_file(cnt, NULL);
	cr_assert(text && sscanf(text, "read %*d write %ld", &writes) == 1, "%s", text);
	free(text);
	cr_assert_gt(writes, 4, "a commit writes data, entry, headers and BAT");
	for (long n = 1; n <= writes; n++) {
		t_copy(base, img);
		t_run(&r, "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" "
			  "LD_PRELOAD='%s/fault_shim.so' GPUP_FAULT_FILE='%s' GPUP_FAULT=write:%ld:lose "
			  "'%s' disk write '%s' --offset %llu -i '%s'", shim, img, n, t_env("GPUP_BIN"), img,
		      (unsigned long long)off, in);
		cr_assert(r.status == 99 || r.status == 0, "write %ld: exit %d: %s", n, r.status, r.err);
		cut += r.status == 99;
		t_run_free(&r);
		/* A read-write open replays whatever log the cut left. */
		cr_assert_eq(gp_disk_open(img, &rw, &d, &err), 0, "power cut at write %ld of %ld: %s",
			     n, writes, err.msg);
		cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
		got = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, SIZE);
		cr_assert(memcmp(got, before, off) == 0 &&
				  memcmp(got + off + len, before + off + len, SIZE - off - len) == 0,
			  "power cut at write %ld of %ld: data outside the write changed", n, writes);
		for (size_t i = 0; i < len; i++)
			cr_assert(got[off + i] == before[off + i] || got[off + i] == p1[i],
				  "power cut at write %ld: byte %zu is neither old nor new", n, i);
		free(got);
		cr_assert_eq(vt_qemu_check(img), 0, "power cut at write %ld", n);
	}
	cr_assert_gt(cut, 4);
	free(p0);
	free(p1);
	free(before);
	free(cnt);
	free(in);
	free(img);
	free(base);
	free(shim);
}

/* New blocks grow the file ahead in big steps (one extension per block
 * made each write into it slow); close() trims what stayed unused, and an
 * unreferenced tail (a session killed before its BAT commit, or after
 * growing ahead) is reused by the next session rather than kept. */
Test(vhdx_log, grown_tail_is_trimmed_and_reused)
{
	char *img = t_strdup_printf("%s/t.vhdx", dir);
	struct gp_disk_open_opts o = { .writable = true };
	struct gp_error err = { 0 };
	uint64_t seed = 5, size0;
	uint8_t *p = malloc(3 * MiB), *got;
	struct gp_disk *d;
	struct stat st;
	int fd;

	vt_create(img, 2048 * MiB, 1 * MiB, 512);
	cr_assert_eq(stat(img, &st), 0);
	size0 = (uint64_t)st.st_size;
	t_fill_random(p, 3 * MiB, &seed);
	cr_assert_eq(gp_disk_open(img, &o, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(gp_disk_pwrite(d, p, 3 * MiB, 0), 0, "%s", gp_disk_error(d)->msg);
	cr_assert_eq(stat(img, &st), 0);
	cr_assert_gt((uint64_t)st.st_size, size0 + 3 * MiB, "grown ahead while writing");
	cr_assert_eq(gp_disk_close(d, &err), 0, "%s", err.msg);
	cr_assert_eq(stat(img, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, size0 + 3 * MiB, "the unused tail is trimmed");

	/* A tail nothing references, as a killed writer leaves it. */
	fd = open(img, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)(size0 + 100 * MiB)), 0);
	close(fd);
	vt_write(img, p, MiB, 1000 * MiB);
	cr_assert_eq(stat(img, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, size0 + 4 * MiB, "the new block reuses the tail");
	got = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, 1000 * MiB, MiB);
	cr_assert(memcmp(got, p, MiB) == 0);
	free(got);
	got = vt_read(img, GP_DISK_BACKEND_LIBVHDI, NULL, 0, 3 * MiB);
	cr_assert(memcmp(got, p, 3 * MiB) == 0);
	free(got);
	cr_assert_eq(vt_qemu_check(img), 0);
	free(p);
	free(img);
}

Test(vhdx_log, crc32c_known_answer)
{
	cr_assert_eq(crc32c("123456789", 9), 0xE3069283u);
	cr_assert_eq(crc32c_update(crc32c("1234", 4), "56789", 5), 0xE3069283u);
	cr_assert_eq(crc32c_update_table(0, "123456789", 9), 0xE3069283u);
}

/* The instruction path (SSE4.2, when the CPU has it) and the table agree
 * on every length and alignment, chained or not. */
Test(vhdx_log, crc32c_paths_agree)
{
	uint8_t buf[4096 + 16];
	uint64_t seed = 3;

	t_fill_random(buf, sizeof(buf), &seed);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len < 300; len++)
			cr_assert_eq(crc32c_update(0x12345678u, buf + off, len),
				     crc32c_update_table(0x12345678u, buf + off, len), "off %zu len %zu", off,
				     len);
	cr_assert_eq(crc32c(buf, 4096), crc32c_update_table(0, buf, 4096));
	cr_assert_eq(crc32c_update(crc32c(buf, 1000), buf + 1000, 3096), crc32c(buf, 4096));
}

Test(vhdx_log, fixture_script_builds_dirty_images)
{
	struct t_run r;
	char *a, *b, *img;
	size_t alen, blen;
	uint8_t *got;

	cr_assert_eq(t_run(&r, "GPUP_BIN='%s' sh '%s/tests/fixtures/vhdx-dirty-log.sh' '%s/fx'",
			   t_env("GPUP_BIN"), t_env("GPUP_SRC"), dir), 0, "%s", r.err);
	t_run_free(&r);
	a = t_strdup_printf("%s/fx/pattern-a.bin", dir);
	b = t_strdup_printf("%s/fx/pattern-b.bin", dir);
	char *pa = t_read_file(a, &alen), *pb = t_read_file(b, &blen);
	for (int k = 0; k < 2; k++) {
		img = t_strdup_printf("%s/fx/dirty-%s.vhdx", dir, k ? "applied" : "unapplied");
		cr_assert(vt_dirty(img));
		got = vt_read(img, GP_DISK_BACKEND_DEFAULT, NULL, 0, 9 * MiB);
		cr_assert(memcmp(got, pa, alen) == 0);
		cr_assert(memcmp(got + 8 * MiB, pb, blen) == 0);
		free(got);
		free(img);
	}
	free(a); free(b); free(pa); free(pb);
}
