/* test_rank.c — choosing a package the way Windows does, on synthetic INFs:
 * model lines naming missing install sections, the one TargetOS decoration
 * per [Manufacturer] line (an empty one refuses the OS), and the rank
 * (FeatureScore, then the identifier score, then DriverVer), each with the
 * decision and the `gpup drivers --explain` text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "drivers_test.h"
#include "helpers.h"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(rank, .init = setup, .fini = teardown);

#define VERSION_DISPLAY \
	"[Version]\nClass=Display\nClassGuid={4d36e968-e325-11ce-bfc1-08002be10318}\n"

/* Write package folder @name.inf_amd64_<hash> holding @name.inf = @text
 * into the store at DIR/host; returns the root (malloc'ed). */
static char *add_pkg(const char *name, const char *hash, const char *text)
{
	char *root = t_strdup_printf("%s/host", dir);
	char *pd = t_strdup_printf("%s/" REPO_REL "/%s.inf_amd64_%s", root, name, hash);
	char *inf = t_strdup_printf("%s/%s.inf", pd, name);
	struct t_run t;

	t_run(&t, "mkdir -p '%s'", pd);
	cr_assert_eq(t.status, 0);
	t_run_free(&t);
	cr_assert_eq(t_write_file(inf, text, strlen(text)), 0);
	free(pd);
	free(inf);
	return root;
}

static bool has_warning(const struct gp_store *s, const char *text)
{
	for (size_t i = 0; i < gp_store_warning_count(s); i++)
		if (strstr(gp_store_warning(s, i), text))
			return true;
	return false;
}

/* 44 lines of a real modded INF point at a missing [R445]: Windows cannot
 * install from them. gpup warns once per section naming the first line,
 * never picks such a line, and says so when nothing else matches. */
Test(rank, model_line_naming_a_missing_install_section)
{
	static const char mod[] =
		VERSION_DISPLAY "DriverVer=06/01/2024,31.0.15.5000\n"
		"[Manufacturer]\nNV=Dev,NTamd64.10.0\n"
		"[Dev.NTamd64.10.0]\n"
		"A=R445,PCI\\VEN_10DE&DEV_1B80\n"                    /* line 8 */
		"B=R445,PCI\\VEN_10DE&DEV_1B81\n"
		"C=Good,PCI\\VEN_10DE&DEV_1B82\n"
		"[Good]\nFeatureScore=F8\n";
	static const char older[] =
		VERSION_DISPLAY "DriverVer=01/01/2020,27.0.0.1\n"
		"[Manufacturer]\nNV=Dev,NTamd64\n[Dev.NTamd64]\nB=Old,PCI\\VEN_10DE&DEV_1B81\n"
		"[Old.NTamd64]\n";
	char *root;
	struct gp_store *s;
	struct gp_resolution *r = NULL;
	struct t_run t;

	add_pkg("older", "0000000000000001", older);
	root = add_pkg("mod", "0000000000000002", mod);
	s = dt_open(root);
	cr_assert(has_warning(s, "mod.inf_amd64_0000000000000002: mod.inf line 8 (and 1 more model "
				 "lines) names install section [R445], which the INF does not have"),
		  "%s", gp_store_warning_count(s) ? gp_store_warning(s, 0) : "(no warning)");
	cr_assert_eq(gp_store_warning_count(s), 1);

	/* Only the broken line matches: a clear error, no package. */
	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_10DE&DEV_1B80", NULL, &r), GP_ERR_NOTFOUND);
	cr_assert_null(r->pkg);
	cr_assert(strstr(gp_store_error(s)->msg, "mod.inf line 8") &&
		  strstr(gp_store_error(s)->msg, "names install section [R445], which the INF "
						 "does not have"), "%s", gp_store_error(s)->msg);
	cr_assert_eq(dt_cand(r, "mod.inf_amd64_0000000000000002")->verdict, GP_CAND_NO_INSTALL_SECTION);
	gp_resolution_free(r);

	/* The newer INF's line for DEV_1B81 is broken: the older package,
	 * whose line Windows can install, is chosen. */
	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_10DE&DEV_1B81", NULL, &r), 0, "%s",
		     gp_store_error(s)->msg);
	cr_assert_str_eq(r->pkg->folder, "older.inf_amd64_0000000000000001");
	cr_assert_str_eq(r->model->install_section, "Old");
	cr_assert_eq(dt_cand(r, "mod.inf_amd64_0000000000000002")->verdict, GP_CAND_NO_INSTALL_SECTION);
	gp_resolution_free(r);

	/* A good line of the same INF still works. */
	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_10DE&DEV_1B82", NULL, &r), 0);
	cr_assert_str_eq(r->model->install_section, "Good");
	cr_assert_eq(r->cands[0].feature_score, 0xF8);
	gp_resolution_free(r);
	gp_store_close(s);

	t_gpup(&t, "drivers --driverstore '%s' --gpu 'PCI\\VEN_10DE&DEV_1B81' --explain", root);
	cr_assert_eq(t.status, 0, "%s", t.err);
	cr_assert(strstr(t.err, "warning: mod.inf_amd64_0000000000000002: mod.inf line 8 (and 1 more "
				"model lines) names install section [R445]"), "%s", t.err);
	cr_assert(strstr(t.out, "lost    mod.inf_amd64_0000000000000002: lost: "
				"PCI\\VEN_10DE&DEV_1B81 matches mod.inf line 9, whose install section "
				"[R445] does not exist; Windows cannot install from it"), "%s", t.out);
	t_run_free(&t);
	t_gpup(&t, "drivers --driverstore '%s' --gpu 'PCI\\VEN_10DE&DEV_1B80' --explain", root);
	cr_assert_eq(t.status, 1);
	cr_assert(strstr(t.err, "can install PCI\\VEN_10DE&DEV_1B80: mod.inf line 8"), "%s", t.err);
	cr_assert(strstr(t.out, "Chosen: none"), "%s", t.out);
	t_run_free(&t);
	free(root);
}

