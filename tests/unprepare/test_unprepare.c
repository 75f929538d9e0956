/*
 * test_unprepare.c — the guest record of prepare's changes
 * (drivers/manifest.h) and `gpup unprepare`, end to end on generated
 * guests (tests/fixtures/mkguest.sh) and DriverStores (mkstore.sh). The
 * guest is read back without gpup: qemu-img to raw, then ntfs-3g's ntfsls
 * and ntfscat walk and hash every file of the Windows tree.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define NV_NEW "nv_dispi.inf_amd64_2222bbbb22220002"
#define FR "Windows/System32/DriverStore/FileRepository"
/* A guest whose System32 already holds a vulkan-1.dll (a file of Windows,
 * which the driver's companion of that name replaces). */
#define GUEST_ARGS "--size 1G --vhdx --system-file vulkan-1.dll"

static char *dir;

static void setup(void) { dir = t_tmpdir(); }
static void teardown(void) { t_rm_rf(dir); free(dir); }

TestSuite(unprepare, .init = setup, .fini = teardown, .timeout = 300);

static const char *sha_of(const char *path)
{
	static char ring[4][65];
	static unsigned next;
	char *hex = ring[next++ % 4];

	cr_assert_eq(t_sha256_file(path, hex), 0, "cannot hash %s", path);
	return hex;
}

/* Append "PATH SHA256\n" for every file below @path of volume @part to
 * @out, walking with ntfsls -F (directories end in '/') and hashing with
 * ntfscat. */
static void walk(const char *part, const char *path, FILE *out)
{
	struct t_run r;
	char *save, *line;

	t_run(&r, "ntfsls -f -F -p '%s' '%s'", path, part);
	cr_assert_eq(r.status, 0, "ntfsls %s: %s", path, r.err);
	for (line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t n = strlen(line);
		char *sub;

		if (!strcmp(line, "./") || !strcmp(line, "../") || !strcmp(line, ".") ||
		    !strcmp(line, ".."))
			continue;
		if (n && line[n - 1] == '/') {
			line[n - 1] = '\0';
			sub = t_strdup_printf("%s/%s", path, line);
			fprintf(out, "%s/\n", sub);
			walk(part, sub, out);
		} else {
			struct t_run h;

			sub = t_strdup_printf("%s/%s", path, line);
			t_run(&h, "ntfscat -f '%s' '%s' | sha256sum | cut -c1-64", part, sub);
			cr_assert_eq(h.status, 0, "ntfscat %s: %s", sub, h.err);
			fprintf(out, "%s %s", sub, h.out);
			t_run_free(&h);
		}
		free(sub);
	}
	t_run_free(&r);
}

/* Every directory and file of the guest's Windows tree with the SHA-256 of
 * each file, read without gpup (malloc'ed text, one per line). */
static char *windows_tree(const char *img, const char *args)
{
	char *fx = t_fixture("mkguest.sh", args);
	char *partfile = t_strdup_printf("%s/guest.part", fx);
	char *part = t_volume_of(img, partfile, dir);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct t_run r;

	cr_assert_not_null(out);
	walk(part, "/Windows", out);
	fclose(out);
	t_run(&r, "ntfsfix -n '%s'", part);
	cr_assert_eq(r.status, 0, "ntfsfix -n: %s%s", r.out, r.err);
	t_run_free(&r);
	unlink(part);
	free(part);
	free(partfile);
	free(fx);
	return text;
}

static void gpup_ok(const char *what, const char *fmt, const char *img, const char *st)
{
	struct t_run r;

	t_gpup(&r, fmt, img, st);
	cr_assert_eq(r.status, 0, "%s: exit %d: %s%s", what, r.status, r.out, r.err);
	t_run_free(&r);
}

#define PREPARE "prepare '%s' --driverstore '%s' --gpu '" NV_GPU "' -q --replace-system-files"

/* The acceptance test of issue 20: prepare, then unprepare, on a guest that
 * had its own vulkan-1.dll: every file of the Windows tree has its
 * original SHA-256 again, nothing of gpup's is left (no HostDriverStore:
 * the guest had none; no gpup folder). On the way: the record is there
 * after prepare, a second prepare leaves the image byte-identical, verify
 * checks the record, and a second unprepare is refused with the image
 * byte-identical. */
