#!/bin/sh
# mkpackage.sh — build a host DriverStore holding one NVIDIA-sized display
# driver package, for `make bench` (bench/run.sh).
#
# Usage: mkpackage.sh OUTDIR [--scale N | --files N]
#
# Writes (deterministically: same arguments, same bytes and mtimes):
#   OUTDIR/Windows/System32/DriverStore/FileRepository/
#     nv_dispi.inf_amd64_bench0000bench0/
#       nv_dispi.inf          Display class, model PCI\VEN_10DE&DEV_2860&SUBSYS_252D1043
#                             (the GPU id the prepare tests use); CopyFiles to 13
#                             (package folder, copied whole) and two System32
#                             companions (nvapi64.dll, nvml.dll <- nvml_loader.dll)
#       big/bigNN.bin         8 files of 100 MB x N        ("nvlddmkm.sys"-like)
#       mid/midNNN.dll        240 files of 1.4 MB x N      (UMD DLLs)
#       small/dNN/sNNN.dat    600 files of 1 KiB..200 KiB x N (catalogs, data files),
#                             in 20 subfolders
#     nvapi64.dll, nvml_loader.dll at the package top
# About 1.2 GB and 851 files at --scale 1 (the shape of a real NVIDIA package:
# a few huge binaries, a couple hundred mid-size DLLs, many small files).
#
# --files N replaces big/, mid/ and small/ with N one-byte files, all in one
# folder (many/fNNNNNN.dat), and a one-byte big/big00.bin (the INF names it), for the scaling run of bench/run.sh: the cost
# per file, not per byte, and a directory index that grows with every file.
#
# File contents: the big and mid files are an AES-128-CTR key stream keyed by
# the file name (openssl enc, fast and incompressible, like the already-
# compressed parts of a real driver); the small files are "<line number>
# <name>" text lines (seq), highly compressible. Every offset of every file is
# distinct, so misplaced blocks show up in hashes. All mtimes are
# 2024-03-20 12:00:00 UTC.
set -eu

usage() { echo "usage: mkpackage.sh OUTDIR [--scale N | --files N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
SCALE=1
FILES=
while [ $# -gt 0 ]; do
	case $1 in
	--scale) [ $# -ge 2 ] || usage; SCALE=$2; shift 2 ;;
	--files) [ $# -ge 2 ] || usage; FILES=$2; shift 2
		case $FILES in ''|*[!0-9]*) usage ;; esac ;;
	*) usage ;;
	esac
done
case $SCALE in ''|*[!0-9]*) usage ;; esac
[ "$SCALE" -ge 1 ] || usage

PKG="$OUT/Windows/System32/DriverStore/FileRepository/nv_dispi.inf_amd64_bench0000bench0"
rm -rf "$OUT/Windows"
mkdir -p "$PKG"

# randfile PATH BYTES: key stream of AES-128-CTR keyed by PATH's base name.
randfile() {
	key=$(printf '%s' "$(basename "$1")" | sha256sum | cut -c1-32)
	openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000 \
		</dev/zero 2>/dev/null | head -c "$2" >"$1"
}
# textfile PATH BYTES: distinct text lines.
textfile() {
	seq -f "%012g $(basename "$1")" 1 $(( $2 / 14 + 1 )) | head -c "$2" >"$1"
}

if [ -n "$FILES" ]; then
	# One shell loop would take minutes at 100,000 files; awk writes them in
	# one process (closing each, or it runs out of descriptors).
	# big/big00.bin stays (one byte): the INF names it.
	mkdir -p "$PKG/many" "$PKG/big"
	printf x >"$PKG/big/big00.bin"
	awk -v n="$FILES" -v d="$PKG/many" 'BEGIN {
		for (i = 0; i < n; i++) { f = sprintf("%s/f%06d.dat", d, i); printf "x" >f; close(f) } }'
else
mkdir -p "$PKG/big" "$PKG/mid" "$PKG/small"
i=0
while [ $i -lt 8 ]; do
	randfile "$PKG/big/big$(printf %02d $i).bin" $(( 100000000 * SCALE ))
	i=$((i + 1))
done
i=0
while [ $i -lt 240 ]; do
	randfile "$PKG/mid/mid$(printf %03d $i).dll" $(( 1400000 * SCALE ))
	i=$((i + 1))
done
i=0
while [ $i -lt 600 ]; do
	d="$PKG/small/d$(printf %02d $((i % 20)))"
	mkdir -p "$d"
	# 1 KiB .. ~200 KiB, spread deterministically (mean ~100 KiB).
	textfile "$d/s$(printf %03d $i).dat" $(( (1024 + (i * 7919) % 204800) * SCALE ))
	i=$((i + 1))
done
fi
textfile "$PKG/nvapi64.dll" $(( 65536 * SCALE ))
textfile "$PKG/nvml_loader.dll" $(( 65536 * SCALE ))

crlf() { sed 's/$/\r/'; }
crlf >"$PKG/nv_dispi.inf" <<'INF'
; gpup benchmark package: NVIDIA-sized display driver (bench/mkpackage.sh)

[Version]
Signature   = "$Windows NT$"
Provider    = %NVIDIA%
ClassGUID   = {4D36E968-E325-11CE-BFC1-08002BE10318}
Class       = Display
DriverVer   = 03/20/2024, 31.0.15.5222
CatalogFile = NV_DISP.CAT

[Manufacturer]
%NVIDIA_A% = NVIDIA_Devices,NTamd64.10.0...17098

[NVIDIA_Devices.NTamd64.10.0...17098]
%NVIDIA_DEV.2860.252D.1043% = Section_Bench, PCI\VEN_10DE&DEV_2860&SUBSYS_252D1043
%NVIDIA_DEV.2860%           = Section_Bench, PCI\VEN_10DE&DEV_2860

[DestinationDirs]
DefaultDestDir = 11
nv_driverstore_copyfiles = 13
nv_system32_copyfiles = 11

[SourceDisksNames]
1 = %DiskID1%

[SourceDisksFiles]
nvapi64.dll = 1
nvml_loader.dll = 1
big00.bin = 1,big

[Section_Bench]
CopyFiles = nv_driverstore_copyfiles, nv_system32_copyfiles

[nv_driverstore_copyfiles]
big00.bin

[nv_system32_copyfiles]
nvapi64.dll,,,0x00004000
nvml.dll,nvml_loader.dll,,0x00004000

[Strings]
NVIDIA = "NVIDIA"
NVIDIA_A = "NVIDIA"
DiskID1 = "NVIDIA benchmark package"
NVIDIA_DEV.2860.252D.1043 = "NVIDIA GeForce RTX 4070 Laptop GPU (ASUS)"
NVIDIA_DEV.2860 = "NVIDIA GeForce RTX 4070 Laptop GPU"
INF
printf 'catalog of the benchmark package\n' >"$PKG/nv_disp.cat"

find "$OUT/Windows" -exec touch -h -d '2024-03-20 12:00:00 UTC' {} +
