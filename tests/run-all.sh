#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every
# test (unit and, as root with loop devices, integration) and ends with
# "N passed, N failed[, N skipped]", adding up:
#   - the meson suite of the default build (build/), counted per test case:
#     each TEST_CASE of a Catch2 binary (TAP, tests/tap_reporter.cc) and each
#     shell-script test (tests/meson-results reads meson's logs);
#   - tests/run-source-builds.sh: a build without libudev (our own uevent
#     source) against the kernel-mode daemon and gate tests;
#   - tests/run-static.sh: the fully static x86_64 binaries against the
#     no-bus and gokrazy-configuration gate tests;
#   - tests/run-deb.sh: the amd64 .deb (rpi/make-deb), lintian, and the
#     package installed, used, removed and purged on this machine;
#   - tests/run-fuzz.sh: every libFuzzer target for a bounded time
#     (FUZZ_SECONDS, default 70 in all) and the regression inputs.
set -uo pipefail
cd "$(dirname "$0")/.."

# How long each part took, printed before the last line: where CI's time goes.
timings=()
took() { timings+=("$1: $((SECONDS - $2)) s"); }
started=$SECONDS
bash .ci/install-deps --test || { echo "0 passed, 1 failed"; exit 1; }
took "install" "$started"
started=$SECONDS
if [ ! -d build ]; then
  meson setup build >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C build || { echo "0 passed, 1 failed"; exit 1; }

meson test -C build --print-errorlogs --num-processes 2 2>&1 | tee build/test-output.txt
status=${PIPESTATUS[0]}

# meson's summary counts binaries; count the cases from its logs instead.
echo "=== meson suite, per test case"
python3 tests/meson-results build | tee build/part-output.txt
last=$(tail -n1 build/part-output.txt)
passed=0 failed=1 skipped=0
if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
  passed=${BASH_REMATCH[1]} failed=${BASH_REMATCH[2]} skipped=${BASH_REMATCH[4]:-0}
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
took "build and meson suite" "$started"

# Each further part ends with its own "N passed, N failed[, N skipped]".
for part in tests/run-source-builds.sh tests/run-static.sh tests/run-deb.sh tests/run-fuzz.sh; do
  echo "=== $part"
  started=$SECONDS
  bash "$part" 2>&1 | tee build/part-output.txt
  part_status=${PIPESTATUS[0]}
  last=$(tail -n1 build/part-output.txt)
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
    passed=$(( passed + BASH_REMATCH[1] ))
    failed=$(( failed + BASH_REMATCH[2] ))
    skipped=$(( skipped + ${BASH_REMATCH[4]:-0} ))
    if [ "$part_status" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then failed=$(( failed + 1 )); fi
  else
    failed=$(( failed + 1 ))
  fi
  took "$part" "$started"
done

echo "=== time taken"
printf '%s\n' "${timings[@]}"

line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line+=", $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ]
