/*
 * test_log.c — `gpup --log FILE` (tools/runlog.h): each run appends one
 * timestamped record (command line, plan, actions, warnings, errors, exit
 * status); a failing run records its error; a log that cannot be opened
 * fails the run with exit 2 before the image is touched (its SHA-256 is
 * compared).
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"

static char *dir;

static void setup(void)
{
	dir = t_tmpdir();
}

static void teardown(void)
{
	t_rm_rf(dir);
	free(dir);
}

#define NV "'PCI\\VEN_10DE&DEV_2860'"

/* The log's text; every line must have the record's form (a line a file
 * name could forge would not). */
static char *read_log(const char *path)
{
	static const char line_re[] =
		"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z gpup\\[[0-9]+\\] "
		"(start|plan|action|warning|note|error|result|end): [^\x01-\x1f]*$";
	char *text = t_read_file(path, NULL), *save = NULL, *copy;
	regex_t re;

	cr_assert(text, "no log at %s", path);
	cr_assert_eq(regcomp(&re, line_re, REG_EXTENDED | REG_NOSUB), 0);
	copy = strdup(text);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		cr_expect_eq(regexec(&re, l, 0, NULL, 0), 0, "not a record line: '%s'", l);
	regfree(&re);
	free(copy);
	return text;
}

/* How many lines of @text hold @needle. */
static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Two runs, --log before and after the command: two whole records, in
 * order, each with its command line, plan, action and exit status. A third
 * run fails on a file name holding a newline: its record says so, with the
 * newline escaped (read_log() checks that no line was forged). */
Test(log, two_runs_append_two_records, .init = setup, .fini = teardown, .timeout = 120)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *log = t_strdup_printf("%s/audit.log", dir);
	char *src = t_strdup_printf("%s/note.txt", dir);
	const char *first, *second;
	struct t_run r;
	char *text;

	cr_assert_eq(t_write_file(src, "hello", 5), 0);
	cr_assert_eq(t_gpup(&r, "--log '%s' put '%s' '%s' 'C:\\Temp'", log, img, src), 0, "%s",
		     r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "rm '%s' 'C:\\Temp\\note.txt' --log='%s'", img, log), 0, "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "put '%s' '%s/a\nb.txt' 'C:\\Temp' --log '%s'", img, dir, log), 1,
		     "%s", r.err);
	t_run_free(&r);
	text = read_log(log);
	cr_assert_eq(count(text, "] start: gpup "), 3, "%s", text);
	cr_assert_eq(count(text, "] end: exit 0\n"), 2, "%s", text);
	cr_expect(strstr(text, "a\\x0ab.txt") && strstr(text, "] error: ") &&
		  strstr(text, "] result: ") && strstr(text, "] end: exit 1\n"),
		  "the failed run, its newline escaped: %s", text);
	first = strstr(text, "start: gpup 0");
	second = strstr(first + 1, "start: gpup 0");
	cr_assert(first && second);
	cr_expect(strstr(first, "gpup put ") && strstr(first, "gpup put ") < second,
		  "the first record names its command line: %s", text);
	cr_expect(strstr(first, "plan: copy ") < strstr(first, "action: ") &&
		  strstr(first, "action: ") < strstr(first, "end: exit 0") &&
		  strstr(first, "end: exit 0") < second, "plan, action, end in order: %s", text);
	cr_expect(strstr(text, "plan: space: needs "), "%s", text);
	cr_expect(strstr(second, "gpup rm ") && strstr(second, "plan: remove ") &&
		  strstr(second, "action: ") && strstr(second, "--log") == NULL,
		  "the second record, without --log in its command line: %s", second);
	free(text);
	free(img);
	free(log);
	free(src);
}

/* prepare's record: the plan file by file (as many "new" lines as the
 * JSON report counts new files), the room, what was done and the
 * verification; the warnings too. */
