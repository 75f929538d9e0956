/* ntfsvol.c — finding the guest's NTFS volume, checking that writing is
 * safe, mounting and unmounting it. File operations are in ntfs_files.c.
 * See ntfsvol.h. */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ntfs-3g/cache.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/logging.h>
#include <ntfs-3g/mft.h>
#include <ntfs-3g/unistr.h>

#include "le.h"
#include "part.h"

/* $LogFile restart page header (MS-NTFS / ntfs-3g layout.h RESTART_PAGE_HEADER). */
#define RSTR_MAGIC_OFF 0x00
#define RSTR_SYSTEM_PAGE_SIZE_OFF 0x10
#define RSTR_RESTART_AREA_OFF 0x18
#define RSTR_MINOR_VER_OFF 0x1A
#define RSTR_MAJOR_VER_OFF 0x1C
/* Restart area, relative to the restart-area offset. */
#define RA_CURRENT_LSN_OFF 0x00
#define RA_CLIENT_IN_USE_OFF 0x0C
#define RA_FLAGS_OFF 0x0E
#define RA_MIN_SIZE 0x10
#define LOGFILE_NO_CLIENT 0xffff
#define RESTART_VOLUME_IS_CLEAN 0x0002
/* Hibernation file signatures (first 4 bytes of hiberfil.sys). */
#define HIBR_SIG_LEN 4

/* Volume flag bit (MS-NTFS $VOLUME_INFORMATION). */
#define GP_VOLUME_IS_DIRTY 0x0001
/* $VOLUME_INFORMATION value: 8 reserved bytes, MajorVersion, MinorVersion,
 * Flags. */
#define VI_FLAGS_OFF 0x0A
#define VI_MIN_SIZE 0x0C

static const char *win_path_parts[] = { "Windows", "System32", "ntoskrnl.exe" };

int gp_ntfs_fail(struct gp_ntfs *v, int e, const char *fmt, ...)
{
	char head[GP_ERROR_MSG_MAX];
	int code;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	switch (e) {
	case ENOSPC: code = GP_ERR_NOSPACE; break;
	case EROFS: code = GP_ERR_READONLY; break;
	case ENOMEM: code = GP_ERR_NOMEM; break;
	case ENOENT: code = GP_ERR_NOTFOUND; break;
	case EEXIST: code = GP_ERR_EXISTS; break;
	default: code = GP_ERR_IO; break;
	}
	if (v->dev.err.code) {
		/* The disk failed: its message is the reason. libntfs-3g's errno
		 * is not (it turns a failed MFT write into EBUSY, so the user
		 * read "Device or resource busy" for a full host disk). */
		code = v->dev.err.code;
		gp_error_set(&v->err, code, "%s: %s: %s", v->where, head,
			     gp_error_message(&v->dev.err));
	} else {
		gp_error_set(&v->err, code, "%s: %s: %s", v->where, head, strerror(e ? e : EIO));
	}
	return code;
}

static int mirror_check(struct gp_ntfs *v, bool repair, struct gp_error *err);

int gp_ntfs_inode_close(ntfs_inode *ni)
{
	int e;

	if (!ni)
		return 0;
	/* Sync first, then close a clean inode: ntfs_inode_close() of a
	 * dirty inode whose write fails keeps it for a retry, except that
	 * with libntfs-3g's inode cache it retries once itself and frees it
	 * when that works, so after its failure the caller cannot tell
	 * whether @ni still exists. A failed ntfs_inode_sync() never frees.
	 * gpup does not retry: the run has failed and the volume stays
	 * marked dirty, so the unwritten changes are dropped. */
	if (ntfs_inode_sync(ni)) {
		e = errno;
		for (s32 i = 0; i < ni->nr_extents; i++) {
			NInoClearDirty(ni->extent_nis[i]);
			NInoAttrListClearDirty(ni->extent_nis[i]);
		}
		NInoClearDirty(ni);
		NInoAttrListClearDirty(ni);
		ntfs_inode_close(ni);
		errno = e;
		return -1;
	}
	return ntfs_inode_close(ni);
}

/* Mount the volume at @off/@len of @disk through our device. Errors into
 * @err with the libntfs-3g errno explained. With @repair (a writable open),
 * an $MFTMirr left one write behind by an interrupted gpup run is
 * rewritten from $MFT first (mirror_check()). */
