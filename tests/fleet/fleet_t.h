/*
 * fleet_t.h — what the fleet tests (scan, prepare IMAGE..., the shared
 * driver layer) share: hibernated guests, JSON lines, and reading the
 * injected files back without gpup.
 */
#ifndef GPUP_FLEET_T_H
#define GPUP_FLEET_T_H

#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define FT_NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"

/* A copy of the 2 GiB guest as @dir/@name with a hiberfil.sys that holds a
 * hibernation image ("hibr"): Windows was hibernated. */
static inline char *ft_hibernated_copy(const char *dir, const char *name)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", name);
	char *hib = t_strdup_printf("%s/hiberfil.sys", dir);
	struct t_run r;

	cr_assert_eq(t_write_file(hib, "hibr\0\0\0\0", 8), 0);
	t_gpup(&r, "put '%s' '%s' 'C:\\'", img, hib);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	free(hib);
	return img;
}

/* Parse @out as JSON lines into @objs (at most @max); every line must be
 * one object. Returns the count; the caller puts each. */
static inline size_t ft_json_lines(const char *out, struct json_object **objs, size_t max)
{
	size_t n = 0;

	for (const char *p = out; *p; ) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *line = strndup(p, len);

		cr_assert_lt(n, max, "more than %zu lines: %s", max, out);
		objs[n] = json_tokener_parse(line);
		cr_assert(objs[n] && json_object_is_type(objs[n], json_type_object),
			  "not one JSON object per line: %s", line);
		n++;
		free(line);
		p += len + (nl ? 1 : 0);
	}
	return n;
}

static inline struct json_object *ft_jget(struct json_object *o, const char *key)
{
	struct json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s", key,
		  json_object_to_json_string(o));
	return v;
}

static inline const char *ft_jstr(struct json_object *o, const char *key)
{
	return json_object_get_string(ft_jget(o, key));
}

static inline bool ft_jbool(struct json_object *o, const char *key)
{
	return json_object_get_boolean(ft_jget(o, key));
}

static inline int64_t ft_jint(struct json_object *o, const char *key)
{
	return json_object_get_int64(ft_jget(o, key));
}

/*
 * Read every file of @st's injection set for the NVIDIA GPU back from @img
 * without gpup -- qemu-img converts it to raw, dd cuts out the Windows
 * volume (@partfile: "OFFSET LENGTH" from mkguest.sh), ntfscat reads each
 * file -- and compare its SHA-256 with the host's file; ntfsfix -n finds
 * the volume consistent. Scratch files go to @dir. Returns the number of
 * files checked.
 */
static inline size_t ft_check_injected(const char *dir, const char *img, const char *st,
				       const char *partfile)
{
	struct json_object *root, *files;
	char *raw = t_strdup_printf("%s/check.raw", dir), *part = t_strdup_printf("%s/check.part", dir);
	unsigned long long off, len;
	FILE *f = fopen(partfile, "r");
	struct t_run r;
	size_t n;

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%llu %llu", &off, &len), 2);
	fclose(f);
	t_gpup(&r, "drivers --driverstore '%s' --gpu '" FT_NV_GPU "' --json", st);
	cr_assert_eq(r.status, 0, "%s", r.err);
	root = json_tokener_parse(r.out);
	t_run_free(&r);
	files = ft_jget(ft_jget(root, "injection"), "files");
	t_run(&r, "qemu-img convert -O raw '%s' '%s' && dd if='%s' of='%s' bs=1M skip=%llu "
		  "count=%llu conv=sparse status=none && rm -f '%s'", img, raw, raw, part, off >> 20,
	      len >> 20, raw);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	n = json_object_array_length(files);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(files, i);
		char want[65];

		cr_assert_eq(t_sha256_file(ft_jstr(e, "source_path"), want), 0);
		t_run(&r, "ntfscat -f '%s' '/%s' | sha256sum | cut -c1-64", part,
		      ft_jstr(e, "guest_path"));
		cr_assert_eq(strncmp(r.out, want, 64), 0, "%s: %s: ntfscat reads other bytes",
			     img, ft_jstr(e, "guest_path"));
		t_run_free(&r);
	}
	t_run(&r, "ntfsfix -n '%s'", part);
	cr_assert_eq(r.status, 0, "ntfsfix -n: %s%s", r.out, r.err);
	t_run_free(&r);
	json_object_put(root);
	unlink(part);
	free(part);
	free(raw);
	return n;
}

#endif
