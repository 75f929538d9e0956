/*
 * vhdx_priv.h — the VHDX engine's internals, shared by vhdx_*.c only.
 *
 * One file per on-disk structure family, each with a parse/serialize pair
 * working on byte buffers and native structs (values in CPU order):
 *   vhdx_header.c    file type identifier, the two headers, GUID helpers
 *   vhdx_region.c    region tables
 *   vhdx_metadata.c  metadata table, known items, parent locator
 *   vhdx_bat.c       BAT geometry, entry validation, chunk interleave
 *   vhdx_log.c       log entries: parse, active-sequence search, replay,
 *                    and the writer used for BAT updates
 *   vhdx.c           open/read/write/flush/close
 *   vhdx_create.c    new images and differencing children
 * Offsets named *_OFF are the spec's field names; sizes are bytes.
 */
#ifndef GPUP_VHDX_PRIV_H
#define GPUP_VHDX_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk_priv.h" /* struct gp_disk_lock */
#include "gp_error.h"
#include "le.h"
#include "vhdx.h"

#define VHDX_KiB 1024ULL
#define VHDX_MiB (1024ULL * 1024ULL)

/* Header section (MS-VHDX 2.2): five 64 KiB items in the first 1 MiB. */
#define VHDX_FILE_ID_OFFSET 0x00000
#define VHDX_HEADER1_OFFSET 0x10000
#define VHDX_HEADER2_OFFSET 0x20000
#define VHDX_REGION1_OFFSET 0x30000
#define VHDX_REGION2_OFFSET 0x40000
#define VHDX_HEADER_SECTION_SIZE VHDX_MiB

/* File type identifier (2.2.1). */
#define VHDX_FILE_ID_SIGNATURE_OFF 0   /* "vhdxfile" */
#define VHDX_FILE_ID_CREATOR_OFF 8     /* UTF-16, 512 bytes */
#define VHDX_FILE_ID_CREATOR_LEN 512

/* Header (2.2.2): a 4 KiB structure. */
#define VHDX_HEADER_SIZE 4096
#define VHDX_HDR_SIGNATURE_OFF 0       /* "head" */
#define VHDX_HDR_CHECKSUM_OFF 4
#define VHDX_HDR_SEQUENCE_OFF 8
#define VHDX_HDR_FILE_WRITE_GUID_OFF 16
#define VHDX_HDR_DATA_WRITE_GUID_OFF 32
#define VHDX_HDR_LOG_GUID_OFF 48
#define VHDX_HDR_LOG_VERSION_OFF 64
#define VHDX_HDR_VERSION_OFF 66
#define VHDX_HDR_LOG_LENGTH_OFF 68
#define VHDX_HDR_LOG_OFFSET_OFF 72

/* Region table (2.2.3): 64 KiB, 16-byte header, 32-byte entries. */
#define VHDX_REGION_TABLE_SIZE 0x10000
#define VHDX_RT_SIGNATURE_OFF 0        /* "regi" */
#define VHDX_RT_CHECKSUM_OFF 4
#define VHDX_RT_ENTRY_COUNT_OFF 8
#define VHDX_RT_ENTRIES_OFF 16
#define VHDX_RT_ENTRY_SIZE 32
#define VHDX_RT_MAX_ENTRIES 2047
#define VHDX_RTE_GUID_OFF 0
#define VHDX_RTE_FILE_OFFSET_OFF 16
#define VHDX_RTE_LENGTH_OFF 24
#define VHDX_RTE_REQUIRED_OFF 28

/* Metadata table (2.6.1): 64 KiB, 32-byte header, 32-byte entries. */
#define VHDX_METADATA_TABLE_SIZE 0x10000
#define VHDX_MDT_SIGNATURE_OFF 0       /* "metadata" */
#define VHDX_MDT_ENTRY_COUNT_OFF 10
#define VHDX_MDT_ENTRIES_OFF 32
#define VHDX_MDT_ENTRY_SIZE 32
#define VHDX_MDT_MAX_ENTRIES 2047
#define VHDX_MDE_ITEM_ID_OFF 0
#define VHDX_MDE_OFFSET_OFF 16
#define VHDX_MDE_LENGTH_OFF 20
#define VHDX_MDE_FLAGS_OFF 24
#define VHDX_MDE_IS_USER 0x1u
#define VHDX_MDE_IS_VIRTUAL_DISK 0x2u
#define VHDX_MDE_IS_REQUIRED 0x4u

