/* test_cli.c — the command line as a whole: help, version, dispatch,
 * exit statuses, and `make install` with DESTDIR/PREFIX. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"

Test(cli, version_and_help_go_to_stdout)
{
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "--version"), 0);
	cr_assert(strncmp(r.out, "gpup ", 5) == 0, "%s", r.out);
	cr_assert_str_empty(r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "-V"), 0);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "--help"), 0);
	cr_assert(strstr(r.out, "prepare") && strstr(r.out, "doctor") && strstr(r.out, "Exit status"));
	t_run_free(&r);
}

Test(cli, every_command_has_help)
{
	static const char *const cmds[] = { "inspect", "create", "disk", "ls", "cat", "put", "rm",
					     "drivers", "bundle", "gpus", "hostconf", "prepare",
					     "unprepare", "verify", "doctor" };
	struct t_run r;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		t_gpup(&r, "%s --help", cmds[i]);
		cr_assert_eq(r.status, 0, "gpup %s --help: exit %d %s", cmds[i], r.status, r.err);
		cr_assert(strstr(r.out, "Usage: gpup"), "gpup %s --help: %s", cmds[i], r.out);
		t_run_free(&r);
	}
}

Test(cli, unknown_command_and_no_command_are_usage_errors)
{
	struct t_run r;

	cr_assert_eq(t_gpup(&r, "frobnicate"), 2);
	cr_assert(strstr(r.err, "'frobnicate' is not a gpup command"), "%s", r.err);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "%s", ""), 2);
	t_run_free(&r);
}

/* Two driver sources at once is a usage error, before any file is opened
 * (the paths need not exist). */
Test(cli, driverstore_and_bundle_exclude_each_other)
{
	static const char *const cmds[] = { "prepare", "doctor", "verify" };
	struct t_run r;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		cr_assert_eq(t_gpup(&r, "%s /nonexistent/g.vhdx --driverstore /nonexistent/ds "
				   "--bundle /nonexistent/b.tar", cmds[i]), 2, "%s: %s", cmds[i], r.err);
		cr_assert(strstr(r.err, "--driverstore and --bundle exclude each other"), "%s: %s",
			  cmds[i], r.err);
		t_run_free(&r);
	}
}

Test(cli, make_install_honours_destdir_and_prefix, .timeout = 120)
{
	char *dest = t_tmpdir();
	const char *files[] = { "bin/gpup", "share/man/man1/gpup.1",
				"share/bash-completion/completions/gpup",
				"share/gpup/schema/prepare.schema.json" };
	struct stat st;
	struct t_run r;

	/* -o: never relink the binary the other tests of this run are
	 * executing at the same moment ("Permission denied" for them). */
	t_run(&r, "make -s -C '%s' -o '%s' install BUILD='%s' DESTDIR='%s' PREFIX=/opt/gpup",
	      t_env("GPUP_SRC"), t_env("GPUP_BIN"), t_env("GPUP_BUILD"), dest);
	cr_assert_eq(r.status, 0, "make install: %s %s", r.out, r.err);
	t_run_free(&r);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *p = t_strdup_printf("%s/opt/gpup/%s", dest, files[i]);

		cr_assert_eq(stat(p, &st), 0, "%s not installed", p);
		free(p);
	}
	t_run(&r, "'%s/opt/gpup/bin/gpup' --version && man -l '%s/opt/gpup/share/man/man1/gpup.1' "
		  ">/dev/null 2>&1; bash -n '%s/opt/gpup/share/bash-completion/completions/gpup'",
	      dest, dest, dest);
	cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
	t_run_free(&r);
	t_rm_rf(dest);
	free(dest);
}

/* hostconf --json describes the plan (quotas as exact strings: Encode is
 * 2^64-1 on this host) while the script goes to -o. */
Test(cli, hostconf_json_describes_the_plan)
{
	char *dir = t_tmpdir();
	struct t_run r;

	t_gpup(&r, "hostconf --vm Demo --gpu 10de:2860 --share 50%% --from '%s/tests/hostconf/data/howto-two-gpus.txt' "
		   "-o '%s/h.ps1' --json", t_env("GPUP_SRC"), dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"schema\":1") && strstr(r.out, "\"vm\":\"Demo\""), "%s", r.out);
	cr_assert(strstr(r.out, "\"min\":\"9223372036854775807\""), "50%% of 2^64-1, exact: %s", r.out);
	t_run_free(&r);
	cr_assert_eq(t_gpup(&r, "hostconf --vm Demo --gpu 10de:2860 --from '%s/tests/hostconf/data/howto-two-gpus.txt' --json",
			    t_env("GPUP_SRC")), 2, "--json without -o must be a usage error");
	t_run_free(&r);
	t_rm_rf(dir);
	free(dir);
}

