/*
 * vhdx.c — the VHDX engine: open (validation, log replay, parent chain),
 * read, write (block allocation, copy-up, BAT updates through the log),
 * flush, close, create. See vhdx.h for the contract and vhdx_priv.h for
 * the structure parsers this file drives.
 */
#include "disk_priv.h"
#include "le.h"
#include "vhdx_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* BAT sectors gathered before a commit is forced; a log entry of this many
 * data sectors plus its descriptor sectors fits a 1 MiB log. */
#define VHDX_MAX_DIRTY_SECTORS 128
/* Metadata regions beyond this are refused rather than read into memory. */
#define VHDX_MAX_METADATA_LENGTH (64 * VHDX_MiB)
/* Newly allocated bytes after which a commit is forced even without a
 * flush, so a long write does not leave unbounded work unreferenced. */
#define VHDX_COMMIT_ALLOC_BYTES (1024 * VHDX_MiB)
/* Copy-up granularity. */
#define VHDX_COPY_CHUNK VHDX_MiB
/* New blocks grow the host file in steps of this many bytes (a sparse tail
 * that close() trims): extending the file once per block, just before the
 * block's data is written, made each 1 MiB write into the new block cost
 * 2-6x a write inside the existing size on ext4 (measured in bench/RESULTS.md,
 * "Engine write"). */
#define VHDX_GROW_STEP (1024 * VHDX_MiB)
/* Bytes written between flush-ahead points (see flush_ahead()). */
#define VHDX_FLUSH_AHEAD (256 * VHDX_MiB)

/* What open reads of the header section: the file identifier's first 4 KiB
 * and the two 4 KiB headers, side by side (the region tables are read by
 * load_regions()). Reading only these keeps opening cheap. */
#define HDR_BUF (3 * VHDX_HEADER_SIZE)
#define HDR_BUF_H1 VHDX_HEADER_SIZE
#define HDR_BUF_H2 (2 * VHDX_HEADER_SIZE)

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* ---- file I/O ---- */

static int io_code(int e)
{
	return e == ENOSPC || e == EFBIG || e == EDQUOT ? GP_ERR_NOSPACE : GP_ERR_IO;
}

static int raw_read(int fd, void *buf, uint64_t len, uint64_t off, uint64_t *got)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (uint64_t)n;
	}
	*got = done;
	return 0;
}

int vhdx_file_read(struct vhdx *v, void *buf, uint64_t len, uint64_t off)
{
	uint64_t got;

	if (raw_read(v->fd, buf, len, off, &got) < 0)
		return gp_error_set_errno(&v->err, GP_ERR_IO, errno, "%s: read at file offset 0x%llx",
					  v->path, (unsigned long long)off);
	/* Past the end of the file reads as zeros: a replay may extend the file
	 * (in memory, for a read-only open) and new blocks start as holes. */
	if (got < len)
		memset((char *)buf + got, 0, len - got);
	/* The pieces are sorted and disjoint: start at the first one that
	 * ends past @off. */
	size_t lo = 0, hi = v->noverlay;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->overlay[mid].off + v->overlay[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < v->noverlay && v->overlay[i].off < off + len; i++) {
		const struct vhdx_log_update *u = &v->overlay[i];
		uint64_t s = u->off > off ? u->off : off;
		uint64_t e = u->off + u->len < off + len ? u->off + u->len : off + len;

		if (s >= e)
			continue;
		if (u->data)
			memcpy((char *)buf + (s - off), u->data + (s - u->off), e - s);
		else
			memset((char *)buf + (s - off), 0, e - s);
	}
	return 0;
}

/*
 * Flush-ahead. A commit must flush the data before its log entry, and on a
 * virtual disk that flush is the host writing back everything since the
 * previous one: about half a second per GiB on the development machine,
 * during which the writer, and whatever feeds it (a bundle's reader
 * thread), stood still (bench/RESULTS.md, profile item 7). So every
 * VHDX_FLUSH_AHEAD bytes written the writer asks a second thread for an
 * fdatasync and goes on; the commit's own flush then finds little left.
 * Extra flushes never change what a crash leaves. Requests queue rather
 * than wait or coalesce, and vhdx_file_sync() waits until all are done
 * before its own, so the number and order of host calls depend only on
 * the bytes written (the fault tests count them). A failed flush-ahead
 * fails the next vhdx_file_sync(), which every commit and close passes
 * through: the error cannot be lost.
 */
static void *ahead_main(void *arg)
{
	struct vhdx *v = arg;

	pthread_mutex_lock(&v->ahead_mu);
	for (;;) {
		int e;

		while (!v->ahead_quit && v->ahead_done == v->ahead_asked)
			pthread_cond_wait(&v->ahead_cv, &v->ahead_mu);
		if (v->ahead_done == v->ahead_asked)
			break; /* quit, with nothing left to do */
		pthread_mutex_unlock(&v->ahead_mu);
		e = fdatasync(v->fd) < 0 ? errno : 0;
		pthread_mutex_lock(&v->ahead_mu);
		if (e && !v->ahead_errno)
			v->ahead_errno = e;
		v->ahead_done++;
		pthread_cond_broadcast(&v->ahead_cv);
	}
	pthread_mutex_unlock(&v->ahead_mu);
	return NULL;
}

/* Wait until every flush-ahead asked for is done; returns the errno of
 * the first that failed, or 0. */
static int ahead_wait(struct vhdx *v)
{
	int e;

	if (!v->ahead_started)
		return 0;
	pthread_mutex_lock(&v->ahead_mu);
	while (v->ahead_done != v->ahead_asked)
		pthread_cond_wait(&v->ahead_cv, &v->ahead_mu);
	e = v->ahead_errno;
	v->ahead_errno = 0;
	pthread_mutex_unlock(&v->ahead_mu);
	return e;
}

static void flush_ahead(struct vhdx *v, uint64_t len)
{
	v->ahead_pending += len;
	if (v->ahead_pending < VHDX_FLUSH_AHEAD)
		return;
	v->ahead_pending = 0;
	if (!v->ahead_started) {
		/* Without the thread writing still works, only without overlap. */
		if (pthread_mutex_init(&v->ahead_mu, NULL))
			return;
		if (pthread_cond_init(&v->ahead_cv, NULL)) {
			pthread_mutex_destroy(&v->ahead_mu);
			return;
		}
		if (pthread_create(&v->ahead_thread, NULL, ahead_main, v)) {
			pthread_cond_destroy(&v->ahead_cv);
			pthread_mutex_destroy(&v->ahead_mu);
			return;
		}
		v->ahead_started = true;
	}
	pthread_mutex_lock(&v->ahead_mu);
	v->ahead_asked++;
	pthread_cond_broadcast(&v->ahead_cv);
	pthread_mutex_unlock(&v->ahead_mu);
}

/* The thread finishes what was asked (the same calls in every run), then
 * ends. */
static void ahead_stop(struct vhdx *v)
{
	if (!v->ahead_started)
		return;
	pthread_mutex_lock(&v->ahead_mu);
	v->ahead_quit = true;
	pthread_cond_broadcast(&v->ahead_cv);
	pthread_mutex_unlock(&v->ahead_mu);
	pthread_join(v->ahead_thread, NULL);
	pthread_cond_destroy(&v->ahead_cv);
	pthread_mutex_destroy(&v->ahead_mu);
	v->ahead_started = false;
}

int vhdx_file_write(struct vhdx *v, const void *buf, uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(v->fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gp_error_set_errno(&v->err, io_code(errno), errno,
						  "%s: write at file offset 0x%llx", v->path,
						  (unsigned long long)(off + done));
		done += (uint64_t)n;
	}
	if (off + len > v->file_size)
		v->file_size = off + len;
	v->unsynced = true;
	gp_disk_writebehind(v->fd, &v->writebehind, len);
	flush_ahead(v, len);
	return 0;
}

int vhdx_file_sync(struct vhdx *v)
{
	int e = ahead_wait(v);

	if (e)
		return gp_error_set_errno(&v->err, GP_ERR_IO, e, "%s: flush", v->path);
	if (fdatasync(v->fd) < 0)
		return gp_error_set_errno(&v->err, GP_ERR_IO, errno, "%s: flush", v->path);
	v->unsynced = false;
	v->flushes++;
	/* Test-only crash hook (vhdx.h): die right after this boundary. */
	if (v->crash_at > 0 && v->flushes == v->crash_at)
		_exit(99);
	return 0;
}

