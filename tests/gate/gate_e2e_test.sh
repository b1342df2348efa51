#!/bin/bash
# The gate end to end: diskgated mounts real loop devices and runs a real
# REST server (rest-server, else rclone serve restic) that real restic
# backs up to, over a private D-Bus.
#
#   tests/gate/gate_e2e_test.sh DISKGATED DISKGATECTL
#
# GATE_E2E_KEEP=1 keeps the work directory (daemon logs).
#
# Checks: a two-device btrfs RAID1 mounted only once both members are there,
# restic init/backup/check through the gate, a member's removal (a kernel
# remove uevent) stopping the program and unmounting, its return; SIGTERM;
# ext4 by UUID=, LABEL= and PARTUUID= (vfat/exFAT when the kernel has them);
# adoption of our own mount after kill -9 and refusal of a foreign one; the
# restart backoff of a crashing program; SIGKILL after --stop-timeout for a
# program that ignores SIGTERM; a gokrazy env.txt + flags.txt configuration.
# One line per check: "ok - ..." or "not ok - ...".
# Exit: 0 all passed, 1 a check failed, 77 skipped (meson's convention).
set -u -o pipefail

# shellcheck source=../lib/checks.sh
source "$(dirname "$(readlink -f "$0")")/../lib/checks.sh"
# shellcheck source=../lib/gate.sh
source "$(dirname "$(readlink -f "$0")")/../lib/gate.sh"

diskgated_args "$@"
TIMEOUT=15  # seconds for anything the daemon should do "at once" (2 busy cores)

need_root "loop devices, mount"
need_loop_control
need_fs btrfs
need_fs ext4
need_restic_server
need_tools mkfs.btrfs btrfs mkfs.ext4 sfdisk partx losetup blkid chattr lsattr dbus-daemon dbus-send busctl \
	jq ss timeout
need_free_loop
need_executables "$DISKGATED" "$DISKGATECTL"

WORK=$(mktemp -d /tmp/gate-e2e.XXXXXX)
BUS=unix:path=$WORK/bus.sock
BUS_PID=''
DAEMON_PID=''     # the daemon now running (one at a time: one bus name)
DAEMONS=$WORK/daemons    # every daemon pid we started
PROGRAMS=$WORK/programs  # every program pid the daemons reported
LOOPS=$WORK/loops        # every loop device we attached
: >"$DAEMONS" >"$PROGRAMS" >"$LOOPS"
export RESTIC_PASSWORD=gate-e2e-password
export RCLONE_CONFIG=/dev/null XDG_CACHE_HOME=$WORK/cache

# programs_on DIR: processes other than our daemons (whose arguments name
# DIR too) with DIR in their command line.
programs_on() { pids_with "$1" | grep -vxF -f "$DAEMONS"; }

# Stops what we started, by pid, unmounts what is mounted under $WORK,
# detaches our loop devices (only those still backed by our images: a node
# we detached may be someone else's by now) and lifts the immutable
# attribute the gate sets, so that the directory can be removed.
cleanup() {
	local status=$? pid deadline
	trap '' INT TERM
	# Daemons first (SIGTERM: they stop their program and unmount).
	while read -r pid; do
		ours "$pid" || continue
		kill -TERM "$pid" 2>/dev/null
		deadline=$((SECONDS + 15))
		while ! has_exited "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done <"$DAEMONS"
	kill_ours_and_unmount
	detach_our_loops
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	chattr -R -i "$WORK" 2>/dev/null
	finish_cleanup "$status" "${GATE_E2E_KEEP:-}" "(daemon logs *.log)"
}
on_exit_cleanup

# ---- helpers ----

not_writable() { ! touch "$1/gate-e2e-write-probe" 2>/dev/null; }

