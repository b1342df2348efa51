#!/usr/bin/env bash
# The gate as gokrazy runs it: no udevd, no D-Bus, the wrapper's env.txt as
# the environment and its flags.txt (with "--" on top) as the arguments.
# diskgated must find no system bus, say so, and gate the program anyway.
#   no_bus_test.sh DISKGATED
set -uo pipefail
DISKGATED=$1
skip() { echo "SKIP: $*"; exit 77; }
[[ $EUID -eq 0 ]] || skip "needs root (loop devices, mount)"
[[ -e /dev/loop-control ]] || skip "/dev/loop-control is missing"
grep -qw ext4 /proc/filesystems || skip "the kernel has no ext4"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 is not installed"

work=$(mktemp -d /tmp/no-bus-test.XXXXXX)
loop="" daemon=""
cleanup() {
  [[ -n $daemon ]] && kill -9 "$daemon" 2>/dev/null
  pkill -9 -f "$work/marker" 2>/dev/null
  mountpoint -q "$work/perm/backup" && umount -l "$work/perm/backup"
  [[ -n $loop ]] && losetup -d "$loop"
  chattr -i "$work/perm/backup" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
failed=0
check() {
  local what=$1
  shift
  if "$@"; then echo "ok - $what"; else echo "not ok - $what"; failed=1; fi
}
# wait_for SECONDS COMMAND...: polls until COMMAND succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.05; done
}
mounted() { grep -q " $work/perm/backup " /proc/self/mountinfo; }
# The program is diskgated's child (diskgated's own arguments hold the marker too).
program_runs() { pgrep -P "$daemon" -f "$work/marker" >/dev/null; }

label=nobus-$$
truncate -s 32M "$work/disk.img"
mkfs.ext4 -q -F -L "$label" "$work/disk.img"
printf 'MNT_SOURCE=LABEL=%s\nMNT_TARGET=%s\n' "$label" "$work/perm/backup" >"$work/env.txt"
# flags.txt: "--", then the program's own arguments (here a stand-in for
# rest-server: a shell that stays up).
printf '%s\n' -- -c "sleep 300; : $work/marker" >"$work/flags.txt"
mapfile -t env_lines <"$work/env.txt"
mapfile -t flag_lines <"$work/flags.txt"
loop=$(losetup -f --show "$work/disk.img")

given_tunables=glibc.malloc.mmap_threshold=1048576
env -i PATH="$PATH" DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/no-such-bus" GLIBC_TUNABLES=$given_tunables "${env_lines[@]}" \
  "$DISKGATED" --uevents kernel --exec /bin/sh "${flag_lines[@]}" 2>"$work/log" &
daemon=$!
check "it mounts the source from env.txt on MNT_TARGET" wait_for 10 mounted
check "the program runs with flags.txt's arguments" wait_for 10 program_runs
# (a -Ddbus=disabled build says it was built without D-Bus)
check "it says it runs without D-Bus" grep -qE "no system bus|built without D-Bus" "$work/log"
program=$(pgrep -P "$daemon" -f "$work/marker" | head -n1)
environment_of() { tr '\0' '\n' <"/proc/$1/environ"; }
# diskgated runs as started (no self re-exec with a changed environment), and
# the program gets the environment diskgated was given.
check "diskgated's environment is the one it was given" \
  grep -qx "GLIBC_TUNABLES=$given_tunables" <(environment_of "$daemon")
check "the program gets GLIBC_TUNABLES as diskgated was given it" \
  grep -qx "GLIBC_TUNABLES=$given_tunables" <(environment_of "$program")
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=""
check "SIGTERM: exit status 0" test "$status" -eq 0
gone() { ! kill -0 "$1" 2>/dev/null; }
check "the program was found" test -n "$program"
check "SIGTERM: the program is gone" gone "$program"
check "SIGTERM: nothing is mounted" bash -c "! grep -q ' $work/perm/backup ' /proc/self/mountinfo"
[[ $failed -eq 0 ]] || { echo "--- daemon log"; cat "$work/log"; }
exit $failed
