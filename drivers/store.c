/* store.c — finding a host's FileRepository and reading every package's INF
 * into a struct gp_package. See store.h. Resolution lives in resolve.c, the
 * injection set in inject.c. */
#include "store_priv.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "inf.h"

/* ---- small helpers shared with resolve.c / inject.c --------------------- */

char *gp_path_join(const char *a, const char *b)
{
	char *s = NULL;
	size_t la = strlen(a);

	if (asprintf(&s, "%s%s%s", a, la && a[la - 1] == '/' ? "" : "/", b) < 0)
		return NULL;
	return s;
}

bool gp_str_ieq(const char *a, const char *b)
{
	return a && b && strcasecmp(a, b) == 0;
}

int gp_find_child_ci(const char *dir, const char *name, char **out)
{
	DIR *d;
	struct dirent *e;
	char *exact = gp_path_join(dir, name), *found = NULL;
	struct stat st;

	*out = NULL;
	if (!exact)
		return GP_ERR_NOMEM;
	if (lstat(exact, &st) == 0) {
		*out = exact;
		return 0;
	}
	free(exact);
	d = opendir(dir);
	if (!d)
		return GP_ERR_NOTFOUND;
	/* Several case variants can coexist on Linux; take the smallest name
	 * so that the answer does not depend on readdir order. */
	{
		char *best = NULL;
		while ((e = readdir(d))) {
			if (strcasecmp(e->d_name, name) != 0)
				continue;
			if (!best || strcmp(e->d_name, best) < 0) {
				free(best);
				best = strdup(e->d_name);
				if (!best) {
					closedir(d);
					return GP_ERR_NOMEM;
				}
			}
		}
		closedir(d);
		if (!best)
			return GP_ERR_NOTFOUND;
		found = gp_path_join(dir, best);
		free(best);
	}
	if (!found)
		return GP_ERR_NOMEM;
	*out = found;
	return 0;
}

int gp_find_path_ci(const char *dir, const char *rel, char **out)
{
	char *cur = strdup(dir), *copy = strdup(rel), *save = NULL, *tok;
	int rc = 0;

	*out = NULL;
	if (!cur || !copy) {
		free(cur);
		free(copy);
		return GP_ERR_NOMEM;
	}
	for (char *p = copy; *p; p++)
		if (*p == '\\')
			*p = '/';
	for (tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		char *next;
		if (strcmp(tok, ".") == 0 || strcmp(tok, "..") == 0) {
			rc = GP_ERR_NOTFOUND;
			break;
		}
		rc = gp_find_child_ci(cur, tok, &next);
		if (rc)
			break;
		free(cur);
		cur = next;
	}
	free(copy);
	if (rc) {
		free(cur);
		return rc;
	}
	*out = cur;
	return 0;
}

int gp_package_cmp_version(const struct gp_package *a, const struct gp_package *b)
{
	if (a->date_key != b->date_key)
		return a->date_key < b->date_key ? -1 : 1;
	for (int i = 0; i < 4; i++)
		if (a->version[i] != b->version[i])
			return a->version[i] < b->version[i] ? -1 : 1;
	return 0;
}

/* ---- warnings ------------------------------------------------------------ */

static void store_warn(struct gp_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void store_warn(struct gp_store *s, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL, **w;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg)
		return;
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	w = realloc(s->warnings, (s->n_warnings + 1) * sizeof(*w));
	if (!w) {
		free(msg);
		return;
	}
	s->warnings = w;
	w[s->n_warnings++] = msg;
}

/* ---- locating FileRepository -------------------------------------------- */

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *base_name(const char *p)
{
	const char *b = strrchr(p, '/');

	return b ? b + 1 : p;
}

/* @path with its last component removed (malloc'ed), or NULL at the root. */
static char *parent_dir(const char *path)
{
	const char *b = strrchr(path, '/');

	if (!b || b == path)
		return NULL;
	return strndup(path, (size_t)(b - path));
}

