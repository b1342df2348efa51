#!/usr/bin/env bash
# Bounded fuzzing, a part of tests/run-all.sh: tests/fuzz/run for
# FUZZ_SECONDS in all (default 70: 10 s for each of the 7 libFuzzer
# targets), after replaying tests/fuzz/regressions/. One result per target
# and one for the regression replay; ends with "N passed, N failed".
# Needs clang and its libFuzzer/sanitizer runtimes (.ci/install-deps --test:
# clang, libclang-rt-14-dev, llvm-14 for symbolized reports); the targets are
# built in build-fuzz/ (clang, ASan+UBSan), apart from the default build.
#
#   tests/run-fuzz.sh                 FUZZ_SECONDS=600 tests/run-fuzz.sh
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-70}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "FUZZ_SECONDS must be a number of seconds" >&2; echo "0 passed, 1 failed"; exit 1; }
# clang with libFuzzer and the sanitizer runtimes (libclang-rt-14-dev is only
# a Recommends of clang's packages): link a trivial target to know.
probe=$(mktemp /tmp/diskgate-fuzz-probe.XXXXXX)
if ! command -v clang++ >/dev/null ||
   ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
     clang++ -x c++ -fsanitize=fuzzer,address,undefined -o "$probe" - 2>"$probe.err"; then
  echo "run-fuzz: clang++ cannot build a libFuzzer target (bash .ci/install-deps --test installs clang and libclang-rt-14-dev):"
  cat "$probe.err" 2>/dev/null | head -5
  rm -f "$probe" "$probe.err"
  echo "0 passed, 1 failed"
  exit 1
fi
rm -f "$probe" "$probe.err"
start=$SECONDS
bash tests/fuzz/run "$seconds" 2>&1 | tee /tmp/diskgate-run-fuzz.$$.txt
status=${PIPESTATUS[0]}
last=$(tail -n1 /tmp/diskgate-run-fuzz.$$.txt)
rm -f /tmp/diskgate-run-fuzz.$$.txt
echo "=== tests/fuzz/run $seconds: exit $status, $((SECONDS - start)) s with the build"
if [[ ! $last =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then
  echo "0 passed, 1 failed"   # the build or the seeding failed
  exit 1
fi
echo "$last"
exit "$status"
