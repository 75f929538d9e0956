/*
 * prepare_many.c — `gpup prepare IMAGE... [-j N]`: the single-image
 * transaction of cmd_prepare.c, run once per image in a pool of worker
 * processes (fleet.h). The driver source is resolved once per guest build
 * before the workers start, and each worker inherits it; one image's
 * refusal or failure does not stop the others; the exit status is the
 * worst of them.
 *
 * Output: each image's own report, whole and in the order the images were
 * given (with --json one line per image: the single-image object, or its
 * failure object), then a summary:
 *   { "schema", "command": "prepare", "summary": { "images", "ok",
 *     "refused", "failed", "exit_status",
 *     "results": [{ "image", "exit_status", "result", "reason" }] } }
 * ("result": ok, refused, error, mismatch, interrupted; "reason": the
 * failure's message or null).
 */
#include "prepare_many.h"

#include <stdlib.h>
#include <string.h>

#include "fleet.h"

struct many {
	bool json;
	struct json_object *results;
	size_t ok, refused, failed;
};

static void done(void *ctx, const struct fleet_result *r)
{
	struct many *m = ctx;
	struct json_object *o = json_object_new_object();
	char reason[512];

	fleet_reason(r, reason, sizeof(reason));
	if (m->json && !fleet_has_json(r)) {
		/* Never started, or died: still one line for the image, the
		 * failure object of a single run (cli.h). */
		struct json_object *f = session_json_new("prepare"), *e = json_object_new_object();

		json_object_object_add(f, "image", json_object_new_string(r->image));
		json_object_object_add(e, "code", json_object_new_string(gp_status_id(
			r->status == EXIT_INTERRUPTED ? GP_ERR_ABORTED : GP_ERR_IO)));
		json_object_object_add(e, "exit_status", json_object_new_int(r->status));
		json_object_object_add(e, "message", json_object_new_string(
			reason[0] ? reason : "the worker printed no report"));
		json_object_object_add(f, "error", e);
		json_object_object_add(f, "image_changed", json_object_new_boolean(false));
		puts(json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(f);
	} else if (m->json) {
		fleet_print_json_line(r);
	} else {
		printf("==> %s <==\n", r->image);
		fwrite(r->out, 1, r->out_len, stdout);
	}
	/* The image's warnings and failure, after its report. */
	fwrite(r->err, 1, r->err_len, stderr);
	if (r->status == EXIT_OK)
		m->ok++;
	else if (r->status == EXIT_REFUSED)
		m->refused++;
	else
		m->failed++;
	json_object_object_add(o, "image", json_object_new_string(r->image));
	json_object_object_add(o, "exit_status", json_object_new_int(r->status));
	json_object_object_add(o, "result", json_object_new_string(fleet_status_name(r->status)));
	json_object_object_add(o, "reason", r->status && reason[0] ? json_object_new_string(reason)
								   : NULL);
	json_object_array_add(m->results, o);
}

static void summary_human(const struct many *m, int worst)
{
	size_t n = json_object_array_length(m->results), w = 5;

	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(m->results, i), *v;

		json_object_object_get_ex(o, "image", &v);
		if (strlen(json_object_get_string(v)) > w)
			w = strlen(json_object_get_string(v));
	}
	printf("\n%-*s  %s\n", (int)w, "IMAGE", "RESULT");
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(m->results, i), *img, *res, *why;

		json_object_object_get_ex(o, "image", &img);
		json_object_object_get_ex(o, "result", &res);
		json_object_object_get_ex(o, "reason", &why);
		printf("%-*s  %s%s%s\n", (int)w, json_object_get_string(img), json_object_get_string(res),
		       why ? ": " : "", why ? json_object_get_string(why) : "");
	}
	printf("%zu images: %zu ok, %zu refused, %zu failed (exit status %d)\n", n, m->ok,
	       m->refused, m->failed, worst);
}

int prepare_many(const struct session *s, char **images, size_t n, unsigned jobs,
		 int (*one)(void *ctx, const char *image), void *ctx)
{
	struct many m = { .json = s->json, .results = json_object_new_array() };
	int worst;

	fleet_sources_load(s, images, n, true);
	worst = fleet_run(images, n, jobs, one, ctx, done, &m);
	fleet_sources_free();
	if (s->json) {
		struct json_object *o = session_json_new("prepare"), *sum = json_object_new_object();

		json_object_object_add(sum, "images", json_object_new_int64((int64_t)n));
		json_object_object_add(sum, "ok", json_object_new_int64((int64_t)m.ok));
		json_object_object_add(sum, "refused", json_object_new_int64((int64_t)m.refused));
		json_object_object_add(sum, "failed", json_object_new_int64((int64_t)m.failed));
		json_object_object_add(sum, "exit_status", json_object_new_int(worst));
		json_object_object_add(sum, "results", m.results);
		json_object_object_add(o, "summary", sum);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		summary_human(&m, worst);
		json_object_put(m.results);
	}
	return worst;
}