/* Walk down @names from @dir, case-insensitively; NULL when absent. */
static char *descend(const char *dir, const char *const *names, size_t n)
{
	char *cur = strdup(dir);

	for (size_t i = 0; cur && i < n; i++) {
		char *next = NULL;
		gp_find_child_ci(cur, names[i], &next);
		free(cur);
		cur = next;
	}
	if (cur && !is_dir(cur)) {
		free(cur);
		cur = NULL;
	}
	return cur;
}

/* Does a directory hold a `<name>.inf_<arch>_<hash>` folder? Used to accept
 * a FileRepository copy that was renamed. */
static bool has_package_folder(const char *dir);

/* Find FileRepository and the Windows directory from whatever @root is. */
static int locate(struct gp_store *s, const char *root, struct gp_error *err)
{
	static const char *const from_root[] = { "Windows", "System32", "DriverStore", "FileRepository" };
	char *real = realpath(root, NULL);
	const char *bn;
	int rc = 0;

	if (!real) {
		int e = errno;
		return gp_error_set_errno(err, e == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, e,
					  "%s", root);
	}
	if (!is_dir(real)) {
		rc = gp_error_set(err, GP_ERR_NOTFOUND, "%s: not a directory", root);
		goto out;
	}
	bn = base_name(real);
	/* Try the four shapes from the longest path down; the first one that
	 * exists decides, and tells how many levels up Windows is. */
	for (size_t skip = 0; skip < 4; skip++) {
		char *repo = descend(real, from_root + skip, 4 - skip);
		if (!repo)
			continue;
		/* @root itself must be what the skipped components say, except
		 * for skip == 0 (a host root, any name). */
		s->repo_dir = repo;
		if (skip == 0) {
			s->windows_dir = descend(real, from_root, 1);
		} else if (skip == 1) {
			s->windows_dir = strdup(real);
		} else {
			/* System32 or DriverStore given: Windows is 1 or 2 up,
			 * if the names agree. */
			char *up = strdup(real);
			for (size_t k = skip; up && k > 1; k--) {
				char *p = parent_dir(up);
				free(up);
				up = p;
			}
			if (up && strcasecmp(base_name(up), "Windows") == 0)
				s->windows_dir = up;
			else
				free(up);
		}
		goto out;
	}
	/* @root is FileRepository itself (or a copy of it under any name). */
	if (strcasecmp(bn, "FileRepository") == 0 || has_package_folder(real)) {
		char *p1 = parent_dir(real), *p2 = p1 ? parent_dir(p1) : NULL,
		     *p3 = p2 ? parent_dir(p2) : NULL;
		s->repo_dir = strdup(real);
		if (p3 && p1 && p2 && strcasecmp(base_name(p1), "DriverStore") == 0 &&
		    strcasecmp(base_name(p2), "System32") == 0 &&
		    strcasecmp(base_name(p3), "Windows") == 0) {
			s->windows_dir = p3;
			p3 = NULL;
		}
		free(p1);
		free(p2);
		free(p3);
		goto out;
	}
	rc = gp_error_set(err, GP_ERR_NOTFOUND,
			  "%s: no DriverStore found (looked for Windows/System32/DriverStore/"
			  "FileRepository, any case, at and below it)", root);
out:
	free(real);
	if (!rc && !s->repo_dir)
		rc = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", root);
	return rc;
}

/* The INF part may itself contain '_' and '.', so ".inf_" is searched for
 * from the left. */
/* The first C0/DEL/C1 control character of @name (as a code point), or 0. */
static unsigned control_char(const char *name)
{
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		if (*c < 0x20 || *c == 0x7f)
			return *c;
		if (c[0] == 0xc2 && c[1] >= 0x80 && c[1] < 0xa0)
			return c[1];
	}
	return 0;
}

bool gp_package_folder_name(const char *name, char **inf, char **arch)
{
	const char *p = strcasestr(name, ".inf_"), *a, *u;

	/* Windows names package folders from the INF's file name; a control
	 * character in one is a damaged or hostile store, and the name would
	 * reach INF paths, registry values and the terminal. */
	if (!p || p == name || control_char(name))
		return false;
	a = p + 5;
	u = strchr(a, '_');
	if (!u || u == a || !u[1])
		return false;
	*inf = strndup(name, (size_t)(p - name) + 4);
	*arch = strndup(a, (size_t)(u - a));
	for (char *c = *arch; c && *c; c++)
		*c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
	return *inf && *arch;
}