# One daemon at a time (one bus name): a check that failed may have left
# the previous one running.
stop_previous() {
	if [[ -n $DAEMON_PID ]] && ! has_exited "$DAEMON_PID"; then
		echo "# stopping the previous daemon (pid $DAEMON_PID) left running by a failed check"
		kill -TERM "$DAEMON_PID"
		wait_until "$TIMEOUT" has_exited "$DAEMON_PID" || kill -KILL "$DAEMON_PID"
	fi
	[[ -n $DAEMON_PID ]] && wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=''
}
# start_daemon NAME ARGS...: diskgated with ARGS on our bus; waits until it
# owns org.diskgate1 and its gate object answers. Log in $WORK/NAME.log.
start_daemon() {
	local name=$1
	shift
	stop_previous
	DAEMON_LOG=$WORK/$name.log
	"$DISKGATED" --bus "$BUS" --uevents kernel --log-level debug "$@" >"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>"$DAEMONS"
	daemon_up "$name"
}
daemon_up() {
	if wait_until "$TIMEOUT" daemon_owns_bus; then
		ok "$1: diskgated (pid $DAEMON_PID) owns org.diskgate1 and serves /org/diskgate1/gate"
	else
		not_ok "$1: diskgated starts and serves /org/diskgate1/gate"
		sed 's/^/#   log: /' "$DAEMON_LOG"
		return 1
	fi
}
# term_daemon NAME SECONDS: SIGTERM; the daemon exits 0 within SECONDS.
term_daemon() {
	local name=$1 limit=$2 start elapsed status
	if [[ -z $DAEMON_PID ]]; then
		not_ok "$name: SIGTERM: no daemon runs"
		return
	fi
	start=$(now_ms)
	kill -TERM "$DAEMON_PID"
	if wait_until "$limit" has_exited "$DAEMON_PID"; then
		elapsed=$(($(now_ms) - start))
		wait "$DAEMON_PID"
		status=$?
		check "$name: SIGTERM: diskgated exits with status 0 (after $elapsed ms, limit ${limit} s)" 0 "$status"
		if ((elapsed > limit * 1000)); then not_ok "$name: SIGTERM: exit within ${limit} s (took $elapsed ms)"; fi
	else
		not_ok "$name: SIGTERM: diskgated exits within ${limit} s"
		dump_state
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	DAEMON_PID=''
}

# The REST server serving DIR/data on 127.0.0.1:PORT, as program arguments
# of diskgated: --exec NAME -- ARGS.
server_args() {
	local dir=$1 port=$2
	if [[ $SERVER == rest-server ]]; then
		echo --exec rest-server -- --path "$dir/data" --listen "127.0.0.1:$port" --no-auth
	else
		echo --exec rclone -- serve restic --addr "127.0.0.1:$port" "$dir/data"
	fi
}
# restic_q ARGS...: quiet; its output goes to restic.log, shown on failure.
restic_q() {
	echo "\$ restic $*" >>"$WORK/restic.log"
	restic_ "$@" >>"$WORK/restic.log" && return 0
	tail -n 10 "$WORK/restic.log" | sed 's/^/#   restic: /'
	return 1
}

echo "# REST server: $SERVER; work directory $WORK"

# ---- the bus, images ----

dbus-daemon --session --fork --print-pid=1 --address="$BUS" >"$WORK/bus.pid" 2>"$WORK/bus.err" || {
	echo "not ok - dbus-daemon did not start: $(cat "$WORK/bus.err")"
	exit 1
}
BUS_PID=$(<"$WORK/bus.pid")
wait_until "$TIMEOUT" test -S "$WORK/bus.sock" || { not_ok "private bus socket appears"; exit 1; }

PORT=$(free_port) || { not_ok "a free TCP port on 127.0.0.1"; exit 1; }
TOKEN=$(rand_hex 3)  # labels and UUIDs unique to this run: others may attach images too

BTRFS_UUID=$(new_uuid)
truncate -s 128M "$WORK/r1.img" "$WORK/r2.img"
if ! mkfs.btrfs -q -f -U "$BTRFS_UUID" -L "dg-e2e-$TOKEN" -d raid1 -m raid1 "$WORK/r1.img" "$WORK/r2.img" \
	>"$WORK/mkfs.err" 2>&1; then
	not_ok "mkfs.btrfs -d raid1 -m raid1 on two 128 MiB images: $(cat "$WORK/mkfs.err")"
	exit 1
fi
check "blkid sees both images as one btrfs" "$BTRFS_UUID $BTRFS_UUID" \
	"$(blkid -p -o value -s UUID "$WORK/r1.img") $(blkid -p -o value -s UUID "$WORK/r2.img")"