/* File parameters item (2.6.2.1). */
#define VHDX_FP_BLOCK_SIZE_OFF 0
#define VHDX_FP_FLAGS_OFF 4
#define VHDX_FP_LEAVE_BLOCK_ALLOCATED 0x1u
#define VHDX_FP_HAS_PARENT 0x2u

/* Parent locator (2.6.2.6): 20-byte header, 12-byte entries. */
#define VHDX_PL_LOCATOR_TYPE_OFF 0
#define VHDX_PL_KEY_VALUE_COUNT_OFF 18
#define VHDX_PL_ENTRIES_OFF 20
#define VHDX_PL_ENTRY_SIZE 12
#define VHDX_PLE_KEY_OFFSET_OFF 0
#define VHDX_PLE_VALUE_OFFSET_OFF 4
#define VHDX_PLE_KEY_LENGTH_OFF 8
#define VHDX_PLE_VALUE_LENGTH_OFF 10

/* Known GUIDs, in their textual form (converted with vhdx_guid_parse()). */
#define VHDX_GUID_BAT_REGION "2DC27766-F623-4200-9D64-115E9BFD4A08"
#define VHDX_GUID_METADATA_REGION "8B7CA206-4790-4B9A-B8FE-575F050F886E"
#define VHDX_GUID_FILE_PARAMETERS "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
#define VHDX_GUID_VIRTUAL_DISK_SIZE "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
#define VHDX_GUID_VIRTUAL_DISK_ID "BECA12AB-B2E6-4523-93EF-C309E000C746"
#define VHDX_GUID_LOGICAL_SECTOR_SIZE "8141BF1D-A96F-4709-BA47-F233A8FAAB5F"
#define VHDX_GUID_PHYSICAL_SECTOR_SIZE "CDA348C7-445D-4471-9CC9-E9885251C556"
#define VHDX_GUID_PARENT_LOCATOR "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"
#define VHDX_GUID_VHDX_LOCATOR_TYPE "B04AEFB7-D19E-4A81-B789-25B8E9445913"

/* BAT entry (2.5.1). */
#define VHDX_BAT_STATE_MASK 0x7ULL
#define VHDX_BAT_RESERVED_MASK 0xFFFF8ULL
#define VHDX_BAT_OFFSET_SHIFT 20
enum vhdx_payload_state {
	VHDX_PAYLOAD_NOT_PRESENT = 0,
	VHDX_PAYLOAD_UNDEFINED = 1,
	VHDX_PAYLOAD_ZERO = 2,
	VHDX_PAYLOAD_UNMAPPED = 3,
	VHDX_PAYLOAD_UNMAPPED_V095 = 5, /* pre-release spec 0.95 value for UNMAPPED */
	VHDX_PAYLOAD_FULLY_PRESENT = 6,
	VHDX_PAYLOAD_PARTIALLY_PRESENT = 7,
};
#define VHDX_SB_NOT_PRESENT 0
#define VHDX_SB_PRESENT 6
#define VHDX_SECTOR_BITMAP_BLOCK_SIZE VHDX_MiB
#define VHDX_SECTORS_PER_BITMAP (1ULL << 23)

