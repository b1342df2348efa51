#!/bin/bash
# The gate under faults (issue 8): every case runs a REAL restic backup
# through a REAL REST server (rest-server, else `rclone serve restic`) that
# diskgated gates on a fresh two-device btrfs RAID1 of loop devices, injects
# one fault while that backup runs, and ends with the same checks:
#   - never two servers (sampled every 0.2 s through the case; a server is a
#     rclone/rest-server process whose command line carries this run's
#     work directory), and the expected number (0 or 1) at the end;
#   - nothing written under the bare target (empty once unmounted, locked);
#   - after recovery `restic check --read-data` is clean and a further
#     `restic backup` succeeds.
#
#   tests/gate/fault_test.sh DISKGATED DISKGATECTL
#   FAULT_CASES="1 3" tests/gate/fault_test.sh ...   runs a subset
#   FAULT_KEEP=1 keeps the work directory (daemon logs *.log, restic.log)
#
# Cases (RELIABILITY.md has the table):
#   1 a member removed mid-backup (remove uevent, then losetup -d), re-attached
#   2 the program killed with SIGKILL five times: backoff 1, 2, 4, 8, 16 s
#   3 diskgated killed with SIGKILL mid-backup, started again: no orphan, one server
#   4 dbus-daemon killed mid-backup and started again at the same address
#   5 a member back under another loop device name
#   6 udev mode: udevd stopped, a member removed, udevd started again
#   7 an impostor (same fsid and devid, other UUID_SUB) swapped in while the
#     daemon's uevents are lost (SIGSTOP + socket overflow)
#   8 --user nobody: the server unprivileged (uid 65534, CapEff 0, NoNewPrivs 1)
#
# One line per check: "ok - ..." or "not ok - ...", each case introduced by
# "# case N: ..." and closed by "# case N: ... s, passed/failed".
# Exit: 0 all passed, 1 a check failed, 77 skipped (meson's convention).
set -u -o pipefail

# shellcheck source=../lib/checks.sh
source "$(dirname "$(readlink -f "$0")")/../lib/checks.sh"
# shellcheck source=../lib/gate.sh
source "$(dirname "$(readlink -f "$0")")/../lib/gate.sh"

diskgated_args "$@"
TIMEOUT=15  # seconds for anything the daemon should do "at once" (2 busy cores)
UDEVD_BIN=/lib/systemd/systemd-udevd
ALL_CASES="1 2 3 4 5 6 7 8"
CASES=${FAULT_CASES:-$ALL_CASES}

need_root "loop devices, mount"
need_loop_control
need_fs btrfs
need_restic_server
need_tools mkfs.btrfs btrfs losetup blkid chattr lsattr mknod dbus-daemon dbus-send busctl jq ss sha1sum
need_free_loop
for c in $CASES; do
	[[ " $ALL_CASES " == *" $c "* ]] || { echo "usage: FAULT_CASES takes case numbers among $ALL_CASES (got '$c')" >&2; exit 2; }
done
need_executables "$DISKGATED" "$DISKGATECTL"

WORK=$(mktemp -d /tmp/gate-faults.XXXXXX)
BUS=unix:path=$WORK/bus.sock
BUS_PID=''
DAEMON_PID=''            # the daemon now running (one at a time: one bus name)
DAEMON_LOG=''
UDEVD_PID=''             # our systemd-udevd while it runs
CREATED_RUN_UDEV=0
WATCH_PID=''             # the server-count sampler of the current case
BG_PID=''                # the background restic backup of the current case
DAEMONS=$WORK/daemons    # every daemon pid we started
PROGRAMS=$WORK/programs  # every program pid the daemons reported
LOOPS=$WORK/loops        # every loop device we attached
BUSES=$WORK/buses        # every dbus-daemon we started
UDEVDS=$WORK/udevds      # every systemd-udevd we started
for f in "$DAEMONS" "$PROGRAMS" "$LOOPS" "$BUSES" "$UDEVDS"; do : >"$f"; done
export RESTIC_PASSWORD=gate-faults-password
export RCLONE_CONFIG=/dev/null XDG_CACHE_HOME=$WORK/cache

alive() { ! has_exited "$1"; }
# stop_pid PID [SECONDS]: SIGTERM, SIGKILL after SECONDS (default 10), reap.
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	wait_until "${2:-10}" has_exited "$1" || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# Stops what we started, by pid, unmounts what is mounted under $WORK,
# detaches our loop devices (only those still backed by our images: a node
# we detached may be someone else's by now) and lifts the immutable
# attribute the gate sets, so that the directory can be removed.
cleanup() {
	local status=$? pid
	trap '' INT TERM
	[[ -n $WATCH_PID ]] && kill "$WATCH_PID" 2>/dev/null
	# Daemons first (SIGTERM: they stop their program and unmount). A
	# SIGSTOPped one (case 7) needs SIGCONT to hear it.
	while read -r pid; do
		ours "$pid" || continue
		kill -CONT "$pid" 2>/dev/null
		stop_pid "$pid" 15
	done <"$DAEMONS"
	kill_ours_and_unmount
	detach_our_loops
	# Our dbus-daemons name $WORK (their address); a pid of one that died
	# may be someone else's by now.
	while read -r pid; do
		[[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == *"$WORK"* ]] && kill -TERM "$pid" 2>/dev/null
	done <"$BUSES"
	[[ -n $UDEVD_PID ]] && stop_pid "$UDEVD_PID" 10
	if [[ -s $UDEVDS ]]; then
		# It leaves /run/udev (control socket, database) behind, which would
		# make the next run believe a udevd is there.
		if ((CREATED_RUN_UDEV)); then rm -rf /run/udev; else rm -f /run/udev/control; fi
	fi
	chattr -R -i "$WORK" 2>/dev/null
	finish_cleanup "$status" "${FAULT_KEEP:-}" "(daemon logs *.log, restic.log)"
}
on_exit_cleanup

# ---- helpers ----

