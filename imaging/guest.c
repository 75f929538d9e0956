/* guest.c — guest facts from the registry hives, the kernel image and the
 * HostDriverStore. See guest.h. */
#include "guest.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <hivex.h>

#include "le.h"

#define SYS32 "Windows\\System32"
#define HOST_FR SYS32 "\\HostDriverStore\\FileRepository"
/* Hives beyond this are not registry hives gpup should read. */
#define HIVE_MAX ((uint64_t)2 << 30)
/* How much of an INF is scanned for DriverVer ([Version] comes first). */
#define INF_SCAN_MAX (256u << 10)

/* PE/COFF (Microsoft PE format): e_lfanew at 0x3C, "PE\0\0", Machine. */
#define MZ_LFANEW_OFF 0x3c
#define PE_MACHINE_OFF 4

const char *gp_guest_machine_arch(uint16_t machine)
{
	switch (machine) {
	case 0x8664: return "amd64";
	case 0x014c: return "x86";
	case 0xaa64: return "arm64";
	default: return NULL;
	}
}

static int fd_sink(const void *buf, size_t len, void *ctx)
{
	int fd = *(int *)ctx;
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ENOSPC ? GP_ERR_NOSPACE : GP_ERR_IO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Open the hive at guest path @path through a memfd. Returns NULL when
 * the hive is absent (nothing recorded) or on error (recorded in @err,
 * *@ret set). */
static hive_h *open_hive(struct gp_ntfs *v, const char *path, int *ret, struct gp_error *err)
{
	struct gp_ntfs_stat st;
	char proc[64];
	hive_h *h;
	int fd, rc;

	*ret = 0;
	rc = gp_ntfs_stat(v, path, &st);
	if (rc == GP_ERR_NOTFOUND) {
		gp_ntfs_clear_error(v);
		return NULL;
	}
	if (rc) {
		*ret = gp_error_copy(err, gp_ntfs_error(v));
		return NULL;
	}
	if (st.is_dir || st.size > HIVE_MAX) {
		*ret = gp_error_set(err, GP_ERR_CORRUPT, "%s: not a registry hive (%llu bytes)", path,
				    (unsigned long long)st.size);
		return NULL;
	}
	fd = memfd_create("gpup-hive", MFD_CLOEXEC);
	if (fd < 0) {
		*ret = gp_error_set_errno(err, GP_ERR_IO, errno, "memfd_create");
		return NULL;
	}
	rc = gp_ntfs_cat(v, path, fd_sink, &fd);
	if (rc) {
		*ret = gp_error_copy(err, gp_ntfs_error(v));
		close(fd);
		return NULL;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	h = hivex_open(proc, 0);
	if (!h)
		*ret = gp_error_set_errno(err, GP_ERR_CORRUPT, errno, "%s: hivex cannot open the hive", path);
	/* hivex holds its own descriptor (and mapping) of the memfd. */
	close(fd);
	return h;
}

/* Walk @path ("A\\B\\C") from the root. Returns 0 when absent. */
static hive_node_h node_at(hive_h *h, const char *path)
{
	hive_node_h n = hivex_root(h);
	char buf[512], *save, *part;

	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, "\\", &save); n && part; part = strtok_r(NULL, "\\", &save))
		n = hivex_node_get_child(h, n, part);
	return n;
}

static void get_string(hive_h *h, hive_node_h n, const char *name, char *out, size_t size)
{
	hive_value_h val;
	char *s;

	if (!n)
		return;
	val = hivex_node_get_value(h, n, name);
	if (!val)
		return;
	s = hivex_value_string(h, val);
	if (s) {
		snprintf(out, size, "%s", s);
		free(s);
	}
}

static bool get_dword(hive_h *h, hive_node_h n, const char *name, uint32_t *out)
{
	hive_value_h val;
	hive_type t;
	size_t len;

	if (!n)
		return false;
	val = hivex_node_get_value(h, n, name);
	if (!val || hivex_value_type(h, val, &t, &len) || (t != hive_t_REG_DWORD && t != hive_t_REG_DWORD_BIG_ENDIAN))
		return false;
	errno = 0;
	*out = (uint32_t)hivex_value_dword(h, val);
	return errno == 0;
}

static int read_software(struct gp_ntfs *v, struct gp_guest_facts *f, struct gp_error *err)
{
	int ret;
	hive_h *h = open_hive(v, SYS32 "\\config\\SOFTWARE", &ret, err);
	hive_node_h cv;

	if (!h)
		return ret;
	cv = node_at(h, "Microsoft\\Windows NT\\CurrentVersion");
	get_string(h, cv, "ProductName", f->product_name, sizeof(f->product_name));
	get_string(h, cv, "EditionID", f->edition, sizeof(f->edition));
	get_string(h, cv, "InstallationType", f->installation_type, sizeof(f->installation_type));
	get_string(h, cv, "CurrentBuildNumber", f->build, sizeof(f->build));
	if (!f->build[0])
		get_string(h, cv, "CurrentBuild", f->build, sizeof(f->build));
	get_string(h, cv, "DisplayVersion", f->display_version, sizeof(f->display_version));
	get_dword(h, cv, "UBR", &f->ubr);
	f->is_server = strncasecmp(f->installation_type, "Server", 6) == 0;
	hivex_close(h);
	return 0;
}

