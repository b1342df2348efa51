#!/bin/bash
# The hotplug storm (issue 12): diskgated on a private D-Bus, hit by hundreds
# of random block device events over its own loop devices while clients
# call it, must end with the map blkid would give, have signalled every
# change, and be back to its resources.
#
#   tests/storm/storm_test.sh DISKGATED DISKGATECTL STORM_CLIENT kernel|udev
#
# Environment: STORM_SEED (printed at start: the same seed replays the same
# sequence of events), STORM_EVENTS (default 500), STORM_LOOPS (images, and
# loop devices attached at once at most; default 16), STORM_KEEP=1 keeps the
# work directory (events.log, signals.jsonl, diskgated.log, ...; kept without
# the images after a failure anyway). STORM_SELFTEST checks the checks:
# drop-signal leaves one signal out of the replay, corrupt-blkid alters one
# value blkid gave; either must make the test fail.
#
# What happens:
#  - STORM_LOOPS images of 128 MiB (ext4, vfat, exFAT, GPT with ext4 in a
#    partition, empty; a 3-device btrfs over three of them), half attached
#    on loop devices of a range of node numbers nobody uses (the pool).
#  - A watcher (storm-client watch) subscribes to the Manager's signals and
#    takes the starting ListDevices; two clients (storm-client hammer) call
#    Resolve, ListDevices and GetManagedObjects in a loop.
#  - STORM_EVENTS events in random order: attach (an image on a free pool
#    node), detach (partitions first, as a disk takes them along), `remove`
#    uevents (a disk or partition, brought back with `add` later or at the
#    end), LOOP_CTL_REMOVE of a detached node, mkfs (ext4, vfat, exFAT,
#    btrfs) over a disk or partition, relabel (e2label, fatlabel, exfatlabel,
#    btrfs filesystem label), wipefs -a, partition tables written (sfdisk,
#    partx -a) and taken away (partx -d), a 2- or 3-device btrfs made over
#    attached disks, its members leaving (detach) and joining (attach).
#  - Then: udevd's queue drained (udev mode), `add` for devices still
#    removed by a synthetic uevent, no signal for 2 s; every pool device
#    (disks and partitions) in ListDevices against `blkid -p -o export`;
#    Rescan, quiet, the same again; the signals replayed over the starting
#    state against the final ListDevices (and GetManagedObjects against it);
#    the clients' calls all answered; the daemon's fds and threads back to
#    their count before the storm (probe workers end 10 s after their last
#    job), RSS grown less than 10 %; no "internal error" (nor crash) in its
#    log.
# Exit: 0 passed, 1 a check failed, 77 skipped (meson's convention).
set -u -o pipefail

HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/checks.sh
source "$HERE/../lib/checks.sh"