# CLOCK_MONOTONIC in µs (the clock of the gate's *Usec properties).
mono_us() {
	local l
	l=$(head -n 3 /proc/timer_list | sed -n 's/^now at \([0-9]*\) nsecs$/\1/p')
	echo $((l / 1000))
}

detach() {
	btrfs device scan --forget "$1" >/dev/null 2>&1
	losetup -d "$1"
}
# The device map's UUID_SUB of NODE, from ListDevices.
map_uuid_sub() {
	busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 org.diskgate1.Manager ListDevices \
		2>/dev/null | jq -r --arg n "$1" '.data[0][] | select(.Node.data == $n) | .UuidSub.data'
}

# bare_untouched DIR: nothing mounted, nothing in it, locked.
bare_untouched() { nothing_mounted "$1" && [[ -z $(find "$1" -mindepth 1 -print -quit 2>/dev/null) ]] && locked "$1"; }
describe_bare() { echo "mounts: '$(mounts_at "$1")', entries: '$(find "$1" -mindepth 1 2>/dev/null | head -n 3 | paste -sd' ')', mode $(stat -c %a "$1"), attrs $(lsattr -d "$1" 2>/dev/null | cut -d' ' -f1)"; }

# ---- servers: counted by /proc, sampled through each case ----

# server_pids: rclone / rest-server processes carrying this run's work
# directory (every server of ours serves a path under it).
server_pids() {
	local p c args
	for p in /proc/[0-9]*; do
		read -r c 2>/dev/null <"$p/comm" || continue
		[[ $c == rclone || $c == rest-server ]] || continue
		mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
		[[ "${args[*]}" == *"$WORK/"* ]] && echo "${p#/proc/}"
	done
	return 0
}
server_count() { server_pids | grep -c .; }
servers_are() { [[ $(server_count) == "$1" ]]; }
# Samples the count every 0.2 s; each line of FILE: "COUNT PIDS" when it changes.
watch_servers() {
	local file=$1 last=-1 pids n
	while :; do
		pids=$(server_pids | paste -sd,)
		n=0
		[[ -n $pids ]] && n=$(($(tr -cd , <<<"$pids" | wc -c) + 1))
		if [[ $n != "$last" ]]; then
			echo "$n $pids $(now_ms)" >>"$file"
			last=$n
		fi
		sleep 0.2
	done
}
watch_start() {
	: >"$CASE_DIR/servers"
	watch_servers "$CASE_DIR/servers" &
	WATCH_PID=$!
}
watch_stop() {
	[[ -n $WATCH_PID ]] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
	WATCH_PID=''
}

# ---- the daemon ----

RUNTIME_ARGS=()
if [[ $("$DISKGATED" --help 2>&1) == *--runtime-dir* ]]; then
	RUNTIME_ARGS=(--runtime-dir "$WORK/run")
else
	echo "# diskgated --help has no --runtime-dir: its daemons run without one (case 3 reports it)"
fi
DAEMON_ENV=()  # extra environment for the next start_daemon

stop_previous() {
	if [[ -n $DAEMON_PID ]] && ! has_exited "$DAEMON_PID"; then
		echo "# stopping the previous daemon (pid $DAEMON_PID) left running by a failed check"
		kill -CONT "$DAEMON_PID" 2>/dev/null
		stop_pid "$DAEMON_PID" "$TIMEOUT"
	fi
	[[ -n $DAEMON_PID ]] && wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=''
}
# start_daemon NAME ARGS...: diskgated with ARGS on our bus; waits until it
# owns org.diskgate1 and its gate object answers. Log in $CASE_DIR/NAME.log.
start_daemon() {
	local name=$1
	shift
	stop_previous
	DAEMON_LOG=$CASE_DIR/$name.log
	env "${DAEMON_ENV[@]}" "$DISKGATED" --bus "$BUS" --log-level debug "${RUNTIME_ARGS[@]}" "$@" \
		>"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>"$DAEMONS"
	if wait_until "$TIMEOUT" daemon_owns_bus; then
		ok "$name: diskgated (pid $DAEMON_PID) owns org.diskgate1 and serves /org/diskgate1/gate"
	else
		not_ok "$name: diskgated starts and serves /org/diskgate1/gate"
		sed 's/^/#   log: /' "$DAEMON_LOG" | tail -n 20
		return 1
	fi
}
# gate_args MODE: the gate of the current case (source, target, program).
gate_args() {
	local a=(--uevents "$1" --source "UUID=$FSID" --target "$T" --stop-timeout 5)
	if [[ $SERVER == rest-server ]]; then
		a+=(--exec rest-server -- --path "$T/data" --listen "127.0.0.1:$PORT" --no-auth)
	else
		a+=(--exec rclone -- serve restic --addr "127.0.0.1:$PORT" "$T/data")
	fi
	printf '%s\n' "${a[@]}"
}
# term_daemon: SIGTERM; it exits 0 within 10 s (--stop-timeout 5 + 5).
term_daemon() {
	local status
	[[ -z $DAEMON_PID ]] && return
	kill -CONT "$DAEMON_PID" 2>/dev/null
	kill -TERM "$DAEMON_PID"
	if wait_until 10 has_exited "$DAEMON_PID"; then
		wait "$DAEMON_PID"
		status=$?
		check "SIGTERM: diskgated exits with status 0" 0 "$status"
	else
		not_ok "SIGTERM: diskgated exits within 10 s"
		dump_state
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	DAEMON_PID=''
}

# ---- the bus ----

start_bus() {
	rm -f "$WORK/bus.pid"
	dbus-daemon --session --fork --print-pid=1 --address="$BUS" >"$WORK/bus.pid" 2>"$WORK/bus.err" || return 1
	BUS_PID=$(<"$WORK/bus.pid")
	echo "$BUS_PID" >>"$BUSES"
	wait_until "$TIMEOUT" test -S "$WORK/bus.sock"
}

# ---- restic ----

