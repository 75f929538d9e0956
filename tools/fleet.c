/* fleet.c — see fleet.h. */
#include "fleet.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

struct worker {
	pid_t pid;           /* 0: not started or reaped */
	FILE *out, *err;     /* its captured stdout and stderr (unlinked files) */
	bool finished;
	struct fleet_result r;
};

/* Read all of @f (rewound) into a NUL-terminated buffer. */
static char *slurp(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	*len = 0;
	if (!buf)
		return NULL;
	if (f) {
		rewind(f);
		for (;;) {
			size_t got;

			if (cap - n < 2) {
				char *nb = realloc(buf, cap * 2);

				if (!nb)
					break;
				buf = nb;
				cap *= 2;
			}
			got = fread(buf + n, 1, cap - n - 1, f);
			if (got == 0)
				break;
			n += got;
		}
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int start(struct worker *w, const char *image, int (*one)(void *, const char *), void *ctx)
{
	w->r.image = image;
	w->out = tmpfile();
	w->err = tmpfile();
	if (!w->out || !w->err)
		return -errno;
	/* Whatever this process buffered would be written twice. */
	fflush(NULL);
	w->pid = fork();
	if (w->pid < 0)
		return -errno;
	if (w->pid == 0) {
		int status;

		if (dup2(fileno(w->out), STDOUT_FILENO) < 0 || dup2(fileno(w->err), STDERR_FILENO) < 0)
			_exit(EXIT_ERROR);
		status = one(ctx, image);
		fflush(NULL);
		_exit(status);
	}
	return 0;
}

/* Add an error line (cli_error_line_to(): plain or a JSON event, like the
 * worker's own) to what @r's worker printed on stderr; @r->status is set. */
__attribute__((format(printf, 2, 3)))
static void append_err(struct fleet_result *r, const char *fmt, ...)
{
	char msg[PATH_MAX + 128], *line = NULL, *nb;
	size_t k = 0;
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!r->err)
		return;
	f = open_memstream(&line, &k);
	if (!f)
		return;
	cli_error_line_to(f, gp_status_id(r->status == EXIT_INTERRUPTED ? GP_ERR_ABORTED
									 : GP_ERR_IO),
			  r->status, msg);
	if (fclose(f) == 0) {
		nb = realloc(r->err, r->err_len + k + 1);
		if (nb) {
			memcpy(nb + r->err_len, line, k + 1);
			r->err = nb;
			r->err_len += k;
		}
	}
	free(line);
}

static void finish(struct worker *w, int wstatus)
{
	w->r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : EXIT_ERROR;
	w->r.out = slurp(w->out, &w->r.out_len);
	w->r.err = slurp(w->err, &w->r.err_len);
	if (w->out)
		fclose(w->out);
	if (w->err)
		fclose(w->err);
	w->out = w->err = NULL;
	/* Say it: a worker that died leaves no line of its own. */
	if (WIFSIGNALED(wstatus))
		append_err(&w->r, "%s: the worker died of signal %d", w->r.image,
			   WTERMSIG(wstatus));
	w->pid = 0;
	w->finished = true;
}

int fleet_run(char **images, size_t n, unsigned jobs,
	      int (*one)(void *one_ctx, const char *image), void *one_ctx,
	      void (*done)(void *done_ctx, const struct fleet_result *r), void *done_ctx)
{
	struct worker *w = calloc(n ? n : 1, sizeof(*w));
	size_t next = 0, shown = 0, running = 0;
	bool forwarded = false;
	int worst = EXIT_OK;

	if (!w) {
		cli_error_line(gp_status_id(GP_ERR_NOMEM), EXIT_ERROR, "out of memory");
		return EXIT_ERROR;
	}
	if (jobs < 1)
		jobs = 1;
	while (shown < n) {
		while (next < n && running < jobs && !cli_interrupted()) {
			int e = start(&w[next], images[next], one, one_ctx);

			if (e != 0) {
				finish(&w[next], EXIT_ERROR << 8);
				append_err(&w[next].r, "%s: cannot start a worker: %s",
					   images[next], strerror(-e));
			} else {
				running++;
			}
			next++;
		}
		if (cli_interrupted() && !forwarded) {
			/* A signal sent to this process alone (kill, a service
			 * manager) reaches the workers too: each stops and
			 * rolls back as a single run would. */
			for (size_t i = 0; i < next; i++)
				if (w[i].pid > 0)
					kill(w[i].pid, cli_interrupted());
			forwarded = true;
		}
		if (running > 0) {
			int wstatus;
			pid_t pid = waitpid(-1, &wstatus, 0);

			if (pid < 0 && errno == EINTR)
				continue;
			if (pid < 0) {
				/* No child left to wait for (cannot happen while
				 * any runs): report the running ones failed. */
				int e = errno;

				for (size_t i = 0; i < next; i++)
					if (w[i].pid > 0) {
						finish(&w[i], EXIT_ERROR << 8);
						append_err(&w[i].r, "%s: lost its worker: %s",
							   images[i], strerror(e));
					}
				running = 0;
			}
			for (size_t i = 0; i < next; i++)
				if (w[i].pid == pid) {
					finish(&w[i], wstatus);
					running--;
				}
		} else if (next < n) {
			/* Interrupted: what never started is reported so. */
			for (; next < n; next++) {
				w[next].r.image = images[next];
				finish(&w[next], EXIT_INTERRUPTED << 8);
				append_err(&w[next].r, "%s: interrupted before it started; nothing was written",
					   images[next]);
			}
		}
		for (; shown < n && w[shown].finished; shown++) {
			worst = fleet_worse(worst, w[shown].r.status);
			done(done_ctx, &w[shown].r);
			fflush(NULL);
			free(w[shown].r.out);
			free(w[shown].r.err);
		}
	}
	free(w);
	return worst;
}

/* The rank of an exit status: higher is worse. */
static int rank(int status)
{
	switch (status) {
	case EXIT_OK: return 0;
	case EXIT_REFUSED: return 1;
	case EXIT_ERROR: return 2;
	case EXIT_USAGE: return 3;
	case EXIT_MISMATCH: return 4;
	case EXIT_INTERRUPTED: return 5;
	}
	return 2;
}

int fleet_worse(int a, int b)
{
	return rank(b) > rank(a) ? b : a;
}

const char *fleet_status_name(int status)
{
	switch (status) {
	case EXIT_OK: return "ok";
	case EXIT_REFUSED: return "refused";
	case EXIT_USAGE: return "usage";
	case EXIT_MISMATCH: return "mismatch";
	case EXIT_INTERRUPTED: return "interrupted";
	}
	return "error";
}

unsigned fleet_default_jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

int fleet_parse_jobs(const char *cmd, const char *arg, unsigned *out)
{
	unsigned long long v;

	if (cli_parse_size(arg, &v) || v < 1 || v > 64) {
		cli_usage(cmd, "-j takes a number of images at a time (1-64), not '%s'", arg);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* ---- The source cache -------------------------------------------------- */

struct cached_source {
	char arch[16];
	uint32_t build;
	struct gp_source *src;  /* NULL: this build did not resolve */
};

static struct cached_source *cache;
static size_t cache_len;

static struct cached_source *cache_find(const char *arch, uint32_t build)
{
	for (size_t i = 0; i < cache_len; i++)
		if (cache[i].build == build && !strcasecmp(cache[i].arch, arch ? arch : ""))
			return &cache[i];
	return NULL;
}

/* The most a preloaded bundle may take: a quarter of the RAM. */
static uint64_t preload_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 4 : 0;
}

size_t fleet_sources_load(const struct session *tmpl, char **images, size_t n, bool preload)
{
	size_t loaded = 0;

	for (size_t i = 0; i < n; i++) {
		struct session s = *tmpl;
		struct session_guest g;
		struct gp_error err = { 0 };
		struct cached_source *c, *nc;
		const char *arch;
		int ret;

		s.image = images[i];
		s.disk = NULL;
		s.vol = NULL;
		s.src = NULL;
		s.quiet = true;
		if (session_open_image(&s, false, false, &err) != 0)
			continue;
		ret = session_guest(&s, &g, &err);
		session_close_image(&s, NULL);
		arch = g.f.arch[0] ? g.f.arch : NULL;
		if (ret || !g.known || strlen(g.f.arch) >= sizeof(c->arch) ||
		    cache_find(arch, g.build_num)) {
			gp_guest_facts_free(&g.f);
			continue;
		}
		nc = realloc(cache, (cache_len + 1) * sizeof(*cache));
		if (!nc) {
			gp_guest_facts_free(&g.f);
			break;
		}
		cache = nc;
		c = &cache[cache_len++];
		memset(c, 0, sizeof(*c));
		strcpy(c->arch, g.f.arch);
		c->build = g.build_num;
		s.quiet = tmpl->quiet;
		ret = session_open_source(&s, arch, g.build_num, &err);
		if (!ret && preload) {
			bool done;

			ret = gp_source_preload(s.src, preload_limit(), &done, &err);
		}
		if (!ret) {
			c->src = s.src;
			loaded++;
		} else {
			/* The workers open it themselves and report why. */
			gp_source_close(s.src);
		}
		gp_guest_facts_free(&g.f);
	}
	return loaded;
}

struct gp_source *fleet_source_for(const char *arch, uint32_t build)
{
	struct cached_source *c = cache_find(arch, build);

	return c ? c->src : NULL;
}

void fleet_sources_free(void)
{
	for (size_t i = 0; i < cache_len; i++)
		gp_source_close(cache[i].src);
	free(cache);
	cache = NULL;
	cache_len = 0;
}

/* ---- Output ------------------------------------------------------------ */

bool fleet_has_json(const struct fleet_result *r)
{
	struct json_object *o = r->out_len ? json_tokener_parse(r->out) : NULL;
	bool ok = o && json_object_is_type(o, json_type_object);

	json_object_put(o);
	return ok;
}

void fleet_print_json_line(const struct fleet_result *r)
{
	struct json_object *o = r->out_len ? json_tokener_parse(r->out) : NULL;

	if (o && json_object_is_type(o, json_type_object))
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		fwrite(r->out, 1, r->out_len, stdout);
	json_object_put(o);
}

const char *fleet_reason(const struct fleet_result *r, char *buf, size_t size)
{
	const char *p = r->err, *last = NULL;
	size_t k;

	buf[0] = '\0';
	for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
		if (!strncmp(p, "gpup: ", 6) && strncmp(p, "gpup: warning: ", 15)) {
			last = p + 6;
		} else if (*p == '{') {
			/* --progress=json: the last "error" event's message. */
			char *line = strndup(p, strcspn(p, "\n"));
			struct json_object *o = line ? json_tokener_parse(line) : NULL, *ev, *msg;

			free(line);
			if (o && json_object_object_get_ex(o, "event", &ev) &&
			    !strcmp(json_object_get_string(ev), "error") &&
			    json_object_object_get_ex(o, "message", &msg)) {
				snprintf(buf, size, "%s", json_object_get_string(msg));
				last = NULL;
			}
			json_object_put(o);
		}
	}
	if (last) {
		k = strcspn(last, "\n");
		if (k >= size)
			k = size - 1;
		memcpy(buf, last, k);
		buf[k] = '\0';
	}
	return buf;
}