static int file_extend(struct vhdx *v, uint64_t size)
{
	if (size <= v->file_size)
		return 0;
	/* ftruncate leaves a hole that reads as zeros: new blocks need no
	 * zero-filling, and sparse host files stay sparse. */
	if (ftruncate(v->fd, (off_t)size) < 0)
		return gp_error_set_errno(&v->err, io_code(errno), errno,
					  "%s: cannot extend the file to %llu bytes", v->path,
					  (unsigned long long)size);
	v->file_size = size;
	v->unsynced = true;
	return 0;
}

/* Make room for file space up to @end for new blocks: grow ahead to the
 * next VHDX_GROW_STEP boundary. The tail past alloc_end is a hole no BAT
 * entry references: valid VHDX slack if the process dies (the next session
 * reuses it, see open_internal()), and trim_tail() gives it back on close. */
static int file_reserve(struct vhdx *v, uint64_t end)
{
	int ret;

	if (end <= v->file_size)
		return 0;
	ret = file_extend(v, round_up(end, VHDX_GROW_STEP));
	if (ret) {
		/* The step may exceed a file-size limit the block itself fits. */
		gp_error_clear(&v->err);
		ret = file_extend(v, end);
	}
	return ret;
}

/* At close of a writing session, after the last commit (the log is empty,
 * so no replay can extend the file again): cut off the tail past the last
 * structure. Best effort: every byte is committed by now and an untrimmed
 * tail is valid slack that the next session reuses, so a failure here must
 * not turn a complete write into an error. */
static void trim_tail(struct vhdx *v)
{
	uint64_t keep = v->alloc_end;

	/* A file that did not end on a 1 MiB boundary ends in bytes no
	 * structure references (Disk2VHD leaves 512): not ours to cut. A tail
	 * gpup grew is always 1 MiB-aligned, so it is still given back. */
	if (v->open_size % VHDX_MiB && v->open_size > keep)
		keep = v->open_size;

	if (v->session_started && v->file_size > keep && ftruncate(v->fd, (off_t)keep) == 0)
		v->file_size = keep;
}

/* ---- headers ---- */

/* Write the next header into the non-current slot (2.2.2.1) and flush. */
static int header_update(struct vhdx *v, bool new_fwg, bool new_dwg,
			 const struct vhdx_guid *log_guid)
{
	uint8_t buf[VHDX_HEADER_SIZE];
	struct vhdx_header h = v->hdr;
	int slot = 1 - v->cur_slot, ret;

	h.sequence++;
	if (new_fwg)
		vhdx_guid_generate(&h.file_write_guid);
	if (new_dwg)
		vhdx_guid_generate(&h.data_write_guid);
	h.log_guid = *log_guid;
	vhdx_header_serialize(&h, buf);
	ret = vhdx_file_write(v, buf, sizeof(buf), slot ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
	if (!ret)
		ret = vhdx_file_sync(v);
	if (ret)
		return ret;
	v->hdr = h;
	v->cur_slot = slot;
	return 0;
}

/* Before the first modification: a new FileWriteGuid (and, before the
 * first user-visible change, a new DataWriteGuid), written twice so both
 * slots are current (2.2.2.1). */
static int session_begin(struct vhdx *v, bool user_visible)
{
	struct vhdx_guid lg = v->hdr.log_guid;
	int ret;

	if (v->session_started && (!user_visible || v->data_guid_renewed))
		return 0;
	if (!v->writable)
		return gp_error_set(&v->err, GP_ERR_READONLY, "%s: image is open read-only", v->path);
	ret = header_update(v, !v->session_started, user_visible, &lg);
	if (!ret)
		ret = header_update(v, false, false, &lg);
	if (ret)
		return ret;
	v->session_started = true;
	if (user_visible)
		v->data_guid_renewed = true;
	return 0;
}

static int read_header_section(const char *path, int fd, uint64_t file_size, uint8_t *buf,
			       struct vhdx_header *cur, int *slot, char **creator,
			       struct gp_error *err)
{
	struct vhdx_header h[2];
	const char *why[2] = { NULL, NULL };
	bool ok[2];
	uint64_t got;
	int ret;

	if (file_size < VHDX_HEADER_SECTION_SIZE)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: file is %llu bytes, shorter than the 1 MiB header section (truncated?)",
				    path, (unsigned long long)file_size);
	if (raw_read(fd, buf, VHDX_HEADER_SIZE, VHDX_FILE_ID_OFFSET, &got) < 0 ||
	    raw_read(fd, buf + HDR_BUF_H1, VHDX_HEADER_SIZE, VHDX_HEADER1_OFFSET, &got) < 0 ||
	    raw_read(fd, buf + HDR_BUF_H2, VHDX_HEADER_SIZE, VHDX_HEADER2_OFFSET, &got) < 0)
		return gp_error_set_errno(err, GP_ERR_IO, errno, "%s: read header section", path);
	ret = vhdx_file_id_parse(path, buf, VHDX_HEADER_SIZE, creator, err);
	if (ret)
		return ret;
	ok[0] = vhdx_header_parse(buf + HDR_BUF_H1, &h[0], &why[0]) == 0;
	ok[1] = vhdx_header_parse(buf + HDR_BUF_H2, &h[1], &why[1]) == 0;
	if (!ok[0] && !ok[1]) {
		free(*creator);
		*creator = NULL;
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: header 1 at 0x10000: %s; header 2 at 0x20000: %s (no valid header)",
				    path, why[0], why[1]);
	}
	if (ok[0] && ok[1]) {
		if (h[0].sequence > h[1].sequence)
			*slot = 0;
		else if (h[1].sequence > h[0].sequence)
			*slot = 1;
		else if (memcmp(buf + HDR_BUF_H1, buf + HDR_BUF_H2,
				VHDX_HEADER_SIZE) == 0)
			*slot = 0; /* Disk2VHD writes two identical headers */
		else {
			free(*creator);
			*creator = NULL;
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: header 1 at 0x10000 and header 2 at 0x20000: same sequence number %llu but different contents",
					    path, (unsigned long long)h[0].sequence);
		}
	} else {
		*slot = ok[0] ? 0 : 1;
	}
	*cur = h[*slot];
	return 0;
}

static int check_header(const char *path, const struct vhdx_header *h, int slot,
			uint64_t file_size, struct gp_error *err)
{
	uint64_t at = slot ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET, end;

	if (h->version != 1)
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: header %d at 0x%llx: version %u (only 1 is defined)", path,
				    slot + 1, (unsigned long long)at, h->version);
	if (h->log_version != 0 && !vhdx_guid_is_zero(&h->log_guid))
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "%s: header %d at 0x%llx: log version %u with a non-empty log",
				    path, slot + 1, (unsigned long long)at, h->log_version);
	if (h->log_offset % VHDX_MiB || h->log_length % VHDX_MiB || h->log_length == 0 ||
	    h->log_offset < VHDX_HEADER_SECTION_SIZE)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: header %d at 0x%llx: log at 0x%llx length %u is not a 1 MiB-aligned region past the header section",
				    path, slot + 1, (unsigned long long)at,
				    (unsigned long long)h->log_offset, h->log_length);
	if (add_u64(h->log_offset, h->log_length, &end) || end > file_size)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: header %d at 0x%llx: log at 0x%llx length %u extends beyond the end of the file",
				    path, slot + 1, (unsigned long long)at,
				    (unsigned long long)h->log_offset, h->log_length);
	return 0;
}

/* ---- log replay ---- */

