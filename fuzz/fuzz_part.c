/*
 * fuzz_part.c — the partition-table readers (GPT with its backup fallback,
 * MBR with its EBR chain, volume signatures). The input is the whole disk:
 * it goes into an anonymous memory file opened through the raw backend,
 * then gp_part_read() reads it with 512- and 4096-byte sectors and with the
 * automatic choice, and every partition's first sector goes through
 * gp_volsig_detect().
 * Seeds: fuzz/corpus/part (GPT as sgdisk writes it, MBR with an EBR chain).
 * Inputs are capped at 1 MiB: the readers' work is bounded by the disk
 * size, and small disks reach every rule.
 */
#include "disk.h"
#include "fuzz.h"
#include "part.h"

static void fuzz_part_table(struct gp_disk *d, const struct gp_partition_table *pt)
{
	volatile size_t sink = 0;
	uint8_t sec[4096];

	sink += gp_pt_kind_name(pt->kind) != NULL;
	for (size_t i = 0; i < pt->count; i++) {
		const struct gp_partition *p = &pt->parts[i];

		if (gp_disk_size(d) >= sizeof(sec) && p->offset <= gp_disk_size(d) - sizeof(sec) &&
		    gp_disk_pread(d, sec, sizeof(sec), p->offset) == 0)
			sink += gp_volsig_name(gp_volsig_detect(sec, sizeof(sec))) != NULL;
	}
	(void)sink;
	gp_disk_clear_error(d);
}

int fuzz_part(const uint8_t *data, size_t size)
{
	struct gp_disk_open_opts o = { .format = GP_DISK_FORMAT_RAW };
	struct gp_partition_table pt;
	struct gp_error err = { 0 };
	struct gp_disk *d;
	char path[64];
	int fd;

	if (size > (1u << 20))
		return 0;
	fd = fuzz_memfd(data, size, path);
	if (fd < 0)
		return 0;
	if (gp_disk_open(path, &o, &d, &err) == 0) {
		static const uint32_t sizes[] = { 512, 4096 };

		for (int i = 0; i < 2; i++) {
			gp_error_clear(&err);
			if (gp_part_read_sector_size(d, sizes[i], &pt, &err) == 0)
				fuzz_part_table(d, &pt);
			gp_part_table_free(&pt);
		}
		gp_error_clear(&err);
		if (gp_part_read(d, &pt, &err) == 0)
			fuzz_part_table(d, &pt);
		gp_part_table_free(&pt);
		gp_disk_close(d, NULL);
	}
	close(fd);
	return 0;
}

#ifndef GP_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_part(data, size);
}
#endif
