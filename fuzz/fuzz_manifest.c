/*
 * fuzz_manifest.c — the bundle manifest parser and validator
 * (gp_bundle_manifest_parse(): JSON via json-c, then every field and the
 * guest-path rules), and the serializer on what was accepted: a manifest
 * that parses must serialize, and the result must parse again (the
 * round trip gpup relies on when it re-creates a bundle).
 * Seeds: fuzz/corpus/manifest (manifests gpup wrote).
 * Inputs are capped at 1 MiB (GP_BUNDLE_MAX_MANIFEST_SIZE is larger, but
 * no rule needs a big manifest).
 */
#include <stdlib.h>
#include <string.h>

#include "bundle_priv.h"
#include "fuzz.h"

int fuzz_manifest(const uint8_t *data, size_t size)
{
	struct gp_error err = { 0 };
	struct gp_bundle_manifest *m, *m2;
	enum gp_bundle_path_kind kind;
	const char *folder, *why;
	size_t folder_len, len;
	uint8_t(*sha)[32];
	char *text;

	if (size > (1u << 20))
		return 0;
	/* The path rules alone, on the input as one NUL-terminated path. */
	text = strndup((const char *)data, size < 4096 ? size : 4096);
	if (text) {
		(void)gp_bundle_path_check(text, &kind, &folder, &folder_len, &why);
		free(text);
	}
	if (gp_bundle_manifest_parse((const char *)data, size, (uint64_t)size * 4 + 4096,
				     "fuzz.tar", &m, &err) != 0)
		return 0;
	sha = calloc(m->set.count ? m->set.count : 1, sizeof(*sha));
	for (size_t i = 0; sha && i < m->set.count; i++)
		memcpy(sha[i], m->set.files[i].sha256, 32);
	if (sha && gp_bundle_manifest_serialize(&m->set, (const uint8_t(*)[32])sha,
						(const char *const *)m->hwids, m->n_hwids, m->gpu,
						m->inf_text, m->inf_len, m->tool_version, &text,
						&len, &err) == 0) {
		/* "The result always parses back" (bundle_priv.h). */
		if (gp_bundle_manifest_parse(text, len, (uint64_t)len * 4 + 4096, "fuzz2.tar",
					     &m2, &err) != 0)
			abort();
		gp_bundle_manifest_free(m2);
		free(text);
	}
	free(sha);
	gp_bundle_manifest_free(m);
	return 0;
}

#ifndef GP_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_manifest(data, size);
}
#endif
