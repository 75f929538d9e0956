/* disk_vhdx.c — PLACEHOLDER until the VHDX engine lands. */
#include "disk_priv.h"
#include "vhdx.h"

int vhdx_log_is_dirty(const char *path, bool *dirty, struct gp_error *err)
{
	(void)path;
	(void)err;
	*dirty = false;
	return 0;
}

static int vhdx_open_stub(const char *path, const struct gp_disk_open_opts *opts,
			  struct gp_disk **out, struct gp_error *err)
{
	(void)opts;
	(void)out;
	return gp_error_set(err, GP_ERR_UNSUPPORTED, "%s: VHDX engine not built yet", path);
}

const struct gp_disk_ops gp_disk_vhdx_ops = {
	.name = "vhdx",
	.open = vhdx_open_stub,
};
