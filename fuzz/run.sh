#!/bin/sh
# fuzz/run.sh FUZZ_BUILD NAME... — run each libFuzzer harness
# FUZZ_BUILD/fuzz_NAME for $FUZZ_SECONDS seconds (default 10), one after the
# other, and print one line per harness: executions, new corpus size, and
# whether it found a crash/leak/timeout (the input is kept as
# FUZZ_BUILD/artifacts/NAME/crash-... ; turn it into a regression test under
# tests/fuzz-regress/NAME/). Exit 1 when any harness found something.
#
# Corpus: FUZZ_BUILD/corpus/NAME (grows across runs), seeded from
# fuzz/corpus/NAME and, for vhdx, from the Hyper-V images in
# $GPUP_SHARED/fixtures/hyperv (converted by fuzz/vhdx2seed.py; too big to
# keep in the tree). Extra libFuzzer flags: $FUZZ_ARGS (e.g. -jobs=2).
# Logs: FUZZ_BUILD/logs/NAME.PID.log.
set -u
build=${1:?usage: run.sh FUZZ_BUILD NAME...}
shift
secs=${FUZZ_SECONDS:-10}
src=$(cd "$(dirname "$0")" && pwd)
shared=${GPUP_SHARED:-$src/../../shared}
rc=0
mkdir -p "$build/logs"
for name in "$@"; do
	bin=$build/fuzz_$name
	corpus=$build/corpus/$name
	art=$build/artifacts/$name
	log=$build/logs/$name.$$.log  # per run: concurrent runs must not share it
	mkdir -p "$corpus" "$art"
	if [ "$name" = vhdx ] && [ -d "$shared/fixtures/hyperv" ] && command -v python3 > /dev/null; then
		for img in "$shared"/fixtures/hyperv/*.vhdx.gz "$shared"/fixtures/hyperv/*.avhdx.gz; do
			[ -f "$img" ] || continue
			seed=$corpus/seed-$(basename "$img" .gz)
			[ -f "$seed" ] && continue
			tmp=$(mktemp)
			gzip -dc "$img" > "$tmp" && python3 "$src/vhdx2seed.py" "$tmp" "$seed" 1
			rm -f "$tmp"
		done
	fi
	# Longer inputs reach no new rule of the text parsers, and slow them:
	# the INF parser's cost is linear in the input (~0.2 us/byte under
	# ASan+coverage), so fuzz_inf gets small inputs (its seeds are INFs cut
	# into sections by fuzz/infsplit.py; whole files are cut to 8 KiB).
	case $name in
	inf) maxlen=8192 ;;
	gpus|manifest) maxlen=65536 ;;
	bundle) maxlen=262144 ;;
	*) maxlen=1048576 ;;
	esac
	# ASan's quarantine (freed memory kept poisoned to catch use after
	# free) defaults to 256 MiB; cycling through it costs page faults on
	# every input (2-3x slower here). 64 MiB still spans many inputs.
	# $ASAN_OPTIONS overrides.
	quarantine=64
	dict=
	[ -f "$src/$name.dict" ] && dict=-dict=$src/$name.dict
	# -timeout: one input taking > 10 s is a hang; -rss_limit_mb: the
	# harnesses cap their inputs, so 2 GiB means a runaway allocation.
	# shellcheck disable=SC2086
	ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=$quarantine} \
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=$maxlen \
		-print_final_stats=1 -artifact_prefix="$art/" $dict ${FUZZ_ARGS:-} \
		"$corpus" "$src/corpus/$name" > "$log" 2>&1
	st=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	found=$(ls "$art" 2>/dev/null | wc -l)
	files=$(ls "$corpus" | wc -l)
	if [ "$st" -ne 0 ] || [ "$found" -ne 0 ]; then
		rc=1
		verdict="FOUND $found artifact(s) in $art (exit $st; see $log)"
	else
		verdict="no crash"
	fi
	printf 'fuzz_%-9s %12s execs in %ss, corpus %s files: %s\n' "$name" "${execs:-?}" "$secs" \
		"$files" "$verdict"
done
exit $rc