static bool has_package_folder(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		char *inf = NULL, *arch = NULL;
		found = gp_package_folder_name(e->d_name, &inf, &arch);
		free(inf);
		free(arch);
	}
	closedir(d);
	return found;
}

/* ---- one package --------------------------------------------------------- */

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static void free_package(struct gp_package *p)
{
	if (!p)
		return;
	free(p->folder);
	free(p->dir_path);
	free(p->inf_name);
	free(p->inf_path);
	free(p->arch);
	free(p->class_name);
	free(p->class_guid);
	free(p->provider);
	free(p->driver_ver_date);
	free(p->driver_ver_version);
	free(p->catalog_file);
	for (size_t i = 0; i < p->n_copyinf; i++)
		free(p->copyinf[i]);
	free(p->copyinf);
	for (size_t i = 0; i < p->n_targets; i++) {
		free(p->targets[i].decoration);
		free(p->targets[i].models_section);
		free(p->targets[i].arch);
	}
	free(p->targets);
	for (size_t i = 0; i < p->n_models; i++) {
		free(p->models[i].description);
		free(p->models[i].install_section);
		for (size_t j = 0; j < p->models[i].n_ids; j++)
			free(p->models[i].ids[j]);
		free(p->models[i].ids);
	}
	free(p->models);
	free(p);
}

/* "MM/DD/YYYY" -> YYYYMMDD; 0 if malformed. */
static uint64_t parse_date(const char *s)
{
	unsigned m, d, y;
	char tail;

	if (!s || sscanf(s, "%u/%u/%u%c", &m, &d, &y, &tail) != 3)
		return 0;
	if (m < 1 || m > 12 || d < 1 || d > 31 || y < 1980 || y > 9999)
		return 0;
	return (uint64_t)y * 10000 + m * 100 + d;
}

/* "a.b.c.d" -> four numbers (missing parts 0). */
static void parse_version(const char *s, uint16_t v[4])
{
	memset(v, 0, 4 * sizeof(*v));
	for (int i = 0; s && *s && i < 4; i++) {
		char *end;
		unsigned long n = strtoul(s, &end, 10);
		if (end == s)
			break;
		v[i] = n > 65535 ? 65535 : (uint16_t)n;
		if (*end != '.')
			break;
		s = end + 1;
	}
}

/* Parse the number fields of a TargetOS decoration after the arch.
 * "10.0...17098": empty fields are 0. Numbers may be hex (0x...). */
static void parse_os_numbers(const char *s, struct gp_target_os *t)
{
	uint32_t *f[5] = { &t->major, &t->minor, &t->product_type, &t->suite_mask, &t->build };

	for (int i = 0; i < 5 && s; i++) {
		char *end;
		unsigned long n = strtoul(s, &end, 0);
		*f[i] = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
		s = strchr(s, '.');
		if (s)
			s++;
	}
}

/* A FeatureScore value: one hexadecimal byte, written "CF", "0xCF" or
 * "xFD" (Microsoft's own example); anything else counts as the default
 * 0xFF, the worst, as if the directive were absent. */
static uint8_t parse_feature_score(const char *s)
{
	unsigned long v;
	char *end;

	if ((s[0] == '0' && (s[1] == 'x' || s[1] == 'X')))
		s += 2;
	else if (s[0] == 'x' || s[0] == 'X')
		s++;
	if (!*s)
		return 0xFF;
	v = strtoul(s, &end, 16);
	return *end || v > 0xFF ? 0xFF : (uint8_t)v;
}

