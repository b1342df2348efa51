#!/bin/bash
# The bus policy (dbus/org.diskgate1.conf) on a private system-type bus set
# up as Debian's system.conf is (method calls and ownership denied unless a
# policy opens them), with diskgated serving on it as root.
#
#   tests/dbus/policy_test.sh DISKGATED [POLICY]
#
# POLICY: the policy file to test (default: dbus/org.diskgate1.conf; the
# install test passes the installed one).
#
# Checks, as nobody (uid 65534): every read (Resolve, ResolveAll,
# ListDevices, GetFilesystem, Properties Get/GetAll on the Manager, a Device
# and the Gate, GetManagedObjects, Introspect, Ping) is let through; Rescan
# and the Gate's Start, Stop, Restart and ReloadProgram are refused with
# org.freedesktop.DBus.Error.AccessDenied; nobody cannot own org.diskgate1.
# As root the same calls reach the daemon.
# One line per check: "ok - ..." or "not ok - ...".
# Exit: 0 all passed, 1 a check failed, 77 skipped (meson's convention).
set -u -o pipefail

# shellcheck source=../lib/checks.sh
source "$(dirname "$(readlink -f "$0")")/../lib/checks.sh"

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 DISKGATED [POLICY]" >&2
	exit 2
fi
DISKGATED=$(readlink -f "$1")
POLICY=$(readlink -f "${2:-$(dirname "$(readlink -f "$0")")/../../dbus/org.diskgate1.conf}")
TIMEOUT=15

need_root "diskgated serves as root; the calls are made as nobody"
need_loop_control
need_tools dbus-daemon dbus-send setpriv losetup chattr
need_free_loop
need_executables "$DISKGATED"
if [[ ! -r $POLICY ]]; then
	echo "not ok - $POLICY is missing"
	exit 1
fi

WORK=$(mktemp -d /tmp/dbus-policy.XXXXXX)
SOCKET=$WORK/system_bus_socket
BUS=unix:path=$SOCKET
TARGET=$WORK/mnt
LOG=$WORK/daemon.log
BUS_PID='' DAEMON_PID='' LOOP=''

cleanup() {
	local status=$? deadline
	trap '' INT TERM
	if [[ -n $DAEMON_PID ]]; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		deadline=$((SECONDS + 15))
		while kill -0 "$DAEMON_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	if [[ -n $LOOP && $(losetup -n -O BACK-FILE "$LOOP" 2>/dev/null) == "$WORK"/* ]]; then
		losetup -d "$LOOP"
	fi
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	chattr -i "$TARGET" 2>/dev/null  # the gate locks the bare target
	finish_cleanup "$status"
}
on_exit_cleanup

# The parts of Debian's /usr/share/dbus-1/system.conf that decide access,
# and our policy included as system.d would.
cat >"$WORK/system.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>$BUS</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>$POLICY</include>
</busconfig>
EOF
chmod 755 "$WORK"  # nobody reaches the socket
if ! dbus-daemon --config-file="$WORK/system.conf" --fork --print-pid=1 --nopidfile >"$WORK/bus.pid" 2>"$WORK/bus.err"; then
	echo "not ok - dbus-daemon starts with the test's system.conf: $(cat "$WORK/bus.err")"
	exit 1
fi
BUS_PID=$(<"$WORK/bus.pid")
chmod 777 "$SOCKET"