restic_q() {
	echo "\$ restic $* (case $CASE)" >>"$WORK/restic.log"
	restic_ "$@" >>"$WORK/restic.log" && return 0
	tail -n 10 "$WORK/restic.log" | sed 's/^/#   restic: /'
	return 1
}
# The backup the fault hits: 24 MiB of fresh random data at 6 MiB/s (~4 s).
BACKUP_LIMIT_KIB=6144
# bg_backup_start [DIR]: DIR (default $WORK/src) must hold data new to the
# repository, or restic has nothing to upload.
bg_backup_start() {
	echo "\$ restic backup --limit-upload $BACKUP_LIMIT_KIB ${1:-$WORK/src} (background, case $CASE)" >>"$WORK/restic.log"
	(exec restic --no-cache -r "rest:http://127.0.0.1:$PORT/" backup --limit-upload "$BACKUP_LIMIT_KIB" \
		"${1:-$WORK/src}" >>"$WORK/restic.log" 2>&1) &
	BG_PID=$!
	BG_STARTED=$(now_ms)
}
# bg_backup_running: started it, waits 1.5 s and checks it still runs (the
# fault is then injected mid-backup).
bg_backup_midway() {
	bg_backup_start "$@"
	sleep 1.5
	if alive "$BG_PID"; then
		ok "restic backup runs ($(( $(now_ms) - BG_STARTED )) ms in) when the fault is injected"
	else
		wait "$BG_PID"
		not_ok "restic backup still runs 1.5 s in (it ended with status $?)"
	fi
}
# bg_backup_finish SECONDS: waits that long for the backup to end by itself
# (restic retries while the server is away), else interrupts it (SIGINT:
# restic removes its lock). Sets BG_STATUS and BG_HOW.
bg_backup_finish() {
	BG_STATUS='' BG_HOW=''
	[[ -z $BG_PID ]] && return
	if wait_until "$1" has_exited "$BG_PID"; then
		BG_HOW="ended by itself"
	else
		kill -INT "$BG_PID" 2>/dev/null
		wait_until 10 has_exited "$BG_PID" || kill -KILL "$BG_PID" 2>/dev/null
		BG_HOW="interrupted (SIGINT) after $1 s more"
	fi
	wait "$BG_PID"
	BG_STATUS=$?
	BG_PID=''
}

# ---- cases ----

