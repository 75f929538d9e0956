#!/bin/sh
# fuzz/valgrind-prepare.sh OUTDIR — valgrind memcheck on the CLI end to end:
# `gpup prepare` of a generated guest (tests/fixtures/mkguest.sh --size 2G
# --vhdx: GPT, NTFS, dynamic VHDX by qemu-img) from a generated DriverStore
# (tests/fixtures/mkstore.sh), then `gpup bundle create`, `prepare --bundle`
# on a fresh copy and `verify --bundle`. Each run must report 0 errors and
# 0 bytes definitely/indirectly lost (--error-exitcode makes either fail).
# Needs GPUP_BIN (a gcc build without sanitizers, e.g. build/gpup);
# GPUP_SRC (source tree) and GPUP_SHARED (../shared) as `make check` sets.
# Logs: OUTDIR/valgrind-*.log. Prints one line per run; exit 1 on a finding.
set -u
out=${1:?usage: valgrind-prepare.sh OUTDIR}
gpup=${GPUP_BIN:?set GPUP_BIN}
src=${GPUP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
gpu='PCI\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1'
mkdir -p "$out"
sh "$src/tests/fixtures/mkguest.sh" "$out/guest" --size 2G --vhdx > "$out/mkguest.log" 2>&1 || {
	echo "mkguest.sh failed (see $out/mkguest.log)"; exit 1; }
[ -d "$out/store/Windows" ] || sh "$src/tests/fixtures/mkstore.sh" "$out/store" > /dev/null
rc=0
vg() { # NAME ARGS...
	name=$1; shift
	valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=42 \
		--log-file="$out/valgrind-$name.log" "$gpup" "$@" > "$out/$name.out" 2>&1
	st=$?
	errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$out/valgrind-$name.log")
	lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$out/valgrind-$name.log")
	inuse=$(sed -n 's/.*in use at exit: \([0-9,]*\) bytes.*/\1/p' "$out/valgrind-$name.log")
	echo "$name: exit $st, errors ${errs:-?}, definitely lost ${lost:-0} bytes, in use at exit ${inuse:-?} bytes"
	[ "$st" -eq 0 ] || rc=1
}
cp --sparse=always "$out/guest/guest.vhdx" "$out/a.vhdx"
cp --sparse=always "$out/guest/guest.vhdx" "$out/b.vhdx"
rm -f "$out/nv.tar.zst"
vg prepare prepare "$out/a.vhdx" --driverstore "$out/store" --gpu "$gpu" -q
vg bundle-create bundle create --driverstore "$out/store" --gpu "$gpu" -q -o "$out/nv.tar.zst"
vg prepare-bundle prepare "$out/b.vhdx" --bundle "$out/nv.tar.zst" -q
vg verify-bundle verify "$out/b.vhdx" --bundle "$out/nv.tar.zst"
exit $rc