/* create/put/rm --json: each writing command says what it did. The new
 * image's geometry is read back from the file. */
Test(cli, writing_commands_report_json, .timeout = 120)
{
	char *dir = t_tmpdir();
	struct t_run r;

	t_gpup(&r, "create '%s/a.vhdx' --size 3G --block-size 1M --sector-size 4096 --json", dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"virtual_size\":3221225472") && strstr(r.out, "\"block_size\":1048576") &&
		  strstr(r.out, "\"logical_sector_size\":4096") && strstr(r.out, "\"changed\":true"),
		  "%s", r.out);
	t_run_free(&r);
	t_run(&r, "printf abc | '%s' disk write '%s/a.vhdx' --offset 4095 --json", t_env("GPUP_BIN"), dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"bytes\":3") && strstr(r.out, "\"offset\":4095"), "%s", r.out);
	t_run_free(&r);
	t_gpup(&r, "disk read '%s/a.vhdx' --offset 4095 --length 3", dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(memcmp(r.out, "abc", 3), 0, "read back: %.3s", r.out);
	t_run_free(&r);
	t_gpup(&r, "create '%s/b.avhdx' --parent '%s/a.vhdx' --json", dir, dir);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"type\":\"differencing\""), "%s", r.out);
	t_run_free(&r);
	{
		char *img = t_hyperv_fixture("dynamic.vhdx", dir);
		char *src = t_strdup_printf("%s/note.txt", dir);

		cr_assert_eq(t_write_file(src, "hello", 5), 0);
		t_gpup(&r, "put '%s' '%s' 'C:\\Temp' --json", img, src);
		cr_assert_eq(r.status, 0, "%s", r.err);
		cr_assert(strstr(r.out, "\"command\":\"put\"") && strstr(r.out, "\"changed\":true"), "%s", r.out);
		t_run_free(&r);
		t_gpup(&r, "rm '%s' 'C:\\Temp\\note.txt' --json", img);
		cr_assert_eq(r.status, 0, "%s", r.err);
		cr_assert(strstr(r.out, "\"removed\":[") && strstr(r.out, "note.txt"), "%s", r.out);
		t_run_free(&r);
		t_gpup(&r, "cat '%s' 'C:\\Temp\\note.txt'", img);
		cr_assert_neq(r.status, 0, "the file is still there");
		t_run_free(&r);
		free(img);
		free(src);
	}
	t_rm_rf(dir);
	free(dir);
}

/* Two writers on one image: the second is refused (exit 3, nothing
 * written); a reader during the write is refused too; after the first
 * writer finishes, both work. The first writer is held open by a FIFO it
 * is still reading from. */