/* Intel's INF blocks Windows 8 and later with an empty [IntelGfx.NTamd64.6.2]:
 * on such a guest that empty section is the closest decoration, so the INF
 * does not install, although NTamd64.6.0 would fit. */
Test(rank, empty_closest_target_os_section_refuses_the_os)
{
	static const char intel[] =
		VERSION_DISPLAY "DriverVer=05/01/2015,10.18.10.4242\n"
		"[Manufacturer]\n%Intel%=IntelGfx,NTamd64.6.0,NTamd64.6.2\n"
		"[IntelGfx.NTamd64.6.0]\nHD4000=iHSWD,PCI\\VEN_8086&DEV_0166\n"
		"[IntelGfx.NTamd64.6.2]\n; Windows 8 and later: not this driver\n"
		"[iHSWD]\n[Strings]\nIntel=\"Intel Corporation\"\n";
	char *root = add_pkg("igdlh64", "1111111111111111", intel);
	struct gp_store *s = dt_open(root);
	struct gp_guest_target w10 = { .arch = "amd64", .build = 19045 };
	struct gp_guest_target w8 = { .arch = "amd64", .build = 9200 };
	struct gp_guest_target w7 = { .arch = "amd64", .build = 7601 };
	struct gp_resolution *r = NULL;
	struct t_run t;

	for (int i = 0; i < 2; i++) {
		cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_8086&DEV_0166", i ? &w8 : &w10, &r),
			     GP_ERR_NOTFOUND);
		cr_assert_null(r->pkg);
		cr_assert_eq(r->cands[0].verdict, GP_CAND_TARGET_OS);
		cr_assert(strstr(r->cands[0].why, "igdlh64.inf refuses this guest") &&
			  strstr(r->cands[0].why, "[IntelGfx.NTamd64.6.2], its models section for this "
						  "OS, is empty"), "%s", r->cands[0].why);
		cr_assert(strstr(r->cands[0].target_why, "NTamd64.6.2 is the closest, and its models "
					"section [IntelGfx.NTamd64.6.2] is empty: the INF does not "
					"install on this OS; not NTamd64.6.0 (less close)"),
			  "%s", r->cands[0].target_why);
		cr_assert(strstr(gp_store_error(s)->msg, "igdlh64.inf (igdlh64.inf_amd64_1111111111111111) "
				 "refuses it, its models section for this OS, "
				 "[IntelGfx.NTamd64.6.2], is empty"), "%s", gp_store_error(s)->msg);
		gp_resolution_free(r);
	}
	/* Windows 7 (NT 6.1): 6.2 is newer than the OS, 6.0 is used. */
	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_8086&DEV_0166", &w7, &r), 0, "%s",
		     gp_store_error(s)->msg);
	cr_assert_str_eq(r->model->install_section, "iHSWD");
	cr_assert(strstr(r->cands[0].target_why, "TargetOS for amd64, NT 6.1 build 7601: NTamd64.6.0 "
				"is the closest, models section [IntelGfx.NTamd64.6.0]; not NTamd64.6.2 "
				"(a newer Windows version)"), "%s", r->cands[0].target_why);
	gp_resolution_free(r);
	gp_store_close(s);

	t_gpup(&t, "drivers --driverstore '%s' --gpu 'PCI\\VEN_8086&DEV_0166' --build 9200 --explain",
	       root);
	cr_assert_eq(t.status, 1);
	cr_assert(strstr(t.out, "lost    igdlh64.inf_amd64_1111111111111111: lost: igdlh64.inf refuses "
				"this guest (amd64, NT 6.2 build 9200)"), "%s", t.out);
	cr_assert(strstr(t.out, "          TargetOS for amd64, NT 6.2 build 9200: NTamd64.6.2 is the "
				"closest, and its models section [IntelGfx.NTamd64.6.2] is empty"),
		  "%s", t.out);
	cr_assert(strstr(t.err, "refuses it"), "%s", t.err);
	t_run_free(&t);
	free(root);
}

