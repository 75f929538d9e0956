/*
 * test_doctor.c — `gpup doctor` reading the guest itself, without a host
 * source: vendor display packages the guest installed, HostDriverStore
 * packages missing files their INF names, recommended fix-ups, the SYSTEM
 * hive's DriverStoreCopyMode. Guests from tests/fixtures/mkguest.sh
 * --doctor (plant-doctor.sh and guest-system-doctor.hivexsh say what they
 * hold) and --no-system; every run must leave the image byte-identical.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define NV_NEW "nv_dispi.inf_amd64_2222bbbb22220002"
#define HNV "nv_dispi.inf_amd64_9999aaaa99990009"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(doctor, .init = setup, .fini = teardown, .timeout = 300);

struct want {
	const char *id, *severity, *message, *fix;
};

static const char *sha_of(const char *path, char hex[65])
{
	cr_assert_eq(t_sha256_file(path, hex), 0, "cannot hash %s", path);
	return hex;
}

static const char *str_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s", key,
		  json_object_to_json_string(o));
	return json_object_get_string(v);
}

/* `doctor IMG ARGS --json` exits @status, leaves @img byte-identical and
 * reports exactly the findings @w (in order, every field); returns whether
 * it called the guest healthy. */
static bool doctor_reports(const char *img, const char *args, int status, const struct want *w,
			   size_t n)
{
	char before[65], after[65];
	struct json_object *root, *findings, *healthy;
	struct t_run r;
	bool ok;

	sha_of(img, before);
	t_gpup(&r, "doctor '%s' %s --json -q", img, args);
	cr_assert_eq(r.status, status, "doctor exit %d: %s %s", r.status, r.out, r.err);
	cr_assert_str_eq(sha_of(img, after), before, "doctor changed the image");
	root = json_tokener_parse(r.out);
	cr_assert_not_null(root, "not JSON: %s", r.out);
	cr_assert_str_eq(str_field(root, "schema"), "1");
	cr_assert_str_eq(str_field(root, "command"), "doctor");
	cr_assert(json_object_object_get_ex(root, "findings", &findings));
	cr_assert_eq(json_object_array_length(findings), n, "%zu findings, want %zu: %s",
		     json_object_array_length(findings), n, r.out);
	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(findings, i);

		cr_assert_str_eq(str_field(f, "id"), w[i].id, "finding %zu", i);
		cr_assert_str_eq(str_field(f, "severity"), w[i].severity, "%s", w[i].id);
		cr_assert_str_eq(str_field(f, "message"), w[i].message, "%s", w[i].id);
		cr_assert_str_eq(str_field(f, "fix"), w[i].fix, "%s", w[i].id);
	}
	cr_assert(json_object_object_get_ex(root, "healthy", &healthy));
	ok = json_object_get_boolean(healthy);
	json_object_put(root);
	t_run_free(&r);
	return ok;
}

