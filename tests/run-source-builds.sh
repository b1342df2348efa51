#!/usr/bin/env bash
# diskgated built without libudev (-Dudev=disabled: the sysfs backend, kernel
# uevents from our own netlink socket) against the same integration tests as
# the normal build. Meson cannot build the project twice in one build
# directory, so this configures a second one:
#
#   tests/run-source-builds.sh [BUILD_DIR]     (default: build-nolibudev)
#
# Builds src/diskgated, src/diskgatectl and the udev tests there, then runs:
#   - no-libudev: diskgated needs no libudev (readelf NEEDED)
#   - uevents-udev-refused: --uevents udev is a configuration error (status 2)
#   - kernel-uevent: the parser's unit test
#   - sysfs-enumeration: the sysfs backend on a fake sysfs tree
#   - udev-block-devices: loop devices and kernel uevents, sysfs backend
#   - daemon-kernel: tests/daemon/daemon_test.sh DISKGATED DISKGATECTL kernel
#   - gate-no-bus: tests/gate/no_bus_test.sh DISKGATED
# Each prints its own output; a test exiting 77 is skipped (needs root and
# /dev/loop-control; it says why). Ends with "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-nolibudev}

if [[ ! -f $build/build.ninja ]]; then
  meson setup "$build" -Dudev=disabled >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
else
  meson configure "$build" -Dudev=disabled >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$build" src/diskgated src/diskgatectl tests/test-kernel-uevent tests/test-sysfs-enumeration \
  tests/test-block-devices ||
  { echo "0 passed, 1 failed"; exit 1; }

diskgated=$build/src/diskgated
diskgatectl=$build/src/diskgatectl
passed=0 failed=0 skipped=0

run() {
  local name=$1
  shift
  echo "=== $name: $*"
  "$@"
  local status=$?
  case $status in
    0) passed=$((passed + 1)); echo "=== $name: ok" ;;
    77) skipped=$((skipped + 1)); echo "=== $name: SKIP" ;;
    *) failed=$((failed + 1)); echo "=== $name: FAIL (status $status)" ;;
  esac
}

no_libudev() {
  local needed
  needed=$(readelf -d "$diskgated" | grep NEEDED) || return 1
  echo "$needed"
  ! grep -q libudev <<<"$needed"
}

udev_refused() {
  local out status
  out=$("$diskgated" --no-bus --uevents udev 2>&1)
  status=$?
  echo "status $status: $out"
  [[ $status -eq 2 && $out == *"built without libudev"* ]]
}

run no-libudev no_libudev
run uevents-udev-refused udev_refused
run kernel-uevent "$build/tests/test-kernel-uevent"
run sysfs-enumeration "$build/tests/test-sysfs-enumeration"
run udev-block-devices "$build/tests/test-block-devices" '~[udevd]~[libudev]'
run daemon-kernel tests/daemon/daemon_test.sh "$diskgated" "$diskgatectl" kernel
run gate-no-bus tests/gate/no_bus_test.sh "$diskgated"

line="$passed passed, $failed failed"
((skipped > 0)) && line+=", $skipped skipped"
echo "$line"
((failed == 0))