static int mount_dev(struct gp_ntfs *v, uint64_t off, uint64_t len, bool rw,
		     unsigned long flags, bool repair, struct gp_error *err)
{
	struct ntfs_device *dev;
	int e;

	for (int attempt = 0;; attempt++) {
		memset(&v->dev, 0, sizeof(v->dev));
		v->dev.disk = v->disk;
		v->dev.offset = off;
		v->dev.length = len;
		v->dev.writable = rw;
		dev = gp_ntfs_dev_alloc(gp_disk_path(v->disk), &v->dev);
		if (!dev)
			return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", v->where);
		/* Never MAY_RDONLY or FORENSIC: both leave a volume that accepts
		 * and drops writes (see UPSTREAM.md). */
		v->vol = ntfs_device_mount(dev, (rw ? 0 : NTFS_MNT_RDONLY) | flags);
		if (v->vol)
			break;
		e = errno;
		ntfs_device_free(dev);
		if (v->dev.err.code)
			return gp_error_set(err, v->dev.err.code, "%s: cannot mount NTFS: %s",
					    v->where, gp_error_message(&v->dev.err));
		/* EIO without a disk error: a damaged structure, often only a
		 * stale $MFTMirr. One repair, then one more try. */
		if (e == EIO && attempt == 0) {
			int r = mirror_check(v, repair, err);

			if (r == 1)
				continue;
			if (r)
				return r;
		}
		switch (e) {
		case EPERM:
			return gp_error_set(err, GP_ERR_REFUSED,
					    "%s: Windows is hibernated or was shut down with Fast Startup; boot the guest and run `shutdown /s /t 0`, or disable Fast Startup",
					    v->where);
		case EOPNOTSUPP:
			return gp_error_set(err, GP_ERR_REFUSED,
					    "%s: the NTFS journal ($LogFile) was not closed cleanly; boot the guest and shut it down cleanly, or pass --recover to discard the journal",
					    v->where);
		case ENOMEM:
			return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", v->where);
		default:
			return gp_error_set_errno(err, GP_ERR_CORRUPT, e,
						  "%s: libntfs-3g cannot mount the NTFS volume", v->where);
		}
	}
	/* Defensive: a writable request must give a writable volume. */
	if (rw && NVolReadOnly(v->vol)) {
		ntfs_umount(v->vol, FALSE);
		v->vol = NULL;
		return gp_error_set(err, GP_ERR_READONLY,
				    "%s: libntfs-3g mounted the volume read-only", v->where);
	}
	ntfs_create_lru_caches(v->vol);
	return 0;
}

static void unmount(struct gp_ntfs *v)
{
	if (v->secure_open) {
		ntfs_close_secure(v->vol);
		v->secure_open = false;
	}
	if (v->vol)
		ntfs_umount(v->vol, FALSE);
	v->vol = NULL;
}

/* Look up @name in directory @dir case-insensitively. Returns the mref or 0. */
static u64 probe_lookup(ntfs_volume *vol, ntfs_inode *dir, const char *name)
{
	ntfschar u[64];
	int len = gp_ntfs_to_utf16(name, u, 64);
	u64 mref;

	if (len <= 0 || gp_ntfs_lookup_ci(vol, dir, u, len, &mref))
		return 0;
	return mref;
}

static bool probe_has_windows(ntfs_volume *vol)
{
	u64 mref = FILE_root;
	bool ok = true;

	for (size_t i = 0; ok && i < sizeof(win_path_parts) / sizeof(win_path_parts[0]); i++) {
		ntfs_inode *ni = ntfs_inode_open(vol, mref);

		if (!ni)
			return false;
		mref = probe_lookup(vol, ni, win_path_parts[i]);
		ntfs_inode_close(ni);
		ok = mref != 0;
	}
	return ok;
}

static void probe_hiberfile(ntfs_volume *vol, struct gp_ntfs_volinfo *info)
{
	ntfs_inode *root = ntfs_inode_open(vol, FILE_root), *ni;
	ntfs_attr *na;
	char sig[HIBR_SIG_LEN];
	u64 mref;

	if (!root)
		return;
	mref = probe_lookup(vol, root, "hiberfil.sys");
	ntfs_inode_close(root);
	if (!mref)
		return;
	ni = ntfs_inode_open(vol, mref);
	if (!ni)
		return;
	na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
	if (na) {
		/* Windows writes "hibr" (or "HIBR" since 8) when it hibernates and
		 * wipes it on resume; anything else is a stale file. */
		if (ntfs_attr_pread(na, 0, HIBR_SIG_LEN, sig) == HIBR_SIG_LEN &&
		    (memcmp(sig, "hibr", HIBR_SIG_LEN) == 0 || memcmp(sig, "HIBR", HIBR_SIG_LEN) == 0))
			info->hibernated = true;
		ntfs_attr_close(na);
	}
	ntfs_inode_close(ni);
}

/* Parse the two restart pages of $LogFile ourselves (read-only): version
 * 2.0 means Windows kept metadata cached (Fast Startup); 1.1 with clients
 * in use and without the clean flag means unapplied changes. An all-0xFF
 * journal (emptied by chkdsk or ntfs-3g) is clean. */
