#!/bin/bash
# What diskgated serves is what dbus/*.xml promise: its interfaces are sd-bus
# vtables written by hand (src/dbus/service.cc, gate_object.cc), so each
# one's introspection is compared with its XML, member by member (methods
# and signals with their argument names, types and directions; properties
# with their types): the Manager, a device object and the Gate (a gate
# waiting for an absent filesystem).
#
#   tests/dbus/introspection_test.sh DISKGATED
#
# One line per check: "ok - ..." or "not ok - ...". Exit: 0 all passed, 1 a
# check failed, 77 skipped.
set -u -o pipefail

here=$(dirname "$(readlink -f "$0")")
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/checks.sh
source "$here/../lib/checks.sh"

if [[ $# -ne 1 ]]; then
	echo "usage: $0 DISKGATED" >&2
	exit 2
fi
DISKGATED=$(readlink -f "$1")
need_tools dbus-daemon dbus-send python3
need_executables "$DISKGATED"

WORK=$(mktemp -d /tmp/introspection.XXXXXX)
BUS=unix:path=$WORK/bus
BUS_PID='' DAEMON_PID=''
cleanup() {
	local status=$?
	[[ -n $DAEMON_PID ]] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	finish_cleanup "$status" "${INTROSPECTION_TEST_KEEP:-}"
}
on_exit_cleanup

dbus-daemon --session --fork --print-pid=1 --address="$BUS" >"$WORK/bus.pid" || {
	not_ok "dbus-daemon starts"
	exit 1
}
BUS_PID=$(<"$WORK/bus.pid")
"$DISKGATED" --bus "$BUS" --uevents kernel --source "UUID=$(cat /proc/sys/kernel/random/uuid)" \
	--target "$WORK/mnt" --exec /bin/sleep -- 1000 2>"$WORK/daemon.log" &
DAEMON_PID=$!
owned() { dbus-send --bus="$BUS" --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.diskgate1 2>/dev/null | grep -q true; }
wait_until 10 owned || {
	not_ok "diskgated takes org.diskgate1: $(tail -n3 "$WORK/daemon.log")"
	exit 1
}
introspect() {
	dbus-send --bus="$BUS" --print-reply=literal --dest=org.diskgate1 "$1" org.freedesktop.DBus.Introspectable.Introspect
}
# compare XML INTERFACE SERVED-XML: "same" or the differences.
compare() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys, xml.etree.ElementTree as ET
def members(tree, interface):
    for i in tree.iter("interface"):
        if i.get("name") == interface:
            return {(m.tag, m.get("name")): [(a.get("name"), a.get("type"), a.get("direction", "out" if m.tag == "method" else ""))
                                            for a in m.findall("arg")] + [m.get("type")]
                    for m in i if m.tag in ("method", "signal", "property")}
    return None
promised = members(ET.parse(sys.argv[1]), sys.argv[2])
served = members(ET.fromstring(open(sys.argv[3]).read().strip()), sys.argv[2])
if served is None:
    print("not served"); sys.exit()
diff = [f"{k}: promised {promised.get(k)}, served {served.get(k)}" for k in sorted(set(promised) | set(served))
        if promised.get(k) != served.get(k)]
print("same" if not diff else "; ".join(diff))
PY
}
introspect /org/diskgate1 >"$WORK/manager.xml" 2>&1
check "org.diskgate1.Manager as served equals dbus/org.diskgate1.Manager.xml" same \
	"$(compare "$root/dbus/org.diskgate1.Manager.xml" org.diskgate1.Manager "$WORK/manager.xml")"
device=$(introspect /org/diskgate1/devices | python3 -c 'import sys, xml.etree.ElementTree as ET; t = ET.fromstring(sys.stdin.read().strip()); print(next(n.get("name") for n in t.findall("node")))' 2>/dev/null)
if [[ -n $device ]]; then
	introspect "/org/diskgate1/devices/$device" >"$WORK/device.xml" 2>&1
	check "org.diskgate1.Device as served ($device) equals dbus/org.diskgate1.Device.xml" same \
		"$(compare "$root/dbus/org.diskgate1.Device.xml" org.diskgate1.Device "$WORK/device.xml")"
else
	not_ok "a device object to introspect under /org/diskgate1/devices"
fi
introspect /org/diskgate1/gate >"$WORK/gate.xml" 2>&1
check "org.diskgate1.Gate as served equals dbus/org.diskgate1.Gate.xml" same \
	"$(compare "$root/dbus/org.diskgate1.Gate.xml" org.diskgate1.Gate "$WORK/gate.xml")"
echo "# $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