/* Of several decorations that apply, Windows uses the closest only: the
 * highest version and build not above the guest's, a product type other
 * than workstation never applies to a client guest. */
Test(rank, closest_target_os_decoration_only)
{
	static const char text[] =
		VERSION_DISPLAY "DriverVer=01/01/2024,1.0.0.0\n"
		"[Manufacturer]\nM=Dev,NTamd64,NTamd64.10.0...17134,NTamd64.10.0...22000,"
		"NTamd64.10.0.3,NTamd64.10.0...26100\n"
		"[Dev.NTamd64]\nG=Any,PCI\\VEN_1234&DEV_5678\n"
		"[Dev.NTamd64.10.0...17134]\nG=RS4,PCI\\VEN_1234&DEV_5678\n"
		"[Dev.NTamd64.10.0...22000]\nG=W11,PCI\\VEN_1234&DEV_5678\n"
		"[Dev.NTamd64.10.0.3]\nG=Server,PCI\\VEN_1234&DEV_5678\n"
		"[Dev.NTamd64.10.0...26100]\nOther=W11,PCI\\VEN_1234&DEV_9999\n"
		"[Any]\n[RS4]\n[W11]\n[Server]\n";
	char *root = add_pkg("deco", "2222222222222222", text);
	struct gp_store *s = dt_open(root);
	static const struct { uint32_t build; const char *section; } cases[] = {
		{ 10240, "Any" }, { 17134, "RS4" }, { 19045, "RS4" }, { 22631, "W11" },
	};
	struct gp_resolution *r = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gp_guest_target g = { .arch = "amd64", .build = cases[i].build };

		cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_1234&DEV_5678", &g, &r), 0, "%s",
			     gp_store_error(s)->msg);
		cr_assert_str_eq(r->model->install_section, cases[i].section, "build %u",
				 (unsigned)cases[i].build);
		gp_resolution_free(r);
	}
	/* The newest guest: ...26100 is the closest and lists only DEV_9999,
	 * so DEV_5678 matches only under decorations Windows does not use. */
	cr_assert_eq(gp_store_resolve(s, "PCI\\VEN_1234&DEV_5678", NULL, &r), GP_ERR_NOTFOUND);
	cr_assert_eq(r->cands[0].verdict, GP_CAND_TARGET_OS);
	cr_assert(strstr(r->cands[0].target_why, "NTamd64.10.0...26100 is the closest") &&
		  strstr(r->cands[0].target_why, "not NTamd64.10.0.3 (another product type)") &&
		  strstr(r->cands[0].target_why, "not NTamd64.10.0...22000 (less close)"),
		  "%s", r->cands[0].target_why);
	gp_resolution_free(r);
	gp_store_close(s);
	free(root);
}

