/*
 * fixup.c — the guest fix-ups of `prepare --fixup`. See fixup.h.
 */
#include "fixup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hive.h"
#include "inf.h"
#include "manifest_priv.h"

static const struct gp_fixup_desc fixups[] = {
	{ GP_FIXUP_NVLDDMKM_SERVICE,
	  "the NVIDIA kernel driver's service key in the guest registry, which some "
	  "applications (Diablo IV, DaVinci Resolve) need to start" },
	{ GP_FIXUP_NGX_JUNCTION,
	  "a junction from the guest's DriverStore\\FileRepository\\<package> to its HostDriverStore "
	  "copy, where NVIDIA's NGX loader (DLSS) looks for the driver's files" },
};

size_t gp_fixup_count(void)
{
	return sizeof(fixups) / sizeof(fixups[0]);
}

const struct gp_fixup_desc *gp_fixup_at(size_t i)
{
	return i < gp_fixup_count() ? &fixups[i] : NULL;
}

const struct gp_fixup_desc *gp_fixup_find(const char *name)
{
	for (size_t i = 0; i < gp_fixup_count(); i++)
		if (!strcmp(fixups[i].name, name))
			return &fixups[i];
	return NULL;
}

void gp_fixup_plan_free(struct gp_fixup_plan *fp)
{
	if (!fp)
		return;
	for (size_t i = 0; i < fp->n_want; i++)
		free(fp->want[i].data);
	for (size_t i = 0; i < fp->reg.n_values; i++) {
		free(fp->reg.values[i].name);
		free(fp->reg.values[i].data);
	}
	free(fp->reg.values);
	free(fp->hive);
	memset(fp, 0, sizeof(*fp));
}

/* ---- nvlddmkm-service ---------------------------------------------------- */

/* The service-install section of the INF's "AddService = nvlddmkm, flags,
 * section" line, or NULL. */
static const struct gp_inf_section *service_section(const struct gp_inf *inf)
{
	for (size_t i = 0; i < gp_inf_section_count(inf); i++) {
		const struct gp_inf_section *sec = gp_inf_section_at(inf, i);

		for (size_t k = 0; k < sec->n_lines; k++) {
			const struct gp_inf_line *l = &sec->lines[k];

			if (l->key && !strcasecmp(l->key, "AddService") && l->n_values >= 3 &&
			    !strcasecmp(l->values[0], "nvlddmkm"))
				return gp_inf_section(inf, l->values[2]);
		}
	}
	return NULL;
}

static int add_dword(struct gp_fixup_plan *fp, const char *name, const char *text, bool *bad)
{
	char *end;
	unsigned long n = strtoul(text, &end, 0);
	uint8_t *d = malloc(4);

	if (!d)
		return GP_ERR_NOMEM;
	*bad = end == text || *end || n > 0xffffffffUL;
	d[0] = (uint8_t)n;
	d[1] = (uint8_t)(n >> 8);
	d[2] = (uint8_t)(n >> 16);
	d[3] = (uint8_t)(n >> 24);
	fp->want[fp->n_want++] = (struct gp_fixup_value){ name, GP_REG_DWORD, d, 4 };
	return 0;
}

/* ServiceBinary "%13%\nvlddmkm.sys" as the registry's ImagePath. */
static int image_path(const char *binary, const char *folder, char **out, struct gp_error *err)
{
	static const struct {
		const char *dirid;
		const char *path;
	} dirids[] = {
		{ "%13%", NULL }, /* the package's store folder: HostDriverStore in a guest */
		{ "%12%", "\\SystemRoot\\System32\\drivers" },
		{ "%11%", "\\SystemRoot\\System32" },
	};

	for (size_t i = 0; i < sizeof(dirids) / sizeof(dirids[0]); i++) {
		size_t n = strlen(dirids[i].dirid);
		int r;

		if (strncmp(binary, dirids[i].dirid, n))
			continue;
		r = dirids[i].path ? asprintf(out, "%s%s", dirids[i].path, binary + n)
				   : asprintf(out, "\\SystemRoot\\System32\\HostDriverStore\\"
						   "FileRepository\\%s%s", folder, binary + n);
		return r < 0 ? gp_error_set(err, GP_ERR_NOMEM, "out of memory") : 0;
	}
	return gp_error_set(err, GP_ERR_CORRUPT,
			    "ServiceBinary '%s' of nvlddmkm: a directory gpup cannot place in a guest "
			    "(known: %%13%%, %%12%%, %%11%%)", binary);
}

