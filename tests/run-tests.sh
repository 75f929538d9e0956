#!/bin/sh
# run-tests.sh BIN... — run each Criterion test binary, then print one
# closing line "check: N passed, N failed" summed over all of them.
# Exit non-zero when any binary failed or crashed.
set -u
passed=0 failed=0 rc=0
# Failure lines of every binary, repeated at the end: CI shows only the
# tail of a long log, and the closing line alone does not say what failed.
fails=$(mktemp)
for bin in "$@"; do
	echo "== $bin"
	log=$(mktemp)
	"$bin" --jobs "${GPUP_TEST_JOBS:-2}" 2>&1 | tee "$log"
	status=$?
	# Criterion's closing line: "[====] Synthesis: Tested: 12 | Passing: 12 | Failing: 0 | Crashing: 0"
	line=$(grep 'Synthesis:' "$log" | tail -n 1)
	# Criterion's failure lines: "[----] file.c:12: Assertion Failed", the
	# message indented below it, "[FAIL] suite::test"; not cr_log_info lines.
	grep -E '^\[----\] [^ ]+:[0-9]+: |^\[----\]   |^\[FAIL\]|CRASH|Timeout|ERROR: .*Sanitizer|runtime error' "$log" |
		sed "s|^|$bin: |" >> "$fails"
	rm -f "$log"
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
if [ -s "$fails" ]; then
	echo "== what failed"
	head -n 60 "$fails"
fi
rm -f "$fails"
echo "check: $passed passed, $failed failed"
exit $rc