static void probe_logfile(ntfs_volume *vol, struct gp_ntfs_volinfo *info)
{
	ntfs_inode *ni = ntfs_inode_open(vol, FILE_LogFile);
	ntfs_attr *na;
	uint8_t *buf = NULL;
	uint64_t best_lsn = 0, page_off[2] = { 0, 0 };
	bool found = false;
	uint16_t major = 0, minor = 0, in_use = 0, flags = 0;
	const uint32_t page = 4096;

	if (!ni)
		return;
	na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
	if (!na)
		goto out_ni;
	buf = malloc(page);
	if (!buf || ntfs_attr_pread(na, 0, page, buf) != page)
		goto out_na;
	/* The second restart page sits at the system page size. */
	page_off[1] = page;
	if (memcmp(buf + RSTR_MAGIC_OFF, "RSTR", 4) == 0) {
		uint32_t sps = get_le32(buf + RSTR_SYSTEM_PAGE_SIZE_OFF);

		if (sps >= 512 && sps <= 65536 && (sps & (sps - 1)) == 0)
			page_off[1] = sps;
	}
	for (int i = 0; i < 2; i++) {
		uint16_t ra;
		uint64_t lsn;

		if (i == 1 && ntfs_attr_pread(na, (s64)page_off[1], page, buf) != page)
			break;
		if (memcmp(buf + RSTR_MAGIC_OFF, "RSTR", 4) != 0)
			continue;
		ra = get_le16(buf + RSTR_RESTART_AREA_OFF);
		if ((uint32_t)ra + RA_MIN_SIZE > page)
			continue;
		lsn = get_le64(buf + ra + RA_CURRENT_LSN_OFF);
		if (!found || lsn > best_lsn) {
			found = true;
			best_lsn = lsn;
			major = get_le16(buf + RSTR_MAJOR_VER_OFF);
			minor = get_le16(buf + RSTR_MINOR_VER_OFF);
			in_use = get_le16(buf + ra + RA_CLIENT_IN_USE_OFF);
			flags = get_le16(buf + ra + RA_FLAGS_OFF);
		}
	}
	if (found) {
		if (major == 2 && minor == 0)
			info->fast_startup = true;
		else if (in_use != LOGFILE_NO_CLIENT && !(flags & RESTART_VOLUME_IS_CLEAN))
			info->log_unclean = true;
	}
out_na:
	free(buf);
	ntfs_attr_close(na);
out_ni:
	ntfs_inode_close(ni);
}

/* The marker of a gpup write in progress: a named data stream on the root
 * directory. It is written before VOLUME_IS_DIRTY is set and removed after
 * the flag is cleared, so "dirty and marked" means "a gpup run died here",
 * and a marker on a clean volume means nothing. */
static const char marker_name[] = "gpup-write-in-progress";

static bool marker_present(ntfs_volume *vol)
{
	ntfschar *uname = NULL;
	int ulen = ntfs_mbstoucs(marker_name, &uname);
	ntfs_inode *root;
	bool found = false;

	if (ulen <= 0)
		return false;
	root = ntfs_inode_open(vol, FILE_root);
	if (root) {
		found = ntfs_attr_exist(root, AT_DATA, uname, (u32)ulen);
		ntfs_inode_close(root);
	}
	free(uname);
	return found;
}

/* Add (@set) or remove the marker. Returns 0 or -1 with errno set. */
static int marker_write(ntfs_volume *vol, bool set)
{
	ntfschar *uname = NULL;
	int ulen = ntfs_mbstoucs(marker_name, &uname), ret = 0, e = 0;
	ntfs_inode *root;

	if (ulen <= 0)
		return -1;
	root = ntfs_inode_open(vol, FILE_root);
	if (!root) {
		e = errno;
		free(uname);
		errno = e;
		return -1;
	}
	if (set != (bool)ntfs_attr_exist(root, AT_DATA, uname, (u32)ulen)) {
		ret = set ? ntfs_attr_add(root, AT_DATA, uname, (u8)ulen, NULL, 0)
			  : ntfs_attr_remove(root, AT_DATA, uname, (u8)ulen);
		e = errno;
	}
	if (gp_ntfs_inode_close(root) && !ret) {
		ret = -1;
		e = errno;
	}
	free(uname);
	errno = e;
	return ret;
}

/* Bytes of @r in use, when @r (read raw, @rs bytes) is a whole MFT record
 * whose header fits its buffer; 0 otherwise. The raw reads below bypass
 * libntfs-3g's record checks, so its sizes are not to be believed as read
 * (a hostile image's bytes_in_use could send a comparison or an attribute
 * walk past the buffer). */
