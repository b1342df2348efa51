#!/usr/bin/env bash
# The diskgate-tap reporter (tests/tap_reporter.cc) on tap_sample.cc's
# cases: one TAP line per case, a SKIP_TEST case as "# SKIP reason", a
# failing one as "not ok" after its assertions as TAP comments (and on
# stderr), the plan at the end, and exit 0 (the failures are in the stream). Run by hand (console
# reporter), a skipped case still makes the binary exit 77.
#   tap_reporter_test.sh TEST_TAP_SAMPLE
set -uo pipefail
sample=$1
passed=0 failed=0
check() {
	local what=$1
	shift
	if "$@"; then
		passed=$((passed + 1)) && echo "ok - $what"
	else
		failed=$((failed + 1)) && echo "not ok - $what"
	fi
}

err=$(mktemp)
trap 'rm -f "$err"' EXIT
out=$("$sample" -r diskgate-tap '[sample]' 2>"$err")
status=$?
printf '%s\n' "$out" | sed 's/^/    stdout| /'
sed 's/^/    stderr| /' "$err"
check "exit status 0 with the TAP reporter (was $status)" test "$status" -eq 0
check "the passing case" grep -qxF 'ok 1 - sample passes' <<<"$out"
check "the skipped case, with its reason on one line and '#' kept out of the name" \
	grep -qxF 'ok 2 - sample skips _1 # SKIP no such device here' <<<"$out"
check "the failing case" grep -qxF 'not ok 3 - sample fails' <<<"$out"
check "the case that throws" grep -qxF 'not ok 4 - sample throws' <<<"$out"
check "the plan" grep -qxF '1..4' <<<"$out"
# The lines after the failure's location, without the comment marks.
details=$(grep -A5 -E '^# +[^ ]*tap_sample\.cc:[0-9]+: FAILED$' <<<"$out" | sed -n '2,6s/^# *//p')
check "the failed assertion, its expansion and its INFO as comments" test "$details" = "CHECK( answer == 42 )
with expansion:
41 == 42
with message:
the answer was computed"
check "the failure's details on stderr too (meson --print-errorlogs shows a TAP test's stderr only)" \
	grep -qxF '  41 == 42' "$err"
check "the exception's message as a comment" grep -qE '^# +  disk on fire$' <<<"$out"
check "every line is TAP (a result, the plan or a comment)" \
	bash -c '! grep -vE "^(ok [0-9]+ - |not ok [0-9]+ - |1\.\.[0-9]+$|#)" <<<"$1"' _ "$out"

"$sample" 'sample passes,sample skips*' >/dev/null 2>&1
status=$?
check "console reporter: a skipped case makes the binary exit 77 (was $status)" test "$status" -eq 77
"$sample" 'sample passes' >/dev/null 2>&1
status=$?
check "console reporter: all passed, exit 0 (was $status)" test "$status" -eq 0

echo "$passed passed, $failed failed"
((failed == 0))
