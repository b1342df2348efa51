# shellcheck shell=bash
# Sourced (after checks.sh) by the gate tests that run diskgated's gate on
# a private bus ($BUS) with a real REST server that restic backs up to
# ($PORT): this run's processes and mounts (under $WORK), loop devices (in
# $LOOPS), the Gate's properties, mounts. $PROGRAMS lists the program pids,
# $DAEMON_PID is the daemon now running, $DAEMON_LOG its log, $TIMEOUT the
# seconds for anything the daemon should do "at once".

# need_restic_server: restic and a REST server for it (rest-server, else
# rclone serve restic) in SERVER; skips otherwise.
# shellcheck disable=SC2034  # SERVER is the test's
need_restic_server() {
	command -v restic >/dev/null || skip "restic is not installed"
	if command -v rest-server >/dev/null; then
		SERVER=rest-server
	elif command -v rclone >/dev/null; then
		SERVER=rclone
	else
		skip "neither rest-server nor rclone is installed"
	fi
}

# ---- this run's processes and mounts ----

# pids_with TEXT: processes whose command line contains TEXT (builtins only,
# so that the scan does not find itself).
pids_with() {
	local p args
	for p in /proc/[0-9]*; do
		mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
		[[ ${#args[@]} -gt 0 && "${args[*]}" == *"$1"* ]] && echo "${p#/proc/}"
	done
	return 0
}
# ours PID: a process of this run: in our session (daemons and programs
# inherit it) with a path under $WORK in its command line (a pid we waited
# for may have been reused).
MY_SID=$(ps -o sid= -p $$ | tr -d ' ')
ours() {
	[[ -e /proc/$1 && $(ps -o sid= -p "$1" 2>/dev/null | tr -d ' ') == "$MY_SID" &&
		$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") == *"$WORK"* ]]
}
# Mounts whose mount point is under $WORK, innermost and latest first.
our_mounts() { awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | tac; }
# For cleanup(), once the daemons are stopped: kills the programs (they
# outlive a daemon killed with -9: their own process groups), anything else
# of ours still running on our paths (every program, server and restic names
# a path under $WORK), and unmounts what is mounted under $WORK.
kill_ours_and_unmount() {
	local pid mnt
	while read -r pid; do
		ours "$pid" && kill -KILL -- "-$pid" 2>/dev/null
	done <"$PROGRAMS"
	for pid in $(pids_with "$WORK"); do
		[[ $pid != "$$" ]] && ours "$pid" && kill -KILL "$pid" 2>/dev/null
	done
	for mnt in $(our_mounts); do
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	done
}

# detach_our_loops [DIR]: detaches the loop devices attach() listed in
# $LOOPS that are still backed by images under DIR (default $WORK; a node
# since reused by someone else is left alone), with their partitions and
# the kernel's memory of btrfs members on them.
detach_our_loops() {
	local dir=${1:-$WORK} node back
	while read -r node; do
		back=$(losetup -n -O BACK-FILE "$node" 2>/dev/null) || continue
		[[ $back == "$dir"/* ]] || continue
		partx -d "$node" >/dev/null 2>&1
		btrfs device scan --forget "$node" >/dev/null 2>&1
		losetup -d "$node" 2>/dev/null
	done < <(sort -u "$LOOPS")
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# attach IMAGE [NODE]: prints the loop device (NODE if given).
attach() {
	local node
	if [[ $# -eq 2 ]]; then
		losetup "$2" "$1" || return 1
		node=$2
	else
		node=$(losetup --find --show "$1") || return 1
	fi
	echo "$node" >>"$LOOPS"
	echo "$node"
}

# ---- the gate ----

gate_prop() {
	busctl --address="$BUS" --json=short get-property org.diskgate1 /org/diskgate1/gate org.diskgate1.Gate "$1" \
		2>/dev/null | jq -r .data
}
gate_state_is() { [[ $(gate_prop State) == "$1" ]]; }
# Every Gate property, as one compact JSON object.
gate_all() {
	busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1/gate org.freedesktop.DBus.Properties \
		GetAll s org.diskgate1.Gate 2>/dev/null | jq -c '.data[0] | map_values(.data)'
}
# Prints the gate's properties and the daemon log's tail (after a failure).
dump_state() {
	echo "#   gate: $(gate_all)"
	[[ -n ${DAEMON_LOG:-} && -f $DAEMON_LOG ]] && tail -n 15 "$DAEMON_LOG" | sed 's/^/#   log: /'
}
# wait_state STATE [SECONDS]: the gate reaches STATE.
wait_state() {
	if wait_until "${2:-$TIMEOUT}" gate_state_is "$1"; then
		ok "State becomes $1"
	else
		not_ok "State becomes $1 (within ${2:-$TIMEOUT} s; it is $(gate_prop State))"
		dump_state
		return 1
	fi
}
# The program pid the daemon reports, remembered for cleanup.
program_pid() {
	local pid
	pid=$(gate_prop ProgramPid)
	[[ -n $pid && $pid != 0 ]] && echo "$pid" >>"$PROGRAMS"
	echo "${pid:-0}"
}
# $DAEMON_PID owns org.diskgate1 and its gate object answers.
daemon_owns_bus() {
	local owner
	owner=$(dbus-send --bus="$BUS" --dest=org.freedesktop.DBus --print-reply /org/freedesktop/DBus \
		org.freedesktop.DBus.GetConnectionUnixProcessID string:org.diskgate1 2>/dev/null | awk '/uint32/ { print $2 }')
	[[ $owner == "$DAEMON_PID" && -n $(gate_prop State) ]]
}

# ---- mounts ----

# mounts_at DIR: "FSTYPE SOURCE" per mount on DIR, oldest first.
mounts_at() {
	awk -v t="$1" '$5 == t { for (i = 7; $i != "-"; i++); print $(i + 1), $(i + 2) }' /proc/self/mountinfo
}
mount_count() { mounts_at "$1" | grep -c .; }
nothing_mounted() { [[ $(mount_count "$1") == 0 ]]; }
# locked DIR: mode 000 and immutable, as the gate leaves a bare target.
locked() { [[ $(stat -c %a "$1") == 0 && $(lsattr -d "$1" 2>/dev/null | cut -d' ' -f1) == *i* ]]; }

# ---- restic through the REST server on 127.0.0.1:$PORT ----

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local port _
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 30000))
		if [[ -z $(ss -Htan "( sport = :$port or dport = :$port )") ]]; then
			echo "$port"
			return 0
		fi
	done
	return 1
}
# shellcheck disable=SC2153  # PORT is the test's
restic_() { timeout 120 restic --no-cache -r "rest:http://127.0.0.1:$PORT/" "$@" 2>>"$WORK/restic.log"; }
