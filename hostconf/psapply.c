/* psapply.c — running PowerShell from Linux/WSL: scripts (streamed) and the
 * GPU query (captured). See ps.h. */
#include "ps.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* PowerShell's answer to the GPU query is a few KiB. */
#define QUERY_MAX_BYTES (16u << 20)

/* Is @name an executable file in a PATH directory? */
static bool on_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (!path || !*path)
		return false;
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t dl = colon ? (size_t)(colon - path) : strlen(path);
		struct stat st;
		int n;

		/* An empty PATH entry means the current directory. */
		n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)(dl ? dl : 1), dl ? path : ".", name);
		if (n > 0 && (size_t)n < sizeof(buf) && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(buf, X_OK) == 0)
			return true;
		if (!colon)
			break;
		path = colon + 1;
	}
	return false;
}

/* ~/.dotnet/tools/pwsh: where `dotnet tool install --global PowerShell`
 * puts pwsh, a directory often not on PATH. */
static bool dotnet_tool_pwsh(char *buf, size_t size)
{
	const char *home = getenv("HOME");
	struct stat st;
	int n;

	if (!home || !*home)
		return false;
	n = snprintf(buf, size, "%s/.dotnet/tools/pwsh", home);
	return n > 0 && (size_t)n < size && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(buf, X_OK) == 0;
}

int gp_ps_find_shell(struct gp_ps_shell *sh, struct gp_error *err)
{
	memset(sh, 0, sizeof(*sh));
	if (on_path("powershell.exe")) {
		sh->kind = GP_PS_WINDOWS;
		snprintf(sh->program, sizeof(sh->program), "powershell.exe");
		return 0;
	}
	if (on_path("pwsh")) {
		sh->kind = GP_PS_PWSH;
		snprintf(sh->program, sizeof(sh->program), "pwsh");
		return 0;
	}
	if (dotnet_tool_pwsh(sh->program, sizeof(sh->program))) {
		sh->kind = GP_PS_PWSH;
		return 0;
	}
	return gp_error_set(err, GP_ERR_NOTFOUND,
			    "no PowerShell found (powershell.exe through WSL, pwsh on PATH or in "
			    "~/.dotnet/tools); save the script with -o FILE and run it on the "
			    "Hyper-V host");
}

/* Wait for @pid; the exit status, or 128+signal. */
static int wait_child(pid_t pid, int *status_out)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (WIFEXITED(st))
		*status_out = WEXITSTATUS(st);
	else if (WIFSIGNALED(st))
		*status_out = 128 + WTERMSIG(st);
	else
		*status_out = 1;
	return 0;
}

/*
 * fork + execvp(argv[0]) with stdin/stdout/stderr replaced by @in/@out/@errfd
 * where those are >= 0 (others inherited). A close-on-exec pipe tells an
 * exec failure (the errno comes back through it) from a program that ran
 * and exited 127. Returns 0 with the child in *pid, or GP_ERR_EXTERNAL.
 */
static int spawn(char *const argv[], int in, int out, int errfd, pid_t *pid,
		 struct gp_error *err)
{
	int report[2], child_errno = 0;
	ssize_t n;