/* The same findings, one line each, in the human output. */
static void doctor_lines(const char *img, const struct want *w, size_t n)
{
	struct t_run r;
	size_t lines = 0;

	t_gpup(&r, "doctor '%s'", img);
	for (char *l = r.out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		lines += *l == '[';
	cr_assert_eq(lines, n, "%zu finding lines, want %zu:\n%s", lines, n, r.out);
	for (size_t i = 0; i < n; i++) {
		char *line = t_strdup_printf("[%s] %s: %s; fix: %s\n", w[i].severity, w[i].id,
					     w[i].message, w[i].fix);

		cr_assert(strstr(r.out, line), "no line %s in:\n%s", line, r.out);
		free(line);
	}
	t_run_free(&r);
}

/* The acceptance case: no --driverstore, no --bundle. */
Test(doctor, reads_the_guest_without_a_source)
{
	char *img = t_guest_copy(dir, "--size 512M --vhdx --doctor", "g.vhdx");
	char *prep = t_strdup_printf("gpup prepare '%s' --driverstore DIR", img);
	char *ngx = t_strdup_printf("%s --fixup ngx-junction", prep);
	char *svc = t_strdup_printf("%s --fixup nvlddmkm-service", prep);
	const struct want w[] = {
		{ "guest-vendor-driver", "error",
		  "the guest has a display driver from AMD registered as Windows\\INF\\oem7.inf "
		  "(Advanced Micro Devices, Inc., DriverVer 08/01/2023,31.0.21001.45002) whose "
		  "DriverStore folder is gone; it competes with the GPU partition's driver from the "
		  "HostDriverStore",
		  "in the guest, as administrator: pnputil /delete-driver oem7.inf /uninstall" },
		{ "guest-vendor-driver", "error",
		  "the guest has its own NVIDIA display driver installed: DriverStore\\FileRepository\\"
		  "nv_dispi.inf_amd64_0a1b2c3d4e5f6a7b (NVIDIA, DriverVer 10/10/2023,31.0.15.3742, "
		  "published as oem3.inf); it competes with the GPU partition's driver from the "
		  "HostDriverStore (Code 43, or the wrong driver bound)",
		  "in the guest, as administrator: pnputil /delete-driver oem3.inf /uninstall" },
		{ "package-incomplete", "error",
		  "HostDriverStore\\FileRepository\\" HNV " is incomplete: 4 files its nv_dispi.inf "
		  "names are missing: NvCamera64.dll, nvcuda_loader64.dll, nvml_loader.dll, ... "
		  "(Code 43 when the driver needs one)", prep },
		{ "companion-missing", "error",
		  "1 file that nv_dispi.inf of " HNV " copies to System32 / SysWOW64 is missing there "
		  "and from the package folder: Windows/System32/nvml.dll", prep },
		{ "fixup-ngx-junction", "warning",
		  HNV " is an NVIDIA package but C:\\Windows\\System32\\DriverStore\\FileRepository\\"
		  HNV " is absent: NVIDIA's NGX asks for the driver's store path, gets the host's, and "
		  "finds no driver there (DLSS greyed out)", ngx },
		{ "fixup-nvlddmkm-service", "warning",
		  "the guest's registry has no SYSTEM\\ControlSet002\\Services\\nvlddmkm key: "
		  "applications that look for the NVIDIA kernel driver's service (DaVinci Resolve, "
		  "Diablo IV) refuse to start", svc },
		{ "driverstore-copy-mode", "warning",
		  "SYSTEM\\ControlSet002\\Control\\GraphicsDrivers DriverStoreCopyMode is 2: where "
		  "Windows honours it, the guest copies the host's driver store over its own files "
		  "whenever its virtual GPU starts, replacing what gpup put there",
		  "if that is not wanted, in the guest, as administrator: reg delete "
		  "HKLM\\SYSTEM\\CurrentControlSet\\Control\\GraphicsDrivers /v DriverStoreCopyMode /f" },
	};
	size_t n = sizeof(w) / sizeof(w[0]);

	cr_assert(!doctor_reports(img, "", 4, w, n));
	doctor_lines(img, w, n);
	free(svc);
	free(ngx);
	free(prep);
	free(img);
}

/* A guest whose SYSTEM hive is missing: those checks say so, the rest of
 * doctor still runs. */
Test(doctor, guest_without_system_hive)
{
	char *img = t_guest_copy(dir, "--size 512M --vhdx --no-system", "g.vhdx");
	char *prep = t_strdup_printf("gpup prepare '%s' --driverstore DIR", img);
	const struct want w[] = {
		{ "hostdriverstore-empty", "error",
		  "Windows\\System32\\HostDriverStore\\FileRepository is missing or empty: the guest "
		  "has no GPU-P driver (the GPU shows Code 43 or not at all)", prep },
		{ "system-hive-unreadable", "warning",
		  "the guest's SYSTEM hive (Windows\\System32\\config\\SYSTEM) is not readable: the "
		  "nvlddmkm service key and GraphicsDrivers DriverStoreCopyMode were not checked",
		  "check that the image holds a complete Windows installation" },
	};

	doctor_reports(img, "", 4, w, 2);
	free(prep);
	free(img);
}

/* After a complete prepare the package's own INF finds nothing missing (its
 * Needs, CopyToVm lists, CopyINF package and host-only companions included)
 * and only the fix-ups are recommended: healthy, exit 0. Then a file
 * removed from the package folder is found with no host source given. */
Test(doctor, prepared_guest_recommends_fixups_then_finds_a_removed_file)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *src = t_strdup_printf("--driverstore '%s' --gpu '" NV_GPU "'", st);
	char *prep = t_strdup_printf("gpup prepare '%s' --driverstore '%s' --gpu '" NV_GPU "'", img,
				     st);
	char *bare = t_strdup_printf("gpup prepare '%s' --driverstore DIR", img);
	char *ngx[2], *svc[2];
	struct t_run r;

	for (int i = 0; i < 2; i++) {
		ngx[i] = t_strdup_printf("%s --fixup ngx-junction", i ? bare : prep);
		svc[i] = t_strdup_printf("%s --fixup nvlddmkm-service", i ? bare : prep);
	}
	t_gpup(&r, "prepare '%s' %s -q", img, src);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	for (int i = 0; i < 2; i++) {
		const struct want w[] = {
			{ "fixup-ngx-junction", "warning",
			  NV_NEW " is an NVIDIA package but C:\\Windows\\System32\\DriverStore\\"
			  "FileRepository\\" NV_NEW " is absent: NVIDIA's NGX asks for the driver's store "
			  "path, gets the host's, and finds no driver there (DLSS greyed out)", ngx[i] },
			{ "fixup-nvlddmkm-service", "warning",
			  "the guest's registry has no SYSTEM\\ControlSet001\\Services\\nvlddmkm key: "
			  "applications that look for the NVIDIA kernel driver's service (DaVinci "
			  "Resolve, Diablo IV) refuse to start", svc[i] },
		};

		cr_assert(doctor_reports(img, i ? "" : src, 0, w, 2), "not healthy");
	}
	t_gpup(&r, "rm '%s' 'C:\\Windows\\System32\\HostDriverStore\\FileRepository\\" NV_NEW
	       "\\nvwgf2umx.dll'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	{
		const struct want w[] = {
			{ "package-incomplete", "error",
			  "HostDriverStore\\FileRepository\\" NV_NEW " is incomplete: 1 file its "
			  "nv_dispi.inf names is missing: nvwgf2umx.dll (Code 43 when the driver needs "
			  "one)", bare },
			{ "fixup-ngx-junction", "warning",
			  NV_NEW " is an NVIDIA package but C:\\Windows\\System32\\DriverStore\\"
			  "FileRepository\\" NV_NEW " is absent: NVIDIA's NGX asks for the driver's store "
			  "path, gets the host's, and finds no driver there (DLSS greyed out)", ngx[1] },
			{ "fixup-nvlddmkm-service", "warning",
			  "the guest's registry has no SYSTEM\\ControlSet001\\Services\\nvlddmkm key: "
			  "applications that look for the NVIDIA kernel driver's service (DaVinci "
			  "Resolve, Diablo IV) refuse to start", svc[1] },
		};

		cr_assert(!doctor_reports(img, "", 4, w, 3));
	}
	for (int i = 0; i < 2; i++) {
		free(ngx[i]);
		free(svc[i]);
	}
	free(bare);
	free(prep);
	free(src);
	free(st);
	free(img);
}

