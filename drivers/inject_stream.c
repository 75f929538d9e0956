/* inject_stream.c — the host-file gp_inject_stream (see inject.h): reads each
 * file's bytes from its source_path and checks the size did not change
 * between planning and copying. */
#include "inject.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <openssl/evp.h>
#include <unistd.h>

int gp_sha256_file(const char *path, uint8_t out[32], struct gp_error *err)
{
	EVP_MD_CTX *ctx;
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO,
					  errno, "%s", path);
	ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: cannot start SHA-256", path);
		goto out;
	}
	for (;;) {
		unsigned char chunk[1 << 16];

		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
			goto out;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, chunk, (size_t)n);
	}
	EVP_DigestFinal_ex(ctx, out, NULL);
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return ret;
}

struct host_stream {
	int fd;
	const struct gp_inject_file *f;
	uint64_t done;
};

static int host_open(struct gp_inject_stream *s, const struct gp_inject_file *f,
		     struct gp_error *err)
{
	struct host_stream *h = s->ctx;

	if (!f->source_path)
		return gp_error_set(err, GP_ERR_INVALID, "%s: no host source to read from",
				    f->guest_path);
	h->fd = open(f->source_path, O_RDONLY | O_CLOEXEC);
	if (h->fd < 0)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO,
					  errno, "%s", f->source_path);
	/* Sources are read once, front to back. */
	posix_fadvise(h->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	h->f = f;
	h->done = 0;
	return 0;
}

static int64_t host_read(struct gp_inject_stream *s, void *buf, size_t len,
			 struct gp_error *err)
{
	struct host_stream *h = s->ctx;
	ssize_t n;

	do
		n = read(h->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return gp_error_set_errno(err, GP_ERR_IO, errno, "%s", h->f->source_path);
	/* A file cut short while we copy: say so here, naming the host file,
	 * rather than leave the volume to report a short guest file. */
	if (n == 0 && h->done < h->f->size)
		return gp_error_set(err, GP_ERR_IO,
				    "%s: file shrank while being copied (planned %llu bytes, read %llu)",
				    h->f->source_path, (unsigned long long)h->f->size,
				    (unsigned long long)h->done);
	h->done += (uint64_t)n;
	/* A file growing while we copy would otherwise overrun the space the
	 * injector preallocated for the planned size. */
	if (h->done > h->f->size)
		return gp_error_set(err, GP_ERR_IO,
				    "%s: file grew while being copied (planned %llu bytes)",
				    h->f->source_path, (unsigned long long)h->f->size);
	return n;
}

static int host_close(struct gp_inject_stream *s, const uint8_t sha256[32],
		      struct gp_error *err)
{
	struct host_stream *h = s->ctx;
	int ret = 0;

	(void)sha256;
	if (h->done != h->f->size)
		ret = gp_error_set(err, GP_ERR_IO,
				   "%s: file changed size while being copied (planned %llu bytes, read %llu)",
				   h->f->source_path, (unsigned long long)h->f->size,
				   (unsigned long long)h->done);
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	return ret;
}

static int host_expected(struct gp_inject_stream *s, const struct gp_inject_file *f,
			 uint8_t sha256[32], struct gp_error *err)
{
	(void)s;
	return gp_sha256_file(f->source_path, sha256, err);
}

/* Only opens a file: safe on any thread, whatever the stream is doing. */
static int host_open_fd(struct gp_inject_stream *s, const struct gp_inject_file *f, int *fd,
			struct gp_error *err)
{
	(void)s;
	*fd = -1;
	if (!f->source_path)
		return gp_error_set(err, GP_ERR_INVALID, "%s: no host source to read from",
				    f->guest_path);
	*fd = open(f->source_path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO,
					  errno, "%s", f->source_path);
	posix_fadvise(*fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

static void host_destroy(struct gp_inject_stream *s)
{
	struct host_stream *h = s->ctx;

	if (h && h->fd >= 0)
		close(h->fd);
	free(h);
	s->ctx = NULL;
}

static const struct gp_inject_stream_ops host_stream_ops = {
	.open = host_open,
	.read = host_read,
	.close = host_close,
	.expected = host_expected,
	.open_fd = host_open_fd,
	.destroy = host_destroy,
};

int gp_inject_stream_host(struct gp_inject_stream *s, struct gp_error *err)
{
	struct host_stream *h = calloc(1, sizeof(*h));

	if (!h)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	h->fd = -1;
	s->ops = &host_stream_ops;
	s->ctx = h;
	return 0;
}