mkdir -p "$WORK/src/sub"
for i in 1 2 3 4 5; do head -c $((i * 20000)) /dev/urandom >"$WORK/src/file$i"; done
seq 1 10000 >"$WORK/src/sub/numbers.txt"
echo "hello gate" >"$WORK/src/sub/hello.txt"

# =====================================================================
# 1. End to end: btrfs RAID1, mounted once both members are there
# =====================================================================
echo "# -- end to end: btrfs RAID1 and $SERVER"
T=$WORK/e2e/mnt
L1=$(attach "$WORK/r1.img") || { not_ok "attach r1.img"; exit 1; }
read -ra PROG <<<"$(server_args "$T" "$PORT")"
start_daemon e2e --source "UUID=$BTRFS_UUID" --target "$T" --stop-timeout 5 "${PROG[@]}" || exit 1

one_of_two() { [[ $(gate_prop MembersPresent) == 1 && $(gate_prop MembersExpected) == 2 ]] && gate_state_is waiting; }
if wait_until "$TIMEOUT" one_of_two; then
	ok "e2e: with one member, State waiting and MembersPresent 1 of MembersExpected 2"
else
	not_ok "e2e: with one member, State waiting and MembersPresent 1 of MembersExpected 2"
	dump_state
fi
check_cmd "e2e: one member: nothing mounted on the target" nothing_mounted "$T"
check "e2e: one member: ProgramPid 0" 0 "$(program_pid)"
check "e2e: one member: no process runs on the target" "" "$(programs_on "$T/data")"
check "e2e: one member: target mode 000" 0 "$(stat -c %a "$T")"
check_cmd "e2e: one member: target immutable (lsattr -d: $(lsattr -d "$T" | cut -d' ' -f1))" locked "$T"
check_cmd "e2e: one member: the bare target is not writable" not_writable "$T"

L2=$(attach "$WORK/r2.img") || { not_ok "attach r2.img"; exit 1; }
wait_state running
check "e2e: one mount on the target, btrfs from a member" "btrfs" "$(mounts_at "$T" | awk '{print $1}' | paste -sd' ')"
SHOW=$(btrfs filesystem show "$T" 2>&1)
if grep -q "path $L1\$" <<<"$SHOW" && grep -q "path $L2\$" <<<"$SHOW"; then
	ok "e2e: btrfs filesystem show on the target lists both $L1 and $L2"
else
	not_ok "e2e: btrfs filesystem show on the target lists both $L1 and $L2"
	sed 's/^/#   /' <<<"$SHOW"
fi
MD=$(gate_prop MountData)
if [[ ,$MD, == *",device=$L1,"* && ,$MD, == *",device=$L2,"* ]]; then
	ok "e2e: MountData has device=$L1 and device=$L2 ($MD)"
else
	not_ok "e2e: MountData has device=$L1 and device=$L2 (it is '$MD')"
fi
FS_MD=$(busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 org.diskgate1.Manager GetFilesystem \
	s "$BTRFS_UUID" 2>/dev/null | jq -r '.data[0].mount_data.data')
check "e2e: GetFilesystem mount_data is the gate's MountData" "$MD" "$FS_MD"
check "e2e: Device, FsType, MembersPresent" "$L1 btrfs 2" \
	"$(gate_prop Device) $(gate_prop FsType) $(gate_prop MembersPresent)"
# diskgated writes GetManagedObjects itself (src/dbus/service.cc): the gate
# must be there as its own properties say.
check "e2e: GetManagedObjects gives /org/diskgate1/gate the Gate's properties (GetAll)" "$(gate_all)" \
	"$(busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 org.freedesktop.DBus.ObjectManager \
		GetManagedObjects | jq -c '.data[0]["/org/diskgate1/gate"]["org.diskgate1.Gate"] | map_values(.data)')"
P1=$(program_pid)
if [[ $P1 != 0 && $(tr '\0' ' ' 2>/dev/null <"/proc/$P1/cmdline") == *"$T/data"* ]]; then
	ok "e2e: ProgramPid $P1 is $SERVER on $T/data"
else
	not_ok "e2e: ProgramPid ($P1) is $SERVER on $T/data"