/* `doctor IMG --json` reports a finding with exactly these fields (among
 * others) and leaves the image byte-identical. */
static void doctor_has(const char *img, const struct want *w)
{
	char before[65], after[65];
	struct json_object *root, *findings;
	struct t_run r;
	bool found = false;

	sha_of(img, before);
	t_gpup(&r, "doctor '%s' --json -q", img);
	cr_assert_str_eq(sha_of(img, after), before, "doctor changed the image");
	root = json_tokener_parse(r.out);
	cr_assert_not_null(root, "not JSON: %s", r.out);
	cr_assert(json_object_object_get_ex(root, "findings", &findings));
	for (size_t i = 0; !found && i < json_object_array_length(findings); i++) {
		struct json_object *f = json_object_array_get_idx(findings, i);

		found = !strcmp(str_field(f, "id"), w->id) &&
			!strcmp(str_field(f, "severity"), w->severity) &&
			!strcmp(str_field(f, "message"), w->message) && !strcmp(str_field(f, "fix"), w->fix);
	}
	cr_assert(found, "no %s [%s] \"%s\" fix \"%s\" in %s", w->id, w->severity, w->message, w->fix,
		  r.out);
	json_object_put(root);
	t_run_free(&r);
}

/* Put host file @path into the guest's directory @guest_dir (replacing the
 * file of the same name). */
