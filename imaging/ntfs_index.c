/* ntfs_index.c — case-insensitive search of a directory's $I30 index: the
 * B+tree walk behind gp_ntfs_lookup_ci() (ntfs_files.c).
 *
 * Why not ntfs_readdir(): a scan of the whole directory for every name
 * made creating N files in one folder cost N^2 (bench/RESULTS.md, "Cost per
 * file"). The index is sorted in an order that keeps every spelling of a
 * name together, so a descent to that run and a walk along it find them
 * all in O(log N). */
#include "ntfsvol_priv.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ntfs-3g/index.h>
#include <ntfs-3g/unistr.h>

/*
 * $I30 is collated by COLLATION_FILE_NAME: names compared upper-cased
 * through the volume's $UpCase first, and only names equal that way
 * ordered among themselves (libntfs-3g's ntfs_names_full_collate(),
 * CASE_SENSITIVE). So all spellings of a name sit next to each other,
 * whatever order a writer gave them within that run. The search key is
 * the name without its last unit: it sorts before every spelling (same
 * upper-cased prefix, shorter), and what lies between it and the run is
 * only names whose upper-cased form extends that prefix by a smaller unit
 * (usually none). From there the walk goes forward until a name sorts
 * after the run.
 *
 * Returns 0 with *@matches (distinct files named so: a Win32 name and its
 * DOS alias of one file count once) and *@mref (the last one met), or -1
 * with errno.
 */
int gp_ntfs_index_find_ci(ntfs_volume *vol, ntfs_inode *dir, const ntfschar *name, int len,
			  int *matches, u64 *mref)
{
	size_t klen = sizeof(FILE_NAME_ATTR) + (size_t)len * sizeof(ntfschar);
	ntfs_index_context *icx;
	FILE_NAME_ATTR *key;
	INDEX_ENTRY *ie;
	int ret = -1, e = 0;

	*matches = 0;
	if (len <= 0) {
		errno = EINVAL;
		return -1;
	}
	key = calloc(1, klen);
	if (!key)
		return -1;
	icx = ntfs_index_ctx_get(dir, NTFS_INDEX_I30, 4);
	if (!icx) {
		e = errno;
		goto out;
	}
	key->file_name_length = (u8)(len - 1);
	key->file_name_type = FILE_NAME_POSIX;
	memcpy(key->file_name, name, (size_t)(len - 1) * sizeof(ntfschar));
	/* Found (a name equal to the prefix) or not, icx->entry is where the
	 * walk starts: that name, or the first one after the prefix. */
	if (ntfs_index_lookup(key, (int)klen, icx) && errno != ENOENT) {
		e = errno;
		goto out;
	}
	/* ntfs_index_next() returns NULL at the end and on a read error
	 * alike; errno tells them apart (a read error is never "absent"). */
	errno = 0;
	ie = icx->entry;
	if (ie && (ie->ie_flags & INDEX_ENTRY_END))
		ie = ntfs_index_next(ie, icx);
	for (; ie; errno = 0, ie = ntfs_index_next(ie, icx)) {
		/* The key is a FILE_NAME_ATTR (packed: by byte offsets). */
		const u8 *fn = (const u8 *)ie + sizeof(INDEX_ENTRY_HEADER);
		const ntfschar *fname = (const ntfschar *)(fn + offsetof(FILE_NAME_ATTR, file_name));
		u8 flen = fn[offsetof(FILE_NAME_ATTR, file_name_length)];
		int rc;

		/* ntfs_index_next() reads blocks checked as a whole; each entry
		 * is checked here before its key is read. */
		if (ntfs_index_entry_inconsistent(ie, COLLATION_FILE_NAME, dir->mft_no)) {
			e = EIO;
			goto out;
		}
		rc = ntfs_names_full_collate(fname, flen, name, (u32)len,
					     IGNORE_CASE, vol->upcase, vol->upcase_len);
		if (rc < 0)
			continue;
		if (rc > 0)
			break;
		if (!*matches || MREF(*mref) != MREF_LE(ie->indexed_file))
			(*matches)++;
		*mref = le64_to_cpu(ie->indexed_file);
	}
	if (!ie && errno) {
		e = errno;
		goto out;
	}
	ret = 0;
out:
	if (icx)
		ntfs_index_ctx_put(icx);
	free(key);
	if (ret)
		errno = e ? e : EIO;
	return ret;
}