fi
check "e2e: the program leads its own process group" "$P1" "$(ps -o pgid= -p "$P1" | tr -d ' ')"
MOUNTED_AT=$(gate_prop MountedAtUsec) STARTED_AT=$(gate_prop StartedAtUsec)
if ((MOUNTED_AT > 0 && STARTED_AT >= MOUNTED_AT)); then
	ok "e2e: MountedAtUsec ($MOUNTED_AT) <= StartedAtUsec ($STARTED_AT), both set"
else
	not_ok "e2e: MountedAtUsec ($MOUNTED_AT) <= StartedAtUsec ($STARTED_AT), both set"
fi
STATUS_TEXT=$("$DISKGATECTL" --bus "$BUS" status 2>&1)
if grep -q '^State: *running' <<<"$STATUS_TEXT" && grep -q "pid $P1" <<<"$STATUS_TEXT"; then
	ok "e2e: diskgatectl status says running, pid $P1"
else
	not_ok "e2e: diskgatectl status says running, pid $P1"
	sed 's/^/#   /' <<<"$STATUS_TEXT"
fi

if wait_until "$TIMEOUT" port_open "$PORT"; then
	ok "e2e: $SERVER listens on 127.0.0.1:$PORT"
else
	not_ok "e2e: $SERVER listens on 127.0.0.1:$PORT"
	dump_state
fi
check_cmd "e2e: restic init" restic_q init
check_cmd "e2e: restic backup of a test directory" restic_q backup "$WORK/src"
check_cmd "e2e: restic check" restic_q check
SNAPSHOT=$(restic_ snapshots --json 2>/dev/null | jq -r '.[0].id // empty')
[[ -n $SNAPSHOT ]] && ok "e2e: restic lists the snapshot ${SNAPSHOT:0:8}" || not_ok "e2e: restic lists a snapshot"
check_cmd "e2e: the repository is on the mounted btrfs ($T/data/config)" test -f "$T/data/config"

# A member goes away: the program stops and the target is unmounted.
uevent "$L2" remove
program_gone() { [[ $(gate_prop ProgramPid) == 0 ]] && ! kill -0 "$P1" 2>/dev/null; }
if wait_until "$TIMEOUT" program_gone; then
	ok "e2e: remove uevent of $L2: ProgramPid 0 and process $P1 is gone"
else
	not_ok "e2e: remove uevent of $L2: ProgramPid 0 and process $P1 is gone"
	dump_state
fi
if wait_until "$TIMEOUT" nothing_mounted "$T"; then
	ok "e2e: remove uevent of $L2: the target is unmounted"
else
	not_ok "e2e: remove uevent of $L2: the target is unmounted ($(mounts_at "$T"))"
fi
wait_state waiting
check "e2e: member gone: MembersPresent 1, MountData empty" "1 " "$(gate_prop MembersPresent) $(gate_prop MountData)"
check_cmd "e2e: member gone: the target is locked again (mode 000, immutable)" locked "$T"
check_cmd "e2e: member gone: the target is not writable (touch fails)" not_writable "$T"
check_cmd "e2e: member gone: $SERVER no longer listens" eval '! port_open "$PORT"'

# It comes back: mounted again, served again, the data still there.
uevent "$L2" add
wait_state running
check "e2e: member back: mounted once more (one mount)" 1 "$(mount_count "$T")"
P2=$(program_pid)
[[ $P2 != 0 && $P2 != "$P1" ]] && ok "e2e: member back: a new program (pid $P2)" || not_ok "e2e: member back: a new program (pid $P2, was $P1)"
wait_until "$TIMEOUT" port_open "$PORT" || not_ok "e2e: member back: $SERVER listens again"
check_cmd "e2e: member back: restic check passes" restic_q check
check "e2e: member back: the earlier snapshot is there" "$SNAPSHOT" \
	"$(restic_ snapshots --json 2>/dev/null | jq -r --arg s "$SNAPSHOT" '.[] | select(.id == $s) | .id')"

term_daemon e2e 7  # --stop-timeout 5 + 2 s
check_cmd "e2e: after SIGTERM nothing is mounted on the target" nothing_mounted "$T"
check "e2e: after SIGTERM no process runs on the target" "" "$(programs_on "$T/data")"
check_cmd "e2e: after SIGTERM the target is locked" locked "$T"

