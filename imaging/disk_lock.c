/* disk_lock.c — the image lock (an open-file-description lock, or a lock
 * file beside the image on a file system without POSIX locks) and the
 * report of an image open that failed. See disk_priv.h. */
#include "disk_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCK_SUFFIX ".gpup-lock"

/* The note about missing locks goes to the first handle only: one run
 * opens the image several times (the writer, then the verifier) and the
 * user needs to read it once. Process-wide because the handles are
 * independent. */
static atomic_bool noted;

int gp_disk_open_error(const char *path, bool writable, int errnum, struct gp_error *err)
{
	/* Hyper-V opens the VHDX of a running VM without write sharing; seen
	 * from WSL through /mnt/c (9p) that arrives as EACCES, EBUSY or
	 * ETXTBSY. EACCES is also a plain permission problem, and the two
	 * cannot be told apart from here, so the message names both. */
	switch (errnum) {
	case ENOENT:
		return gp_error_set_errno(err, GP_ERR_NOTFOUND, errnum, "%s", path);
	case EACCES:
		return gp_error_set(err, GP_ERR_LOCKED,
				    "%s: cannot open for %s: permission denied; in use by Hyper-V "
				    "(is the VM running?) or not %s by you",
				    path, writable ? "writing" : "reading",
				    writable ? "writable" : "readable");
	case EBUSY:
	case ETXTBSY:
		return gp_error_set(err, GP_ERR_LOCKED,
				    "%s: cannot open: %s; in use by Hyper-V (is the VM running?)",
				    path, strerror(errnum));
	default:
		return gp_error_set_errno(err, GP_ERR_IO, errnum, "%s", path);
	}
}

/* The errors of a lock call on a file system that has no POSIX locks
 * (WSL's 9p /mnt/c, some FUSE and network file systems), or a kernel
 * without open-file-description locks (EINVAL). */
static bool no_posix_locks(int e)
{
	return e == ENOLCK || e == EOPNOTSUPP || e == EINVAL || e == ENOSYS;
}

/* Why @file exists: a holder that is gone (same host, no such process)
 * gets "stale"; any other holder may be alive. Either way the user is told
 * which file to remove, since gpup cannot know for certain. */
static int lock_file_busy(const char *path, const char *file, struct gp_error *err)
{
	char buf[300] = "", host[256] = "", ours[256] = "";
	long pid = 0;
	FILE *f = fopen(file, "re");

	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
	}
	if (sscanf(buf, "gpup pid %ld host %255s", &pid, host) != 2 || pid <= 0)
		return gp_error_set(err, GP_ERR_LOCKED,
				    "%s: image is in use (lock file %s exists); if no gpup is using "
				    "it, remove it: rm '%s'",
				    path, file, file);
	gethostname(ours, sizeof(ours) - 1);
	if (!strcmp(host, ours) && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return gp_error_set(err, GP_ERR_LOCKED,
				    "%s: stale lock file %s (gpup pid %ld on %s is no longer "
				    "running); remove it and run again: rm '%s'",
				    path, file, pid, host, file);
	return gp_error_set(err, GP_ERR_LOCKED,
			    "%s: image is in use by gpup pid %ld on %s (lock file %s); if that "
			    "gpup is gone, remove it: rm '%s'",
			    path, pid, host, file, file);
}

/* Writers create the lock file (O_EXCL makes two writers exclusive
 * without locks); readers only refuse while one exists, so a reader
 * started before a writer is not seen by it: that is the weaker guarantee
 * the warning and the README admit. */
static int lock_file_take(const char *path, bool exclusive, struct gp_disk_lock *lk,
			  struct gp_error *err)
{
	char *file, host[256] = "", line[320];
	int fd, n;

	if (asprintf(&file, "%s" LOCK_SUFFIX, path) < 0)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	if (!exclusive) {
		if (access(file, F_OK) == 0) {
			int ret = lock_file_busy(path, file, err);

			free(file);
			return ret;
		}
		if (atomic_exchange(&noted, true)) {
			free(file);
			return 0;
		}
		n = asprintf(&lk->note,
			     "%s: the file system has no POSIX locks (WSL's /mnt/c?); reading "
			     "it only while no lock file %s exists",
			     path, file);
		free(file);
		return n < 0 ? gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path) : 0;
	}
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		int ret = errno == EEXIST ? lock_file_busy(path, file, err)
					  : gp_error_set_errno(err, GP_ERR_IO, errno,
							       "%s: no POSIX locks here and cannot "
							       "create the lock file %s",
							       path, file);

		free(file);
		return ret;
	}
	gethostname(host, sizeof(host) - 1);
	n = snprintf(line, sizeof(line), "gpup pid %ld host %s\n", (long)getpid(),
		     host[0] ? host : "unknown");
	if (write(fd, line, (size_t)n) != n || close(fd) < 0) {
		int ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: cannot write the lock file %s",
					     path, file);

		unlink(file);
		free(file);
		return ret;
	}
	lk->file = file;
	if (atomic_exchange(&noted, true))
		return 0;
	if (asprintf(&lk->note,
		     "%s: the file system has no POSIX locks (WSL's /mnt/c?); using the lock file %s",
		     path, file) < 0) {
		gp_disk_lock_release(lk);
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	}
	return 0;
}

int gp_disk_lock_fd(int fd, const char *path, bool exclusive, struct gp_disk_lock *lk,
		    struct gp_error *err)
{
	/* Open-file-description locks: per descriptor, not per process, so two
	 * handles inside one process (gpup's writer and a libvhdi verifier)
	 * conflict just like two processes do. */
	struct flock fl = {
		.l_type = exclusive ? F_WRLCK : F_RDLCK,
		.l_whence = SEEK_SET,
		.l_start = 0,
		.l_len = 0,
	};

	*lk = (struct gp_disk_lock){ 0 };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return gp_error_set(err, GP_ERR_LOCKED,
				    "%s: image is in use by another process (another gpup, or a running VM); close it first",
				    path);
	if (no_posix_locks(errno))
		return lock_file_take(path, exclusive, lk, err);
	return gp_error_set_errno(err, GP_ERR_IO, errno, "%s: cannot lock", path);
}

void gp_disk_lock_release(struct gp_disk_lock *lk)
{
	if (lk->file)
		unlink(lk->file);
	free(lk->file);
	free(lk->note);
	*lk = (struct gp_disk_lock){ 0 };
}