const struct gp_inf_section *gp_ddinstall_section(const struct gp_inf *inf, const char *base,
						  const char *arch)
{
	char name[512];
	const struct gp_inf_section *sec;

	snprintf(name, sizeof(name), "%s.NT%s", base, arch);
	if (strlen(base) + 3 + strlen(arch) < sizeof(name) && (sec = gp_inf_section(inf, name)))
		return sec;
	snprintf(name, sizeof(name), "%s.NT", base);
	if (strlen(base) + 3 < sizeof(name) && (sec = gp_inf_section(inf, name)))
		return sec;
	return gp_inf_section(inf, base);
}

static bool add_target(struct gp_package *p, const char *base, const char *deco, size_t mfg)
{
	struct gp_target_os *t, *a = realloc(p->targets, (p->n_targets + 1) * sizeof(*a));

	if (!a)
		return false;
	p->targets = a;
	t = &a[p->n_targets];
	memset(t, 0, sizeof(*t));
	t->mfg = mfg;
	t->decoration = xstrdup(deco);
	if (deco && *deco) {
		if (asprintf(&t->models_section, "%s.%s", base, deco) < 0)
			t->models_section = NULL;
	} else {
		t->models_section = xstrdup(base);
	}
	/* "NTamd64.10.0...17098": "NT", the arch up to '.', then numbers. */
	if (deco && strncasecmp(deco, "NT", 2) == 0) {
		const char *dot = strchr(deco + 2, '.');
		t->arch = strndup(deco + 2, dot ? (size_t)(dot - deco - 2) : strlen(deco + 2));
		for (char *c = t->arch; c && *c; c++)
			*c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
		if (dot)
			parse_os_numbers(dot + 1, t);
	} else {
		t->arch = xstrdup("");
	}
	p->n_targets++;
	return t->decoration && t->models_section && t->arch;
}

static bool add_model(struct gp_package *p, const struct gp_inf_line *l, size_t target)
{
	struct gp_model *m, *a = realloc(p->models, (p->n_models + 1) * sizeof(*a));

	if (!a)
		return false;
	p->models = a;
	m = &a[p->n_models];
	memset(m, 0, sizeof(*m));
	p->n_models++;
	m->target = target;
	m->lineno = l->lineno;
	m->feature_score = 0xFF;
	m->description = xstrdup(l->key);
	m->install_section = xstrdup(l->values[0]);
	m->ids = calloc(l->n_values, sizeof(*m->ids));
	if (!m->description || !m->install_section || !m->ids)
		return false;
	for (size_t i = 1; i < l->n_values; i++) {
		if (!*l->values[i])
			continue;
		m->ids[m->n_ids] = strdup(l->values[i]);
		if (!m->ids[m->n_ids])
			return false;
		m->n_ids++;
	}
	return true;
}

static bool add_copyinf(struct gp_package *p, const char *name)
{
	char **a;

	for (size_t i = 0; i < p->n_copyinf; i++)
		if (gp_str_ieq(p->copyinf[i], name))
			return true;
	a = realloc(p->copyinf, (p->n_copyinf + 1) * sizeof(*a));
	if (!a)
		return false;
	p->copyinf = a;
	a[p->n_copyinf] = strdup(name);
	return a[p->n_copyinf++] != NULL;
}