/* The values the INF gives for the service. */
static int service_values(const struct gp_package *pkg, struct gp_fixup_plan *fp,
			  struct gp_error *err)
{
	static const struct {
		const char *inf_key, *reg_name;
	} dwords[] = {
		{ "ServiceType", "Type" }, { "StartType", "Start" }, { "ErrorControl", "ErrorControl" },
	};
	const struct gp_inf_section *sec;
	const struct gp_inf_line *l;
	struct gp_inf *inf;
	char *path = NULL;
	int ret;

	ret = gp_inf_load(pkg->inf_path, &inf, err);
	if (ret)
		return ret;
	sec = service_section(inf);
	if (!sec) {
		ret = gp_error_set(err, GP_ERR_CORRUPT,
				   "%s: no 'AddService = nvlddmkm, flags, section' whose section exists; "
				   "--fixup %s takes the service's values from it", pkg->inf_name,
				   GP_FIXUP_NVLDDMKM_SERVICE);
		goto out;
	}
	for (size_t i = 0; !ret && i < sizeof(dwords) / sizeof(dwords[0]); i++) {
		bool bad;

		l = gp_inf_line(sec, dwords[i].inf_key);
		if (!l || !l->n_values) {
			if (strcmp(dwords[i].inf_key, "ErrorControl"))
				ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: [%s] has no %s", pkg->inf_name,
						   sec->name, dwords[i].inf_key);
			continue;
		}
		ret = add_dword(fp, dwords[i].reg_name, l->values[0], &bad);
		if (ret)
			ret = gp_error_set(err, ret, "out of memory");
		else if (bad)
			ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: [%s] %s = '%s' is not a number",
					   pkg->inf_name, sec->name, dwords[i].inf_key, l->values[0]);
	}
	l = gp_inf_line(sec, "LoadOrderGroup");
	if (!ret && l && l->n_values) {
		struct gp_fixup_value *w = &fp->want[fp->n_want];

		ret = gp_hive_utf16(l->values[0], &w->data, &w->len, err);
		if (!ret) {
			w->name = "Group";
			w->type = GP_REG_SZ;
			fp->n_want++;
		}
	}
	l = gp_inf_line(sec, "ServiceBinary");
	if (!ret && (!l || !l->n_values))
		ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: [%s] has no ServiceBinary", pkg->inf_name,
				   sec->name);
	if (!ret)
		ret = image_path(l->values[0], pkg->folder, &path, err);
	if (!ret) {
		struct gp_fixup_value *w = &fp->want[fp->n_want];

		ret = gp_hive_utf16(path, &w->data, &w->len, err);
		if (!ret) {
			w->name = "ImagePath";
			w->type = GP_REG_EXPAND_SZ;
			fp->n_want++;
		}
	}
out:
	free(path);
	gp_inf_free(inf);
	return ret;
}

/* Compare each wanted value with the hive's, record the state before and
 * set it: fp->hive holds the new hive when anything differs. */
static int plan_service(struct gp_ntfs *v, const struct gp_inject_set *set,
			struct gp_inject_report *rep, struct gp_fixup_plan *fp, struct gp_error *err)
{
	struct gp_hive *h = NULL;
	uint8_t *buf = NULL;
	size_t len;
	char cs[32];
	bool side = false;
	int ret;