/* Log (2.3). */
#define VHDX_LOG_SECTOR 4096
#define VHDX_LOG_HDR_SIZE 64
#define VHDX_LOGE_SIGNATURE_OFF 0      /* "loge" */
#define VHDX_LOGE_CHECKSUM_OFF 4
#define VHDX_LOGE_ENTRY_LENGTH_OFF 8
#define VHDX_LOGE_TAIL_OFF 12
#define VHDX_LOGE_SEQUENCE_OFF 16
#define VHDX_LOGE_DESCRIPTOR_COUNT_OFF 24
#define VHDX_LOGE_LOG_GUID_OFF 32
#define VHDX_LOGE_FLUSHED_FILE_OFFSET_OFF 48
#define VHDX_LOGE_LAST_FILE_OFFSET_OFF 56
#define VHDX_LOG_DESC_SIZE 32
#define VHDX_LOGD_SIGNATURE_OFF 0      /* "zero" or "desc" */
#define VHDX_LOGD_TRAILING_BYTES_OFF 4 /* data descriptor */
#define VHDX_LOGD_LEADING_BYTES_OFF 8  /* data descriptor */
#define VHDX_LOGD_ZERO_LENGTH_OFF 8    /* zero descriptor */
#define VHDX_LOGD_FILE_OFFSET_OFF 16
#define VHDX_LOGD_SEQUENCE_OFF 24
#define VHDX_LOGS_SIGNATURE_OFF 0      /* "data" */
#define VHDX_LOGS_SEQUENCE_HIGH_OFF 4
#define VHDX_LOGS_DATA_OFF 8
#define VHDX_LOGS_SEQUENCE_LOW_OFF 4092
/* Largest log gpup reads into memory: Hyper-V writes 1 MiB logs. A fuzzing
 * build (see the Makefile) stops at 4 MiB: once the fuzzer had found how to
 * declare logs of up to its 128 MiB files, reading and scanning them cut it
 * from ~3,000 to ~300 inputs per second, and no rule needs a longer log. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define VHDX_LOG_MAX_LENGTH (4 * VHDX_MiB)
#else
#define VHDX_LOG_MAX_LENGTH (256 * VHDX_MiB)
#endif

/* Spec limits. */
#define VHDX_MAX_VIRTUAL_SIZE (64ULL << 40)
#define VHDX_MIN_BLOCK_SIZE VHDX_MiB
#define VHDX_MAX_BLOCK_SIZE (256 * VHDX_MiB)
#define VHDX_MAX_CHAIN 32

/* A GUID in its on-disk byte order (Data1..3 little-endian). */
struct vhdx_guid {
	uint8_t b[16];
};

/* ---- vhdx_header.c ---------------------------------------------------- */

struct vhdx_header {
	uint64_t sequence;
	struct vhdx_guid file_write_guid, data_write_guid, log_guid;
	uint16_t log_version, version;
	uint32_t log_length;
	uint64_t log_offset;
};

/* Parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (braces allowed) into on-disk
 * order. Returns 0 or -1. */
int vhdx_guid_parse(const char *s, struct vhdx_guid *g);
void vhdx_guid_format(const struct vhdx_guid *g, char out[VHDX_GUID_STR_LEN]);
bool vhdx_guid_is_zero(const struct vhdx_guid *g);
bool vhdx_guid_eq(const struct vhdx_guid *a, const struct vhdx_guid *b);
/* Does the on-disk GUID at @p equal the textual @s? */
bool vhdx_guid_matches(const uint8_t *p, const char *s);
/* A fresh random (version 4) GUID. */
void vhdx_guid_generate(struct vhdx_guid *g);

/* Check the file type identifier (64 KiB at offset 0, @len bytes of it).
 * *@creator receives the malloc'ed UTF-8 creator or NULL. Returns 0 or
 * GP_ERR_CORRUPT / GP_ERR_NOMEM with "PATH: file type identifier ..." */
int vhdx_file_id_parse(const char *path, const uint8_t *buf, size_t len, char **creator,
		       struct gp_error *err);
/* Fill a 64 KiB buffer with a file type identifier naming @creator. */
void vhdx_file_id_serialize(uint8_t *buf, const char *creator);

/* Parse one 4 KiB header. Returns 0 when valid (signature and CRC), else
 * -1 with a static reason in *@why. Does not judge fields beyond that. */
int vhdx_header_parse(const uint8_t *buf, struct vhdx_header *h, const char **why);
/* Serialize @h into a 4 KiB buffer, reserved bytes zero, CRC computed. */
void vhdx_header_serialize(const struct vhdx_header *h, uint8_t *buf);

/* ---- vhdx_region.c ---------------------------------------------------- */

struct vhdx_region {
	struct vhdx_guid guid;
	uint64_t file_offset;
	uint32_t length;
	bool required;
};

struct vhdx_region_table {
	uint32_t count;
	struct vhdx_region *entries; /* malloc'ed, @count long */
};