static int replay_log(struct vhdx *v)
{
	struct vhdx_log_replay r;
	struct vhdx_log_update *pieces = NULL;
	size_t npieces = 0;
	uint8_t *log;
	uint64_t got;
	int ret;

	if (v->hdr.log_length > VHDX_LOG_MAX_LENGTH)
		return gp_error_set(&v->err, GP_ERR_UNSUPPORTED,
				    "%s: log at 0x%llx: %u bytes is larger than gpup replays",
				    v->path, (unsigned long long)v->hdr.log_offset, v->hdr.log_length);
	log = malloc(v->hdr.log_length);
	if (!log)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	if (raw_read(v->fd, log, v->hdr.log_length, v->hdr.log_offset, &got) < 0 ||
	    got != v->hdr.log_length) {
		free(log);
		return gp_error_set_errno(&v->err, GP_ERR_IO, errno, "%s: read log at 0x%llx",
					  v->path, (unsigned long long)v->hdr.log_offset);
	}
	ret = vhdx_log_find(v->path, v->hdr.log_offset, log, v->hdr.log_length, &v->hdr.log_guid,
			    &r, &v->err);
	free(log);
	if (ret)
		return ret;
	if (v->file_size < r.flushed_file_offset) {
		vhdx_log_replay_free(&r);
		return gp_error_set(&v->err, GP_ERR_CORRUPT,
				    "%s: log at 0x%llx: the file is %llu bytes but the log says %llu were flushed (truncated file)",
				    v->path, (unsigned long long)v->hdr.log_offset,
				    (unsigned long long)v->file_size,
				    (unsigned long long)r.flushed_file_offset);
	}
	/* Updates must not land on the log itself. */
	for (size_t i = 0; i < r.count; i++) {
		const struct vhdx_log_update *u = &r.updates[i];
		if (u->off < v->hdr.log_offset + v->hdr.log_length && v->hdr.log_offset < u->off + u->len) {
			vhdx_log_replay_free(&r);
			return gp_error_set(&v->err, GP_ERR_CORRUPT,
					    "%s: log at 0x%llx: an entry writes into the log itself",
					    v->path, (unsigned long long)v->hdr.log_offset);
		}
	}
	ret = vhdx_log_flatten(r.updates, r.count, &pieces, &npieces);
	if (ret) {
		vhdx_log_replay_free(&r);
		return gp_error_set(&v->err, ret, "%s: out of memory replaying the log", v->path);
	}
	if (!v->writable) {
		/* Read-only: present the replayed view, write nothing (2.3.3 <5>). */
		v->overlay = pieces;
		v->noverlay = npieces;
		v->replay = r;
		if (r.last_file_offset > v->file_size)
			v->file_size = r.last_file_offset;
		return 0;
	}
	ret = session_begin(v, false);
	for (size_t i = 0; !ret && i < npieces; i++) {
		const struct vhdx_log_update *u = &pieces[i];

		if (u->data) {
			ret = vhdx_file_write(v, u->data, u->len, u->off);
			continue;
		}
		/* Zero descriptors: beyond the end a hole is enough; else write. */
		uint64_t end = u->off + u->len, p = u->off;
		static const uint8_t zero[64 * 1024];
		while (!ret && p < end && p < v->file_size) {
			uint64_t n = end - p < sizeof(zero) ? end - p : sizeof(zero);
			ret = vhdx_file_write(v, zero, n, p);
			p += n;
		}
		if (!ret && end > v->file_size)
			ret = file_extend(v, end);
	}
	if (!ret)
		ret = file_extend(v, r.last_file_offset);
	if (!ret)
		ret = vhdx_file_sync(v);
	if (!ret) {
		static const struct vhdx_guid zero_guid;
		ret = header_update(v, false, false, &zero_guid);
	}
	free(pieces);
	vhdx_log_replay_free(&r);
	if (!ret)
		v->log_replayed = true;
	return ret;
}

/* ---- regions, metadata, BAT ---- */

static int load_regions(struct vhdx *v)
{
	struct vhdx_region_table rt[2] = { 0 };
	struct gp_error e2 = { 0 };
	uint8_t *buf;
	int ret[2], use, rc = 0;
	bool have_bat = false, have_meta = false;

	buf = malloc(2 * VHDX_REGION_TABLE_SIZE);
	if (!buf)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	rc = vhdx_file_read(v, buf, 2 * VHDX_REGION_TABLE_SIZE, VHDX_REGION1_OFFSET);
	if (rc) {
		free(buf);
		return rc;
	}
	/* One damaged copy is survivable: use the other (2.2.3). */
	ret[0] = vhdx_region_table_parse(v->path, 1, VHDX_REGION1_OFFSET, buf, &rt[0], &v->err);
	ret[1] = vhdx_region_table_parse(v->path, 2, VHDX_REGION2_OFFSET,
					 buf + VHDX_REGION_TABLE_SIZE, &rt[1], &e2);
	free(buf);
	if (ret[0] && ret[1]) {
		if (v->err.code == GP_ERR_NOMEM || e2.code == GP_ERR_NOMEM)
			return GP_ERR_NOMEM;
		/* Both copies damaged: report the first, mention the second. */
		char first[GP_ERROR_MSG_MAX];
		snprintf(first, sizeof(first), "%s", v->err.msg);
		gp_error_clear(&v->err);
		return gp_error_set(&v->err, GP_ERR_CORRUPT, "%s; region table 2 at 0x40000 is damaged too (%s)",
				    first, strstr(e2.msg, "0x40000: ") ? strstr(e2.msg, "0x40000: ") + 9 : e2.msg);
	}
	if (ret[0] && ret[0] != GP_ERR_CORRUPT) {
		vhdx_region_table_free(&rt[1]);
		return ret[0];
	}
	use = ret[0] ? 1 : 0;
	if (ret[1 - use]) {
		/* Remembered for repair_regions() and the warning. */
		v->bad_region = 2 - use;
		snprintf(v->warning, sizeof(v->warning), "%s", use ? v->err.msg : e2.msg);
	}
	gp_error_clear(&v->err);
	vhdx_region_table_free(&rt[1 - use]);

	v->fixed = calloc(rt[use].count + 2, sizeof(*v->fixed));
	if (!v->fixed) {
		vhdx_region_table_free(&rt[use]);
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	}
	v->fixed[0] = (struct vhdx_extent){ v->hdr.log_offset, v->hdr.log_offset + v->hdr.log_length,
					    "the log", 0 };
	v->nfixed = 1;
	for (uint32_t i = 0; i < rt[use].count; i++) {
		const struct vhdx_region *r = &rt[use].entries[i];
		uint64_t at = use ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET, end;
		bool is_bat = vhdx_guid_matches(r->guid.b, VHDX_GUID_BAT_REGION);
		bool is_meta = vhdx_guid_matches(r->guid.b, VHDX_GUID_METADATA_REGION);

		if (!is_bat && !is_meta && r->required) {
			char s[VHDX_GUID_STR_LEN];
			vhdx_guid_format(&r->guid, s);
			rc = gp_error_set(&v->err, GP_ERR_UNSUPPORTED,
					  "%s: region table %d at 0x%llx: entry %u is an unknown required region {%s}",
					  v->path, use + 1, (unsigned long long)at, i, s);
			break;
		}
		if (add_u64(r->file_offset, r->length, &end) || end > v->file_size) {
			rc = gp_error_set(&v->err, GP_ERR_CORRUPT,
					  "%s: region table %d at 0x%llx: entry %u (0x%llx, %u bytes) extends beyond the end of the file",
					  v->path, use + 1, (unsigned long long)at, i,
					  (unsigned long long)r->file_offset, r->length);
			break;
		}
		for (size_t k = 0; k < v->nfixed; k++) {
			if (r->file_offset < v->fixed[k].end && v->fixed[k].start < end) {
				rc = gp_error_set(&v->err, GP_ERR_CORRUPT,
						  "%s: region table %d at 0x%llx: entry %u overlaps %s",
						  v->path, use + 1, (unsigned long long)at, i,
						  v->fixed[k].what);
				break;
			}
		}
		if (rc)
			break;
		if (is_bat) {
			v->bat_offset = r->file_offset;
			v->bat_length = r->length;
			have_bat = true;
			v->fixed[v->nfixed++] = (struct vhdx_extent){ r->file_offset, end, "the BAT region", i };
		} else if (is_meta) {
			v->meta_offset = r->file_offset;
			v->meta_length = r->length;
			have_meta = true;
			v->fixed[v->nfixed++] = (struct vhdx_extent){ r->file_offset, end, "the metadata region", i };
		} else {
			/* An unknown optional region (Required = 0) is ignored
			 * but still occupies its file space: no new block may
			 * be placed on it (alloc_end counts it). */
			v->fixed[v->nfixed++] = (struct vhdx_extent){ r->file_offset, end,
								     "an optional region", i };
		}
	}
	if (!rc && (!have_bat || !have_meta))
		rc = gp_error_set(&v->err, GP_ERR_CORRUPT,
				  "%s: region table %d at 0x%llx: no %s region", v->path, use + 1,
				  (unsigned long long)(use ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET),
				  have_bat ? "metadata" : "BAT");
	vhdx_region_table_free(&rt[use]);
	return rc;
}

static void warning_append(struct vhdx *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warning_append(struct vhdx *v, const char *fmt, ...)
{
	size_t l = strlen(v->warning);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->warning + l, sizeof(v->warning) - l, fmt, ap);
	va_end(ap);
}

/* Rewrite the damaged region-table copy from the good one (2.2.3 keeps
 * two so that one can be lost; libvhdi refuses an image with either one
 * damaged). Called once the whole image has validated, on a read-write
 * open; the image's own session (a new FileWriteGuid) comes first. */
