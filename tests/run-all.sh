#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every
# test (unit and, as root with loop devices, integration) and ends with
# "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."

bash .ci/install-deps --test || { echo "0 passed, 1 failed"; exit 1; }
if [ ! -d build ]; then
  meson setup build >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C build || { echo "0 passed, 1 failed"; exit 1; }

meson test -C build --print-errorlogs --num-processes 2 2>&1 | tee build/test-output.txt
status=${PIPESTATUS[0]}

count() { sed -n "s/^$1: *\([0-9]*\).*/\1/p" build/test-output.txt | tail -n1; }
ok=$(count Ok) fail=$(count Fail) skipped=$(count Skipped) timeout=$(count Timeout)
failed=$(( ${fail:-0} + ${timeout:-0} ))
line="${ok:-0} passed, ${failed} failed"
[ "${skipped:-0}" -gt 0 ] && line+=", ${skipped} skipped"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; line="${ok:-0} passed, 1 failed"; fi
echo "$line"
[ "$failed" -eq 0 ]