# =====================================================================
# 2. Adoption after kill -9, refusal of a foreign mount
# =====================================================================
echo "# -- adoption after a daemon restart"
start_daemon adopt-1 --source "UUID=$BTRFS_UUID" --target "$T" --stop-timeout 5 "${PROG[@]}"
wait_state running
PA=$(program_pid)
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
[[ $PA != 0 ]] && kill -KILL -- "-$PA" 2>/dev/null
wait_until "$TIMEOUT" eval '! kill -0 "$PA" 2>/dev/null' || not_ok "adopt: the program's group dies of SIGKILL"
check "adopt: after kill -9 of daemon and program, the mount stays" "btrfs" "$(mounts_at "$T" | awk '{print $1}')"
start_daemon adopt-2 --source "UUID=$BTRFS_UUID" --target "$T" --stop-timeout 5 "${PROG[@]}"
wait_state running
check "adopt: still exactly one mount on the target" 1 "$(mount_count "$T")"
check_cmd "adopt: the log says it adopted the mount" grep -q "adopting .* already mounted on $T" "$DAEMON_LOG"
check "adopt: it did not call mount again (MountedAtUsec 0)" 0 "$(gate_prop MountedAtUsec)"
PB=$(program_pid)
[[ $PB != 0 ]] && kill -0 "$PB" 2>/dev/null && ok "adopt: a program runs again (pid $PB)" || not_ok "adopt: a program runs again"
wait_until "$TIMEOUT" port_open "$PORT" || not_ok "adopt: $SERVER listens again"
check "adopt: restic sees the snapshot through the adopted mount" "$SNAPSHOT" \
	"$(restic_ snapshots --json 2>/dev/null | jq -r --arg s "$SNAPSHOT" '.[] | select(.id == $s) | .id')"
term_daemon adopt 7
check_cmd "adopt: after SIGTERM nothing is mounted" nothing_mounted "$T"

echo "# -- refusal of a foreign mount"
TF=$WORK/foreign/mnt
mkdir -p "$TF"
if mount -t tmpfs -o size=1m "gate-e2e-foreign-$TOKEN" "$TF"; then
	start_daemon foreign --source "UUID=$BTRFS_UUID" --target "$TF" --stop-timeout 5 "${PROG[@]}"
	wait_state failed
	LE=$(gate_prop LastError)
	[[ $LE == *tmpfs* ]] && ok "foreign: LastError names tmpfs ($LE)" || not_ok "foreign: LastError names tmpfs ('$LE')"
	check "foreign: only the tmpfs is mounted there" "tmpfs gate-e2e-foreign-$TOKEN" "$(mounts_at "$TF")"
	check "foreign: no program started" 0 "$(program_pid)"
	check "foreign: the btrfs is mounted nowhere" "" \
		"$(awk -v a="$L1" -v b="$L2" '{ for (i = 7; $i != "-"; i++); if ($(i + 2) == a || $(i + 2) == b) print $5 }' /proc/self/mountinfo)"
	term_daemon foreign 7
	check "foreign: the daemon left the foreign tmpfs mounted" "tmpfs gate-e2e-foreign-$TOKEN" "$(mounts_at "$TF")"
	umount "$TF"
else
	not_ok "foreign: mount a tmpfs on $TF"
fi

# =====================================================================
# 3. A program that ignores SIGTERM: SIGKILL after --stop-timeout, then unmount
# =====================================================================
echo "# -- a program that ignores SIGTERM (--stop-timeout 2)"
TI=$WORK/ignore/mnt
start_daemon ignore-term --source "UUID=$BTRFS_UUID" --target "$TI" --stop-timeout 2 \
	--exec /bin/sh -- -c 'trap "" TERM; while :; do sleep 1; done' "$TI/ignore-term"
wait_state running
PI=$(program_pid)
REMOVED=$(now_ms)
uevent "$L2" remove
sleep 1
if kill -0 "$PI" 2>/dev/null && [[ $(mount_count "$TI") == 1 ]] && gate_state_is stopping; then
	ok "ignore-term: 1 s after the removal it still runs, State stopping, still mounted"
else
	not_ok "ignore-term: 1 s after the removal it still runs, State stopping, still mounted"
	dump_state