static int repair_regions(struct vhdx *v)
{
	uint64_t good = v->bad_region == 1 ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET;
	uint64_t bad = v->bad_region == 1 ? VHDX_REGION1_OFFSET : VHDX_REGION2_OFFSET;
	uint8_t *buf = malloc(VHDX_REGION_TABLE_SIZE);
	int ret;

	if (!buf)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	ret = session_begin(v, false);
	if (!ret)
		ret = vhdx_file_read(v, buf, VHDX_REGION_TABLE_SIZE, good);
	if (!ret)
		ret = vhdx_file_write(v, buf, VHDX_REGION_TABLE_SIZE, bad);
	if (!ret)
		ret = vhdx_file_sync(v);
	free(buf);
	if (ret)
		return ret;
	warning_append(v, "; repaired from region table %d", 3 - v->bad_region);
	return 0;
}

static int load_metadata(struct vhdx *v)
{
	uint64_t want = VHDX_METADATA_TABLE_SIZE;
	uint8_t *buf, *nb;
	int ret;

	if (v->meta_length > VHDX_MAX_METADATA_LENGTH)
		return gp_error_set(&v->err, GP_ERR_UNSUPPORTED,
				    "%s: metadata region at 0x%llx: %llu bytes is larger than gpup reads",
				    v->path, (unsigned long long)v->meta_offset,
				    (unsigned long long)v->meta_length);
	/* Read the table, then only as far as its items reach (typically a
	 * few hundred bytes past the table, not the whole 1 MiB region). */
	buf = malloc(VHDX_METADATA_TABLE_SIZE);
	if (!buf)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	ret = vhdx_file_read(v, buf, VHDX_METADATA_TABLE_SIZE, v->meta_offset);
	if (ret) {
		free(buf);
		return ret;
	}
	for (uint32_t i = 0; i < get_le16(buf + VHDX_MDT_ENTRY_COUNT_OFF) && i < VHDX_MDT_MAX_ENTRIES; i++) {
		const uint8_t *e = buf + VHDX_MDT_ENTRIES_OFF + (size_t)i * VHDX_MDT_ENTRY_SIZE;
		uint64_t end = (uint64_t)get_le32(e + VHDX_MDE_OFFSET_OFF) + get_le32(e + VHDX_MDE_LENGTH_OFF);

		if (end > want && end <= v->meta_length)
			want = end;
	}
	nb = realloc(buf, want);
	if (!nb) {
		free(buf);
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	}
	buf = nb;
	if (want > VHDX_METADATA_TABLE_SIZE)
		ret = vhdx_file_read(v, buf + VHDX_METADATA_TABLE_SIZE, want - VHDX_METADATA_TABLE_SIZE,
				     v->meta_offset + VHDX_METADATA_TABLE_SIZE);
	if (!ret)
		ret = vhdx_metadata_parse(v->path, v->meta_offset, buf, want, v->meta_length, &v->md,
					  &v->err);
	free(buf);
	if (ret)
		return ret;
	if (vhdx_geometry_init(&v->geo, v->md.virtual_size, v->md.block_size,
			       v->md.logical_sector_size, v->md.has_parent))
		return gp_error_set(&v->err, GP_ERR_CORRUPT, "%s: metadata at 0x%llx: inconsistent geometry",
				    v->path, (unsigned long long)v->meta_offset);
	return 0;
}

static int load_bat(struct vhdx *v)
{
	uint64_t need = v->geo.total_entries * 8, bytes, end;
	int ret;

	if (need > v->bat_length)
		return gp_error_set(&v->err, GP_ERR_CORRUPT,
				    "%s: BAT region at 0x%llx: %llu bytes cannot hold the %llu entries a %llu-byte disk with %u-byte blocks needs",
				    v->path, (unsigned long long)v->bat_offset,
				    (unsigned long long)v->bat_length,
				    (unsigned long long)v->geo.total_entries,
				    (unsigned long long)v->geo.virtual_size, v->geo.block_size);
	/* Whole 4 KiB sectors: a logged BAT sector is written whole, including
	 * entries past the ones the disk uses. The bytes stay in on-disk form,
	 * so nothing is decoded or copied at open beyond one read. */
	v->bat_sectors = (need + VHDX_LOG_SECTOR - 1) / VHDX_LOG_SECTOR;
	bytes = v->bat_sectors * VHDX_LOG_SECTOR;
	v->bat = malloc(bytes);
	v->bat_dirty = calloc(v->bat_sectors, 1);
	if (!v->bat || !v->bat_dirty)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory for the BAT", v->path);
	ret = vhdx_file_read(v, v->bat, bytes, v->bat_offset);
	if (!ret)
		ret = vhdx_bat_parse(v->path, v->bat_offset, v->bat, &v->geo, v->file_size, v->fixed,
				     v->nfixed, &end, &v->err);
	/* New blocks go past everything: the end of the file (rounded to
	 * 1 MiB), every allocated block, the log and the regions. */
	if (!ret && end > v->alloc_end)
		v->alloc_end = end;
	return ret;
}

static void bat_put(struct vhdx *v, uint64_t i, uint64_t e)
{
	uint64_t s = i * 8 / VHDX_LOG_SECTOR;

	put_le64(v->bat + i * 8, e);
	if (!v->bat_dirty[s]) {
		v->bat_dirty[s] = 1;
		v->ndirty++;
	}
}

/* ---- parent chain ---- */

struct chain_ctx {
	dev_t dev[VHDX_MAX_CHAIN + 1];
	ino_t ino[VHDX_MAX_CHAIN + 1];
	int depth;
	bool no_parent; /* vhdx_parent_path(): stop before opening the parent */
};

static int open_internal(const char *path, const struct vhdx_open_opts *opts,
			 struct chain_ctx *cc, struct vhdx **out, struct gp_error *err);

/* Last component of a Windows path. */
static const char *win_basename(const char *p)
{
	const char *b = strrchr(p, '\\');
	const char *s = strrchr(b ? b : p, '/');

	if (s)
		return s + 1;
	return b ? b + 1 : p;
}

static char *join_dir(const char *child, const char *rel)
{
	char dir[PATH_MAX], *out, *q;
	const char *d;
	size_t n;

	snprintf(dir, sizeof(dir), "%s", child);
	d = dirname(dir); /* may return a static "." */
	n = strlen(d) + strlen(rel) + 2;
	out = malloc(n);
	if (!out)
		return NULL;
	snprintf(out, n, "%s/%s", d, rel);
	for (q = out + strlen(d); *q; q++)
		if (*q == '\\')
			*q = '/';
	return out;
}

static bool linkage_matches(const char *linkage, const struct vhdx_guid *dwg)
{
	struct vhdx_guid g;

	return linkage && vhdx_guid_parse(linkage, &g) == 0 && vhdx_guid_eq(&g, dwg);
}

/* Find the parent image of @v: the --parent override, else the locator's
 * relative_path, then the last component of absolute_win32_path and
 * volume_path beside the child (Windows paths mean nothing here). The
 * first that exists wins; *@pick is malloc'ed. Returns 0 or
 * GP_ERR_NOTFOUND (listing what was tried) / GP_ERR_NOMEM on @v. */
static int locate_parent(struct vhdx *v, const struct vhdx_open_opts *opts, char **pick)
{
	const struct vhdx_parent_locator *l = &v->md.locator;
	char *cand[3] = { NULL, NULL, NULL }, *tried = NULL;
	struct stat st;
	int n = 0, ret = 0;

	*pick = NULL;
	if (opts && opts->parent_path) {
		cand[n++] = strdup(opts->parent_path);
	} else {
		if (l->relative_path)
			cand[n++] = join_dir(v->path, l->relative_path);
		if (l->absolute_win32_path)
			cand[n++] = join_dir(v->path, win_basename(l->absolute_win32_path));
		if (l->volume_path)
			cand[n++] = join_dir(v->path, win_basename(l->volume_path));
	}
	for (int i = 0; i < n; i++) {
		if (!cand[i]) {
			ret = gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
			goto out;
		}
		if (!*pick && stat(cand[i], &st) == 0) {
			*pick = cand[i];
			cand[i] = NULL;
		}
	}
	if (!*pick) {
		size_t len = 1;
		for (int i = 0; i < n; i++)
			len += strlen(cand[i]) + 2;
		tried = calloc(1, len);
		for (int i = 0; tried && i < n; i++) {
			bool dup = false;
			for (int j = 0; j < i; j++)
				dup |= !strcmp(cand[i], cand[j]);
			if (dup)
				continue;
			if (*tried)
				strcat(tried, ", ");
			strcat(tried, cand[i]);
		}
		ret = gp_error_set(&v->err, GP_ERR_NOTFOUND,
				   "%s: parent locator: parent image not found (tried %s; use --parent PATH)",
				   v->path, tried ? tried : "?");
	}
out:
	free(tried);
	for (int i = 0; i < n; i++)
		free(cand[i]);
	return ret;
}

