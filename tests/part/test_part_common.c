/* test_part_common.c — helpers for tests/part (see part_test.h); no tests. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk.h"
#include "helpers.h"
#include "le.h"
#include "part_test.h"

char *pt_mkgpt(const char *dir, const char *name, const char *size, unsigned ss,
	       const char *layout)
{
	struct t_run r;
	char *path = t_strdup_printf("%s/%s", dir, name);

	t_run(&r, "sh '%s/tests/fixtures/mkgpt.sh' '%s' %s --sector %u --layout %s",
	      t_env("GPUP_SRC"), path, size, ss, layout);
	cr_assert_eq(r.status, 0, "mkgpt.sh failed: %s", r.err);
	t_run_free(&r);
	return path;
}

static int read_with(const char *path, enum gp_disk_backend be, uint32_t ss,
		     struct gp_partition_table *pt, struct gp_error *err)
{
	struct gp_disk_open_opts o = { .backend = be };
	struct gp_disk *d;
	int rc;

	if (be == GP_DISK_BACKEND_DEFAULT)
		o.format = GP_DISK_FORMAT_RAW;
	rc = gp_disk_open(path, &o, &d, err);
	cr_assert_eq(rc, 0, "open %s: %s", path, err->msg);
	rc = ss ? gp_part_read_sector_size(d, ss, pt, err) : gp_part_read(d, pt, err);
	gp_disk_close(d, NULL);
	return rc;
}

int pt_read(const char *path, uint32_t ss, struct gp_partition_table *pt,
	    struct gp_error *err)
{
	return read_with(path, GP_DISK_BACKEND_DEFAULT, ss, pt, err);
}

int pt_read_libvhdi(const char *path, struct gp_partition_table *pt, struct gp_error *err)
{
	return read_with(path, GP_DISK_BACKEND_LIBVHDI, 0, pt, err);
}

void pt_patch(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

void pt_peek(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* Parse a header even when its CRC is bad (tests edit broken headers too). */
static void load_header(const char *path, uint32_t ss, uint64_t lba, uint8_t *sec,
			struct gpt_header *h)
{
	char why[256];

	pt_peek(path, lba * ss, sec, ss);
	cr_assert_eq(gpt_header_parse(sec, ss, h, why, sizeof(why)), 0,
		     "header at LBA %llu: %s", (unsigned long long)lba, why);
}

void pt_gpt_edit_header(const char *path, uint32_t ss, uint64_t lba,
			void (*fn)(struct gpt_header *h))
{
	uint8_t *sec = malloc(ss);
	struct gpt_header h;

	load_header(path, ss, lba, sec, &h);
	fn(&h);
	gpt_header_serialize(&h, sec, ss);
	pt_patch(path, lba * ss, sec, ss);
	free(sec);
}

void pt_gpt_edit_entry(const char *path, uint32_t ss, uint64_t lba, uint32_t index,
		       void (*fn)(struct gpt_entry *e))
{
	uint8_t *sec = malloc(ss);
	struct gpt_header h;
	struct gpt_entry e;

	load_header(path, ss, lba, sec, &h);
	size_t bytes = (size_t)h.number_of_partition_entries * h.size_of_partition_entry;
	uint8_t *arr = malloc(bytes);
	pt_peek(path, h.partition_entry_lba * ss, arr, bytes);
	gpt_entry_parse(arr + (size_t)index * h.size_of_partition_entry, &e);
	fn(&e);
	gpt_entry_serialize(&e, arr + (size_t)index * h.size_of_partition_entry);
	pt_patch(path, h.partition_entry_lba * ss, arr, bytes);
	h.partition_entry_array_crc32 = gpt_crc32(arr, bytes);
	gpt_header_serialize(&h, sec, ss);
	pt_patch(path, lba * ss, sec, ss);
	free(arr);
	free(sec);
}

size_t pt_oracle(const char *path, unsigned ss, struct pt_oracle_part *out, size_t max)
{
	struct t_run r;
	size_t n = 0;
	size_t plen = strlen(path);

	/* GPT columns first; an MBR label has no Type-UUID/UUID columns, so
	 * fall back to the MBR set. */
	t_run(&r, "fdisk -b %u -l -o Device,Start,Sectors,Type-UUID,UUID '%s' 2>&1", ss, path);
	if (r.status != 0 || strstr(r.out, "Disklabel type: dos")) {
		t_run_free(&r);
		t_run(&r, "fdisk -b %u -l -o Device,Start,Sectors,Id '%s'", ss, path);
	}
	cr_assert_eq(r.status, 0, "fdisk -l %s: %s", path, r.err);
	for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, path, plen) || n == max)
			continue;
		struct pt_oracle_part *p = &out[n];
		unsigned long long start, sectors;
		memset(p, 0, sizeof(*p));
		p->number = (unsigned)strtoul(line + plen, NULL, 10);
		char *rest = strchr(line, ' ');
		cr_assert(rest);
		/* MBR lines may carry a '*' Boot column only when asked; we do not. */
		int k = sscanf(rest, "%llu %llu %39s %39s", &start, &sectors, p->type, p->uuid);
		cr_assert(k >= 3, "cannot parse fdisk line: %s", line);
		p->start = start;
		p->sectors = sectors;
		n++;
	}
	t_run_free(&r);
	return n;
}

const struct gp_partition *pt_find(const struct gp_partition_table *pt, unsigned n)
{
	for (size_t i = 0; i < pt->count; i++)
		if (pt->parts[i].number == n)
			return &pt->parts[i];
	return NULL;
}
