#!/usr/bin/env bash
# The unit's CapabilityBoundingSet= and NoNewPrivileges= are enough for the
# gate's real work, and the bounding set really binds: diskgated run under
# exactly them (setpriv, as systemd's exec would set them up) gates a
# program as --user nobody on an ext4 loop device.
#
#   tests/install/unit_capabilities_test.sh UNIT DISKGATED
#
# Checks: mounted; the program runs as nobody with no capabilities; the
# mount root belongs to nobody; SIGTERM stops the program, unmounts and
# locks the mount point again (immutable); and, as a control, the same
# without CAP_SYS_ADMIN mounts nothing. (The unit's system call filter and
# device ACL need systemd itself to apply them: not covered here.)
# One line per check: "ok - ..." or "not ok - ...". Exit: 0 all passed, 1 a
# check failed, 77 skipped.
set -u -o pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/checks.sh
source "$here/../lib/checks.sh"

if [[ $# -ne 2 ]]; then
	echo "usage: $0 UNIT DISKGATED" >&2
	exit 2
fi
UNIT=$1
DISKGATED=$(readlink -f "$2")
need_root "mount, loop devices, --user"
need_loop_control
need_free_loop
need_fs ext4
need_tools setpriv mkfs.ext4 losetup lsattr chattr
need_executables "$DISKGATED"

WORK=$(mktemp -d /tmp/unit-caps.XXXXXX)
chmod 755 "$WORK"
LOOP="" DAEMON=""
cleanup() {
	local status=$?
	[[ -n $DAEMON ]] && kill -9 "$DAEMON" 2>/dev/null
	pkill -9 -f "$WORK/marker" 2>/dev/null
	mountpoint -q "$WORK/target" && umount -l "$WORK/target"
	[[ -n $LOOP ]] && losetup -d "$LOOP"
	chattr -i "$WORK/target" 2>/dev/null
	finish_cleanup "$status" "${UNIT_CAPS_TEST_KEEP:-}"
}
on_exit_cleanup

# "CAP_SYS_ADMIN CAP_KILL" -> "-all,+sys_admin,+kill"
unit_caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
[[ -n $unit_caps ]] || {
	not_ok "$UNIT has a CapabilityBoundingSet="
	exit 1
}
bounding() { echo "-all$(for cap in "$@"; do printf ',+%s' "$(tr 'A-Z' 'a-z' <<<"${cap#CAP_}")"; done)"; }
# shellcheck disable=SC2086  # the unit's list, one capability a word
all_caps=$(bounding $unit_caps)
# shellcheck disable=SC2086
no_admin=$(bounding $(tr ' ' '\n' <<<"$unit_caps" | grep -vx CAP_SYS_ADMIN))
nnp=()
grep -qx 'NoNewPrivileges=yes' "$UNIT" && nnp=(--no-new-privs)

label=caps-$$
truncate -s 32M "$WORK/disk.img"
mkfs.ext4 -q -F -L "$label" "$WORK/disk.img"
LOOP=$(losetup -f --show "$WORK/disk.img")
mounted() { grep -q " $WORK/target " /proc/self/mountinfo; }
program_pid() { pgrep -P "$DAEMON" -f "$WORK/marker" | head -n1; }
# (A function: a "bash -c" would match its own command line.)
no_program() { ! pgrep -f "$WORK/marker" >/dev/null; }
# start BOUNDING: diskgated under that bounding set, as the unit starts it.
start() {
	setpriv --bounding-set="$1" --inh-caps=-all "${nnp[@]}" -- \
		"$DISKGATED" --no-bus --uevents kernel --log-level debug --runtime-dir "$WORK/run" --user nobody \
		--source "LABEL=$label" --target "$WORK/target" --exec /bin/sh -- -c "sleep 300; : $WORK/marker" \
		>"$WORK/daemon.log" 2>&1 &
	DAEMON=$!
}
stop() {
	kill -TERM "$DAEMON" 2>/dev/null
	wait "$DAEMON" 2>/dev/null
	DAEMON=""
}
echo "# bounding set $all_caps ${nnp[*]}"

start "$all_caps"
check_cmd "under the unit's capabilities: mounted" wait_until 15 mounted
check_cmd "under the unit's capabilities: the program runs" wait_until 15 test -n "\$(program_pid)"
program=$(program_pid)
if [[ -n $program ]]; then
	check "the program runs as nobody" "65534 65534" "$(ps -o uid=,gid= -p "$program" | xargs)"
	check "the program has no capabilities (effective, permitted, bounding)" "0000000000000000 0000000000000000 0000000000000000" \
		"$(awk '/^Cap(Eff|Prm|Bnd):/ { printf "%s ", $2 }' "/proc/$program/status" | xargs)"
fi
check "the mount root belongs to nobody" 65534 "$(stat -c %u "$WORK/target")"
stop
check_cmd "SIGTERM: the program is gone" no_program
check_cmd "SIGTERM: unmounted" bash -c "! grep -q ' $WORK/target ' /proc/self/mountinfo"
check_cmd "SIGTERM: the mount point is locked again (immutable)" bash -c "lsattr -d '$WORK/target' | cut -d' ' -f1 | grep -q i"
# (A device even root may not read here is not the gate's business.)
check "the gate met no EPERM" "" "$(grep -E 'gate: .*(Operation not permitted|EPERM)' "$WORK/daemon.log")"

start "$no_admin"
sleep 2
check_cmd "control, without CAP_SYS_ADMIN: nothing is mounted" bash -c "! grep -q ' $WORK/target ' /proc/self/mountinfo"
check_cmd "control, without CAP_SYS_ADMIN: no program runs" test -z "$(program_pid)"
stop

((FAILED == 0)) || {
	echo "--- daemon log (last run)"
	tail -n 30 "$WORK/daemon.log"
}
echo "# $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
