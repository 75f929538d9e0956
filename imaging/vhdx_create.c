/*
 * vhdx_create.c — new images: an empty dynamic VHDX (vhdx_create()) and a
 * differencing child of an existing one (vhdx_create_child()). Written under
 * a temporary name and published only when complete.
 */
#include "le.h"
#include "vhdx_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int io_code(int e)
{
	return e == ENOSPC || e == EFBIG || e == EDQUOT ? GP_ERR_NOSPACE : GP_ERR_IO;
}

#define CREATE_LOG_OFFSET (1 * VHDX_MiB)
#define CREATE_LOG_LENGTH (1 * VHDX_MiB)
#define CREATE_META_OFFSET (2 * VHDX_MiB)
#define CREATE_META_LENGTH (1 * VHDX_MiB)
#define CREATE_BAT_OFFSET (3 * VHDX_MiB)

/* New images never replace a file: the early checks and the final naming
 * refuse with the same words. */
static int refuse_existing(const char *path, struct gp_error *err)
{
	return gp_error_set(err, GP_ERR_EXISTS, "%s: already exists; not overwriting it", path);
}

/* Give the finished file @tmp the name @path, never replacing an existing
 * @path: RENAME_NOREPLACE, or link() + unlink() on file systems without it. */
static int publish_new(const char *tmp, const char *path, struct gp_error *err)
{
	char dir[PATH_MAX];
	int dfd;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			goto fail;
		if (link(tmp, path) < 0)
			goto fail;
		unlink(tmp);
	}
	/* The name's own durability: best effort, the data is flushed. */
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	if (errno == EEXIST)
		return refuse_existing(path, err);
	return gp_error_set_errno(err, io_code(errno), errno, "%s: cannot create", path);
}

/*
 * Write a new, empty image with metadata @md at @path. The file is written
 * and flushed under a temporary name beside @path ("PATH.tmp-XXXXXX") and
 * only then named @path: a kill midway (a Ctrl-C of `prepare --into-child`)
 * leaves at most that temporary file, never a half-written image at @path,
 * which the next run would take for the child and fail to open.
 */
