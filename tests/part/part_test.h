/*
 * part_test.h — helpers shared by the tests in tests/part/ (implemented in
 * test_part_common.c): building images with tests/fixtures/mkgpt.sh, reading
 * their table, patching bytes, editing GPT structures with valid CRCs, and
 * the independent oracle (util-linux fdisk) for partition geometry.
 */
#ifndef GPUP_PART_TEST_H
#define GPUP_PART_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "part.h"
#include "part_priv.h"

/* Run mkgpt.sh DIR/NAME SIZE --sector SS --layout LAYOUT; returns the path
 * (malloc'ed); asserts success. */
char *pt_mkgpt(const char *dir, const char *name, const char *size, unsigned ss,
	       const char *layout);

/* Open @path read-only as raw (or with @backend_libvhdi) and read its table
 * with @ss (0: gp_part_read's own choice). Returns gp_part_read's code. */
int pt_read(const char *path, uint32_t ss, struct gp_partition_table *pt,
	    struct gp_error *err);
int pt_read_libvhdi(const char *path, struct gp_partition_table *pt,
		    struct gp_error *err);

/* Overwrite / read bytes of a file at @off (asserts success). */
void pt_patch(const char *path, uint64_t off, const void *buf, size_t len);
void pt_peek(const char *path, uint64_t off, void *buf, size_t len);

/* Modify the GPT header at @lba through @fn, then rewrite it with a fresh
 * HeaderCRC32 (so only the rule under test is broken). */
void pt_gpt_edit_header(const char *path, uint32_t ss, uint64_t lba,
			void (*fn)(struct gpt_header *h));
/* Modify entry @index (0-based) of the array of the header at @lba through
 * @fn, then fix the array CRC in that header (and the header CRC). */
void pt_gpt_edit_entry(const char *path, uint32_t ss, uint64_t lba, uint32_t index,
		       void (*fn)(struct gpt_entry *e));

/* The independent oracle: `fdisk -b SS -l` of @path. */
struct pt_oracle_part {
	unsigned number;
	uint64_t start, sectors;
	char type[40];   /* Type-UUID (GPT) or Id (MBR, hex) */
	char uuid[40];   /* GPT only */
};
/* Returns the number of partitions fdisk lists (asserts fdisk ran). */
size_t pt_oracle(const char *path, unsigned ss, struct pt_oracle_part *out, size_t max);

/* Find partition number @n in @pt, or NULL. */
const struct gp_partition *pt_find(const struct gp_partition_table *pt, unsigned n);

#endif