static uint32_t record_used(const MFT_RECORD *r, uint32_t rs)
{
	uint32_t used = le32_to_cpu(r->bytes_in_use);

	if (!ntfs_is_mft_recordp(r) || le32_to_cpu(r->bytes_allocated) != rs || used > rs ||
	    le16_to_cpu(r->attrs_offset) >= used)
		return 0;
	return used;
}

/* VOLUME_IS_DIRTY in the $VOLUME_INFORMATION of @m, a copy of $Volume's
 * MFT record of @rs bytes (read as it is on disk, without mounting). */
static bool record_dirty(MFT_RECORD *m, uint32_t rs)
{
	ntfs_attr_search_ctx *ctx;
	bool dirty = false;

	if (!record_used(m, rs))
		return false;
	ctx = ntfs_attr_get_search_ctx(NULL, m);
	if (!ctx)
		return false;
	if (!ntfs_attr_lookup(AT_VOLUME_INFORMATION, AT_UNNAMED, 0, CASE_SENSITIVE, 0, NULL, 0,
			      ctx) &&
	    !ctx->attr->non_resident) {
		const uint8_t *a = (const uint8_t *)ctx->attr;
		uint32_t voff = le16_to_cpu(ctx->attr->value_offset);
		uint32_t vlen = le32_to_cpu(ctx->attr->value_length);

		if (vlen >= VI_MIN_SIZE && voff + vlen <= le32_to_cpu(ctx->attr->length))
			dirty = (get_le16(a + voff + VI_FLAGS_OFF) & GP_VOLUME_IS_DIRTY) != 0;
	}
	ntfs_attr_put_search_ctx(ctx);
	return dirty;
}

/*
 * ntfs_device_mount() failed with EIO and the disk reported no error: is
 * $MFTMirr out of step with $MFT? libntfs-3g writes an MFT record to $MFT
 * first and to its $MFTMirr copy second, with no journal to redo the
 * second write, so a gpup run killed (or whose host disk failed) between
 * the two leaves the mirror one write behind, and libntfs-3g then refuses
 * the volume until chkdsk or ntfsfix copies $MFT over the mirror.
 *
 * With @repair (a writable open) the stale mirror records are rewritten
 * from $MFT, the newer copy, but only when the mismatch is gpup's own: the
 * volume carries gpup's in-progress marker and VOLUME_IS_DIRTY (in either
 * copy of $Volume: the stale write may be the flag itself, set or
 * cleared), every $MFT record to copy is a valid in-use record, and
 * nothing says Windows ran since (hibernation, Fast Startup, an unclean
 * journal). Returns 1 when repaired (mount again), 0 when the mirror is
 * not the cause (the caller reports its error), or a code set in @err.
 */
static int mirror_check(struct gp_ntfs *v, bool repair, struct gp_error *err)
{
	struct gp_ntfs_volinfo win = { 0 };
	struct ntfs_device *dev;
	ntfs_volume *vol;
	uint8_t *m = NULL, *m2 = NULL;
	int first = -1, ret = 0;
	bool valid = true, dirty, ours;
	uint32_t rs;
	s64 n, n2;

	v->dev.writable = repair;
	dev = gp_ntfs_dev_alloc(gp_disk_path(v->disk), &v->dev);
	if (!dev)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", v->where);
	/* The boot sector, $MFT and $MFTMirr only: no mirror comparison. */
	vol = ntfs_volume_startup(dev, repair ? 0 : NTFS_MNT_RDONLY);
	if (!vol) {
		ntfs_device_free(dev);
		return 0;
	}
	rs = vol->mft_record_size;
	m = malloc((size_t)vol->mftmirr_size * rs);
	m2 = malloc((size_t)vol->mftmirr_size * rs);
	if (!m || !m2) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", v->where);
		goto out;
	}
	n = ntfs_attr_mst_pread(vol->mft_na, 0, vol->mftmirr_size, rs, m);
	n2 = ntfs_attr_mst_pread(vol->mftmirr_na, 0, vol->mftmirr_size, rs, m2);
	if (n != vol->mftmirr_size || n2 <= 0)
		goto out;
	/* The comparison ntfs_device_mount() makes (the used bytes of the
	 * $MFT copy), over at most the record's size. */
	for (s64 i = 0; i < n2; i++) {
		MFT_RECORD *r = (MFT_RECORD *)(m + i * rs), *r2 = (MFT_RECORD *)(m2 + i * rs);
		uint32_t used = record_used(r, rs);

		if (!memcmp(r, r2, used ? used : rs))
			continue;
		if (first < 0)
			first = (int)i;
		if (!used || !(r->flags & MFT_RECORD_IN_USE))
			valid = false;
	}
	if (first < 0)
		goto out;
	dirty = record_dirty((MFT_RECORD *)(m + FILE_Volume * rs), rs) ||
		(n2 > FILE_Volume && record_dirty((MFT_RECORD *)(m2 + FILE_Volume * rs), rs));
	ours = repair && valid && dirty && marker_present(vol);
	if (ours) {
		probe_hiberfile(vol, &win);
		probe_logfile(vol, &win);
	}
	if (!ours || win.hibernated || win.fast_startup || win.log_unclean) {
		ret = gp_error_set(err, repair ? GP_ERR_REFUSED : GP_ERR_CORRUPT,
				   "%s: $MFTMirr does not match $MFT (record %d): run chkdsk /f in the guest, or ntfsfix",
				   v->where, first);
		goto out;
	}
	for (s64 i = first; i < n2; i++) {
		MFT_RECORD *r = (MFT_RECORD *)(m + i * rs);

		if (!memcmp(r, m2 + i * rs, record_used(r, rs)))
			continue;
		/* Through $MFT and $MFTMirr both, as ntfsfix does: each write
		 * bumps the record's update sequence number, so a copy to the
		 * mirror alone would differ from $MFT in that number. */
		if (ntfs_mft_record_write(vol, (MFT_REF)i, r)) {
			ret = v->dev.err.code
				      ? gp_error_set(err, v->dev.err.code,
						     "%s: cannot repair $MFTMirr: %s", v->where,
						     gp_error_message(&v->dev.err))
				      : gp_error_set_errno(err, GP_ERR_IO, errno,
							   "%s: cannot repair $MFTMirr", v->where);
			goto out;
		}
	}
	ret = 1;
