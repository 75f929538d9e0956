/*
 * cmd_inspect.c — `gpup inspect IMAGE [--json] [--format F] [--parent PATH]
 *                 [--backend default|libvhdi]`
 *
 * Shows what an image is, without changing it (opened read-only; a VHDX with
 * a dirty log is shown through the engine's in-memory replay): container
 * format and backend, virtual size, sector sizes, the VHDX's own facts, the
 * partition table with each partition's volume signature, and guest facts.
 *
 * Exit status: 0 shown, 1 the image or its table cannot be read (one line on
 * stderr naming the file and the structure; nothing on stdout), 2 usage,
 * 3 the image is locked by a writer.
 * Non-fatal findings (the backup GPT was used, ...) are warnings: stderr in
 * human mode, the "warnings" array with --json.
 *
 * --json output, schema 1 (doc/schema/inspect.schema.json, which the tests hold
 * this output to: a new field goes into the schema too; a failure prints the
 * failure object of tools/cli.h):
 * {
 *   "schema": 1,
 *   "image": "PATH",
 *   "format": "vhdx" | "vhd" | "raw",
 *   "backend": "vhdx" | "libvhdi" | "raw",
 *   "virtual_size": BYTES,
 *   "logical_sector_size": 512 | 4096,
 *   "physical_sector_size": 512 | 4096,
 *   "vhdx": null | {                       // only through the VHDX engine
 *     "type": "fixed" | "dynamic" | "differencing",
 *     "block_size": BYTES, "chunk_ratio": N, "file_size": BYTES,
 *     "allocated_blocks": N, "current_header": 1 | 2, "header_sequence": N,
 *     "log_state": "empty" | "dirty",       // on disk, when opened
 *     "log_replayed": BOOL,
 *     "disk_id": GUID, "data_write_guid": GUID, "file_write_guid": GUID,
 *     "creator": STRING | null,
 *     "parent_locator": null | { "parent_linkage", "relative_path",
 *                                "volume_path", "absolute_win32_path" },
 *     "parent_chain": [ "PATH", ... ]       // direct parent first
 *   },
 *   "partition_table": {
 *     "kind": "GPT" | "MBR" | "none",
 *     "sector_size": 512 | 4096,
 *     "disk_guid": GUID | null,              // GPT
 *     "used_backup_gpt": BOOL,               // GPT
 *     "first_usable_lba": N | null, "last_usable_lba": N | null,   // GPT
 *     "mbr_signature": "0xXXXXXXXX" | null,  // MBR
 *     "whole_disk_volume": VOLSIG,           // kind "none": a bare volume
 *     "partitions": [ {
 *       "number": N,                         // 1-based; MBR logical from 5
 *       "type": "Microsoft basic data" | "NTFS/exFAT/IFS" | ... | "unknown",
 *       "type_guid": GUID | null,            // GPT
 *       "mbr_type": N | null,                // MBR type byte
 *       "first_lba": N, "last_lba": N,       // in sector_size units
 *       "offset": BYTES, "length": BYTES,
 *       "name": STRING,                      // GPT name ("" for MBR)
 *       "guid": GUID | null,                 // GPT unique partition GUID
 *       "attributes": N,                     // GPT attribute bits (0 for MBR)
 *       "bootable": BOOL, "logical": BOOL,
 *       "volume": VOLSIG
 *     } ... ]
 *   },
 *   "guest": null | { ... },                 // Windows facts: guest_facts_json()
 *                                            // in tools/guest_json.h
 *   "warnings": [ "LINE", ... ]
 * }
 * VOLSIG: "none" | "NTFS" | "BitLocker" | "FAT12" | "FAT16" | "FAT32" |
 *         "exFAT" | "ReFS" | "unreadable". Partition-table GUIDs are upper
 * case (as fdisk and sgdisk print them); the "vhdx" section's are lower case
 * (as the VHDX engine reports them). Numbers are JSON integers.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "disk.h"
#include "guest_json.h"
#include "part.h"
#include "vhdx.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpup inspect IMAGE [--json] [--format F] [--parent PATH]\n"
		"                          [--backend default|libvhdi]\n\n"
		"Show an image's container format, virtual size, sector sizes, VHDX facts\n"
		"(type, block size, log state, parent chain), partition table and the\n"
		"volume found in each partition. The image is opened read-only.\n\n"
		"  --json           machine-readable output (schema 1)\n"
		"  --format F       raw, vhdx, vhd or auto (default: detect)\n"
		"  --parent PATH    parent of a differencing VHDX (default: its locator)\n"
		"  --backend B      default, or libvhdi (the independent read-only reader)\n"
		"  -h, --help       this text\n");
}

/* JSON helpers: a NULL string becomes JSON null. */
static json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *jguid(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

static void human_size(uint64_t v, char *buf, size_t len)
{
	static const char *units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	size_t u = 0;

	while (d >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " bytes", v);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
}

/*
 * The VHDX section: what only the VHDX engine knows. Returns the JSON object
 * (NULL when @d is not opened through the engine) or sets *@rc on failure.
 */
static json_object *inspect_vhdx(struct gp_disk *d, int *rc, struct gp_error *err)
{
	struct vhdx *v = gp_disk_vhdx(d);
	struct vhdx_info info;
	json_object *o, *chain;

	*rc = 0;
	if (!v)
		return NULL;
	*rc = vhdx_get_info(v, &info);
	if (*rc) {
		gp_error_copy(err, vhdx_error(v));
		return NULL;
	}
	o = json_object_new_object();
	json_object_object_add(o, "type", jstr(vhdx_disk_type_name(info.type)));
	json_object_object_add(o, "block_size", json_object_new_int64(info.block_size));
	json_object_object_add(o, "chunk_ratio", json_object_new_int64(info.chunk_ratio));
	json_object_object_add(o, "file_size", json_object_new_int64((int64_t)info.file_size));
	json_object_object_add(o, "allocated_blocks",
			       json_object_new_int64((int64_t)info.allocated_blocks));
	json_object_object_add(o, "current_header", json_object_new_int(info.current_header));
	json_object_object_add(o, "header_sequence",
			       json_object_new_int64((int64_t)info.header_sequence));
	json_object_object_add(o, "log_state", jstr(vhdx_log_state_name(info.log_state)));
	json_object_object_add(o, "log_replayed", json_object_new_boolean(info.log_replayed));
	json_object_object_add(o, "disk_id", jguid(info.disk_id));
	json_object_object_add(o, "data_write_guid", jguid(info.data_write_guid));
	json_object_object_add(o, "file_write_guid", jguid(info.file_write_guid));
	json_object_object_add(o, "creator", jstr(info.creator));
	if (info.has_parent) {
		json_object *pl = json_object_new_object();
		json_object_object_add(pl, "parent_linkage", jstr(info.parent.parent_linkage));
		json_object_object_add(pl, "relative_path", jstr(info.parent.relative_path));
		json_object_object_add(pl, "volume_path", jstr(info.parent.volume_path));
		json_object_object_add(pl, "absolute_win32_path",
				       jstr(info.parent.absolute_win32_path));
		json_object_object_add(o, "parent_locator", pl);
	} else {
		json_object_object_add(o, "parent_locator", NULL);
	}
	chain = json_object_new_array();
	for (size_t i = 0; i < info.parent_chain_len; i++)
		json_object_array_add(chain, jstr(info.parent_chain[i]));
	json_object_object_add(o, "parent_chain", chain);
	vhdx_info_free(&info);
	return o;
}

/*
 * Guest facts (Windows volume, build, ...): the NTFS module fills this in.
 * Returns 0 and *@guest = a JSON object (or NULL: nothing known), or a
 * negative code with the detail in @err. The human renderer prints the
 * object's members as "key: value" lines, so adding facts needs no change
 * elsewhere in this file.
 */
static int inspect_guest(struct gp_disk *d, const struct gp_partition_table *pt,
			 json_object **guest, struct gp_error *err)
{
	(void)pt;
	/* --- guest facts: tools/guest_json.c (NTFS module owner) --- */
	return guest_facts_json(d, guest, err);
	/* --- end guest facts --- */
}

static json_object *partition_json(const struct gp_partition_table *pt)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	bool gpt = pt->kind == GP_PT_GPT, mbr = pt->kind == GP_PT_MBR;
	char sig[16];

	json_object_object_add(o, "kind", jstr(gp_pt_kind_name(pt->kind)));
	json_object_object_add(o, "sector_size", json_object_new_int64(pt->sector_size));
	json_object_object_add(o, "disk_guid", gpt ? jguid(pt->disk_guid) : NULL);
	json_object_object_add(o, "used_backup_gpt", json_object_new_boolean(pt->used_backup_gpt));
	json_object_object_add(o, "first_usable_lba",
			       gpt ? json_object_new_int64((int64_t)pt->first_usable_lba) : NULL);
	json_object_object_add(o, "last_usable_lba",
			       gpt ? json_object_new_int64((int64_t)pt->last_usable_lba) : NULL);
	snprintf(sig, sizeof(sig), "0x%08" PRIX32, pt->mbr_signature);
	json_object_object_add(o, "mbr_signature", mbr ? jstr(sig) : NULL);
	json_object_object_add(o, "whole_disk_volume", jstr(gp_volsig_name(pt->whole_disk_volsig)));
	for (size_t i = 0; i < pt->count; i++) {
		const struct gp_partition *p = &pt->parts[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "number", json_object_new_int64(p->number));
		json_object_object_add(j, "type", jstr(p->type_name));
		json_object_object_add(j, "type_guid", gpt ? jguid(p->type_guid) : NULL);
		json_object_object_add(j, "mbr_type", mbr ? json_object_new_int(p->mbr_type) : NULL);
		json_object_object_add(j, "first_lba", json_object_new_int64((int64_t)p->first_lba));
		json_object_object_add(j, "last_lba", json_object_new_int64((int64_t)p->last_lba));
		json_object_object_add(j, "offset", json_object_new_int64((int64_t)p->offset));
		json_object_object_add(j, "length", json_object_new_int64((int64_t)p->length));
		json_object_object_add(j, "name", jstr(p->name));
		json_object_object_add(j, "guid", gpt ? jguid(p->guid) : NULL);
		/* Bit 63 is common (MSR, "no drive letter"): unsigned. */
		json_object_object_add(j, "attributes", json_object_new_uint64(p->attributes));
		json_object_object_add(j, "bootable", json_object_new_boolean(p->bootable));
		json_object_object_add(j, "logical", json_object_new_boolean(p->logical));
		json_object_object_add(j, "volume", jstr(gp_volsig_name(p->volsig)));
		json_object_array_add(arr, j);
	}
	json_object_object_add(o, "partitions", arr);
	return o;
}