/* Parse a 64 KiB region table copy at file offset @at. Checks signature,
 * CRC, entry count, alignment and unique GUIDs (not overlaps: that needs
 * the log and the file size, see vhdx.c). Returns 0 or GP_ERR_CORRUPT /
 * GP_ERR_NOMEM into @err ("PATH: region table N at 0x...: ..."). */
int vhdx_region_table_parse(const char *path, int copy, uint64_t at, const uint8_t *buf,
			    struct vhdx_region_table *rt, struct gp_error *err);
/* Serialize @rt into a 64 KiB buffer with the CRC. */
void vhdx_region_table_serialize(const struct vhdx_region_table *rt, uint8_t *buf);
void vhdx_region_table_free(struct vhdx_region_table *rt);

/* ---- vhdx_metadata.c -------------------------------------------------- */

struct vhdx_metadata {
	uint32_t block_size;
	bool leave_block_allocated, has_parent;
	uint64_t virtual_size;
	struct vhdx_guid disk_id;
	uint32_t logical_sector_size, physical_sector_size;
	struct vhdx_parent_locator locator; /* strings malloc'ed; NULL if absent */
};

/* Parse the metadata region at file offset @at, @region_len bytes long, of
 * which @buf holds the first @len (the table and every item that lies
 * within the region): table, known items, the required-item bitmask, value
 * ranges, the parent locator. Returns 0 or GP_ERR_CORRUPT /
 * GP_ERR_UNSUPPORTED / GP_ERR_NOMEM into @err ("PATH: metadata ... at
 * 0x...: ..."). */
int vhdx_metadata_parse(const char *path, uint64_t at, const uint8_t *buf, size_t len,
			uint64_t region_len, struct vhdx_metadata *md, struct gp_error *err);
/* Serialize @md into a metadata region of @len (>= 128 KiB) bytes. Writes
 * a parent locator when md->has_parent. Returns 0 or -1 (does not fit). */
int vhdx_metadata_serialize(const struct vhdx_metadata *md, uint8_t *buf, size_t len);
void vhdx_locator_free(struct vhdx_parent_locator *l);

/* UTF-16LE (@n bytes) to malloc'ed UTF-8; NULL on bad input/out of memory. */
char *vhdx_utf16_to_utf8(const uint8_t *p, size_t n);
/* UTF-8 to UTF-16LE into @out (capacity @cap bytes); returns bytes or -1. */
long vhdx_utf8_to_utf16(const char *s, uint8_t *out, size_t cap);

/* ---- vhdx_bat.c ------------------------------------------------------- */

struct vhdx_geometry {
	uint64_t virtual_size;
	uint32_t block_size, logical_sector_size;
	bool has_parent;
	uint64_t chunk_ratio;        /* payload blocks per sector-bitmap block */
	uint64_t data_blocks;        /* Ceil(VirtualDiskSize / BlockSize) */
	uint64_t bitmap_blocks;      /* Ceil(DataBlocks / ChunkRatio) */
	uint64_t total_entries;      /* BAT entries the spec requires */
};

/* Compute the BAT geometry of validated metadata. Returns 0 or -1. */
int vhdx_geometry_init(struct vhdx_geometry *g, uint64_t virtual_size, uint32_t block_size,
		       uint32_t lss, bool has_parent);
/* BAT index of payload block @blk, and of the sector-bitmap entry of the
 * chunk holding @blk (entries interleave: chunk_ratio payload entries,
 * then the chunk's bitmap entry). */
static inline uint64_t vhdx_bat_payload_index(const struct vhdx_geometry *g, uint64_t blk)
{
	return blk + blk / g->chunk_ratio;
}
static inline uint64_t vhdx_bat_bitmap_index(const struct vhdx_geometry *g, uint64_t blk)
{
	return (blk / g->chunk_ratio) * (g->chunk_ratio + 1) + g->chunk_ratio;
}
static inline unsigned vhdx_bat_state(uint64_t e) { return (unsigned)(e & VHDX_BAT_STATE_MASK); }
static inline uint64_t vhdx_bat_offset(uint64_t e) { return (e >> VHDX_BAT_OFFSET_SHIFT) << 20; }
static inline uint64_t vhdx_bat_make(unsigned state, uint64_t file_offset)
{
	return ((file_offset >> 20) << VHDX_BAT_OFFSET_SHIFT) | state;
}

