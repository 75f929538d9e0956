/*
 * vhdx_log.c — the metadata log (MS-VHDX 2.3): entry parsing, the search
 * for the active sequence (2.3.3), and building entries for gpup's own BAT
 * updates. Applying the updates (to the file, or to the in-memory overlay
 * of a read-only open) is vhdx.c's business.
 */
#include "crc32c.h"
#include "le.h"
#include "vhdx_priv.h"

#include <stdlib.h>
#include <string.h>

#define SIG_ENTRY "loge"
#define SIG_ZERO "zero"
#define SIG_DESC "desc"
#define SIG_DATA "data"

struct entry_info {
	uint64_t pos;      /* offset in the log */
	uint64_t length;
	uint64_t tail;
	uint64_t seq;
	uint32_t ndesc;
	uint64_t flushed, last;
};

/* Copy @len bytes of the ring buffer starting at @pos (wrapping). */
static void ring_copy(const uint8_t *log, uint64_t log_len, uint64_t pos, uint8_t *out,
		      uint64_t len)
{
	uint64_t first = log_len - pos < len ? log_len - pos : len;

	memcpy(out, log + pos, first);
	if (first < len)
		memcpy(out + first, log, len - first);
}

static uint64_t desc_sectors(uint32_t ndesc)
{
	uint64_t bytes = VHDX_LOG_HDR_SIZE + (uint64_t)ndesc * VHDX_LOG_DESC_SIZE;

	return (bytes + VHDX_LOG_SECTOR - 1) / VHDX_LOG_SECTOR;
}

/* Is a valid entry at @pos? Fills @ei; *@copy receives the contiguous
 * entry (malloc'ed) when @copy is not NULL. Returns true when valid. */
static bool entry_valid(const uint8_t *log, uint64_t log_len, uint64_t pos,
			const struct vhdx_guid *guid, struct entry_info *ei, uint8_t **copy)
{
	const uint8_t *h = log + pos;
	uint64_t nsec, ndata = 0, dsec;
	uint8_t *e;
	uint32_t sum;

	if (memcmp(h + VHDX_LOGE_SIGNATURE_OFF, SIG_ENTRY, 4) != 0)
		return false;
	ei->pos = pos;
	ei->length = get_le32(h + VHDX_LOGE_ENTRY_LENGTH_OFF);
	ei->tail = get_le32(h + VHDX_LOGE_TAIL_OFF);
	ei->seq = get_le64(h + VHDX_LOGE_SEQUENCE_OFF);
	ei->ndesc = get_le32(h + VHDX_LOGE_DESCRIPTOR_COUNT_OFF);
	ei->flushed = get_le64(h + VHDX_LOGE_FLUSHED_FILE_OFFSET_OFF);
	ei->last = get_le64(h + VHDX_LOGE_LAST_FILE_OFFSET_OFF);
	if (ei->length == 0 || ei->length % VHDX_LOG_SECTOR || ei->length > log_len ||
	    ei->tail % VHDX_LOG_SECTOR || ei->tail >= log_len || ei->seq == 0 ||
	    memcmp(h + VHDX_LOGE_LOG_GUID_OFF, guid->b, 16) != 0)
		return false;
	nsec = ei->length / VHDX_LOG_SECTOR;
	dsec = desc_sectors(ei->ndesc);
	if (dsec > nsec)
		return false;
	e = malloc(ei->length);
	if (!e)
		return false;
	ring_copy(log, log_len, pos, e, ei->length);
	put_le32(e + VHDX_LOGE_CHECKSUM_OFF, 0);
	sum = crc32c(e, ei->length);
	if (sum != get_le32(h + VHDX_LOGE_CHECKSUM_OFF))
		goto bad;
	put_le32(e + VHDX_LOGE_CHECKSUM_OFF, sum);
	for (uint32_t i = 0; i < ei->ndesc; i++) {
		const uint8_t *d = e + VHDX_LOG_HDR_SIZE + (uint64_t)i * VHDX_LOG_DESC_SIZE;
		uint64_t foff = get_le64(d + VHDX_LOGD_FILE_OFFSET_OFF);

		if (get_le64(d + VHDX_LOGD_SEQUENCE_OFF) != ei->seq || foff % VHDX_LOG_SECTOR)
			goto bad;
		if (memcmp(d, SIG_ZERO, 4) == 0) {
			if (get_le64(d + VHDX_LOGD_ZERO_LENGTH_OFF) % VHDX_LOG_SECTOR)
				goto bad;
		} else if (memcmp(d, SIG_DESC, 4) == 0) {
			const uint8_t *s = e + (dsec + ndata) * VHDX_LOG_SECTOR;

			if (dsec + ndata >= nsec || memcmp(s, SIG_DATA, 4) != 0 ||
			    get_le32(s + VHDX_LOGS_SEQUENCE_HIGH_OFF) != (uint32_t)(ei->seq >> 32) ||
			    get_le32(s + VHDX_LOGS_SEQUENCE_LOW_OFF) != (uint32_t)ei->seq)
				goto bad;
			ndata++;
		} else {
			goto bad;
		}
	}
	if (copy)
		*copy = e;
	else
		free(e);
	return true;
bad:
	free(e);
	return false;
}

