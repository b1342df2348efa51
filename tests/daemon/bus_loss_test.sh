#!/bin/bash
# diskgated outlives its bus: a private dbus-daemon is killed (-9) under a
# gate that has an ext4 loop device mounted and a program running on it.
#
#   tests/daemon/bus_loss_test.sh DISKGATED DISKGATECTL
#
# BUS_LOSS_KEEP=1 keeps the work directory (daemon log).
#
# Checks: the daemon, the program (same pid, still writing its heartbeat
# into the mount) and the mount stay; the loss is logged once; while the bus
# is down a member's removal (a kernel remove uevent) still stops the program
# and unmounts, and its return mounts and starts it again; reconnecting backs
# off (2, 4, ... s); a bus started again at the same address gets
# org.diskgate1 back, with every object announced anew (InterfacesAdded);
# a second loss is survived too; SIGTERM at the end exits 0.
# One line per check: "ok - ..." or "not ok - ...".
# Exit: 0 all passed, 1 a check failed, 77 skipped (meson's convention).
set -u -o pipefail

# shellcheck source=../lib/checks.sh
source "$(dirname "$(readlink -f "$0")")/../lib/checks.sh"

diskgated_args "$@"
TIMEOUT=15    # seconds for anything the daemon should do "at once" (2 busy cores)
RECONNECT=35  # the longest retry interval (30 s) and some

need_root "loop devices, mount"
need_loop_control
need_fs ext4
need_tools mkfs.ext4 losetup chattr dbus-daemon dbus-send busctl jq mountpoint
need_free_loop
need_executables "$DISKGATED" "$DISKGATECTL"

WORK=$(mktemp -d /tmp/bus-loss.XXXXXX)
SOCKET=$WORK/bus.sock
BUS=unix:path=$SOCKET
TARGET=$WORK/mnt
LOG=$WORK/daemon.log
SIGNALS=$WORK/signals.json
BUS_PID='' DAEMON_PID='' LOOP='' MONITOR_PID=''
PROGRAMS=$WORK/programs  # every program pid seen, for cleanup
: >"$PROGRAMS"

