/*
 * hive.c — offline hive editing through libhivex, in memory. See hive.h.
 */
#include "hive.h"

#include <errno.h>
#include <hivex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "le.h"

/* Base block ("regf"): primary and secondary sequence numbers. */
#define REGF_SIG 0
#define REGF_SEQ1 4
#define REGF_SEQ2 8
#define REGF_MIN 4096

struct gp_hive {
	hive_h *h;
	char name[128];
};

/* A memfd holding @len bytes of @buf, or -1 with errno. */
static int memfd_with(const void *buf, size_t len)
{
	int fd = memfd_create("gpup-hive", MFD_CLOEXEC);
	const uint8_t *p = buf;

	if (fd < 0)
		return -1;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return fd;
}

int gp_hive_open(const void *buf, size_t len, const char *name, struct gp_hive **out,
		 struct gp_error *err)
{
	const uint8_t *b = buf;
	struct gp_hive *h;
	char proc[64];
	int fd;

	*out = NULL;
	if (len < REGF_MIN || memcmp(b + REGF_SIG, "regf", 4))
		return gp_error_set(err, GP_ERR_CORRUPT, "%s: not a registry hive", name);
	if (get_le32(b + REGF_SEQ1) != get_le32(b + REGF_SEQ2))
		return gp_error_set(err, GP_ERR_CORRUPT,
				    "%s: the hive's last write was not finished (sequence numbers %u "
				    "and %u): Windows must replay its .LOG files first; boot the guest "
				    "once and shut it down cleanly", name, get_le32(b + REGF_SEQ1),
				    get_le32(b + REGF_SEQ2));
	h = calloc(1, sizeof(*h));
	if (!h)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	snprintf(h->name, sizeof(h->name), "%s", name);
	fd = memfd_with(buf, len);
	if (fd < 0) {
		free(h);
		return gp_error_set_errno(err, GP_ERR_IO, errno, "memfd_create");
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* HIVEX_OPEN_WRITE reads the whole file into memory. */
	h->h = hivex_open(proc, HIVEX_OPEN_WRITE);
	if (!h->h) {
		int e = errno;

		close(fd);
		free(h);
		return gp_error_set_errno(err, GP_ERR_CORRUPT, e, "%s: hivex cannot open the hive", name);
	}
	close(fd);
	*out = h;
	return 0;
}

void gp_hive_close(struct gp_hive *h)
{
	if (!h)
		return;
	if (h->h)
		hivex_close(h->h);
	free(h);
}

/* The node at @key, creating missing keys when @create. 0 when absent. */
static hive_node_h node_at(struct gp_hive *h, const char *key, bool create)
{
	hive_node_h n = hivex_root(h->h);
	char buf[1024], *save, *part;

	snprintf(buf, sizeof(buf), "%s", key);
	for (part = strtok_r(buf, "\\", &save); n && part; part = strtok_r(NULL, "\\", &save)) {
		hive_node_h c = hivex_node_get_child(h->h, n, part);

		if (!c && create)
			c = hivex_node_add_child(h->h, n, part);
		n = c;
	}
	return n;
}

bool gp_hive_has_key(struct gp_hive *h, const char *key)
{
	return node_at(h, key, false) != 0;
}

int gp_hive_current_control_set(struct gp_hive *h, char *out, size_t size,
				struct gp_error *err)
{
	hive_node_h n = node_at(h, "Select", false);
	hive_value_h v = n ? hivex_node_get_value(h->h, n, "Current") : 0;
	hive_type t;
	size_t len;

	if (!v || hivex_value_type(h->h, v, &t, &len) || t != hive_t_REG_DWORD)
		return gp_error_set(err, GP_ERR_CORRUPT, "%s: no Select\\Current DWORD", h->name);
	snprintf(out, size, "ControlSet%03u", (unsigned)hivex_value_dword(h->h, v));
	return 0;
}

int gp_hive_get(struct gp_hive *h, const char *key, const char *name, bool *found,
		uint32_t *type, uint8_t **data, size_t *len, struct gp_error *err)
{
	hive_node_h n = node_at(h, key, false);
	hive_value_h v = n ? hivex_node_get_value(h->h, n, name) : 0;
	hive_type t;
	char *d;

	*found = false;
	*data = NULL;
	*len = 0;
	if (!v)
		return 0;
	d = hivex_value_value(h->h, v, &t, len);
	if (!d)
		return gp_error_set_errno(err, GP_ERR_CORRUPT, errno, "%s: %s\\%s: unreadable value",
					  h->name, key, name);
	*found = true;
	*type = (uint32_t)t;
	*data = (uint8_t *)d;
	return 0;
}

int gp_hive_set(struct gp_hive *h, const char *key, const char *name, uint32_t type,
		const void *data, size_t len, struct gp_error *err)
{
	hive_node_h n = node_at(h, key, true);
	hive_set_value sv = { .key = (char *)name, .t = (hive_type)type, .len = len,
			      .value = (char *)data };

	if (!n || hivex_node_set_value(h->h, n, &sv, 0))
		return gp_error_set_errno(err, GP_ERR_CORRUPT, errno, "%s: cannot set %s\\%s",
					  h->name, key, name);
	return 0;
}

int gp_hive_delete_value(struct gp_hive *h, const char *key, const char *name,
			 struct gp_error *err)
{
	hive_node_h n = node_at(h, key, false);
	hive_value_h *vals;
	hive_set_value *keep;
	size_t nv = 0, k = 0;
	int ret = 0;

