#!/bin/sh
# install-deps.sh — make sure the Debian packages gpup builds, tests and demos
# with are installed. As root it installs what is missing; otherwise it says
# exactly what to install and fails. Called by `make` before anything builds.
set -eu

# Build: libraries found with pkg-config. Tests: Criterion and the
# independent oracles (qemu-img, ntfs-3g tools, libvhdi/libfsntfs tools,
# gdisk, hivexregedit, bsdtar). Fuzzing: clang and its sanitizer and
# libFuzzer runtimes (libclang-rt-dev: only recommended by clang, so a
# --no-install-recommends install lacks them and `make fuzz` cannot
# link). `make bench`: time (peak RSS), bc, openssl (package generator).
# python3: tests/drivers/inf_oracle.py, the independent INF reader;
# python3-jsonschema: the --json schema test (tests/cli/test_schema.c).
PKGS="gcc make pkg-config libvhdi-dev ntfs-3g-dev libarchive-dev uuid-dev
libjson-c-dev libssl-dev libhivex-dev libcriterion-dev
ntfs-3g libvhdi-utils libfsntfs-utils qemu-utils gdisk libhivex-bin
libarchive-tools zstd xz-utils unzip pci.ids clang libclang-rt-dev
zlib1g-dev fdisk dosfstools
time bc openssl python3 python3-jsonschema"

missing=""
for p in $PKGS; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "gpup needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be empty or stale.
if ! apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -qq >/dev/null
	apt-get install -y --no-install-recommends $missing >/dev/null
fi