static int write_new(const char *path, const struct vhdx_metadata *md, struct gp_error *err)
{
	struct vhdx_geometry g;
	struct vhdx_header h = { 0 };
	struct vhdx_region regions[2];
	struct vhdx_region_table rt = { 2, regions };
	uint64_t bat_len, file_len;
	uint8_t *buf;
	char *tmp = NULL;
	int fd, ret = 0;

	if (vhdx_geometry_init(&g, md->virtual_size, md->block_size, md->logical_sector_size,
			       md->has_parent))
		return gp_error_set(err, GP_ERR_INVALID, "%s: invalid geometry", path);
	bat_len = round_up(g.total_entries * 8, VHDX_MiB);
	if (bat_len > UINT32_MAX)
		return gp_error_set(err, GP_ERR_INVALID, "%s: BAT of %llu bytes is too large",
				    path, (unsigned long long)bat_len);
	file_len = CREATE_BAT_OFFSET + bat_len;
	/* A child gets a sector bitmap block for every chunk, all zeros (a hole):
	 * "no sector present here", which the spec allows and which no
	 * FULLY_PRESENT block consults. libvhdi needs it: for a NOT_PRESENT
	 * block it reads the chunk's bitmap without checking that the bitmap
	 * block exists, and without one takes the child's header bytes for the
	 * bitmap (../shared/UPSTREAM.md). */
	if (md->has_parent)
		file_len += g.bitmap_blocks * VHDX_SECTOR_BITMAP_BLOCK_SIZE;
	if (access(path, F_OK) == 0)
		return refuse_existing(path, err);
	buf = calloc(1, CREATE_META_LENGTH);
	if (!buf || asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
		free(buf);
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = gp_error_set_errno(err, io_code(errno), errno, "%s: cannot create", path);
		free(tmp);
		free(buf);
		return ret;
	}
	fchmod(fd, 0644); /* mkstemp makes 0600 */
#define W(b, l, o)                                                                    \
	do {                                                                          \
		if (!ret && pwrite(fd, (b), (l), (off_t)(o)) != (ssize_t)(l))          \
			ret = gp_error_set_errno(err, io_code(errno), errno,          \
						 "%s: write at 0x%llx", path,       \
						 (unsigned long long)(o));          \
	} while (0)
	if (ftruncate(fd, (off_t)file_len) < 0)
		ret = gp_error_set_errno(err, io_code(errno), errno, "%s: cannot size the file", path);
	vhdx_file_id_serialize(buf, "gpup");
	W(buf, 0x10000, VHDX_FILE_ID_OFFSET);
	h.version = 1;
	h.log_version = 0;
	h.log_length = CREATE_LOG_LENGTH;
	h.log_offset = CREATE_LOG_OFFSET;
	vhdx_guid_generate(&h.file_write_guid);
	vhdx_guid_generate(&h.data_write_guid);
	for (int i = 0; i < 2; i++) {
		h.sequence = (uint64_t)i + 1;
		vhdx_header_serialize(&h, buf);
		W(buf, VHDX_HEADER_SIZE, i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
	}
	vhdx_guid_parse(VHDX_GUID_BAT_REGION, &regions[0].guid);
	regions[0].file_offset = CREATE_BAT_OFFSET;
	regions[0].length = (uint32_t)bat_len;
	regions[0].required = true;
	vhdx_guid_parse(VHDX_GUID_METADATA_REGION, &regions[1].guid);
	regions[1].file_offset = CREATE_META_OFFSET;
	regions[1].length = CREATE_META_LENGTH;
	regions[1].required = true;
	for (uint64_t c = 0; md->has_parent && c < g.bitmap_blocks; c++) {
		uint8_t e[8];
		uint64_t at = CREATE_BAT_OFFSET + bat_len + c * VHDX_SECTOR_BITMAP_BLOCK_SIZE;

		put_le64(e, vhdx_bat_make(VHDX_SB_PRESENT, at));
		W(e, sizeof(e), CREATE_BAT_OFFSET + (c * (g.chunk_ratio + 1) + g.chunk_ratio) * 8);
	}
	vhdx_region_table_serialize(&rt, buf);
	W(buf, VHDX_REGION_TABLE_SIZE, VHDX_REGION1_OFFSET);
	W(buf, VHDX_REGION_TABLE_SIZE, VHDX_REGION2_OFFSET);
	if (!ret && vhdx_metadata_serialize(md, buf, CREATE_META_LENGTH))
		ret = gp_error_set(err, GP_ERR_INVALID, "%s: metadata (parent paths?) too large", path);
	W(buf, CREATE_META_LENGTH, CREATE_META_OFFSET);
#undef W
	if (!ret && fsync(fd) < 0)
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: flush", path);
	close(fd);
	free(buf);
	if (!ret)
		ret = publish_new(tmp, path, err);
	if (ret)
		unlink(tmp);
	free(tmp);
	return ret;
}

int vhdx_create(const char *path, const struct vhdx_create_opts *opts, struct gp_error *err)
{
	struct vhdx_metadata md = { 0 };

	md.block_size = opts->block_size ? opts->block_size : 32 * VHDX_MiB;
	md.logical_sector_size = opts->logical_sector_size ? opts->logical_sector_size : 512;
	md.physical_sector_size = opts->physical_sector_size ? opts->physical_sector_size : 4096;
	md.virtual_size = opts->size;
	if (md.block_size < VHDX_MIN_BLOCK_SIZE || md.block_size > VHDX_MAX_BLOCK_SIZE ||
	    (md.block_size & (md.block_size - 1)))
		return gp_error_set(err, GP_ERR_INVALID,
				    "%s: block size %u is not a power of 2 between 1 MiB and 256 MiB",
				    path, md.block_size);
	if ((md.logical_sector_size != 512 && md.logical_sector_size != 4096) ||
	    (md.physical_sector_size != 512 && md.physical_sector_size != 4096))
		return gp_error_set(err, GP_ERR_INVALID, "%s: sector sizes must be 512 or 4096", path);
	if (!md.virtual_size || md.virtual_size > VHDX_MAX_VIRTUAL_SIZE ||
	    md.virtual_size % md.logical_sector_size)
		return gp_error_set(err, GP_ERR_INVALID,
				    "%s: size %llu is not a non-zero multiple of %u bytes up to 64 TiB",
				    path, (unsigned long long)md.virtual_size, md.logical_sector_size);
	vhdx_guid_generate(&md.disk_id);
	return write_new(path, &md, err);
}

bool vhdx_running_on_wsl(void)
{
	/* WSL 1 and 2 both register the Windows interop handler. */
	return access("/proc/sys/fs/binfmt_misc/WSLInterop", F_OK) == 0 ||
	       getenv("WSL_DISTRO_NAME") != NULL;
}

char *vhdx_win32_path(const char *abs, bool wsl)
{
	char *out, *q;

	/* WSL mounts drive X: at /mnt/x. */
	if (!wsl || strncmp(abs, "/mnt/", 5) || !((abs[5] >= 'a' && abs[5] <= 'z') ||
						   (abs[5] >= 'A' && abs[5] <= 'Z')) ||
	    (abs[6] != '/' && abs[6] != '\0'))
		return NULL;
	out = malloc(strlen(abs) + 8);
	if (!out)
		return NULL;
	sprintf(out, "\\\\?\\%c:\\%s", abs[5] & ~0x20, abs[6] ? abs + 7 : "");
	for (q = out + 7; *q; q++)
		if (*q == '/')
			*q = '\\';
	return out;
}

/* Relative path from directory @from to file @to (both absolute, canonical),
 * Windows separators. */
static char *relative_win_path(const char *from, const char *to)
{
	size_t common = 0, i, ups = 0, len;
	char *out, *o;

	for (i = 0; from[i] && from[i] == to[i]; i++)
		if (from[i] == '/')
			common = i + 1;
	if (!from[i] && to[i] == '/')
		common = i + 1;
	if (!strcmp(from, "/"))
		common = 1;
	/* ups counts the path components of @from below the common prefix. */
	for (i = common; from[i];) {
		while (from[i] == '/')
			i++;
		if (!from[i])
			break;
		ups++;
		while (from[i] && from[i] != '/')
			i++;
	}
	len = 3 * ups + strlen(to + common) + 3;
	out = malloc(len);
	if (!out)
		return NULL;
	o = out;
	if (!ups) {
		strcpy(o, ".\\");
		o += 2;
	}
	for (i = 0; i < ups; i++) {
		strcpy(o, "..\\");
		o += 3;
	}
	strcpy(o, to + common);
	for (; *o; o++)
		if (*o == '/')
			*o = '\\';
	return out;
}

int vhdx_create_child(const char *path, const char *parent_path, struct gp_error *err)
{
	struct vhdx_open_opts po = { .writable = false };
	struct vhdx_metadata md = { 0 };
	char pabs[PATH_MAX], cdir[PATH_MAX], tmp[PATH_MAX], dwg[VHDX_GUID_STR_LEN];
	char linkage[VHDX_GUID_STR_LEN + 2], *abs_win = NULL;
	struct vhdx *p;
	struct stat st;
	int ret;

	if (stat(path, &st) == 0)
		return refuse_existing(path, err);
	ret = vhdx_open(parent_path, &po, &p, err);
	if (ret)
		return ret;
	snprintf(tmp, sizeof(tmp), "%s", path);
	if (!realpath(parent_path, pabs) || !realpath(dirname(tmp), cdir)) {
		ret = gp_error_set_errno(err, GP_ERR_IO, errno, "%s: cannot resolve paths", path);
		goto out;
	}
	md.block_size = p->md.block_size;
	md.logical_sector_size = p->md.logical_sector_size;
	md.physical_sector_size = p->md.physical_sector_size;
	md.virtual_size = p->md.virtual_size;
	md.disk_id = p->md.disk_id; /* IsVirtualDisk items are copied when forking */
	md.has_parent = true;
	vhdx_guid_format(&p->hdr.data_write_guid, dwg);
	snprintf(linkage, sizeof(linkage), "{%s}", dwg);
	md.locator.parent_linkage = linkage;
	md.locator.relative_path = relative_win_path(cdir, pabs);
	/* absolute_win32_path must be "\\?\" + a drive letter or UNC share
	 * (2.6.2.6.3): written only when the parent's path has a Windows form. */
	abs_win = vhdx_win32_path(pabs, vhdx_running_on_wsl());
	md.locator.absolute_win32_path = abs_win;
	if (!md.locator.relative_path)
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	else
		ret = write_new(path, &md, err);
	free(md.locator.relative_path);
	free(abs_win);
out:
	vhdx_close(p, NULL);
	return ret;
}