/* An occupied 1 MiB-aligned file range, for overlap checks. */
struct vhdx_extent {
	uint64_t start, end;   /* [start, end) */
	const char *what;      /* "the log", "region 0", "payload block 12" ... */
	uint64_t index;
};

/* Validate the BAT held in @buf (on-disk bytes, g->total_entries entries)
 * in place: every entry's state legal for its kind and disk type, offsets
 * 1 MiB-aligned, after the header section, within @file_size, not
 * overlapping @fixed (the log and regions) nor each other; a partially
 * present block's chunk has its sector bitmap. *@alloc_end receives the end
 * of the last allocated block (0 if none). One pass over the entries plus a
 * sort of the allocated ones. Returns 0 or GP_ERR_CORRUPT / GP_ERR_NOMEM
 * into @err ("PATH: BAT at 0x...: entry N ..."). */
int vhdx_bat_parse(const char *path, uint64_t bat_offset, const uint8_t *buf,
		   const struct vhdx_geometry *g, uint64_t file_size,
		   const struct vhdx_extent *fixed, size_t nfixed, uint64_t *alloc_end,
		   struct gp_error *err);

/* ---- vhdx_log.c ------------------------------------------------------- */

/* One update the log asks for: @len bytes at file offset @off, from @data
 * (4 KiB, malloc'ed) or zeros when @data is NULL. */
struct vhdx_log_update {
	uint64_t off, len;
	uint8_t *data;
};

struct vhdx_log_replay {
	struct vhdx_log_update *updates; /* in replay order */
	size_t count;
	uint64_t flushed_file_offset, last_file_offset; /* of the head entry */
	uint64_t entries;
};

/* Find the active sequence of the log (@log, @log_len bytes, read from file
 * offset @log_offset) for @log_guid and collect its updates in order.
 * Returns 0 or GP_ERR_CORRUPT (no valid sequence; a descriptor aiming into
 * the header section) / GP_ERR_NOMEM into @err. */
int vhdx_log_find(const char *path, uint64_t log_offset, const uint8_t *log, uint64_t log_len,
		  const struct vhdx_guid *log_guid, struct vhdx_log_replay *out,
		  struct gp_error *err);
void vhdx_log_replay_free(struct vhdx_log_replay *r);

/* What replaying @n updates leaves in the file, as disjoint pieces sorted by
 * offset, each byte from the last update that covers it: a data piece
 * points into that update's data, a zero piece has @data NULL. Replaying
 * the pieces writes every byte at most once, however often the log's
 * descriptors overlap (a hostile log of thousands of zero descriptors over
 * the whole file took minutes when applied one by one). *@out is malloc'ed
 * (NULL when *@nout is 0). Returns 0 or GP_ERR_NOMEM. */
int vhdx_log_flatten(const struct vhdx_log_update *u, size_t n, struct vhdx_log_update **out,
		     size_t *nout);

/* Build one log entry (sequence @seq, @tail = log offset of the sequence's
 * first entry) from @n updates: data descriptors for those with @data (each
 * exactly one 4 KiB sector), zero descriptors for the others. *@out is
 * malloc'ed, *@out_len bytes (a multiple of 4 KiB). Returns 0 or
 * GP_ERR_NOMEM. Used by the engine for BAT commits, and by tests to build
 * logs the engine itself never writes (payload data, zeroing, sequences). */
int vhdx_log_build_entry(const struct vhdx_guid *log_guid, uint64_t seq, uint32_t tail,
			 uint64_t flushed_file_offset, uint64_t last_file_offset,
			 const struct vhdx_log_update *u, size_t n, uint8_t **out,
			 size_t *out_len);

/* ---- vhdx_create.c ---------------------------------------------------- */

/* The Windows form of the absolute POSIX path @abs for a parent locator's
 * absolute_win32_path: "\\?\X:\..." for /mnt/x/... when @wsl (WSL mounts
 * drive X: there); NULL when there is none (any other path, or not under
 * WSL) or out of memory. malloc'ed. */
char *vhdx_win32_path(const char *abs, bool wsl);
/* Is this process running under WSL? */
bool vhdx_running_on_wsl(void);

