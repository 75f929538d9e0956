#!/bin/sh
# run-tests.sh BIN... — run each Criterion test binary, then print one
# closing line "check: N passed, N failed, N skipped" summed over all of them.
# Skipped tests are listed by name with the reason they gave (Criterion's
# TAP report carries them; its console output does not). Exit non-zero when
# any binary failed or crashed, and, under CI (CI=true), when a test was
# skipped that tests/skips-allowed.txt does not name: a CI machine has
# everything a test needs, so a skip there is a missing dependency.
set -u
passed=0 failed=0 skipped=0 rc=0
allowed="$(dirname "$0")/skips-allowed.txt"
# Failure lines of every binary, repeated at the end: CI shows only the
# tail of a long log, and the closing line alone does not say what failed.
fails=$(mktemp)
skips=$(mktemp)
for bin in "$@"; do
	echo "== $bin"
	log=$(mktemp)
	tap=$(mktemp)
	"$bin" --jobs "${GPUP_TEST_JOBS:-2}" --tap="$tap" 2>&1 | tee "$log"
	# Criterion's closing line: "[====] Synthesis: Tested: 12 | Passing: 12 | Failing: 0 | Crashing: 0"
	line=$(grep 'Synthesis:' "$log" | tail -n 1)
	# Criterion's failure lines: "[----] file.c:12: Assertion Failed", the
	# message indented below it, "[FAIL] suite::test"; not cr_log_info lines.
	grep -E '^\[----\] [^ ]+:[0-9]+: |^\[----\]   |^\[FAIL\]|CRASH|Timeout|ERROR: .*Sanitizer|runtime error' "$log" |
		sed "s|^|$bin: |" >> "$fails"
	# TAP: "ok - suite::test  # SKIP reason" -> "suite::test: reason".
	sed -n 's/^ok - \([^ ]*\) .*# SKIP \(.*\)$/\1: \2/p' "$tap" >> "$skips"
	rm -f "$log" "$tap"
	if [ -z "$line" ]; then
		echo "$bin: no Criterion summary (the binary died?)"
		failed=$((failed + 1)); rc=1; continue
	fi
	p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
	# Criterion's Failing already counts the crashed tests (Crashing).
	passed=$((passed + p)); failed=$((failed + f))
	[ "$f" -eq 0 ] || rc=1
done
skipped=$(wc -l < "$skips")
if [ "$skipped" -gt 0 ]; then
	echo "== skipped"
	cat "$skips"
	if [ "${CI:-}" = true ]; then
		while IFS= read -r s; do
			name=${s%%: *}
			if ! grep -q "^$name " "$allowed" 2>/dev/null; then
				echo "CI: $name was skipped and is not in tests/skips-allowed.txt" >> "$fails"
				rc=1
			fi
		done < "$skips"
	fi
fi
if [ -s "$fails" ]; then
	echo "== what failed"
	head -n 60 "$fails"
fi
rm -f "$fails" "$skips"
echo "check: $passed passed, $failed failed, $skipped skipped"
exit $rc