fi
if wait_until "$TIMEOUT" eval '! kill -0 "$PI" 2>/dev/null'; then
	GONE=$(($(now_ms) - REMOVED))
	if ((GONE >= 1800 && GONE <= 3500)); then
		ok "ignore-term: the program died ${GONE} ms after the removal (~2 s)"
	else
		not_ok "ignore-term: the program died ${GONE} ms after the removal (expected ~2000)"
	fi
else
	not_ok "ignore-term: the program dies after the stop timeout"
	dump_state
fi
check_cmd "ignore-term: then the target is unmounted" wait_until "$TIMEOUT" nothing_mounted "$TI"
check "ignore-term: LastExitStatus" "killed by signal 9" "$(gate_prop LastExitStatus)"
KILL_LINE=$(grep -n 'ignored SIGTERM' "$DAEMON_LOG" | head -n1 | cut -d: -f1)
UNMOUNT_LINE=$(grep -n "unmounted $TI" "$DAEMON_LOG" | head -n1 | cut -d: -f1)
if [[ -n $KILL_LINE && -n $UNMOUNT_LINE ]] && ((KILL_LINE < UNMOUNT_LINE)); then
	ok "ignore-term: the log says SIGKILL (line $KILL_LINE) before the unmount (line $UNMOUNT_LINE)"
else
	not_ok "ignore-term: the log says SIGKILL before the unmount ('$KILL_LINE' '$UNMOUNT_LINE')"
	dump_state
fi
uevent "$L2" add
wait_state running
term_daemon ignore-term 4  # --stop-timeout 2 + 2 s (the program ignores SIGTERM here too)
check_cmd "ignore-term: after SIGTERM nothing is mounted" nothing_mounted "$TI"

# =====================================================================
# 4. gokrazy: env.txt and flags.txt as the wrapper had them
# =====================================================================
echo "# -- the wrapper's gokrazy configuration (env.txt, flags.txt)"
TG=$WORK/gokrazy/perm/restic
mkdir -p "$WORK/gokrazy"
printf 'MNT_SOURCE=UUID=%s\nMNT_TARGET=%s\nMNT_FSTYPE=btrfs\n' "$BTRFS_UUID" "$TG" >"$WORK/gokrazy/env.txt"
PREFIX=(--bus "$BUS" --uevents kernel --log-level debug)
if [[ $SERVER == rest-server ]]; then
	printf '%s\n' -- --path "$TG/data" --listen "127.0.0.1:$PORT" --no-auth >"$WORK/gokrazy/flags.txt"
else
	# rclone is not the wrapper's program (rest-server is the default): name
	# it with --exec, before flags.txt's "--".
	echo "# rest-server is not installed: the gokrazy case runs rclone through --exec"
	PREFIX+=(--exec rclone)
	printf '%s\n' -- serve restic --addr "127.0.0.1:$PORT" "$TG/data" >"$WORK/gokrazy/flags.txt"
fi
mapfile -t ENV_LINES <"$WORK/gokrazy/env.txt"
mapfile -t FLAG_LINES <"$WORK/gokrazy/flags.txt"
check "gokrazy: flags.txt starts with --" -- "${FLAG_LINES[0]}"
stop_previous
DAEMON_LOG=$WORK/gokrazy.log
env -i PATH="$PATH" HOME="$WORK" RCLONE_CONFIG=/dev/null XDG_CACHE_HOME="$WORK/cache" "${ENV_LINES[@]}" \
	"$DISKGATED" "${PREFIX[@]}" "${FLAG_LINES[@]}" >"$DAEMON_LOG" 2>&1 &
