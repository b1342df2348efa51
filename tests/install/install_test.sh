#!/usr/bin/env bash
# `meson install` into a DESTDIR, and what is installed checked where it is
# used:
#
#   tests/install/install_test.sh BUILD_DIR DISKGATECTL
#
# Checks: exactly the expected files, each where its consumer looks (the
# unit in one of systemd's unit paths, the sysusers.d entry in one of
# sysusers' directories, for prefix /usr the bus files where dbus-daemon
# reads them); the unit's and the activation file's paths are the configured
# ones; `systemd-analyze verify` accepts the unit (its Exec paths moved into
# the DESTDIR, its man pages found there); `systemd-analyze security` rates
# it "OK" or better; systemd-sysusers makes _diskgate from the entry in a
# scratch root; the installed diskgatectl probes a fixture as the built one
# does; the activation file starts diskgated on a client's first call (a
# private bus whose service directory holds it, Exec moved into the
# DESTDIR); the installed bus policy passes tests/dbus/policy_test.sh; the
# gate works under the unit's capabilities (unit_capabilities_test.sh).
# One line per check: "ok - ..." or "not ok - ...". Exit: 0 all passed, 1 a
# check failed, 77 skipped.
set -u -o pipefail

here=$(dirname "$(readlink -f "$0")")
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/checks.sh
source "$here/../lib/checks.sh"

if [[ $# -ne 2 ]]; then
	echo "usage: $0 BUILD_DIR DISKGATECTL" >&2
	exit 2
fi
BUILD=$(readlink -f "$1")
DISKGATECTL=$(readlink -f "$2")
need_tools meson python3 systemd-analyze systemd-sysusers dbus-daemon
need_executables "$DISKGATECTL"

WORK=$(mktemp -d /tmp/install-test.XXXXXX)
DEST=$WORK/dest
BUS_PID="" ACTIVATED_PID=""
cleanup() {
	local status=$?
	[[ -n $ACTIVATED_PID ]] && kill -9 "$ACTIVATED_PID" 2>/dev/null
	[[ -n $BUS_PID ]] && kill -9 "$BUS_PID" 2>/dev/null
	finish_cleanup "$status" "${INSTALL_TEST_KEEP:-}"
}
on_exit_cleanup

if ! meson install -C "$BUILD" --destdir "$DEST" --no-rebuild --quiet >"$WORK/install.log" 2>&1; then
	not_ok "meson install --destdir: $(tail -n3 "$WORK/install.log")"
	exit 1
fi
ok "meson install --destdir $DEST"

# The configured directories (absolute; meson keeps the prefix's subdirectories relative).
directories() {
	python3 -c '
import json, sys
options = {o["name"]: o["value"] for o in json.load(sys.stdin)}
prefix = options["prefix"]
print("prefix=" + prefix)
for name in ("bindir", "sbindir", "libdir", "datadir", "mandir", "sysconfdir"):
    value = options[name]
    print(name + "=" + (value if value.startswith("/") else prefix + "/" + value))
'
}
eval "$(meson introspect --buildoptions "$BUILD" | directories)"

# ---- the tree ----
unit=$(cd "$DEST" && find . -name diskgated.service -path '*/systemd/system/*' | sed 's|^\.||')
sysusers=$(cd "$DEST" && find . -name diskgate.conf -path '*/sysusers.d/*' | sed 's|^\.||')
expected=(
	"$sbindir/diskgated"
	"$bindir/diskgatectl"
	"$libdir/diskgate/diskgatectl-bus.so"
	"$unit"
	"$sysusers"
	"$datadir/dbus-1/system.d/org.diskgate1.conf"
	"$datadir/dbus-1/system-services/org.diskgate1.service"
	"$sysconfdir/default/diskgated"
	"$mandir/man8/diskgated.8"
	"$mandir/man1/diskgatectl.1"
	"$datadir/bash-completion/completions/diskgatectl"
)
check "exactly the expected files are installed" \
	"$(printf '%s\n' "${expected[@]}" | sort)" "$( (cd "$DEST" && find . -type f -o -type l) | sed 's|^\.||' | sort)"
for exe in "$sbindir/diskgated" "$bindir/diskgatectl"; do
	check_cmd "$exe is executable" test -x "$DEST$exe"
done
check_cmd "the unit ($unit) is in one of systemd's unit paths" \
	grep -qxF "$(dirname "$unit")" <(systemd-analyze unit-paths)
case $(dirname "$sysusers") in
/etc/sysusers.d | /run/sysusers.d | /usr/local/lib/sysusers.d | /usr/lib/sysusers.d) ok "the sysusers.d entry ($sysusers) is where systemd-sysusers looks" ;;
*) not_ok "the sysusers.d entry ($sysusers) is where systemd-sysusers looks" ;;
esac
if [[ $prefix == /usr ]]; then
	check "prefix /usr: the bus policy is where dbus-daemon reads it" /usr/share/dbus-1 "$datadir/dbus-1"
else
	echo "# prefix $prefix: dbus-daemon reads policies only from /usr/share and /etc (the README says to configure --prefix=/usr)"
fi

# ---- the unit ----
unit_value() { sed -n "s/^$1=//p" "$DEST$unit" | head -n1; }
check "ExecStart= runs the installed diskgated" "$sbindir/diskgated" "$(unit_value ExecStart | cut -d' ' -f1)"
check "ExecReload= runs the installed diskgatectl" "$bindir/diskgatectl reload-program" "$(unit_value ExecReload)"
check "EnvironmentFile= is the installed configuration" "-$sysconfdir/default/diskgated" "$(unit_value EnvironmentFile)"
check "Documentation= names both man pages" "man:diskgated(8) man:diskgatectl(1)" "$(unit_value Documentation)"
check_cmd "the unit asks for the watchdog" grep -q '^WatchdogSec=' "$DEST$unit"
if [[ $prefix == /usr ]]; then
	check_cmd "prefix /usr: nothing in the unit names /usr/local" bash -c "! grep -q /usr/local '$DEST$unit'"