void vhdx_log_replay_free(struct vhdx_log_replay *r)
{
	for (size_t i = 0; i < r->count; i++)
		free(r->updates[i].data);
	free(r->updates);
	memset(r, 0, sizeof(*r));
}

/* Append the updates of one (valid) entry to @r. */
static int collect(const char *path, uint64_t log_offset, const uint8_t *log, uint64_t log_len,
		   const struct vhdx_guid *guid, uint64_t pos, struct vhdx_log_replay *r,
		   struct gp_error *err)
{
	struct entry_info ei;
	uint8_t *e = NULL;
	uint64_t dsec, ndata = 0;
	struct vhdx_log_update *nu;

	if (!entry_valid(log, log_len, pos, guid, &ei, &e))
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory reading the log", path);
	dsec = desc_sectors(ei.ndesc);
	nu = realloc(r->updates, (r->count + ei.ndesc + 1) * sizeof(*nu));
	if (!nu) {
		free(e);
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	}
	r->updates = nu;
	for (uint32_t i = 0; i < ei.ndesc; i++) {
		const uint8_t *d = e + VHDX_LOG_HDR_SIZE + (uint64_t)i * VHDX_LOG_DESC_SIZE;
		struct vhdx_log_update *u = &r->updates[r->count];
		uint64_t end;

		u->off = get_le64(d + VHDX_LOGD_FILE_OFFSET_OFF);
		u->data = NULL;
		if (memcmp(d, SIG_ZERO, 4) == 0) {
			u->len = get_le64(d + VHDX_LOGD_ZERO_LENGTH_OFF);
		} else {
			const uint8_t *s = e + (dsec + ndata++) * VHDX_LOG_SECTOR;

			u->len = VHDX_LOG_SECTOR;
			u->data = malloc(VHDX_LOG_SECTOR);
			if (!u->data) {
				free(e);
				return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
			}
			/* The data sector lends its first 8 and last 4 bytes to its
			 * signature and sequence; the descriptor keeps the originals. */
			memcpy(u->data, d + VHDX_LOGD_LEADING_BYTES_OFF, 8);
			memcpy(u->data + 8, s + VHDX_LOGS_DATA_OFF, 4084);
			memcpy(u->data + 4092, d + VHDX_LOGD_TRAILING_BYTES_OFF, 4);
		}
		r->count++;
		/* The file identifier and the headers are never written through
		 * the log (2.2.1, 2.2.2). */
		if (u->off < VHDX_REGION1_OFFSET || add_u64(u->off, u->len, &end) ||
		    end > VHDX_MAX_VIRTUAL_SIZE * 2) {
			free(e);
			return gp_error_set(err, GP_ERR_CORRUPT,
					    "%s: log entry at 0x%llx: descriptor %u targets file offset 0x%llx length %llu, outside the writable file",
					    path, (unsigned long long)(log_offset + pos), i,
					    (unsigned long long)u->off, (unsigned long long)u->len);
		}
	}
	free(e);
	r->entries++;
	return 0;
}

