#!/bin/bash
# The static diskgated (rpi/build-static: no D-Bus, no libudev) as gokrazy
# runs it: the wrapper's env.txt as the environment and its flags.txt (with
# "--" on top) as the arguments, taken from rpi/gokrazy-env.txt and
# rpi/gokrazy-flags.txt with the UUID, the target and the listen address
# replaced by this test's. A two-disk btrfs RAID1 on loop devices, a real
# REST server (rest-server, else rclone serve restic through --exec) and real
# restic. Without a bus, everything is observed from outside: mountinfo, the
# daemon's children, the TCP port, and systemd's notify protocol (a datagram
# socket in NOTIFY_SOCKET).
#
#   tests/gate/static_test.sh DISKGATED
#
# Checks: the binary is static and refuses --bus; with one member nothing
# is mounted and the target is locked; with both, btrfs is mounted and the
# server runs (READY=1 and STATUS= on the notify socket); restic init, backup,
# check; a member removed (kernel remove uevent): the server stopped and the
# target unmounted; re-added: running again, the snapshot still there;
# SIGTERM: STOPPING=1, exit 0, nothing mounted, the target locked.
# One line per check: "ok - ..." or "not ok - ...". Exit: 0 all passed, 1 a
# check failed, 77 skipped ("SKIP: reason"). STATIC_TEST_KEEP=1 keeps the
# work directory.
set -u -o pipefail

here=$(dirname "$(readlink -f "$0")")
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/checks.sh
source "$here/../lib/checks.sh"
# shellcheck source=../lib/gate.sh
source "$here/../lib/gate.sh"

