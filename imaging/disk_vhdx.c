/*
 * disk_vhdx.c — gpup's VHDX engine (vhdx.h) as a gp_disk backend.
 * The engine does the work (and takes the lock: exclusive for writers,
 * shared for readers); this file only adapts the calls.
 */
#include "disk_priv.h"
#include "vhdx.h"

#include <stdlib.h>

struct vhdx_disk {
	struct gp_disk base;
	struct vhdx *v;
};

static int vd_open(const char *path, const struct gp_disk_open_opts *opts,
		   struct gp_disk **out, struct gp_error *err)
{
	struct vhdx_open_opts vo = { .writable = opts->writable, .parent_path = opts->parent_path,
				     .no_lock = opts->no_lock && !opts->writable };
	struct vhdx_disk *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return gp_error_set(err, GP_ERR_NOMEM, "%s: out of memory", path);
	ret = vhdx_open(path, &vo, &d->v, err);
	if (ret) {
		free(d);
		return ret;
	}
	d->base.size = vhdx_virtual_size(d->v);
	d->base.lss = vhdx_logical_sector_size(d->v);
	d->base.pss = vhdx_physical_sector_size(d->v);
	d->base.writable = opts->writable;
	/* Fixed disks do not grow; dynamic and differencing ones by blocks. */
	d->base.alloc_unit = vhdx_disk_type(d->v) == VHDX_DISK_FIXED ? 0 : vhdx_block_size(d->v);
	*out = &d->base;
	return 0;
}

static int vd_pread(struct gp_disk *gd, void *buf, uint64_t len, uint64_t off)
{
	struct vhdx_disk *d = (struct vhdx_disk *)gd;
	int ret = vhdx_pread(d->v, buf, len, off);

	if (ret)
		gp_error_copy(&gd->err, vhdx_error(d->v));
	return ret;
}

static int vd_pwrite(struct gp_disk *gd, const void *buf, uint64_t len, uint64_t off)
{
	struct vhdx_disk *d = (struct vhdx_disk *)gd;
	int ret = vhdx_pwrite(d->v, buf, len, off);

	if (ret)
		gp_error_copy(&gd->err, vhdx_error(d->v));
	return ret;
}

static int vd_flush(struct gp_disk *gd)
{
	struct vhdx_disk *d = (struct vhdx_disk *)gd;
	int ret = vhdx_flush(d->v);

	if (ret)
		gp_error_copy(&gd->err, vhdx_error(d->v));
	return ret;
}

static int vd_close(struct gp_disk *gd, struct gp_error *err)
{
	struct vhdx_disk *d = (struct vhdx_disk *)gd;
	int ret = vhdx_close(d->v, err);

	free(d);
	return ret;
}

static int vd_block_status(struct gp_disk *gd, uint64_t off, uint64_t len, bool *allocated,
			   uint64_t *run)
{
	struct vhdx_disk *d = (struct vhdx_disk *)gd;
	int ret = vhdx_block_status(d->v, off, len, allocated, run);

	if (ret)
		gp_error_copy(&gd->err, vhdx_error(d->v));
	return ret;
}

static struct vhdx *vd_vhdx(struct gp_disk *gd)
{
	return ((struct vhdx_disk *)gd)->v;
}

const struct gp_disk_ops gp_disk_vhdx_ops = {
	.name = "vhdx",
	.open = vd_open,
	.pread = vd_pread,
	.pwrite = vd_pwrite,
	.flush = vd_flush,
	.close = vd_close,
	.block_status = vd_block_status,
	.vhdx = vd_vhdx,
};