int vhdx_log_find(const char *path, uint64_t log_offset, const uint8_t *log, uint64_t log_len,
		  const struct vhdx_guid *log_guid, struct vhdx_log_replay *out,
		  struct gp_error *err)
{
	uint64_t cand_seq = 0, cand_tail = 0, cand_n = 0;
	uint64_t cur_tail = 0, old_tail = 0;
	struct entry_info head_ei = { 0 };
	uint64_t *pos = NULL;
	size_t maxn = log_len / VHDX_LOG_SECTOR + 1;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	pos = malloc(maxn * sizeof(*pos));
	if (!pos)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	for (;;) {
		/* Step 2-3: grow the current sequence from cur_tail. */
		uint64_t head = cur_tail, used = 0, last_seq = 0;
		size_t n = 0;
		struct entry_info ei, last = { 0 };
		bool valid = false;

		while (n < maxn && entry_valid(log, log_len, head, log_guid, &ei, NULL) &&
		       (n == 0 || ei.seq == last_seq + 1) && used + ei.length <= log_len) {
			pos[n++] = head;
			used += ei.length;
			last_seq = ei.seq;
			last = ei;
			head = (head + ei.length) % log_len;
		}
		/* Step 4: the head entry's tail must lie within the sequence. */
		size_t tail_i = 0;
		for (size_t i = 0; i < n; i++)
			if (pos[i] == last.tail) {
				valid = true;
				tail_i = i;
				break;
			}
		if (valid && last_seq > cand_seq) {
			cand_seq = last_seq;
			cand_tail = last.tail;
			cand_n = n - tail_i;
			head_ei = last;
		}
		/* Step 6-7: move on. */
		if (n == 0 || !valid)
			cur_tail = (cur_tail + VHDX_LOG_SECTOR) % log_len;
		else
			cur_tail = head % log_len;
		if (cur_tail < old_tail || (n && valid && used == log_len))
			break;
		old_tail = cur_tail;
	}
	free(pos);
	if (cand_seq == 0)
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: log at 0x%llx: LogGuid is set but no valid log sequence was found",
				    path, (unsigned long long)log_offset);
	/* Replay from the tail entry to the head entry, in order. */
	uint64_t p = cand_tail;
	for (uint64_t i = 0; i < cand_n; i++) {
		struct entry_info ei;

		if (!entry_valid(log, log_len, p, log_guid, &ei, NULL)) {
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: log at 0x%llx: entry at 0x%llx vanished",
					   path, (unsigned long long)log_offset, (unsigned long long)p);
			break;
		}
		ret = collect(path, log_offset, log, log_len, log_guid, p, out, err);
		if (ret)
			break;
		p = (p + ei.length) % log_len;
	}
	if (ret) {
		vhdx_log_replay_free(out);
		return ret;
	}
	out->flushed_file_offset = head_ei.flushed;
	out->last_file_offset = head_ei.last;
	return 0;
}

int vhdx_log_build_entry(const struct vhdx_guid *log_guid, uint64_t seq, uint32_t tail,
			 uint64_t flushed_file_offset, uint64_t last_file_offset,
			 const struct vhdx_log_update *u, size_t n, uint8_t **out,
			 size_t *out_len)
{
	uint64_t dsec = desc_sectors((uint32_t)n), ndata = 0;
	size_t len;
	uint8_t *e;

	for (size_t i = 0; i < n; i++)
		ndata += u[i].data != NULL;
	len = (size_t)(dsec + ndata) * VHDX_LOG_SECTOR;
	e = calloc(1, len);
	if (!e)
		return GP_ERR_NOMEM;
	memcpy(e + VHDX_LOGE_SIGNATURE_OFF, SIG_ENTRY, 4);
	put_le32(e + VHDX_LOGE_ENTRY_LENGTH_OFF, (uint32_t)len);
	put_le32(e + VHDX_LOGE_TAIL_OFF, tail);
	put_le64(e + VHDX_LOGE_SEQUENCE_OFF, seq);
	put_le32(e + VHDX_LOGE_DESCRIPTOR_COUNT_OFF, (uint32_t)n);
	memcpy(e + VHDX_LOGE_LOG_GUID_OFF, log_guid->b, 16);
	put_le64(e + VHDX_LOGE_FLUSHED_FILE_OFFSET_OFF, flushed_file_offset);
	put_le64(e + VHDX_LOGE_LAST_FILE_OFFSET_OFF, last_file_offset);
	ndata = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *d = e + VHDX_LOG_HDR_SIZE + i * VHDX_LOG_DESC_SIZE;

		put_le64(d + VHDX_LOGD_FILE_OFFSET_OFF, u[i].off);
		put_le64(d + VHDX_LOGD_SEQUENCE_OFF, seq);
		if (!u[i].data) {
			memcpy(d + VHDX_LOGD_SIGNATURE_OFF, SIG_ZERO, 4);
			put_le64(d + VHDX_LOGD_ZERO_LENGTH_OFF, u[i].len);
			continue;
		}
		uint8_t *s = e + (dsec + ndata++) * VHDX_LOG_SECTOR;
		/* The sector's first 8 and last 4 bytes travel in the descriptor;
		 * the data sector carries signature and sequence there instead. */
		memcpy(d + VHDX_LOGD_SIGNATURE_OFF, SIG_DESC, 4);
		memcpy(d + VHDX_LOGD_TRAILING_BYTES_OFF, u[i].data + 4092, 4);
		memcpy(d + VHDX_LOGD_LEADING_BYTES_OFF, u[i].data, 8);
		memcpy(s + VHDX_LOGS_SIGNATURE_OFF, SIG_DATA, 4);
		put_le32(s + VHDX_LOGS_SEQUENCE_HIGH_OFF, (uint32_t)(seq >> 32));
		memcpy(s + VHDX_LOGS_DATA_OFF, u[i].data + 8, 4084);
		put_le32(s + VHDX_LOGS_SEQUENCE_LOW_OFF, (uint32_t)seq);
	}
	put_le32(e + VHDX_LOGE_CHECKSUM_OFF, crc32c(e, len));
	*out = e;
	*out_len = len;
	return 0;
}