Test(unprepare, restores_every_file_of_the_windows_tree)
{
	char *img = t_guest_copy(dir, GUEST_ARGS, "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *before = windows_tree(img, GUEST_ARGS), *mid, *after;
	char sum[65];
	struct t_run r;

	cr_assert(strstr(before, "/Windows/System32/vulkan-1.dll "), "fixture: %s", before);
	gpup_ok("prepare", PREPARE, img, st);
	mid = windows_tree(img, GUEST_ARGS);
	cr_assert(strstr(mid, "/Windows/System32/gpup/manifest.json "), "no record: %s", mid);
	cr_assert(strstr(mid, "/Windows/System32/gpup/backup/0-vulkan-1.dll "), "no backup: %s", mid);
	cr_assert(strstr(mid, "/Windows/System32/HostDriverStore/FileRepository/" NV_NEW "/"), "%s", mid);
	/* Idempotent, the record included. */
	strcpy(sum, sha_of(img));
	gpup_ok("second prepare", PREPARE, img, st);
	cr_assert_str_eq(sha_of(img), sum, "a second prepare changed the image");
	gpup_ok("verify", "verify '%s' --driverstore '%s' --gpu '" NV_GPU "' -q", img, st);

	t_gpup(&r, "unprepare '%s' --json", img);
	cr_assert_eq(r.status, 0, "unprepare: %s%s", r.out, r.err);
	cr_assert(strstr(r.out, "\"Windows/System32/vulkan-1.dll\""), "not restored: %s", r.out);
	t_run_free(&r);
	after = windows_tree(img, GUEST_ARGS);
	cr_assert_str_eq(after, before, "the Windows tree differs after unprepare");
	cr_assert_null(strstr(after, "HostDriverStore"));
	cr_assert_null(strstr(after, "/gpup"));

	strcpy(sum, sha_of(img));
	t_gpup(&r, "unprepare '%s'", img);
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "no gpup manifest in the guest"), "%s", r.err);
	t_run_free(&r);
	cr_assert_str_eq(sha_of(img), sum, "a refused unprepare changed the image");
	free(before);
	free(mid);
	free(after);
	free(st);
	free(img);
}

/* A guest gpup never touched: a clear error (exit 1, "notfound" in the
 * JSON failure object), for -n too, and the image stays byte-identical. */
Test(unprepare, untouched_guest_is_refused_byte_identical)
{
	char *img = t_guest_copy(dir, "--size 1G --vhdx", "g.vhdx");
	char before[65];
	struct json_object *o, *e, *v;
	struct t_run r;

	strcpy(before, sha_of(img));
	for (int dry = 0; dry < 2; dry++) {
		t_gpup(&r, "unprepare '%s' --json %s", img, dry ? "-n" : "");
		cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
		cr_assert(strstr(r.err, "gpup has not prepared it"), "%s", r.err);
		o = json_tokener_parse(r.out);
		cr_assert_not_null(o, "not JSON: %s", r.out);
		cr_assert(json_object_object_get_ex(o, "error", &e));
		cr_assert(json_object_object_get_ex(e, "code", &v));
		cr_assert_str_eq(json_object_get_string(v), "notfound");
		cr_assert(json_object_object_get_ex(o, "image_changed", &v));
		cr_assert(!json_object_get_boolean(v));
		json_object_put(o);
		t_run_free(&r);
		cr_assert_str_eq(sha_of(img), before, "unprepare changed an untouched image");
	}
	free(img);
}

/* A second prepare from a newer driver replaces gpup's own vulkan-1.dll:
 * the backup still holds the guest's original (never gpup's first copy),
 * -n lists no new backup, and unprepare brings the original back. */
Test(unprepare, repeat_prepare_keeps_the_original_backup)
{
	char *img = t_guest_copy(dir, GUEST_ARGS, "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *st2 = t_strdup_printf("%s/store2", dir);
	char *before = windows_tree(img, GUEST_ARGS), *after;
	struct t_run r;

	cr_assert_eq(t_run(&r, "cp -r '%s' '%s' && printf 'newer' >>'%s/" FR "/" NV_NEW
			   "/vulkan-1-x64.dll'", st, st2, st2), 0, "%s", r.err);
	t_run_free(&r);
	gpup_ok("prepare", PREPARE, img, st);
	t_gpup(&r, PREPARE " -n --json", img, st2);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"backups\":[\n      ]") || strstr(r.out, "\"backups\":[]"),
		  "a second backup is planned: %s", r.out);
	t_run_free(&r);
	gpup_ok("prepare (newer)", PREPARE, img, st2);
	t_gpup(&r, "cat '%s' 'Windows/System32/gpup/backup/0-vulkan-1.dll'", img);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "fake kernel driver\n", "the backup is not the original: %s", r.out);
	t_run_free(&r);
	gpup_ok("unprepare", "unprepare '%s'%s", img, " -q");
	after = windows_tree(img, GUEST_ARGS);
	cr_assert_str_eq(after, before, "the Windows tree differs after unprepare");
	free(before);
	free(after);
	free(st2);
	free(st);
	free(img);
}

/* prepare SIGKILLed several files into its writes: the record written
 * before the first file already lists everything the run may have
 * touched, so unprepare (no rerun of prepare first) brings the Windows tree
 * back to what it was. */
Test(unprepare, undoes_a_killed_prepare)
{
	static const char *const args = "--size 1G --vhdx";
	char *img = t_guest_copy(dir, args, "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *before = windows_tree(img, args), *after;
	int fd, status;
	pid_t pid = t_prepare_blocked_on_progress(img, st, NV_GPU, &fd);
	struct t_run r;

	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	close(fd);
	cr_assert(WIFSIGNALED(status), "prepare was not killed");
	t_gpup(&r, "ls '%s' 'Windows/System32/HostDriverStore/FileRepository/" NV_NEW "'", img);
	cr_assert_eq(r.status, 0, "the kill came before the package: %s", r.err);
	t_run_free(&r);
	t_gpup(&r, "unprepare '%s'", img);
	cr_assert_eq(r.status, 0, "unprepare after a kill: %s%s", r.out, r.err);
	t_run_free(&r);
	after = windows_tree(img, args);
	cr_assert_str_eq(after, before, "the Windows tree differs after unprepare");
	free(before);
	free(after);
	free(st);
	free(img);
}
