#!/usr/bin/env bash
# The whole project built with AddressSanitizer and UndefinedBehaviorSanitizer
# (clang, -Db_sanitize=address,undefined, in build-asan/) and the WHOLE meson
# suite run on it: unit tests, and as root with loop devices the integration
# tests, where diskgated, the gate and diskgatectl run sanitized against real
# loop devices, a real dbus-daemon, udevd and restic (the fault suite too).
#
#   tests/run-sanitizers.sh [BUILD_DIR]        (default: build-asan)
#
# Every sanitized process writes its reports to REPORTS/report.PID
# (ASAN_OPTIONS/UBSAN_OPTIONS log_path), so that a report from a daemon
# whose stderr a test script swallows is caught too; UBSan halts on its
# first error (halt_on_error=1), LeakSanitizer is on (its suppressions, leaks
# in other projects' libraries, are in tests/sanitizers/lsan.supp). After the
# suite, any report file fails the run and is printed. Tests that cannot run
# sanitized skip with the reason when DISKGATE_SANITIZED=1 (set here).
#
# clang, not gcc: with gcc's separate libasan and libubsan, UBSan ignores
# log_path and prints to stderr only, where a test that captures a daemon's
# stderr would hide it; clang's runtime writes both to log_path.
#
# Ends with "N passed, N failed[, N skipped]": the suite counted per test case
# (tests/meson-results), plus one result "no sanitizer report".
# MESON_TEST_ARGS adds arguments to meson test (e.g. a suite or test names).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
start=$SECONDS

bash .ci/install-deps --test || { echo "0 passed, 1 failed"; exit 1; }
# (b_lundef=false: meson's -Wl,--no-undefined fights clang's sanitizer runtimes.)
options=(-Db_sanitize=address,undefined -Db_lundef=false)
if [[ -f $build/build.ninja ]] && ! grep -q 'clang++' "$build/build.ninja"; then
  echo "=== $build was set up with another compiler: setting it up again with clang"
  rm -rf "$build"
fi
if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup "$build" "${options[@]}" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
else
  meson configure "$build" "${options[@]}" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$build" || { echo "0 passed, 1 failed"; exit 1; }
echo "=== $build built with ASan+UBSan ($((SECONDS - start)) s)"

reports=$(mktemp -d /tmp/diskgate-sanitizers.XXXXXX)
# Sanitized programs also run as nobody (the D-Bus policy and capability
# tests): anyone may write a report here.
chmod 1777 "$reports"
export ASAN_OPTIONS="log_path=$reports/report:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="log_path=$reports/report:halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="log_path=$reports/report:suppressions=$PWD/tests/sanitizers/lsan.supp"
if [[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then   # llvm-14: symbolized stacks
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
export DISKGATE_SANITIZED=1

suite_start=$SECONDS
# Slower under ASan: the tests' own time limits are stretched threefold.
# shellcheck disable=SC2086
meson test -C "$build" --print-errorlogs --num-processes 2 --timeout-multiplier 3 ${MESON_TEST_ARGS:-} 2>&1 |
  tee "$build/test-output.txt"
status=${PIPESTATUS[0]}
echo "=== meson suite under ASan+UBSan: exit $status, $((SECONDS - suite_start)) s"

echo "=== per test case"
python3 tests/meson-results "$build" | tee "$build/results.txt"
last=$(tail -n1 "$build/results.txt")
passed=0 failed=1 skipped=0
if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
  passed=${BASH_REMATCH[1]} failed=${BASH_REMATCH[2]} skipped=${BASH_REMATCH[4]:-0}
fi
if [[ $status -ne 0 && $failed -eq 0 ]]; then failed=1; fi

# LeakSanitizer writes a "Suppressions used:" table (tests/sanitizers/
# lsan.supp) even when nothing else was found: such a file alone is counted,
# not a report. Anything else in a file is one.
suppression_only() {
  ! grep -qvE '^(-+|Suppressions used:|  count +bytes template| +[0-9]+ +[0-9]+ .*|)$' "$1"
}
found=() suppressed=0
while IFS= read -r file; do
  if suppression_only "$file"; then
    suppressed=$((suppressed + 1))
  else
    found+=("$file")
  fi
done < <(find "$reports" -type f -name 'report*' | sort)
if ((suppressed > 0)); then
  echo "=== suppressed leaks (tests/sanitizers/lsan.supp) in $suppressed process(es):"
  find "$reports" -type f -name 'report*' -exec cat {} + |
    awk '$1 ~ /^[0-9]+$/ && NF == 3 { count[$3] += $1; bytes[$3] += $2 }
         END { for (t in count) printf "    %s: %d leak(s), %d bytes\n", t, count[t], bytes[t] }'
fi
if ((${#found[@]} == 0)); then
  passed=$((passed + 1))
  echo "=== no sanitizer report"
  rm -rf "$reports"
else
  failed=$((failed + 1))
  echo "=== FAILED: ${#found[@]} sanitizer report(s) in $reports"
  for report in "${found[@]}"; do
    echo "--- $report"
    head -n 80 "$report"
  done
fi
echo "=== $((SECONDS - start)) s in all"

line="$passed passed, $failed failed"
((skipped > 0)) && line+=", $skipped skipped"
echo "$line"
((failed == 0))
