/*
 * disk_check.c — gp_check_image(): the container checker for the image's
 * format (vhdx_check(), gp_check_vhd()), then the partition table and each
 * NTFS volume read through the image's default reader. See disk_check.h.
 */
#include "disk_check.h"
#include "disk_priv.h"
#include "ntfsvol.h"
#include "part.h"
#include "vhdx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gp_check_open(const char *path, int *fd, uint64_t *size, struct gp_error *err)
{
	struct stat st;
	int ret;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return gp_error_set_errno(err, errno == ENOENT ? GP_ERR_NOTFOUND : GP_ERR_IO, errno,
					  "%s", path);
	if (fstat(*fd, &st) < 0) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s", path);
		close(*fd);
		*fd = -1;
		return ret;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int gp_check_add(struct gp_check_report *r, enum gp_check_grade g, const char *structure,
		 int64_t offset, const char *fmt, ...)
{
	struct gp_check_finding *nf;
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return GP_ERR_NOMEM;
	nf = realloc(r->findings, (r->count + 1) * sizeof(*nf));
	if (!nf) {
		free(msg);
		return GP_ERR_NOMEM;
	}
	r->findings = nf;
	r->findings[r->count++] = (struct gp_check_finding){
		.grade = g, .structure = structure, .offset = offset, .message = msg,
	};
	return 0;
}

static bool has_grade(const struct gp_check_report *r, enum gp_check_grade g)
{
	for (size_t i = 0; i < r->count; i++)
		if (r->findings[i].grade == g)
			return true;
	return false;
}

int gp_check_status(const struct gp_check_report *r)
{
	if (has_grade(r, GP_CHECK_CORRUPT))
		return 2;
	if (has_grade(r, GP_CHECK_SKIPPED))
		return 1;
	return has_grade(r, GP_CHECK_LEAK) ? 3 : 0;
}

const char *gp_check_grade_name(enum gp_check_grade g)
{
	switch (g) {
	case GP_CHECK_NOTE: return "note";
	case GP_CHECK_LEAK: return "leak";
	case GP_CHECK_CORRUPT: return "corruption";
	case GP_CHECK_SKIPPED: return "skipped";
	}
	return "?";
}

void gp_check_report_free(struct gp_check_report *r)
{
	for (size_t i = 0; i < r->count; i++)
		free(r->findings[i].message);
	free(r->findings);
	memset(r, 0, sizeof(*r));
}

/* Add a finding on the virtual disk (partition table, volumes). */
static int add_virtual(struct gp_check_report *r, enum gp_check_grade g, const char *structure,
		       int64_t offset, const char *msg)
{
	int ret = gp_check_add(r, g, structure, offset, "%s", msg);

	if (!ret)
		r->findings[r->count - 1].virtual_offset = offset >= 0;
	return ret;
}

/* $Bitmap against the data runs of every MFT record (gp_ntfs_check_bitmap()):
 * a cluster a file uses but marked free is corruption (a write would hand
 * it to another file); clusters marked used that no file owns are a note
 * (harmless, and not space the image file could give back). */
static int check_ntfs_bitmap(struct gp_disk *d, struct gp_ntfs *vol, unsigned part, uint64_t at,
			     const struct gp_ntfs_volinfo *vi, struct gp_check_report *r)
{
	struct gp_ntfs_bitmap_report br;
	char msg[GP_ERROR_MSG_MAX];
	int ret = gp_ntfs_check_bitmap(vol, &br);

	if (ret == GP_ERR_NOMEM)
		return ret;
	if (ret == GP_ERR_CORRUPT)
		return add_virtual(r, GP_CHECK_CORRUPT, "NTFS $Bitmap",
				   (int64_t)(at + br.first_lcn * vi->cluster_size),
				   gp_ntfs_error(vol)->msg);
	if (ret)
		return add_virtual(r, GP_CHECK_SKIPPED, "NTFS $Bitmap", (int64_t)at,
				   gp_ntfs_error(vol)->msg);
	if (!br.leaked)
		return 0;
	snprintf(msg, sizeof(msg),
		 "%s: NTFS on partition %u: %llu cluster(s) marked in use that no file owns (harmless; chkdsk frees them)",
		 gp_disk_path(d), part, (unsigned long long)br.leaked);
	return add_virtual(r, GP_CHECK_NOTE, "NTFS $Bitmap", (int64_t)at, msg);
}

/* The state of one NTFS volume: libntfs-3g's mount checks ($MFT against
 * $MFTMirr, the boot sector, the upcase table), the volume's flags, and
 * $Bitmap against every file's clusters. */
static int check_ntfs(struct gp_disk *d, unsigned part, uint64_t at, struct gp_check_report *r)
{
	static const char *const states[] = {
		"is hibernated (writers refuse it)",
		"was shut down with Fast Startup (writers refuse it)",
		"has an unclean $LogFile (not shut down cleanly)",
		"is marked dirty (Windows runs chkdsk at the next boot)",
		"is marked dirty by an interrupted gpup write (running it again completes it)",
	};
	struct gp_ntfs_open_opts no = { .partition = part };
	struct gp_ntfs_volinfo vi;
	struct gp_error e = { 0 };
	struct gp_ntfs *vol;
	char msg[GP_ERROR_MSG_MAX];
	bool on[5];
	int ret = 0;

	if ((ret = gp_ntfs_open(d, &no, &vol, &e)))
		return ret == GP_ERR_NOMEM ? ret
					   : add_virtual(r, ret == GP_ERR_CORRUPT ? GP_CHECK_CORRUPT
										  : GP_CHECK_SKIPPED,
							 "NTFS volume", (int64_t)at, e.msg);
	gp_ntfs_volinfo(vol, &vi);
	on[0] = vi.hibernated;
	on[1] = vi.fast_startup;
	on[2] = vi.log_unclean;
	on[3] = vi.dirty && !vi.interrupted;
	on[4] = vi.dirty && vi.interrupted;
	for (int i = 0; !ret && i < 5; i++) {
		if (!on[i])
			continue;
		snprintf(msg, sizeof(msg), "%s: NTFS on partition %u %s", gp_disk_path(d), part,
			 states[i]);
		ret = add_virtual(r, GP_CHECK_NOTE, "NTFS volume", (int64_t)at, msg);
	}
	if (!ret)
		ret = check_ntfs_bitmap(d, vol, part, at, &vi, r);
	gp_ntfs_close(vol, NULL);
	return ret;
}

static int check_volumes(const char *path, const struct gp_check_opts *o,
			 struct gp_check_report *r)
{
	struct gp_disk_open_opts dopts = { .format = r->format, .parent_path = o->parent_path };
	struct gp_partition_table pt;
	struct gp_error e = { 0 };
	struct gp_disk *d;
	int ret;

	ret = gp_disk_open(path, &dopts, &d, &e);
	if (ret)
		return ret == GP_ERR_NOMEM ? ret : gp_check_add(r, GP_CHECK_SKIPPED, "virtual disk", -1,
								 "%s (partition table and volumes not checked)",
								 e.msg);
	ret = gp_part_read(d, &pt, &e);
	if (ret == GP_ERR_NOMEM)
		goto out;
	if (ret) {
		ret = add_virtual(r, ret == GP_ERR_CORRUPT ? GP_CHECK_CORRUPT : GP_CHECK_SKIPPED,
				  "partition table", 0, e.msg);
		goto out;
	}
	if (pt.warning[0])
		ret = add_virtual(r, pt.used_backup_gpt ? GP_CHECK_CORRUPT : GP_CHECK_NOTE,
				  "partition table", pt.used_backup_gpt ? (int64_t)pt.sector_size : 0,
				  pt.warning);
	if (!ret && pt.kind == GP_PT_NONE && pt.whole_disk_volsig == GP_VOLSIG_NTFS)
		ret = check_ntfs(d, 0, 0, r);
	for (size_t i = 0; !ret && i < pt.count; i++)
		if (pt.parts[i].volsig == GP_VOLSIG_NTFS)
			ret = check_ntfs(d, pt.parts[i].number, pt.parts[i].offset, r);
out:
	gp_part_table_free(&pt);
	gp_disk_close(d, NULL);
	return ret;
}

int gp_check_image(const char *path, const struct gp_check_opts *opts,
		   struct gp_check_report *out, struct gp_error *err)
{
	static const struct gp_check_opts defaults;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!opts)
		opts = &defaults;
	out->format = opts->format;
	if (out->format == GP_DISK_FORMAT_AUTO) {
		ret = gp_disk_detect_format(path, &out->format, err);
		if (ret)
			return ret;
	}
	if (out->format == GP_DISK_FORMAT_VHDX)
		ret = vhdx_check(path, opts->parent_path, out, err);
	else if (out->format == GP_DISK_FORMAT_VHD)
		ret = gp_check_vhd(path, out, err);
	else
		ret = 0; /* a raw image has no container */
	if (ret || opts->container_only || has_grade(out, GP_CHECK_CORRUPT) ||
	    has_grade(out, GP_CHECK_SKIPPED))
		return ret;
	ret = check_volumes(path, opts, out);
	if (ret)
		return gp_error_set(err, ret, "%s: out of memory", path);
	return 0;
}
