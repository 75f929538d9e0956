/*
 * cmd_doctor.c — `gpup doctor`: why does this guest's GPU show Code 43 or
 * Code 12, or not show at all? Reads the image (read-only, through gpup's
 * engine so that even an image with an unreplayed VHDX log can be looked
 * at) and reports every finding with the command that fixes it.
 *
 * JSON (schema 1; doc/schema/doctor.schema.json):
 *   { "schema", "command": "doctor", "image", "healthy",
 *   "findings": [ { "id", "severity", "message", "fix" } ],
 *   "notes": [ { "id", "message" } ] }
 * "severity" is "error" (stands in the way of GPU-P), "warning" (GPU-P works
 * but something known fails: DLSS, applications that look for the NVIDIA
 * service key) or "info"; "healthy" means no error. "fix" is the exact
 * gpup command, or what to do in the guest or on the host. A note is
 * information, not a finding (interrupted-write once the package is
 * complete again). Human output: one line per finding,
 * "[severity] id: message; fix: FIX".
 * Runs `gpup check` first (check_report.h); its corruption findings come
 * first, as image-corrupt, each with its fix.
 * Finding ids (errors unless marked): image-corrupt, vhdx-log, hibernated,
 * fast-startup, ntfs-journal, volume-dirty, guest-build, guest-arch,
 * no-windows-facts, interrupted-write, hostdriverstore-missing,
 * hostdriverstore-empty, package-missing, package-build, file-missing,
 * file-differs, companion-missing, companion-differs, stale-duplicate,
 * acl-everyone-full; read from the guest itself, with or without a source
 * (guestpkg.h): guest-vendor-driver (a GPU vendor's display package the
 * guest installed), package-incomplete and package-unreadable (a
 * HostDriverStore package against its own INF; companion-missing for the
 * System32 files it copies), fixup-ngx-junction and fixup-nvlddmkm-service
 * (warnings: `prepare --fixup NAME` recommended for an NVIDIA package),
 * driverstore-copy-mode (SYSTEM's GraphicsDrivers DriverStoreCopyMode: info
 * for 0 and 1, a warning for 2 and undefined values), system-hive-unreadable
 * and guest-drivers-unreadable (warnings: those checks could not run).
 * Exit status: 0 healthy (warnings and information may be listed), 4 an
 * error finding, 1 error, 2 usage.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check_report.h"
#include "guestpkg.h"
#include "session.h"
#include "vhdx.h"

/* error: stands in the way of GPU-P (doctor exits 4); warning: GPU-P
 * works but something known fails (DLSS, applications looking for the
 * NVIDIA service key); info: worth knowing. */
enum severity { SEV_ERROR, SEV_WARNING, SEV_INFO };
static const char *const severity_names[] = { "error", "warning", "info" };

struct finding {
	const char *id;
	enum severity sev;
	char message[GP_ERROR_MSG_MAX];
	char fix[1024];
};

struct doctor {
	struct session s;
	struct finding *f;
	size_t n, cap;
	bool interrupted;       /* gpup's in-progress marker on a dirty volume */
	char note[GP_ERROR_MSG_MAX]; /* information that is not a finding, or "" */
	char prepare_cmd[768];  /* "gpup prepare IMAGE --driverstore DIR ..." */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpup doctor IMAGE [--driverstore DIR | --bundle FILE] [--gpu SEL]\n"
		"                   [--json]\n\n"
		"Diagnose a guest whose GPU shows Code 43 or 12, or is missing: the VHDX log,\n"
		"hibernation and dirty states, the guest build and architecture, the\n"
		"HostDriverStore (missing, empty, other build than the host's, stale\n"
		"duplicates), System32 companions, and file ACLs. Without a source it still\n"
		"reads the guest itself: GPU vendors' display drivers installed in the\n"
		"guest's own DriverStore (they compete with the partition's driver), each\n"
		"HostDriverStore package against its own INF (files it names that are\n"
		"missing), fix-ups recommended for NVIDIA packages (prepare --fixup\n"
		"ngx-junction, nvlddmkm-service), and the GraphicsDrivers\n"
		"DriverStoreCopyMode value of the SYSTEM hive. One line per finding:\n"
		"[error|warning|info] ID: MESSAGE; fix: COMMAND. Reads only; the image stays\n"
		"byte-identical. Exit status 0 when no finding is an error (warnings and\n"
		"information may be listed), 4 with an error.\n\n");
	session_help(f, true);
}