# A device for the Device checks (the host's devices are listed too).
truncate -s 1M "$WORK/dev.img"
LOOP=$(losetup --find --show "$WORK/dev.img") || { echo "not ok - losetup"; exit 1; }
DEVICE_PATH=/org/diskgate1/devices/${LOOP#/dev/}
ABSENT=$(new_uuid)

# A gate that waits for a filesystem that is not there: its object exists,
# nothing is mounted.
"$DISKGATED" --bus "$BUS" --uevents kernel --source "UUID=$ABSENT" --target "$TARGET" \
	--exec /bin/sleep -- 1000 >"$LOG" 2>&1 &
DAEMON_PID=$!

# call AS PATH INTERFACE.MEMBER [ARG...]: "ok" for a reply, else the error's
# name (or dbus-send's output when it has none).
call() {
	local as=$1 path=$2 method=$3 out
	shift 3
	local cmd=(dbus-send --bus="$BUS" --dest=org.diskgate1 --print-reply --reply-timeout=5000 "$path" "$method" "$@")
	[[ $as == nobody ]] && cmd=(setpriv --reuid=65534 --regid=65534 --clear-groups "${cmd[@]}")
	if out=$("${cmd[@]}" 2>&1); then
		echo ok
	elif grep -q '^Error ' <<<"$out"; then
		sed -n 's/^Error \([^:]*\):.*/\1/p' <<<"$out" | head -n1
	else
		echo "${out:-dbus-send failed}" | head -n1
	fi
}
serving() { [[ $(call root /org/diskgate1/gate org.freedesktop.DBus.Properties.Get \
	string:org.diskgate1.Gate string:State) == ok && $(call root "$DEVICE_PATH" org.freedesktop.DBus.Peer.Ping) == ok ]]; }
if ! wait_until "$TIMEOUT" serving; then
	not_ok "diskgated serves org.diskgate1 with the gate and $DEVICE_PATH"
	sed 's/^/#   log: /' "$LOG"
	exit 1
fi
ok "diskgated (as root) owns org.diskgate1 under the policy"

DENIED=org.freedesktop.DBus.Error.AccessDenied
NOT_FOUND=org.diskgate1.Error.NotFound

# ---- reads: open to everyone ----
for as in nobody root; do
	check "$as: Manager.Resolve reaches the daemon (NotFound for an absent UUID)" $NOT_FOUND \
		"$(call $as /org/diskgate1 org.diskgate1.Manager.Resolve string:UUID=$ABSENT)"
	check "$as: Manager.ResolveAll" ok "$(call $as /org/diskgate1 org.diskgate1.Manager.ResolveAll string:UUID=$ABSENT)"
	check "$as: Manager.ListDevices" ok "$(call $as /org/diskgate1 org.diskgate1.Manager.ListDevices)"
	check "$as: Manager.GetFilesystem reaches the daemon (NotFound)" $NOT_FOUND \
		"$(call $as /org/diskgate1 org.diskgate1.Manager.GetFilesystem string:$ABSENT)"
	check "$as: Properties.GetAll on the Manager" ok \
		"$(call $as /org/diskgate1 org.freedesktop.DBus.Properties.GetAll string:org.diskgate1.Manager)"
	check "$as: Properties.Get on a Device" ok \
		"$(call $as "$DEVICE_PATH" org.freedesktop.DBus.Properties.Get string:org.diskgate1.Device string:Node)"
	check "$as: Properties.GetAll on a Device" ok \
		"$(call $as "$DEVICE_PATH" org.freedesktop.DBus.Properties.GetAll string:org.diskgate1.Device)"
	check "$as: Properties.Get on the Gate" ok \
		"$(call $as /org/diskgate1/gate org.freedesktop.DBus.Properties.Get string:org.diskgate1.Gate string:State)"
	check "$as: Properties.GetAll on the Gate" ok \
		"$(call $as /org/diskgate1/gate org.freedesktop.DBus.Properties.GetAll string:org.diskgate1.Gate)"
	check "$as: ObjectManager.GetManagedObjects" ok \
		"$(call $as /org/diskgate1 org.freedesktop.DBus.ObjectManager.GetManagedObjects)"
	check "$as: Introspectable.Introspect" ok "$(call $as /org/diskgate1 org.freedesktop.DBus.Introspectable.Introspect)"
	check "$as: Peer.Ping" ok "$(call $as /org/diskgate1 org.freedesktop.DBus.Peer.Ping)"
done

# ---- what costs or controls: root only ----
check "nobody: Manager.Rescan is denied" $DENIED "$(call nobody /org/diskgate1 org.diskgate1.Manager.Rescan)"
for method in Start Stop Restart ReloadProgram; do
	check "nobody: Gate.$method is denied" $DENIED "$(call nobody /org/diskgate1/gate org.diskgate1.Gate.$method)"
done
gate_state() {
	dbus-send --bus="$BUS" --dest=org.diskgate1 --print-reply=literal /org/diskgate1/gate \
		org.freedesktop.DBus.Properties.Get string:org.diskgate1.Gate string:State 2>&1 | awk '{ print $NF }'
}
check "nobody: the gate is still waiting (no call got through)" waiting "$(gate_state)"

check "root: Manager.Rescan" ok "$(call root /org/diskgate1 org.diskgate1.Manager.Rescan)"
check "root: Gate.Stop" ok "$(call root /org/diskgate1/gate org.diskgate1.Gate.Stop)"
check_cmd "root: the gate stops" wait_until "$TIMEOUT" eval '[[ $(gate_state) == stopped ]]'
check "root: Gate.Start" ok "$(call root /org/diskgate1/gate org.diskgate1.Gate.Start)"
check_cmd "root: the gate waits again" wait_until "$TIMEOUT" eval '[[ $(gate_state) == waiting ]]'
# With no program running these two may fail in the gate; the policy lets them through.
for method in Restart ReloadProgram; do
	result=$(call root /org/diskgate1/gate org.diskgate1.Gate.$method)
	if [[ $result == ok || $result == org.freedesktop.DBus.Error.Failed ]]; then
		ok "root: Gate.$method reaches the daemon ($result)"
	else
		not_ok "root: Gate.$method reaches the daemon (got $result)"
	fi
done

# ---- owning the name ----
request_name() {
	local cmd=(dbus-send --bus="$BUS" --dest=org.freedesktop.DBus --print-reply --reply-timeout=5000
		/org/freedesktop/DBus org.freedesktop.DBus.RequestName string:org.diskgate1 uint32:0)
	[[ $1 == nobody ]] && cmd=(setpriv --reuid=65534 --regid=65534 --clear-groups "${cmd[@]}")
	local out
	if out=$("${cmd[@]}" 2>&1); then
		echo ok
	else
		sed -n 's/^Error \([^:]*\):.*/\1/p' <<<"$out" | head -n1
	fi
}
check "nobody: RequestName org.diskgate1 is denied" $DENIED "$(request_name nobody)"
check "root: RequestName org.diskgate1 is allowed (queued behind diskgated)" ok "$(request_name root)"
check_cmd "diskgated still serves" serving

if ((FAILED > 0)); then
	sed 's/^/#   log: /' "$LOG" | tail -n 20
	echo "# $PASSED passed, $FAILED failed"
	exit 1
fi
echo "# $PASSED passed"
exit 0
