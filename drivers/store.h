/*
 * store.h — a host DriverStore: scan its packages, pick the GPU's display
 * driver package the way Windows ranks drivers, and compute the set of files
 * a Hyper-V GPU-P guest needs (the "injection set").
 *
 * The input is a copy (or a WSL view, /mnt/c) of a Windows host: its root,
 * its Windows directory, Windows/System32/DriverStore, or the FileRepository
 * directory itself. Directory names are matched case-insensitively, since a
 * Windows tree copied to Linux may have any case.
 *
 * Every `<name>.inf_<arch>_<hash>` folder of FileRepository is one package.
 * A folder whose INF is unreadable or garbage is skipped with a warning that
 * is collected on the store (gp_store_warning()); it never aborts the scan.
 *
 * Ownership: a struct gp_store owns every gp_package it lists; packages stay
 * valid until gp_store_close(). Resolutions and injection sets point into the
 * store's packages, so free them before closing the store.
 *
 * Guest paths are relative to the volume root and use '/' separators:
 *   Windows/System32/HostDriverStore/FileRepository/<folder>/<relative path>
 *   Windows/System32/<name>      Windows/SysWOW64/<name>
 */
#ifndef GPUP_STORE_H
#define GPUP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gp_error.h"

/* The Display device setup class (ClassGuid of display adapters). */
#define GP_DISPLAY_CLASS_GUID "{4d36e968-e325-11ce-bfc1-08002be10318}"

/* Where guest-side copies of host packages live. */
#define GP_GUEST_HOSTDRIVERSTORE "Windows/System32/HostDriverStore/FileRepository"

/* One TargetOS decoration of a [Manufacturer] entry, parsed from
 * "NTamd64.10.0...17098": NT<arch>[.<major>[.<minor>[.<producttype>
 * [.<suitemask>[.<build>]]]]]. Numeric fields absent from the decoration are
 * 0 (= any). An undecorated models section has arch "" (any architecture). */
struct gp_target_os {
	char *decoration;      /* as written, e.g. "NTamd64.10.0...17098"; "" if none */
	char *models_section;  /* "NVIDIA_Devices.NTamd64.10.0...17098" */
	char *arch;            /* "amd64", "arm64", "x86", "ia64", or "" = any */
	uint32_t major, minor, product_type, suite_mask, build;
	size_t mfg;            /* index of its [Manufacturer] line: Windows uses one
				* decoration per line, the closest to the OS */
	bool empty;            /* the models section is absent or has no model line:
				* as the closest match, it forbids this OS */
};

/* One model line of a models section:
 *   %desc% = InstallSection, HWID[, CompatibleID...] */
struct gp_model {
	char *description;     /* %key% already substituted */
	char *install_section; /* "Section002" */
	char **ids;            /* hardware ID then compatible IDs, as written */
	size_t n_ids;
	size_t target;         /* index into gp_package.targets */
	uint32_t lineno;       /* its line in the INF */
	bool no_install;       /* none of <section>.NT<arch>, <section>.NT, <section>
				* exists: Windows cannot install from this line */
	uint8_t feature_score; /* FeatureScore of its DDInstall section, 0xFF if none */
};

/* One DriverStore package (one FileRepository folder). */
struct gp_package {
	char *folder;          /* "nv_dispi.inf_amd64_<hash>" */
	char *dir_path;        /* host path of that folder */
	char *inf_name;        /* "nv_dispi.inf" as found in the folder */
	char *inf_path;        /* host path of the INF */
	char *arch;            /* from the folder name: "amd64", "arm64", "x86" ... */
	char *class_name;      /* [Version] Class, "" if absent */
	char *class_guid;      /* [Version] ClassGuid, lower case, with braces, "" if absent */
	char *provider;        /* [Version] Provider, %key% substituted */
	char *driver_ver_date; /* "MM/DD/YYYY" as written, "" if absent */
	char *driver_ver_version; /* "27.21.14.7005", "" if absent */
	char *catalog_file;    /* [Version] CatalogFile ("" if absent) */
	uint64_t date_key;     /* YYYYMMDD, 0 if absent or unparsable */
	uint16_t version[4];   /* driver_ver_version numerically */
	bool is_display;       /* ClassGuid is the Display class */
	char **copyinf;        /* INF names named by CopyINF= anywhere in the INF */
	size_t n_copyinf;
	struct gp_target_os *targets;
	size_t n_targets;
	struct gp_model *models;
	size_t n_models;
};