static const char *jget_str(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return "-";
	return json_object_get_string(v);
}

static int64_t jget_int(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	return json_object_get_int64(v);
}

static void print_human(struct gp_disk *d, json_object *vhdx,
			const struct gp_partition_table *pt, json_object *guest)
{
	char sz[32];

	printf("Image:            %s\n", gp_disk_path(d));
	printf("Format:           %s\n", gp_disk_format_name(gp_disk_format(d)));
	printf("Backend:          %s\n", gp_disk_backend_name(d));
	human_size(gp_disk_size(d), sz, sizeof(sz));
	printf("Virtual size:     %" PRIu64 " bytes (%s)\n", gp_disk_size(d), sz);
	printf("Sector size:      %" PRIu32 " logical, %" PRIu32 " physical\n",
	       gp_disk_logical_sector_size(d), gp_disk_physical_sector_size(d));
	if (vhdx) {
		json_object *chain;
		printf("VHDX type:        %s\n", jget_str(vhdx, "type"));
		human_size((uint64_t)jget_int(vhdx, "block_size"), sz, sizeof(sz));
		printf("Block size:       %s\n", sz);
		printf("Allocated blocks: %" PRId64 "\n", jget_int(vhdx, "allocated_blocks"));
		const char *log = jget_str(vhdx, "log_state");
		bool replayed = json_object_get_boolean(json_object_object_get(vhdx, "log_replayed"));
		/* inspect opens read-only: a dirty log is applied in memory
		 * only; say so, since the file still needs a writable open. */
		printf("Log:              %s%s\n", log,
		       replayed ? " (replayed)"
		       : !strcmp(log, "dirty") ? " (updates applied in memory only; the file is unchanged)"
					       : "");
		printf("Disk id:          %s\n", jget_str(vhdx, "disk_id"));
		if (json_object_object_get_ex(vhdx, "parent_chain", &chain) &&
		    json_object_array_length(chain) > 0) {
			for (size_t i = 0; i < json_object_array_length(chain); i++)
				printf("%-18s%zu. %s\n", i ? "" : "Parent chain:", i + 1,
				       cli_esc(json_object_get_string(json_object_array_get_idx(chain, i))));
		}
	}

	printf("Partition table:  %s", gp_pt_kind_name(pt->kind));
	if (pt->kind == GP_PT_GPT)
		printf(", disk GUID %s%s", pt->disk_guid,
		       pt->used_backup_gpt ? ", read from the BACKUP header" : "");
	else if (pt->kind == GP_PT_MBR)
		printf(", disk signature 0x%08" PRIX32, pt->mbr_signature);
	else if (pt->whole_disk_volsig != GP_VOLSIG_NONE)
		printf(" (the whole disk is a %s volume)", gp_volsig_name(pt->whole_disk_volsig));
	if (pt->kind != GP_PT_NONE)
		printf(", %" PRIu32 "-byte sectors", pt->sector_size);
	printf("\n");
	/* Partition names and the parent chain come from the image: escaped. */
	if (pt->count) {
		printf("  %-3s %-22s %14s %14s  %-10s %s\n", "#", "Type", "Offset", "Length",
		       "Volume", "Name");
		for (size_t i = 0; i < pt->count; i++) {
			const struct gp_partition *p = &pt->parts[i];
			human_size(p->length, sz, sizeof(sz));
			printf("  %-3u %-22s %14" PRIu64 " %14s  %-10s %s%s\n", p->number,
			       p->type_name, p->offset, sz, gp_volsig_name(p->volsig), cli_esc(p->name),
			       p->bootable && pt->kind == GP_PT_MBR ? " (active)" : "");
		}
	}
	if (guest) {
		printf("Guest:\n");
		json_object_object_foreach(guest, key, val) {
			/* Lists (driver packages) get one line per element. */
			if (val && json_object_is_type(val, json_type_array)) {
				size_t n = json_object_array_length(val);
				if (n == 0)
					printf("  %-18s (none)\n", key);
				for (size_t i = 0; i < n; i++)
					printf("  %-18s %s\n", i ? "" : key,
					       json_object_to_json_string_ext(
						       json_object_array_get_idx(val, i),
						       JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
				continue;
			}
			/* Hive strings: escaped (cli_esc()). */
			printf("  %-18s %s\n", key, val ? cli_esc(json_object_get_string(val)) : "-");
		}
	}
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "format", required_argument, NULL, 'f' },
		{ "parent", required_argument, NULL, 'p' },
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gp_disk_open_opts opts = { 0 };
	struct gp_partition_table pt = { 0 };
	struct gp_error err = { 0 };
	struct gp_disk *d = NULL;
	json_object *vhdx = NULL, *guest = NULL;
	bool json = false;
	int c, rc, status = EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'f':
			if (gp_disk_format_parse(optarg, &opts.format))
				return cli_usage("inspect", "unknown format '%s' (raw, vhdx, vhd, auto)",
						 optarg);
			break;
		case 'p':
			opts.parent_path = optarg;
			break;
		case 'b':
			if (!strcmp(optarg, "default"))
				opts.backend = GP_DISK_BACKEND_DEFAULT;
			else if (!strcmp(optarg, "libvhdi"))
				opts.backend = GP_DISK_BACKEND_LIBVHDI;
			else
				return cli_usage("inspect", "unknown backend '%s' (default, libvhdi)",
						 optarg);
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			return cli_usage("inspect", "unknown option");
		}
	}
	if (optind != argc - 1)
		return cli_usage("inspect", optind >= argc ? "an IMAGE is required"
							   : "exactly one IMAGE is expected");
	opts.writable = false; /* inspect never changes anything */

	rc = gp_disk_open(argv[optind], &opts, &d, &err);
	if (rc)
		return cli_fail_cmd("inspect", json, argv[optind], &err);
	vhdx = inspect_vhdx(d, &rc, &err);
	if (rc)
		goto fail;
	rc = gp_part_read(d, &pt, &err);
	if (rc)
		goto fail;
	rc = inspect_guest(d, &pt, &guest, &err);
	if (rc)
		goto fail;

	if (json) {
		json_object *o = json_object_new_object(), *w = json_object_new_array();
		json_object_object_add(o, "schema", json_object_new_int(GPUP_JSON_SCHEMA));
		json_object_object_add(o, "command", json_object_new_string("inspect"));
		json_object_object_add(o, "image", jstr(gp_disk_path(d)));
		json_object_object_add(o, "format", jstr(gp_disk_format_name(gp_disk_format(d))));
		json_object_object_add(o, "backend", jstr(gp_disk_backend_name(d)));
		json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)gp_disk_size(d)));
		json_object_object_add(o, "logical_sector_size",
				       json_object_new_int64(gp_disk_logical_sector_size(d)));
		json_object_object_add(o, "physical_sector_size",
				       json_object_new_int64(gp_disk_physical_sector_size(d)));
		json_object_object_add(o, "vhdx", json_object_get(vhdx));
		json_object_object_add(o, "partition_table", partition_json(&pt));
		json_object_object_add(o, "guest", json_object_get(guest));
		if (gp_disk_warning(d)[0])
			json_object_array_add(w, json_object_new_string(gp_disk_warning(d)));
		if (pt.warning[0])
			json_object_array_add(w, json_object_new_string(pt.warning));
		json_object_object_add(o, "warnings", w);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		if (gp_disk_warning(d)[0])
			cli_warn("%s", gp_disk_warning(d));
		if (pt.warning[0])
			cli_warn("%s", pt.warning);
		print_human(d, vhdx, &pt, guest);
	}
	goto out;
fail:
	status = cli_fail_cmd("inspect", json, argv[optind], &err);
out:
	json_object_put(vhdx);
	json_object_put(guest);
	gp_part_table_free(&pt);
	gp_disk_close(d, NULL);
	if (fflush(stdout) && status == EXIT_OK) {
		fprintf(stderr, "gpup: writing the output failed\n");
		status = EXIT_ERROR;
	}
	return status;
}