/* Fill @p from its parsed INF. Returns false on allocation failure. */
static bool read_package(struct gp_package *p, const struct gp_inf *inf)
{
	const struct gp_inf_section *man = gp_inf_section(inf, "Manufacturer");
	const struct gp_inf_line *dv = gp_inf_line(gp_inf_section(inf, "Version"), "DriverVer");

	p->class_name = xstrdup(gp_inf_get(inf, "Version", "Class"));
	p->class_guid = xstrdup(gp_inf_get(inf, "Version", "ClassGuid"));
	p->provider = xstrdup(gp_inf_get(inf, "Version", "Provider"));
	p->catalog_file = xstrdup(gp_inf_get(inf, "Version", "CatalogFile"));
	p->driver_ver_date = xstrdup(dv && dv->n_values > 0 ? dv->values[0] : NULL);
	p->driver_ver_version = xstrdup(dv && dv->n_values > 1 ? dv->values[1] : NULL);
	if (!p->class_name || !p->class_guid || !p->provider || !p->catalog_file ||
	    !p->driver_ver_date || !p->driver_ver_version)
		return false;
	for (char *c = p->class_guid; *c; c++)
		*c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
	p->date_key = parse_date(p->driver_ver_date);
	parse_version(p->driver_ver_version, p->version);
	p->is_display = strcmp(p->class_guid, GP_DISPLAY_CLASS_GUID) == 0;

	for (size_t i = 0; man && i < man->n_lines; i++) {
		const struct gp_inf_line *l = &man->lines[i];
		const char *base;

		/* "%Mfg% = ModelsSection[, TargetOS...]"; a line without '='
		 * names the models section directly. */
		if (!l->n_values || !*l->values[0])
			continue;
		base = l->values[0];
		if (l->n_values == 1) {
			if (!add_target(p, base, NULL, i))
				return false;
		}
		for (size_t k = 1; k < l->n_values; k++) {
			if (!*l->values[k])
				continue;
			if (!add_target(p, base, l->values[k], i))
				return false;
		}
	}
	for (size_t t = 0; t < p->n_targets; t++) {
		const struct gp_inf_section *ms = gp_inf_section(inf, p->targets[t].models_section);
		size_t before = p->n_models;
		for (size_t i = 0; ms && i < ms->n_lines; i++) {
			const struct gp_inf_line *l = &ms->lines[i];
			if (!l->key || l->n_values < 2 || !*l->values[0])
				continue;
			if (!add_model(p, l, t))
				return false;
		}
		p->targets[t].empty = p->n_models == before;
	}
	for (size_t m = 0; m < p->n_models; m++) {
		const struct gp_inf_section *dd = gp_ddinstall_section(inf, p->models[m].install_section,
								       p->arch);
		const struct gp_inf_line *fs = gp_inf_line(dd, "FeatureScore");

		p->models[m].no_install = dd == NULL;
		if (fs && fs->n_values)
			p->models[m].feature_score = parse_feature_score(fs->values[0]);
	}
	for (size_t si = 0; si < gp_inf_section_count(inf); si++) {
		const struct gp_inf_section *sec = gp_inf_section_at(inf, si);
		for (size_t i = 0; i < sec->n_lines; i++) {
			const struct gp_inf_line *l = &sec->lines[i];
			if (!l->key || !gp_str_ieq(l->key, "CopyINF"))
				continue;
			for (size_t k = 0; k < l->n_values; k++)
				if (*l->values[k] && !add_copyinf(p, l->values[k]))
					return false;
		}
	}
	return true;
}

/* One warning per install section that model lines name but the INF lacks
 * (a modded INF pointing 44 lines at a missing [R445]): Windows cannot
 * install from those lines, so the resolver never picks them. */