struct gp_store;

/* Scan @root (host root, Windows, DriverStore or FileRepository directory).
 * On success *out owns the scan; close it with gp_store_close().
 * Returns 0, GP_ERR_NOTFOUND (no FileRepository below @root), GP_ERR_IO
 * (unreadable directory), GP_ERR_NOMEM. Per-package problems are warnings. */
int gp_store_open(const char *root, struct gp_store **out, struct gp_error *err);
void gp_store_close(struct gp_store *s);

/* Packages in scan order (sorted by folder name). Index < count. */
size_t gp_store_package_count(const struct gp_store *s);
const struct gp_package *gp_store_package(const struct gp_store *s, size_t i);

/* Host directories found: FileRepository (always) and the Windows directory
 * (NULL when @root was DriverStore or FileRepository and no Windows directory
 * could be derived). Owned by the store. */
const char *gp_store_repository_dir(const struct gp_store *s);
const char *gp_store_windows_dir(const struct gp_store *s);

/* Warnings collected during the scan (one line each, naming the folder).
 * Owned by the store. */
size_t gp_store_warning_count(const struct gp_store *s);
const char *gp_store_warning(const struct gp_store *s, size_t i);

/* The error of the last failed call on @s (resolve, injection set). */
const struct gp_error *gp_store_error(const struct gp_store *s);

/* ---- GPU identity ------------------------------------------------------ */

/* A PCI GPU identity. Fields are upper-case hex; has_* false when absent. */
struct gp_gpu_id {
	uint16_t ven, dev;
	uint32_t subsys;
	uint8_t rev;
	bool has_subsys, has_rev;
};

/* Parse an instance path from Get-VMHostPartitionableGpu
 * ("\\?\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&...#{064092b3-...}"),
 * a device instance ID ("PCI\VEN_..&DEV_..\4&..."), or a hardware ID
 * ("PCI\VEN_10DE&DEV_2860[&SUBSYS_252D1043][&REV_A1]"), case-insensitively.
 * Returns 0 or GP_ERR_INVALID (message names the text and the rule). */
int gp_gpu_id_parse(const char *text, struct gp_gpu_id *out, struct gp_error *err);

/* Format as "PCI\VEN_10DE&DEV_2860[&SUBSYS_..][&REV_..]" into @buf (>= 48 bytes). */
void gp_gpu_id_format(const struct gp_gpu_id *id, char *buf, size_t size);

/* ---- Resolution -------------------------------------------------------- */

/* The guest the driver is for. arch NULL = "amd64"; build 0 = newest
 * (every TargetOS build requirement is satisfied). */
struct gp_guest_target {
	const char *arch;
	uint32_t build;
};

/* How specific a hardware-ID match is (higher wins). */
enum gp_match_rank {
	GP_MATCH_NONE = 0,
	GP_MATCH_VEN_DEV = 1,
	GP_MATCH_VEN_DEV_REV = 2,
	GP_MATCH_VEN_DEV_SUBSYS = 3,
	GP_MATCH_VEN_DEV_SUBSYS_REV = 4,
};

/* Why a candidate is where it is. */
enum gp_candidate_verdict {
	GP_CAND_CHOSEN = 0,
	GP_CAND_NOT_DISPLAY,      /* class is not Display */
	GP_CAND_NO_MATCH,         /* no model line matches the GPU */
	GP_CAND_TARGET_OS,        /* matching models only under TargetOS decorations
				   * that do not fit the guest arch / build */
	GP_CAND_LESS_SPECIFIC,    /* matched, but another package matched more specifically */
	GP_CAND_OLDER,            /* same specificity, older DriverVer date or version */
	GP_CAND_TIE,              /* identical rank, date and version; lost on folder name */
	GP_CAND_FEATURE_SCORE,    /* matched, but another package has a better (lower)
				   * FeatureScore, which Windows ranks first */
	GP_CAND_NO_INSTALL_SECTION, /* matching model lines name install sections the
				     * INF does not have */
};

