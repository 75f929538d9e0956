#!/bin/sh
# tests/mutants/run.sh [MUTANT.patch...] — the mutation harness behind
# `make mutate` (tests/mutants/README.md). Each mutant is applied alone to
# a scratch copy of the tree, the copy is rebuilt incrementally in its own
# build directory, and the test binaries its header names are run against
# it: a failing (or crashing, or timed-out) run kills the mutant. Prints
# one line per mutant, the survivors with their reasons and the score.
#
# Environment: BUILD (the normal build directory, default build; its
# fixtures are shared, read-only), SHARED (../shared), MUTATE_FULL=1 (a
# mutant that survives its named binaries is also run against the whole
# suite), MUTATE_BASELINE=0 (skip the check that the named tests pass on
# the unmutated copy), MUTATE_TIMEOUT (seconds per test binary, default
# 900), GPUP_TEST_JOBS (Criterion --jobs, default 2).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$top" && mkdir -p "${BUILD:-build}" && cd "${BUILD:-build}" && pwd)
shared=${SHARED:-$(cd "$top/.." && pwd)/shared}
work=$build/mutate
src=$work/src
mbuild=$work/build
tmo=${MUTATE_TIMEOUT:-900}
jobs=${GPUP_TEST_JOBS:-2}

[ $# -gt 0 ] || set -- "$top"/tests/mutants/*.patch

# A scratch copy of the tracked tree plus the uncommitted edits, never the
# working tree: a mutant left applied by an interrupted run cannot leak into
# it. Only files whose content differs are copied (unchanged ones keep their
# mtimes, so the build in $mbuild stays incremental); a mutant an interrupted
# run left applied differs too, so it is replaced as well.
mkdir -p "$src" "$mbuild"
(cd "$top" && git ls-files --cached --others --exclude-standard | grep -v '^build' |
	while IFS= read -r f; do
		[ -f "$f" ] || continue
		cmp -s "$f" "$src/$f" && continue
		mkdir -p "$src/$(dirname "$f")" && cp "$f" "$src/$f" || exit 1
	done) || { echo "mutate: cannot copy the tree"; exit 1; }
# Fixtures are built once by the normal build (the baseline run below builds
# any that are missing with the unmutated gpup) and shared read-only.
mkdir -p "$build/fixtures"
[ -e "$mbuild/fixtures" ] || ln -s "$build/fixtures" "$mbuild/fixtures"
[ -e "$build/.deps-ok" ] && cp "$build/.deps-ok" "$mbuild/.deps-ok"

hdr() { sed -n "s/^# $2: *//p" "$1"; }

# build_copy [TARGET...]: build the copy (default: gpup and every test
# binary); a mutant relinks only gpup and the binaries that test it.
build_copy() {
	[ $# -gt 0 ] || set -- tests
	make -C "$src" -s -j"$jobs" BUILD="$mbuild" "$@" >"$work/build.log" 2>&1
}

# run_tests: run the test binaries named on stdin ("BIN [FILTER]" lines, as
# in the "# test:" headers); prints the first one that fails (or crashes,
# or times out), nothing when all pass.
run_tests() {
	while read -r bin filter; do
		set -- "$mbuild/tests/test-$bin" --jobs "$jobs" --fail-fast
		[ -n "$filter" ] && set -- "$@" --filter "$filter"
		if ! GPUP_BIN=$mbuild/gpup GPUP_SRC=$src GPUP_SHARED=$shared GPUP_BUILD=$mbuild \
			timeout -k 10 "$tmo" "$@" >>"$work/test.log" 2>&1; then
			echo "$bin${filter:+ $filter}"
			break
		fi
	done
}

run_full() {
	GPUP_BIN=$mbuild/gpup GPUP_SRC=$src GPUP_SHARED=$shared GPUP_BUILD=$mbuild \
		sh "$src/tests/run-tests.sh" "$mbuild"/tests/test-* >>"$work/test.log" 2>&1
}

if ! build_copy; then
	cat "$work/build.log"; echo "mutate: the unmutated copy does not build"; exit 1
fi
if [ "${MUTATE_BASELINE:-1}" != 0 ]; then
	# A test that fails without any mutant would "kill" every mutant.
	# Each distinct "BIN [FILTER]" once.
	for p in "$@"; do hdr "$p" test; done | sort -u >"$work/baseline"
	while read -r line; do
		: >"$work/test.log"
		who=$(echo "$line" | run_tests)
		if [ -n "$who" ]; then
			tail -n 30 "$work/test.log"
			echo "mutate: baseline: test-$who fails on the unmutated tree"; exit 1
		fi
	done <"$work/baseline"
fi

killed=0 survived=0 noapply=0 nobuild=0
survivors=$(mktemp)
start=$(date +%s)
for p in "$@"; do
	name=$(basename "$p" .patch)
	t0=$(date +%s)
	: >"$work/test.log"
	# -p1 with fuzz: the patch still lands when the code above or below
	# the mutated line moved; --dry-run first so a half-applied patch never
	# stays in the copy.
	if ! patch -d "$src" -p1 -F3 -s --dry-run <"$p" >/dev/null 2>&1; then
		echo "$name: does-not-apply"; noapply=$((noapply + 1)); continue
	fi
	patch -d "$src" -p1 -F3 -s -r - --no-backup-if-mismatch <"$p" >/dev/null
	if [ "${MUTATE_FULL:-0}" = 1 ]; then
		targets=tests
	else
		targets="$mbuild/gpup $(hdr "$p" test | while read -r bin _; do echo "$mbuild/tests/test-$bin"; done)"
	fi
	# shellcheck disable=SC2086 # a list of paths without blanks
	if ! build_copy $targets; then
		res=does-not-build; nobuild=$((nobuild + 1))
	else
		who=$(hdr "$p" test | run_tests)
		if [ -z "$who" ] && [ "${MUTATE_FULL:-0}" = 1 ] && ! run_full; then
			who=suite
		fi
		if [ -n "$who" ]; then
			res="killed by test-$who"; killed=$((killed + 1))
		else
			res=SURVIVED; survived=$((survived + 1))
			why=$(hdr "$p" equivalent)
			echo "$name: $(hdr "$p" mutant)${why:+ (tolerated, equivalent: $why)}" >>"$survivors"
		fi
	fi
	# Revert, and make the reverted file newer than its object so the
	# next build compiles it again.
	patch -d "$src" -p1 -F3 -s -R -r - --no-backup-if-mismatch <"$p" >/dev/null ||
		{ echo "mutate: cannot revert $name"; exit 1; }
	sed -n 's|^+++ [^/]*/\([^	 ]*\).*|\1|p' "$p" | while read -r f; do touch "$src/$f"; done
	echo "$name: $res ($(($(date +%s) - t0)) s)"
done
total=$((killed + survived))
equiv=$(grep -c '(tolerated, equivalent:' "$survivors")
echo "== survivors"
cat "$survivors"
trap 'rm -f "$survivors"' EXIT
# The score counts every mutant; the second figure leaves out the survivors
# tolerated as equivalent (no test can tell them from the original).
echo "mutate: $killed killed, $survived survived ($equiv tolerated as equivalent)," \
	"$noapply do not apply, $nobuild do not build;" \
	"score $( [ $total -gt 0 ] && echo $((100 * killed / total)) || echo 0) %" \
	"($( [ $((total - equiv)) -gt 0 ] && echo $((100 * killed / (total - equiv))) || echo 0) % of the non-equivalent) in $(($(date +%s) - start)) s"
# Exit 1 when a survivor has no tolerated reason or a mutant no longer
# applies or builds (its patch needs refreshing).
! grep -qv '(tolerated, equivalent:' "$survivors" && [ $((noapply + nobuild)) -eq 0 ]