static int open_parent(struct vhdx *v, const struct vhdx_open_opts *opts, struct chain_ctx *cc)
{
	const struct vhdx_parent_locator *l = &v->md.locator;
	char *pick = NULL;
	struct vhdx_open_opts po = { .writable = false, .parent_path = NULL,
				     .no_lock = opts && opts->no_lock };
	struct gp_error perr = { 0 };
	struct stat st;
	int ret;

	ret = locate_parent(v, opts, &pick);
	if (ret)
		return ret;
	if (stat(pick, &st) < 0) {
		ret = gp_error_set_errno(&v->err, GP_ERR_IO, errno, "%s: parent %s", v->path, pick);
		goto out;
	}
	for (int i = 0; i <= cc->depth; i++) {
		if (cc->dev[i] == st.st_dev && cc->ino[i] == st.st_ino) {
			ret = gp_error_set(&v->err, GP_ERR_CORRUPT,
					   "%s: parent locator: parent %s is already in the chain (a cycle)",
					   v->path, pick);
			goto out;
		}
	}
	if (cc->depth + 1 >= VHDX_MAX_CHAIN) {
		ret = gp_error_set(&v->err, GP_ERR_UNSUPPORTED,
				   "%s: parent chain deeper than %d images", v->path, VHDX_MAX_CHAIN);
		goto out;
	}
	cc->depth++;
	cc->dev[cc->depth] = st.st_dev;
	cc->ino[cc->depth] = st.st_ino;
	ret = open_internal(pick, &po, cc, &v->parent, &perr);
	cc->depth--;
	if (ret) {
		gp_error_copy(&v->err, &perr);
		gp_error_prefix(&v->err, "%s: parent: ", v->path);
		goto out;
	}
	if (!linkage_matches(l->parent_linkage, &v->parent->hdr.data_write_guid) &&
	    !linkage_matches(l->parent_linkage2, &v->parent->hdr.data_write_guid)) {
		char s[VHDX_GUID_STR_LEN];
		vhdx_guid_format(&v->parent->hdr.data_write_guid, s);
		ret = gp_error_set(&v->err, GP_ERR_MISMATCH,
				   "%s: parent locator: parent %s has DataWriteGuid {%s} but parent_linkage is %s (the parent changed since the child was made)",
				   v->path, pick, s, l->parent_linkage);
		goto out;
	}
	if (v->parent->md.logical_sector_size != v->md.logical_sector_size) {
		ret = gp_error_set(&v->err, GP_ERR_CORRUPT,
				   "%s: parent %s has %u-byte sectors, the child %u-byte ones", v->path,
				   pick, v->parent->md.logical_sector_size, v->md.logical_sector_size);
		goto out;
	}
	/* The chain as paths: the direct parent, then its own chain. */
	v->chain = calloc(v->parent->chain_len + 1, sizeof(char *));
	if (!v->chain) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
		goto out;
	}
	v->chain[0] = strdup(pick);
	v->chain_len = 1;
	for (size_t i = 0; i < v->parent->chain_len; i++)
		if ((v->chain[v->chain_len] = strdup(v->parent->chain[i])))
			v->chain_len++;
	ret = 0;
out:
	free(pick);
	return ret;
}

/* ---- open / close ---- */

static void vhdx_free(struct vhdx *v)
{
	if (!v)
		return;
	ahead_stop(v);
	if (v->parent)
		vhdx_close(v->parent, NULL);
	if (v->fd >= 0)
		close(v->fd);
	gp_disk_lock_release(&v->lock);
	free(v->overlay);
	vhdx_log_replay_free(&v->replay);
	for (size_t i = 0; i < v->chain_len; i++)
		free(v->chain[i]);
	free(v->chain);
	vhdx_locator_free(&v->md.locator);
	free(v->fixed);
	free(v->bat);
	free(v->bat_dirty);
	free(v->creator);
	free(v->path);
	free(v);
}

static int open_internal(const char *path, const struct vhdx_open_opts *opts,
			 struct chain_ctx *cc, struct vhdx **out, struct gp_error *err)
{
	uint8_t *hbuf = NULL;
	struct vhdx *v;
	struct stat st;
	const char *crash;
	int ret;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	v->fd = -1;
	v->writable = opts && opts->writable;
	v->path = strdup(path);
	if (!v->path) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
		goto fail;
	}
	/* O_NONBLOCK: a parent locator is untrusted input, and one naming a
	 * FIFO must not hang the open; only regular files go further. */
	v->fd = open(path, (v->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
	if (v->fd < 0) {
		ret = gp_disk_open_error(path, v->writable, errno, err);
		goto fail;
	}
	if (fstat(v->fd, &st) < 0) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: not a regular file", path);
		goto fail;
	}
	ret = opts && opts->no_lock && !v->writable
		      ? 0
		      : gp_disk_lock_fd(v->fd, path, v->writable, &v->lock, err);
	if (ret)
		goto fail;
	v->file_size = v->open_size = (uint64_t)st.st_size;
	if (cc->depth == 0) {
		cc->dev[0] = st.st_dev;
		cc->ino[0] = st.st_ino;
	}
	if (v->writable && (crash = getenv("GPUP_TEST_CRASH_AT")))
		v->crash_at = strtol(crash, NULL, 10);

	hbuf = malloc(HDR_BUF);
	if (!hbuf) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
		goto fail;
	}
	ret = read_header_section(path, v->fd, v->file_size, hbuf, &v->hdr, &v->cur_slot,
				  &v->creator, err);
	free(hbuf);
	if (ret)
		goto fail;
	ret = check_header(path, &v->hdr, v->cur_slot, v->file_size, err);
	if (ret)
		goto fail;
	if (!vhdx_guid_is_zero(&v->hdr.log_guid)) {
		v->log_was_dirty = true;
		ret = replay_log(v);
		if (ret)
			goto fail_v;
	}
	/* New blocks go after the last structure (regions, log, BAT-referenced
	 * blocks), not after the file's end: a tail nothing references (blocks
	 * of a session killed before its BAT commit, a grown-ahead tail) is
	 * reused, and close() trims what stays unused. */
	v->alloc_end = VHDX_HEADER_SECTION_SIZE;
	ret = load_regions(v);
	if (!ret)
		ret = load_metadata(v);
	if (!ret)
		ret = load_bat(v);
	if (ret)
		goto fail_v;
	for (size_t k = 0; k < v->nfixed; k++)
		if (v->fixed[k].end > v->alloc_end)
			v->alloc_end = round_up(v->fixed[k].end, VHDX_MiB);
	if (v->md.has_parent && !cc->no_parent) {
		ret = open_parent(v, opts, cc);
		if (ret)
			goto fail_v;
	}
	if (v->bad_region) {
		if (v->writable) {
			ret = repair_regions(v);
			if (ret)
				goto fail_v;
		} else {
			warning_append(v, "; region table %d is in use (a read-write open repairs the damaged copy)",
				       3 - v->bad_region);
		}
	}
	if (v->lock.note)
		warning_append(v, "%s%s", v->warning[0] ? "; " : "", v->lock.note);
	*out = v;
	return 0;
fail_v:
	gp_error_copy(err, &v->err);
fail:
	vhdx_free(v);
	return ret;
}

int vhdx_open(const char *path, const struct vhdx_open_opts *opts, struct vhdx **out,
	      struct gp_error *err)
{
	struct chain_ctx cc;

	memset(&cc, 0, sizeof(cc));
	return open_internal(path, opts, &cc, out, err);
}

int vhdx_open_self(const char *path, struct vhdx **out, struct gp_error *err)
{
	struct chain_ctx cc;

	memset(&cc, 0, sizeof(cc));
	cc.no_parent = true;
	return open_internal(path, NULL, &cc, out, err);
}