	if (!set->pkg->provider || !strcasestr(set->pkg->provider, "NVIDIA"))
		return gp_error_set(err, GP_ERR_UNSUPPORTED,
				    "--fixup %s is for NVIDIA display drivers; %s is from '%s'",
				    GP_FIXUP_NVLDDMKM_SERVICE, set->pkg->folder,
				    set->pkg->provider ? set->pkg->provider : "");
	ret = service_values(set->pkg, fp, err);
	if (!ret)
		ret = gp_manifest_read_hive(v, GP_FIXUP_SYSTEM_HIVE, &buf, &len, &side, err);
	if (!ret)
		ret = gp_hive_open(buf, len, GP_FIXUP_SYSTEM_HIVE, &h, err);
	if (!ret)
		ret = gp_hive_current_control_set(h, cs, sizeof(cs), err);
	if (ret)
		goto out;
	snprintf(fp->key, sizeof(fp->key), "%s\\Services\\nvlddmkm", cs);
	fp->reg.hive = (char *)GP_FIXUP_SYSTEM_HIVE;
	fp->reg.key = fp->key;
	if (!gp_hive_has_key(h, fp->key)) {
		/* The record names the top-most key this run creates: unprepare
		 * removes it, and no empty parent stays behind. */
		char *sep = fp->key;

		snprintf(fp->created_key, sizeof(fp->created_key), "%s", fp->key);
		while ((sep = strchr(sep + 1, '\\'))) {
			*sep = '\0';
			if (!gp_hive_has_key(h, fp->key)) {
				snprintf(fp->created_key, sizeof(fp->created_key), "%s", fp->key);
				*sep = '\\';
				break;
			}
			*sep = '\\';
		}
		fp->reg.key = fp->created_key;
		fp->reg.key_created = true;
	}
	for (size_t i = 0; !ret && i < fp->n_want; i++) {
		const struct gp_fixup_value *w = &fp->want[i];
		struct gp_manifest_reg_value rv = { .name = (char *)w->name };
		uint8_t *have = NULL;
		size_t have_len;
		bool found;

		ret = gp_hive_get(h, fp->key, w->name, &found, &rv.type, &have, &have_len, err);
		if (!ret && found && rv.type == w->type && have_len == w->len &&
		    !memcmp(have, w->data, w->len)) {
			free(have);
			continue;
		}
		rv.existed = found;
		rv.data = have;
		rv.len = found ? have_len : 0;
		if (!ret && gp_manifest_add_reg_value(&fp->reg, &rv))
			ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		free(have);
		if (!ret)
			ret = gp_hive_set(h, fp->key, w->name, w->type, w->data, w->len, err);
		fp->n_changed++;
	}
	if (!ret && !fp->n_changed && side) {
		/* A killed run's complete new hive: SYSTEM itself may be half
		 * rewritten, so it is written again. */
		fp->hive = buf;
		fp->hive_len = len;
		buf = NULL;
	} else if (!ret && fp->n_changed) {
		ret = gp_hive_bytes(h, &fp->hive, &fp->hive_len, err);
	}
	if (!ret && fp->hive) {
		struct gp_ntfs_stat st;

		/* The side copy, then the hive itself rewritten in place. */
		gp_ntfs_space_add_file(v, &rep->space, "SYSTEM.gpup-new", fp->hive_len, true, 0);
		if (gp_ntfs_stat(v, GP_FIXUP_SYSTEM_HIVE, &st) == 0)
			gp_ntfs_space_add_file(v, &rep->space, "SYSTEM", fp->hive_len, false,
					       st.allocated);
		gp_ntfs_clear_error(v);
	}
out:
	gp_hive_close(h);
	free(buf);
	return ret;
}

/* ngx-junction: nothing to do when the junction is there with this
 * target; a missing one (or an empty plain directory a killed run left
 * before it became a junction) is made. */
static int plan_junction(struct gp_ntfs *v, const struct gp_inject_set *set,
			 struct gp_inject_report *rep, struct gp_fixup_plan *fp, struct gp_error *err)
{
	struct gp_ntfs_stat st;
	char *target = NULL;
	int ret;