	if (pipe2(report, O_CLOEXEC) != 0)
		return gp_error_set_errno(err, GP_ERR_EXTERNAL, errno, "pipe");
	fflush(stdout);
	fflush(stderr);
	*pid = fork();
	if (*pid < 0) {
		int e = errno;
		close(report[0]);
		close(report[1]);
		return gp_error_set_errno(err, GP_ERR_EXTERNAL, e, "fork");
	}
	if (*pid == 0) {
		close(report[0]);
		if ((in >= 0 && dup2(in, 0) < 0) || (out >= 0 && dup2(out, 1) < 0) ||
		    (errfd >= 0 && dup2(errfd, 2) < 0))
			child_errno = errno;
		else {
			execvp(argv[0], argv);
			child_errno = errno;
		}
		n = write(report[1], &child_errno, sizeof(child_errno));
		(void)n;
		_exit(127);
	}
	close(report[1]);
	do
		n = read(report[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(report[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		int status;
		wait_child(*pid, &status);
		return gp_error_set_errno(err, GP_ERR_EXTERNAL, child_errno, "cannot run %s",
					  argv[0]);
	}
	return 0;
}

/* A growable byte buffer for captured output. */
struct capbuf {
	char *data;
	size_t len, cap;
	bool overflow;
};

static int cap_append(struct capbuf *b, const char *p, size_t n, size_t max)
{
	if (b->len + n > max) {
		b->overflow = true;
		n = max - b->len;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *nd;
		while (cap < b->len + n + 1)
			cap *= 2;
		nd = realloc(b->data, cap);
		if (!nd)
			return -1;
		b->data = nd;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/*
 * Run argv[0] (searched on PATH) with stdout and stderr captured (at most
 * @max bytes each; stdin is /dev/null). Returns 0 with the exit status, or
 * a GP_ERR_* code with the message set.
 */
static int run_capture(char *const argv[], size_t max, struct capbuf *out, struct capbuf *errb,
		       int *status, struct gp_error *err)
{
	int po[2], pe[2];
	pid_t pid;
	int rc = 0;

	/* Close-on-exec everywhere: dup2() clears it on the child's 1 and 2,
	 * and no other copy of a write end may keep the pipes open. */
	if (pipe2(po, O_CLOEXEC) != 0)
		return gp_error_set_errno(err, GP_ERR_EXTERNAL, errno, "pipe");
	if (pipe2(pe, O_CLOEXEC) != 0) {
		close(po[0]);
		close(po[1]);
		return gp_error_set_errno(err, GP_ERR_EXTERNAL, errno, "pipe");
	}
	{
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

		rc = spawn(argv, devnull, po[1], pe[1], &pid, err);
		if (devnull >= 0)
			close(devnull);
	}
	if (rc) {
		close(po[0]);
		close(po[1]);
		close(pe[0]);
		close(pe[1]);
		return rc;
	}
	close(po[1]);
	close(pe[1]);
	{
		struct pollfd fds[2] = { { .fd = po[0], .events = POLLIN },
					 { .fd = pe[0], .events = POLLIN } };
		int open_fds = 2;

		while (open_fds > 0) {
			char buf[8192];

			if (poll(fds, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				rc = gp_error_set_errno(err, GP_ERR_EXTERNAL, errno, "poll");
				break;
			}
			for (int i = 0; i < 2; i++) {
				ssize_t n;

				if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				n = read(fds[i].fd, buf, sizeof(buf));
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					close(fds[i].fd);
					fds[i].fd = -1;
					open_fds--;
					continue;
				}
				if (cap_append(i == 0 ? out : errb, buf, (size_t)n, max) != 0 && rc == 0)
					rc = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
			}
		}
		for (int i = 0; i < 2; i++)
			if (fds[i].fd >= 0)
				close(fds[i].fd);
	}
	if (wait_child(pid, status) != 0 && rc == 0)
		rc = gp_error_set_errno(err, GP_ERR_EXTERNAL, errno, "waitpid %s", argv[0]);
	return rc;
}

/* The first line of @b (at most 200 bytes), for messages. */
static const char *first_line(const struct capbuf *b, char *buf, size_t size)
{
	size_t n = 0;

	if (!b->data)
		return "";
	while (n + 1 < size && n < b->len && b->data[n] != '\n' && b->data[n] != '\r')
		n++;
	memcpy(buf, b->data, n);
	buf[n] = '\0';
	return buf;
}

/* `wslpath -w PATH`: the Windows path of a Linux path. */
static int win_path(const char *path, char **out, struct gp_error *err)
{
	char *argv[] = { "wslpath", "-w", (char *)path, NULL };
	struct capbuf o = { 0 }, e = { 0 };
	char line[256];
	int status = 0, rc;

	*out = NULL;
	rc = run_capture(argv, 64 * 1024, &o, &e, &status, err);
	if (rc == 0 && status != 0)
		rc = gp_error_set(err, GP_ERR_EXTERNAL, "wslpath -w %s failed (exit status %d): %s",
				  path, status, first_line(&e, line, sizeof(line)));
	if (rc == 0) {
		while (o.len && (o.data[o.len - 1] == '\n' || o.data[o.len - 1] == '\r'))
			o.data[--o.len] = '\0';
		if (!o.len || memchr(o.data, '\n', o.len))
			rc = gp_error_set(err, GP_ERR_EXTERNAL,
					  "wslpath -w %s printed no single path", path);
	}
	if (rc == 0) {
		*out = o.data;
		o.data = NULL;
	}
	free(o.data);
	free(e.data);
	return rc;
}

int gp_ps_run_file(const struct gp_ps_shell *sh, const char *path, int *exit_status,
		   struct gp_error *err)
{
	char *winpath = NULL;
	char *argv[8];
	int n = 0, rc = 0;
	pid_t pid;

	if (sh->kind == GP_PS_WINDOWS) {
		char *abs = realpath(path, NULL);

		if (!abs)
			return gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		rc = win_path(abs, &winpath, err);
		free(abs);
		if (rc)
			return rc;
		argv[n++] = (char *)sh->program;
		argv[n++] = "-NoProfile";
		argv[n++] = "-ExecutionPolicy";
		argv[n++] = "Bypass";
		argv[n++] = "-File";
		argv[n++] = winpath;
	} else {
		argv[n++] = (char *)sh->program;
		argv[n++] = "-NoProfile";
		argv[n++] = "-File";
		argv[n++] = (char *)path;
	}
	argv[n] = NULL;
	/* Inherit stdout/stderr: the script's progress shows as it runs. */
	rc = spawn(argv, -1, -1, -1, &pid, err);
	if (rc == 0 && wait_child(pid, exit_status) != 0)
		rc = gp_error_set_errno(err, GP_ERR_EXTERNAL, errno, "waitpid %s", sh->program);
	free(winpath);
	return rc;
}

int gp_ps_apply_script(const struct gp_ps_shell *sh, const char *script, size_t len,
		       int *exit_status, struct gp_error *err)
{
	const char *dir = getenv("GPUP_PS_TMPDIR");
	char *path;
	int fd, rc = 0;

	if (!dir || !*dir) {
		if (sh->kind == GP_PS_WINDOWS) {
			/* powershell.exe reads the current directory through
			 * wslpath (/mnt/c/... or \\wsl.localhost\...). */
			dir = ".";
		} else {
			dir = getenv("TMPDIR");
			if (!dir || !*dir)
				dir = "/tmp";
		}
	}
	if (asprintf(&path, "%s/gpup-hostconf-XXXXXX.ps1", dir) < 0)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	fd = mkstemps(path, 4);
	if (fd < 0) {
		rc = gp_error_set_errno(err, GP_ERR_IO, errno,
					"cannot create the script in %s (set GPUP_PS_TMPDIR to a "
					"directory Windows can read)", dir);
		free(path);
		return rc;
	}
	for (size_t off = 0; off < len && rc == 0;) {
		ssize_t n = write(fd, script + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = gp_error_set_errno(err, GP_ERR_IO, n < 0 ? errno : ENOSPC, "%s: write",
						path);
		else
			off += (size_t)n;
	}
	if (close(fd) != 0 && rc == 0)
		rc = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: write", path);
	if (rc == 0)
		rc = gp_ps_run_file(sh, path, exit_status, err);
	unlink(path);
	free(path);
	return rc;
}

/* Prefer the Windows 11 / Server 2025 cmdlet; Windows 10 / Server 2022 have
 * only Get-VMPartitionableGpu. UTF-8 output where the console allows it:
 * otherwise a non-ASCII host name arrives in the OEM code page. */
static const char query_cmd[] =
	"$ErrorActionPreference = 'Stop'; "
	"try { [Console]::OutputEncoding = [System.Text.Encoding]::UTF8 } catch { } "
	"if (Get-Command -Name 'Hyper-V\\Get-VMHostPartitionableGpu' -ErrorAction SilentlyContinue) "
	"{ Hyper-V\\Get-VMHostPartitionableGpu | ConvertTo-Json } "
	"else { Hyper-V\\Get-VMPartitionableGpu | ConvertTo-Json }";

int gp_ps_query_gpus(const struct gp_ps_shell *sh, struct gp_gpu_list *out,
		     struct gp_error *err)
{
	char *argv[] = { (char *)sh->program, "-NoProfile", "-NonInteractive", "-Command",
			 (char *)query_cmd, NULL };
	struct capbuf o = { 0 }, e = { 0 };
	char line[256];
	int status = 0, rc;

	memset(out, 0, sizeof(*out));
	rc = run_capture(argv, QUERY_MAX_BYTES, &o, &e, &status, err);
	if (rc == 0 && status != 0)
		rc = gp_error_set(err, GP_ERR_EXTERNAL,
				  "%s: Get-VMHostPartitionableGpu failed (exit status %d): %s",
				  sh->program, status, first_line(&e, line, sizeof(line)));
	if (rc == 0 && o.overflow)
		rc = gp_error_set(err, GP_ERR_EXTERNAL, "%s printed more than 16 MiB", sh->program);
	if (rc == 0)
		rc = gp_gpus_parse(o.data ? o.data : "", o.len, "powershell", out, err);
	free(o.data);
	free(e.data);
	return rc;
}
