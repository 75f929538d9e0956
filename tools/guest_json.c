/* guest_json.c — guest facts as JSON. See guest_json.h. */
#include <stdio.h>

#include "guest.h"
#include "guest_json.h"
#include "ntfsvol.h"

static json_object *jstr_or_null(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

static json_object *facts_json(const struct gp_ntfs_volinfo *vi, const struct gp_guest_facts *f)
{
	json_object *o = json_object_new_object(), *pkgs = json_object_new_array();
	char machine[8];

	json_object_object_add(o, "volume", json_object_new_int((int)(vi->partition ? vi->partition : 1)));
	json_object_object_add(o, "product_name", jstr_or_null(f->product_name));
	json_object_object_add(o, "edition", jstr_or_null(f->edition));
	json_object_object_add(o, "installation_type", jstr_or_null(f->installation_type));
	json_object_object_add(o, "build", jstr_or_null(f->build));
	json_object_object_add(o, "ubr", json_object_new_int64(f->ubr));
	json_object_object_add(o, "display_version", jstr_or_null(f->display_version));
	json_object_object_add(o, "server", json_object_new_boolean(f->is_server));
	json_object_object_add(o, "arch", jstr_or_null(f->arch));
	snprintf(machine, sizeof(machine), "0x%04x", f->kernel_machine);
	json_object_object_add(o, "kernel_machine", f->kernel_machine ? json_object_new_string(machine) : NULL);
	json_object_object_add(o, "hibernated", json_object_new_boolean(f->hibernated));
	json_object_object_add(o, "fast_startup", json_object_new_boolean(f->fast_startup));
	json_object_object_add(o, "log_unclean", json_object_new_boolean(f->log_unclean));
	json_object_object_add(o, "dirty", json_object_new_boolean(f->dirty));
	json_object_object_add(o, "total_bytes", json_object_new_int64((int64_t)f->total_bytes));
	json_object_object_add(o, "free_bytes", json_object_new_int64((int64_t)f->free_bytes));
	for (size_t i = 0; i < f->pkg_count; i++) {
		json_object *p = json_object_new_object();

		json_object_object_add(p, "folder", json_object_new_string(f->pkgs[i].folder));
		json_object_object_add(p, "inf", jstr_or_null(f->pkgs[i].inf));
		json_object_object_add(p, "driver_ver", jstr_or_null(f->pkgs[i].driver_ver));
		json_object_array_add(pkgs, p);
	}
	json_object_object_add(o, "host_driver_packages", pkgs);
	return o;
}

int guest_facts_json(struct gp_disk *d, json_object **out, struct gp_error *err)
{
	struct gp_ntfs_open_opts opts = { .require_windows = true };
	struct gp_error verr = { 0 };
	struct gp_guest_facts f;
	struct gp_ntfs_volinfo vi;
	struct gp_ntfs *v;
	int ret;

	*out = NULL;
	ret = gp_ntfs_open(d, &opts, &v, &verr);
	if (ret == GP_ERR_NOMEM || ret == GP_ERR_IO)
		return gp_error_copy(err, &verr);
	if (ret == GP_ERR_NOTFOUND)
		return 0; /* no Windows here: nothing to say */
	if (ret) {
		*out = json_object_new_object();
		json_object_object_add(*out, "error", json_object_new_string(gp_error_message(&verr)));
		return 0;
	}
	gp_ntfs_volinfo(v, &vi);
	ret = gp_guest_read(v, &f, &verr);
	if (ret == GP_ERR_NOMEM || ret == GP_ERR_IO) {
		gp_error_copy(err, &verr);
	} else if (ret) {
		*out = json_object_new_object();
		json_object_object_add(*out, "error", json_object_new_string(gp_error_message(&verr)));
		ret = 0;
	} else {
		*out = facts_json(&vi, &f);
	}
	gp_guest_facts_free(&f);
	gp_ntfs_close(v, NULL);
	return ret;
}