struct gp_candidate {
	const struct gp_package *pkg;
	const struct gp_model *model;   /* best matching model, NULL if none */
	const char *matched_id;         /* the model's ID that matched, NULL if none */
	enum gp_match_rank rank;
	bool compatible;                /* matched_id is a compatible ID of its model
					 * line (not the first, hardware ID): ranks
					 * below every hardware-ID match, as in Windows */
	uint8_t feature_score;          /* of the matching model's DDInstall section */
	uint32_t score;                 /* Windows' rank less its signature part:
					 * FeatureScore << 16 | identifier score
					 * (0x0000 + position for the model's hardware
					 * ID, 0x1000 + position for a compatible ID;
					 * positions SUBSYS&REV 0, SUBSYS 1, REV 2,
					 * VEN&DEV 3); lower wins */
	enum gp_candidate_verdict verdict;
	char *why;                      /* one line for --explain */
	char *target_why;               /* --explain: which TargetOS decoration Windows
					 * uses and why; NULL for non-display packages */
	char *rank_why;                 /* --explain: the rank's parts; NULL without a match */
};

struct gp_resolution {
	struct gp_gpu_id gpu;           /* the GPU resolved for (auto: the package's) */
	bool automatic;                 /* "auto" was asked for */
	const struct gp_package *pkg;   /* the chosen package */
	const struct gp_model *model;   /* its matching model; NULL for "auto"
					 * without a GPU (then every model counts) */
	struct gp_candidate *cands;     /* every package, best first */
	size_t n_cands;
};

/* Choose the package for @gpu: an instance path or hardware ID (see
 * gp_gpu_id_parse()), or "auto". @target may be NULL (amd64, newest build).
 *
 * Ranking (like Windows, "How Windows ranks drivers"): Display class only;
 * per [Manufacturer] line, only the models section whose TargetOS
 * decoration applies to the guest (arch equal, or absent and the package's;
 * NT version <= the guest's, which its build gives: 10.0 from 10240; the
 * decoration's build <= the guest's when the versions are equal; product
 * type workstation; suites within Terminal/SingleUserTS) and matches it most
 * closely (highest version, then build, then product type and suite given);
 * when that section is empty the INF refuses the OS. Model lines whose
 * install section does not exist are never chosen. Then the lowest rank
 * 0xGGTHHH: FeatureScore of the DDInstall section (GG, 0xFF when absent)
 * before the identifier score (T 0 for the model's hardware ID, 1 for a
 * compatible ID; HHH the device ID's position, most specific first:
 * VEN&DEV&SUBSYS&REV, VEN&DEV&SUBSYS, VEN&DEV&REV, VEN&DEV;
 * case-insensitive); then newest DriverVer date, then version a.b.c.d
 * numerically; a final tie goes to the greater folder name. (The signature
 * score, SS, is not known offline; DriverStore packages are all signed.)
 *
 * "auto" groups the display packages that fit the guest by GPU vendor (the
 * PCI VEN of their hardware IDs; packages with no PCI\VEN_&DEV_ ID, such as
 * Microsoft Basic Display, drive no partitionable GPU and are ignored). One
 * vendor: its newest package, with every model's install section counting
 * for the injection set (model NULL). Several: an error listing them.
 *
 * Returns 0 with *out set, GP_ERR_INVALID (@gpu unparsable),
 * GP_ERR_NOTFOUND (no package fits; the message names the GPU),
 * GP_ERR_INVALID also for "auto" with several GPUs (the message lists
 * them and asks for --gpu),
 * GP_ERR_NOMEM. Errors go to gp_store_error(s).
 * On 0, GP_ERR_NOTFOUND and the several-GPUs case, *out holds every candidate (pkg
 * NULL on failure) so that --explain can say why each lost; the caller frees
 * it with gp_resolution_free(). On other errors *out is NULL. */
int gp_store_resolve(struct gp_store *s, const char *gpu,
		     const struct gp_guest_target *target, struct gp_resolution **out);

void gp_resolution_free(struct gp_resolution *r);

/* Text for a verdict ("chosen", "not a display driver", ...). */
const char *gp_candidate_verdict_name(enum gp_candidate_verdict v);

/* ---- Injection set ----------------------------------------------------- */

enum gp_inject_role {
	GP_INJECT_PACKAGE = 0,     /* a file of the chosen package's folder */
	GP_INJECT_COMPANION,       /* a System32 / SysWOW64 file the INF copies */
	GP_INJECT_COPYINF_PACKAGE, /* a file of a CopyINF= companion package */
};

struct gp_inject_file {
	char *guest_path;     /* see the top of this file */
	char *source_path;    /* host path to read from */
	uint64_t size;
	int64_t mtime;        /* seconds since the epoch, from the source */
	enum gp_inject_role role;
	char *origin;         /* why it is in the set: "package", "CopyFiles nv_system32_copyfiles__01",
			       * "CopyToVmWhenNewer CudaDriverFiles", "CopyINF nvhda.inf" */
	/* Expected content, when the source knows it (a bundle manifest,
	 * bundle.h); false for sets computed from a host DriverStore. */
	bool has_sha256;
	uint8_t sha256[32];
};