# Fresh per case: a two-device btrfs RAID1 (2 x 256 MiB, sparse), a port,
# a target. Sets FSID, A_IMG, B_IMG, L1, L2, T, PORT.
make_fs() {
	FSID=${PRESET_FSID:-$(new_uuid)}
	A_IMG=$CASE_DIR/a.img B_IMG=$CASE_DIR/b.img
	truncate -s 256M "$A_IMG" "$B_IMG"
	if ! mkfs.btrfs -q -f -U "$FSID" -L "dg-fault-$CASE" -d raid1 -m raid1 "$A_IMG" "$B_IMG" >"$CASE_DIR/mkfs.err" 2>&1; then
		not_ok "mkfs.btrfs -d raid1 -m raid1 on two 256 MiB images: $(cat "$CASE_DIR/mkfs.err")"
		return 1
	fi
	L1=$(attach "$A_IMG") && L2=$(attach "$B_IMG") || { not_ok "attach the two images"; return 1; }
	T=$CASE_DIR/mnt
	PORT=$(free_port) || { not_ok "a free TCP port on 127.0.0.1"; return 1; }
	echo "# fsid $FSID, members $L1 (devid 1) and $L2 (devid 2), target $T, port $PORT"
}
# Until the program serves: State running, the port open, once only.
serving() {
	wait_state running || return 1
	if wait_until "$TIMEOUT" port_open "$PORT"; then
		ok "$SERVER listens on 127.0.0.1:$PORT (pid $(program_pid))"
	else
		not_ok "$SERVER listens on 127.0.0.1:$PORT"
		dump_state
		return 1
	fi
}
# The common start: filesystem, daemon (MODE, EXTRA args before the
# gate's), gate running, repository initialized, backup under way.
case_start() {
	local mode=$1
	shift
	make_fs || return 1
	mapfile -t GATE_ARGS < <(gate_args "$mode")
	start_daemon "c$CASE" "$@" "${GATE_ARGS[@]}" || return 1
	serving || return 1
	if restic_q init; then ok "restic init through the gate"; else not_ok "restic init through the gate"; return 1; fi
	bg_backup_midway
}
# After recovery: the interrupted backup ends (or is interrupted), then
# check --read-data is clean and a further backup succeeds.
recovery_checks() {
	bg_backup_finish "${1:-15}"
	[[ -n $BG_STATUS ]] && echo "# the backup the fault hit: $BG_HOW, exit status $BG_STATUS"
	restic_q unlock >/dev/null 2>&1
	check_cmd "after recovery: restic check --read-data is clean" restic_q check --read-data
	mkdir -p "$WORK/extra/c$CASE"
	head -c $((2 * 1024 * 1024)) /dev/urandom >"$WORK/extra/c$CASE/fresh"
	check_cmd "after recovery: a further restic backup succeeds" restic_q backup "$WORK/extra/c$CASE" "$WORK/src"
}
# Final checks of every case: the daemon stops (SIGTERM), no server is
# left, there never were two, the bare target is empty and locked.
case_finish() {
	local max
	bg_backup_finish 0
	if [[ -n $DAEMON_PID ]]; then term_daemon; fi
	if [[ -n ${T:-} && -d $T ]]; then
		if bare_untouched "$T"; then
			ok "end: nothing mounted on $T, the bare target is empty and locked (mode 000, immutable)"
		else
			not_ok "end: nothing mounted on $T, the bare target is empty and locked ($(describe_bare "$T"))"
		fi
	fi
	if wait_until 5 servers_are 0; then ok "end: no server runs"; else not_ok "end: no server runs (pids $(server_pids | paste -sd' '))"; fi
	watch_stop
	max=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$CASE_DIR/servers")
	if ((max <= 1)); then
		ok "never two servers at once (at most $max, sampled every 0.2 s)"
	else
		not_ok "never two servers at once: $max ran together ($(awk '$1 > 1' "$CASE_DIR/servers" | head -n 3 | paste -sd';'))"
	fi
}
# Detaches the case's loop devices and removes its images.
case_cleanup() {
	local mnt
	detach_our_loops "$CASE_DIR"
	for mnt in $(awk -v w="$CASE_DIR/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | tac); do
		umount "$mnt" 2>/dev/null || umount -l "$mnt"
	done
	chattr -R -i "$CASE_DIR" 2>/dev/null
	rm -f "$CASE_DIR"/*.img
}

run_case() {
	local n=$1 title=$2 start failed_before passed_before ms
	CASE=$n CASE_DIR=$WORK/c$n T='' DAEMON_ENV=() PRESET_FSID=''
	mkdir -p "$CASE_DIR"
	echo "# case $n: $title"
	start=$(now_ms) failed_before=$FAILED passed_before=$PASSED
	watch_start
	"case_$n"
	case_finish
	case_cleanup
	chmod 700 "$WORK"
	ms=$(($(now_ms) - start))
	echo "# case $n: $((ms / 1000)).$((ms % 1000 / 100)) s," \
		"$((PASSED - passed_before)) passed, $((FAILED - failed_before)) failed"
	RESULTS+=("$n:$((FAILED - failed_before))")
}

# --- 1: a member removed mid-backup, then detached; attached again ---
case_1() {
	local p1 p2 l2b
	case_start kernel || return
	p1=$(program_pid)
	uevent "$L2" remove
	program_gone() { [[ $(gate_prop ProgramPid) == 0 ]] && has_exited "$p1"; }
	check_cmd "remove uevent of $L2: the program (pid $p1) stops" wait_until "$TIMEOUT" program_gone
	check_cmd "remove uevent of $L2: the target is unmounted" wait_until "$TIMEOUT" nothing_mounted "$T"
	wait_state waiting
	if bare_untouched "$T"; then ok "member gone: the bare target is empty and locked"; else not_ok "member gone: the bare target is empty and locked ($(describe_bare "$T"))"; fi
	check "member gone: no server runs" 0 "$(server_count)"
	check_cmd "member gone: losetup -d $L2 once unmounted" detach "$L2"
	l2b=$(attach "$B_IMG") || { not_ok "attach the member again"; return; }
	echo "# the member is back as $l2b"
	serving || return
	p2=$(program_pid)
	[[ $p2 != 0 && $p2 != "$p1" ]] && ok "member back: a new program (pid $p2)" || not_ok "member back: a new program (pid $p2, was $p1)"
	check "member back: one btrfs mount" 1 "$(mount_count "$T")"
	check "member back: one server runs" 1 "$(server_count)"
	recovery_checks
}

# --- 2: the program killed with SIGKILL five times: backoff ---
case_2() {
	local pid new i start kill_us backoff gap restarts s log_delays
	local -a gaps=()
	case_start kernel || return
	pid=$(program_pid)
	start=$(gate_prop StartedAtUsec)
	for i in 1 2 3 4 5; do
		backoff=$((1000 << (i - 1)))
		kill_us=$(mono_us)
		kill -KILL "$pid"
		restarted() {
			s=$(gate_prop StartedAtUsec)
			new=$(gate_prop ProgramPid)
			[[ -n $s && $s != "$start" && $s != 0 && -n $new && $new != 0 && $new != "$pid" ]]
		}
		if ! wait_until $((backoff / 1000 + TIMEOUT)) restarted; then
			not_ok "kill $i: the program (pid $pid) is started again"
			dump_state
			return
		fi
		echo "$new" >>"$PROGRAMS"
		gap=$(((s - kill_us) / 1000))
		gaps+=("$gap")
		if ((gap >= backoff - 50 && gap <= backoff + 1000)); then
			ok "kill $i (SIGKILL to pid $pid): started again after $gap ms (backoff $backoff ms)"
		else
			not_ok "kill $i (SIGKILL to pid $pid): started again after $gap ms (expected $backoff ms, -50/+1000)"
		fi
		pid=$new start=$s
	done
	restarts=$(gate_prop Restarts)
	check "Restarts counts 5" 5 "$restarts"
	check "LastExitStatus" "killed by signal 9" "$(gate_prop LastExitStatus)"
	log_delays=$(grep -o 'in [0-9]* ms' "$DAEMON_LOG" | awk '{ print $2 }' | paste -sd' ')
	echo "# restart delays in the daemon log: $log_delays; measured kill -> start: ${gaps[*]} ms"
	check "the mount stayed through the restarts (one btrfs mount)" 1 "$(mount_count "$T")"
	serving || return
	check "one server runs" 1 "$(server_count)"
	recovery_checks 5
}

# --- 3: diskgated killed with SIGKILL mid-backup, started again ---
case_3() {
	local pold pnew
	((${#RUNTIME_ARGS[@]})) && ok "diskgated takes --runtime-dir ($WORK/run)" ||
		not_ok "diskgated takes --runtime-dir (not in --help): no record of the program for the next daemon"
	case_start kernel || return
	pold=$(program_pid)
	echo "# runtime directory: $(find "$WORK/run" -type f 2>/dev/null | paste -sd' ')"
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=''
	if wait_until 3 has_exited "$pold"; then
		ok "the daemon's death takes its program (pid $pold) with it (PR_SET_PDEATHSIG)"
	else
		not_ok "the daemon's death takes its program (pid $pold) with it within 3 s (PR_SET_PDEATHSIG): it still runs"
	fi
	check "after kill -9 the mount stays (one btrfs mount)" "btrfs" "$(mounts_at "$T" | awk '{ print $1 }' | paste -sd' ')"
	start_daemon "c3-again" "${GATE_ARGS[@]}" || return
	wait_state running || return
	pnew=$(program_pid)
	if has_exited "$pold"; then ok "the old program (pid $pold) is gone"; else not_ok "the old program (pid $pold) is gone: it still runs"; fi
	check "exactly one server runs (pid $pnew)" "$pnew" "$(server_pids | paste -sd' ')"
	check_cmd "the new daemon adopts the mount (log: adopting ... already mounted on $T)" \
		grep -q "adopting .* already mounted on $T" "$DAEMON_LOG"
	check "it did not mount again: one mount, MountedAtUsec 0" "1 0" "$(mount_count "$T") $(gate_prop MountedAtUsec)"
	serving || return
	recovery_checks
}

# --- 4: dbus-daemon killed mid-backup, started again at the same address ---
case_4() {
	local p back elapsed status
	case_start kernel || return
	p=$(program_pid)
	kill -KILL "$BUS_PID"
	wait_until 5 has_exited "$BUS_PID"
	echo "# killed dbus-daemon (pid $BUS_PID)"
	sleep 2
	check_cmd "bus gone: diskgated (pid $DAEMON_PID) still runs" alive "$DAEMON_PID"
	check_cmd "bus gone: the program keeps its pid $p" alive "$p"
	check "bus gone: still one btrfs mount" 1 "$(mount_count "$T")"
	if start_bus; then
		ok "dbus-daemon started again at $BUS (pid $BUS_PID)"
	else
		not_ok "dbus-daemon started again at $BUS: $(cat "$WORK/bus.err")"
		return
	fi
	back=$(now_ms)
	status_works() { "$DISKGATECTL" --bus "$BUS" status >/dev/null 2>&1; }
	if wait_until 35 status_works; then
		elapsed=$(($(now_ms) - back))
		ok "diskgatectl --bus ADDR status works again ${elapsed} ms after the bus is back (limit ~35 s)"
	else
		not_ok "diskgatectl --bus ADDR status works again within 35 s of the bus coming back"
		tail -n 10 "$DAEMON_LOG" | sed 's/^/#   log: /'
	fi
	check_cmd "the daemon owns org.diskgate1 again" wait_until 5 daemon_owns_bus
	check "ProgramPid is still $p, State running" "$p running" "$(gate_prop ProgramPid) $(gate_prop State)"
	if wait_until 30 has_exited "$BG_PID"; then
		wait "$BG_PID"
		status=$?
		BG_PID=''
		check "the backup under way completes (restic exit status)" 0 "$status"
	else
		not_ok "the backup under way completes within 30 s"
	fi
	check "one server runs" 1 "$(server_count)"
	recovery_checks
}

# --- 5: a member back under another loop device name ---
case_5() {
	local p1 l2b
	case_start kernel || return
	p1=$(program_pid)
	uevent "$L2" remove
	check_cmd "remove uevent of $L2: the program stops and the target is unmounted" \
		wait_until "$TIMEOUT" eval 'has_exited "$p1" && nothing_mounted "$T"'
	wait_state waiting
	check_cmd "losetup -d $L2" detach "$L2"
	truncate -s 16M "$CASE_DIR/dummy.img"
	if attach "$CASE_DIR/dummy.img" "$L2" >/dev/null 2>&1; then
		echo "# $L2 is taken by a dummy image"
	else
		echo "# $L2 was taken by someone else meanwhile"
	fi
	l2b=$(attach "$B_IMG") || { not_ok "attach the member again"; return; }
	if [[ $l2b != "$L2" ]]; then ok "the member comes back as $l2b (was $L2)"; else not_ok "the member comes back under another name (it is $l2b again)"; fi
	serving || return
	local md
	md=$(gate_prop MountData)
	if [[ ,$md, == *",device=$L1,"* && ,$md, == *",device=$l2b,"* ]]; then
		ok "MountData names $L1 and $l2b ($md)"
	else
		not_ok "MountData names $L1 and $l2b (it is '$md')"
	fi
	local show
	show=$(btrfs filesystem show "$T" 2>&1)
	if grep -q "path $l2b\$" <<<"$show" && ! grep -q "path $L2\$" <<<"$show"; then
		ok "btrfs filesystem show lists $l2b, not $L2"
	else
		not_ok "btrfs filesystem show lists $l2b, not $L2"
		sed 's/^/#   /' <<<"$show"
	fi
	check "one server runs" 1 "$(server_count)"
	recovery_checks
}

# --- 6: udev mode: udevd stopped, a member removed; udevd back ---
udevd_runs() { pgrep -x -r D,R,S,T systemd-udevd >/dev/null || pgrep -x -r D,R,S,T udevd >/dev/null; }
start_udevd() {
	[[ -e /run/udev ]] || CREATED_RUN_UDEV=1
	(exec "$UDEVD_BIN" >>"$WORK/udevd.log" 2>&1) &
	UDEVD_PID=$!
	echo "$UDEVD_PID" >>"$UDEVDS"
	# (the socket file may be a dead udevd's: wait for an answer)
	wait_until "$TIMEOUT" udevadm control --ping --timeout=1 >/dev/null 2>&1
}
stop_udevd() {
	stop_pid "$UDEVD_PID" 10
	UDEVD_PID=''
}
# Prints why case 6 cannot run here, or nothing (then /run/udev/control is
# ours to create).
udev_blocker() {
	local i
	[[ -x $UDEVD_BIN ]] || { echo "$UDEVD_BIN is not installed"; return; }
	for ((i = 0; i < 100; i++)); do
		[[ -e /run/udev/control ]] || ! udevd_runs && break
		sleep 0.1
	done
	if [[ -e /run/udev/control ]]; then
		if udevadm control --ping --timeout=2 >/dev/null 2>&1; then
			echo "a udevd we did not start runs (we would have to stop it)"
			return
		fi
		if udevd_runs; then
			echo "a udevd runs but does not answer on /run/udev/control"
			return
		fi
		rm -f /run/udev/control  # a dead udevd's socket
	elif udevd_runs; then
		echo "a udevd runs but /run/udev/control is absent"
	fi
}
case_6() {
	local why p1
	why=$(udev_blocker)
	if [[ -n $why ]]; then
		echo "ok - case 6 # SKIP $why"
		return
	fi
	if start_udevd; then ok "systemd-udevd started (pid $UDEVD_PID)"; else not_ok "systemd-udevd starts: $(tail -n 3 "$WORK/udevd.log")"; return; fi
	case_start udev || return
	check_cmd "the daemon takes uevents from udev" grep -q "uevents from udev" "$DAEMON_LOG"
	p1=$(program_pid)
	stop_udevd
	ok "systemd-udevd stopped"
	uevent "$L2" remove
	check_cmd "udevd down, remove uevent of $L2: the program (pid $p1) stops" wait_until "$TIMEOUT" has_exited "$p1"
	check_cmd "udevd down, remove uevent of $L2: the target is unmounted" wait_until "$TIMEOUT" nothing_mounted "$T"
	if [[ $(gate_prop State) == waiting ]] && bare_untouched "$T"; then
		ok "udevd down: State waiting, the bare target empty and locked"
	else
		not_ok "udevd down: State waiting, the bare target empty and locked (State $(gate_prop State); $(describe_bare "$T"))"
	fi
	uevent "$L2" add
	echo "# member re-added (add uevent) while udevd is down: State $(sleep 1; gate_prop State)"
	if udevadm control --ping --timeout=1 >/dev/null 2>&1; then
		echo "# a udevd of someone else answers now: not starting ours"
	elif rm -f /run/udev/control && start_udevd; then  # our dead udevd's socket
		ok "systemd-udevd started again (pid $UDEVD_PID)"
	else
		not_ok "systemd-udevd starts again"
	fi
	serving || return
	check "udevd back: the map has both members (MembersPresent)" 2 "$(gate_prop MembersPresent)"
	check "one server runs" 1 "$(server_count)"
	recovery_checks
}

# --- 7: an impostor swapped in while the daemon's uevents are lost ---
# The daemon's NETLINK_KOBJECT_UEVENT sockets' drop count (/proc/net/netlink).
uevent_drops() {
	local fd l inodes=''
	for fd in /proc/"$1"/fd/*; do
		l=$(readlink "$fd" 2>/dev/null) || continue
		[[ $l == socket:* ]] && inodes+=" ${l//[^0-9]/}"
	done
	awk -v list="$inodes" 'BEGIN { n = split(list, a, " "); for (i = 1; i <= n; i++) s[a[i]] = 1 }
		NR > 1 && $2 == 15 && ($10 in s) { d += $9 } END { print d + 0 }' /proc/net/netlink
}
loop_free() { [[ -z $(losetup -n -O BACK-FILE "$1" 2>/dev/null | tr -d ' \n') ]]; }
# map_field NODE FIELD: a field of NODE's ListDevices entry (Label, UuidSub...).
map_field() {
	busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 org.diskgate1.Manager ListDevices \
		2>/dev/null | jq -r --arg n "$1" --arg f "$2" '.data[0][] | select(.Node.data == $n) | .[$f].data'
}
# impostor_round NAME IMAGE: with the gate held by `diskgatectl stop`, the
# daemon SIGSTOPped and its uevent socket overflowing, $L2's backing file
# becomes IMAGE; then SIGCONT, `diskgatectl start`: IMAGE must never be
# mounted as the original, nor written to. Then the right image goes back
# and the gate mounts again.
impostor_round() {
	local name=$1 img=$2 sub label sum_before sum_after drops0 drops1 drops2 sent fd mm node le marks st
	local mounted_at mounted_lines lost_line i
	sub=$(blkid -p -o value -s UUID_SUB "$img")
	label=$(blkid -p -o value -s LABEL "$img")
	sum_before=$(sha1sum <"$img")
	check_cmd "$name: diskgatectl stop (mid-backup)" "$DISKGATECTL" --bus "$BUS" stop
	wait_state stopped
	check_cmd "$name: stopped: the target is unmounted" wait_until "$TIMEOUT" nothing_mounted "$T"
	marks=$(wc -l <"$DAEMON_LOG")

	kill -STOP "$DAEMON_PID"
	# Fill its uevent socket first, so that the swap's own uevents are lost.
	drops0=$(uevent_drops "$DAEMON_PID")
	exec {fd}>"/sys/block/${DUMMY#/dev/}/uevent"
	sent=0
	while ((sent < 200000)); do
		for ((i = 0; i < 1000; i++)); do echo change >&"$fd"; done
		sent=$((sent + 1000))
		(($(uevent_drops "$DAEMON_PID") > drops0)) && break
	done
	exec {fd}>&-
	drops1=$(uevent_drops "$DAEMON_PID")
	if ((drops1 > drops0)); then
		ok "$name: SIGSTOPped daemon: its uevent socket overflows after $sent change uevents of $DUMMY"
	else
		not_ok "$name: its uevent socket overflows (no drops after $sent uevents)"
	fi
	# Swap the member's backing file under the same loop device, through a
	# node of our own (same device number): no close-after-write on the
	# /dev node it watches with inotify, so only the lost uevents tell.
	mm=$(stat -c '%t %T' "$L2")
	node=$CASE_DIR/swap-node
	rm -f "$node"
	mknod "$node" b $((16#${mm% *})) $((16#${mm#* }))
	if losetup -d "$node" && wait_until 10 loop_free "$L2" && wait_until 5 losetup "$node" "$img"; then
		ok "$name: $L2 now holds the impostor ($(losetup -n -O BACK-FILE "$L2"))"
	else
		not_ok "$name: swap the backing file of $L2 (detach, attach the impostor on the same device)"
		kill -CONT "$DAEMON_PID"
		return 1
	fi
	drops2=$(uevent_drops "$DAEMON_PID")
	if ((drops2 >= drops1 + 2)); then
		ok "$name: the swap's own uevents (detach, attach) were dropped too (drops $drops0 -> $drops1 -> $drops2)"
	else
		not_ok "$name: the swap's own uevents were dropped (drops $drops0 -> $drops1 -> $drops2)"
	fi
	kill -CONT "$DAEMON_PID"
	check_cmd "$name: SIGCONT, diskgatectl start" "$DISKGATECTL" --bus "$BUS" start
	# Watch the target for 6 s: never mounted as the original.
	mounted_at=''
	for ((i = 0; i < 60; i++)); do
		if ! nothing_mounted "$T"; then mounted_at+="$(mounts_at "$T") "; fi
		sleep 0.1
	done
	mounted_lines=$(tail -n +"$((marks + 1))" "$DAEMON_LOG" | grep -c "gate: mounted ")
	if [[ -z $mounted_at && $mounted_lines == 0 ]]; then
		ok "$name: the impostor is never mounted as the original (nothing on $T for 6 s, no 'gate: mounted' in the log)"
	else
		not_ok "$name: the impostor is never mounted as the original (on $T: '$(cut -d' ' -f1,2 <<<"$mounted_at")'; 'gate: mounted' lines in the log: $mounted_lines)"
	fi
	in_map() { [[ $(map_field "$L2" UuidSub) == "$sub" && $(map_field "$L2" Label) == "$label" ]]; }
	if wait_until 5 in_map; then
		ok "$name: the daemon's map shows the impostor on $L2 (UUID_SUB $sub, LABEL $label): re-probed after the lost uevents"
	else
		not_ok "$name: the daemon's map shows the impostor on $L2 (UUID_SUB $sub, LABEL $label; it shows $(map_field "$L2" UuidSub), $(map_field "$L2" Label))"
	fi
	# (no grep -q in a pipe: with pipefail, tail's SIGPIPE would fail it)
	lost_line=$(tail -n +"$((marks + 1))" "$DAEMON_LOG" | grep -iE 'lost|ENOBUFS|overflow' | head -n1)
	if [[ -n $lost_line ]]; then ok "$name: the log says uevents were lost: $lost_line"; else not_ok "$name: the log says uevents were lost"; fi
	st=$(gate_prop State)
	le=$(gate_prop LastError)
	echo "# $name: after start: State $st, LastError '$le'"
	if [[ -n $mounted_at || $mounted_lines != 0 ]]; then
		echo "# $name: outcome: the impostor was MOUNTED as the original"
	else
		(($(tail -n +"$((marks + 1))" "$DAEMON_LOG" | grep -c "refusing to mount") > 0)) &&
			echo "# $name: outcome: diskgated refused to mount (at least once) before mount(2)"
		(($(tail -n +"$((marks + 1))" "$DAEMON_LOG" | grep "gate: mount " | grep -c "device=$L2") > 0)) &&
			echo "# $name: outcome: diskgated called mount(2) with the impostor as devid 2 (at least once) and the KERNEL" \
				"refused it (devid 1's chunk tree names devid 2 by another dev uuid)"
	fi
	if [[ -n $mounted_at || $mounted_lines != 0 ]]; then
		:  # failed above
	elif [[ -n $le ]]; then
		[[ $le == *"$L2"* ]] && ok "$name: LastError names the member $L2: $le" || not_ok "$name: LastError names the member $L2 (it is '$le')"
	elif [[ $st == waiting || $st == failed ]]; then
		ok "$name: no error: the gate waits (State $st), nothing mounted"
	else
		not_ok "$name: State waiting or failed with nothing mounted, or an error naming $L2 (State $st, no LastError)"
	fi
	tail -n +"$((marks + 1))" "$DAEMON_LOG" | grep -E "gate:|lost|$L2([^0-9]|\$)" | grep -v ' -> ' | head -n 8 |
		sed 's/^/#   log: /'

	# The right image back: it mounts again.
	if ! nothing_mounted "$T"; then
		"$DISKGATECTL" --bus "$BUS" stop >/dev/null 2>&1
		wait_until "$TIMEOUT" nothing_mounted "$T" || umount "$T"
	fi
	# (a detach is deferred while anything still holds the device open)
	if ! losetup -d "$L2" || ! wait_until 10 loop_free "$L2"; then
		not_ok "$name: detach the impostor from $L2"
		return 1
	fi
	sum_after=$(sha1sum <"$img")
	check "$name: nothing was written to the impostor (sha1 unchanged)" "$sum_before" "$sum_after"
	if wait_until 5 losetup "$L2" "$B_IMG"; then
		ok "$name: $L2 holds the right image again"
	else
		not_ok "$name: put the right image back on $L2"
		return 1
	fi
	if ! wait_until 5 gate_state_is running; then
		echo "# $name: not running 5 s after the right image is back (State $(gate_prop State)): diskgatectl start"
		"$DISKGATECTL" --bus "$BUS" start >/dev/null 2>&1
	fi
	serving || return 1
	check "$name: the right member is in the map again (UUID_SUB of $L2)" "$REAL_SUB" "$(map_field "$L2" UuidSub)"
	check "$name: one server runs" 1 "$(server_count)"
}
case_7() {
	local imp_sub i
	# Impostors: a fresh btrfs with the same fsid. Its devid 2 as made (A:
	# another UUID_SUB), and a copy of it given the real member's UUID_SUB
	# (B: fsid, devid and UUID_SUB all the member's; label, generation and
	# trees not). Made first: mkfs.btrfs -U refuses a fsid an attached
	# device has.
	PRESET_FSID=$(new_uuid)
	truncate -s 256M "$CASE_DIR/imp1.img" "$CASE_DIR/imp2.img"
	if ! mkfs.btrfs -q -f -U "$PRESET_FSID" -L "dg-impostor" -d raid1 -m raid1 "$CASE_DIR/imp1.img" \
		"$CASE_DIR/imp2.img" >"$CASE_DIR/mkfs-imp.err" 2>&1; then
		not_ok "mkfs.btrfs of the impostor: $(cat "$CASE_DIR/mkfs-imp.err")"
		return
	fi
	case_start kernel || return
	imp_sub=$(blkid -p -o value -s UUID_SUB "$CASE_DIR/imp2.img")
	REAL_SUB=$(blkid -p -o value -s UUID_SUB "$L2")
	check "the impostor has the fsid and devid 2, another UUID_SUB ($imp_sub, the real one $REAL_SUB) and label" \
		"$FSID 2 yes dg-impostor" "$(blkid -p -o value -s UUID "$CASE_DIR/imp2.img") \
$(btrfs inspect-internal dump-super "$CASE_DIR/imp2.img" | awk '$1 == "dev_item.devid" { print $2 }') \
$([[ -n $imp_sub && $imp_sub != "$REAL_SUB" ]] && echo yes) $(blkid -p -o value -s LABEL "$CASE_DIR/imp2.img")"
	truncate -s 16M "$CASE_DIR/dummy.img"
	DUMMY=$(attach "$CASE_DIR/dummy.img") || { not_ok "attach a dummy loop device"; return; }

	impostor_round "A (other UUID_SUB)" "$CASE_DIR/imp2.img" || return

	if ! command -v python3 >/dev/null; then
		echo "ok - B (same UUID_SUB) # SKIP python3 is not installed (tests/gate/fault_btrfs_sb.py)"
	else
		cp --sparse=always "$CASE_DIR/imp2.img" "$CASE_DIR/imp2-same-sub.img"
		if python3 "$(dirname "$(readlink -f "$0")")/fault_btrfs_sb.py" "$CASE_DIR/imp2-same-sub.img" "$REAL_SUB"; then
			check "B: the impostor now has the member's UUID_SUB (blkid)" "$REAL_SUB dg-impostor" \
				"$(blkid -p -o value -s UUID_SUB "$CASE_DIR/imp2-same-sub.img") $(blkid -p -o value -s LABEL "$CASE_DIR/imp2-same-sub.img")"
			bg_backup_finish 15
			[[ -n $BG_STATUS ]] && echo "# the backup round A hit: $BG_HOW, exit status $BG_STATUS"
			mkdir -p "$CASE_DIR/src-b"
			for i in 1 2 3 4 5 6; do head -c $((4 * 1024 * 1024)) /dev/urandom >"$CASE_DIR/src-b/file$i"; done
			bg_backup_midway "$CASE_DIR/src-b"
			impostor_round "B (same UUID_SUB)" "$CASE_DIR/imp2-same-sub.img" || return
		else
			not_ok "B: give the impostor the member's UUID_SUB"
		fi
	fi
	recovery_checks
}

# --- 8: the program unprivileged (--user nobody) ---
case_8() {
	local p status_file
	# nobody must reach the mount point: $WORK and the case directory
	# traversable (the gate makes the mount root writable for nobody).
	chmod 711 "$WORK" "$CASE_DIR"
	mkdir -p "$CASE_DIR/cache"
	chmod 1777 "$CASE_DIR/cache"
	DAEMON_ENV=(XDG_CACHE_HOME="$CASE_DIR/cache")
	case_start kernel --user nobody || return
	p=$(program_pid)
	status_file=$(cat "/proc/$p/status" 2>/dev/null)
	check "the server (pid $p) runs as uid 65534 (real, effective, saved, fs)" "65534 65534 65534 65534" \
		"$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' <<<"$status_file")"
	check "its gid is 65534" "65534 65534 65534 65534" "$(awk '$1 == "Gid:" { print $2, $3, $4, $5 }' <<<"$status_file")"
	check "CapEff 0, CapPrm 0, CapBnd 0" "0000000000000000 0000000000000000 0000000000000000" \
		"$(awk '$1 == "CapEff:" { e = $2 } $1 == "CapPrm:" { p = $2 } $1 == "CapBnd:" { b = $2 } END { print e, p, b }' <<<"$status_file")"
	check "NoNewPrivs 1" 1 "$(awk '$1 == "NoNewPrivs:" { print $2 }' <<<"$status_file")"
	check "no supplementary groups" "" "$(awk '$1 == "Groups:" { $1 = ""; print substr($0, 2) }' <<<"$status_file")"
	check "the mount root belongs to 65534" "65534" "$(stat -c %u "$T")"
	if wait_until 30 has_exited "$BG_PID"; then
		wait "$BG_PID"
		check "restic backup through the unprivileged server" 0 "$?"
		BG_PID=''
	else
		not_ok "restic backup through the unprivileged server ends within 30 s"
	fi
	check "the repository's files belong to 65534" "" "$(find "$T/data" ! -uid 65534 2>/dev/null | head -n 3)"
	check "one server runs" 1 "$(server_count)"
	recovery_checks
}

# ---- main ----

echo "# REST server: $SERVER; work directory $WORK; cases: $CASES"
start_bus || { echo "not ok - dbus-daemon starts: $(cat "$WORK/bus.err")"; exit 1; }
mkdir -p "$WORK/src"
for i in 1 2 3 4 5 6; do head -c $((4 * 1024 * 1024)) /dev/urandom >"$WORK/src/file$i"; done
SUITE_START=$(now_ms)
RESULTS=()
declare -A TITLES=(
	[1]="a member removed mid-backup (remove uevent, losetup -d) and attached again"
	[2]="the program killed with SIGKILL five times: backoff 1, 2, 4, 8, 16 s"
	[3]="diskgated killed with SIGKILL mid-backup and started again"
	[4]="dbus-daemon killed mid-backup and started again at the same address"
	[5]="a member back under another loop device name"
	[6]="udev mode: udevd stopped, a member removed; udevd started again"
	[7]="an impostor with the member's fsid and devid (A: other UUID_SUB; B: the same) swapped in while uevents are lost"
	[8]="the program unprivileged (--user nobody)"
)
for c in $CASES; do
	# A case that killed the bus and failed to bring it back: a new one.
	if [[ -z $BUS_PID ]] || has_exited "$BUS_PID"; then start_bus || { not_ok "dbus-daemon starts"; exit 1; }; fi
	run_case "$c" "${TITLES[$c]}"
done
echo "# results by case (failed checks): ${RESULTS[*]}"
echo "# gate-faults: $PASSED passed, $FAILED failed in $(( ($(now_ms) - SUITE_START) / 1000 )) s"
((FAILED == 0)) || exit 1
exit 0