static void put(const char *img, const char *path, const char *guest_dir)
{
	struct t_run r;

	t_gpup(&r, "put '%s' '%s' '%s'", img, path, guest_dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
}

/* Every DriverStoreCopyMode value, set in the control set Windows boots
 * (the hive extracted, edited with hivexsh, put back). */
Test(doctor, driverstore_copy_mode_values)
{
	static const struct {
		unsigned value;
		const char *severity, *meaning;
	} modes[] = {
		{ 0, "info", "is 0: the guest never copies driver files from the host itself, so the "
			     "HostDriverStore holds only what was put there offline" },
		{ 1, "info", "is 1: where Windows honours it, the guest copies the host's driver store "
			     "when its virtual GPU starts but keeps files it has, so a stale package "
			     "stays stale" },
		{ 7, "warning", "is 7, a value Windows does not define (0 no copy, 1 copy without "
				"overwriting, 2 copy and overwrite)" },
	};
	char *img = t_guest_copy(dir, "--size 512M --vhdx --doctor", "g.vhdx");
	char *hdir = t_strdup_printf("%s/h", dir), *hive = t_strdup_printf("%s/SYSTEM", hdir);
	char *after = t_strdup_printf("after every host driver update run: gpup prepare '%s' "
				      "--driverstore DIR", img);
	struct t_run r;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char *msg = t_strdup_printf("SYSTEM\\ControlSet002\\Control\\GraphicsDrivers "
					    "DriverStoreCopyMode %s", modes[i].meaning);
		struct want w = { "driverstore-copy-mode", modes[i].severity, msg,
				  modes[i].value < 2 ? after :
				  "if that is not wanted, in the guest, as administrator: reg delete "
				  "HKLM\\SYSTEM\\CurrentControlSet\\Control\\GraphicsDrivers /v "
				  "DriverStoreCopyMode /f" };

		cr_assert_eq(t_run(&r, "mkdir -p '%s' && %s cat '%s' 'C:\\Windows\\System32\\config\\SYSTEM' "
				   ">'%s' && printf 'cd ControlSet002\\\\Control\\\\GraphicsDrivers\\n"
				   "setval 1\\nDriverStoreCopyMode\\ndword:0x%08x\\ncommit\\n' | hivexsh -w '%s'",
				   hdir, t_env("GPUP_BIN"), img, hive, modes[i].value, hive),
			     0, "%s", r.err);
		t_run_free(&r);
		put(img, hive, "C:\\Windows\\System32\\config");
		doctor_has(img, &w);
		free(msg);
	}
	free(after);
	free(hive);
	free(hdir);
	free(img);
}

/* The guest's NVIDIA package is matched to its published INF by bytes, else
 * by Provider and DriverVer; unpublished, the fix says how to find the name. */
Test(doctor, guest_vendor_driver_published_name)
{
	char *img = t_guest_copy(dir, "--size 512M --vhdx --doctor", "g.vhdx");
	char *oem = t_strdup_printf("%s/oem3.inf", dir);
	const char *msg = "the guest has its own NVIDIA display driver installed: "
			  "DriverStore\\FileRepository\\nv_dispi.inf_amd64_0a1b2c3d4e5f6a7b (NVIDIA, "
			  "DriverVer 10/10/2023,31.0.15.3742%s); it competes with the GPU partition's "
			  "driver from the HostDriverStore (Code 43, or the wrong driver bound)";
	char *published = t_strdup_printf(msg, ", published as oem3.inf");
	char *unpublished = t_strdup_printf(msg, "");
	const char *text = "[Version]\r\nSignature=\"$Windows NT$\"\r\nProvider=NVIDIA\r\n"
			   "Class=Display\r\nDriverVer=10/10/2023,31.0.15.3742 ; rewritten\r\n";
	struct want w = { "guest-vendor-driver", "error", published,
			  "in the guest, as administrator: pnputil /delete-driver oem3.inf /uninstall" };
	struct t_run r;

	/* Other bytes, same Provider and DriverVer. */
	cr_assert_eq(t_write_file(oem, text, strlen(text)), 0);
	put(img, oem, "C:\\Windows\\INF");
	doctor_has(img, &w);
	t_gpup(&r, "rm '%s' 'C:\\Windows\\INF\\oem3.inf'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	w.message = unpublished;
	w.fix = "in the guest, as administrator: pnputil /enum-drivers (find the published name "
		"oemN.inf of nv_dispi.inf 10/10/2023,31.0.15.3742), then: pnputil /delete-driver "
		"oemN.inf /uninstall";
	doctor_has(img, &w);
	free(unpublished);
	free(published);
	free(oem);
	free(img);
}

/* A plain folder where the NGX junction belongs is no junction: the fix-up
 * is still recommended (the fixture's junction for nvmdi.inf satisfies it,
 * reads_the_guest_without_a_source). */
Test(doctor, plain_folder_is_no_ngx_junction)
{
	char *img = t_guest_copy(dir, "--size 512M --vhdx --doctor", "g.vhdx");
	char *plain = t_strdup_printf("%s/" HNV, dir);
	char *fix = t_strdup_printf("gpup prepare '%s' --driverstore DIR --fixup ngx-junction", img);
	const struct want w = {
		"fixup-ngx-junction", "warning",
		HNV " is an NVIDIA package but C:\\Windows\\System32\\DriverStore\\FileRepository\\"
		HNV " is not a junction to the HostDriverStore: NVIDIA's NGX asks for the driver's "
		"store path, gets the host's, and finds no driver there (DLSS greyed out)", fix,
	};
	struct t_run r;

	cr_assert_eq(t_run(&r, "mkdir '%s'", plain), 0, "%s", r.err);
	t_run_free(&r);
	put(img, plain, "C:\\Windows\\System32\\DriverStore\\FileRepository");
	doctor_has(img, &w);
	free(fix);
	free(plain);
	free(img);
}