/* @s as one POSIX shell word ('...' with ' as '\''), so a fix can be
 * pasted as it is even when paths hold spaces or a GPU ID holds '&'. */
static const char *shell_word(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	if (size < 3)
		return "";
	buf[o++] = '\'';
	for (; *s && o + 6 < size; s++) {
		if (*s == '\'') {
			memcpy(buf + o, "'\\''", 4);
			o += 4;
		} else {
			buf[o++] = *s;
		}
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}

static void vadd(struct doctor *d, enum severity sev, const char *id, const char *fix,
		 const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void add(struct doctor *d, const char *id, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add_sev(struct doctor *d, enum severity sev, const char *id, const char *fix,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A finding of severity error. */
static void add(struct doctor *d, const char *id, const char *fix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(d, SEV_ERROR, id, fix, fmt, ap);
	va_end(ap);
}

static void add_sev(struct doctor *d, enum severity sev, const char *id, const char *fix,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(d, sev, id, fix, fmt, ap);
	va_end(ap);
}

static void vadd(struct doctor *d, enum severity sev, const char *id, const char *fix,
		 const char *fmt, va_list ap)
{
	struct finding *f;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct finding *p = realloc(d->f, cap * sizeof(*p));

		if (!p)
			return; /* a finding fewer beats a crash; the rest still print */
		d->f = p;
		d->cap = cap;
	}
	f = &d->f[d->n++];
	f->id = id;
	f->sev = sev;
	vsnprintf(f->message, sizeof(f->message), fmt, ap);
	snprintf(f->fix, sizeof(f->fix), "%s", fix);
}

static size_t errors(const struct doctor *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->n; i++)
		n += d->f[i].sev == SEV_ERROR;
	return n;
}

static void check_vhdx_log(struct doctor *d)
{
	struct vhdx *v = gp_disk_vhdx(d->s.disk);
	struct vhdx_info info;

	if (!v || vhdx_get_info(v, &info) != 0)
		return;
	if (info.log_state != VHDX_LOG_EMPTY)
		add(d, "vhdx-log", d->prepare_cmd,
		    "the VHDX log holds updates that were never applied (a crash or a killed writer); "
		    "Hyper-V replays it, but libvhdi-based tools read stale data; a read-write open by "
		    "gpup replays it");
	vhdx_info_free(&info);
}

/* `gpup check` first: damage to the container, the partition table or the
 * volume, each with its fix. */
static int check_image(struct doctor *d, struct gp_error *err)
{
	struct gp_check_report r;
	int ret = check_report_run(d->s.image, &d->s.disk_opts, &r, err);

	for (size_t i = 0; !ret && i < r.count; i++)
		if (r.findings[i].grade == GP_CHECK_CORRUPT)
			add(d, "image-corrupt", check_report_fix(&r), "%s (gpup check)",
			    r.findings[i].message);
	gp_check_report_free(&r);
	return ret;
}

static void check_volume(struct doctor *d, const struct session_guest *g)
{
	if (g->f.hibernated)
		add(d, "hibernated", "boot the guest and run: shutdown /s /t 0",
		    "Windows on the guest is hibernated; changes made offline would be lost or "
		    "corrupt the volume on resume");
	if (g->f.fast_startup)
		add(d, "fast-startup",
		    "boot the guest, run 'powercfg /h off' (disables Fast Startup), then: shutdown /s /t 0",
		    "the guest was shut down with Fast Startup (hybrid shutdown): its volume is still "
		    "in use by the hibernated kernel");
	if (g->f.log_unclean)
		add(d, "ntfs-journal", "boot the guest and shut it down cleanly (or pass --recover)",
		    "the NTFS journal ($LogFile) is unclean: Windows did not shut down cleanly");
	{
		struct gp_ntfs_volinfo vi;

		gp_ntfs_volinfo(d->s.vol, &vi);
		/* Judged at the end (interrupted_write()): whether it is still
		 * a finding depends on the package being complete. */
		d->interrupted = vi.interrupted;
		if (!vi.interrupted && g->f.dirty)
			add(d, "volume-dirty", "run 'chkdsk C: /f' in the guest (or pass --force)",
			    "the NTFS volume is marked dirty: Windows will check it at the next boot");
	}
	if (!g->known) {
		add(d, "no-windows-facts", "check that the image holds a Windows installation",
		    "cannot read the guest's registry (Windows\\System32\\config\\SOFTWARE)");
		return;
	}
	if (g->f.is_server ? g->build_num < 20348 : g->build_num < 19041)
		add(d, "guest-build", "update the guest to Windows 10 20H1 / 11 or Windows Server 2022 or later",
		    "guest runs %s build %u; GPU partitioning needs client build 19041 or later, or "
		    "Windows Server 2022 (20348) or later",
		    g->f.product_name, g->build_num);
}

static const struct gp_guest_pkg *guest_pkg(const struct session_guest *g, const char *folder)
{
	for (size_t i = 0; i < g->f.pkg_count; i++)
		if (strcasecmp(g->f.pkgs[i].folder, folder) == 0)
			return &g->f.pkgs[i];
	return NULL;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* Stale duplicates without a source: several folders of one INF. */
static void check_duplicates(struct doctor *d, const struct session_guest *g)
{
	for (size_t i = 0; i < g->f.pkg_count; i++) {
		const char *a = g->f.pkgs[i].folder, *ea = strcasestr(a, ".inf_");

		if (!ea)
			continue;
		for (size_t j = i + 1; j < g->f.pkg_count; j++) {
			const char *b = g->f.pkgs[j].folder, *eb = strcasestr(b, ".inf_");

			if (eb && eb - b == ea - a && strncasecmp(a, b, (size_t)(ea - a)) == 0) {
				add(d, "stale-duplicate", d->prepare_cmd,
				    "HostDriverStore holds several builds of %.*s: %s (%s) and %s (%s); "
				    "the guest may load the wrong one (Code 43)",
				    (int)(ea - a + 4), a, a, g->f.pkgs[i].driver_ver, b,
				    g->f.pkgs[j].driver_ver);
				break;
			}
		}
	}
}

/* Files of one kind of fault: how many, and the first three by name. */
struct file_group {
	size_t n;
	char names[512];
};

static void tally(struct file_group *g, const char *path)
{
	size_t used = strlen(g->names);

	if (g->n++ < 3)
		snprintf(g->names + used, sizeof(g->names) - used, "%s%s", used ? ", " : "", path);
}

static void check_against_source(struct doctor *d, const struct session_guest *g)
{
	const struct gp_inject_set *set = gp_source_set(d->s.src);
	struct gp_inject_stream stream = { 0 };
	struct gp_verify_report vr = { 0 };
	struct file_group groups[4] = { 0 };
	struct gp_error err = { 0 };
	int ret;

	if (g->f.arch[0] && set->pkg->arch && *set->pkg->arch &&
	    strcasecmp(set->pkg->arch, g->f.arch) != 0)
		add(d, "guest-arch", "use the host driver package built for the guest's architecture",
		    "the host's package %s is for %s, but the guest is %s", set->pkg->folder,
		    set->pkg->arch, g->f.arch);
	for (size_t i = 0; i < set->n_folders; i++) {
		const char *folder = base_name(set->folders[i]);
		const char *dot = strcasestr(folder, ".inf_");
		bool other = false;

		if (guest_pkg(g, folder))
			continue;
		for (size_t j = 0; dot && j < g->f.pkg_count; j++) {
			if (strncasecmp(g->f.pkgs[j].folder, folder, (size_t)(dot - folder) + 5) == 0) {
				add(d, "package-build", d->prepare_cmd,
				    "the guest has %s (DriverVer %s) but the host's driver is %s; a guest "
				    "driver that differs from the host's gives Code 43",
				    g->f.pkgs[j].folder, g->f.pkgs[j].driver_ver, folder);
				other = true;
			}
		}
		if (!other)
			add(d, "package-missing", d->prepare_cmd,
			    "HostDriverStore has no %s: the guest has no driver for the GPU", folder);
	}

	ret = gp_source_stream(d->s.src, &stream, &err);
	if (!ret)
		ret = gp_inject_verify(d->s.vol, set, &stream, NULL, &vr, &err);
	if (stream.ops && stream.ops->destroy)
		stream.ops->destroy(&stream);
	if (ret && ret != GP_ERR_MISMATCH) {
		add(d, "verify-error", "see the message", "could not compare the files: %s",
		    gp_error_message(&err));
		return;
	}
	for (size_t i = 0; i < set->count; i++) {
		const struct gp_inject_file *f = &set->files[i];
		bool companion = f->role == GP_INJECT_COMPANION;

		/* A missing package folder was reported as a whole above. */
		if (vr.states[i] == GP_VERIFY_OK)
			continue;
		if (!companion && vr.states[i] == GP_VERIFY_MISSING) {
			bool folder_there = false;

			for (size_t k = 0; k < set->n_folders; k++)
				if (!strncmp(f->guest_path, set->folders[k], strlen(set->folders[k])) &&
				    guest_pkg(g, base_name(set->folders[k])))
					folder_there = true;
			if (!folder_there)
				continue;
		}
		tally(&groups[(companion ? 2 : 0) + (vr.states[i] != GP_VERIFY_MISSING)], f->guest_path);
	}
	/* One finding per kind of fault, naming the first files: a guest
	 * missing 40 companions needs one fix, not 40 lines. */
	for (size_t k = 0; k < 4; k++) {
		static const char *const ids[4] = { "file-missing", "file-differs", "companion-missing",
						     "companion-differs" };
		static const char *const what[4] = {
			"missing from the package folder",
			"different from the host's copy",
			"missing (System32/SysWOW64 files the driver's INF copies)",
			"different from the host's copy (System32/SysWOW64 companions)",
		};

		if (groups[k].n)
			add(d, ids[k], d->prepare_cmd, "%zu file%s %s: %s%s", groups[k].n,
			    groups[k].n == 1 ? "" : "s", what[k], groups[k].names,
			    groups[k].n > 3 ? ", ..." : "");
	}
	for (size_t i = 0; i < vr.n_stale; i++)
		add(d, "stale-duplicate", d->prepare_cmd,
		    "%s is another build of the driver (%llu bytes); stale builds cause Code 43 "
		    "and pile up", vr.stale[i], (unsigned long long)vr.stale_bytes[i]);
	gp_verify_report_free(&vr);
}

static void check_acls(struct doctor *d, const struct session_guest *g)
{
	for (size_t i = 0; i < g->f.pkg_count; i++) {
		char path[320];
		bool open_acl = false;
		struct gp_error err = { 0 };

		snprintf(path, sizeof(path), "%s/%s", GP_GUEST_HOSTDRIVERSTORE, g->f.pkgs[i].folder);
		if (gp_inject_acl_everyone_full(d->s.vol, path, &open_acl, &err) == 0 && open_acl) {
			char fix[512], img[160];

			/* Long image paths make the hint long; a cut hint still
			 * names the command. */
			if (snprintf(fix, sizeof(fix), "gpup rm %s '/%s' && %.200s",
				     shell_word(d->s.image, img, sizeof(img)), path, d->prepare_cmd) < 0)
				fix[0] = '\0';
			add(d, "acl-everyone-full", fix,
			    "%s grants Everyone full control instead of System32's inherited ACL "
			    "(copied by a tool that ignores Windows inheritance, e.g. the ntfs-3g FUSE driver)",
			    path);
		}
	}
}

/* ---- what the guest itself holds (guestpkg.h, the SYSTEM hive) ---------- */

/* The prepare command with fix-up @name added. */
static const char *fixup_cmd(const struct doctor *d, const char *name, char *buf, size_t size)
{
	/* A cut command still names the fix-up first. */
	if (snprintf(buf, size, "%s --fixup %s", d->prepare_cmd, name) >= (int)size)
		snprintf(buf, size, "gpup prepare IMAGE --fixup %s --driverstore DIR", name);
	return buf;
}

/* GPU vendors' display drivers installed in the guest itself: Windows may
 * bind them instead of the partition's (or both fight over the device). */
static void check_guest_drivers(struct doctor *d)
{
	struct gp_guest_driver *drv = NULL;
	struct gp_error err = { 0 };
	size_t n = 0;

	if (gp_guest_vendor_displays(d->s.vol, &drv, &n, &err)) {
		add_sev(d, SEV_WARNING, "guest-drivers-unreadable", "see the message",
			"cannot read the guest's own driver store: %s", gp_error_message(&err));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct gp_guest_driver *g = &drv[i];
		char fix[512];

		if (g->published[0])
			snprintf(fix, sizeof(fix), "in the guest, as administrator: pnputil /delete-driver %s "
				 "/uninstall", g->published);
		else
			snprintf(fix, sizeof(fix), "in the guest, as administrator: pnputil /enum-drivers "
				 "(find the published name oemN.inf of %s %s), then: pnputil "
				 "/delete-driver oemN.inf /uninstall", g->inf, g->driver_ver);
		if (g->folder[0])
			add(d, "guest-vendor-driver", fix,
			    "the guest has its own %s display driver installed: DriverStore\\FileRepository\\%s "
			    "(%s, DriverVer %s%s%s); it competes with the GPU partition's driver from the "
			    "HostDriverStore (Code 43, or the wrong driver bound)", g->vendor, g->folder,
			    g->provider, g->driver_ver, g->published[0] ? ", published as " : "",
			    g->published);
		else
			add(d, "guest-vendor-driver", fix,
			    "the guest has a display driver from %s registered as Windows\\INF\\%s (%s, "
			    "DriverVer %s) whose DriverStore folder is gone; it competes with the GPU "
			    "partition's driver from the HostDriverStore", g->vendor, g->published,
			    g->provider, g->driver_ver);
	}
	free(drv);
}

static bool in_source(const struct doctor *d, const char *folder)
{
	const struct gp_inject_set *set = d->s.src ? gp_source_set(d->s.src) : NULL;

	for (size_t i = 0; set && i < set->n_folders; i++)
		if (strcasecmp(base_name(set->folders[i]), folder) == 0)
			return true;
	return false;
}

/* One HostDriverStore package against its own INF, which needs no host
 * source: files it names that are absent. A package the source also holds
 * was compared file by file already (check_against_source()). */
static void check_package_inf(struct doctor *d, const char *folder,
			      const struct gp_guest_pkg_check *c)
{
	size_t hl = strlen(GP_GUEST_HOSTDRIVERSTORE), dl = hl + 1 + strlen(folder);
	struct file_group missing = { 0 }, companions = { 0 };

	if (in_source(d, folder))
		return;
	if (c->problem[0]) {
		add(d, "package-unreadable", d->prepare_cmd,
		    "HostDriverStore\\FileRepository\\%s: %s; the guest cannot install this package",
		    folder, c->problem);
		return;
	}
	/* Files of the folder by their name in it; companions by their
	 * System32 / SysWOW64 path. */
	for (size_t i = 0; i < c->n_missing; i++) {
		const char *m = c->missing[i];

		if (strncmp(m, GP_GUEST_HOSTDRIVERSTORE, hl) || m[dl] != '/')
			tally(&companions, m);
		else
			tally(&missing, m + dl + 1);
	}
	if (missing.n)
		add(d, "package-incomplete", d->prepare_cmd,
		    "HostDriverStore\\FileRepository\\%s is incomplete: %zu file%s its %s names %s "
		    "missing: %s%s (Code 43 when the driver needs one)", folder, missing.n,
		    missing.n == 1 ? "" : "s", c->inf, missing.n == 1 ? "is" : "are", missing.names,
		    missing.n > 3 ? ", ..." : "");
	if (companions.n)
		add(d, "companion-missing", d->prepare_cmd,
		    "%zu file%s that %s of %s copies to System32 / SysWOW64 %s missing there and "
		    "from the package folder: %s%s", companions.n, companions.n == 1 ? "" : "s",
		    c->inf, folder, companions.n == 1 ? "is" : "are", companions.names,
		    companions.n > 3 ? ", ..." : "");
}

/* NVIDIA's NGX (DLSS) asks the kernel driver for the driver store path and
 * gets the host's DriverStore\FileRepository\<package>: without a junction
 * from there to the HostDriverStore copy, DLSS stays greyed out. */
static void check_ngx_junction(struct doctor *d, const char *folder)
{
	char path[512], fix[1024];
	struct gp_ntfs_stat st;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", GP_GUEST_DRIVERSTORE, folder);
	ret = gp_ntfs_stat(d->s.vol, path, &st);
	gp_ntfs_clear_error(d->s.vol);
	if (!ret && (st.attributes & GP_NTFS_ATTR_REPARSE))
		return;
	add_sev(d, SEV_WARNING, "fixup-ngx-junction", fixup_cmd(d, "ngx-junction", fix, sizeof(fix)),
		"%s is an NVIDIA package but C:\\Windows\\System32\\DriverStore\\FileRepository\\%s is %s: "
		"NVIDIA's NGX asks for the driver's store path, gets the host's, and finds no driver "
		"there (DLSS greyed out)", folder, folder,
		ret == GP_ERR_NOTFOUND ? "absent" : ret ? "unreadable" : "not a junction to the HostDriverStore");
}

static void check_host_packages(struct doctor *d, const struct session_guest *g)
{
	bool nvidia = false;

	for (size_t i = 0; i < g->f.pkg_count; i++) {
		const char *folder = g->f.pkgs[i].folder;
		struct gp_guest_pkg_check c;
		struct gp_error err = { 0 };

		if (gp_guest_check_host_package(d->s.vol, folder, &c, &err)) {
			add(d, "package-unreadable", d->prepare_cmd,
			    "HostDriverStore\\FileRepository\\%s: %s", folder, gp_error_message(&err));
			gp_guest_pkg_check_free(&c);
			continue;
		}
		check_package_inf(d, folder, &c);
		if (c.is_display && c.vendor && !strcmp(c.vendor, "NVIDIA")) {
			check_ngx_junction(d, folder);
			nvidia = true;
		}
		gp_guest_pkg_check_free(&c);
	}
	if (nvidia && g->f.system_read && !g->f.nvlddmkm_service) {
		char fix[1024];

		add_sev(d, SEV_WARNING, "fixup-nvlddmkm-service",
			fixup_cmd(d, "nvlddmkm-service", fix, sizeof(fix)),
			"the guest's registry has no SYSTEM\\ControlSet%03u\\Services\\nvlddmkm key: "
			"applications that look for the NVIDIA kernel driver's service (DaVinci Resolve, "
			"Diablo IV) refuse to start", g->f.control_set);
	}
}

/* The SYSTEM hive: whether it could be read, and GraphicsDrivers
 * DriverStoreCopyMode (Microsoft's GPU paravirtualization documentation:
 * 0 copying disabled, 1 copy without overwriting, 2 copy and overwrite;
 * released Windows builds do not copy at all). */
static void check_system(struct doctor *d, const struct session_guest *g)
{
	char fix[1024];
	const char *del = "if that is not wanted, in the guest, as administrator: reg delete "
			  "HKLM\\SYSTEM\\CurrentControlSet\\Control\\GraphicsDrivers /v "
			  "DriverStoreCopyMode /f";
	unsigned cs = g->f.control_set;

	if (!g->f.system_read) {
		add_sev(d, SEV_WARNING, "system-hive-unreadable",
			"check that the image holds a complete Windows installation",
			"the guest's SYSTEM hive (Windows\\System32\\config\\SYSTEM) is not readable: "
			"the nvlddmkm service key and GraphicsDrivers DriverStoreCopyMode were not checked");
		return;
	}
	if (!g->f.copy_mode_set)
		return;
	if (snprintf(fix, sizeof(fix), "after every host driver update run: %s", d->prepare_cmd) < 0)
		fix[0] = '\0';
	switch (g->f.copy_mode) {
	case 0:
		add_sev(d, SEV_INFO, "driverstore-copy-mode", fix,
			"SYSTEM\\ControlSet%03u\\Control\\GraphicsDrivers DriverStoreCopyMode is 0: the "
			"guest never copies driver files from the host itself, so the HostDriverStore "
			"holds only what was put there offline", cs);
		break;
	case 1:
		add_sev(d, SEV_INFO, "driverstore-copy-mode", fix,
			"SYSTEM\\ControlSet%03u\\Control\\GraphicsDrivers DriverStoreCopyMode is 1: where "
			"Windows honours it, the guest copies the host's driver store when its virtual GPU "
			"starts but keeps files it has, so a stale package stays stale", cs);
		break;
	case 2:
		add_sev(d, SEV_WARNING, "driverstore-copy-mode", del,
			"SYSTEM\\ControlSet%03u\\Control\\GraphicsDrivers DriverStoreCopyMode is 2: where "
			"Windows honours it, the guest copies the host's driver store over its own files "
			"whenever its virtual GPU starts, replacing what gpup put there", cs);
		break;
	default:
		add_sev(d, SEV_WARNING, "driverstore-copy-mode", del,
			"SYSTEM\\ControlSet%03u\\Control\\GraphicsDrivers DriverStoreCopyMode is %u, a "
			"value Windows does not define (0 no copy, 1 copy without overwriting, 2 copy "
			"and overwrite)", cs, (unsigned)g->f.copy_mode);
		break;
	}
}

/*
 * An interrupted gpup write leaves the volume dirty with gpup's marker, and
 * a rerun that completes the package leaves it so (Windows checks the
 * volume at the next boot). It is a finding while the package may be
 * incomplete; once a source shows the package complete and matching, it is
 * only information, so that doctor can exit 0 after the repair.
 */
static void interrupted_write(struct doctor *d)
{
	static const char *const package_ids[] = {
		"hostdriverstore-missing", "hostdriverstore-empty", "package-missing",
		"package-build", "file-missing", "file-differs", "companion-missing",
		"companion-differs", "package-incomplete", "package-unreadable",
	};
	bool complete = d->s.src != NULL;

	if (!d->interrupted)
		return;
	for (size_t i = 0; complete && i < d->n; i++)
		for (size_t j = 0; j < sizeof(package_ids) / sizeof(package_ids[0]); j++)
			if (!strcmp(d->f[i].id, package_ids[j]))
				complete = false;
	if (complete)
		snprintf(d->note, sizeof(d->note),
			 "interrupted-write: a gpup write to this volume was interrupted and has been "
			 "completed since; Windows will check the volume at the next boot");
	else
		add(d, "interrupted-write", d->prepare_cmd,
		    "a gpup run was interrupted while writing this volume: run the same command "
		    "again to complete it (once complete, a rerun changes nothing); the volume "
		    "stays marked for the chkdsk Windows runs at the next boot%s",
		    d->s.src ? "" : " (give --driverstore or --bundle to check whether it is complete)");
}

static void build_prepare_cmd(struct doctor *d)
{
	const struct gp_source_opts *o = &d->s.src_opts;
	char img[256], src[256], gpu[160];

	snprintf(d->prepare_cmd, sizeof(d->prepare_cmd), "gpup prepare %s %s %s%s%s",
		 shell_word(d->s.image, img, sizeof(img)),
		 o->bundle ? "--bundle" : "--driverstore",
		 o->bundle || o->driverstore
			 ? shell_word(o->bundle ? o->bundle : o->driverstore, src, sizeof(src))
			 : "DIR",
		 o->gpu ? " --gpu " : "", o->gpu ? shell_word(o->gpu, gpu, sizeof(gpu)) : "");
}

static int run(struct doctor *d)
{
	struct session_guest g = { 0 };
	struct gp_error err = { 0 };
	int ret;

	build_prepare_cmd(d);
	ret = check_image(d, &err);
	if (ret)
		return cli_fail_cmd("doctor", d->s.json, d->s.image, &err);
	ret = session_open_image(&d->s, false, false, &err);
	if (ret && d->n) {
		/* Damage the check named is why: report it with its fix. */
		gp_error_clear(&err);
		ret = 0;
		goto report;
	}
	if (ret)
		return cli_fail_cmd("doctor", d->s.json, d->s.image, &err);
	check_vhdx_log(d);
	ret = session_guest(&d->s, &g, &err);
	if (ret)
		goto out;
	check_volume(d, &g);
	if (g.f.pkg_count == 0)
		add(d, "hostdriverstore-empty", d->prepare_cmd,
		    "Windows\\System32\\HostDriverStore\\FileRepository is missing or empty: "
		    "the guest has no GPU-P driver (the GPU shows Code 43 or not at all)");
	if (d->s.src_opts.driverstore || d->s.src_opts.bundle) {
		ret = session_open_source(&d->s, g.f.arch[0] ? g.f.arch : NULL, g.build_num, &err);
		if (ret)
			goto out;
		check_against_source(d, &g);
	} else {
		check_duplicates(d, &g);
	}
	check_guest_drivers(d);
	check_host_packages(d, &g);
	check_system(d, &g);
	check_acls(d, &g);
	interrupted_write(d);
out:
	gp_guest_facts_free(&g.f);
	if (ret)
		return cli_fail_cmd("doctor", d->s.json, d->s.image, &err);
report:
	if (d->s.json) {
		struct json_object *o = session_json_new("doctor"), *arr = json_object_new_array();

		json_object_object_add(o, "image", json_object_new_string(d->s.image));
		json_object_object_add(o, "healthy", json_object_new_boolean(errors(d) == 0));
		for (size_t i = 0; i < d->n; i++) {
			struct json_object *f = json_object_new_object();

			json_object_object_add(f, "id", json_object_new_string(d->f[i].id));
			json_object_object_add(f, "severity",
					       json_object_new_string(severity_names[d->f[i].sev]));
			json_object_object_add(f, "message", json_object_new_string(d->f[i].message));
			json_object_object_add(f, "fix", json_object_new_string(d->f[i].fix));
			json_object_array_add(arr, f);
		}
		json_object_object_add(o, "findings", arr);
		arr = json_object_new_array();
		if (d->note[0]) {
			struct json_object *n = json_object_new_object();

			json_object_object_add(n, "id", json_object_new_string("interrupted-write"));
			json_object_object_add(n, "message", json_object_new_string(d->note));
			json_object_array_add(arr, n);
		}
		json_object_object_add(o, "notes", arr);
		session_print_json(o);
	} else {
		for (size_t i = 0; i < d->n; i++)
			/* Findings quote the guest's INFs and folder names. */
			printf("[%s] %s: %s; fix: %s\n", severity_names[d->f[i].sev], d->f[i].id,
			       cli_esc(d->f[i].message), cli_esc(d->f[i].fix));
		if (d->note[0])
			printf("note: %s\n", cli_esc(d->note));
		if (errors(d))
			printf("%s: problems found\n", d->s.image);
		else
			printf("%s: healthy: nothing stands in the way of GPU-P%s\n", d->s.image,
			       d->n ? " (see the warnings and information above)" : "");
	}
	return errors(d) ? EXIT_MISMATCH : EXIT_OK;
}

int cmd_doctor(int argc, char **argv)
{
	struct doctor d = { 0 };
	int ret;

	session_init(&d.s, "doctor");
	d.s.ntfs_opts.require_windows = true;
	ret = session_parse_image_cmd(&d.s, argc, argv, usage, false);
	if (ret >= 0)
		return ret;
	ret = run(&d);
	free(d.f);
	session_end(&d.s);
	return ret;
}
