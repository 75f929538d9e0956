/* test_store.c — DriverStore scan, GPU -> package ranking and injection
 * sets, on stores from tests/fixtures/mkstore.sh and around the real
 * NVIDIA 470.05 INFs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers_test.h"
#include "helpers.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(store, .init = setup, .fini = teardown);

static struct gp_resolution *resolve_ok(struct gp_store *s, const char *gpu,
					const struct gp_guest_target *t)
{
	struct gp_resolution *r = NULL;
	int rc = gp_store_resolve(s, gpu, t, &r);

	cr_assert_eq(rc, 0, "resolve %s: %s", gpu, gp_store_error(s)->msg);
	cr_assert_not_null(r);
	cr_assert_not_null(r->pkg);
	return r;
}

static struct gp_inject_set *inject_ok(struct gp_store *s, const struct gp_resolution *r,
				       bool allow_missing)
{
	struct gp_inject_opts o = { .allow_missing = allow_missing };
	struct gp_inject_set *set = NULL;

	cr_assert_eq(gp_store_injection_set(s, r->pkg, r->model, &o, &set), 0, "%s",
		     gp_store_error(s)->msg);
	return set;
}

static const char *basename_of(const char *p)
{
	const char *b = strrchr(p, '/');
	return b ? b + 1 : p;
}

Test(store, finds_filerepository_from_any_level_and_case)
{
	char *root = dt_mkstore(dir);
	static const char *const sub[] = { "", "/Windows", "/Windows/System32",
					   "/Windows/System32/DriverStore", ("/" REPO_REL) };
	struct t_run r;

	for (size_t i = 0; i < 5; i++) {
		char *p = t_strdup_printf("%s%s", root, sub[i]);
		struct gp_store *s = dt_open(p);
		char *want_win = t_strdup_printf("%s/Windows", root);

		cr_assert_eq(gp_store_package_count(s), 6, "from %s", p);
		cr_assert(strstr(gp_store_repository_dir(s), "FileRepository"));
		cr_assert_not_null(gp_store_windows_dir(s), "Windows found from %s", p);
		cr_assert_str_eq(gp_store_windows_dir(s), want_win);
		gp_store_close(s);
		free(p);
		free(want_win);
	}
	/* A copy whose directory names lost their case. */
	t_run(&r, "cd '%s' && mv Windows windows && mv windows/System32 windows/system32 && "
		  "mv windows/system32/DriverStore windows/system32/driverstore && "
		  "mv windows/system32/driverstore/FileRepository windows/system32/driverstore/filerepository",
	      root);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	{
		struct gp_store *s = dt_open(root);
		struct gp_resolution *res = resolve_ok(s, NV_GPU, NULL);
		struct gp_inject_set *set = inject_ok(s, res, false);
		long i = dt_find(set, "Windows/System32/nvinfo.pb");

		cr_assert_eq(gp_store_package_count(s), 6);
		cr_assert_geq(i, 0, "host System32 found through lower-case names");
		cr_assert(strstr(set->files[i].source_path, "/windows/system32/nvinfo.pb"));
		gp_inject_set_free(set);
		gp_resolution_free(res);
		gp_store_close(s);
	}
	{
		struct gp_error err = { 0 };
		struct gp_store *s = NULL;
		cr_assert_eq(gp_store_open(dir, &s, &err), GP_ERR_NOTFOUND);
		cr_assert(strstr(err.msg, dir) && strstr(err.msg, "no DriverStore"), "%s", err.msg);
		gp_error_clear(&err);
		cr_assert_eq(gp_store_open("/nonexistent/store", &s, &err), GP_ERR_NOTFOUND);
		cr_assert(strstr(err.msg, "/nonexistent/store"), "%s", err.msg);
	}
	free(root);
}

Test(store, scan_reads_packages_and_warns_about_garbage)
{
	char *root = dt_mkstore(dir);
	struct gp_store *s;
	const struct gp_package *p;
	bool warned = false;

	/* More trouble: a package folder without its INF, an INF that is
	 * text without [Version]. */
	struct t_run t;

	t_run(&t, "mkdir -p '%s/" REPO_REL "/gone.inf_amd64_0000000000000001' "
				    "'%s/" REPO_REL "/text.inf_amd64_0000000000000002' && "
				    "printf '[Foo]\\nbar=1\\n' > '%s/" REPO_REL
				    "/text.inf_amd64_0000000000000002/text.inf'",
	      root, root, root);
	cr_assert_eq(t.status, 0, "%s", t.err);
	t_run_free(&t);
	s = dt_open(root);
	cr_assert_eq(gp_store_package_count(s), 6);
	cr_assert_eq(gp_store_warning_count(s), 3);
	for (size_t i = 0; i < gp_store_warning_count(s); i++) {
		const char *w = gp_store_warning(s, i);
		if (strstr(w, "broken.inf_amd64_7777000077770007") && strstr(w, "binary data"))
			warned = true;
	}
	cr_assert(warned, "garbage INF warned about, naming its folder");
	cr_assert(strstr(gp_store_warning(s, 1), "gone.inf_amd64_0000000000000001: no gone.inf"),
		  "%s", gp_store_warning(s, 1));
	cr_assert(strstr(gp_store_warning(s, 2), "no [Version]"), "%s", gp_store_warning(s, 2));

	p = dt_pkg(s, NV_NEW);
	cr_assert_not_null(p);
	cr_assert_str_eq(p->inf_name, "nv_dispi.inf");
	cr_assert_str_eq(p->arch, "amd64");
	cr_assert(p->is_display);
	cr_assert_str_eq(p->provider, "NVIDIA");
	cr_assert_str_eq(p->driver_ver_date, "03/20/2024");
	cr_assert_eq(p->date_key, 20240320);
	cr_assert_eq(p->version[0], 31);
	cr_assert_eq(p->version[3], 5222);
	cr_assert_eq(p->n_targets, 2);
	cr_assert_eq(p->targets[1].build, 22621);
	cr_assert_str_eq(p->targets[1].arch, "amd64");
	cr_assert_eq(p->targets[1].major, 10);
	cr_assert_eq(p->n_models, 6);
	cr_assert_eq(p->n_copyinf, 1);
	cr_assert_str_eq(p->copyinf[0], "nvhda.inf");
	/* The UTF-16LE Intel INF */
	p = dt_pkg(s, INTEL_PKG);
	cr_assert_not_null(p);
	cr_assert(p->is_display);
	cr_assert_str_eq(p->provider, "Intel Corporation");
	cr_assert_str_eq(p->models[0].ids[0], "PCI\\VEN_8086&DEV_A7A0");
	cr_assert_str_eq(p->models[0].description, "Intel(R) Iris(R) Xe Graphics");
	/* Noise is there but not display */
	cr_assert(!dt_pkg(s, "e1d.inf_amd64_5555eeee55550005")->is_display);
	cr_assert(!dt_pkg(s, "usbhub3x.inf_amd64_6666ffff66660006")->is_display);
	gp_store_close(s);
	free(root);
}