fi
# verify checks that the commands exist: the same unit with them in DEST.
mkdir -p "$WORK/units"
sed -e "s|^\(Exec[A-Za-z]*=\)/|\1$DEST/|" "$DEST$unit" >"$WORK/units/diskgated.service"
if MANPATH=$DEST$mandir systemd-analyze verify "$WORK/units/diskgated.service" >"$WORK/verify.log" 2>&1 &&
	[[ ! -s $WORK/verify.log ]]; then
	ok "systemd-analyze verify accepts the unit, without a word"
else
	not_ok "systemd-analyze verify accepts the unit: $(cat "$WORK/verify.log")"
fi
exposure=$(systemd-analyze security --offline=true "$DEST$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
case ${exposure#* } in
PERFECT | SAFE | OK) ok "systemd-analyze security: $exposure" ;;
*) not_ok "systemd-analyze security: \"OK\" or better (is: ${exposure:-no rating})" ;;
esac

# ---- sysusers: the user rest-server runs as ----
mkdir -p "$WORK/sysroot/etc"
if systemd-sysusers --root="$WORK/sysroot" "$DEST$sysusers" >"$WORK/sysusers.log" 2>&1; then
	check "systemd-sysusers makes _diskgate, no login, no home" "/nonexistent:/usr/sbin/nologin" \
		"$(awk -F: '$1 == "_diskgate" { print $6 ":" $7 }' "$WORK/sysroot/etc/passwd")"
else
	not_ok "systemd-sysusers accepts the entry: $(cat "$WORK/sysusers.log")"
fi

# ---- the installed client works ----
image=$WORK/ext4.img
gzip -dc "$root/fixtures/images/ext4-4k.img.gz" >"$image"
check "the installed diskgatectl probes as the built one" "$("$DISKGATECTL" probe "$image")" "$("$DEST$bindir/diskgatectl" probe "$image" 2>&1)"

# ---- activation: a client's first call starts diskgated ----
activation=$DEST$datadir/dbus-1/system-services/org.diskgate1.service
activation_value() { sed -n "s/^$1=//p" "$activation"; }
check "activation file: Name=" org.diskgate1 "$(activation_value Name)"
check "activation file: SystemdService= is the unit" diskgated.service "$(activation_value SystemdService)"
check "activation file: Exec= is the installed diskgated" "$sbindir/diskgated" "$(activation_value Exec)"
if [[ $EUID -eq 0 ]]; then
	mkdir -p "$WORK/services"
	sed -e "s|^Exec=/|Exec=$DEST/|" "$activation" >"$WORK/services/org.diskgate1.service"
	BUS=unix:path=$WORK/bus
	# A session-type bus starts services itself (a system bus hands them to
	# systemd or to its setuid helper, which reads only /usr/share).
	cat >"$WORK/bus.conf" <<-EOF
		<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
		 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
		<busconfig>
		  <type>session</type>
		  <listen>$BUS</listen>
		  <servicedir>$WORK/services</servicedir>
		  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
		</busconfig>
	EOF
	# The activated diskgated connects to "the system bus": this one.
	if DBUS_SYSTEM_BUS_ADDRESS=$BUS dbus-daemon --config-file="$WORK/bus.conf" --fork --print-pid=1 --nopidfile \
		>"$WORK/bus.pid" 2>"$WORK/bus.err"; then
		BUS_PID=$(<"$WORK/bus.pid")
		if timeout 30 "$DISKGATECTL" --bus "$BUS" list >"$WORK/list.txt" 2>"$WORK/list.err"; then
			ok "the first call (diskgatectl list) started diskgated and was answered"
		else
			not_ok "the first call (diskgatectl list) started diskgated and was answered: $(cat "$WORK/list.err")"
		fi
		# (dbus-daemon double-forks what it starts: the path in DEST is what tells it.)
		ACTIVATED_PID=$(pgrep -f "^$DEST$sbindir/diskgated" | head -n1)
		check_cmd "the activated diskgated is the installed one, started by the bus" test -n "$ACTIVATED_PID"
	else
		not_ok "dbus-daemon starts with the test's configuration: $(cat "$WORK/bus.err")"
	fi
else
	echo "# activation not tried: diskgated needs root"
fi

# sub_test DESCRIPTION SCRIPT ARGS...: another test script as one check
# (its own checks counted; a skip is said, not counted).
sub_test() {
	local what=$1 script=$2 log
	shift 2
	log=$WORK/$(basename "$script" .sh).log
	bash "$script" "$@" >"$log" 2>&1
	case $? in
	0) ok "$what ($(basename "$script"): $(grep -c '^ok' "$log") checks)" ;;
	77) echo "# $(basename "$script") skipped: $(grep -m1 SKIP "$log")" ;;
	*)
		not_ok "$what ($(basename "$script"))"
		grep '^not ok' "$log"
		;;
	esac
}
sub_test "the installed bus policy holds" "$root/tests/dbus/policy_test.sh" \
	"$BUILD/src/diskgated" "$DEST$datadir/dbus-1/system.d/org.diskgate1.conf"
sub_test "the gate works under the unit's CapabilityBoundingSet and NoNewPrivileges" \
	"$here/unit_capabilities_test.sh" "$DEST$unit" "$BUILD/src/diskgated"

echo "# $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