int vhdx_parent_path(const char *path, char **parent, struct gp_error *err)
{
	struct vhdx *v;
	int ret;

	*parent = NULL;
	ret = vhdx_open_self(path, &v, err);
	if (ret)
		return ret;
	if (!v->md.has_parent)
		ret = gp_error_set(err, GP_ERR_INVALID, "%s: not a differencing image", path);
	else if ((ret = locate_parent(v, NULL, parent)))
		gp_error_copy(err, &v->err);
	vhdx_close(v, NULL);
	return ret;
}

static int commit_bat(struct vhdx *v);

int vhdx_flush(struct vhdx *v)
{
	if (!v->writable || !v->session_started)
		return 0;
	if (v->ndirty)
		return commit_bat(v);
	return v->unsynced ? vhdx_file_sync(v) : 0;
}

int vhdx_close(struct vhdx *v, struct gp_error *err)
{
	int ret = 0;

	if (!v)
		return 0;
	if (v->writable) {
		ret = vhdx_flush(v);
		if (ret && !vhdx_guid_is_zero(&v->hdr.log_guid)) {
			/* A commit failed after activating its log entry. Finish
			 * it from the log now, as the next open would, so that a
			 * reader ignoring the log (libvhdi, qemu opening read-only)
			 * sees the committed state. The first error stays the one
			 * reported; a disk still failing leaves the log to that
			 * next open. */
			struct gp_error first = v->err;

			if (replay_log(v) == 0)
				trim_tail(v);
			v->err = first;
		} else if (!ret) {
			trim_tail(v);
		}
		if (ret)
			gp_error_copy(err, &v->err);
	}
	ahead_stop(v);
	if (close(v->fd) < 0 && !ret)
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: close", v->path);
	v->fd = -1;
	vhdx_free(v);
	return ret;
}

const struct gp_error *vhdx_error(const struct vhdx *v) { return &v->err; }
const char *vhdx_warning(const struct vhdx *v) { return v->warning; }
uint64_t vhdx_virtual_size(const struct vhdx *v) { return v->md.virtual_size; }
uint32_t vhdx_logical_sector_size(const struct vhdx *v) { return v->md.logical_sector_size; }
uint32_t vhdx_physical_sector_size(const struct vhdx *v) { return v->md.physical_sector_size; }
uint32_t vhdx_block_size(const struct vhdx *v) { return v->md.block_size; }

enum vhdx_disk_type vhdx_disk_type(const struct vhdx *v)
{
	if (v->md.has_parent)
		return VHDX_DISK_DIFFERENCING;
	return v->md.leave_block_allocated ? VHDX_DISK_FIXED : VHDX_DISK_DYNAMIC;
}

/* ---- read ---- */

static int check_range(struct vhdx *v, uint64_t len, uint64_t off)
{
	uint64_t end;

	if (add_u64(off, len, &end) || end > v->md.virtual_size)
		return gp_error_set(&v->err, GP_ERR_INVALID,
				    "%s: access at %llu length %llu is beyond the virtual disk's %llu bytes",
				    v->path, (unsigned long long)off, (unsigned long long)len,
				    (unsigned long long)v->md.virtual_size);
	return 0;
}

/* Read from the parent chain; beyond a (smaller) parent's end: zeros. */
static int parent_read(struct vhdx *v, uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t psize;
	int ret;

	if (!v->parent) /* vhdx_open_self() */
		return gp_error_set(&v->err, GP_ERR_NOTFOUND, "%s: opened without its parent", v->path);
	psize = v->parent->md.virtual_size;
	if (off >= psize) {
		memset(buf, 0, len);
		return 0;
	}
	if (off + len > psize) {
		memset(buf + (psize - off), 0, off + len - psize);
		len = psize - off;
	}
	ret = vhdx_pread(v->parent, buf, len, off);
	if (ret)
		gp_error_copy(&v->err, &v->parent->err);
	return ret;
}

/* Read [inoff, inoff+len) of PARTIALLY_PRESENT block @blk sector by
 * sector run, consulting the chunk's sector bitmap. */
static int read_partial(struct vhdx *v, uint64_t blk, uint64_t boff, uint8_t *buf,
			uint64_t len, uint64_t inoff)
{
	uint64_t lss = v->md.logical_sector_size;
	uint64_t sb = vhdx_bat_get(v, vhdx_bat_bitmap_index(&v->geo, blk));
	uint64_t vstart = blk * v->geo.block_size + inoff;
	uint64_t chunk_first = (blk / v->geo.chunk_ratio) * VHDX_SECTORS_PER_BITMAP;
	uint64_t s0 = vstart / lss - chunk_first, s1 = (vstart + len - 1) / lss - chunk_first;
	uint64_t b0 = s0 / 8, nb = s1 / 8 - b0 + 1;
	uint8_t *bm = malloc(nb);
	uint64_t pos = 0;
	int ret = 0;

	if (!bm)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	ret = vhdx_file_read(v, bm, nb, vhdx_bat_offset(sb) + b0);
	while (!ret && pos < len) {
		uint64_t s = (vstart + pos) / lss - chunk_first;
		bool present = (bm[s / 8 - b0] >> (s % 8)) & 1;
		uint64_t run = 0;

		/* Extend the run over sectors with the same presence. */
		while (pos + run < len) {
			uint64_t t = (vstart + pos + run) / lss - chunk_first;
			if ((((bm[t / 8 - b0] >> (t % 8)) & 1) != 0) != present)
				break;
			run += lss - (vstart + pos + run) % lss;
		}
		if (pos + run > len)
			run = len - pos;
		if (present)
			ret = vhdx_file_read(v, buf + pos, run, boff + inoff + pos);
		else
			ret = parent_read(v, buf + pos, run, vstart + pos);
		pos += run;
	}
	free(bm);
	return ret;
}

int vhdx_pread(struct vhdx *v, void *vbuf, uint64_t len, uint64_t off)
{
	uint8_t *buf = vbuf;
	int ret = check_range(v, len, off);

	while (!ret && len) {
		uint64_t blk = off / v->geo.block_size, inoff = off % v->geo.block_size;
		uint64_t n = v->geo.block_size - inoff;
		uint64_t e = vhdx_bat_get(v, vhdx_bat_payload_index(&v->geo, blk));

		if (n > len)
			n = len;
		switch (vhdx_bat_state(e)) {
		case VHDX_PAYLOAD_FULLY_PRESENT:
			ret = vhdx_file_read(v, buf, n, vhdx_bat_offset(e) + inoff);
			break;
		case VHDX_PAYLOAD_PARTIALLY_PRESENT:
			ret = read_partial(v, blk, vhdx_bat_offset(e), buf, n, inoff);
			break;
		case VHDX_PAYLOAD_NOT_PRESENT:
		case VHDX_PAYLOAD_UNDEFINED:
			/* A differencing image defers to its parent; elsewhere the
			 * spec allows zeros, the only reproducible answer. */
			if (v->parent) {
				ret = parent_read(v, buf, n, off);
				break;
			}
			/* fall through */
		default: /* ZERO, UNMAPPED (3, and 5 of spec 0.95) read as zeros */
			memset(buf, 0, n);
			break;
		}
		buf += n;
		off += n;
		len -= n;
	}
	return ret;
}

int vhdx_block_status(struct vhdx *v, uint64_t off, uint64_t len, bool *allocated,
		      uint64_t *run)
{
	int ret = check_range(v, len, off);
	uint64_t bs = v->geo.block_size, done = 0;
	bool first = true;

	if (ret)
		return ret;
	if (len == 0)
		return gp_error_set(&v->err, GP_ERR_INVALID, "%s: empty block-status query", v->path);
	while (done < len) {
		uint64_t blk = (off + done) / bs, n = bs - (off + done) % bs;
		unsigned s = vhdx_bat_state(vhdx_bat_get(v, vhdx_bat_payload_index(&v->geo, blk)));
		bool a = s == VHDX_PAYLOAD_FULLY_PRESENT || s == VHDX_PAYLOAD_PARTIALLY_PRESENT;

		if (first)
			*allocated = a;
		else if (a != *allocated)
			break;
		first = false;
		done += n;
	}
	*run = done < len ? done : len;
	return 0;
}

/* ---- write ---- */

/* Copy the parent's data for the virtual range [vstart, vstart+len) of a
 * block into the file at @foff, skipping all-zero pieces (the new block's
 * space reads as zeros already). */