if [[ $# -ne 1 ]]; then
	echo "usage: $0 DISKGATED" >&2
	exit 2
fi
DISKGATED=$(readlink -f "$1")
TIMEOUT=15  # seconds for anything the daemon should do "at once" (2 busy cores)

need_root "loop devices, mount"
need_loop_control
need_fs btrfs
need_restic_server
need_tools mkfs.btrfs btrfs losetup lsattr chattr ss timeout file python3
need_free_loop
need_executables "$DISKGATED"
GOKRAZY_ENV=$root/rpi/gokrazy-env.txt GOKRAZY_FLAGS=$root/rpi/gokrazy-flags.txt
[[ -f $GOKRAZY_ENV && -f $GOKRAZY_FLAGS ]] || skip "rpi/gokrazy-env.txt or rpi/gokrazy-flags.txt is missing"

WORK=$(mktemp -d /tmp/gate-static.XXXXXX)
LOOPS=$WORK/loops PROGRAMS=$WORK/programs
: >"$LOOPS"
: >"$PROGRAMS"
DAEMON_PID='' RECEIVER_PID=''
export RESTIC_PASSWORD=static-test-password RCLONE_CONFIG=/dev/null XDG_CACHE_HOME=$WORK/cache

cleanup() {
	local status=$? deadline
	trap '' INT TERM
	if [[ -n $DAEMON_PID ]] && ! has_exited "$DAEMON_PID"; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		deadline=$((SECONDS + 15))
		while ! has_exited "$DAEMON_PID" && ((SECONDS < deadline)); do sleep 0.1; done
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	[[ -n $RECEIVER_PID ]] && kill "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null
	kill_ours_and_unmount
	detach_our_loops
	chattr -R -i "$WORK" 2>/dev/null
	((FAILED)) && status=1
	finish_cleanup "$status" "${STATIC_TEST_KEEP:-}" "(daemon log daemon.log)"
}
on_exit_cleanup

# The program: diskgated's child (its own process group), remembered for cleanup.
program_pid() {
	local pid
	pid=$(pgrep -P "$DAEMON_PID" | head -n1)
	[[ -n $pid ]] && echo "$pid" >>"$PROGRAMS"
	echo "${pid:-0}"
}
program_runs() { [[ $(program_pid) != 0 ]]; }
no_program() { [[ $(program_pid) == 0 ]]; }
mounted_btrfs() { [[ $(mounts_at "$TG" | awk '{print $1}' | paste -sd' ') == btrfs ]]; }
notified() { grep -q "$1" "$WORK/notify.txt" 2>/dev/null; }
show_log() { tail -n 15 "$WORK/daemon.log" | sed 's/^/#   log: /'; }
# restic_q ARGS...: quiet; its output goes to restic.log, shown on failure.
restic_q() {
	echo "\$ restic $*" >>"$WORK/restic.log"
	restic_ "$@" >>"$WORK/restic.log" && return 0
	tail -n 10 "$WORK/restic.log" | sed 's/^/#   restic: /'
	return 1
}
# locked DIR, quietly false while DIR does not exist.
is_locked() { [[ -e $1 ]] && locked "$1"; }
# gone PID: exited (not a zombie of ours: the program is diskgated's child).
gone() { ! kill -0 "$1" 2>/dev/null || has_exited "$1"; }

echo "# REST server: $SERVER; work directory $WORK"

# ---- the binary ----
DESCRIPTION=$(file -b "$DISKGATED")
check_cmd "diskgated is statically linked ($DESCRIPTION)" grep -q "statically linked" <<<"$DESCRIPTION"
BUS_OUT=$("$DISKGATED" --bus system 2>&1)
BUS_STATUS=$?
if [[ $BUS_STATUS == 2 && $BUS_OUT == *"built without D-Bus"* ]]; then
	ok "--bus is a configuration error (status 2): $BUS_OUT"
else
	not_ok "--bus is a configuration error, status 2, 'built without D-Bus' (status $BUS_STATUS: $BUS_OUT)"
fi

# ---- the disks and the gokrazy configuration ----
PORT=$(free_port) || { not_ok "a free TCP port on 127.0.0.1"; exit 1; }
BTRFS_UUID=$(new_uuid)
truncate -s 128M "$WORK/r1.img" "$WORK/r2.img"
if ! mkfs.btrfs -q -f -U "$BTRFS_UUID" -L "dg-static-$(rand_hex 3)" -d raid1 -m raid1 "$WORK/r1.img" "$WORK/r2.img" \
	>"$WORK/mkfs.err" 2>&1; then
	not_ok "mkfs.btrfs -d raid1 -m raid1 on two 128 MiB images: $(cat "$WORK/mkfs.err")"
	exit 1
fi
mkdir -p "$WORK/src/sub"
for i in 1 2 3; do head -c $((i * 50000)) /dev/urandom >"$WORK/src/file$i"; done
seq 1 10000 >"$WORK/src/sub/numbers.txt"

# gokrazy's /perm/restic becomes $TG; the UUID is ours.
TG=$WORK/perm/restic
mkdir -p "$WORK/perm"
sed -e "s|^MNT_SOURCE=UUID=.*|MNT_SOURCE=UUID=$BTRFS_UUID|" -e "s|/perm/restic|$TG|g" "$GOKRAZY_ENV" >"$WORK/env.txt"
PREFIX=(--log-level debug --runtime-dir "$WORK/run")
if [[ $SERVER == rest-server ]]; then
	# The repository in $TG, on 127.0.0.1:PORT; --no-auth: no .htpasswd here.
	sed -e "s|/perm/restic|$TG|g" -e "s|^:8000\$|127.0.0.1:$PORT|" "$GOKRAZY_FLAGS" >"$WORK/flags.txt"
	echo --no-auth >>"$WORK/flags.txt"
else
	# rclone is not the wrapper's program: named with --exec, before "--".
	echo "# rest-server is not installed: rclone serve restic through --exec"
	PREFIX+=(--exec rclone)
	printf '%s\n' -- serve restic --addr "127.0.0.1:$PORT" "$TG" >"$WORK/flags.txt"
fi
mapfile -t ENV_LINES <"$WORK/env.txt"
mapfile -t FLAG_LINES <"$WORK/flags.txt"
check "env.txt: gokrazy's with our UUID and target" \
	"MNT_SOURCE=UUID=$BTRFS_UUID MNT_TARGET=$TG MNT_FSTYPE=btrfs GLIBC_TUNABLES=glibc.malloc.tcache_count=0" \
	"${ENV_LINES[*]}"
check "flags.txt starts with --" -- "${FLAG_LINES[0]}"

# systemd's side of sd_notify: an abstract datagram socket, every message
# appended to notify.txt (a line per message, newlines as '|').
NOTIFY_NAME=@diskgate-static-test-$$-$(rand_hex 4)
python3 - "$NOTIFY_NAME" "$WORK/notify.txt" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1][1:])
s.settimeout(600)
with open(sys.argv[2], "a", buffering=1) as out:
    out.write("bound\n")
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
EOF
RECEIVER_PID=$!
wait_until 5 notified bound || not_ok "the notify receiver binds $NOTIFY_NAME"

# ---- one member: nothing mounted ----
attach "$WORK/r1.img" >/dev/null || { not_ok "attach r1.img"; exit 1; }
env -i PATH="$PATH" HOME="$WORK" RCLONE_CONFIG=/dev/null XDG_CACHE_HOME="$WORK/cache" NOTIFY_SOCKET="$NOTIFY_NAME" \
	"${ENV_LINES[@]}" "$DISKGATED" "${PREFIX[@]}" "${FLAG_LINES[@]}" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
if wait_until "$TIMEOUT" notified "READY=1"; then
	ok "READY=1 on NOTIFY_SOCKET ($(grep -m1 READY=1 "$WORK/notify.txt"))"
else
	not_ok "READY=1 on NOTIFY_SOCKET"
	show_log