Test(store, gpu_identifiers)
{
	struct gp_error err = { 0 };
	struct gp_gpu_id id;
	char buf[64];

	cr_assert_eq(gp_gpu_id_parse("\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&2a1b3c4d&0&0008"
				     "#{064092b3-625e-43bf-9eb5-dc845897dd59}", &id, &err), 0, "%s", err.msg);
	cr_assert_eq(id.ven, 0x10DE);
	cr_assert_eq(id.dev, 0x2860);
	cr_assert(id.has_subsys && id.subsys == 0x252D1043);
	cr_assert(id.has_rev && id.rev == 0xA1);
	gp_gpu_id_format(&id, buf, sizeof(buf));
	cr_assert_str_eq(buf, NV_GPU);
	cr_assert_eq(gp_gpu_id_parse("pci\\ven_8086&dev_a7a0", &id, &err), 0);
	cr_assert(!id.has_subsys && !id.has_rev && id.dev == 0xA7A0);
	cr_assert_eq(gp_gpu_id_parse("PCI\\VEN_8086&DEV_A7A0\\3&11583659&0&10", &id, &err), 0);
	cr_assert_eq(gp_gpu_id_parse("PCI\\VEN_10DE", &id, &err), GP_ERR_INVALID);
	cr_assert(strstr(err.msg, "PCI\\VEN_10DE"), "%s", err.msg);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpu_id_parse("PCI\\VEN_10DE&DEV_28", &id, &err), GP_ERR_INVALID);
	gp_error_clear(&err);
	cr_assert_eq(gp_gpu_id_parse("garbage", &id, &err), GP_ERR_INVALID);
}