/* ---- vhdx.c ----------------------------------------------------------- */

struct vhdx {
	struct gp_error err;
	char *path;
	int fd;
	bool writable;
	uint64_t file_size;    /* current size of the file (incl. in-memory replay extension) */
	uint64_t open_size;    /* the file's size at open (trim_tail() keeps a partial tail) */
	uint64_t alloc_end;    /* next free 1 MiB-aligned offset for new blocks: the end of
	                        * the last structure; the file may extend past it */

	struct vhdx_header hdr;  /* the current header */
	int cur_slot;            /* 0: header 1, 1: header 2 */
	bool session_started;    /* FileWriteGuid renewed this session */
	bool data_guid_renewed;  /* DataWriteGuid renewed this session */
	bool bitmaps_done;       /* a child's missing sector bitmaps added (vhdx.c) */
	char *creator;

	uint64_t bat_offset, bat_length, meta_offset, meta_length;
	struct vhdx_extent *fixed; /* log + regions, for overlap checks */
	size_t nfixed;

	struct vhdx_metadata md;
	struct vhdx_geometry geo;
	/* The BAT as its on-disk bytes (whole 4 KiB sectors covering
	 * geo.total_entries): read with vhdx_bat_get(), changed with
	 * vhdx_bat_put(); a dirty sector goes to the log as it is. */
	uint8_t *bat;
	uint8_t *bat_dirty;        /* one byte per 4 KiB BAT sector awaiting the log */
	uint64_t bat_sectors;
	size_t ndirty;
	uint64_t alloc_since_commit; /* bytes of new blocks not yet committed */
	uint64_t log_seq;

	struct vhdx *parent;
	char **chain;            /* resolved parent paths, chain_len long */
	size_t chain_len;

	/* Read-only open of an image with a dirty log: the log's net effect
	 * (vhdx_log_flatten(): sorted, disjoint), consulted by every file read;
	 * its data points into @replay's updates. */
	struct vhdx_log_update *overlay;
	size_t noverlay;
	struct vhdx_log_replay replay;
	bool log_was_dirty, log_replayed;

	/* A damaged region-table copy (1 or 2; 0: both good) and what open
	 * says about it (vhdx_warning()). */
	int bad_region;
	char warning[GP_ERROR_MSG_MAX];
	/* The image lock (a lock file on a file system without POSIX locks;
	 * its note ends up in @warning). */
	struct gp_disk_lock lock;

	bool unsynced;           /* written since the last fdatasync */
	uint64_t writebehind;    /* see gp_disk_writebehind() */
	/* Flush-ahead (vhdx.c): a second thread's fdatasync while writing
	 * goes on. The fields from @ahead_asked on are under @ahead_mu. */
	uint64_t ahead_pending;  /* bytes written since the last flush-ahead */
	bool ahead_started;
	pthread_t ahead_thread;
	pthread_mutex_t ahead_mu;
	pthread_cond_t ahead_cv;
	uint64_t ahead_asked, ahead_done; /* flushes asked for / done */
	bool ahead_quit;
	int ahead_errno;         /* a failed flush-ahead, for the next flush */
	long crash_at, flushes;  /* GPUP_TEST_CRASH_AT, see vhdx.h */
};

/* Open @path read-only and validate it like vhdx_open(), without opening
 * a differencing image's parent (reads of absent blocks then fail): for
 * looking at the image's own structures. */
int vhdx_open_self(const char *path, struct vhdx **out, struct gp_error *err);

static inline uint64_t vhdx_bat_get(const struct vhdx *v, uint64_t i)
{
	return get_le64(v->bat + i * 8);
}

/* Read @len bytes of the container file at @off, through the replay
 * overlay; bytes past the end of the file read as zeros. Errors on @v. */
int vhdx_file_read(struct vhdx *v, void *buf, uint64_t len, uint64_t off);
/* Write @len bytes at @off. Errors on @v. */
int vhdx_file_write(struct vhdx *v, const void *buf, uint64_t len, uint64_t off);
/* fdatasync; counts flush boundaries for GPUP_TEST_CRASH_AT. */
int vhdx_file_sync(struct vhdx *v);

#endif