fi
check_cmd "it runs without D-Bus, uevents from the kernel" \
	grep -qE "starting: uevents from kernel( \([a-z]+\))?, no D-Bus" "$WORK/daemon.log"
sleep 1  # give it the chance to do wrong
check_cmd "one member of two: nothing mounted on the target" nothing_mounted "$TG"
check_cmd "one member of two: no program runs" no_program
check_cmd "one member of two: the target is locked (mode 000, immutable)" is_locked "$TG"

# ---- both: mounted, the server runs, restic works ----
L2=$(attach "$WORK/r2.img") || { not_ok "attach r2.img"; exit 1; }
if wait_until "$TIMEOUT" mounted_btrfs; then
	ok "both members: one btrfs mount on MNT_TARGET"
else
	not_ok "both members: one btrfs mount on MNT_TARGET ($(mounts_at "$TG"))"
	show_log
fi
wait_until "$TIMEOUT" program_runs
P1=$(program_pid)
EXPECTED_CMD=$([[ $SERVER == rest-server ]] && command -v rest-server || command -v rclone)
EXPECTED_CMD="$EXPECTED_CMD ${FLAG_LINES[*]:1}"
check "the program's command line is flags.txt after --" "$EXPECTED_CMD" \
	"$(tr '\0' ' ' 2>/dev/null <"/proc/$P1/cmdline" | sed 's/ $//')"
check_cmd "STATUS= on NOTIFY_SOCKET says running" wait_until "$TIMEOUT" notified "STATUS=running"
if wait_until "$TIMEOUT" port_open "$PORT"; then
	ok "$SERVER listens on 127.0.0.1:$PORT"
else
	not_ok "$SERVER listens on 127.0.0.1:$PORT"
	show_log
fi
check_cmd "restic init" restic_q init
check_cmd "restic backup" restic_q backup "$WORK/src"
check_cmd "restic check" restic_q check
SNAPSHOT=$(restic_ snapshots --json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])' 2>/dev/null)
[[ -n $SNAPSHOT ]] && ok "restic lists the snapshot ${SNAPSHOT:0:8}" || not_ok "restic lists a snapshot"
check_cmd "the repository is on the mounted btrfs ($TG/config)" test -f "$TG/config"

# ---- a member removed: stopped and unmounted; re-added: running again ----
uevent "$L2" remove
if wait_until "$TIMEOUT" gone "$P1" && wait_until "$TIMEOUT" no_program; then
	ok "remove uevent of $L2: the program (pid $P1) is stopped"
else
	not_ok "remove uevent of $L2: the program (pid $P1) is stopped"
	show_log
fi
if wait_until "$TIMEOUT" nothing_mounted "$TG"; then
	ok "remove uevent of $L2: the target is unmounted"
else
	not_ok "remove uevent of $L2: the target is unmounted ($(mounts_at "$TG"))"
	show_log
fi
check_cmd "remove uevent of $L2: the target is locked again" wait_until "$TIMEOUT" is_locked "$TG"
check_cmd "remove uevent of $L2: the server no longer answers" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null"

uevent "$L2" add
if wait_until "$TIMEOUT" mounted_btrfs && wait_until "$TIMEOUT" program_runs; then
	ok "add uevent of $L2: mounted and running again (pid $(program_pid))"
else
	not_ok "add uevent of $L2: mounted and running again"
	show_log
fi
P2=$(program_pid)
[[ $P2 != 0 && $P2 != "$P1" ]] && ok "a new program (pid $P2)" || not_ok "a new program (pid $P2, the first was $P1)"
wait_until "$TIMEOUT" port_open "$PORT" || not_ok "$SERVER listens again on 127.0.0.1:$PORT"
check "after the return: the snapshot is still there" "$SNAPSHOT" \
	"$(restic_ snapshots --json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])' 2>/dev/null)"
check_cmd "after the return: restic backup again" restic_q backup "$WORK/src/sub"

# ---- SIGTERM ----
kill -TERM "$DAEMON_PID"
if wait_until 12 has_exited "$DAEMON_PID"; then  # default --stop-timeout 10 + 2 s
	wait "$DAEMON_PID"
	check "SIGTERM: diskgated exits with status 0" 0 "$?"
else
	not_ok "SIGTERM: diskgated exits within 12 s"
	show_log
fi
DAEMON_PID=''
check_cmd "SIGTERM: STOPPING=1 on NOTIFY_SOCKET" wait_until 5 notified "STOPPING=1"
check_cmd "SIGTERM: the program (pid $P2) is gone" gone "$P2"
check_cmd "SIGTERM: nothing mounted on the target" nothing_mounted "$TG"
check_cmd "SIGTERM: the target is locked" is_locked "$TG"
((FAILED)) && show_log
echo "# $PASSED passed, $FAILED failed"
exit $((FAILED > 0))
