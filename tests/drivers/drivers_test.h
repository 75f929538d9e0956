/* drivers_test.h — helpers shared by the tests/drivers binaries. */
#ifndef GPUP_DRIVERS_TEST_H
#define GPUP_DRIVERS_TEST_H

#include <stdbool.h>

#include "store.h"

/* The how-to's two GPUs (see tests/fixtures/mkstore.sh). */
#define NV_GPU "PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1"
#define INTEL_GPU "PCI\\VEN_8086&DEV_A7A0"
#define NV_OLD "nv_dispi.inf_amd64_1111aaaa11110001"
#define NV_NEW "nv_dispi.inf_amd64_2222bbbb22220002"
#define NVHDA "nvhda.inf_amd64_3333cccc33330003"
#define INTEL_PKG "iigd_dch.inf_amd64_4444dddd44440004"
#define REPO_REL "Windows/System32/DriverStore/FileRepository"

/* Run tests/fixtures/mkstore.sh into DIR/host; returns that root (malloc'ed). */
char *dt_mkstore(const char *dir);

/* A store around the real NVIDIA 470.05 INFs in DIR/real: folders
 * nv_dispi.inf_amd64_<hash>, nvhda..., nvppc...; with @stubs, a small stub
 * file for every [SourceDisksFiles] entry at its place. Returns the root. */
char *dt_real_store(const char *dir, bool stubs);

/* Open @root; asserts success. */
struct gp_store *dt_open(const char *root);

/* Index of @guest in @set, or -1. */
long dt_find(const struct gp_inject_set *set, const char *guest);

/* The package whose folder is @folder, or NULL. */
const struct gp_package *dt_pkg(const struct gp_store *s, const char *folder);

/* The candidate of package folder @folder in @r; fails the test if none. */
const struct gp_candidate *dt_cand(const struct gp_resolution *r, const char *folder);

#endif