static void warn_missing_install_sections(struct gp_store *s, const struct gp_package *p)
{
	for (size_t m = 0; m < p->n_models; m++) {
		const struct gp_model *mo = &p->models[m];
		size_t more = 0;
		bool first = true;

		if (!mo->no_install)
			continue;
		for (size_t k = 0; k < p->n_models; k++) {
			if (!p->models[k].no_install ||
			    !gp_str_ieq(p->models[k].install_section, mo->install_section))
				continue;
			if (k < m)
				first = false;
			else if (k > m)
				more++;
		}
		if (!first)
			continue;
		if (more)
			store_warn(s, "%s: %s line %u (and %zu more model lines) names install "
				      "section [%s], which the INF does not have; Windows cannot install "
				      "from these lines, they are never chosen", p->folder, p->inf_name,
				   (unsigned)mo->lineno, more, mo->install_section);
		else
			store_warn(s, "%s: %s line %u names install section [%s], which the INF "
				      "does not have; Windows cannot install from this line, it is never "
				      "chosen", p->folder, p->inf_name, (unsigned)mo->lineno,
				   mo->install_section);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_package(struct gp_store *s, struct gp_package *p)
{
	struct gp_package **a = realloc(s->pkgs, (s->n_pkgs + 1) * sizeof(*a));

	if (!a)
		return GP_ERR_NOMEM;
	s->pkgs = a;
	a[s->n_pkgs++] = p;
	return 0;
}

/* Read one package folder; a bad INF is a warning, not an error. Returns
 * 0 (added or skipped) or GP_ERR_NOMEM. */
static int scan_folder(struct gp_store *s, const char *folder)
{
	struct gp_package *p = NULL;
	struct gp_inf *inf = NULL;
	struct gp_error ierr = { 0 };
	char *inf_name = NULL, *arch = NULL;
	int rc = 0;

	if (control_char(folder)) {
		store_warn(s, "%s: a package folder name holding control character 0x%02x; "
			   "package skipped", folder, control_char(folder));
		goto out;
	}
	if (!gp_package_folder_name(folder, &inf_name, &arch))
		goto out;   /* not a package folder: ignore it silently */
	p = calloc(1, sizeof(*p));
	if (!p) {
		rc = GP_ERR_NOMEM;
		goto out;
	}
	p->folder = strdup(folder);
	p->dir_path = gp_path_join(s->repo_dir, folder);
	p->arch = arch;
	arch = NULL;
	if (!p->folder || !p->dir_path) {
		rc = GP_ERR_NOMEM;
		goto out;
	}
	if (!is_dir(p->dir_path))
		goto out;
	rc = gp_find_child_ci(p->dir_path, inf_name, &p->inf_path);
	if (rc == GP_ERR_NOTFOUND) {
		store_warn(s, "%s: no %s in the package folder; package skipped", folder, inf_name);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	p->inf_name = strdup(base_name(p->inf_path));
	if (!p->inf_name) {
		rc = GP_ERR_NOMEM;
		goto out;
	}
	rc = gp_inf_load(p->inf_path, &inf, &ierr);
	if (rc == GP_ERR_NOMEM)
		goto out;
	if (rc) {
		store_warn(s, "%s: %s; package skipped", folder, gp_error_message(&ierr));
		rc = 0;
		goto out;
	}
	if (!gp_inf_section(inf, "Version")) {
		store_warn(s, "%s: %s has no [Version] section, not a driver INF; package skipped",
			   folder, p->inf_name);
		goto out;
	}
	if (!read_package(p, inf)) {
		rc = GP_ERR_NOMEM;
		goto out;
	}
	if (p->is_display && p->n_models == 0)
		store_warn(s, "%s: display driver INF without models (no [Manufacturer] entries)",
			   folder);
	warn_missing_install_sections(s, p);
	rc = add_package(s, p);
	if (!rc)
		p = NULL;
out:
	gp_inf_free(inf);
	free_package(p);
	free(inf_name);
	free(arch);
	return rc;
}

int gp_store_open(const char *root, struct gp_store **out, struct gp_error *err)
{
	struct gp_store *s;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", root);
	rc = locate(s, root, err);
	if (rc)
		goto fail;
	d = opendir(s->repo_dir);
	if (!d) {
		int en = errno;
		rc = gp_error_set_errno(err, GP_ERR_IO, en, "%s", s->repo_dir);
		goto fail;
	}
	/* Sorted folder names: the package order (and so every listing and
	 * tie-break) does not depend on readdir order. */
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **a = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*a));
			if (!a) {
				closedir(d);
				rc = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", s->repo_dir);
				goto fail_names;
			}
			names = a;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			closedir(d);
			rc = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", s->repo_dir);
			goto fail_names;
		}
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		rc = scan_folder(s, names[i]);
		if (rc) {
			rc = gp_error_set(err, rc, "%s/%s: out of memory", s->repo_dir, names[i]);
			goto fail_names;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	*out = s;
	return 0;

fail_names:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
fail:
	gp_store_close(s);
	return rc;
}

/* A package's facts without its models (a CopyINF package of a listed
 * store). NULL on allocation failure. */
static struct gp_package *copy_facts(const struct gp_package *o)
{
	struct gp_package *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->folder = xstrdup(o->folder);
	p->inf_name = xstrdup(o->inf_name);
	p->arch = xstrdup(o->arch);
	p->class_name = xstrdup(o->class_name);
	p->class_guid = xstrdup(o->class_guid);
	p->provider = xstrdup(o->provider);
	p->driver_ver_date = xstrdup(o->driver_ver_date);
	p->driver_ver_version = xstrdup(o->driver_ver_version);
	p->catalog_file = xstrdup(o->catalog_file);
	p->date_key = o->date_key;
	memcpy(p->version, o->version, sizeof(p->version));
	p->is_display = o->is_display;
	if (!p->folder || !p->inf_name || !p->arch || !p->class_name || !p->class_guid ||
	    !p->provider || !p->driver_ver_date || !p->driver_ver_version || !p->catalog_file) {
		free_package(p);
		return NULL;
	}
	return p;
}

int gp_store_listed(const char *repo, const struct gp_package *pkg, const void *inf,
		    size_t inf_len, const struct gp_package *const *copyinf, size_t n_copyinf,
		    const struct gp_inject_file *files, size_t n_files, struct gp_store **out,
		    struct gp_error *err)
{
	struct gp_store *s = calloc(1, sizeof(*s));
	struct gp_package *p = NULL;
	struct gp_inf *parsed = NULL;
	int rc = GP_ERR_NOMEM;

	*out = NULL;
	if (!s)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", repo);
	s->listed = files;
	s->n_listed = n_files;
	s->repo_dir = strdup(repo);
	s->inf_text = malloc(inf_len ? inf_len : 1);
	p = calloc(1, sizeof(*p));
	if (!s->repo_dir || !s->inf_text || !p)
		goto fail;
	memcpy(s->inf_text, inf, inf_len);
	s->inf_len = inf_len;
	p->folder = xstrdup(pkg->folder);
	p->inf_name = xstrdup(pkg->inf_name);
	p->arch = xstrdup(pkg->arch);
	if (!p->folder || !p->inf_name || !p->arch)
		goto fail;
	rc = gp_inf_parse(inf, inf_len, pkg->inf_name, &parsed, err);
	if (rc) {
		gp_error_prefix(err, "%s: %s: ", repo, pkg->folder);
		goto fail_quiet;
	}
	if (!gp_inf_section(parsed, "Version")) {
		rc = gp_error_set(err, GP_ERR_CORRUPT, "%s: %s: %s has no [Version] section, not a "
				  "driver INF", repo, pkg->folder, pkg->inf_name);
		goto fail_quiet;
	}
	rc = GP_ERR_NOMEM;
	if (!read_package(p, parsed) || add_package(s, p))
		goto fail;
	p = NULL;
	for (size_t i = 0; i < n_copyinf; i++) {
		struct gp_package *c = copy_facts(copyinf[i]);

		if (!c || add_package(s, c)) {
			free_package(c);
			goto fail;
		}
	}
	gp_inf_free(parsed);
	*out = s;
	return 0;
fail:
	gp_error_set(err, rc, "%s: out of memory", repo);
fail_quiet:
	gp_inf_free(parsed);
	free_package(p);
	gp_store_close(s);
	return rc;
}

void gp_store_close(struct gp_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_pkgs; i++)
		free_package(s->pkgs[i]);
	free(s->pkgs);
	for (size_t i = 0; i < s->n_warnings; i++)
		free(s->warnings[i]);
	free(s->warnings);
	free(s->repo_dir);
	free(s->windows_dir);
	free(s->inf_text);
	free(s);
}

size_t gp_store_package_count(const struct gp_store *s)
{
	return s->n_pkgs;
}

const struct gp_package *gp_store_package(const struct gp_store *s, size_t i)
{
	return i < s->n_pkgs ? s->pkgs[i] : NULL;
}

const char *gp_store_repository_dir(const struct gp_store *s)
{
	return s->repo_dir;
}

const char *gp_store_windows_dir(const struct gp_store *s)
{
	return s->windows_dir;
}

size_t gp_store_warning_count(const struct gp_store *s)
{
	return s->n_warnings;
}

const char *gp_store_warning(const struct gp_store *s, size_t i)
{
	return i < s->n_warnings ? s->warnings[i] : NULL;
}

const struct gp_error *gp_store_error(const struct gp_store *s)
{
	return &s->err;
}