static int copy_from_parent(struct vhdx *v, uint64_t vstart, uint64_t len, uint64_t foff,
			    uint8_t *tmp)
{
	int ret = 0;

	for (uint64_t p = 0; !ret && p < len; p += VHDX_COPY_CHUNK) {
		uint64_t n = len - p < VHDX_COPY_CHUNK ? len - p : VHDX_COPY_CHUNK;
		bool zero = true;

		ret = parent_read(v, tmp, n, vstart + p);
		for (uint64_t i = 0; !ret && i < n; i += 8)
			if (get_le64(tmp + i)) {
				zero = false;
				break;
			}
		if (!ret && !zero)
			ret = vhdx_file_write(v, tmp, n, foff + p);
	}
	return ret;
}

/* Fill the sectors of PARTIALLY_PRESENT block @blk (at @boff) that the
 * sector bitmap marks absent with the parent's data, outside [skip0, skip1)
 * of the block, so that the block can become FULLY_PRESENT. */
static int fill_absent(struct vhdx *v, uint64_t blk, uint64_t boff, uint64_t skip0,
		       uint64_t skip1, uint64_t blen, uint8_t *tmp)
{
	uint64_t lss = v->md.logical_sector_size, nsec = blen / lss;
	uint64_t sb = vhdx_bat_get(v, vhdx_bat_bitmap_index(&v->geo, blk));
	uint64_t first = (blk * v->geo.block_size / lss) % VHDX_SECTORS_PER_BITMAP;
	uint8_t *bm = malloc(nsec / 8 + 1);
	int ret;

	if (!bm)
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	ret = vhdx_file_read(v, bm, nsec / 8 + 1, vhdx_bat_offset(sb) + first / 8);
	for (uint64_t s = 0; !ret && s < nsec;) {
		uint64_t t = s;

		if ((bm[s / 8] >> (s % 8)) & 1) {
			s++;
			continue;
		}
		while (t < nsec && !((bm[t / 8] >> (t % 8)) & 1) && (t - s) * lss < VHDX_COPY_CHUNK)
			t++;
		uint64_t a = s * lss, b = t * lss;
		/* Clip away the part the caller is about to overwrite. */
		if (a < skip0 || b > skip1) {
			if (a >= skip0 && a < skip1)
				a = skip1;
			if (b > skip0 && b <= skip1)
				b = skip0;
			if (a < skip0 && b > skip1) {
				ret = parent_read(v, tmp, skip0 - a, blk * v->geo.block_size + a);
				if (!ret)
					ret = vhdx_file_write(v, tmp, skip0 - a, boff + a);
				a = skip1;
			}
			if (!ret && a < b) {
				ret = parent_read(v, tmp, b - a, blk * v->geo.block_size + a);
				if (!ret)
					ret = vhdx_file_write(v, tmp, b - a, boff + a);
			}
		}
		s = t;
	}
	free(bm);
	return ret;
}

/* Give block @blk file space (or make a partial block whole) before a write
 * of [inoff, inoff+n) into it. Returns the block's file offset in *@boff. */
static int prepare_block(struct vhdx *v, uint64_t blk, uint64_t inoff, uint64_t n,
			 uint64_t *boff)
{
	uint64_t idx = vhdx_bat_payload_index(&v->geo, blk), e = vhdx_bat_get(v, idx);
	uint64_t bs = v->geo.block_size, vstart = blk * bs;
	uint64_t blen = v->md.virtual_size - vstart < bs ? v->md.virtual_size - vstart : bs;
	unsigned st = vhdx_bat_state(e);
	uint8_t *tmp = NULL;
	int ret = 0;

	if (v->parent && (st == VHDX_PAYLOAD_PARTIALLY_PRESENT || st == VHDX_PAYLOAD_NOT_PRESENT ||
			  st == VHDX_PAYLOAD_UNDEFINED) &&
	    !(inoff == 0 && n == blen)) {
		tmp = malloc(VHDX_COPY_CHUNK);
		if (!tmp)
			return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	}
	if (st == VHDX_PAYLOAD_PARTIALLY_PRESENT) {
		*boff = vhdx_bat_offset(e);
		if (tmp)
			ret = fill_absent(v, blk, *boff, inoff, inoff + n, blen, tmp);
	} else {
		*boff = v->alloc_end;
		ret = file_reserve(v, *boff + bs);
		if (!ret) {
			v->alloc_end = *boff + bs;
			v->alloc_since_commit += bs;
		}
		if (!ret && tmp) {
			/* Copy-up: the parent's data around the part being written. */
			ret = copy_from_parent(v, vstart, inoff, *boff, tmp);
			if (!ret && inoff + n < blen)
				ret = copy_from_parent(v, vstart + inoff + n, blen - inoff - n,
						       *boff + inoff + n, tmp);
		}
	}
	free(tmp);
	if (ret)
		return ret;
	bat_put(v, idx, vhdx_bat_make(VHDX_PAYLOAD_FULLY_PRESENT, *boff));
	return 0;
}

/* Give every chunk of a child that has no sector bitmap block a zero-filled
 * one: valid under MS-VHDX (no sector is marked present in the child, and
 * FULLY_PRESENT blocks never consult it), and what libvhdi needs to read
 * the chunk's absent blocks from the parent instead of taking the child's
 * header bytes for a bitmap (../shared/UPSTREAM.md). Children that Hyper-V
 * or other tools made lack them; this runs at the first write, and the BAT
 * entries go out with that write's commit, after the zeros are flushed. */
static int add_missing_bitmaps(struct vhdx *v)
{
	static const uint8_t zero[64 * 1024];
	int ret = 0;

	v->bitmaps_done = true;
	for (uint64_t c = 0; !ret && c < v->geo.bitmap_blocks; c++) {
		uint64_t i = c * (v->geo.chunk_ratio + 1) + v->geo.chunk_ratio, at = v->alloc_end;

		if (vhdx_bat_state(vhdx_bat_get(v, i)) == VHDX_SB_PRESENT)
			continue;
		ret = file_reserve(v, at + VHDX_SECTOR_BITMAP_BLOCK_SIZE);
		/* Below the size the file had at open the space may hold bytes
		 * of a killed session's unreferenced blocks: zero it. Past it,
		 * the file grew as a hole. */
		for (uint64_t p = 0; !ret && at < v->open_size && p < VHDX_SECTOR_BITMAP_BLOCK_SIZE;
		     p += sizeof(zero))
			ret = vhdx_file_write(v, zero, sizeof(zero), at + p);
		if (ret)
			break;
		v->alloc_end = at + VHDX_SECTOR_BITMAP_BLOCK_SIZE;
		v->alloc_since_commit += VHDX_SECTOR_BITMAP_BLOCK_SIZE;
		bat_put(v, i, vhdx_bat_make(VHDX_SB_PRESENT, at));
	}
	return ret;
}

int vhdx_pwrite(struct vhdx *v, const void *vbuf, uint64_t len, uint64_t off)
{
	const uint8_t *buf = vbuf;
	int ret;

	if (!v->writable)
		return gp_error_set(&v->err, GP_ERR_READONLY, "%s: image is open read-only", v->path);
	ret = check_range(v, len, off);
	if (!ret && len)
		ret = session_begin(v, true);
	if (!ret && len && v->md.has_parent && !v->bitmaps_done)
		ret = add_missing_bitmaps(v);
	while (!ret && len) {
		uint64_t blk = off / v->geo.block_size, inoff = off % v->geo.block_size;
		uint64_t n = v->geo.block_size - inoff;
		uint64_t e = vhdx_bat_get(v, vhdx_bat_payload_index(&v->geo, blk)), boff = 0;

		if (n > len)
			n = len;
		if (vhdx_bat_state(e) == VHDX_PAYLOAD_FULLY_PRESENT)
			boff = vhdx_bat_offset(e);
		else
			ret = prepare_block(v, blk, inoff, n, &boff);
		/* Straight to the file: no read-modify-write for small writes. */
		if (!ret)
			ret = vhdx_file_write(v, buf, n, boff + inoff);
		buf += n;
		off += n;
		len -= n;
		if (!ret && (v->ndirty >= VHDX_MAX_DIRTY_SECTORS ||
			     v->alloc_since_commit >= VHDX_COMMIT_ALLOC_BYTES))
			ret = commit_bat(v);
	}
	return ret;
}

/* Commit the dirty BAT sectors: data flush → log entry (new LogGuid) →
 * flush → header naming the LogGuid → flush → BAT in place → flush →
 * header with LogGuid cleared → flush. */