out:
	free(m);
	free(m2);
	/* A startup-only volume: ntfs_umount() releases what it holds and
	 * frees the device (an error from the partial release means nothing
	 * here: nothing was cached). */
	ntfs_umount(vol, FALSE);
	if (ret == 1 && v->dev.err.code)
		ret = gp_error_set(err, v->dev.err.code, "%s: cannot repair $MFTMirr: %s", v->where,
				   gp_error_message(&v->dev.err));
	return ret;
}

/* Read-only mount of one candidate: fill @info with what is needed to
 * choose it and to decide whether writing is safe. With @repair (the open
 * is writable), a $MFTMirr that an interrupted gpup run left behind is
 * repaired first (mirror_check()). */
static int probe(struct gp_ntfs *v, uint64_t off, uint64_t len, bool repair,
		 struct gp_ntfs_volinfo *info, struct gp_error *err)
{
	int ret = mount_dev(v, off, len, false, 0, repair, err);

	if (ret)
		return ret;
	info->offset = off;
	info->length = len;
	info->dirty = (le16_to_cpu(v->vol->flags) & GP_VOLUME_IS_DIRTY) != 0;
	info->interrupted = info->dirty && marker_present(v->vol);
	info->has_windows = probe_has_windows(v->vol);
	probe_hiberfile(v->vol, info);
	probe_logfile(v->vol, info);
	unmount(v);
	/* The probes read what they can and take a failed read for "not
	 * there"; a disk error among those reads must not pass for a safe
	 * volume (libntfs-3g's error went to our device). */
	if (v->dev.err.code)
		return gp_error_set(err, v->dev.err.code, "%s: %s", v->where,
				    gp_error_message(&v->dev.err));
	return 0;
}

static void set_where(struct gp_ntfs *v, unsigned partition)
{
	snprintf(v->where, sizeof(v->where), "%s: volume %u", gp_disk_path(v->disk),
		 partition ? partition : 1);
}

static int refuse_bitlocker(struct gp_ntfs *v, unsigned n, struct gp_error *err)
{
	return gp_error_set(err, GP_ERR_REFUSED,
			    "volume %u of %s is BitLocker-encrypted; decrypt or suspend protection in the guest first",
			    n ? n : 1, gp_disk_path(v->disk));
}

/* A candidate volume. */
struct cand {
	unsigned number;       /* 0: bare volume */
	uint64_t off, len;
	enum gp_volsig sig;
	struct gp_ntfs_volinfo info;
	bool probed;
};

static void list_numbers(char *buf, size_t size, const struct cand *c, size_t n, bool windows_only)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (c[i].sig != GP_VOLSIG_NTFS || (windows_only && !c[i].info.has_windows))
			continue;
		used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%u",
					 used ? ", " : "", c[i].number ? c[i].number : 1);
		if (used >= size)
			break;
	}
}

/* Choose the volume per @opts among the disk's partitions; fills @chosen. */
/* May this open repair gpup's own interrupted write (mirror_check())? */
static bool repairs(const struct gp_ntfs *v, const struct gp_ntfs_open_opts *opts)
{
	return opts->writable || (opts->plan && gp_disk_is_writable(v->disk));
}