if [[ $# -ne 4 || ( $4 != kernel && $4 != udev ) ]]; then
	echo "usage: $0 DISKGATED DISKGATECTL STORM_CLIENT kernel|udev" >&2
	exit 2
fi
DISKGATED=$(readlink -f "$1")
DISKGATECTL=$(readlink -f "$2")
CLIENT=$(readlink -f "$3")
MODE=$4
UDEVD_BIN=/lib/systemd/systemd-udevd
SEED=${STORM_SEED:-$(((RANDOM << 15 | RANDOM) % 1000000))}
EVENTS=${STORM_EVENTS:-500}
NLOOPS=${STORM_LOOPS:-16}
BUDGET=${STORM_BUDGET:-120}  # seconds for the storm itself (30 s on an idle 2-core VM)
STARTED=$SECONDS
echo "# storm: seed $SEED, $EVENTS events, $NLOOPS loop devices, $MODE uevents"
echo "# replay: STORM_SEED=$SEED STORM_EVENTS=$EVENTS STORM_LOOPS=$NLOOPS $0 $*"
[[ $SEED =~ ^[0-9]+$ && $EVENTS =~ ^[0-9]+$ && $NLOOPS =~ ^[0-9]+$ && $BUDGET =~ ^[0-9]+$ ]] && ((NLOOPS >= 4)) || {
	echo "STORM_SEED, STORM_EVENTS and STORM_BUDGET must be numbers, STORM_LOOPS a number >= 4" >&2
	exit 2
}

need_root "loop devices"
need_loop_control
need_tools mkfs.ext4 mkfs.vfat mkfs.exfat mkfs.btrfs e2label fatlabel exfatlabel btrfs wipefs
need_tools losetup sfdisk partx blkid dbus-daemon jq
need_executables "$DISKGATED" "$DISKGATECTL" "$CLIENT"
if [[ $MODE == udev ]]; then
	# As tests/daemon/daemon_test.sh: our own udevd unless one answers.
	[[ -x $UDEVD_BIN ]] || skip "$UDEVD_BIN is not installed"
	need_tools udevadm
	need_udevd_slot
fi

WORK=$(mktemp -d /tmp/diskgate-storm.XXXXXX)
BUS=unix:path=$WORK/bus.sock
DAEMON_LOG=$WORK/diskgated.log
EVLOG=$WORK/events.log
BUS_PID='' DAEMON_PID='' UDEVD_PID='' WATCH_PID='' CREATED_RUN_UDEV=0
HAMMER_PIDS=()
POOL=()  # node numbers of our loop devices (none existed before)

# Our loop devices: detached (partitions and the kernel's btrfs memory of
# them first) when backed by one of our images, then removed when unbound.
release_pool() {
	local n back
	for n in "${POOL[@]}"; do
		[[ -e /sys/block/loop$n ]] || continue
		back=$(cat "/sys/block/loop$n/loop/backing_file" 2>/dev/null)
		if [[ -n $back && $back != "$WORK"/* ]]; then continue; fi  # someone else's by now
		btrfs device scan --forget "/dev/loop$n" >/dev/null 2>&1
		partx -d "/dev/loop$n" >/dev/null 2>&1
		[[ -n $back ]] && losetup -d "/dev/loop$n" 2>/dev/null
	done
	for n in "${POOL[@]}"; do
		[[ -e /sys/block/loop$n && ! -e /sys/block/loop$n/loop/backing_file ]] || continue
		"$CLIENT" loop-remove "$n" 2>/dev/null
	done
}
cleanup() {
	local status=$? pid
	trap '' INT TERM
	: >"$WORK/stop"
	for pid in "$CHILD" "${HAMMER_PIDS[@]}" "$WATCH_PID" "$DAEMON_PID"; do
		[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	release_pool
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	stop_own_udevd
	echo "# storm: $((SECONDS - STARTED)) s in all"
	if ((status != 0 && status != 77)) && [[ -z ${STORM_KEEP:-} ]]; then
		rm -f "$WORK"/*.img
		finish_cleanup "$status" 1 "(events.log, signals.jsonl, diskgated.log; images removed)"
	fi
	finish_cleanup "$status" "${STORM_KEEP:-}" "(events.log, signals.jsonl, diskgated.log, images)"
}
on_exit_cleanup

# ---- the pool: node numbers that do not exist (nobody's) ----

base=$((256 + SEED % 512))
while :; do
	free=1
	for ((n = base; n < base + NLOOPS + 4; n++)); do
		[[ -e /sys/block/loop$n || -e /dev/loop$n ]] && { free=0; break; }
	done
	((free)) && break
	base=$((base + NLOOPS + 4))
	((base > 4000)) && skip "no free range of loop device numbers"
done
for ((n = base; n < base + NLOOPS + 4; n++)); do POOL+=("$n"); done
echo "# pool: /dev/loop${POOL[0]} .. /dev/loop${POOL[-1]}"
OURS_RE="/dev/loop(${POOL[*]})(p[0-9]+)?"  # our devices' nodes
OURS_RE=${OURS_RE// /|}

# ---- the bus, udevd, the daemon ----

dbus-daemon --session --fork --print-pid=1 --address="$BUS" >"$WORK/bus.pid" 2>"$WORK/bus.err" || {
	echo "not ok - dbus-daemon did not start: $(cat "$WORK/bus.err")"
	exit 1
}
BUS_PID=$(<"$WORK/bus.pid")
wait_until 10 test -S "$WORK/bus.sock" || { not_ok "private bus socket appears"; exit 1; }

if [[ $MODE == udev && ! -e /run/udev/control ]]; then
	[[ -e /run/udev ]] || CREATED_RUN_UDEV=1
	(exec "$UDEVD_BIN" >"$WORK/udevd.log" 2>&1) &
	UDEVD_PID=$!
	wait_until 10 test -S /run/udev/control || { not_ok "systemd-udevd starts: $(cat "$WORK/udevd.log")"; exit 1; }
	udevadm control --ping --timeout=10 >/dev/null || { not_ok "systemd-udevd answers a ping"; exit 1; }
	echo "# started systemd-udevd (pid $UDEVD_PID)"
fi

(exec "$DISKGATED" --bus "$BUS" --uevents "$MODE" --log-level "${STORM_LOG_LEVEL:-info}" 2>"$DAEMON_LOG") &
DAEMON_PID=$!
daemon_ready() {
	grep -q 'ready:' "$DAEMON_LOG" && dbus-send --bus="$BUS" --dest=org.freedesktop.DBus --print-reply \
		/org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:org.diskgate1 >/dev/null 2>&1
}
if ! wait_until 10 daemon_ready; then
	not_ok "diskgated starts and owns org.diskgate1"
	sed 's/^/# /' "$DAEMON_LOG"
	exit 1
fi
ok "diskgated ($MODE uevents, pid $DAEMON_PID) starts and owns org.diskgate1"

# ---- images, the starting set ----

RANDOM=$SEED
# Values from $RANDOM only (no subshell: it would draw its own), so that a
# seed gives the same names.
hex4() { printf -v "$1" '%04x' $((RANDOM ^ (RANDOM << 1) & 0xffff)); }
new_uuid_r() {  # sets U
	local a b c d e f g h
	hex4 a; hex4 b; hex4 c; hex4 d; hex4 e; hex4 f; hex4 g; hex4 h
	U="$a$b-$c-4${d:1}-$(printf '%x' $((8 + RANDOM % 4)))${e:1}-$f$g$h"
}
new_label_r() {  # sets L (6 to 11 characters)
	local a b
	hex4 a; hex4 b
	L="s$a${b:0:$((1 + RANDOM % 4))}"
	[[ ${1:-} == upper ]] && L=${L^^}
}

IMGS=()
for ((i = 0; i < NLOOPS; i++)); do
	IMGS+=("$WORK/img$i.img")
	truncate -s 128M "${IMGS[i]}"
done
declare -A GROUP=()       # slot -> btrfs group made over several slots
mk_initial() {
	local i=$1 img=${IMGS[$1]}
	case $((i % 5)) in
	0) new_uuid_r; new_label_r; mkfs.ext4 -q -F -L "$L" -U "$U" "$img" ;;
	1) new_label_r upper; mkfs.vfat -n "$L" "$img" >/dev/null ;;
	2) new_label_r; mkfs.exfat -L "$L" "$img" >/dev/null ;;
	3)
		new_uuid_r
		printf 'label: gpt\nstart=2048, size=65536, name=sp1\nstart=67584, size=32768, uuid=%s\n' "$U" |
			sfdisk -q "$img" >/dev/null
		new_uuid_r; new_label_r
		mkfs.ext4 -q -F -L "$L" -U "$U" -E offset=$((2048 * 512)) "$img" 32768k
		;;
	4) ;;
	esac
}
for ((i = 3; i < NLOOPS; i++)); do mk_initial "$i"; done
new_uuid_r; new_label_r
mkfs.btrfs -q -f -L "$L" -U "$U" -d raid1 -m raid1 "${IMGS[0]}" "${IMGS[1]}" "${IMGS[2]}" >/dev/null 2>&1 ||
	{ not_ok "mkfs.btrfs over 3 images"; exit 1; }
GROUP=([0]=g0 [1]=g0 [2]=g0)
echo "# images made ($NLOOPS x 128 MiB, a 3-device btrfs over img0..img2)"

# Shadow state: which slot (image) is on which pool node.
declare -A SLOT_NODE=() NODE_SLOT=() MARKED=()
declare -A COUNT=()
FAILED_TOOLS=0 DONE=0

is_bound() { [[ -e /sys/block/loop$1/loop/backing_file ]]; }
parts_of() { local p; for p in /sys/block/loop"$1"/loop"$1"p*; do [[ -e $p ]] && echo "${p##*/}"; done; }
# run KIND TARGET COMMAND...: runs it, logs it; a failing tool is counted, not fatal.
# A tool gets 30 s (TOOL_TIMEOUTS counts those that took longer). It runs
# in the background and is waited for, so that SIGTERM (meson's timeout)
# reaches the trap at once, not when the tool is done.
TOOL_TIMEOUTS=0 CHILD=''
run() {
	local kind=$1 target=$2 rc
	shift 2
	timeout -k 2 30 "$@" <&0 >>"$WORK/tools.log" 2>&1 &
	CHILD=$!
	wait "$CHILD"
	rc=$?
	CHILD=''
	echo "$DONE $kind $target rc=$rc: $*" >>"$EVLOG"
	((rc != 0)) && FAILED_TOOLS=$((FAILED_TOOLS + 1))
	if ((rc == 124 || rc == 137)); then
		TOOL_TIMEOUTS=$((TOOL_TIMEOUTS + 1))
		echo "# event $DONE: $kind: $* took over 30 s" >&2
	fi
	return "$rc"
}
attach_slot() {  # attach_slot SLOT NODE
	if run "${KIND}" "loop$2" losetup "/dev/loop$2" "${IMGS[$1]}"; then
		SLOT_NODE[$1]=$2
		NODE_SLOT[$2]=$1
		unset "MARKED[loop$2]"
		return 0
	fi
	return 1
}
detach_slot() {  # detach_slot SLOT
	local n=${SLOT_NODE[$1]} p
	if [[ -n $(parts_of "$n") ]]; then
		run "${KIND}" "loop$n" partx -d "/dev/loop$n"
		for p in $(parts_of "$n"); do unset "MARKED[$p]"; done
	fi
	run "${KIND}" "loop$n" losetup -d "/dev/loop$n"
	unset "SLOT_NODE[$1]" "NODE_SLOT[$n]" "MARKED[loop$n]"
}
free_nodes() { local n; for n in "${POOL[@]}"; do [[ -z ${NODE_SLOT[$n]:-} ]] && ! is_bound "$n" && echo "$n"; done; }

KIND=setup
for ((i = 0; i < NLOOPS; i += 2)); do
	mapfile -t FREE < <(free_nodes)
	((${#FREE[@]})) || { not_ok "a free loop node of our pool for ${IMGS[i]} (another program took them)"; exit 1; }
	attach_slot "$i" "${FREE[0]}" || { not_ok "attach ${IMGS[i]}"; exit 1; }
done
for n in "${!NODE_SLOT[@]}"; do
	[[ ${NODE_SLOT[$n]} == 3 || $((NODE_SLOT[$n] % 5)) == 3 ]] && partx -a "/dev/loop$n" 2>/dev/null
done
[[ $MODE == udev ]] && udevadm settle --timeout=30
"$CLIENT" quiet --bus "$BUS" --seconds 2 --max 30 --nodes "$OURS_RE" >/dev/null

# ---- the watcher; the daemon's resources at rest ----

(exec "$CLIENT" watch --bus "$BUS" --log "$WORK/signals.jsonl" --final "$WORK/final.json" >"$WORK/watch.out" 2>&1) &
WATCH_PID=$!
wait_until 10 grep -q '^READY' "$WORK/watch.out" || { not_ok "the watcher starts: $(cat "$WORK/watch.out")"; exit 1; }
echo "# watcher: $(grep '^READY' "$WORK/watch.out")"

threads() { ls "/proc/$DAEMON_PID/task" | wc -l; }
fds() { ls "/proc/$DAEMON_PID/fd" | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
# Probe workers beyond the first end 10 s after their last job.
sleep 10.5
THREADS0=$(threads) FDS0=$(fds) RSS0=$(rss_kb)
device_count() { "$CLIENT" list --bus "$BUS" | jq length; }
DEVICES0=$(device_count)
echo "# before the storm: $THREADS0 threads, $FDS0 fds, RSS $RSS0 kB, $DEVICES0 devices in the map"

: >"$WORK/stop"
rm -f "$WORK/stop"
for id in 1 2; do
	(exec "$CLIENT" hammer --bus "$BUS" --stop "$WORK/stop" --id "$id" --seed "$SEED" >"$WORK/hammer$id.out" 2>&1) &
	HAMMER_PIDS+=($!)
done

# ---- the storm ----

# Weighted kinds.
KINDS=()
add_kind() { local k; for ((k = 0; k < $2; k++)); do KINDS+=("$1"); done; }
add_kind attach 12; add_kind detach 8; add_kind btrfs-join 4; add_kind btrfs-leave 4
add_kind remove-uevent 5; add_kind add-uevent 3; add_kind loop-remove 3
add_kind mkfs 14; add_kind relabel 10; add_kind wipefs 5
add_kind part-add 7; add_kind part-remove 5; add_kind btrfs-make 3

pick() {  # pick ITEM...: sets P to one of them; 1 when there are none
	(($# > 0)) || return 1
	local items=("$@")
	P=${items[RANDOM % $#]}
}
attached_slots() { local s; for s in "${!SLOT_NODE[@]}"; do echo "$s"; done | sort -n; }
# A target on an attached slot: the disk, or (30 %) one of its partitions.
pick_target() {  # sets T (a node), TS (its slot), TDISK (1 for a disk)
	local slots parts
	mapfile -t slots < <(attached_slots)
	pick "${slots[@]}" || return 1
	TS=$P
	mapfile -t parts < <(parts_of "${SLOT_NODE[$TS]}")
	if ((${#parts[@]} > 0 && RANDOM % 10 < 3)); then
		pick "${parts[@]}"
		T=/dev/$P TDISK=0
	else
		T=/dev/loop${SLOT_NODE[$TS]} TDISK=1
	fi
}
mkfs_on() {  # mkfs_on TYPE NODE
	case $1 in
	ext4) new_uuid_r; new_label_r; run "$KIND" "$2" mkfs.ext4 -q -F -L "$L" -U "$U" "$2" ;;
	vfat) new_label_r upper; hex4 a; hex4 b; run "$KIND" "$2" mkfs.vfat -I -n "$L" -i "$a$b" "$2" ;;
	exfat) new_label_r; run "$KIND" "$2" mkfs.exfat -L "$L" "$2" ;;
	btrfs) new_uuid_r; new_label_r; run "$KIND" "$2" mkfs.btrfs -q -f -L "$L" -U "$U" "$2" ;;
	esac
}

do_event() {
	local slots free nodes parts n s type members=() k a b
	case $KIND in
	attach | btrfs-join)
		slots=()
		for ((s = 0; s < NLOOPS; s++)); do
			[[ -z ${SLOT_NODE[$s]:-} ]] || continue
			[[ $KIND == attach || -n ${GROUP[$s]:-} ]] && slots+=("$s")
		done
		pick "${slots[@]}" || return 1
		s=$P
		mapfile -t free < <(free_nodes)
		pick "${free[@]}" || return 1
		[[ -n ${GROUP[$s]:-} ]] && KIND=btrfs-join
		attach_slot "$s" "$P"
		;;
	detach | btrfs-leave)
		slots=()
		for s in $(attached_slots); do
			[[ $KIND == detach || -n ${GROUP[$s]:-} ]] && slots+=("$s")
		done
		pick "${slots[@]}" || return 1
		[[ -n ${GROUP[$P]:-} ]] && KIND=btrfs-leave
		detach_slot "$P"
		;;
	remove-uevent)
		pick_target || return 1
		run "$KIND" "$T" sh -c "echo remove >/sys/class/block/${T#/dev/}/uevent"
		MARKED[${T#/dev/}]=1
		;;
	add-uevent)
		nodes=()
		for n in "${!MARKED[@]}"; do [[ -e /sys/class/block/$n ]] && nodes+=("$n"); done
		mapfile -t nodes < <(printf '%s\n' "${nodes[@]}" | sort | grep .)
		pick "${nodes[@]}" || return 1
		run "$KIND" "/dev/$P" sh -c "echo add >/sys/class/block/$P/uevent"
		unset "MARKED[$P]"
		;;
	loop-remove)
		nodes=()
		for n in "${POOL[@]}"; do
			[[ -e /sys/block/loop$n && -z ${NODE_SLOT[$n]:-} ]] && ! is_bound "$n" && nodes+=("$n")
		done
		pick "${nodes[@]}" || return 1
		[[ -n $(parts_of "$P") ]] && run "$KIND" "loop$P" partx -d "/dev/loop$P"
		run "$KIND" "loop$P" "$CLIENT" loop-remove "$P"
		for n in "${!MARKED[@]}"; do [[ $n == "loop$P" || $n == loop${P}p* ]] && unset "MARKED[$n]"; done
		;;
	mkfs)
		pick_target || return 1
		if ((TDISK)); then pick ext4 vfat exfat btrfs; else pick ext4 vfat exfat; fi
		((TDISK)) && unset "GROUP[$TS]"
		mkfs_on "$P" "$T"
		;;
	relabel)
		pick_target || return 1
		type=$(blkid -p -o value -s TYPE "$T" 2>/dev/null)
		case $type in
		ext2 | ext3 | ext4) new_label_r; run "$KIND" "$T" e2label "$T" "$L" ;;
		vfat) new_label_r upper; run "$KIND" "$T" fatlabel "$T" "$L" ;;
		exfat)
			if ((RANDOM % 3 == 0)); then
				hex4 a; hex4 b; run "$KIND" "$T" exfatlabel -i "$T" "0x$a$b"
			else
				new_label_r; run "$KIND" "$T" exfatlabel "$T" "$L"
			fi
			;;
		btrfs) new_label_r; run "$KIND" "$T" btrfs filesystem label "$T" "$L" ;;
		*) return 1 ;;
		esac
		;;
	wipefs)
		pick_target || return 1
		((TDISK)) && unset "GROUP[$TS]"
		run "$KIND" "$T" wipefs -a -q "$T"
		;;
	part-add)
		mapfile -t slots < <(attached_slots)
		pick "${slots[@]}" || return 1
		s=$P n=${SLOT_NODE[$s]}
		unset "GROUP[$s]"
		[[ -n $(parts_of "$n") ]] && run "$KIND" "loop$n" partx -d "/dev/loop$n"
		local table count=$((1 + RANDOM % 3)) start=2048 size
		if ((RANDOM % 2)); then table='label: gpt'; else table='label: dos'; fi
		for ((k = 0; k < count; k++)); do
			size=$((32768 + (RANDOM % 4) * 16384))
			new_label_r
			if [[ $table == *gpt* ]]; then
				table+=$'\n'"start=$start, size=$size, name=$L"
			else
				table+=$'\n'"start=$start, size=$size, type=83"
			fi
			start=$((start + size))
		done
		echo "$table" >"$WORK/table"
		run "$KIND" "loop$n" sfdisk -q --no-reread --no-tell-kernel "/dev/loop$n" <"$WORK/table"
		run "$KIND" "loop$n" partx -a "/dev/loop$n"
		for p in $(parts_of "$n"); do unset "MARKED[$p]"; done
		if ((RANDOM % 10 < 4)) && [[ -e /dev/loop${n}p1 ]]; then
			pick ext4 vfat exfat
			mkfs_on "$P" "/dev/loop${n}p1"
		fi
		;;
	part-remove)
		slots=()
		for s in $(attached_slots); do [[ -n $(parts_of "${SLOT_NODE[$s]}") ]] && slots+=("$s"); done
		pick "${slots[@]}" || return 1
		n=${SLOT_NODE[$P]}
		for p in $(parts_of "$n"); do unset "MARKED[$p]"; done
		run "$KIND" "loop$n" partx -d "/dev/loop$n"
		((RANDOM % 2)) && run "$KIND" "loop$n" sfdisk -q --no-reread --no-tell-kernel --delete "/dev/loop$n"
		;;
	btrfs-make)
		mapfile -t slots < <(attached_slots)
		((${#slots[@]} >= 2)) || return 1
		k=$((2 + RANDOM % 2))
		((k > ${#slots[@]})) && k=${#slots[@]}
		while ((${#members[@]} < k)); do
			pick "${slots[@]}"
			[[ " ${members[*]} " == *" $P "* ]] || members+=("$P")
		done
		nodes=()
		for s in "${members[@]}"; do
			GROUP[$s]=g$DONE
			nodes+=("/dev/loop${SLOT_NODE[$s]}")
		done
		new_uuid_r; new_label_r
		run "$KIND" "${nodes[*]}" mkfs.btrfs -q -f -L "$L" -U "$U" -d raid1 -m raid1 "${nodes[@]}"
		;;
	esac
	return 0
}

STORM_START=$SECONDS
attempts=0
while ((DONE < EVENTS && attempts < EVENTS * 20)); do
	if ((SECONDS - STORM_START >= BUDGET)); then
		echo "# the storm is cut short after $BUDGET s (STORM_BUDGET): $DONE events done"
		break
	fi
	attempts=$((attempts + 1))
	KIND=${KINDS[RANDOM % ${#KINDS[@]}]}
	do_event || continue
	COUNT[$KIND]=$((${COUNT[$KIND]:-0} + 1))
	DONE=$((DONE + 1))
done
STORM_SECONDS=$((SECONDS - STORM_START))
: >"$WORK/stop"
check "the storm did $EVENTS events" "$EVENTS" "$DONE"
summary_kinds=$(for k in "${!COUNT[@]}"; do echo "$k=${COUNT[$k]}"; done | sort | paste -sd' ')
echo "# storm: $DONE events in $STORM_SECONDS s ($FAILED_TOOLS tool runs failed, $TOOL_TIMEOUTS of them took over 30 s): $summary_kinds"

for i in "${!HAMMER_PIDS[@]}"; do
	wait "${HAMMER_PIDS[i]}"
	rc=$?
	HAMMER_PIDS[i]=''
	grep '^not ok' "$WORK/hammer$((i + 1)).out"
	check "client $((i + 1)): every call answered ($(grep -o 'RESULT.*' "$WORK/hammer$((i + 1)).out"))" 0 "$rc"
done

# ---- the end: queues drained, the map at rest ----

[[ $MODE == udev ]] && udevadm settle --timeout=30
healed=0
for n in "${!MARKED[@]}"; do
	[[ -e /sys/class/block/$n ]] || continue
	echo add >"/sys/class/block/$n/uevent" && healed=$((healed + 1))
done
[[ $MODE == udev ]] && udevadm settle --timeout=30
echo "# 'add' uevents for $healed device(s) still removed by a synthetic 'remove'"
# Quiet: no news of our devices for 2 s (others' may come and go meanwhile).
quiet() { "$CLIENT" quiet --bus "$BUS" --seconds 2 --max 30 --nodes "$OURS_RE" >/dev/null; }
quiet
check "the bus is quiet for 2 s after the storm" 0 $?

# Our devices: the pool's disks and their partitions; not a pool node that
# someone else's `losetup -f` took while we had it detached.
our_devices() {
	local n back
	for n in "${POOL[@]}"; do
		[[ -e /sys/block/loop$n ]] || continue
		back=$(cat "/sys/block/loop$n/loop/backing_file" 2>/dev/null)
		[[ -z $back || $back == "$WORK"/* ]] || continue
		echo "loop$n"
		parts_of "$n"
	done
}
COMPARED=0
# compare: every device of ours in ListDevices against blkid -p; prints the
# differences (none: nothing), writes how many devices to $WORK/compared.
compare() {
	local list name node out rc diff corrupted=0 count=0
	# Only ours (the map may hold thousands of others' devices).
	list=$("$CLIENT" list --bus "$BUS" | jq -c --arg re "$OURS_RE" '[.[] | select(.Node | test("^" + $re + "$"))]') ||
		{ echo "#   ListDevices failed"; return 1; }
	for name in $(our_devices); do
		node=/dev/$name
		out=$(blkid -p -o export "$node" 2>/dev/null)
		rc=$?
		case $rc in
		0) ;;
		2 | 8) out='' ;;  # nothing found / ambivalent: blkid prints nothing
		*) echo "#   $node: blkid -p exit $rc"; continue ;;
		esac
		# Differences on purpose (README, "Where we differ from blkid
		# 2.38.1"), as blkid 2.39+ and diskgate see exFAT: one whose boot
		# checksum holds is not also a "dos" partition table; one whose
		# checksum fails (a partition table written over it, say) is no
		# exFAT: its tags go, what else blkid found stays.
		if [[ $out == *$'\n'TYPE=exfat$'\n'* ]]; then
			if "$CLIENT" exfat-checksum "$node"; then
				[[ $out == *$'\n'PTTYPE=dos* ]] && out=$(grep -vE '^(PTTYPE|PTUUID)=' <<<"$out")
			else
				out=$(grep -E '^(DEVNAME|PTUUID|PTTYPE|PART_ENTRY_[A-Z]+)=' <<<"$out")
			fi
		fi
		# A partition in such a disk's "dos" table (no table then) has no
		# PARTUUID or PARTLABEL either.
		local disk
		disk=$(basename "$(dirname "$(readlink -f "/sys/class/block/$name")")")
		if [[ ! -e /sys/block/$name && $out == *PART_ENTRY_SCHEME=dos* &&
			$(blkid -p -o value -s TYPE "/dev/$disk" 2>/dev/null) == exfat ]] &&
			"$CLIENT" exfat-checksum "/dev/$disk"; then
			out=$(grep -vE '^(PARTUUID|PARTLABEL|PART_ENTRY_[A-Z]+)=' <<<"$out")
		fi
		if [[ ${STORM_SELFTEST:-} == corrupt-blkid && $corrupted == 0 && $out == *LABEL=* ]]; then
			out=${out/LABEL=/LABEL=X}
			corrupted=1
			echo "#   STORM_SELFTEST=corrupt-blkid: the LABEL blkid gave for $node altered" >&2
		fi
		local parent='' readable=1
		[[ -e /sys/block/$name ]] || parent=$(basename "$(dirname "$(readlink -f "/sys/class/block/$name")")")
		[[ $(cat "/sys/class/block/$name/size") != 0 ]] &&
			dd if="$node" of=/dev/null bs=4096 count=1 status=none 2>/dev/null || readable=0
		diff=$(jq -r -n --arg node "$node" --arg blkid "$out" --arg parent "$parent" \
			--argjson size "$(($(cat "/sys/class/block/$name/size") * 512))" --argjson readable "$readable" \
			--argjson list "$list" '
			($blkid | split("\n") | map(select(contains("=")) | capture("^(?<k>[^=]+)=(?<v>.*)$")) |
				map({(.k): .v}) | add // {}) as $b |
			([$list[] | select(.Node == $node)] | first) as $d |
			if $d == null then "\($node): not in ListDevices (blkid: \($blkid | gsub("\n"; " ")))" else
			($b | with_entries(select(.key != "DEVNAME" and .key != "VERSION" and .key != "USAGE" and (.key | startswith("PART_ENTRY_") | not)))
				+ (if $b.PART_ENTRY_UUID then {PARTUUID: $b.PART_ENTRY_UUID} else {} end)
				+ (if $b.PART_ENTRY_NAME then {PARTLABEL: $b.PART_ENTRY_NAME} else {} end)) as $tags |
			{Type: ($b.TYPE // ""), Uuid: ($b.UUID // ""), UuidSub: ($b.UUID_SUB // ""), Label: ($b.LABEL // ""),
			 PartUuid: ($b.PART_ENTRY_UUID // ""), PartLabel: ($b.PART_ENTRY_NAME // ""), Tags: $tags,
			 Size: $size, Parent: $parent} as $want |
			[ ($want | to_entries[] | select($d[.key] != .value) |
				"\($node): \(.key) is \($d[.key] | tojson), blkid -p says \(.value | tojson)"),
			  (if ($tags | length) > 0 then
				(if $d.State != "identified" then "\($node): State \($d.State) (\($d.Error)), blkid -p found \($tags | tojson)" else empty end)
			   elif $d.State == "identified" or $d.State == "unprobed" or ($readable == 1 and $d.State != "unidentified") then
				"\($node): State \($d.State) (\($d.Error)), blkid -p found nothing on a device that \(if $readable == 1 then "reads" else "does not read" end)"
			   else empty end) ] | .[]
			end') || diff="$node: the comparison itself failed (jq)"
		[[ -n $diff ]] && echo "$diff" | sed 's/^/#   /'
		count=$((count + 1))
	done
	echo "$count" >"$WORK/compared"
	# Nothing of ours that the kernel no longer has.
	jq -r --argjson pool "$(printf '%s\n' "${POOL[@]}" | jq -s .)" '.[] | .Name as $n |
		select(any($pool[]; . as $p | $n | test("^loop\($p)(p[0-9]+)?$"))) | .Name' <<<"$list" |
		while read -r name; do
			[[ -e /sys/class/block/$name ]] || echo "#   /dev/$name: in ListDevices, gone from the kernel"
		done
}
# compare_check WHAT: compare, once more after a quiet spell if it differs.
compare_check() {
	local diffs
	diffs=$(compare)
	if [[ -n $diffs ]]; then
		echo "# $1: differences on the first look (looking again once quiet):"
		echo "$diffs"
		quiet
		diffs=$(compare)
	fi
	COMPARED=$(<"$WORK/compared")
	if [[ -z $diffs ]]; then
		ok "$1: ListDevices equals blkid -p on all $COMPARED devices of ours"
	else
		not_ok "$1: ListDevices equals blkid -p on all $COMPARED devices of ours"
		echo "$diffs"
	fi
}
compare_check "after the storm (events only)"
COMPARED1=$COMPARED

"$CLIENT" rescan --bus "$BUS"
check "Rescan answered" 0 $?
quiet
compare_check "after Rescan"

# ---- the signals, replayed ----

kill -USR1 "$WATCH_PID"
wait "$WATCH_PID"
rc=$?
WATCH_PID=''
grep -E '^(ok|not ok|#)' "$WORK/watch.out"
PASSED=$((PASSED + $(grep -c '^ok' "$WORK/watch.out")))
FAILED=$((FAILED + $(grep -c '^not ok' "$WORK/watch.out")))
check "the watcher's checks" 0 "$rc"
SIGNALS=$(grep -o 'RESULT.*' "$WORK/watch.out")

# ---- resources ----

# The machine may be shared: other tests' devices come and go, and the
# daemon maps and probes them too. What that makes unknowable is said with
# "# SKIP" on the line, not counted as a failure; on a quiet machine every
# check is strict.
threads_back=0
wait_until 30 eval '(( $(threads) <= THREADS0 ))' && threads_back=1
THREADS1=$(threads) FDS1=$(fds) RSS1=$(rss_kb) DEVICES1=$(device_count)
# At most as many as before (a worker alive then may have ended since).
if ((threads_back)); then
	ok "threads back to $THREADS0 or fewer within 30 s ($THREADS1)"
elif ! "$CLIENT" quiet --bus "$BUS" --seconds 10 --max 10 >/dev/null; then
	ok "threads back to $THREADS0 or fewer within 30 s ($THREADS1) # SKIP others' devices kept changing (a signal within the last 10 s): their probes keep workers alive"
	THREADS1="$THREADS1 (others' devices busy)"
else
	not_ok "threads back to $THREADS0 or fewer within 30 s ($THREADS1, none of the machine's devices changed for 10 s)"
fi
check "fds back to $FDS0" "$FDS0" "$FDS1"
if [[ -n ${DISKGATE_SANITIZED:-} ]]; then
	ok "RSS grew less than 10 % ($RSS0 -> $RSS1 kB) # SKIP a sanitizer build: ASan keeps freed memory in quarantine"
elif ((DEVICES1 - DEVICES0 > 10 || DEVICES0 - DEVICES1 > 10)); then
	ok "RSS grew less than 10 % ($RSS0 -> $RSS1 kB) # SKIP not comparable: the map holds $DEVICES1 devices, $DEVICES0 before (others' devices)"
	RSS1="$RSS1 (not comparable: $DEVICES0 -> $DEVICES1 devices in the map)"
else
	check "RSS grew less than 10 % ($RSS0 -> $RSS1 kB; $DEVICES0 -> $DEVICES1 devices in the map)" \
		1 "$((RSS1 * 10 < RSS0 * 11))"
fi

check_log_clean "$DAEMON_LOG"
kill -TERM "$DAEMON_PID"
wait_until 5 eval '! kill -0 "$DAEMON_PID" 2>/dev/null'
wait "$DAEMON_PID"
check "diskgated exits 0 on SIGTERM" 0 $?
DAEMON_PID=''

echo "# ---- summary ($MODE) ----"
echo "# seed $SEED; $DONE events in $STORM_SECONDS s: $summary_kinds; tool runs that failed: $FAILED_TOOLS"
echo "# clients: $(grep -ho 'RESULT.*' "$WORK"/hammer*.out | sed 's/^RESULT //' | paste -sd';')"
echo "# signals: ${SIGNALS#RESULT }"
echo "# devices compared with blkid -p: $COMPARED1 after the storm, $COMPARED after Rescan"
echo "# fds $FDS0 -> $FDS1, threads $THREADS0 -> $THREADS1, RSS $RSS0 -> $RSS1 kB; devices in the map $DEVICES0 -> $DEVICES1"
echo "# checks: $PASSED passed, $FAILED failed"
((FAILED == 0)) || exit 1
exit 0