# ours PID: still a process of this run (a pid we waited for may be reused).
ours() { [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") == *"$WORK"* ]]; }

# Stops what we started, by pid; unmounts; detaches our loop device; lifts
# the immutable attribute the gate sets on the bare target before rm.
cleanup() {
	local status=$? pid deadline
	trap '' INT TERM
	[[ -n $MONITOR_PID ]] && kill "$MONITOR_PID" 2>/dev/null && wait "$MONITOR_PID" 2>/dev/null
	if [[ -n $DAEMON_PID ]] && ! has_exited "$DAEMON_PID"; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		deadline=$((SECONDS + 15))
		while ! has_exited "$DAEMON_PID" && ((SECONDS < deadline)); do sleep 0.1; done
		kill -KILL "$DAEMON_PID" 2>/dev/null
	fi
	[[ -n $DAEMON_PID ]] && wait "$DAEMON_PID" 2>/dev/null
	# A program outlives a daemon killed with -9: its own process group.
	while read -r pid; do
		ours "$pid" && kill -KILL -- "-$pid" 2>/dev/null
	done <"$PROGRAMS"
	if mountpoint -q "$TARGET" 2>/dev/null; then
		umount "$TARGET" 2>/dev/null || umount -l "$TARGET"
	fi
	if [[ -n $LOOP && $(losetup -n -O BACK-FILE "$LOOP" 2>/dev/null) == "$WORK"/* ]]; then
		losetup -d "$LOOP"
	fi
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	chattr -i "$TARGET" 2>/dev/null
	finish_cleanup "$status" "${BUS_LOSS_KEEP:-}"
}
on_exit_cleanup

# A bus at $BUS (the same address every time: a restarted system bus).
start_bus() {
	rm -f "$SOCKET"
	if ! dbus-daemon --session --fork --print-pid=1 --address="$BUS" >"$WORK/bus.pid" 2>"$WORK/bus.err"; then
		echo "not ok - dbus-daemon starts: $(cat "$WORK/bus.err")"
		exit 1
	fi
	BUS_PID=$(<"$WORK/bus.pid")
}
kill_bus() {
	kill -KILL "$BUS_PID"
	wait_until "$TIMEOUT" has_exited "$BUS_PID"
	BUS_PID=''
}

mounted() { mountpoint -q "$TARGET"; }
not_mounted() { ! mounted; }
# The program: diskgated's child whose arguments hold our marker.
program() { pgrep -P "$DAEMON_PID" -f "$WORK/marker" | head -n1; }
program_runs() { [[ -n $(program) ]]; }
no_program() { [[ -z $(program) ]]; }
alive() { ! has_exited "$DAEMON_PID"; }
heartbeat() { cat "$TARGET/heartbeat" 2>/dev/null; }
# The program writes the time into the mount every 0.2 s: it is still at work.
heartbeat_moves() {
	local before
	before=$(heartbeat)
	[[ -n $before ]] && wait_until 5 eval '[[ $(heartbeat) != "$before" ]]'
}
lost_count() { grep -c "D-Bus: lost the connection" "$LOG"; }
reconnected_count() { grep -c "D-Bus: connected again" "$LOG"; }
status_answers() { "$DISKGATECTL" --bus "$BUS" status >/dev/null 2>&1; }
# The retry intervals logged so far, in order ("2 4 8").
retries() { sed -n 's/.*D-Bus: cannot connect yet.*next try in \([0-9]*\) s.*/\1/p' "$LOG" | paste -sd' '; }
retry_lines() { grep -c "D-Bus: cannot connect yet" "$LOG"; }
dump_log() { tail -n 25 "$LOG" | sed 's/^/#   log: /'; }

# ---- a gate on an ext4 loop device, over a private bus ----

start_bus
UUID=$(new_uuid)
truncate -s 64M "$WORK/disk.img"
mkfs.ext4 -q -F -U "$UUID" "$WORK/disk.img" || { echo "not ok - mkfs.ext4"; exit 1; }
LOOP=$(losetup --find --show "$WORK/disk.img") || { echo "not ok - losetup"; exit 1; }
DEVICE_PATH=/org/diskgate1/devices/${LOOP#/dev/}

# JOURNAL_STREAM naming the log file: lines carry their level as <N>.
: >"$LOG"
JOURNAL_STREAM=$(stat -c %d:%i "$LOG") \
	"$DISKGATED" --bus "$BUS" --uevents kernel --source "UUID=$UUID" --target "$TARGET" --stop-timeout 5 \
	--exec /bin/sh -- -c "while :; do date +%s.%N >$TARGET/heartbeat; sleep 0.2; done; : $WORK/marker" \
	>>"$LOG" 2>&1 &
DAEMON_PID=$!

check_cmd "diskgated answers on the bus" wait_until "$TIMEOUT" status_answers
check_cmd "it mounts UUID=$UUID on the target" wait_until "$TIMEOUT" mounted
check_cmd "the program runs" wait_until "$TIMEOUT" program_runs
check_cmd "the program writes into the mount" wait_until "$TIMEOUT" heartbeat_moves
PROGRAM=$(program)
echo "${PROGRAM:-}" >>"$PROGRAMS"
if ((FAILED > 0)); then
	dump_log
	exit 1
fi

# ---- the bus goes away ----

kill_bus
check_cmd "bus killed: the loss is logged" wait_until "$TIMEOUT" eval '(( $(lost_count) >= 1 ))'
sleep 3  # long enough for a repeated loss message or a crash to show
check_cmd "bus killed: diskgated is still alive" alive
check "bus killed: the program still runs with the same pid" "$PROGRAM" "$(program)"
check_cmd "bus killed: the target is still mounted" mounted
check_cmd "bus killed: the program still writes into the mount" heartbeat_moves
check "bus killed: the loss is logged once" 1 "$(lost_count)"
check "bus killed: logged at warning level" 1 "$(grep -c '^<4>D-Bus: lost the connection' "$LOG")"

# ---- the gate goes on without the bus ----

uevent "$LOOP" remove
check_cmd "member removed (bus down): the program stops" wait_until "$TIMEOUT" no_program
check_cmd "member removed (bus down): the target is unmounted" wait_until "$TIMEOUT" not_mounted
check_cmd "member removed (bus down): the old program is gone" wait_until "$TIMEOUT" has_exited "$PROGRAM"
uevent "$LOOP" add
check_cmd "member back (bus down): mounted again" wait_until "$TIMEOUT" mounted
check_cmd "member back (bus down): the program runs again" wait_until "$TIMEOUT" program_runs
PROGRAM=$(program)
echo "${PROGRAM:-}" >>"$PROGRAMS"
check_cmd "member back (bus down): the program writes into the mount" heartbeat_moves

# Retries: 1 s after the loss, then every 2, 4, 8 ... s.
check_cmd "backoff: three failed retries logged" wait_until "$TIMEOUT" eval '(( $(retry_lines) >= 3 ))'
check "backoff: intervals double" "2 4 8" "$(retries | cut -d' ' -f1-3)"

# ---- the bus comes back ----

# Start the bus just after a retry failed: the next try is seconds away,
# time enough to have the monitor listening before the daemon reconnects.
n=$(retry_lines)
wait_until 40 eval '(( $(retry_lines) > n ))'
start_bus
(exec busctl --address="$BUS" monitor --json=short >"$SIGNALS" 2>"$WORK/monitor.err") &
MONITOR_PID=$!
wait_until "$TIMEOUT" grep -q Monitoring "$WORK/monitor.err" || not_ok "busctl monitor starts: $(cat "$WORK/monitor.err")"
check "bus back: not reconnected before the monitor listens" 0 "$(reconnected_count)"
check_cmd "bus back: diskgatectl status answers (within $RECONNECT s)" wait_until "$RECONNECT" status_answers
check_cmd "bus back: \"D-Bus: connected again\" logged" wait_until "$TIMEOUT" eval '(( $(reconnected_count) == 1 ))'
tree=$(busctl --address="$BUS" tree --list org.diskgate1 2>&1)
check_cmd "bus back: busctl tree shows $DEVICE_PATH" grep -qx "$DEVICE_PATH" <<<"$tree"
check_cmd "bus back: busctl tree shows /org/diskgate1/gate" grep -qx /org/diskgate1/gate <<<"$tree"
interfaces_added() {
	jq -R -c --arg p "$1" --arg i "$2" 'fromjson? | select(.type == "signal" and .member == "InterfacesAdded"
		and .path == "/org/diskgate1" and .payload.data[0] == $p and (.payload.data[1] | has($i)))' \
		"$SIGNALS" | grep -q .
}
check_cmd "bus back: InterfacesAdded for $DEVICE_PATH" \
	wait_until "$TIMEOUT" interfaces_added "$DEVICE_PATH" org.diskgate1.Device
check_cmd "bus back: InterfacesAdded for /org/diskgate1/gate" \
	wait_until "$TIMEOUT" interfaces_added /org/diskgate1/gate org.diskgate1.Gate
gate_pid=$(busctl --address="$BUS" get-property org.diskgate1 /org/diskgate1/gate org.diskgate1.Gate ProgramPid \
	2>/dev/null | awk '{ print $2 }')
check "bus back: the Gate object reports the program's pid" "$PROGRAM" "$gate_pid"
kill "$MONITOR_PID" 2>/dev/null && wait "$MONITOR_PID" 2>/dev/null
MONITOR_PID=''

# ---- and goes away again ----

kill_bus
check_cmd "bus killed again: the loss is logged once more" wait_until "$TIMEOUT" eval '(( $(lost_count) == 2 ))'
retried=$(retry_lines)
check_cmd "bus killed again: the first retry fails" wait_until "$TIMEOUT" eval '(( $(retry_lines) > retried ))'
check "bus killed again: backoff starts over at 1 s (next try in 2 s)" 2 "$(retries | awk '{ print $NF }')"
check_cmd "bus killed again: diskgated is still alive" alive
check "bus killed again: the program still runs with the same pid" "$PROGRAM" "$(program)"
check_cmd "bus killed again: the target is still mounted" mounted
start_bus
check_cmd "bus back again: diskgatectl status answers (within $RECONNECT s)" wait_until "$RECONNECT" status_answers
check "bus back again: \"connected again\" logged twice in all" 2 "$(reconnected_count)"

check "no internal error or abort was logged" "" "$(grep -E 'terminate called|internal error|Aborted' "$LOG")"

# ---- SIGTERM: all as usual ----

kill -TERM "$DAEMON_PID"
status=0
wait "$DAEMON_PID" || status=$?
check "SIGTERM: exit status 0" 0 "$status"
check_cmd "SIGTERM: the program is gone" has_exited "$PROGRAM"
check_cmd "SIGTERM: nothing is mounted on the target" not_mounted

if ((FAILED > 0)); then
	dump_log
	echo "# $PASSED passed, $FAILED failed"
	exit 1
fi
echo "# $PASSED passed"
exit 0