/* Windows' rank 0xSSGGTHHH: FeatureScore (GG) before the identifier score
 * (T: hardware / compatible ID, HHH: the device ID's position), then the
 * DriverVer date and version. */
Test(rank, feature_score_then_identifier_then_driver_ver)
{
#define GPU "PCI\\VEN_1234&DEV_5678&SUBSYS_00011234&REV_01"
	static const char a[] =   /* FeatureScore 0xFE, VEN&DEV only */
		VERSION_DISPLAY "DriverVer=01/01/2020,1.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nG=S,PCI\\VEN_1234&DEV_5678\n[S]\nFeatureScore=xFE\n";
	static const char b[] =   /* no FeatureScore (0xFF), exact, newest */
		VERSION_DISPLAY "DriverVer=01/01/2025,9.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nG=S,PCI\\VEN_1234&DEV_5678&SUBSYS_00011234&REV_01\n[S]\n";
	static const char c[] =   /* 0xFE, VEN&DEV&SUBSYS */
		VERSION_DISPLAY "DriverVer=01/01/2019,1.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nG=S,PCI\\VEN_1234&DEV_5678&SUBSYS_00011234\n[S.NTamd64]\n"
		"FeatureScore=0xFE\n";
	static const char d[] =   /* 0xFE, SUBSYS as a compatible ID only */
		VERSION_DISPLAY "DriverVer=01/01/2024,1.0.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nG=S,PCI\\VEN_9999&DEV_0000,PCI\\VEN_1234&DEV_5678&SUBSYS_00011234\n"
		"[S]\nFeatureScore=FE\n";
	static const char e[] =   /* same rank as c, later date */
		VERSION_DISPLAY "DriverVer=06/01/2019,0.1.0.0\n[Manufacturer]\nM=Dev,NTamd64\n"
		"[Dev.NTamd64]\nG=S,PCI\\VEN_1234&DEV_5678&SUBSYS_00011234\n[S]\nFeatureScore=FE\n";
	char *root;
	struct gp_store *s;
	struct gp_resolution *r = NULL;
	struct t_run t;

	/* Step 1: FeatureScore beats the more exact match and the newer date. */
	add_pkg("a", "000000000000000a", a);
	root = add_pkg("b", "000000000000000b", b);
	s = dt_open(root);
	cr_assert_eq(gp_store_resolve(s, GPU, NULL, &r), 0);
	cr_assert_str_eq(r->pkg->folder, "a.inf_amd64_000000000000000a");
	cr_assert_eq(r->cands[0].score, 0xFE0003);
	cr_assert_eq(dt_cand(r, "b.inf_amd64_000000000000000b")->score, 0xFF0000);
	cr_assert_eq(dt_cand(r, "b.inf_amd64_000000000000000b")->verdict, GP_CAND_FEATURE_SCORE);
	cr_assert_str_eq(dt_cand(r, "b.inf_amd64_000000000000000b")->why,
			 "lost: FeatureScore 0xFF is worse than the chosen package's 0xFE (lower "
			 "wins; Windows ranks it before the hardware-ID match)");
	gp_resolution_free(r);
	gp_store_close(s);

	/* Step 2: same FeatureScore, the identifier score decides: a hardware
	 * ID with SUBSYS (0x0001) before VEN&DEV (0x0003) before a compatible
	 * ID (0x1001), whatever the dates. */
	add_pkg("c", "000000000000000c", c);
	add_pkg("d", "000000000000000d", d);
	s = dt_open(root);
	cr_assert_eq(gp_store_resolve(s, GPU, NULL, &r), 0);
	cr_assert_str_eq(r->pkg->folder, "c.inf_amd64_000000000000000c");
	cr_assert_eq(r->cands[0].score, 0xFE0001);
	cr_assert_eq(dt_cand(r, "a.inf_amd64_000000000000000a")->verdict, GP_CAND_LESS_SPECIFIC);
	cr_assert_eq(dt_cand(r, "d.inf_amd64_000000000000000d")->score, 0xFE1001);
	cr_assert(strstr(dt_cand(r, "d.inf_amd64_000000000000000d")->why, "matches only the compatible ID"),
		  "%s", dt_cand(r, "d.inf_amd64_000000000000000d")->why);
	cr_assert_str_eq(r->cands[1].pkg->folder, "a.inf_amd64_000000000000000a");
	cr_assert_str_eq(r->cands[2].pkg->folder, "d.inf_amd64_000000000000000d");
	cr_assert_str_eq(r->cands[3].pkg->folder, "b.inf_amd64_000000000000000b");
	gp_resolution_free(r);
	gp_store_close(s);

	/* Step 3: same rank, the later DriverVer date wins over a higher version. */
	add_pkg("e", "000000000000000e", e);
	s = dt_open(root);
	cr_assert_eq(gp_store_resolve(s, GPU, NULL, &r), 0);
	cr_assert_str_eq(r->pkg->folder, "e.inf_amd64_000000000000000e");
	cr_assert_eq(dt_cand(r, "c.inf_amd64_000000000000000c")->verdict, GP_CAND_OLDER);
	gp_resolution_free(r);
	gp_store_close(s);

	t_gpup(&t, "drivers --driverstore '%s' --gpu '" GPU "' --explain", root);
	cr_assert_eq(t.status, 0, "%s", t.err);
	cr_assert(strstr(t.out, "WON     e.inf_amd64_000000000000000e: chosen: "
				"PCI\\VEN_1234&DEV_5678&SUBSYS_00011234 (VEN&DEV&SUBSYS) in [Dev.NTamd64], "
				"FeatureScore 0xFE, DriverVer 06/01/2019 0.1.0.0"), "%s", t.out);
	cr_assert(strstr(t.out, "          rank 0xFE0001 = FeatureScore 0xFE (of [S]) + identifier "
				"score 0x0001 (hardware ID PCI\\VEN_1234&DEV_5678&SUBSYS_00011234, "
				"VEN&DEV&SUBSYS); DriverVer 06/01/2019 0.1.0.0"), "%s", t.out);
	cr_assert(strstr(t.out, "lost    c.inf_amd64_000000000000000c: lost: DriverVer 01/01/2019 "
				"1.0.0.0 is older than the chosen 06/01/2019 0.1.0.0 (same rank)"),
		  "%s", t.out);
	cr_assert(strstr(t.out, "lost    a.inf_amd64_000000000000000a: lost: "
				"a.inf_amd64_000000000000000a matches PCI\\VEN_1234&DEV_5678 (VEN&DEV), "
				"less specific than the chosen VEN&DEV&SUBSYS"), "%s", t.out);
	cr_assert(strstr(t.out, "lost    b.inf_amd64_000000000000000b: lost: FeatureScore 0xFF is "
				"worse"), "%s", t.out);
	cr_assert(strstr(t.out, "          rank 0xFF0000 = FeatureScore 0xFF (of [S]) + identifier "
				"score 0x0000 (hardware ID " GPU ", VEN&DEV&SUBSYS&REV)"), "%s", t.out);
	cr_assert(strstr(t.out, "          TargetOS for amd64, NT 10.0 newest build: NTamd64 is the "
				"closest, models section [Dev.NTamd64]"), "%s", t.out);
	t_run_free(&t);
	free(root);
#undef GPU
}