Test(log, prepare_records_plan_and_actions, .init = setup, .fini = teardown, .timeout = 240)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *log = t_strdup_printf("%s/audit.log", dir);
	char *want;
	struct t_run r;
	char *text, *p;
	long n_new;

	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu " NV " --json --log '%s'", img, st, log);
	cr_assert_eq(r.status, 0, "%s", r.err);
	p = strstr(r.out, "\"new\":");
	cr_assert(p, "%s", r.out);
	n_new = strtol(p + 6, NULL, 10);
	cr_assert_gt(n_new, 0);
	t_run_free(&r);
	text = read_log(log);
	cr_expect_eq(count(text, "] plan: new Windows/"), n_new, "%ld new files: %s", n_new, text);
	cr_expect(strstr(text, "plan: space: needs "), "%s", text);
	cr_expect(strstr(text, "] warning: broken.inf"), "%s", text);
	want = t_strdup_printf("] action: %s: %ld new, 0 replaced", img, n_new);
	cr_expect(strstr(text, want), "%s: %s", want, text);
	free(want);
	cr_expect(strstr(text, "] action: verified through libvhdi: ok"), "%s", text);
	cr_expect(strstr(text, "] end: exit 0"), "%s", text);
	free(text);
	free(img);
	free(st);
	free(log);
}

/* A refused run records the error, that the image is unchanged, and exit 3;
 * the image is byte-identical. */
Test(log, failing_run_records_the_error, .init = setup, .fini = teardown, .timeout = 120)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx --build 17763", "old.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *log = t_strdup_printf("%s/audit.log", dir);
	char before[65], after[65];
	struct t_run r;
	char *text, *line;

	cr_assert_eq(t_sha256_file(img, before), 0);
	t_gpup(&r, "prepare '%s' --driverstore '%s' --gpu " NV " --log '%s'", img, st, log);
	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "a refused prepare changed the image");
	text = read_log(log);
	line = strstr(text, "] error: ");
	cr_assert(line, "%s", text);
	cr_expect(strncmp(line + 9, r.err + 6, strcspn(r.err + 6, "\n")) == 0,
		  "the logged error is the one printed: %s / %s", line, r.err);
	cr_expect(strstr(text, "17763"), "%s", text);
	cr_expect(strstr(text, "] result: ") && strstr(text, ": unchanged\n"), "%s", text);
	cr_expect(strstr(text, "] end: exit 3\n"), "%s", text);
	cr_expect(!strstr(text, "] plan: new "), "nothing was planned: %s", text);
	t_run_free(&r);
	free(text);
	free(img);
	free(st);
	free(log);
}

/* A log that cannot be opened (no such directory, a directory, no FILE,
 * given twice): exit 2 naming --log, before the image is opened -- it
 * stays byte-identical, no file appears -- and with --json the usage
 * failure object. */
Test(log, unwritable_log_is_a_usage_error_before_any_write, .init = setup, .fini = teardown,
     .timeout = 120)
{
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *src = t_strdup_printf("%s/note.txt", dir);
	char *bad[4];
	char before[65], after[65];
	struct stat sb;
	struct t_run r;

	bad[0] = t_strdup_printf("--log '%s/no/such/dir/audit.log'", dir);
	bad[1] = t_strdup_printf("--log '%s'", dir);
	bad[2] = t_strdup_printf("--log '%s/a.log' --log '%s/b.log'", dir, dir);
	bad[3] = t_strdup_printf("--log=");
	cr_assert_eq(t_write_file(src, "hello", 5), 0);
	cr_assert_eq(t_sha256_file(img, before), 0);
	for (int i = 0; i < 4; i++) {
		t_gpup(&r, "put '%s' '%s' 'C:\\Temp' --json %s", img, src, bad[i]);
		cr_expect_eq(r.status, 2, "%s: exit %d %s", bad[i], r.status, r.err);
		cr_expect(strstr(r.err, "--log"), "%s: %s", bad[i], r.err);
		cr_expect(strstr(r.out, "\"code\":\"usage\"") && strstr(r.out, "\"command\":\"put\""),
			  "%s: %s", bad[i], r.out);
		t_run_free(&r);
		free(bad[i]);
	}
	cr_assert_eq(t_sha256_file(img, after), 0);
	cr_assert_str_eq(before, after, "the image changed");
	{
		char *a = t_strdup_printf("%s/a.log", dir);

		cr_expect_neq(stat(a, &sb), 0, "a log was created");
		free(a);
	}
	t_gpup(&r, "--log");
	cr_expect_eq(r.status, 2, "%s", r.err);
	t_run_free(&r);
	free(img);
	free(src);
}