struct gp_inject_opts {
	bool allow_missing;   /* a listed companion found nowhere is skipped
			       * (recorded in missing[]) instead of an error */
};

struct gp_inject_set {
	const struct gp_package *pkg;          /* the chosen package */
	const struct gp_package **copyinf;     /* CopyINF companion packages */
	size_t n_copyinf;
	struct gp_inject_file *files;          /* sorted by guest_path (strcmp) */
	size_t count;
	uint64_t total_bytes;
	char **folders;        /* guest HostDriverStore folders of this set (package +
				* CopyINF packages), e.g.
				* "Windows/System32/HostDriverStore/FileRepository/nv_dispi.inf_amd64_abc" */
	size_t n_folders;
	char **missing;        /* with allow_missing: guest paths whose source was found nowhere */
	size_t n_missing;
	char **copyinf_missing; /* CopyINF names with no package in the store (always a
				 * note, never an error: Windows skips them too) */
	size_t n_copyinf_missing;
	char **notes;          /* oddities that did not stop the set (a CopyToVm value
				* with more than two strings, a destination name
				* with a path in it), one line each */
	size_t n_notes;
};

/* Compute the injection set of @pkg for @model (the resolution's model;
 * NULL = follow every model's install section, used for "auto"):
 *  - the whole package folder, recursively (regular files only), under
 *    GP_GUEST_HOSTDRIVERSTORE/<folder>, whether the INF lists a file or not;
 *  - System32 / SysWOW64 companions. The install section run is the first
 *    of <section>.NT<arch>, <section>.NT, <section> that exists; its
 *    CopyFiles (file-list sections and @file), AddReg, CopyINF and Needs
 *    (sections of the same INF, each once, at most 16 deep) are followed;
 *    Include'd in-box INFs are not. A file-list section is a companion when
 *    its DestinationDirs entry (else DefaultDestDir, else 11) is 11 or
 *    10,System32 (-> Windows/System32) or 16425 or 10,SysWOW64
 *    (-> Windows/SysWOW64), subdirectories kept ("11,lxss\lib"); renames
 *    ("dest,source") honoured. AddReg lines HKR,CopyToVm{Overwrite,WhenNewer}
 *    [Wow64],<name>,<flags>,... build REG_SZ / REG_MULTI_SZ values
 *    (REG_MULTI_SZ sets, FLG_ADDREG_APPEND adds, FLG_ADDREG_DELVAL drops,
 *    FLG_ADDREG_NOCLOBBER keeps); each value is one companion in System32
 *    (SysWOW64 for the *Wow64 keys): its first string the file's path in
 *    the package, its second the name in System32, or, when it is absent or
 *    empty, the first string's file name (Microsoft's "Driver INF
 *    modifications" rules: at most two strings; more are ignored with a
 *    note, other value types skipped with a note). A companion's
 *    bytes come from the package folder (at its [SourceDisksFiles] place),
 *    else from the host's System32 / SysWOW64 under the installed name
 *    (when the store knows the Windows directory). Destination names with a
 *    path in them are skipped with a note; other names Windows cannot
 *    create (gp_ntfs_check_name(): CON, nul.txt, "a.") fail the set.
 *    The same guest path twice (any case) is one file whose origin lists
 *    both reasons;
 *  - CopyINF= packages found in the store (the newest folder of that INF
 *    name and the package's arch), each as its own HostDriverStore folder.
 * @opts may be NULL. Returns 0 with *out set (free with
 * gp_inject_set_free()), GP_ERR_NOTFOUND (a listed companion exists nowhere
 * and !allow_missing: the message names it and its guest path),
 * GP_ERR_CORRUPT (the INF no longer parses, Needs nested too deep, a
 * destination name Windows cannot create: the message names the INF, the
 * section and the name),
 * GP_ERR_UNSUPPORTED (package folders nested deeper than 32 levels),
 * GP_ERR_IO, GP_ERR_NOMEM. Errors go to gp_store_error(s). */
int gp_store_injection_set(struct gp_store *s, const struct gp_package *pkg,
			   const struct gp_model *model, const struct gp_inject_opts *opts,
			   struct gp_inject_set **out);

void gp_inject_set_free(struct gp_inject_set *set);

#endif