	if (!n || !hivex_node_get_value(h->h, n, name))
		return 0;
	/* hivex has no call to remove one value: the node's values are set
	 * again without it. */
	vals = hivex_node_values(h->h, n);
	if (!vals)
		return gp_error_set_errno(err, GP_ERR_CORRUPT, errno, "%s: %s: unreadable values",
					  h->name, key);
	while (vals[nv])
		nv++;
	keep = calloc(nv ? nv : 1, sizeof(*keep));
	if (!keep)
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; !ret && i < nv; i++) {
		char *vk = hivex_value_key(h->h, vals[i]);
		hive_type t;
		size_t len;
		char *d;

		if (!vk) {
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: %s: unreadable value", h->name, key);
			break;
		}
		if (!strcasecmp(vk, name)) {
			free(vk);
			continue;
		}
		d = hivex_value_value(h->h, vals[i], &t, &len);
		if (!d) {
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: %s\\%s: unreadable", h->name, key, vk);
			free(vk);
			break;
		}
		keep[k++] = (hive_set_value){ .key = vk, .t = t, .len = len, .value = d };
	}
	if (!ret && hivex_node_set_values(h->h, n, k, keep, 0))
		ret = gp_error_set_errno(err, GP_ERR_CORRUPT, errno, "%s: cannot remove %s\\%s",
					 h->name, key, name);
	for (size_t i = 0; keep && i < k; i++) {
		free(keep[i].key);
		free(keep[i].value);
	}
	free(keep);
	free(vals);
	return ret;
}

int gp_hive_delete_key(struct gp_hive *h, const char *key, struct gp_error *err)
{
	hive_node_h n = node_at(h, key, false);

	if (n && hivex_node_delete_child(h->h, n))
		return gp_error_set_errno(err, GP_ERR_CORRUPT, errno, "%s: cannot remove %s", h->name,
					  key);
	return 0;
}

int gp_hive_bytes(struct gp_hive *h, uint8_t **buf, size_t *len, struct gp_error *err)
{
	char proc[64];
	off_t size;
	int fd = memfd_create("gpup-hive-out", MFD_CLOEXEC);
	uint8_t *b;

	*buf = NULL;
	if (fd < 0)
		return gp_error_set_errno(err, GP_ERR_IO, errno, "memfd_create");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (hivex_commit(h->h, proc, 0)) {
		int e = errno;

		close(fd);
		return gp_error_set_errno(err, GP_ERR_IO, e, "%s: hivex cannot write the hive", h->name);
	}
	size = lseek(fd, 0, SEEK_END);
	b = size > 0 ? malloc((size_t)size) : NULL;
	if (!b || pread(fd, b, (size_t)size, 0) != size) {
		free(b);
		close(fd);
		return gp_error_set(err, size > 0 ? GP_ERR_NOMEM : GP_ERR_IO,
				    "%s: cannot read the written hive back", h->name);
	}
	close(fd);
	*buf = b;
	*len = (size_t)size;
	return 0;
}

int gp_hive_utf16(const char *s, uint8_t **out, size_t *len, struct gp_error *err)
{
	size_t n = strlen(s);
	uint8_t *b = malloc(2 * n + 2);

	if (!b)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] >= 0x80) {
			free(b);
			return gp_error_set(err, GP_ERR_INVALID, "'%s': only ASCII registry strings", s);
		}
		b[2 * i] = (uint8_t)s[i];
		b[2 * i + 1] = 0;
	}
	b[2 * n] = b[2 * n + 1] = 0;
	*out = b;
	*len = 2 * n + 2;
	return 0;
}