DAEMON_PID=$!
echo "$DAEMON_PID" >>"$DAEMONS"
if daemon_up gokrazy; then
	wait_state running
	check "gokrazy: Source, Target, FsType from env.txt" "UUID=$BTRFS_UUID $TG btrfs" \
		"$(gate_prop Source) $(gate_prop Target) $(gate_prop FsType)"
	check "gokrazy: one btrfs mount on MNT_TARGET" "btrfs" "$(mounts_at "$TG" | awk '{print $1}' | paste -sd' ')"
	PG=$(program_pid)
	EXPECTED_CMD=$([[ $SERVER == rest-server ]] && command -v rest-server || command -v rclone)
	EXPECTED_CMD="$EXPECTED_CMD ${FLAG_LINES[*]:1}"
	check "gokrazy: the program's command line is flags.txt after --" "$EXPECTED_CMD" \
		"$(tr '\0' ' ' 2>/dev/null <"/proc/$PG/cmdline" | sed 's/ $//')"
	wait_until "$TIMEOUT" port_open "$PORT" || not_ok "gokrazy: $SERVER listens on 127.0.0.1:$PORT"
	check "gokrazy: it serves the repository (the e2e snapshot is there)" "$SNAPSHOT" \
		"$(restic_ snapshots --json 2>/dev/null | jq -r --arg s "$SNAPSHOT" '.[] | select(.id == $s) | .id')"
	check_cmd "gokrazy: restic backup through it" restic_q backup "$WORK/src/sub"
	check_cmd "gokrazy: restic check" restic_q check
	term_daemon gokrazy 12  # default --stop-timeout 10 + 2 s
	check_cmd "gokrazy: after SIGTERM nothing is mounted" nothing_mounted "$TG"
fi

# =====================================================================
# 5. Single-device sources: UUID=, LABEL=, PARTUUID= (ext4), vfat, exFAT
# =====================================================================
echo "# -- single-device sources"
EXT4_UUID=$(new_uuid)
truncate -s 32M "$WORK/ext4-uuid.img"
mkfs.ext4 -q -F -U "$EXT4_UUID" "$WORK/ext4-uuid.img"
EXT4_LABEL=dge4-$TOKEN  # not the btrfs label; ext4 labels hold 16 bytes
truncate -s 32M "$WORK/ext4-label.img"
mkfs.ext4 -q -F -L "$EXT4_LABEL" "$WORK/ext4-label.img"
PART_UUID=$(new_uuid)
truncate -s 32M "$WORK/gpt.img"
printf 'label: gpt\nstart=2048, size=40960, uuid=%s\n' "$PART_UUID" | sfdisk -q "$WORK/gpt.img"
mkfs.ext4 -q -F -E offset=$((2048 * 512)) "$WORK/gpt.img" 20480k

# single NAME SPEC TYPE WHEN ATTACH...: the gate on SPEC with a program
# that writes a file on the mount. WHEN: "before" or "after" the daemon
# starts, the device is attached by the command ATTACH (prints the node that
# SPEC must resolve to).
single() {
	local name=$1 spec=$2 type=$3 when=$4 node='' dir=$WORK/single-$1/mnt
	shift 4
	if [[ $when == before ]]; then
		node=$("$@") || { not_ok "$name: attach"; return; }
	fi
	start_daemon "single-$name" --source "$spec" --target "$dir" \
		--exec /bin/sh -- -c 'echo "$$" >"$0/hello"; while :; do sleep 1; done' "$dir" || return
	if [[ $when == after ]]; then
		wait_until "$TIMEOUT" gate_state_is waiting || not_ok "$name: State waiting before the device is there"
		check_cmd "$name: nothing mounted before the device is there" nothing_mounted "$dir"
		node=$("$@") || { not_ok "$name: attach"; return; }
	fi
	wait_state running || return
	check "$name: Device $node, FsType $type" "$node $type" "$(gate_prop Device) $(gate_prop FsType)"
	check "$name: one $type mount from $node on the target" "$type $node" "$(mounts_at "$dir")"
	local pid
	pid=$(program_pid)
	check_cmd "$name: the program ran on the mounted filesystem (wrote hello with its pid $pid)" \
		wait_until "$TIMEOUT" grep -qx "$pid" "$dir/hello"
	term_daemon "$name" 12
	check_cmd "$name: after SIGTERM nothing is mounted" nothing_mounted "$dir"
	check_cmd "$name: after SIGTERM the file is on the filesystem, not the bare target" test ! -e "$dir/hello"
	check_cmd "$name: after SIGTERM the target is locked" locked "$dir"
}
attach_partition() {
	local node
	node=$(attach "$1") || return 1
	[[ -e ${node}p1 ]] || partx -a "$node" || return 1
	wait_until "$TIMEOUT" test -b "${node}p1" || return 1
	echo "${node}p1"
}