static int read_system(struct gp_ntfs *v, struct gp_guest_facts *f, struct gp_error *err)
{
	int ret;
	/* A complete SYSTEM.gpup-new is the newest SYSTEM: gpup's crash-safe
	 * rewrite of the hive was stopped while SYSTEM itself was written
	 * (drivers/manifest.h, gp_manifest_write_hive()); the rerun finishes
	 * it. Anything else by that name (an incomplete copy: not a hive) is
	 * ignored -- but not a failing disk: an I/O error fails the read. */
	hive_h *h = open_hive(v, SYS32 "\\config\\SYSTEM.gpup-new", &ret, err);
	uint32_t current = 1;

	if (!h && ret && ret != GP_ERR_CORRUPT)
		return ret;
	if (!h) {
		gp_error_clear(err);
		h = open_hive(v, SYS32 "\\config\\SYSTEM", &ret, err);
	}
	char path[128], arch[32] = "";

	if (!h)
		return ret;
	/* The control set Windows boots with is Select\Current. */
	get_dword(h, node_at(h, "Select"), "Current", &current);
	if (current == 0 || current > 999)
		current = 1;
	f->system_read = true;
	f->control_set = (unsigned)current;
	snprintf(path, sizeof(path), "ControlSet%03u\\Control\\Session Manager\\Environment",
		 (unsigned)current);
	get_string(h, node_at(h, path), "PROCESSOR_ARCHITECTURE", arch, sizeof(arch));
	snprintf(path, sizeof(path), "ControlSet%03u\\Control\\GraphicsDrivers", (unsigned)current);
	f->copy_mode_set = get_dword(h, node_at(h, path), "DriverStoreCopyMode", &f->copy_mode);
	/* The key applications look for (doctor recommends the fix-up that
	 * writes it); its values do not matter here. */
	snprintf(path, sizeof(path), "ControlSet%03u\\Services\\nvlddmkm", (unsigned)current);
	f->nvlddmkm_service = node_at(h, path) != 0;
	hivex_close(h);
	if (!strcasecmp(arch, "AMD64"))
		snprintf(f->arch, sizeof(f->arch), "amd64");
	else if (!strcasecmp(arch, "x86"))
		snprintf(f->arch, sizeof(f->arch), "x86");
	else if (!strcasecmp(arch, "ARM64"))
		snprintf(f->arch, sizeof(f->arch), "arm64");
	return 0;
}

static void read_kernel(struct gp_ntfs *v, struct gp_guest_facts *f)
{
	void *buf = NULL;
	size_t len = 0;
	const uint8_t *p;
	uint32_t pe;

	/* The headers are in the first 4 KiB; read a bounded prefix. */
	if (gp_ntfs_read_file(v, SYS32 "\\ntoskrnl.exe", 64u << 20, &buf, &len)) {
		gp_ntfs_clear_error(v);
		return;
	}
	p = buf;
	if (len >= 0x40 && p[0] == 'M' && p[1] == 'Z') {
		pe = get_le32(p + MZ_LFANEW_OFF);
		if (pe <= len - 6 && memcmp(p + pe, "PE\0\0", 4) == 0)
			f->kernel_machine = get_le16(p + pe + PE_MACHINE_OFF);
	}
	free(buf);
}

bool gp_guest_inf_driver_ver(const void *buf, size_t len, char *out, size_t size)
{
	const uint8_t *b = buf;
	char *text;
	size_t n = 0;
	bool found = false;

	out[0] = '\0';
	text = malloc(len + 1);
	if (!text)
		return false;
	/* UTF-16LE INFs: keep the low bytes; DriverVer is ASCII. */
	if (len >= 2 && b[0] == 0xff && b[1] == 0xfe) {
		for (size_t i = 2; i + 1 < len; i += 2)
			text[n++] = b[i + 1] ? '?' : (char)b[i];
	} else {
		memcpy(text, b, len);
		n = len;
	}
	text[n] = '\0';
	for (char *line = text, *next; line && !found; line = next) {
		char *p = line, *e;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (strncasecmp(p, "DriverVer", 9) != 0)
			continue;
		p += 9;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		p++;
		e = p + strcspn(p, ";\r");
		*e = '\0';
		/* Drop blanks anywhere ("06/21/2006, 10.0.1" as written). */
		n = 0;
		for (char *q = p; *q && n + 1 < size; q++)
			if (*q != ' ' && *q != '\t' && *q != '"')
				out[n++] = *q;
		out[n] = '\0';
		found = n > 0;
	}
	free(text);
	return found;
}

struct names {
	char **v;
	size_t n, cap;
	bool dirs;
	int err;
};