Test(cli, second_writer_and_reader_are_refused_while_writing, .timeout = 120)
{
	char *dir = t_tmpdir();
	char *img = t_hyperv_fixture("dynamic.vhdx", dir);
	char *src = t_strdup_printf("%s/note.txt", dir);
	char before[65], after[65];
	struct t_run r;

	cr_assert_eq(t_write_file(src, "hello", 5), 0);
	/* Wait (up to 60 s: sanitizer builds on a loaded machine are slow)
	 * until the writer holds its lock, seen in /proc/locks. Not by probing
	 * with a reader: a reader that takes its lock first makes the writer
	 * the refused one, and the test then waited out its timeout. */
	t_run(&r, "cd '%s' && mkfifo in && { '%s' disk write '%s' --offset 1048576 -i in & } && "
		  "ino=$(stat -c %%i '%s') && "
		  "for i in $(seq 600); do grep -q \"WRITE .*:$ino \" /proc/locks && break; sleep 0.1; done && "
		  "sha256sum '%s' | cut -c1-64 > sum.before && "
		  "{ '%s' put '%s' '%s' 'C:\\Temp'; echo \"put=$?\"; } && "
		  "{ '%s' ls '%s' 'C:\\' >/dev/null; echo \"ls=$?\"; } && "
		  "sha256sum '%s' | cut -c1-64 > sum.after && "
		  "timeout 60 sh -c \"printf data > in\" && wait && '%s' put '%s' '%s' 'C:\\Temp' && echo put2=$?",
	      dir, t_env("GPUP_BIN"), img, img, img, t_env("GPUP_BIN"), img, src,
	      t_env("GPUP_BIN"), img, img, t_env("GPUP_BIN"), img, src);
	cr_assert(strstr(r.out, "put=3"), "second writer not refused: %s %s", r.out, r.err);
	cr_assert(strstr(r.out, "ls=3"), "reader not refused during a write: %s %s", r.out, r.err);
	cr_assert(strstr(r.err, "in use by another process"), "%s", r.err);
	cr_assert(strstr(r.out, "put2=0"), "writer after the first finished: %s %s", r.out, r.err);
	t_run_free(&r);
	{
		char *b = t_strdup_printf("%s/sum.before", dir), *a = t_strdup_printf("%s/sum.after", dir);
		char *sb = t_read_file(b, NULL), *sa = t_read_file(a, NULL);

		cr_assert(sb && sa);
		snprintf(before, sizeof(before), "%.64s", sb);
		snprintf(after, sizeof(after), "%.64s", sa);
		cr_assert_str_eq(before, after, "a refused writer changed the image");
		free(sb);
		free(sa);
		free(a);
		free(b);
	}
	t_rm_rf(dir);
	free(img);
	free(src);
	free(dir);
}

/* Every --json object names its command ("schema" and "command" first),
 * the read-only commands included: a pipeline can dispatch on it. */
Test(cli, every_json_object_names_its_command, .timeout = 120)
{
	char *dir = t_tmpdir();
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	char *st = t_fixture("mkstore.sh", "");
	char *bundle = t_strdup_printf("%s/nv.tar.gz", dir);
	char *from = t_strdup_printf("%s/tests/hostconf/data/json-array.json", t_env("GPUP_SRC"));
	struct {
		const char *command;
		char *args;
	} cases[] = {
		{ "inspect", t_strdup_printf("inspect '%s'", img) },
		{ "ls", t_strdup_printf("ls '%s' 'C:\\Windows'", img) },
		{ "drivers", t_strdup_printf("drivers --driverstore '%s'", st) },
		{ "bundle list", t_strdup_printf("bundle list '%s'", bundle) },
		{ "bundle verify", t_strdup_printf("bundle verify '%s'", bundle) },
		{ "gpus", t_strdup_printf("gpus --from '%s'", from) },
		{ "doctor", t_strdup_printf("doctor '%s'", img) },
		{ "verify", t_strdup_printf("verify '%s' --bundle '%s'", img, bundle) },
	};
	struct t_run r;

	t_gpup(&r, "bundle create --driverstore '%s' --gpu 'PCI\\VEN_10DE&DEV_2860' -o '%s'", st,
	       bundle);
	cr_assert_eq(r.status, 0, "%s", r.err);
	t_run_free(&r);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *want = t_strdup_printf("\"command\":\"%s\"", cases[i].command);

		t_gpup(&r, "%s --json", cases[i].args);
		cr_assert(strstr(r.out, "\"schema\":1"), "%s: %s %s", cases[i].command, r.out, r.err);
		cr_assert(strstr(r.out, want), "%s: no command: %s", cases[i].command, r.out);
		t_run_free(&r);
		free(want);
		free(cases[i].args);
	}
	t_rm_rf(dir);
	free(dir);
	free(img);
	free(st);
	free(bundle);
	free(from);
}

/* `cat` of a directory is an error about the guest (exit 1), not a usage
 * error (2): the command line was right, the path is not a file. */
Test(cli, cat_of_a_directory_exits_1)
{
	char *dir = t_tmpdir();
	char *img = t_guest_copy(dir, "--size 2G --vhdx", "g.vhdx");
	struct t_run r;

	t_gpup(&r, "cat '%s' 'C:\\Windows'", img);
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "is a directory"), "%s", r.err);
	t_run_free(&r);
	t_rm_rf(dir);
	free(dir);
	free(img);
}
