#!/usr/bin/env bash
# The static x86_64 build and its tests: rpi/build-static x86_64 (installs
# what is missing), then the gokrazy-style tests on those binaries:
# tests/gate/no_bus_test.sh and tests/gate/static_test.sh (root, loop
# devices, btrfs, restic; each skips otherwise), and diskgatectl's probe
# error handling. Ends with "N passed, N failed[, N skipped]" (one per test
# script); exit 0 only when none failed.
#
#   tests/run-static.sh
#
# STATIC_AARCH64=1 also builds the aarch64 binaries and runs
# rpi/check-aarch64 under qemu-user (several minutes more).
set -uo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT" || exit 1

passed=0 failed=0 skipped=0
# run NAME COMMAND...: one test script; 0 passed, 77 skipped, else failed.
run() {
	local name=$1 status start=$SECONDS
	shift
	echo "=== $name"
	"$@"
	status=$?
	case $status in
	0) passed=$((passed + 1)) && echo "=== $name: passed ($((SECONDS - start)) s)" ;;
	77) skipped=$((skipped + 1)) && echo "=== $name: skipped" ;;
	*) failed=$((failed + 1)) && echo "=== $name: FAILED (status $status, $((SECONDS - start)) s)" ;;
	esac
}

start=$SECONDS
if ! out=$(bash rpi/build-static x86_64 | tail -n 1); then
	echo "=== rpi/build-static x86_64: FAILED"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "=== rpi/build-static x86_64: $out ($((SECONDS - start)) s)"
passed=$((passed + 1))

run "no-bus (static diskgated)" bash tests/gate/no_bus_test.sh "$out/diskgated"
run "static gate (gokrazy config, btrfs RAID1, restic)" bash tests/gate/static_test.sh "$out/diskgated"
run "probe errors (static diskgatectl)" bash tests/cli/probe_errors_test.sh "$out/diskgatectl" "$ROOT/fixtures"
# diskgatectl without D-Bus: bus commands say so and exit 4 (usage).
bus_command() {
	local text status
	text=$("$out/diskgatectl" status 2>&1)
	status=$?
	echo "$text"
	[[ $status == 4 && $text == *"no D-Bus support"* ]]
}
run "diskgatectl status: no D-Bus support, exit 4" bus_command

if [[ -n ${STATIC_AARCH64:-} ]]; then
	start=$SECONDS
	if arm=$(bash rpi/build-static aarch64 | tail -n 1); then
		echo "=== rpi/build-static aarch64: $arm ($((SECONDS - start)) s)"
		passed=$((passed + 1))
		run "aarch64 under qemu-user" bash rpi/check-aarch64 "$arm" "$out/diskgatectl"
	else
		echo "=== rpi/build-static aarch64: FAILED"
		failed=$((failed + 1))
	fi
fi

echo "# total $((SECONDS)) s"
if ((skipped)); then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
((failed == 0))