single ext4-uuid "UUID=$EXT4_UUID" ext4 before attach "$WORK/ext4-uuid.img"
EXT4_UUID_NODE=$(losetup -n -O NAME -j "$WORK/ext4-uuid.img" | head -n1)
single ext4-label "LABEL=$EXT4_LABEL" ext4 after attach "$WORK/ext4-label.img"
single ext4-partuuid "PARTUUID=$PART_UUID" ext4 after attach_partition "$WORK/gpt.img"

for fs in vfat exfat; do
	mkfs=mkfs.$fs
	if ! grep -qw "$fs" /proc/filesystems; then
		echo "ok - $fs by UUID= # SKIP the kernel has no $fs (not in /proc/filesystems)"
	elif ! command -v "$mkfs" >/dev/null; then
		echo "ok - $fs by UUID= # SKIP $mkfs is not installed"
	else
		truncate -s 32M "$WORK/$fs.img"
		if [[ $fs == vfat ]]; then "$mkfs" -n "DGE$TOKEN" "$WORK/$fs.img" >/dev/null; else "$mkfs" "$WORK/$fs.img" >/dev/null; fi
		single "$fs" "UUID=$(blkid -p -o value -s UUID "$WORK/$fs.img")" "$fs" after attach "$WORK/$fs.img"
	fi
done

# =====================================================================
# 6. A program that crashes in a loop: backoff 1 s, 2 s, 4 s
# =====================================================================
echo "# -- a program that crashes in a loop"
TC=$WORK/crash/mnt
start_daemon crash --source "UUID=$EXT4_UUID" --target "$TC" --exec /bin/sh -- -c 'exit 3' "$TC/crash"
# Every distinct StartedAtUsec is one start; Restarts counts the exits.
STARTS=()
RESTARTS_SEEN=()
deadline=$((SECONDS + 20))
while ((${#STARTS[@]} < 4 && SECONDS < deadline)); do
	s=$(gate_prop StartedAtUsec)
	r=$(gate_prop Restarts)
	if [[ -n $s && $s != 0 && (${#STARTS[@]} == 0 || $s != "${STARTS[-1]}") ]]; then
		STARTS+=("$s")
	fi
	[[ -n $r && (${#RESTARTS_SEEN[@]} == 0 || $r != "${RESTARTS_SEEN[-1]}") ]] && RESTARTS_SEEN+=("$r")
	sleep 0.05
done
if ((${#STARTS[@]} >= 4)); then
	G1=$(((STARTS[1] - STARTS[0]) / 1000)) G2=$(((STARTS[2] - STARTS[1]) / 1000)) G3=$(((STARTS[3] - STARTS[2]) / 1000))
	gap_ok() { (($1 >= $2 - 50 && $1 <= $2 + 500)); }
	if gap_ok "$G1" 1000 && gap_ok "$G2" 2000 && gap_ok "$G3" 4000; then
		ok "crash: gaps between starts grow: $G1 ms, $G2 ms, $G3 ms (1 s, 2 s, 4 s)"
	else
		not_ok "crash: gaps between starts grow 1 s, 2 s, 4 s (they are $G1 ms, $G2 ms, $G3 ms)"
	fi
else
	not_ok "crash: four starts within 20 s (saw ${#STARTS[@]}: ${STARTS[*]})"
	dump_state
fi
if [[ ${RESTARTS_SEEN[*]} =~ (^| )1\ 2\ 3( |$) ]]; then
	ok "crash: Restarts increases one by one (${RESTARTS_SEEN[*]})"
else
	not_ok "crash: Restarts increases one by one (seen: ${RESTARTS_SEEN[*]})"
fi
check "crash: LastExitStatus" "exited with status 3" "$(gate_prop LastExitStatus)"
check "crash: the log says restarting in 1000, 2000, 4000 ms" "1000 2000 4000" \
	"$(sed -n 's/.*gate: restarting .* in \([0-9]*\) ms$/\1/p' "$DAEMON_LOG" | head -n3 | paste -sd' ')"
check "crash: the mount stays while it restarts" "ext4 $EXT4_UUID_NODE" "$(mounts_at "$TC")"
term_daemon crash 12
check_cmd "crash: after SIGTERM nothing is mounted" nothing_mounted "$TC"

echo "# gate-e2e: $PASSED passed, $FAILED failed"
((FAILED == 0)) || exit 1
exit 0