	snprintf(fp->junction, sizeof(fp->junction), "Windows/System32/DriverStore/FileRepository/%s",
		 set->pkg->folder);
	snprintf(fp->junction_target, sizeof(fp->junction_target),
		 "C:\\Windows\\System32\\HostDriverStore\\FileRepository\\%s", set->pkg->folder);
	ret = gp_ntfs_stat(v, fp->junction, &st);
	if (ret == GP_ERR_NOTFOUND) {
		gp_ntfs_clear_error(v);
		gp_ntfs_space_add_dir(&rep->space, set->pkg->folder);
		rep->space.n_parents++;
		fp->junction_new = true;
		return 0;
	}
	if (ret)
		return gp_error_copy(err, gp_ntfs_error(v));
	if (st.attributes & GP_NTFS_ATTR_REPARSE) {
		ret = gp_ntfs_junction_target(v, fp->junction, &target);
		if (!ret && !strcasecmp(target, fp->junction_target)) {
			free(target);
			return 0;
		}
		free(target);
		gp_ntfs_clear_error(v);
	} else if (st.is_dir) {
		uint64_t bytes = 1;
		bool empty = gp_inject_tree_size(v, fp->junction, &bytes, err) == 0 && bytes == 0;

		gp_error_clear(err);
		if (empty) {
			fp->junction_new = true;
			return 0;
		}
	}
	return gp_error_set(err, GP_ERR_EXISTS,
			    "%s exists and is not a junction to %s (the driver installed in the guest "
			    "itself?); --fixup %s leaves it alone", fp->junction, fp->junction_target,
			    GP_FIXUP_NGX_JUNCTION);
}

static int commit_fixups(void *ctx, struct gp_ntfs *v, struct gp_error *err)
{
	struct gp_fixup_plan *fp = ctx;
	int ret = 0;

	if (fp->junction_new && gp_ntfs_make_junction(v, fp->junction, fp->junction_target))
		ret = gp_error_copy(err, gp_ntfs_error(v));
	if (!ret && fp->hive)
		ret = gp_manifest_write_hive(v, GP_FIXUP_SYSTEM_HIVE, fp->hive, fp->hive_len, err);
	return ret;
}

int gp_fixup_plan(struct gp_ntfs *v, const struct gp_inject_set *set, const char *const *names,
		  size_t n_names, struct gp_inject_report *rep, struct gp_fixup_plan *fp,
		  struct gp_error *err)
{
	int ret = 0;

	memset(fp, 0, sizeof(*fp));
	for (size_t i = 0; i < n_names && fp->n_names < sizeof(fp->names) / sizeof(fp->names[0]);
	     i++) {
		bool dup = false;

		for (size_t k = 0; k < fp->n_names; k++)
			dup |= !strcmp(fp->names[k], names[i]);
		if (dup)
			continue;
		fp->names[fp->n_names++] = names[i];
		if (!strcmp(names[i], GP_FIXUP_NVLDDMKM_SERVICE) && !ret) {
			fp->service = true;
			ret = plan_service(v, set, rep, fp, err);
		} else if (!strcmp(names[i], GP_FIXUP_NGX_JUNCTION) && !ret) {
			ret = plan_junction(v, set, rep, fp, err);
		} else if (!gp_fixup_find(names[i])) {
			ret = gp_error_set(err, GP_ERR_INVALID, "unknown fix-up '%s'", names[i]);
		}
	}
	if (ret)
		return ret;
	fp->extra.fixups = fp->names;
	fp->extra.n_fixups = fp->n_names;
	/* Only a change is recorded: a fix-up already in place leaves the
	 * record as it is. */
	fp->extra.regs = fp->n_changed ? &fp->reg : NULL;
	fp->extra.n_regs = fp->n_changed ? 1 : 0;
	fp->junction_dirs[0] = fp->junction;
	fp->extra.dirs = fp->junction_new ? fp->junction_dirs : NULL;
	fp->extra.n_dirs = fp->junction_new ? 1 : 0;
	fp->extra.changes = fp->hive != NULL || fp->junction_new;
	fp->extra.commit = commit_fixups;
	fp->extra.ctx = fp;
	return 0;
}