static int collect(const char *name, const struct gp_ntfs_stat *st, void *ctx)
{
	struct names *c = ctx;

	if (st->is_dir != c->dirs)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char **nv = realloc(c->v, cap * sizeof(*nv));

		if (!nv) {
			c->err = GP_ERR_NOMEM;
			return 1;
		}
		c->v = nv;
		c->cap = cap;
	}
	c->v[c->n] = strdup(name);
	if (!c->v[c->n]) {
		c->err = GP_ERR_NOMEM;
		return 1;
	}
	c->n++;
	return 0;
}

static void names_free(struct names *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i]);
	free(c->v);
}

static int cmp_pkg(const void *a, const void *b)
{
	return strcasecmp(((const struct gp_guest_pkg *)a)->folder,
			  ((const struct gp_guest_pkg *)b)->folder);
}

/* The package's INF: prefer the one the folder is named after
 * ("nv_dispi.inf_amd64_..." → "nv_dispi.inf"), else the first *.inf. */
static void read_pkg(struct gp_ntfs *v, struct gp_guest_pkg *p)
{
	struct names files = { .dirs = false };
	char path[1024];
	const char *pick = NULL;
	size_t stem = strcspn(p->folder, "_");
	const char *dot = strcasestr(p->folder, ".inf_");

	if (dot)
		stem = (size_t)(dot - p->folder) + 4;
	snprintf(path, sizeof(path), HOST_FR "\\%s", p->folder);
	if (gp_ntfs_list(v, path, collect, &files)) {
		gp_ntfs_clear_error(v);
		goto out;
	}
	for (size_t i = 0; i < files.n; i++) {
		size_t l = strlen(files.v[i]);

		if (l < 4 || strcasecmp(files.v[i] + l - 4, ".inf"))
			continue;
		if (dot && l == stem && !strncasecmp(files.v[i], p->folder, stem)) {
			pick = files.v[i];
			break;
		}
		if (!pick)
			pick = files.v[i];
	}
	if (pick) {
		void *buf;
		size_t len;

		snprintf(p->inf, sizeof(p->inf), "%s", pick);
		snprintf(path, sizeof(path), HOST_FR "\\%s\\%s", p->folder, pick);
		if (gp_ntfs_read_file(v, path, 64u << 20, &buf, &len) == 0) {
			gp_guest_inf_driver_ver(buf, len < INF_SCAN_MAX ? len : INF_SCAN_MAX,
						p->driver_ver, sizeof(p->driver_ver));
			free(buf);
		} else {
			gp_ntfs_clear_error(v);
		}
	}
out:
	names_free(&files);
}

static int read_packages(struct gp_ntfs *v, struct gp_guest_facts *f, struct gp_error *err)
{
	struct names dirs = { .dirs = true };
	struct gp_ntfs_stat st;
	int ret;

	if (gp_ntfs_stat(v, HOST_FR, &st) || !st.is_dir) {
		gp_ntfs_clear_error(v);
		return 0; /* no HostDriverStore yet: no packages */
	}
	ret = gp_ntfs_list(v, HOST_FR, collect, &dirs);
	if (ret || dirs.err) {
		ret = dirs.err ? gp_error_set(err, dirs.err, "out of memory")
			       : gp_error_copy(err, gp_ntfs_error(v));
		goto out;
	}
	f->pkgs = calloc(dirs.n ? dirs.n : 1, sizeof(*f->pkgs));
	if (!f->pkgs) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < dirs.n; i++) {
		snprintf(f->pkgs[i].folder, sizeof(f->pkgs[i].folder), "%s", dirs.v[i]);
		read_pkg(v, &f->pkgs[i]);
	}
	f->pkg_count = dirs.n;
	qsort(f->pkgs, f->pkg_count, sizeof(*f->pkgs), cmp_pkg);
out:
	names_free(&dirs);
	return ret;
}

int gp_guest_read(struct gp_ntfs *v, struct gp_guest_facts *out, struct gp_error *err)
{
	struct gp_ntfs_volinfo vi;
	struct gp_ntfs_stat st;
	int ret;

	memset(out, 0, sizeof(*out));
	gp_ntfs_volinfo(v, &vi);
	out->hibernated = vi.hibernated;
	out->fast_startup = vi.fast_startup;
	out->log_unclean = vi.log_unclean;
	out->dirty = vi.dirty;
	out->total_bytes = vi.total_bytes;
	out->free_bytes = vi.free_bytes;
	if (gp_ntfs_stat(v, SYS32, &st) || !st.is_dir) {
		gp_ntfs_clear_error(v);
		return gp_error_set(err, GP_ERR_NOTFOUND, "no \\Windows\\System32 on the volume");
	}
	ret = read_software(v, out, err);
	if (!ret)
		ret = read_system(v, out, err);
	if (ret)
		return ret;
	read_kernel(v, out);
	if (!out->arch[0] && gp_guest_machine_arch(out->kernel_machine))
		snprintf(out->arch, sizeof(out->arch), "%s", gp_guest_machine_arch(out->kernel_machine));
	return read_packages(v, out, err);
}

void gp_guest_facts_free(struct gp_guest_facts *f)
{
	if (!f)
		return;
	free(f->pkgs);
	f->pkgs = NULL;
	f->pkg_count = 0;
}
