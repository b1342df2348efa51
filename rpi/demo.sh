#!/usr/bin/env bash
# The main job on a fresh Debian bookworm machine, as root: installs what is
# missing, builds, then shows the gate at work on two disk images that form
# one btrfs RAID1:
#   - diskgated starts on a private D-Bus and waits, nothing mounted;
#   - the first disk is attached: still waiting (1 of 2 members);
#   - the second disk is attached: mounted with both members, REST server up;
#   - a real restic backup goes through it;
#   - diskgatectl status; then everything is stopped and cleaned up.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $EUID -eq 0 ]] || { echo "demo: run as root (it attaches loop devices and mounts)" >&2; exit 1; }
bash .ci/install-deps --test
[[ -d build ]] || meson setup build >/dev/null
ninja -C build src/diskgated src/diskgatectl >/dev/null
grep -qw btrfs /proc/filesystems || { echo "demo: this kernel has no btrfs" >&2; exit 1; }

work=$(mktemp -d /tmp/diskgate-demo.XXXXXX)
loops=() daemon_pid="" bus_pid=""
cleanup() {
  set +e
  [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  mountpoint -q "$work/backup" && umount -l "$work/backup"
  for loop in "${loops[@]}"; do losetup -d "$loop"; done
  [[ -n $bus_pid ]] && kill "$bus_pid" 2>/dev/null
  [[ -d $work/backup ]] && chattr -i "$work/backup" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { build/src/diskgatectl --bus "$bus" "$@"; }
# Polls `diskgatectl status` until State is $1 (at most 20 s).
wait_state() {
  for _ in $(seq 200); do
    [[ $(ctl status --json 2>/dev/null | sed -n 's/.*"State":"\([a-z]*\)".*/\1/p') == "$1" ]] && return 0
    sleep 0.1
  done
  echo "demo: the gate never reached state $1" >&2
  ctl status >&2 || true
  return 1
}

step "Two 256 MiB disk images, one btrfs RAID1 filesystem"
truncate -s 256M "$work/disk-a.img" "$work/disk-b.img"
mkfs.btrfs -q -f -L demo-backup -d raid1 -m raid1 "$work/disk-a.img" "$work/disk-b.img" >/dev/null 2>&1 ||
  { echo "demo: mkfs.btrfs failed" >&2; exit 1; }
uuid=$(build/src/diskgatectl probe -o value -s UUID "$work/disk-a.img")
build/src/diskgatectl probe "$work/disk-a.img" "$work/disk-b.img"

step "A private D-Bus, and diskgated gating a REST server on UUID=$uuid"
dbus-daemon --session --fork --print-pid=1 --address="unix:path=$work/bus" >"$work/bus.pid"
bus_pid=$(cat "$work/bus.pid") bus="unix:path=$work/bus"
port=$((20000 + RANDOM % 20000))
if command -v rest-server >/dev/null; then
  program=(--exec rest-server -- --path "$work/backup" --listen "127.0.0.1:$port" --no-auth)
else
  program=(--exec rclone -- serve restic --addr "127.0.0.1:$port" "$work/backup")
fi
build/src/diskgated --bus "$bus" --uevents kernel --source "UUID=$uuid" --target "$work/backup" \
  "${program[@]}" 2> >(grep --line-buffered -E "gate:|filesystem (in)?complete: UUID=$uuid" | sed -u "s/^/    [daemon] /" >&2) &
daemon_pid=$!
wait_state waiting
ctl status
echo "target while unmounted: $(stat -c '%A' "$work/backup") $(lsattr -d "$work/backup" 2>/dev/null | cut -d' ' -f1)"

step "Attach the first disk: 1 of 2 members, nothing is mounted"
loops+=("$(losetup -f --show "$work/disk-a.img")")
sleep 0.5
ctl fs "$uuid"
mountpoint -q "$work/backup" && { echo "demo: mounted with a member missing!" >&2; exit 1; }

step "Attach the second disk: complete, mounted with both, server started"
loops+=("$(losetup -f --show "$work/disk-b.img")")
ctl wait --complete --timeout 10 "UUID=$uuid"
wait_state running
ctl status
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

step "A real restic backup through the gate"
export RESTIC_PASSWORD=demo RESTIC_REPOSITORY="rest:http://127.0.0.1:$port/"
restic init -q
restic backup -q /etc/debian_version /etc/os-release
restic snapshots --compact
restic check -q && echo "restic check: no errors"

step "Stop diskgated (SIGTERM): server stopped, filesystem unmounted"
kill "$daemon_pid"
wait "$daemon_pid" && echo "diskgated exited with status 0"
daemon_pid=""
mountpoint -q "$work/backup" && echo "still mounted!" || echo "$work/backup is not mounted"