static int commit_bat(struct vhdx *v)
{
	static const struct vhdx_guid zero_guid;
	struct vhdx_log_update *u = NULL;
	uint8_t *entry = NULL;
	size_t n = 0, elen = 0;
	struct vhdx_guid lg;
	uint64_t keep;
	int ret;

	if (!v->ndirty)
		return 0;
	/* Only an empty log may be overwritten; a commit that failed half-way
	 * (header naming its log) must be replayed by a reopen first. */
	if (!vhdx_guid_is_zero(&v->hdr.log_guid))
		return gp_error_set(&v->err, GP_ERR_IO,
				    "%s: an earlier BAT update failed half-way; reopen the image to replay its log",
				    v->path);
	u = calloc(v->ndirty, sizeof(*u));
	if (!u) {
		ret = gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
		goto out;
	}
	for (uint64_t s = 0; s < v->bat_sectors; s++) {
		if (!v->bat_dirty[s])
			continue;
		u[n].data = malloc(VHDX_LOG_SECTOR);
		if (!u[n].data) {
			ret = gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
			goto out;
		}
		/* Each logged sector is the whole in-memory BAT sector. */
		memcpy(u[n].data, v->bat + s * VHDX_LOG_SECTOR, VHDX_LOG_SECTOR);
		u[n].off = v->bat_offset + s * VHDX_LOG_SECTOR;
		u[n].len = VHDX_LOG_SECTOR;
		n++;
	}
	/* 1. The data (and the file's new length) must be stable before any
	 *    BAT entry points at it. */
	ret = vhdx_file_sync(v);
	if (ret)
		goto out;
	/* 2. The entry, under a fresh LogGuid, flushed. The header still says
	 *    "log empty", so a crash here leaves the previous, consistent state;
	 *    and a fresh GUID per commit means stale entries of earlier commits
	 *    never match. (Setting the header's LogGuid first would open a window
	 *    in which the header names a log with no valid entry: a corrupt file,
	 *    2.3.3.) */
	vhdx_guid_generate(&lg);
	/* The sizes exclude the unused tail past alloc_end (file_reserve()):
	 * close() cuts it off, and a replay must neither take the trimmed file
	 * for a truncated one (FlushedFileOffset) nor grow it back
	 * (LastFileOffset, 2.3.1.1). */
	keep = v->alloc_end < v->file_size ? v->alloc_end : v->file_size;
	ret = vhdx_log_build_entry(&lg, ++v->log_seq, 0, keep / VHDX_MiB * VHDX_MiB,
				   round_up(v->alloc_end > keep ? v->alloc_end : keep, VHDX_MiB), u, n,
				   &entry, &elen);
	if (ret) {
		ret = gp_error_set(&v->err, ret, "%s: out of memory", v->path);
		goto out;
	}
	if (elen > v->hdr.log_length) {
		ret = gp_error_set(&v->err, GP_ERR_UNSUPPORTED,
				   "%s: log at 0x%llx: %u bytes cannot hold a %zu-byte entry", v->path,
				   (unsigned long long)v->hdr.log_offset, v->hdr.log_length, elen);
		goto out;
	}
	ret = vhdx_file_write(v, entry, elen, v->hdr.log_offset);
	if (!ret)
		ret = vhdx_file_sync(v);
	/* 3. Activate the log: from here a crash replays the entry. */
	if (!ret)
		ret = header_update(v, false, false, &lg);
	/* 4. Apply in place, flush. */
	for (size_t i = 0; !ret && i < n; i++)
		ret = vhdx_file_write(v, u[i].data, VHDX_LOG_SECTOR, u[i].off);
	if (!ret)
		ret = vhdx_file_sync(v);
	/* 5. Empty the log. */
	if (!ret)
		ret = header_update(v, false, false, &zero_guid);
	if (!ret) {
		memset(v->bat_dirty, 0, v->bat_sectors);
		v->ndirty = 0;
		v->alloc_since_commit = 0;
	}
out:
	for (size_t i = 0; u && i < n; i++)
		free(u[i].data);
	free(u);
	free(entry);
	return ret;
}

/* ---- info ---- */

const char *vhdx_disk_type_name(enum vhdx_disk_type t)
{
	switch (t) {
	case VHDX_DISK_FIXED: return "fixed";
	case VHDX_DISK_DYNAMIC: return "dynamic";
	case VHDX_DISK_DIFFERENCING: return "differencing";
	}
	return "unknown";
}

const char *vhdx_log_state_name(enum vhdx_log_state s)
{
	return s == VHDX_LOG_DIRTY ? "dirty" : "empty";
}

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

int vhdx_get_info(struct vhdx *v, struct vhdx_info *out)
{
	uint64_t nalloc = 0;
	int bad = 0;

	memset(out, 0, sizeof(*out));
	out->type = vhdx_disk_type(v);
	out->virtual_size = v->md.virtual_size;
	out->block_size = v->md.block_size;
	out->logical_sector_size = v->md.logical_sector_size;
	out->physical_sector_size = v->md.physical_sector_size;
	out->chunk_ratio = (uint32_t)v->geo.chunk_ratio;
	out->version = v->hdr.version;
	out->log_version = v->hdr.log_version;
	out->header_sequence = v->hdr.sequence;
	out->current_header = v->cur_slot + 1;
	out->leave_block_allocated = v->md.leave_block_allocated;
	out->has_parent = v->md.has_parent;
	out->file_size = v->file_size;
	out->log_offset = v->hdr.log_offset;
	out->log_length = v->hdr.log_length;
	out->bat_entries = v->geo.total_entries;
	/* Payload entries come in groups of chunk_ratio, each followed by a
	 * sector-bitmap entry: walk them without a division per block, and
	 * count in a local (the BAT bytes may alias *out). */
	for (uint64_t b = 0, i = 0, k = 0; b < v->geo.data_blocks; b++, i++) {
		unsigned s = vhdx_bat_state(vhdx_bat_get(v, i));

		nalloc += s == VHDX_PAYLOAD_FULLY_PRESENT || s == VHDX_PAYLOAD_PARTIALLY_PRESENT;
		if (++k == v->geo.chunk_ratio) {
			k = 0;
			i++;
		}
	}
	out->allocated_blocks = nalloc;
	out->log_state = v->log_was_dirty ? VHDX_LOG_DIRTY : VHDX_LOG_EMPTY;
	out->log_replayed = v->log_replayed;
	vhdx_guid_format(&v->md.disk_id, out->disk_id);
	vhdx_guid_format(&v->hdr.data_write_guid, out->data_write_guid);
	vhdx_guid_format(&v->hdr.file_write_guid, out->file_write_guid);
	vhdx_guid_format(&v->hdr.log_guid, out->log_guid);
	bad |= dup_str(&out->creator, v->creator);
	bad |= dup_str(&out->parent.parent_linkage, v->md.locator.parent_linkage);
	bad |= dup_str(&out->parent.parent_linkage2, v->md.locator.parent_linkage2);
	bad |= dup_str(&out->parent.relative_path, v->md.locator.relative_path);
	bad |= dup_str(&out->parent.volume_path, v->md.locator.volume_path);
	bad |= dup_str(&out->parent.absolute_win32_path, v->md.locator.absolute_win32_path);
	if (v->chain_len) {
		out->parent_chain = calloc(v->chain_len, sizeof(char *));
		bad |= !out->parent_chain;
		for (size_t i = 0; out->parent_chain && i < v->chain_len; i++) {
			bad |= dup_str(&out->parent_chain[i], v->chain[i]);
			out->parent_chain_len = i + 1;
		}
	}
	if (bad) {
		vhdx_info_free(out);
		return gp_error_set(&v->err, GP_ERR_NOMEM, "%s: out of memory", v->path);
	}
	return 0;
}

void vhdx_info_free(struct vhdx_info *info)
{
	free(info->creator);
	vhdx_locator_free(&info->parent);
	for (size_t i = 0; i < info->parent_chain_len; i++)
		free(info->parent_chain[i]);
	free(info->parent_chain);
	memset(info, 0, sizeof(*info));
}

/* ---- log state without opening ---- */

int vhdx_log_is_dirty(const char *path, bool *dirty, struct gp_error *err)
{
	struct vhdx_header h;
	struct stat st;
	char *creator = NULL;
	uint8_t *buf;
	int fd, slot, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					  "%s", path);
	buf = malloc(HDR_BUF);
	if (!buf) {
		close(fd);
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	}
	if (fstat(fd, &st) < 0)
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
	else if (!S_ISREG(st.st_mode))
		ret = gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: not a regular file", path);
	else
		ret = read_header_section(path, fd, (uint64_t)st.st_size, buf, &h, &slot, &creator,
					  err);
	if (!ret)
		*dirty = !vhdx_guid_is_zero(&h.log_guid);
	free(creator);
	free(buf);
	close(fd);
	return ret;
}
