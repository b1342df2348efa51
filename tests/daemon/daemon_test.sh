#!/bin/bash
# diskgated against real loop devices, a private D-Bus and (udev mode) a real
# systemd-udevd.
#
#   tests/daemon/daemon_test.sh DISKGATED DISKGATECTL kernel|udev
#
# DAEMON_TEST_KEEP=1 keeps the work directory (signals, daemon log).
#
# Makes ext4, vfat, exFAT, GPT and btrfs (2 and 3 devices) images with mkfs,
# attaches them, and checks what the daemon answers and signals: Resolve in
# every spec form, the per-device objects and ObjectManager signals, btrfs
# assembly (GetFilesystem, Ambiguous, ResolveAll, FilesystemComplete and
# FilesystemIncomplete), errors, a relabel of an attached device, SIGHUP and
# SIGTERM. Every signal is captured by `busctl monitor` from before the daemon
# starts. One line per check: "ok - ..." or "not ok - ...".
# Exit: 0 all passed, 1 a check failed, 77 skipped (meson's convention).
set -u -o pipefail

# shellcheck source=../lib/checks.sh
source "$(dirname "$(readlink -f "$0")")/../lib/checks.sh"

if [[ $# -ne 3 || ( $3 != kernel && $3 != udev ) ]]; then
	echo "usage: $0 DISKGATED DISKGATECTL kernel|udev" >&2
	exit 2
fi
DISKGATED=$(readlink -f "$1")
DISKGATECTL=$(readlink -f "$2")
MODE=$3
UDEVD_BIN=/lib/systemd/systemd-udevd
TIMEOUT=10  # seconds for anything the daemon should do "at once"

need_root "loop devices"
need_loop_control
need_tools mkfs.ext4 mkfs.vfat mkfs.exfat mkfs.btrfs exfatlabel cmp
need_tools losetup sfdisk partx blkid dbus-daemon dbus-send busctl jq
need_executables "$DISKGATED" "$DISKGATECTL"
if [[ $MODE == udev ]]; then
	[[ -x $UDEVD_BIN ]] || skip "$UDEVD_BIN is not installed"
	need_udevd_slot  # the test then starts its own udevd unless one answers
fi

WORK=$(mktemp -d /tmp/diskgate-daemon-test.XXXXXX)
BUS=unix:path=$WORK/bus.sock
SIGNALS=$WORK/signals.json
DAEMON_LOG=$WORK/diskgated.log
BUS_PID=''
MONITOR_PID=''
DAEMON_PID=''
UDEVD_PID=''
CREATED_RUN_UDEV=0
LOOPS=$WORK/loops  # every loop device we attached (a file: attach runs in subshells)

# Stops what we started, by pid, and detaches our loop devices: only those
# still backed by one of our images (a node we detached may be someone
# else's by now).
cleanup() {
	local status=$? node back pid
	trap '' INT TERM
	for pid in "$DAEMON_PID" "$MONITOR_PID"; do
		[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	if [[ -f $LOOPS ]]; then
		while read -r node; do
			back=$(losetup -n -O BACK-FILE "$node" 2>/dev/null) || continue
			# (partx's partitions outlive a detach: take them away first)
			[[ $back == "$WORK"/* ]] && { partx -d "$node" 2>/dev/null; losetup -d "$node" 2>/dev/null; }
		done <"$LOOPS"
	fi
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	stop_own_udevd
	finish_cleanup "$status" "${DAEMON_TEST_KEEP:-}" "(signals.json, diskgated.log)"
}
on_exit_cleanup

# ---- helpers ----

# attach IMAGE [--partscan]: prints the loop device.
attach() {
	local node
	node=$(losetup --find --show ${2:-} "$1") || return 1
	echo "$node" >>"$LOOPS"
	echo "$node"
}
# The partitions of a -P attach; a kernel without CONFIG_EFI_PARTITION finds
# none by itself: ask for them through BLKPG (same devices, same uevents).
add_partitions() {
	local name=${1#/dev/}
	[[ -e /sys/block/$name/${name}p1 ]] || partx --add "$1"
}
detach() { losetup -d "$1"; }

# The daemon's calls, raw (busctl JSON) and through diskgatectl.
dg_call() { busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 org.diskgate1.Manager "$@" 2>/dev/null; }
dg_prop() {
	busctl --address="$BUS" --json=short get-property org.diskgate1 "/org/diskgate1/devices/$1" \
		org.diskgate1.Device "$2" 2>/dev/null | jq -r .data
}
dg_tag() {
	busctl --address="$BUS" --json=short get-property org.diskgate1 "/org/diskgate1/devices/$1" \
		org.diskgate1.Device Tags 2>/dev/null | jq -r --arg t "$2" '.data[$t]'
}
resolve() { "$DISKGATECTL" --bus "$BUS" resolve "$1" 2>/dev/null; }
resolve_all() { "$DISKGATECTL" --bus "$BUS" resolve-all "$1" 2>/dev/null | paste -sd' '; }
# The D-Bus error name a Manager call ends with ("" when it succeeds).
dg_error() {
	local method=$1 arg=$2 out
	out=$(dbus-send --bus="$BUS" --dest=org.diskgate1 --print-reply --reply-timeout=5000 /org/diskgate1 \
		"org.diskgate1.Manager.$method" "string:$arg" 2>&1) && return 0
	sed -n 's/^Error \([^:]*\):.*/\1/p' <<<"$out" | head -n1
}
fs_field() { dg_call GetFilesystem s "$1" | jq -c ".data[0].$2.data"; }

# Signals of the daemon since a mark, as compact JSON, filtered by jq.
#   signals_since MARK JQ_FILTER [--arg NAME VALUE]...
# Lines are read raw and parsed leniently: the last one may be half written.
signals_since() {
	local mark=$1 filter=$2
	shift 2
	tail -n +"$((mark + 1))" "$SIGNALS" | jq -c -R --arg sender "$SENDER" "$@" \
		"fromjson? | select(.type == \"signal\" and .sender == \$sender) | $filter"
}
mark() { wc -l <"$SIGNALS"; }
has_signals() { [[ -n $(signals_since "$@") ]]; }
count_signals() { signals_since "$@" | grep -c .; }
# A DeviceAdded/DeviceChanged for NODE whose dict satisfies COND.
device_signal() {
	local mark=$1 node=$2 cond=$3
	shift 3
	has_signals "$mark" "select((.member == \"DeviceAdded\" or .member == \"DeviceChanged\") and
		.payload.data[0].Node.data == \$node) | .payload.data[0] | select($cond)" --arg node "$node" "$@"
}
identified_signal() { device_signal "$1" "$2" '.State.data == "identified" and (.Uuid.data | ascii_downcase) == ($u | ascii_downcase)' --arg u "$3"; }
manager_signal() { has_signals "$1" "select(.member == \"$2\" and .payload.data[0] == \$v)" --arg v "$3"; }

# Everything the daemon sent before this call is in $SIGNALS once the
# error reply to it is (the bus keeps one sender's messages in order).
barrier() {
	local token
	token=barrier-$(rand_hex 8)
	dg_call Resolve s "LABEL=$token" >/dev/null
	wait_until "$TIMEOUT" grep -q "$token" "$SIGNALS"
}

# Lets the uevents of what we just did reach the daemon (udev mode: through
# udevd's queue) and its probes finish, then waits for a barrier.
settle() {
	[[ $MODE == udev ]] && udevadm settle --timeout="$TIMEOUT"
	wait_until "$TIMEOUT" none_unprobed "$@"
	barrier
}
# none_unprobed NODE...: the daemon has probed each of them.
none_unprobed() {
	[[ $("$DISKGATECTL" --bus "$BUS" list --json 2>/dev/null | jq --args '[.[] | select(.Node as $n |
		$ARGS.positional | index($n)) | select(.State == "unprobed")] | length' "$@") == 0 ]]
}
# Waits until the bus has been quiet for half a second (at most TIMEOUT s):
# mkfs closes the device several times, and each close-after-write makes a
# re-probe (through inotify or udevd) that may still be on its way.
quiet() {
	local deadline=$((SECONDS + TIMEOUT)) last now
	last=$(mark)
	while ((SECONDS < deadline)); do
		sleep 0.5
		now=$(mark)
		[[ $now == "$last" ]] && return 0
		last=$now
	done
	return 1
}
# no_flap NAME MARK UUID: since MARK the filesystem became complete once and
# never incomplete (a client that mounts on Complete and unmounts on
# Incomplete must not see it come and go while nothing left).
no_flap() {
	local complete incomplete
	complete=$(count_signals "$2" 'select(.member == "FilesystemComplete" and .payload.data[0] == $u)' --arg u "$3")
	incomplete=$(count_signals "$2" 'select(.member == "FilesystemIncomplete" and .payload.data[0] == $u)' --arg u "$3")
	check "$1: one FilesystemComplete and no FilesystemIncomplete once settled" "1 0" "$complete $incomplete"
}

# ---- the bus, udevd, the daemon ----

dbus-daemon --session --fork --print-pid=1 --address="$BUS" >"$WORK/bus.pid" 2>"$WORK/bus.err" || {
	echo "not ok - dbus-daemon did not start: $(cat "$WORK/bus.err")"
	exit 1
}
BUS_PID=$(<"$WORK/bus.pid")
wait_until "$TIMEOUT" test -S "$WORK/bus.sock" || { not_ok "private bus socket appears"; exit 1; }

(exec busctl --address="$BUS" monitor --json=short >"$SIGNALS" 2>"$WORK/monitor.err") &
MONITOR_PID=$!
wait_until "$TIMEOUT" grep -q Monitoring "$WORK/monitor.err" || { not_ok "busctl monitor starts: $(cat "$WORK/monitor.err")"; exit 1; }

if [[ $MODE == udev && ! -e /run/udev/control ]]; then
	[[ -e /run/udev ]] || CREATED_RUN_UDEV=1
	# In the foreground (as a job) rather than --daemon: $! is then the pid
	# of the daemon itself, the one process we stop at the end.
	# exec in a subshell: $! is then udevd itself, whatever bash does with
	# a plain background command.
	(exec "$UDEVD_BIN" >"$WORK/udevd.log" 2>&1) &
	UDEVD_PID=$!
	wait_until "$TIMEOUT" test -S /run/udev/control || { not_ok "systemd-udevd starts: $(cat "$WORK/udevd.log")"; exit 1; }
	udevadm control --ping --timeout=10 >/dev/null || { not_ok "systemd-udevd answers a ping"; exit 1; }
	echo "# started systemd-udevd (pid $UDEVD_PID)"
fi

: >"$DAEMON_LOG"
(exec "$DISKGATED" --bus "$BUS" --uevents "$MODE" --log-level debug 2>"$DAEMON_LOG") &
DAEMON_PID=$!
daemon_ready() {
	grep -q 'ready:' "$DAEMON_LOG" && dbus-send --bus="$BUS" --dest=org.freedesktop.DBus --print-reply \
		/org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:org.diskgate1 >/dev/null 2>&1
}
if ! wait_until "$TIMEOUT" daemon_ready; then
	not_ok "diskgated starts and owns org.diskgate1"
	sed 's/^/# /' "$DAEMON_LOG"
	exit 1
fi
SENDER=$(dbus-send --bus="$BUS" --dest=org.freedesktop.DBus --print-reply /org/freedesktop/DBus \
	org.freedesktop.DBus.GetNameOwner string:org.diskgate1 | sed -n 's/.*string "\(.*\)"/\1/p')
ok "diskgated ($MODE uevents) starts and owns org.diskgate1 as $SENDER"
grep -q "uevents from $MODE" "$DAEMON_LOG"
check "it takes uevents from $MODE" 0 $?

# ---- images ----

TOKEN=$(rand_hex 3)  # labels and UUIDs unique to this run: others may attach images too
mk_image() { truncate -s "$2" "$WORK/$1"; }

EXT4_UUID=$(new_uuid) EXT4_LABEL=dg-ext4-$TOKEN
mk_image ext4.img 16M
mkfs.ext4 -q -F -L "$EXT4_LABEL" -U "$EXT4_UUID" "$WORK/ext4.img"

VFAT_SERIAL=$(rand_hex 4) VFAT_LABEL=DGV$TOKEN
VFAT_LABEL=${VFAT_LABEL^^}
mk_image vfat.img 16M
mkfs.vfat -i "$VFAT_SERIAL" -n "$VFAT_LABEL" "$WORK/vfat.img" >/dev/null

EXFAT_LABEL=dgx$TOKEN
mk_image exfat.img 16M
mkfs.exfat -L "$EXFAT_LABEL" "$WORK/exfat.img" >/dev/null

# GPT with two partitions: an ext4 filesystem in the first, nothing in the second.
GPT_P1=$(new_uuid) GPT_P2=$(new_uuid) GPT_FS_UUID=$(new_uuid)
mk_image gpt.img 16M
printf 'label: gpt\nstart=2048, size=8192, uuid=%s\nstart=10240, size=8192, uuid=%s\n' "$GPT_P1" "$GPT_P2" |
	sfdisk -q "$WORK/gpt.img"
mkfs.ext4 -q -F -U "$GPT_FS_UUID" -E offset=$((2048 * 512)) "$WORK/gpt.img" 4096k

# btrfs: members get devids in the order mkfs is given them.
BTRFS2_UUID=$(new_uuid)
mk_image r1.img 128M
mk_image r2.img 128M
mkfs.btrfs -q -f -U "$BTRFS2_UUID" -L "dg-r1-$TOKEN" -d raid1 -m raid1 "$WORK/r1.img" "$WORK/r2.img" >/dev/null 2>&1
BTRFS3_UUID=$(new_uuid)
for i in 1 2 3; do mk_image "t$i.img" 128M; done
mkfs.btrfs -q -f -U "$BTRFS3_UUID" -L "dg-t3-$TOKEN" -d single -m raid1 \
	"$WORK/t1.img" "$WORK/t2.img" "$WORK/t3.img" >/dev/null 2>&1

# What blkid says of the images is what the daemon must say.
blkid_tag() { blkid -p -o value -s "$2" "$WORK/$1"; }
VFAT_UUID=$(blkid_tag vfat.img UUID)
EXFAT_UUID=$(blkid_tag exfat.img UUID)
check "blkid sees the ext4 image as made" "$EXT4_UUID $EXT4_LABEL" "$(blkid_tag ext4.img UUID) $(blkid_tag ext4.img LABEL)"
check "blkid sees the vfat image as made" "$VFAT_LABEL" "$(blkid_tag vfat.img LABEL)"
check "blkid sees the btrfs images as made" "$BTRFS2_UUID $BTRFS3_UUID" "$(blkid_tag r2.img UUID) $(blkid_tag t3.img UUID)"

# ---- single-device filesystems ----

# simple_fs NAME IMAGE TYPE UUID LABEL: attach, then the signal, every spec
# form, and the device object.
simple_fs() {
	local name=$1 image=$2 type=$3 uuid=$4 label=$5 m node kname
	m=$(mark)
	node=$(attach "$WORK/$image") || { not_ok "$name: attach $image"; return; }
	kname=${node#/dev/}
	if wait_until "$TIMEOUT" identified_signal "$m" "$node" "$uuid"; then
		ok "$name: DeviceAdded/DeviceChanged signal for $node carries UUID=$uuid"
	else
		not_ok "$name: DeviceAdded/DeviceChanged signal for $node carries UUID=$uuid (within ${TIMEOUT}s)"
	fi
	check "$name: Resolve UUID=$uuid" "$node" "$(resolve "UUID=$uuid")"
	check "$name: Resolve LABEL=$label" "$node" "$(resolve "LABEL=$label")"
	check "$name: Resolve bare $uuid" "$node" "$(resolve "$uuid")"
	check "$name: Resolve UUID=\"$uuid\" (quoted)" "$node" "$(resolve "UUID=\"$uuid\"")"
	check "$name: Resolve LABEL='$label' (quoted)" "$node" "$(resolve "LABEL='$label'")"
	local other=${uuid^^}
	[[ $other == "$uuid" ]] && other=${uuid,,}
	check "$name: Resolve UUID=$other (other case)" "$node" "$(resolve "UUID=$other")"
	check "$name: Resolve $node (path)" "$node" "$(resolve "$node")"
	check "$name: object /org/diskgate1/devices/$kname has Uuid, Type, Label, Node, State" \
		"$uuid $type $label $node identified" \
		"$(dg_prop "$kname" Uuid) $(dg_prop "$kname" Type) $(dg_prop "$kname" Label) $(dg_prop "$kname" Node) $(dg_prop "$kname" State)"
	check "$name: the object's properties are the documented nineteen" \
		"BtrfsDevices,BtrfsDevid,Error,Label,Major,Minor,Name,Node,Parent,PartLabel,PartUuid,Removable,Size,State,SysPath,Tags,Type,Uuid,UuidSub" \
		"$(busctl --address="$BUS" --json=short call org.diskgate1 "/org/diskgate1/devices/$kname" \
			org.freedesktop.DBus.Properties GetAll s org.diskgate1.Device | jq -r '.data[0] | keys | join(",")')"
	check "$name: ListDevices gives $node the same dictionary as its object" "$kname /sys/ 7 true" \
		"$(dg_call ListDevices | jq -r --arg n "$node" --argjson o "$(busctl --address="$BUS" --json=short call org.diskgate1 \
			"/org/diskgate1/devices/$kname" org.freedesktop.DBus.Properties GetAll s org.diskgate1.Device | jq -c '.data[0]')" \
			'.data[0][] | select(.Node.data == $n) | "\(.Name.data) \(.SysPath.data[0:5]) \(.Major.data) \(. == $o)"')"
	check "$name: GetFilesystem says complete, 1 of 1" "true 1 1 \"$type\"" \
		"$(fs_field "$uuid" complete) $(fs_field "$uuid" present) $(fs_field "$uuid" expected) $(fs_field "$uuid" type)"
	check_cmd "$name: FilesystemComplete signal for $uuid" manager_signal "$m" FilesystemComplete "$uuid"
	settle "$node"
	no_flap "$name" "$m" "$uuid"
	eval "${name^^}_NODE=\$node"
}

simple_fs ext4 ext4.img ext4 "$EXT4_UUID" "$EXT4_LABEL"
simple_fs vfat vfat.img vfat "$VFAT_UUID" "$VFAT_LABEL"
simple_fs exfat exfat.img exfat "$EXFAT_UUID" "$EXFAT_LABEL"

# ---- GPT: partitions appear as new devices and objects ----

managed_objects_match_list() {
	[[ $(jq -n --argjson managed "$(busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 \
		org.freedesktop.DBus.ObjectManager GetManagedObjects | jq -c '.data[0]')" \
		--argjson listed "$(dg_call ListDevices | jq -c '.data[0]')" '
		($managed | to_entries | map(select(.key | startswith("/org/diskgate1/devices/")))) as $objects
		| ($objects | length) == ($managed | length)
		and all($objects[]; (.value | keys) == ["org.diskgate1.Device"])
		and all($objects[]; .value["org.diskgate1.Device"].Name.data as $n
			| ($n | test("^[A-Za-z0-9]+$") | not) or .key == "/org/diskgate1/devices/" + $n)
		and ([$objects[].value["org.diskgate1.Device"]] | sort_by(.Name.data)) == ($listed | sort_by(.Name.data))') == true ]]
}

m=$(mark)
if GPT_NODE=$(attach "$WORK/gpt.img" --partscan) && add_partitions "$GPT_NODE"; then
	P1=${GPT_NODE}p1 P2=${GPT_NODE}p2
	wait_until "$TIMEOUT" identified_signal "$m" "$P1" "$GPT_FS_UUID"
	check "gpt: signal for $P1 carries the ext4 UUID" 0 $?
	wait_until "$TIMEOUT" device_signal "$m" "$P2" '.PartUuid.data == $p' --arg p "$GPT_P2"
	check "gpt: signal for $P2 carries PARTUUID=$GPT_P2" 0 $?
	for p in 1 2; do
		path=/org/diskgate1/devices/${GPT_NODE#/dev/}p$p
		check_cmd "gpt: InterfacesAdded on /org/diskgate1 for $path" has_signals "$m" \
			'select(.member == "InterfacesAdded" and .path == "/org/diskgate1" and .payload.data[0] == $p and
			(.payload.data[1] | has("org.diskgate1.Device")))' --arg p "$path"
		check_cmd "gpt: DeviceAdded for ${GPT_NODE}p$p" has_signals "$m" \
			'select(.member == "DeviceAdded" and .payload.data[0].Node.data == $n)' --arg n "${GPT_NODE}p$p"
		check "gpt: GetManagedObjects lists $path" true \
			"$(busctl --address="$BUS" --json=short call org.diskgate1 /org/diskgate1 \
				org.freedesktop.DBus.ObjectManager GetManagedObjects | jq --arg p "$path" '.data[0] | has($p)')"
	done
	# GetManagedObjects is written by diskgated (src/dbus/service.cc), not
	# by sd-bus: one object per ListDevices entry, at the path its Name
	# gives, with the Device interface alone and the same dictionary.
	# (Two calls: retried while other devices of the machine change.)
	check_cmd "gpt: GetManagedObjects has each ListDevices entry as its object, and nothing else" \
		wait_until 10 managed_objects_match_list
	check "gpt: GetManagedObjects with an argument is refused" "Call failed: GetManagedObjects takes no arguments" \
		"$(busctl --address="$BUS" call org.diskgate1 /org/diskgate1 org.freedesktop.DBus.ObjectManager \
			GetManagedObjects s x 2>&1)"
	check "gpt: Resolve PARTUUID=$GPT_P1" "$P1" "$(resolve "PARTUUID=$GPT_P1")"
	check "gpt: Resolve PARTUUID=$GPT_P2 (no filesystem)" "$P2" "$(resolve "PARTUUID=$GPT_P2")"
	check "gpt: Resolve bare $GPT_P2 (a PARTUUID)" "$P2" "$(resolve "$GPT_P2")"
	check "gpt: Resolve UUID=$GPT_FS_UUID" "$P1" "$(resolve "UUID=$GPT_FS_UUID")"
	check "gpt: ${P1#/dev/} object has Tags PARTUUID, Uuid, Parent" "$GPT_P1 $GPT_FS_UUID ${GPT_NODE#/dev/}" \
		"$(dg_tag "${P1#/dev/}" PARTUUID) $(dg_prop "${P1#/dev/}" Uuid) $(dg_prop "${P1#/dev/}" Parent)"

	m=$(mark)
	detach "$GPT_NODE"
	for p in 1 2; do
		path=/org/diskgate1/devices/${GPT_NODE#/dev/}p$p
		wait_until "$TIMEOUT" has_signals "$m" 'select(.member == "InterfacesRemoved" and .path == "/org/diskgate1" and
			.payload.data[0] == $p and (.payload.data[1] | index("org.diskgate1.Device")))' --arg p "$path"
		check "gpt: InterfacesRemoved on /org/diskgate1 for $path after detach" 0 $?
		check_cmd "gpt: DeviceRemoved for ${GPT_NODE}p$p" has_signals "$m" \
			'select(.member == "DeviceRemoved" and .payload.data[0] == $n)' --arg n "${GPT_NODE}p$p"
	done
	check "gpt: PARTUUID=$GPT_P1 is NotFound after detach" org.diskgate1.Error.NotFound \
		"$(dg_error Resolve "PARTUUID=$GPT_P1")"
	check_cmd "gpt: FilesystemIncomplete for the partition's filesystem" manager_signal "$m" FilesystemIncomplete "$GPT_FS_UUID"
else
	not_ok "gpt: attach gpt.img with its partitions"
fi

# ---- btrfs ----

# member_attach NAME IMAGE UUID DEVID: attach one member and wait until the
# daemon has identified it. Prints the node.
member_attach() {
	local name=$1 image=$2 uuid=$3 devid=$4 m node
	m=$(mark)
	node=$(attach "$WORK/$image") || { not_ok "$name: attach $image" >&2; return 1; }
	if wait_until "$TIMEOUT" identified_signal "$m" "$node" "$uuid"; then
		ok "$name: signal for $node carries UUID=$uuid" >&2
	else
		not_ok "$name: signal for $node carries UUID=$uuid (within ${TIMEOUT}s)" >&2
	fi
	check "$name: ${node#/dev/} object says btrfs, BtrfsDevid $devid" "btrfs $devid" \
		"$(dg_prop "${node#/dev/}" Type) $(dg_prop "${node#/dev/}" BtrfsDevid)" >&2
	echo "$node"
}
# Output of checks inside $(...) goes to stderr; keep the count in this shell.
count_failures() { FAILED=$((FAILED + $(grep -c '^not ok' "$1"))); cat "$1"; }

# 2-device raid1
M=$(mark)
R1=$(member_attach btrfs2 r1.img "$BTRFS2_UUID" 1 2>"$WORK/out"); count_failures "$WORK/out"
check "btrfs2: 1 of 2: complete, present, expected, missing_devids" "false 1 2 [2]" \
	"$(fs_field "$BTRFS2_UUID" complete) $(fs_field "$BTRFS2_UUID" present) $(fs_field "$BTRFS2_UUID" expected) $(fs_field "$BTRFS2_UUID" missing_devids)"
check "btrfs2: 1 of 2: Resolve UUID= gives the one member" "$R1" "$(resolve "UUID=$BTRFS2_UUID")"
check "btrfs2: 1 of 2: no FilesystemComplete" 0 "$(count_signals "$M" 'select(.member == "FilesystemComplete" and .payload.data[0] == $u)' --arg u "$BTRFS2_UUID")"
m=$(mark)
R2=$(member_attach btrfs2 r2.img "$BTRFS2_UUID" 2 2>"$WORK/out"); count_failures "$WORK/out"
wait_until "$TIMEOUT" manager_signal "$m" FilesystemComplete "$BTRFS2_UUID"
check "btrfs2: FilesystemComplete signal once both are attached" 0 $?
settle "$R1" "$R2"
no_flap btrfs2 "$m" "$BTRFS2_UUID"
check "btrfs2: 2 of 2: complete, present, missing_devids" "true 2 []" \
	"$(fs_field "$BTRFS2_UUID" complete) $(fs_field "$BTRFS2_UUID" present) $(fs_field "$BTRFS2_UUID" missing_devids)"
check "btrfs2: mount_data in devid order" "\"device=$R1,device=$R2\"" "$(fs_field "$BTRFS2_UUID" mount_data)"
check "btrfs2: devices in devid order" "[\"$R1\",\"$R2\"]" "$(fs_field "$BTRFS2_UUID" devices)"
check "btrfs2: Resolve UUID= is Ambiguous" org.diskgate1.Error.Ambiguous "$(dg_error Resolve "UUID=$BTRFS2_UUID")"
check "btrfs2: ResolveAll UUID= gives both in devid order" "$R1 $R2" "$(resolve_all "UUID=$BTRFS2_UUID")"
check "btrfs2: ResolveAll LABEL= gives both in devid order" "$R1 $R2" "$(resolve_all "LABEL=dg-r1-$TOKEN")"
R2_SUB=$(blkid_tag r2.img UUID_SUB)
check "btrfs2: Resolve UUID_SUB= of member 2" "$R2" "$(resolve "UUID_SUB=$R2_SUB")"
m=$(mark)
detach "$R1"
wait_until "$TIMEOUT" manager_signal "$m" FilesystemIncomplete "$BTRFS2_UUID"
check "btrfs2: FilesystemIncomplete after detaching devid 1" 0 $?
check_cmd "btrfs2: DeviceRemoved or DeviceChanged (no UUID) for $R1" has_signals "$m" \
	'select((.member == "DeviceRemoved" and .payload.data[0] == $n) or
	(.member == "DeviceChanged" and .payload.data[0].Node.data == $n and .payload.data[0].Uuid.data == ""))' --arg n "$R1"
check "btrfs2: after detach: complete, present, missing_devids" "false 1 [1]" \
	"$(fs_field "$BTRFS2_UUID" complete) $(fs_field "$BTRFS2_UUID" present) $(fs_field "$BTRFS2_UUID" missing_devids)"
check "btrfs2: after detach: Resolve UUID= gives the remaining member" "$R2" "$(resolve "UUID=$BTRFS2_UUID")"
detach "$R2"
wait_until "$TIMEOUT" eval '[[ $(dg_error GetFilesystem "$BTRFS2_UUID") == org.diskgate1.Error.NotFound ]]'
check "btrfs2: GetFilesystem is NotFound with no member attached" 0 $?

# 3 devices, attached in the order 3, 1, 2
M=$(mark)
T3=$(member_attach btrfs3 t3.img "$BTRFS3_UUID" 3 2>"$WORK/out"); count_failures "$WORK/out"
check "btrfs3: devid 3 only: complete, present, expected, missing_devids" "false 1 3 [1,2]" \
	"$(fs_field "$BTRFS3_UUID" complete) $(fs_field "$BTRFS3_UUID" present) $(fs_field "$BTRFS3_UUID" expected) $(fs_field "$BTRFS3_UUID" missing_devids)"
T1=$(member_attach btrfs3 t1.img "$BTRFS3_UUID" 1 2>"$WORK/out"); count_failures "$WORK/out"
check "btrfs3: devids 3, 1: complete, present, missing_devids" "false 2 [2]" \
	"$(fs_field "$BTRFS3_UUID" complete) $(fs_field "$BTRFS3_UUID" present) $(fs_field "$BTRFS3_UUID" missing_devids)"
check "btrfs3: devids 3, 1: ResolveAll in devid order" "$T1 $T3" "$(resolve_all "UUID=$BTRFS3_UUID")"
check "btrfs3: no FilesystemComplete before the last member" 0 \
	"$(count_signals "$M" 'select(.member == "FilesystemComplete" and .payload.data[0] == $u)' --arg u "$BTRFS3_UUID")"
m=$(mark)
T2=$(member_attach btrfs3 t2.img "$BTRFS3_UUID" 2 2>"$WORK/out"); count_failures "$WORK/out"
wait_until "$TIMEOUT" manager_signal "$m" FilesystemComplete "$BTRFS3_UUID"
check "btrfs3: FilesystemComplete signal once all 3 are attached" 0 $?
settle "$T1" "$T2" "$T3"
no_flap btrfs3 "$m" "$BTRFS3_UUID"
check "btrfs3: complete, present, missing_devids" "true 3 []" \
	"$(fs_field "$BTRFS3_UUID" complete) $(fs_field "$BTRFS3_UUID" present) $(fs_field "$BTRFS3_UUID" missing_devids)"
check "btrfs3: mount_data in devid order" "\"device=$T1,device=$T2,device=$T3\"" "$(fs_field "$BTRFS3_UUID" mount_data)"
check "btrfs3: Resolve UUID= is Ambiguous" org.diskgate1.Error.Ambiguous "$(dg_error Resolve "UUID=$BTRFS3_UUID")"
check "btrfs3: ResolveAll gives all 3 in devid order" "$T1 $T2 $T3" "$(resolve_all "UUID=$BTRFS3_UUID")"
m=$(mark)
detach "$T2"
wait_until "$TIMEOUT" manager_signal "$m" FilesystemIncomplete "$BTRFS3_UUID"
check "btrfs3: FilesystemIncomplete after detaching devid 2" 0 $?
check_cmd "btrfs3: DeviceRemoved or DeviceChanged (no UUID) for $T2" has_signals "$m" \
	'select((.member == "DeviceRemoved" and .payload.data[0] == $n) or
	(.member == "DeviceChanged" and .payload.data[0].Node.data == $n and .payload.data[0].Uuid.data == ""))' --arg n "$T2"
check "btrfs3: after detach: complete, present, missing_devids, mount_data" "false 2 [2] \"device=$T1,device=$T3\"" \
	"$(fs_field "$BTRFS3_UUID" complete) $(fs_field "$BTRFS3_UUID" present) $(fs_field "$BTRFS3_UUID" missing_devids) $(fs_field "$BTRFS3_UUID" mount_data)"

# ---- errors ----

check "Resolve of an unknown UUID is NotFound" org.diskgate1.Error.NotFound "$(dg_error Resolve "UUID=$(new_uuid)")"
check "Resolve of an unknown LABEL is NotFound" org.diskgate1.Error.NotFound "$(dg_error Resolve "LABEL=nothing-$TOKEN")"
check "Resolve of FOO=bar is InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs "$(dg_error Resolve FOO=bar)"
check "ResolveAll of FOO=bar is InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs "$(dg_error ResolveAll FOO=bar)"
check "Resolve of an empty spec is InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs "$(dg_error Resolve '')"
check "GetFilesystem of an unknown UUID is NotFound" org.diskgate1.Error.NotFound "$(dg_error GetFilesystem "$(new_uuid)")"
check "ResolveAll of an unknown UUID is an empty list" "" "$(resolve_all "UUID=$(new_uuid)")"
kill -0 "$DAEMON_PID" 2>/dev/null
check "diskgated still runs after the errors" 0 $?

# ---- relabel an attached device ----

if [[ $MODE == kernel ]]; then how="inotify close-after-write"; else how="udevd's change event"; fi
NEW_LABEL=dg-new-$TOKEN NEW_UUID=$(new_uuid)
m=$(mark)
mkfs.ext4 -q -F -L "$NEW_LABEL" -U "$NEW_UUID" "$EXT4_NODE"
if wait_until "$TIMEOUT" eval '[[ $(resolve "LABEL=$NEW_LABEL") == "$EXT4_NODE" ]]'; then
	ok "relabel: mkfs.ext4 -L on attached $EXT4_NODE is noticed ($how): new LABEL resolves"
else
	not_ok "relabel: mkfs.ext4 -L on attached $EXT4_NODE is noticed ($how) within ${TIMEOUT}s"
fi
check "relabel: new UUID resolves" "$EXT4_NODE" "$(resolve "UUID=$NEW_UUID")"
check "relabel: old LABEL is NotFound" org.diskgate1.Error.NotFound "$(dg_error Resolve "LABEL=$EXT4_LABEL")"
check_cmd "relabel: DeviceChanged signal carries the new label" device_signal "$m" "$EXT4_NODE" '.Label.data == $l' --arg l "$NEW_LABEL"
check_cmd "relabel: FilesystemIncomplete for the old UUID" manager_signal "$m" FilesystemIncomplete "$EXT4_UUID"
settle "$EXT4_NODE"
quiet
check "relabel: once settled, the new LABEL still resolves" "$EXT4_NODE" "$(resolve "LABEL=$NEW_LABEL")"

# ---- a write through a partition changes its disk ----

# A mkfs over a whole disk leaves the kernel's partitions in place, and
# exFAT keeps its label in the root directory, 2 MiB in: inside partition 1.
# A relabel written through the partition must reach the disk's identity
# (the storm test found it kept its former label).
truncate -s 64M "$WORK/alias.img"
printf 'label: dos\nstart=2048, size=32768, type=83\n' | sfdisk -q "$WORK/alias.img"
ALIAS_OLD=dgo$TOKEN ALIAS_NEW=dgn$TOKEN
if ALIAS_NODE=$(attach "$WORK/alias.img") && add_partitions "$ALIAS_NODE" && [[ -b ${ALIAS_NODE}p1 ]] &&
	mkfs.exfat -L "$ALIAS_OLD" "$ALIAS_NODE" >/dev/null &&
	wait_until "$TIMEOUT" eval '[[ $(resolve "LABEL=$ALIAS_OLD") == "$ALIAS_NODE" ]]'; then
	# The same relabel made in a copy of the disk's first 4 MiB: its bytes.
	dd if="$ALIAS_NODE" of="$WORK/alias-copy.img" bs=1M count=4 status=none
	exfatlabel "$WORK/alias-copy.img" "$ALIAS_NEW" >/dev/null 2>&1
	read -r first last < <(cmp -l "$WORK/alias-copy.img" <(head -c 4M "$ALIAS_NODE") |
		awk 'NR == 1 { first = $1 - 1 } { last = $1 - 1 } END { print first, last }')
	check "partition write: the label lies inside partition 1 (byte $first of the disk)" 1 \
		"$((first >= 1048576 && last < 17 * 1048576))"
	# The writes alternate between the two labels: each must be seen, also
	# when the daemon reads the disk the moment the partition is closed,
	# before the kernel has flushed it (a race: 2 in 20 stale without the
	# flush, so ten in a row catch it most of the time).
	dd if="$ALIAS_NODE" of="$WORK/alias-orig.img" bs=1M count=4 status=none
	m=$(mark) seen=0
	for ((i = 1; i <= 10; i++)); do
		if ((i % 2)); then from=alias-copy.img want=$ALIAS_NEW; else from=alias-orig.img want=$ALIAS_OLD; fi
		dd if="$WORK/$from" of="${ALIAS_NODE}p1" bs=1 skip="$first" seek=$((first - 1048576)) \
			count=$((last - first + 1)) conv=notrunc status=none
		[[ $(blkid -p -o value -s LABEL "$ALIAS_NODE") == "$want" ]] || echo "# blkid -p $ALIAS_NODE: not $want"
		wait_until "$TIMEOUT" eval '[[ $(resolve "LABEL=$want") == "$ALIAS_NODE" ]]' && ((seen++))
	done
	check "partition write: the disk is probed again ($how on ${ALIAS_NODE}p1): relabels seen" "10 of 10" "$seen of 10"
	check_cmd "partition write: DeviceChanged for $ALIAS_NODE carries the new label" \
		device_signal "$m" "$ALIAS_NODE" '.Label.data == $l' --arg l "$ALIAS_NEW"
	# Taken away before the next checks, which count signals.
	m=$(mark)
	partx -d "$ALIAS_NODE"
	detach "$ALIAS_NODE"
	check_cmd "partition write: FilesystemIncomplete once the disk is detached" \
		wait_until "$TIMEOUT" manager_signal "$m" FilesystemIncomplete "$(blkid -p -o value -s UUID "$WORK/alias.img")"
else
	not_ok "partition write: a dos table with partition 1, exFAT over the whole disk, identified"
fi

# ---- SIGHUP: rescan, keep running, keep the map ----

our_nodes=("$EXT4_NODE" "$VFAT_NODE" "$EXFAT_NODE" "$T1" "$T3")
snapshot() {
	echo "$(resolve "LABEL=$NEW_LABEL") $(resolve "UUID=$VFAT_UUID") $(resolve "LABEL=$EXFAT_LABEL") \
$(resolve_all "UUID=$BTRFS3_UUID") $(fs_field "$BTRFS3_UUID" present)"
}
before=$(snapshot)
rescans=$(grep -c 'rescanning' "$DAEMON_LOG")
m=$(mark)
kill -HUP "$DAEMON_PID"
wait_until "$TIMEOUT" eval '(( $(grep -c rescanning "$DAEMON_LOG") > rescans ))'
check "SIGHUP: diskgated logs a rescan" 0 $?
wait_until "$TIMEOUT" none_unprobed "${our_nodes[@]}"
check "SIGHUP: our devices are probed again" 0 $?
barrier
kill -0 "$DAEMON_PID" 2>/dev/null
check "SIGHUP: diskgated still runs" 0 $?
check "SIGHUP: the map is intact (resolves, btrfs members)" "$before" "$(snapshot)"
check "SIGHUP: no FilesystemIncomplete emitted for filesystems that stayed complete" "" \
	"$(signals_since "$m" 'select(.member == "FilesystemIncomplete") | .payload.data[0]' | paste -sd' ')"
check "SIGHUP: no DeviceRemoved/InterfacesRemoved emitted" "" \
	"$(signals_since "$m" 'select(.member == "DeviceRemoved" or .member == "InterfacesRemoved") | .payload.data[0]' | paste -sd' ')"

# ---- Rescan and SIGHUP run off the loop: other callers keep their answers ----

# Not a benchmark (bench/rescan-flood is): one generous bound. busctl's
# --timeout covers the call alone, not busctl's start.
SLOW=$WORK/slow-resolves
: >"$SLOW"
rescans=$(grep -c 'rescanning' "$DAEMON_LOG")
(
	n=0 end=$((SECONDS + 4))
	while ((SECONDS < end)); do
		busctl --address="$BUS" --timeout=100ms call org.diskgate1 /org/diskgate1 org.diskgate1.Manager \
			Resolve s "UUID=$VFAT_UUID" >/dev/null 2>>"$SLOW" || echo "Resolve $n failed or took over 100 ms" >>"$SLOW"
		n=$((n + 1))
	done
	echo "$n" >"$WORK/resolves"
) &
RESOLVER=$!
for i in 1 2 3; do
	kill -HUP "$DAEMON_PID"
	dg_call Rescan >/dev/null || echo "Rescan call $i failed" >>"$SLOW"
	sleep 0.6
done
wait "$RESOLVER"
check "rescans: SIGHUP and Rescan were served ($(( $(grep -c rescanning "$DAEMON_LOG") - rescans )) enumerations for 6 requests)" \
	1 "$(( $(grep -c rescanning "$DAEMON_LOG") > rescans ))"
check "rescans: every one of $(<"$WORK/resolves") Resolve calls during 3 SIGHUP + 3 Rescan answered within 100 ms" \
	"" "$(head -n 5 "$SLOW")"
wait_until "$TIMEOUT" none_unprobed "${our_nodes[@]}"
check "rescans: the map is intact afterwards" "$before" "$(snapshot)"

# ---- udev mode: the kernel's word on a removal is final, udevd or not ----

if [[ $MODE == udev && -z $UDEVD_PID ]]; then
	echo "# SKIP udevd stop/start checks: the udevd that runs is not this test's to stop"
elif [[ $MODE == udev ]]; then
	VFAT_KNAME=${VFAT_NODE#/dev/}
	kill -TERM "$UDEVD_PID"
	wait_until "$TIMEOUT" eval '! kill -0 "$UDEVD_PID" 2>/dev/null'
	check "udevd stopped: our systemd-udevd (pid $UDEVD_PID) exits on SIGTERM" 0 $?
	wait "$UDEVD_PID" 2>/dev/null
	UDEVD_PID=''
	m=$(mark)
	echo remove >"/sys/block/$VFAT_KNAME/uevent"
	wait_until 5 has_signals "$m" 'select(.member == "DeviceRemoved" and .payload.data[0] == $n)' --arg n "$VFAT_NODE"
	check "udevd stopped: a kernel remove of $VFAT_NODE gives DeviceRemoved within 5 s" 0 $?
	check "udevd stopped: Resolve UUID=$VFAT_UUID is NotFound" org.diskgate1.Error.NotFound \
		"$(dg_error Resolve "UUID=$VFAT_UUID")"
	wait_until "$TIMEOUT" grep -q 'udevd did not pass on the kernel' "$DAEMON_LOG"
	check "udevd stopped: diskgated logs that udevd does not answer" 0 $?
	check "udevd stopped: it says so once" 1 "$(grep -c 'udevd did not pass on the kernel' "$DAEMON_LOG")"

	rm -f /run/udev/control  # the dead udevd's
	(exec "$UDEVD_BIN" >>"$WORK/udevd.log" 2>&1) &
	UDEVD_PID=$!
	wait_until "$TIMEOUT" test -S /run/udev/control && udevadm control --ping --timeout=10 >/dev/null
	check "udevd started again (pid $UDEVD_PID) and answers" 0 $?
	m=$(mark)
	echo add >"/sys/block/$VFAT_KNAME/uevent"
	wait_until "$TIMEOUT" eval '[[ $(resolve "UUID=$VFAT_UUID") == "$VFAT_NODE" ]]'
	check "udevd back: after 'add', Resolve UUID=$VFAT_UUID gives $VFAT_NODE again" 0 $?
	check_cmd "udevd back: DeviceAdded for $VFAT_NODE" has_signals "$m" \
		'select(.member == "DeviceAdded" and .payload.data[0].Node.data == $n)' --arg n "$VFAT_NODE"
	wait_until "$TIMEOUT" grep -q 'udevd is back' "$DAEMON_LOG"
	check "udevd back: diskgated logs that udevd is back" 0 $?
fi

# ---- idle: no wakeups ----
# Probe threads beyond the first end 10 s after their last job; every
# thread that stays must sleep until there is news, over a window longer
# than that. Kernel mode only: the threads are the same in udev mode.

# "TID SWITCHES" for each thread of the daemon (voluntary and not).
thread_switches() {
	local t
	for t in /proc/"$DAEMON_PID"/task/*; do
		echo "${t##*/} $(awk '/ctxt_switches/ { n += $2 } END { print n }' "$t/status" 2>/dev/null)"
	done
}
if [[ $MODE == kernel ]]; then
	quiet
	sleep 2 # the heap trim, 1 s after the last change
	thread_switches >"$WORK/switches-before"
	sleep 11
	thread_switches >"$WORK/switches-after"
	# A thread that ended meanwhile is left out: ending is what it is for.
	woke=$(awk 'NR == FNR { a[$1] = $2; next } ($1 in a) && $2 != a[$1] { printf "%s(+%d) ", $1, $2 - a[$1] }' \
		"$WORK/switches-before" "$WORK/switches-after")
	check "idle: no thread of diskgated wakes in 11 s" "" "$woke"
fi

# ---- SIGTERM: exit 0 within 2 s ----

start_ns=$(date +%s%N)
kill -TERM "$DAEMON_PID"
wait_until 2 eval '! kill -0 "$DAEMON_PID" 2>/dev/null'
gone=$?
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
if ((gone == 0)); then
	wait "$DAEMON_PID"
	status=$?
	DAEMON_PID=''
	check "SIGTERM: diskgated exits with status 0 (after ${elapsed_ms} ms)" 0 "$status"
else
	not_ok "SIGTERM: diskgated exits within 2 s"
fi
check_log_clean "$DAEMON_LOG"

if ((FAILED > 0)); then
	echo "# $FAILED check(s) failed; diskgated's log (last 60 lines):"
	tail -n 60 "$DAEMON_LOG" | sed 's/^/#   /'
	exit 1
fi
exit 0
