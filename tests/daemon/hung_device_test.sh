#!/bin/bash
# Disks whose reads hang, for real: loop devices on files of a FUSE
# filesystem (hanging_fs.py) whose reads block until the test lets them go.
# With more hung disks than diskgated has probe threads, diskgated (kernel
# uevents, private D-Bus) must keep answering D-Bus, identify a good disk
# attached meanwhile, and identify the hung ones once their reads return.
#
#   tests/daemon/hung_device_test.sh DISKGATED DISKGATECTL
#
# Exit: 0 all passed, 1 a check failed, 77 skipped (meson's convention).
set -u -o pipefail

HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/checks.sh
source "$HERE/../lib/checks.sh"
diskgated_args "$@"
PYTHON=/usr/bin/python3  # Debian's, where python3-fusepy lives
HUNG=5                   # more than diskgated's 4 probe threads
TIMEOUT=10

need_root "loop devices, FUSE"
need_loop_control
[[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
grep -qw fuse /proc/filesystems || skip "the kernel has no FUSE"
"$PYTHON" -c 'import fusepy' 2>/dev/null || skip "python3-fusepy is not installed"
need_tools mkfs.ext4 losetup dbus-daemon busctl jq mountpoint

WORK=$(mktemp -d /tmp/diskgate-hung-test.XXXXXX)
SOURCE=$WORK/source
MNT=$WORK/fuse
HOLD=$WORK/hold
BUS=unix:path=$WORK/bus.sock
LOOPS=()
BUS_PID='' FS_PID='' DAEMON_PID=''

# The hung reads are let go first, so that nothing below waits on them.
cleanup() {
	local status=$? node
	trap '' INT TERM
	rm -f "$HOLD"
	if [[ -n $DAEMON_PID ]]; then
		kill "$DAEMON_PID" 2>/dev/null
		wait_until 10 eval '! kill -0 "$DAEMON_PID" 2>/dev/null' || kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	for node in "${LOOPS[@]}"; do losetup -d "$node" 2>/dev/null; done
	if mountpoint -q "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
	[[ -n $FS_PID ]] && kill "$FS_PID" 2>/dev/null && wait "$FS_PID" 2>/dev/null
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	((status != 0 || FAILED > 0)) && [[ -f $WORK/diskgated.log ]] && sed 's/^/# diskgated: /' "$WORK/diskgated.log"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# make_image FILE UUID: an 8 MiB ext4 image.
make_image() { truncate -s 8M "$1" && mkfs.ext4 -q -F -U "$2" "$1"; }
# attach FILE: sets ATTACHED to the loop device (in this shell, so that
# cleanup knows it).
attach() {
	ATTACHED=$(losetup --find --show --read-only "$1") || return 1
	LOOPS+=("$ATTACHED")
}
dg() { timeout 5 "$DISKGATECTL" --bus "$BUS" "$@"; }
identified() { dg wait "UUID=$1" --timeout "$TIMEOUT" >/dev/null; }
state_of() {
	timeout 5 busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 org.diskgate1.Manager \
		ListDevices | jq -r --arg n "$1" '.data[0][] | select(.Node.data == $n) | .State.data'
}

mkdir -p "$SOURCE" "$MNT"
HUNG_UUIDS=()
for ((i = 0; i < HUNG; i++)); do
	HUNG_UUIDS+=("$(new_uuid)")
	make_image "$SOURCE/hang$i.img" "${HUNG_UUIDS[i]}" || { not_ok "mkfs.ext4 hang$i.img"; exit 1; }
done
GOOD_UUID=$(new_uuid)
make_image "$WORK/good.img" "$GOOD_UUID" || { not_ok "mkfs.ext4 good.img"; exit 1; }

dbus-daemon --session --nofork --address="$BUS" >/dev/null 2>&1 &
BUS_PID=$!
"$PYTHON" "$HERE/hanging_fs.py" "$SOURCE" "$MNT" "$HOLD" 2>"$WORK/fuse.log" &
FS_PID=$!
wait_until "$TIMEOUT" test -e "$MNT/hang0.img" || { not_ok "the FUSE filesystem mounts: $(cat "$WORK/fuse.log")"; exit 1; }
wait_until "$TIMEOUT" test -S "$WORK/bus.sock" || { not_ok "dbus-daemon starts"; exit 1; }
touch "$HOLD"

"$DISKGATED" --bus "$BUS" --uevents kernel --log-level debug 2>"$WORK/diskgated.log" &
DAEMON_PID=$!
wait_until "$TIMEOUT" grep -q "ready:" "$WORK/diskgated.log" || { not_ok "diskgated starts"; exit 1; }

HUNG_NODES=()
for ((i = 0; i < HUNG; i++)); do
	attach "$MNT/hang$i.img" || { not_ok "losetup $MNT/hang$i.img"; exit 1; }
	HUNG_NODES+=("$ATTACHED")
done
# Every hung disk's probe is asked for (and waits in its read, or for a thread).
probing_all() {
	local node
	for node in "${HUNG_NODES[@]}"; do grep -qx "diskgated: probing ${node#/dev/}" "$WORK/diskgated.log" || return 1; done
}
check_cmd "diskgated probes the $HUNG hung disks" wait_until "$TIMEOUT" probing_all
sleep 1.5  # past the 1 s after which a job waiting behind busy workers gets a thread

attach "$WORK/good.img" || { not_ok "losetup good.img"; exit 1; }
GOOD=$ATTACHED
start=$SECONDS
check_cmd "with $HUNG hung disks, a good one attached after them is identified (wait UUID=$GOOD_UUID)" \
	identified "$GOOD_UUID"
check "it resolves to $GOOD" "$GOOD" "$(dg resolve "UUID=$GOOD_UUID")"
check_cmd "and soon: within 5 s of its attach" test $((SECONDS - start)) -le 5
for node in "${HUNG_NODES[@]}"; do
	check "meanwhile $node is unprobed, its read still hanging" unprobed "$(state_of "$node")"
done
objects_answer() {
	timeout 5 busctl --address="$BUS" call org.diskgate1 /org/diskgate1 org.freedesktop.DBus.ObjectManager \
		GetManagedObjects >/dev/null
}
check_cmd "the ObjectManager answers meanwhile" objects_answer
threads=$(ls "/proc/$DAEMON_PID/task" | wc -l)
check_cmd "probe threads stay bounded: $threads threads for $HUNG hung disks and one good" \
	test "$threads" -le $((HUNG + 2))

rm -f "$HOLD"
for ((i = 0; i < HUNG; i++)); do
	check_cmd "released, ${HUNG_NODES[i]} is identified (UUID=${HUNG_UUIDS[i]})" \
		identified "${HUNG_UUIDS[i]}"
	check "UUID=${HUNG_UUIDS[i]} resolves to ${HUNG_NODES[i]}" "${HUNG_NODES[i]}" "$(dg resolve "UUID=${HUNG_UUIDS[i]}")"
done
check_cmd "diskgated still runs" kill -0 "$DAEMON_PID"

echo "# $PASSED passed, $FAILED failed"
((FAILED == 0))