static int choose(struct gp_ntfs *v, const struct gp_ntfs_open_opts *opts, struct cand *chosen,
		  struct gp_error *err)
{
	struct gp_partition_table pt;
	struct gp_error perr = { 0 };
	struct cand *c = NULL;
	size_t n = 0, ntfs = 0, win = 0, bitlocker = 0;
	const char *path = gp_disk_path(v->disk);
	char list[256];
	int ret;

	ret = gp_part_read(v->disk, &pt, err);
	/* A raw image does not record its sector size: a 4096-byte-sector
	 * guest's GPT is found by trying again. */
	if (!ret && pt.kind == GP_PT_NONE && pt.whole_disk_volsig == GP_VOLSIG_NONE &&
	    gp_disk_logical_sector_size(v->disk) == 512) {
		gp_part_table_free(&pt);
		ret = gp_part_read_sector_size(v->disk, 4096, &pt, err);
	}
	if (ret)
		goto out;
	c = calloc(pt.count ? pt.count : 1, sizeof(*c));
	if (!c) {
		ret = gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	if (pt.kind == GP_PT_NONE) {
		c[0].number = 0;
		c[0].off = 0;
		c[0].len = gp_disk_size(v->disk);
		c[0].sig = pt.whole_disk_volsig;
		n = 1;
	} else {
		for (size_t i = 0; i < pt.count; i++) {
			c[n].number = pt.parts[i].number;
			c[n].off = pt.parts[i].offset;
			c[n].len = pt.parts[i].length;
			c[n].sig = pt.parts[i].volsig;
			n++;
		}
	}
	if (opts->partition) {
		size_t i;

		for (i = 0; i < n; i++)
			if (c[i].number == opts->partition ||
			    (c[i].number == 0 && opts->partition == 1))
				break;
		if (i == n) {
			ret = gp_error_set(err, GP_ERR_NOTFOUND, "%s has no partition %u", path,
					   opts->partition);
			goto out;
		}
		if (c[i].sig == GP_VOLSIG_BITLOCKER) {
			ret = refuse_bitlocker(v, c[i].number, err);
			goto out;
		}
		if (c[i].sig != GP_VOLSIG_NTFS) {
			ret = gp_error_set(err, GP_ERR_INVALID, "partition %u of %s is not NTFS (%s)",
					   opts->partition, path, gp_volsig_name(c[i].sig));
			goto out;
		}
		set_where(v, c[i].number);
		ret = probe(v, c[i].off, c[i].len, repairs(v, opts), &c[i].info, err);
		if (ret)
			goto out;
		if (opts->require_windows && !c[i].info.has_windows) {
			ret = gp_error_set(err, GP_ERR_NOTFOUND,
					   "partition %u of %s holds no Windows installation (no \\Windows\\System32\\ntoskrnl.exe)",
					   opts->partition, path);
			goto out;
		}
		*chosen = c[i];
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (c[i].sig == GP_VOLSIG_BITLOCKER)
			bitlocker++;
		if (c[i].sig != GP_VOLSIG_NTFS)
			continue;
		set_where(v, c[i].number);
		/* One unreadable volume (a damaged recovery partition) must not
		 * hide the good ones: remember the first failure, go on. */
		ret = probe(v, c[i].off, c[i].len, repairs(v, opts), &c[i].info, &perr);
		if (ret == GP_ERR_NOMEM) {
			gp_error_copy(err, &perr);
			goto out;
		}
		if (ret)
			continue;
		ntfs++;
		c[i].probed = true;
		if (c[i].info.has_windows)
			win++;
	}
	if (win == 0 && (opts->require_windows || ntfs == 0) && bitlocker) {
		for (size_t i = 0; i < n; i++)
			if (c[i].sig == GP_VOLSIG_BITLOCKER) {
				ret = refuse_bitlocker(v, c[i].number, err);
				goto out;
			}
	}
	ret = 0;
	if (ntfs == 0 && perr.code) {
		ret = gp_error_copy(err, &perr);
		goto out;
	}
	if (ntfs == 0) {
		ret = gp_error_set(err, GP_ERR_NOTFOUND, "%s holds no NTFS volume", path);
		goto out;
	}
	if (win == 0 && opts->require_windows) {
		list_numbers(list, sizeof(list), c, n, false);
		ret = gp_error_set(err, GP_ERR_NOTFOUND,
				   "%s: no Windows installation found (NTFS volumes: %s; none holds \\Windows\\System32\\ntoskrnl.exe)",
				   path, list);
		goto out;
	}
	if (win > 1 || (win == 0 && ntfs > 1)) {
		list_numbers(list, sizeof(list), c, n, win > 1);
		ret = gp_error_set(err, GP_ERR_INVALID,
				   "%s holds several %s (%s); choose one with --partition N",
				   path, win > 1 ? "Windows installations on volumes" : "NTFS volumes", list);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (c[i].probed && (win == 0 || c[i].info.has_windows)) {
			*chosen = c[i];
			break;
		}
out:
	free(c);
	gp_part_table_free(&pt);
	return ret;
}

/* The refusals of a writable open, in order of severity. */
static int check_safe(struct gp_ntfs *v, const struct gp_ntfs_volinfo *info,
		      const struct gp_ntfs_open_opts *opts, struct gp_error *err)
{
	if (info->hibernated)
		return gp_error_set(err, GP_ERR_REFUSED,
				    "%s: Windows is hibernated, or was shut down with Fast Startup (hiberfil.sys holds a hibernation image); boot the guest and run `shutdown /s /t 0` for a full shutdown, or disable Fast Startup and hibernation (`powercfg /h off`)",
				    v->where);
	if (info->fast_startup)
		return gp_error_set(err, GP_ERR_REFUSED,
				    "%s: Windows was shut down with Fast Startup ($LogFile restart page version 2.0, metadata cached by Windows); boot the guest and run `shutdown /s /t 0`, or disable Fast Startup",
				    v->where);
	if (info->log_unclean && !opts->recover)
		return gp_error_set(err, GP_ERR_REFUSED,
				    "%s: the NTFS journal ($LogFile) holds unapplied changes (Windows did not shut down cleanly); boot the guest and shut it down cleanly, or pass --recover to discard the journal",
				    v->where);
	if (info->dirty && !opts->force && !info->interrupted)
		return gp_error_set(err, GP_ERR_REFUSED,
				    "%s is marked dirty (VOLUME_IS_DIRTY: Windows wants chkdsk); run `chkdsk /f` in the guest, or pass --force",
				    v->where);
	return 0;
}

int gp_ntfs_open(struct gp_disk *disk, const struct gp_ntfs_open_opts *opts,
		 struct gp_ntfs **out, struct gp_error *err)
{
	static const struct gp_ntfs_open_opts defaults;
	struct gp_ntfs *v;
	struct cand chosen;
	int ret;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	/* libntfs-3g logs to stderr by default; library code never prints. */
	ntfs_log_set_handler(ntfs_log_handler_null);
	if (opts->writable && !gp_disk_is_writable(disk))
		return gp_error_set(err, GP_ERR_READONLY, "%s: disk is open read-only",
				    gp_disk_path(disk));
	v = calloc(1, sizeof(*v));
	if (!v)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", gp_disk_path(disk));
	v->disk = disk;
	memset(&chosen, 0, sizeof(chosen));
	ret = choose(v, opts, &chosen, err);
	if (ret)
		goto fail;
	set_where(v, chosen.number);
	v->info = chosen.info;
	v->info.partition = chosen.number;
	if (opts->writable || opts->plan) {
		ret = check_safe(v, &v->info, opts, err);
		if (ret)
			goto fail;
	}
	ret = mount_dev(v, chosen.off, chosen.len, opts->writable,
			opts->writable && opts->recover ? NTFS_MNT_RECOVER : 0, opts->writable, err);
	if (ret)
		goto fail;
	v->writable = opts->writable;
	/* A discarded journal may have held metadata updates: leave the
	 * volume marked dirty so Windows runs chkdsk at the next boot. */
	if (v->writable && opts->recover && v->info.log_unclean) {
		ret = gp_ntfs_begin_write(v);
		if (ret) {
			gp_error_copy(err, &v->err);
			goto fail_mounted;
		}
		v->info.dirty = true;
	}
	/* Names are looked up case-insensitively by gp_ntfs_lookup_ci(), not
	 * by ntfs_set_ignore_case(): that mode skips POSIX names and makes
	 * ntfs_readdir() report names in lower case. */
	/* New files are compressed only where Windows would compress them
	 * (in a compressed directory); ntfs_files.c turns this on per parent. */
	NVolClearCompression(v->vol);
	/* libntfs-3g counts the free clusters past a failed $Bitmap read
	 * (it stops early and reports success); the disk error it dropped is
	 * still on our device: an image that fails a read is never trusted. */
	if (ntfs_volume_get_free_space(v->vol) < 0 || v->dev.err.code) {
		ret = v->dev.err.code ? gp_error_set(err, v->dev.err.code, "%s: cannot read $Bitmap: %s",
						     v->where, gp_error_message(&v->dev.err))
				      : gp_error_set_errno(err, GP_ERR_IO, errno,
							   "%s: cannot read $Bitmap", v->where);
		goto fail_mounted;
	}
	v->scx.vol = v->vol;
	v->scx.pseccache = &v->seccache;
	v->scx.uid = 0;
	v->scx.gid = 0;
	v->scx.umask = 0;
	v->secure_open = ntfs_open_secure(v->vol) == 0;
	/* Without $Secure every new file would get libntfs-3g's
	 * Everyone:Full descriptor instead of its parent's ACEs. */
	if (!v->secure_open && v->writable && v->vol->major_ver >= 3) {
		ret = gp_error_set_errno(err, GP_ERR_CORRUPT, errno,
					 "%s: cannot open $Secure (security descriptors)", v->where);
		goto fail_mounted;
	}
	v->info.cluster_size = v->vol->cluster_size;
	v->info.total_bytes = (uint64_t)v->vol->nr_clusters * v->vol->cluster_size;
	v->info.major_ver = v->vol->major_ver;
	v->info.minor_ver = v->vol->minor_ver;
	snprintf(v->info.label, sizeof(v->info.label), "%s", v->vol->vol_name ? v->vol->vol_name : "");
	if (v->writable)
		v->placer = gp_ntfs_placer_new(v->vol, disk, chosen.off);
	*out = v;
	return 0;
fail_mounted:
	unmount(v);
fail:
	free(v);
	return ret;
}

bool gp_ntfs_began_writing(const struct gp_ntfs *v)
{
	return v->began_writing;
}

bool gp_ntfs_write_pending(const struct gp_ntfs *v)
{
	return !v->writable || (!v->marked_dirty && !v->info.dirty);
}

int gp_ntfs_begin_write(struct gp_ntfs *v)
{
	if (!v->writable)
		return gp_error_set(&v->err, GP_ERR_READONLY, "%s: volume is open read-only", v->where);
	v->began_writing = true;
	if (v->marked_dirty || v->info.dirty)
		return 0;
	/* Marker first, flag second: a crash or a disk failure in between
	 * leaves a clean volume with a marker, which means nothing (the next
	 * run writes it again and removes it at the end); the other order
	 * left a dirty volume without the marker, which the rerun had to
	 * refuse as somebody else's dirt. */
	if (marker_write(v->vol, true)) {
		v->failed = true;
		return gp_ntfs_fail(v, errno, "cannot mark the volume as being written by gpup");
	}
	if (ntfs_volume_write_flags(v->vol, le16_to_cpu(v->vol->flags) | GP_VOLUME_IS_DIRTY)) {
		v->failed = true;
		return gp_ntfs_fail(v, errno, "cannot mark the volume dirty in $Volume");
	}
	v->marked_dirty = true;
	return 0;
}

bool gp_ntfs_settle(struct gp_ntfs *v, bool undone)
{
	v->source_failed = !undone;
	return !v->failed && !v->info.dirty;
}

int gp_ntfs_close(struct gp_ntfs *v, struct gp_error *err)
{
	int ret = 0;

	if (!v)
		return 0;
	gp_ntfs_placer_free(v->placer);
	if (v->secure_open) {
		ntfs_close_secure(v->vol);
		v->secure_open = false;
	}
	ntfs_destroy_security_context(&v->scx);
	if (v->writable && v->marked_dirty && !v->failed && !v->source_failed && !v->info.dirty &&
	    v->vol) {
		/* Clean first, marker second: a crash in between leaves a
		 * clean volume with a stale marker, which means nothing. */
		if (ntfs_volume_write_flags(v->vol, le16_to_cpu(v->vol->flags) & ~GP_VOLUME_IS_DIRTY))
			ret = gp_ntfs_fail(v, errno, "cannot mark the volume clean in $Volume");
		else if (marker_write(v->vol, false))
			ret = gp_ntfs_fail(v, errno, "cannot remove gpup's in-progress marker");
	}
	if (v->vol && ntfs_umount(v->vol, FALSE) && !ret)
		ret = gp_ntfs_fail(v, errno, "unmount failed");
	v->vol = NULL;
	if (!ret && v->dev.err.code)
		ret = gp_error_set(&v->err, v->dev.err.code, "%s: %s", v->where,
				   gp_error_message(&v->dev.err));
	if (!ret && v->writable) {
		ret = gp_disk_flush(v->disk);
		if (ret)
			gp_error_copy(&v->err, gp_disk_error(v->disk));
	}
	if (ret)
		gp_error_copy(err, &v->err);
	free(v);
	return ret;
}

const struct gp_error *gp_ntfs_error(const struct gp_ntfs *v)
{
	return &v->err;
}

void gp_ntfs_clear_error(struct gp_ntfs *v)
{
	gp_error_clear(&v->err);
}

void gp_ntfs_volinfo(const struct gp_ntfs *v, struct gp_ntfs_volinfo *out)
{
	*out = v->info;
	out->free_bytes = gp_ntfs_free_bytes(v);
}

uint64_t gp_ntfs_free_bytes(const struct gp_ntfs *v)
{
	return v->vol->free_clusters > 0
		       ? (uint64_t)v->vol->free_clusters * v->vol->cluster_size : 0;
}