/* ---- flattening a replay ---- */

struct flat_event {
	uint64_t pos;
	size_t idx;
	bool start;
};

static int event_cmp(const void *a, const void *b)
{
	const struct flat_event *x = a, *y = b;

	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* A max-heap of update indices: the top is the latest update covering the
 * sweep position (ended ones are dropped lazily when they surface). */
static void heap_push(size_t *h, size_t *n, size_t v)
{
	size_t i = (*n)++;

	while (i && h[(i - 1) / 2] < v) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static void heap_pop(size_t *h, size_t *n)
{
	size_t v = h[--*n], i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1] > h[c])
			c++;
		if (h[c] <= v)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = v;
}

int vhdx_log_flatten(const struct vhdx_log_update *u, size_t n, struct vhdx_log_update **out,
		     size_t *nout)
{
	struct flat_event *ev = NULL;
	struct vhdx_log_update *p = NULL;
	size_t *heap = NULL, nev = 0, nheap = 0, np = 0;
	bool *ended = NULL;
	int ret = 0;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	/* Pieces: at most one per event interval. */
	if (n > SIZE_MAX / (2 * sizeof(*ev)) ||
	    !(ev = malloc(2 * n * sizeof(*ev))) || !(heap = malloc(n * sizeof(*heap))) ||
	    !(ended = calloc(n, sizeof(*ended))) || !(p = malloc(2 * n * sizeof(*p)))) {
		ret = GP_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (u[i].len == 0)
			continue;
		ev[nev++] = (struct flat_event){ u[i].off, i, true };
		ev[nev++] = (struct flat_event){ u[i].off + u[i].len, i, false };
	}
	qsort(ev, nev, sizeof(*ev), event_cmp);
	for (size_t e = 0; e < nev;) {
		uint64_t pos = ev[e].pos, next;

		for (; e < nev && ev[e].pos == pos; e++) {
			if (ev[e].start)
				heap_push(heap, &nheap, ev[e].idx);
			else
				ended[ev[e].idx] = true;
		}
		while (nheap && ended[heap[0]])
			heap_pop(heap, &nheap);
		if (!nheap || e == nev)
			continue;
		next = ev[e].pos;
		{
			const struct vhdx_log_update *w = &u[heap[0]];
			const uint8_t *d = w->data ? w->data + (pos - w->off) : NULL;
			struct vhdx_log_update *last = np ? &p[np - 1] : NULL;

			/* Runs of zeros, or of one update's data, stay one piece. */
			if (last && last->off + last->len == pos &&
			    (d ? last->data && last->data + last->len == d : !last->data))
				last->len += next - pos;
			else
				p[np++] = (struct vhdx_log_update){ pos, next - pos, (uint8_t *)d };
		}
	}
	*out = p;
	*nout = np;
	p = NULL;
out:
	free(ev);
	free(heap);
	free(ended);
	free(p);
	return ret;
}