Test(store, newest_build_wins_with_subsys_match)
{
	char *root = dt_mkstore(dir);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = resolve_ok(s, NV_GPU, NULL);
	const struct gp_candidate *old;

	cr_assert_str_eq(r->pkg->folder, NV_NEW);
	cr_assert_str_eq(r->model->install_section, "Section_Asus");
	cr_assert_eq(r->cands[0].rank, GP_MATCH_VEN_DEV_SUBSYS);
	cr_assert_eq(r->cands[0].verdict, GP_CAND_CHOSEN);
	cr_assert_str_eq(r->cands[0].matched_id, "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043");
	old = dt_cand(r, NV_OLD);
	cr_assert_eq(old->verdict, GP_CAND_OLDER);
	cr_assert(strstr(old->why, "older") && strstr(old->why, "01/15/2024"), "%s", old->why);
	cr_assert_eq(dt_cand(r, INTEL_PKG)->verdict, GP_CAND_NO_MATCH);
	cr_assert_eq(dt_cand(r, "e1d.inf_amd64_5555eeee55550005")->verdict, GP_CAND_NOT_DISPLAY);
	cr_assert_eq(dt_cand(r, NVHDA)->verdict, GP_CAND_NOT_DISPLAY);
	/* The same GPU named by its instance path */
	gp_resolution_free(r);
	r = resolve_ok(s, "\\\\?\\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&1234&0&0008#{064092b3-625e-43bf-9eb5-dc845897dd59}", NULL);
	cr_assert_str_eq(r->pkg->folder, NV_NEW);
	cr_assert_str_eq(r->model->install_section, "Section_Asus");
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, generic_match_and_target_os_build)
{
	char *root = dt_mkstore(dir);
	struct gp_store *s = dt_open(root);
	struct gp_guest_target w10 = { .arch = "amd64", .build = 19045 };
	struct gp_guest_target arm = { .arch = "arm64" };
	struct gp_resolution *r;
	struct gp_inject_set *set;

	/* Another board: no SUBSYS line matches, the generic one does; the
	 * newest guest takes the ...22621 models section. */
	r = resolve_ok(s, "PCI\\VEN_10DE&DEV_2860&SUBSYS_11111111&REV_A1", NULL);
	cr_assert_str_eq(r->pkg->folder, NV_NEW);
	cr_assert_eq(r->cands[0].rank, GP_MATCH_VEN_DEV);
	cr_assert_str_eq(r->model->install_section, "Section_W11");
	set = inject_ok(s, r, false);
	cr_assert_geq(dt_find(set, "Windows/System32/nvW11only.dll"), 0);
	cr_assert_lt(dt_find(set, "Windows/System32/AsusOverlay.dll"), 0, "not the ASUS section");
	/* Section_W11 Needs Section_Generic and itself: followed once. */
	cr_assert_geq(dt_find(set, "Windows/System32/nvml.dll"), 0);
	gp_inject_set_free(set);
	gp_resolution_free(r);

	/* Windows 10 22H2 (19045): the 22621 section does not fit. */
	r = resolve_ok(s, "PCI\\VEN_10DE&DEV_2860", &w10);
	cr_assert_str_eq(r->model->install_section, "Section_Generic");
	set = inject_ok(s, r, false);
	cr_assert_lt(dt_find(set, "Windows/System32/nvW11only.dll"), 0);
	gp_inject_set_free(set);
	gp_resolution_free(r);

	/* Windows 11 22H2 itself (22621): the ...22621 section asks for no
	 * newer build than the guest's, so it fits (the boundary is
	 * inclusive); one build lower, it does not. */
	{
		struct gp_guest_target w11 = { .arch = "amd64", .build = 22621 };
		struct gp_guest_target below = { .arch = "amd64", .build = 22620 };

		r = resolve_ok(s, "PCI\\VEN_10DE&DEV_2860", &w11);
		cr_assert_str_eq(r->model->install_section, "Section_W11",
				 "build 22621 against ...22621");
		gp_resolution_free(r);
		r = resolve_ok(s, "PCI\\VEN_10DE&DEV_2860", &below);
		cr_assert_str_eq(r->model->install_section, "Section_Generic",
				 "build 22620 against ...22621");
		gp_resolution_free(r);
	}

	/* arm64 guest: no package fits. */
	cr_assert_eq(gp_store_resolve(s, NV_GPU, &arm, &r), GP_ERR_NOTFOUND);
	cr_assert_not_null(r, "candidates kept for --explain");
	cr_assert_null(r->pkg);
	cr_assert_eq(dt_cand(r, NV_NEW)->verdict, GP_CAND_TARGET_OS);
	cr_assert(strstr(dt_cand(r, NV_NEW)->why, "arm64"), "%s", dt_cand(r, NV_NEW)->why);
	cr_assert(strstr(gp_store_error(s)->msg, "arm64"), "%s", gp_store_error(s)->msg);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, subsys_match_beats_newer_generic_package)
{
	char *root = dt_mkstore(dir);
	struct t_run t;
	struct gp_store *s;
	struct gp_resolution *r;

	/* A third, newest NVIDIA build without the SUBSYS lines. */
	t_run(&t, "cd '%s/" REPO_REL "' && cp -r " NV_NEW " nv_dispi.inf_amd64_9999ffff99990009 && "
		  "cd nv_dispi.inf_amd64_9999ffff99990009 && "
		  "sed -i -e '/SUBSYS_252D1043/d' -e 's#03/20/2024, 31.0.15.5222#12/01/2024, 32.0.15.6000#' "
		  "nv_dispi.inf", root);
	cr_assert_eq(t.status, 0, "%s", t.err);
	t_run_free(&t);
	s = dt_open(root);
	r = resolve_ok(s, NV_GPU, NULL);
	cr_assert_str_eq(r->pkg->folder, NV_NEW, "the SUBSYS-specific match wins over a newer generic one");
	cr_assert_eq(dt_cand(r, "nv_dispi.inf_amd64_9999ffff99990009")->verdict, GP_CAND_LESS_SPECIFIC);
	cr_assert(strstr(dt_cand(r, "nv_dispi.inf_amd64_9999ffff99990009")->why, "less specific"));
	gp_resolution_free(r);
	r = resolve_ok(s, "PCI\\VEN_10DE&DEV_2860&SUBSYS_11111111", NULL);
	cr_assert_str_eq(r->pkg->folder, "nv_dispi.inf_amd64_9999ffff99990009", "newest generic");
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, nvidia_injection_set)
{
	char *root = dt_mkstore(dir);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = resolve_ok(s, NV_GPU, NULL);
	struct gp_inject_set *set = inject_ok(s, r, false);
	const char *hds = "Windows/System32/HostDriverStore/FileRepository/" NV_NEW;
	uint64_t total = 0;
	long i;

	/* deterministic order */
	for (size_t k = 1; k < set->count; k++)
		cr_assert_lt(strcmp(set->files[k - 1].guest_path, set->files[k].guest_path), 0);
	/* sizes and the total are the sources' */
	for (size_t k = 0; k < set->count; k++) {
		struct stat st;
		cr_assert_eq(stat(set->files[k].source_path, &st), 0);
		cr_assert_eq(set->files[k].size, (uint64_t)st.st_size);
		cr_assert_eq(set->files[k].mtime, (int64_t)st.st_mtime);
		total += set->files[k].size;
	}
	cr_assert_eq(set->total_bytes, total);
	/* the whole package folder, listed files or not, subfolders too */
	{
		char *g1 = t_strdup_printf("%s/unlisted_extra.bin", hds);
		char *g2 = t_strdup_printf("%s/NvCamera/NvCamera64.dll", hds);
		char *g3 = t_strdup_printf("%s/nv_dispi.inf", hds);
		cr_assert_geq(dt_find(set, g1), 0);
		cr_assert_geq(dt_find(set, g2), 0);
		cr_assert_geq(i = dt_find(set, g3), 0);
		cr_assert_eq(set->files[i].role, GP_INJECT_PACKAGE);
		free(g1);
		free(g2);
		free(g3);
	}
	/* renames */
	cr_assert_geq(i = dt_find(set, "Windows/System32/nvml.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "nvml_loader.dll");
	cr_assert(strstr(set->files[i].source_path, NV_NEW));
	cr_assert_eq(set->files[i].role, GP_INJECT_COMPANION);
	cr_assert_geq(i = dt_find(set, "Windows/System32/nvcuda.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "nvcuda_loader64.dll");
	cr_assert(strstr(set->files[i].origin, "CopyFiles nv_system32_copyfiles"));
	cr_assert(strstr(set->files[i].origin, "CopyToVmWhenNewer CudaDriverFiles"), "%s",
		  set->files[i].origin);
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/nvcuda.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "nvcuda_loader32.dll");
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/OpenCL.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "OpenCL32.dll");
	/* CopyToVm-only files */
	cr_assert_geq(i = dt_find(set, "Windows/System32/vulkan-1.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "vulkan-1-x64.dll");
	cr_assert_str_eq(set->files[i].origin, "CopyToVmWhenNewer VulkanFiles");
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/vulkan-1.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "vulkan-1-x86.dll");
	/* the ASUS section (Needs Section_Generic) */
	cr_assert_geq(dt_find(set, "Windows/System32/AsusOverlay.dll"), 0);
	/* host-only companions come from the host's System32 / SysWOW64 */
	cr_assert_geq(i = dt_find(set, "Windows/System32/nvinfo.pb"), 0);
	cr_assert(strstr(set->files[i].source_path, "/Windows/System32/nvinfo.pb"));
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/nvwow_host.dll"), 0);
	cr_assert(strstr(set->files[i].source_path, "/Windows/SysWOW64/nvwow_host.dll"));
	/* CopyINF companion as its own folder */
	cr_assert_eq(set->n_copyinf, 1);
	cr_assert_str_eq(set->copyinf[0]->folder, NVHDA);
	cr_assert_geq(i = dt_find(set, "Windows/System32/HostDriverStore/FileRepository/" NVHDA "/nvhda64v.sys"), 0);
	cr_assert_eq(set->files[i].role, GP_INJECT_COPYINF_PACKAGE);
	cr_assert_eq(set->n_folders, 2);
	cr_assert_str_eq(set->folders[0], hds);
	/* not for the guest: drivers (12), in-box files, the older build */
	for (size_t k = 0; k < set->count; k++) {
		const char *g = set->files[k].guest_path;
		cr_assert_null(strstr(g, "System32/drivers"), "%s", g);
		cr_assert_null(strstr(g, "portcls"), "%s", g);
		cr_assert_null(strstr(g, NV_OLD), "%s", g);
		cr_assert(strncmp(g, "Windows/System32/", 17) == 0 || strncmp(g, "Windows/SysWOW64/", 17) == 0, "%s", g);
	}
	cr_assert_lt(dt_find(set, "Windows/System32/nvlddmkm.sys"), 0);
	cr_assert_lt(dt_find(set, "Windows/System32/nvwgf2umx.dll"), 0, "DIRID 13 stays in the package");
	cr_assert_eq(set->n_missing, 0);
	cr_assert_eq(set->n_copyinf_missing, 0);
	/* companions: System32 nvapi64, nvml, nvcuda, OpenCL, nvinfo.pb (host),
	 * AsusOverlay, vulkan-1; SysWOW64 nvapi, nvcuda, OpenCL, nvwow_host (host),
	 * vulkan-1 */
	{
		size_t comp = 0;
		for (size_t k = 0; k < set->count; k++)
			comp += set->files[k].role == GP_INJECT_COMPANION;
		cr_assert_eq(comp, 12, "companions: %zu", comp);
	}
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

/* Guest paths that differ only in letter case are one NTFS file: the set
 * keeps one of them, among a package folder of many files (all kept). */
Test(store, case_twins_in_a_large_package_folder_are_one_file)
{
	enum { N = 1500 };
	char *root = dt_mkstore(dir);
	char *pkg = t_strdup_printf("%s/" REPO_REL "/" NV_NEW, root);
	const char *hds = "Windows/System32/HostDriverStore/FileRepository/" NV_NEW;
	struct gp_store *s;
	struct gp_resolution *r;
	struct gp_inject_set *set;
	char *p, *a, *b;
	size_t many = 0;

	p = t_strdup_printf("%s/many", pkg);
	cr_assert_eq(mkdir(p, 0755), 0);
	free(p);
	for (int i = 0; i < N; i++) {
		p = t_strdup_printf("%s/many/f%04d.bin", pkg, i);
		cr_assert_eq(t_write_file(p, "x", 1), 0);
		free(p);
	}
	p = t_strdup_printf("%s/NVCAMERA", pkg);
	cr_assert_eq(mkdir(p, 0755), 0);
	free(p);
	p = t_strdup_printf("%s/NVCAMERA/nvcamera64.DLL", pkg);
	cr_assert_eq(t_write_file(p, "twin", 4), 0);
	free(p);
	s = dt_open(root);
	r = resolve_ok(s, NV_GPU, NULL);
	set = inject_ok(s, r, false);
	for (size_t k = 0; k < set->count; k++)
		many += strstr(set->files[k].guest_path, "/many/f") != NULL;
	cr_assert_eq(many, N);
	a = t_strdup_printf("%s/NvCamera/NvCamera64.dll", hds);
	b = t_strdup_printf("%s/NVCAMERA/nvcamera64.DLL", hds);
	cr_assert((dt_find(set, a) >= 0) != (dt_find(set, b) >= 0), "exactly one of the twins");
	free(a);
	free(b);
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(pkg);
	free(root);
}

Test(store, intel_beside_nvidia)
{
	char *root = dt_mkstore(dir);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = resolve_ok(s, INTEL_GPU, NULL);
	struct gp_inject_set *set = inject_ok(s, r, false);
	long i;

	cr_assert_str_eq(r->pkg->folder, INTEL_PKG);
	cr_assert_geq(i = dt_find(set, "Windows/System32/igdinfo64.dll"), 0, "CopyFiles=@file");
	cr_assert_str_eq(set->files[i].origin, "CopyFiles @igdinfo64.dll");
	cr_assert_geq(dt_find(set, "Windows/System32/igdgmm64.dll"), 0);
	cr_assert_geq(dt_find(set, "Windows/SysWOW64/igdgmm32.dll"), 0);
	cr_assert_eq(set->n_copyinf, 0);
	cr_assert_eq(set->n_folders, 1);
	for (size_t k = 0; k < set->count; k++)
		cr_assert_null(strstr(set->files[k].guest_path, "nv"), "%s", set->files[k].guest_path);
	gp_inject_set_free(set);
	gp_resolution_free(r);
	/* the network adapter's ID is not a display GPU */
	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_8086&DEV_15F3", NULL, &r), GP_ERR_NOTFOUND);
	cr_assert(strstr(gp_store_error(s)->msg, "PCI\\VEN_8086&DEV_15F3"), "%s", gp_store_error(s)->msg);
	cr_assert_eq(dt_cand(r, "e1d.inf_amd64_5555eeee55550005")->verdict, GP_CAND_NOT_DISPLAY);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, missing_companion)
{
	char *root = dt_mkstore(dir);
	char *victim = t_strdup_printf("%s/" REPO_REL "/" NV_NEW "/nvml_loader.dll", root);
	struct gp_store *s;
	struct gp_resolution *r;
	struct gp_inject_set *set = NULL;
	struct gp_inject_opts o = { 0 };

	cr_assert_eq(unlink(victim), 0);
	s = dt_open(root);
	r = resolve_ok(s, NV_GPU, NULL);
	cr_assert_eq(gp_store_injection_set(s, r->pkg, r->model, &o, &set), GP_ERR_NOTFOUND);
	cr_assert_null(set);
	cr_assert(strstr(gp_store_error(s)->msg, "nvml_loader.dll") &&
		  strstr(gp_store_error(s)->msg, "Windows/System32/nvml.dll"), "%s",
		  gp_store_error(s)->msg);
	o.allow_missing = true;
	set = inject_ok(s, r, true);
	/* Missing twice over: as the System32 companion, and as a file of the
	 * package's media ([SourceDisksFiles]) absent from its folder. */
	cr_assert_eq(set->n_missing, 2);
	cr_assert_str_eq(set->missing[0], "Windows/System32/nvml.dll");
	cr_assert_str_eq(set->missing[1], "Windows/System32/HostDriverStore/FileRepository/" NV_NEW
			 "/nvml_loader.dll");
	cr_assert_lt(dt_find(set, "Windows/System32/nvml.dll"), 0);
	cr_assert_geq(dt_find(set, "Windows/System32/nvcuda.dll"), 0);
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(victim);
	free(root);
}

/* A file of the package's media that no companion copies (the kernel
 * driver itself) missing from the folder: an incomplete copy of the
 * DriverStore would otherwise be injected "successfully" and give Code 43. */
Test(store, missing_package_file)
{
	char *root = dt_mkstore(dir);
	char *victim = t_strdup_printf("%s/" REPO_REL "/" NV_NEW "/nvlddmkm.sys", root);
	struct gp_store *s;
	struct gp_resolution *r;
	struct gp_inject_set *set = NULL;
	struct gp_inject_opts o = { 0 };
	const char *msg;

	cr_assert_eq(unlink(victim), 0);
	s = dt_open(root);
	r = resolve_ok(s, NV_GPU, NULL);
	cr_assert_eq(gp_store_injection_set(s, r->pkg, r->model, &o, &set), GP_ERR_NOTFOUND);
	cr_assert_null(set);
	msg = gp_store_error(s)->msg;
	cr_assert(strstr(msg, NV_NEW ": nvlddmkm.sys, listed in [SourceDisksFiles") &&
		  strstr(msg, "of nv_dispi.inf, is missing from the package folder"), "%s", msg);
	cr_assert_null(strchr(msg, '\n'), "one line: %s", msg);
	set = inject_ok(s, r, true);
	cr_assert_eq(set->n_missing, 1);
	cr_assert_str_eq(set->missing[0], "Windows/System32/HostDriverStore/FileRepository/" NV_NEW
			 "/nvlddmkm.sys");
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(victim);
	free(root);
}

Test(store, auto_with_two_gpus_and_with_one)
{
	char *root = dt_mkstore(dir);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = NULL;
	struct gp_inject_set *set;
	struct t_run t;

	cr_assert_eq(gp_store_resolve(s, "auto", NULL, &r), GP_ERR_INVALID);
	cr_assert(strstr(gp_store_error(s)->msg, "nv_dispi.inf") &&
		  strstr(gp_store_error(s)->msg, "iigd_dch.inf"), "%s", gp_store_error(s)->msg);
	cr_assert_null(r->pkg);
	gp_resolution_free(r);
	gp_store_close(s);

	/* Without Intel, and with a Basic-Display-like package (Display class,
	 * only a PCI class-code ID): one GPU vendor left. */
	t_run(&t, "rm -r '%s/" REPO_REL "/" INTEL_PKG "' && cd '%s/" REPO_REL "' && "
		  "mkdir basicdisplay.inf_amd64_aaaa0000aaaa0000 && printf '"
		  "[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
		  "DriverVer=06/21/2006,10.0.22621.1\n[Manufacturer]\nMS=Basic,NTamd64\n"
		  "[Basic.NTamd64]\nBasic Display=BasicDisplay,PCI\\CC_0300,PCI\\CC_0301\n' "
		  "> basicdisplay.inf_amd64_aaaa0000aaaa0000/basicdisplay.inf", root, root);
	cr_assert_eq(t.status, 0);
	t_run_free(&t);
	s = dt_open(root);
	r = resolve_ok(s, "auto", NULL);
	cr_assert(r->automatic);
	cr_assert_str_eq(r->pkg->folder, NV_NEW);
	cr_assert_null(r->model);
	cr_assert_eq(dt_cand(r, NV_OLD)->verdict, GP_CAND_OLDER);
	cr_assert(strstr(dt_cand(r, "basicdisplay.inf_amd64_aaaa0000aaaa0000")->why, "drives no PCI GPU"),
		  "%s", dt_cand(r, "basicdisplay.inf_amd64_aaaa0000aaaa0000")->why);
	/* every model's install section counts */
	set = inject_ok(s, r, false);
	cr_assert_geq(dt_find(set, "Windows/System32/AsusOverlay.dll"), 0);
	cr_assert_geq(dt_find(set, "Windows/System32/nvW11only.dll"), 0);
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, real_nvidia_inf_package)
{
	char *root = dt_real_store(dir, true);
	struct gp_store *s = dt_open(root);
	const struct gp_package *p = dt_pkg(s, "nv_dispi.inf_amd64_4f3a7b2c1d0e9f8a");
	struct gp_resolution *r;
	struct gp_inject_set *set;
	size_t nv = 0, sys32 = 0, wow = 0;
	long i;

	cr_assert_not_null(p);
	for (size_t m = 0; m < p->n_models; m++)
		for (size_t k = 0; k < p->models[m].n_ids; k++)
			nv += strncmp(p->models[m].ids[k], "PCI\\VEN_10DE", 12) == 0;
	cr_assert_eq(nv, 178);
	cr_assert_eq(p->n_models, 178);
	cr_assert_eq(p->targets[0].build, 17098);
	cr_assert_eq(p->n_copyinf, 3, "nvhda.inf, nvppc.inf, nvpcf.inf");

	/* RTX 3080 (DEV_2206) */
	r = resolve_ok(s, "PCI\\VEN_10DE&DEV_2206&SUBSYS_38971462&REV_A1", NULL);
	cr_assert_str_eq(r->model->install_section, "Section090");
	set = inject_ok(s, r, false);
	cr_assert_geq(i = dt_find(set, "Windows/System32/nvml.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "nvml_loader.dll");
	cr_assert(strstr(set->files[i].origin, "CopyToVmWhenNewer NvmlDriverFiles"), "%s", set->files[i].origin);
	cr_assert_geq(i = dt_find(set, "Windows/System32/nvcuda.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "nvcuda_loader64.dll");
	cr_assert(strstr(set->files[i].origin, "CopyToVmWhenNewer CudaDriverFiles"));
	cr_assert_geq(i = dt_find(set, "Windows/System32/OpenCL.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "OpenCL64.dll");
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/nvcuda.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "nvcuda_loader32.dll");
	cr_assert(strstr(set->files[i].origin, "CopyToVmWhenNewerWow64 CudaDriverFiles"));
	cr_assert_geq(i = dt_find(set, "Windows/SysWOW64/vulkan-1.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "vulkan-1-x86.dll");
	cr_assert_geq(dt_find(set, "Windows/System32/lxss/lib/libcuda.so.1.1"), 0, "11,lxss\\lib");
	cr_assert_geq(dt_find(set, "Windows/System32/nvapi64.dll"), 0);
	cr_assert_lt(dt_find(set, "Windows/System32/nvlddmkm.sys"), 0);
	for (size_t k = 0; k < set->count; k++) {
		sys32 += set->files[k].role == GP_INJECT_COMPANION &&
			 strncmp(set->files[k].guest_path, "Windows/System32/", 17) == 0;
		wow += set->files[k].role == GP_INJECT_COMPANION &&
		       strncmp(set->files[k].guest_path, "Windows/SysWOW64/", 17) == 0;
	}
	cr_assert_geq(sys32, 20, "System32 companions: %zu", sys32);
	cr_assert_eq(wow, 13, "SysWOW64 companions: %zu", wow);
	cr_assert_eq(set->n_copyinf, 2);
	cr_assert_str_eq(set->copyinf[0]->inf_name, "nvhda.inf");
	cr_assert_str_eq(set->copyinf[1]->inf_name, "nvppc.inf");
	cr_assert_eq(set->n_folders, 3);
	cr_assert_eq(set->n_missing, 0);
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, real_nvidia_inf_without_files)
{
	char *root = dt_real_store(dir, false);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = resolve_ok(s, "PCI\\VEN_10DE&DEV_2206", NULL);
	struct gp_inject_set *set = NULL;
	struct gp_inject_opts o = { 0 };

	cr_assert_eq(gp_store_injection_set(s, r->pkg, r->model, &o, &set), GP_ERR_NOTFOUND);
	cr_assert(strstr(gp_store_error(s)->msg, "nv_dispi.inf:") &&
		  strstr(gp_store_error(s)->msg, "neither in"), "%s", gp_store_error(s)->msg);
	set = inject_ok(s, r, true);
	cr_assert_gt(set->n_missing, 30);
	cr_assert_eq(set->n_copyinf, 2);
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

/* A hand-made one-package store: @inf_text as deep.inf. */
static char *one_package_store(const char *inf_text)
{
	char *root = t_strdup_printf("%s/one", dir);
	char *pd = t_strdup_printf("%s/" REPO_REL "/deep.inf_amd64_0123456789abcdef", root);
	char *inf = t_strdup_printf("%s/deep.inf", pd);
	struct t_run t;

	t_run(&t, "mkdir -p '%s'", pd);
	cr_assert_eq(t.status, 0);
	t_run_free(&t);
	cr_assert_eq(t_write_file(inf, inf_text, strlen(inf_text)), 0);
	free(pd);
	free(inf);
	return root;
}

Test(store, needs_chains_are_bounded)
{
	char text[8192];
	size_t n = (size_t)sprintf(text,
		"[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
		"DriverVer=01/01/2024,1.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nGPU=S0,PCI\\VEN_1234&DEV_5678\n");
	struct gp_store *s;
	struct gp_resolution *r;
	struct gp_inject_set *set = NULL;
	char *root;

	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(text + n, "[S%d]\nNeeds=S%d, S0\n", i, i + 1);
	root = one_package_store(text);
	s = dt_open(root);
	r = resolve_ok(s, "PCI\\VEN_1234&DEV_5678", NULL);
	cr_assert_eq(gp_store_injection_set(s, r->pkg, r->model, NULL, &set), GP_ERR_CORRUPT);
	cr_assert(strstr(gp_store_error(s)->msg, "deep.inf") &&
		  strstr(gp_store_error(s)->msg, "nested deeper"), "%s", gp_store_error(s)->msg);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, hostile_destination_names_are_refused)
{
	static const char text[] =
		"[Version]\nClass=Display\nClassGuid={4D36E968-E325-11CE-BFC1-08002BE10318}\n"
		"DriverVer=01/01/2024,1.0.0.0\n[Manufacturer]\nM=Dev\n"
		"[Dev]\nGPU=S,PCI\\VEN_1234&DEV_5678&REV_01\n"
		"[S]\nCopyFiles=up,escape,ok\nCopyINF=.\\sub\\deep.inf, .\\audio\\nothere.inf\n"
		"[DestinationDirs]\nup=11\nescape=10,System32\\..\\..\\etc\nok=10,system32\\sub\n"
		"[up]\n..\\evil.dll,deep.inf\n[escape]\npasswd,deep.inf\n[ok]\nfine.dll,deep.inf\n";
	char *root = one_package_store(text);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = resolve_ok(s, "PCI\\VEN_1234&DEV_5678&REV_01", NULL);
	struct gp_inject_set *set = inject_ok(s, r, false);
	long i;

	cr_assert_eq(r->cands[0].rank, GP_MATCH_VEN_DEV_REV);
	cr_assert_eq(set->n_notes, 1);
	cr_assert(strstr(set->notes[0], "..\\evil.dll"), "%s", set->notes[0]);
	cr_assert_geq(i = dt_find(set, "Windows/System32/sub/fine.dll"), 0);
	cr_assert_str_eq(basename_of(set->files[i].source_path), "deep.inf");
	for (size_t k = 0; k < set->count; k++)
		cr_assert_null(strstr(set->files[k].guest_path, ".."), "%s", set->files[k].guest_path);
	cr_assert_eq(set->count, 2);
	/* CopyINF with a media path: found by name (itself, so skipped) or not */
	cr_assert_eq(set->n_copyinf, 0);
	cr_assert_eq(set->n_copyinf_missing, 1);
	cr_assert_str_eq(set->copyinf_missing[0], ".\\audio\\nothere.inf");
	gp_inject_set_free(set);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

/* A destination Windows cannot create (a DOS device name, also with an
 * extension, a name ending in a dot or a space) fails the set, naming the
 * INF, the section and the name: `drivers` says so with exit 1, and
 * `prepare -n` refuses with exit 1 and the image untouched, instead of a
 * write failing half-way (it used to, with exit 2). */
Test(store, reserved_destination_names_fail_the_set)
{
	static const char *const names[] = { "CON", "nul.txt", "LPT1", "com9.dll", "aux",
					      "trailing.", "space " };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char text[1024];
		char *root, *img;
		struct gp_store *s;
		struct gp_resolution *r;
		struct gp_inject_set *set = NULL;
		struct t_run t;
		char before[65], after[65];

		snprintf(text, sizeof(text),
			 "[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
			 "DriverVer=01/01/2024,1.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
			 "[Dev.NTamd64]\nGPU=S,PCI\\VEN_1234&DEV_5678\n"
			 "[S]\nCopyFiles=ok,dev\n[DestinationDirs]\nok=11\ndev=11\n"
			 "[ok]\nfine.dll,deep.inf\n[dev]\n\"%s\",deep.inf\n", names[i]);
		root = one_package_store(text);
		s = dt_open(root);
		r = resolve_ok(s, "PCI\\VEN_1234&DEV_5678", NULL);
		cr_assert_eq(gp_store_injection_set(s, r->pkg, r->model, NULL, &set), GP_ERR_CORRUPT,
			     "%s accepted", names[i]);
		cr_assert(strstr(gp_store_error(s)->msg, "deep.inf: CopyFiles dev:") &&
			  strstr(gp_store_error(s)->msg, names[i]), "%s", gp_store_error(s)->msg);
		gp_resolution_free(r);
		gp_store_close(s);

		t_gpup(&t, "drivers --driverstore '%s' --gpu 'PCI\\VEN_1234&DEV_5678'", root);
		cr_assert_eq(t.status, 1, "drivers with '%s': exit %d: %s", names[i], t.status, t.err);
		cr_assert(strstr(t.err, "CopyFiles dev") && strstr(t.err, names[i]), "%s", t.err);
		t_run_free(&t);
		img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
		cr_assert_eq(t_sha256_file(img, before), 0);
		t_gpup(&t, "prepare '%s' -n --driverstore '%s' --gpu 'PCI\\VEN_1234&DEV_5678'", img,
		       root);
		cr_assert_eq(t.status, 1, "prepare -n with '%s': exit %d: %s", names[i], t.status,
			     t.err);
		t_run_free(&t);
		cr_assert_eq(t_sha256_file(img, after), 0);
		cr_assert_str_eq(before, after, "prepare -n changed the image");
		t_run(&t, "rm -rf '%s'", root);
		t_run_free(&t);
		free(img);
		free(root);
	}
}

Test(store, match_only_under_a_newer_target_os)
{
	static const char text[] =
		"[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
		"DriverVer=01/01/2024,1.0.0.0\n"
		"[Manufacturer]\nM=Dev,NTamd64.10.0...17098,NTamd64.10.0...26100\n"
		"[Dev.NTamd64.10.0...17098]\nOld=S,PCI\\VEN_1234&DEV_0001\n"
		"[Dev.NTamd64.10.0...26100]\nNew=S,PCI\\VEN_1234&DEV_5678\n[S]\n";
	char *root = one_package_store(text);
	struct gp_store *s = dt_open(root);
	struct gp_guest_target w10 = { .arch = "amd64", .build = 19045 };
	struct gp_resolution *r = NULL;

	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_1234&DEV_5678", &w10, &r), GP_ERR_NOTFOUND);
	cr_assert_eq(r->cands[0].verdict, GP_CAND_TARGET_OS);
	cr_assert(strstr(r->cands[0].why, "only under TargetOS NTamd64.10.0...26100") &&
		  strstr(r->cands[0].why, "build 19045"), "%s", r->cands[0].why);
	gp_resolution_free(r);
	r = resolve_ok(s, "PCI\\VEN_1234&DEV_5678", NULL);
	cr_assert_str_eq(r->pkg->targets[r->model->target].decoration, "NTamd64.10.0...26100");
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

/* A decoration asking for a newer NT version than 10.0 (NTamd64.10.1) fits no
 * GPU-P guest, whatever its build; the plain NT 10.0 one does. */
Test(store, target_os_newer_nt_version_does_not_fit)
{
	static const char text[] =
		"[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
		"DriverVer=01/01/2024,1.0.0.0\n"
		"[Manufacturer]\nM=Dev,NTamd64.10.0,NTamd64.10.1\n"
		"[Dev.NTamd64.10.0]\nOld=S,PCI\\VEN_1234&DEV_0001\n"
		"[Dev.NTamd64.10.1]\nNew=S,PCI\\VEN_1234&DEV_5678\n[S]\n";
	char *root = one_package_store(text);
	struct gp_store *s = dt_open(root);
	struct gp_resolution *r = NULL;

	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_1234&DEV_5678", NULL, &r), GP_ERR_NOTFOUND);
	cr_assert_eq(r->cands[0].verdict, GP_CAND_TARGET_OS);
	gp_resolution_free(r);
	r = resolve_ok(s, "PCI\\VEN_1234&DEV_0001", NULL);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

/* Three packages for the same device: the later DriverVer date wins even
 * with a lower version number, and on the same date the higher version
 * (Windows ranks by date, then version). */
Test(store, driver_date_then_version_picks_the_newest)
{
	static const char *const infs[] = { "01/01/2020,9.0.0.0", "02/01/2020,1.0.0.0",
					    "02/01/2020,1.10.0.0" };
	static const char *const names[] = { NULL, "late", "later" };
	char *root = NULL;
	struct gp_store *s;
	struct gp_resolution *r;

	for (int i = 0; i < 3; i++) {
		char *text = t_strdup_printf(
			"[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
			"DriverVer=%s\n[Manufacturer]\nM=Dev,NTamd64\n"
			"[Dev.NTamd64]\nGPU=S,PCI\\VEN_1234&DEV_5678\n[S]\n", infs[i]);

		if (!i) {
			root = one_package_store(text);
		} else {
			char *pd = t_strdup_printf("%s/" REPO_REL "/%s.inf_amd64_fedcba987654321%d", root,
						   names[i], i);
			char *inf = t_strdup_printf("%s/%s.inf", pd, names[i]);

			cr_assert_eq(mkdir(pd, 0755), 0);
			cr_assert_eq(t_write_file(inf, text, strlen(text)), 0);
			free(inf);
			free(pd);
		}
		free(text);
	}
	s = dt_open(root);
	r = resolve_ok(s, "PCI\\VEN_1234&DEV_5678", NULL);
	cr_assert_str_eq(r->pkg->folder, "later.inf_amd64_fedcba9876543212",
			 "02/01/2020 1.10.0.0 beats 02/01/2020 1.0.0.0 and 01/01/2020 9.0.0.0");
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

Test(store, hardware_id_match_beats_compatible_id_match)
{
	static const char hw[] =
		"[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
		"DriverVer=01/01/2020,1.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nGPU=S,PCI\\VEN_1234&DEV_5678\n[S]\n";
	static const char compat[] =
		"[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"
		"DriverVer=01/01/2024,2.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nGPU=S,PCI\\VEN_9999&DEV_0000,PCI\\VEN_1234&DEV_5678&SUBSYS_00011234\n[S]\n";
	char *root = one_package_store(hw);
	char *pd = t_strdup_printf("%s/" REPO_REL "/compat.inf_amd64_fedcba9876543210", root);
	char *inf = t_strdup_printf("%s/compat.inf", pd);
	struct gp_store *s;
	struct gp_resolution *r;

	cr_assert_eq(mkdir(pd, 0755), 0);
	cr_assert_eq(t_write_file(inf, compat, strlen(compat)), 0);
	s = dt_open(root);
	r = resolve_ok(s, "PCI\\VEN_1234&DEV_5678&SUBSYS_00011234", NULL);
	cr_assert_str_eq(r->pkg->folder, "deep.inf_amd64_0123456789abcdef",
			 "older, less specific, but a hardware-ID match");
	cr_assert(!r->cands[0].compatible);
	cr_assert(r->cands[1].compatible);
	cr_assert_eq(r->cands[1].verdict, GP_CAND_LESS_SPECIFIC);
	cr_assert(strstr(r->cands[1].why, "compatible ID"), "%s", r->cands[1].why);
	gp_resolution_free(r);
	gp_store_close(s);
	free(pd);
	free(inf);
	free(root);
}
