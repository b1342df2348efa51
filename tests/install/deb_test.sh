#!/usr/bin/env bash
# The .deb installed for real into this machine's root, used, removed and
# purged:
#
#   tests/install/deb_test.sh PACKAGE.deb
#
# Checks: dpkg -i succeeds and the package is "installed"; its files are in
# place (the unit where systemd looks, accepted by `systemd-analyze verify`
# as installed; the man pages found by man; the completion loads); the
# conffile is registered; postinst made _diskgate and enabled the unit
# without starting it; diskgatectl probes a fixture and finds its bus module;
# `dpkg -r` leaves only the conffile (and the unit masked, as debhelper
# does); `dpkg -P` leaves nothing: the file tree of /etc, /usr, /lib and
# /var/lib is as before the install (the _diskgate user stays in
# /etc/passwd, as Debian keeps system users).
# Refuses to run (skips) when a diskgate package is already installed.
# One line per check: "ok - ..." or "not ok - ...". Exit: 0 all passed, 1 a
# check failed, 77 skipped.
set -u -o pipefail

here=$(dirname "$(readlink -f "$0")")
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/checks.sh
source "$here/../lib/checks.sh"

if [[ $# -ne 1 ]]; then
	echo "usage: $0 PACKAGE.deb" >&2
	exit 2
fi
DEB=$(readlink -f "$1")
need_root "dpkg -i into this machine's root"
need_tools dpkg systemd-analyze man
[[ -r $DEB ]] || {
	echo "not ok - $DEB is missing"
	exit 1
}
[[ $(dpkg-deb -f "$DEB" Architecture) == "$(dpkg --print-architecture)" ]] ||
	skip "$DEB is for $(dpkg-deb -f "$DEB" Architecture), this machine is $(dpkg --print-architecture)"
if dpkg-query -W -f='${Status}' diskgate 2>/dev/null | grep -qv '^unknown\|not-installed'; then
	skip "a diskgate package is already installed here ($(dpkg-query -W -f='${Version} ${Status}' diskgate)); not replacing it"
fi

WORK=$(mktemp -d /tmp/deb-test.XXXXXX)
cleanup() {
	local status=$?
	# Whatever happened: the machine without the package.
	dpkg-query -W diskgate >/dev/null 2>&1 && dpkg -P diskgate >>"$WORK/dpkg.log" 2>&1
	finish_cleanup "$status" "${DEB_TEST_KEEP:-}"
}
on_exit_cleanup

tree() {
	find /etc /usr /lib /var/lib -xdev \( -path /var/lib/apt/lists -o -path /var/lib/dpkg/info \
		-o -path /var/cache -o -path /var/lib/lintian \) -prune -o -print 2>/dev/null | sort
}
tree >"$WORK/before.txt"
passwd_had_user=$(grep -c '^_diskgate:' /etc/passwd)

# ---- install ----
if dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1; then
	ok "dpkg -i $(basename "$DEB")"
else
	not_ok "dpkg -i $(basename "$DEB"): $(tail -n5 "$WORK/dpkg.log")"
	exit 1
fi
check "the package is installed" "install ok installed" "$(dpkg-query -W -f='${Status}' diskgate)"
for file in /usr/sbin/diskgated /usr/bin/diskgatectl; do
	check_cmd "$file is installed and executable" test -x "$file"
done
unit=$(dpkg -L diskgate | grep '/systemd/system/diskgated.service$')
check_cmd "the unit ($unit) is in one of systemd's unit paths" grep -qxF "$(dirname "$unit")" <(systemd-analyze unit-paths)
if systemd-analyze verify "$unit" >"$WORK/verify.log" 2>&1 && [[ ! -s $WORK/verify.log ]]; then
	ok "systemd-analyze verify accepts the installed unit as it is"
else
	not_ok "systemd-analyze verify accepts the installed unit: $(cat "$WORK/verify.log")"
fi
check_cmd "the bus policy is where dbus-daemon reads it" test -f /usr/share/dbus-1/system.d/org.diskgate1.conf
if grep -qs '^path-exclude=*/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
	echo "# man pages not checked: this machine's dpkg excludes /usr/share/man"
else
	check "man finds diskgated(8)" /usr/share/man/man8/diskgated.8.gz "$(man -w 8 diskgated 2>&1)"
	check "man finds diskgatectl(1)" /usr/share/man/man1/diskgatectl.1.gz "$(man -w 1 diskgatectl 2>&1)"
fi
check_cmd "the bash completion loads and completes diskgatectl" bash -c '
	source /usr/share/bash-completion/completions/diskgatectl 2>/dev/null
	complete -p diskgatectl >/dev/null'
check "the conffile is registered" "/etc/default/diskgated" "$(dpkg-query -W -f='${Conffiles}' diskgate | awk 'NF { print $1 }')"
check "postinst made the user rest-server runs as" "/nonexistent:/usr/sbin/nologin" \
	"$(awk -F: '$1 == "_diskgate" { print $6 ":" $7 }' /etc/passwd)"
check_cmd "postinst enabled the unit (multi-user.target wants it)" \
	test -L /etc/systemd/system/multi-user.target.wants/diskgated.service
check_cmd "postinst started nothing (it waits for /etc/default/diskgated)" bash -c '! pgrep -f "^/usr/sbin/diskgated" >/dev/null'

# ---- use ----
image=$WORK/ext4.img
gzip -dc "$root/fixtures/images/ext4-4k.img.gz" >"$image"
probe=$(/usr/bin/diskgatectl probe "$image" 2>&1)
check_cmd "diskgatectl probe identifies a fixture ($probe)" grep -q 'TYPE="ext4"' <<<"$probe"
/usr/bin/diskgatectl --bus unix:path="$WORK/no-bus" list >"$WORK/list.out" 2>&1
check_cmd "diskgatectl's bus commands find their module (and say the bus is not there)" \
	grep -q 'cannot connect to the bus' "$WORK/list.out"

# ---- remove: only the conffile stays ----
files=$(dpkg -L diskgate | while read -r path; do [[ -f $path ]] && echo "$path"; done)
if dpkg -r diskgate >>"$WORK/dpkg.log" 2>&1; then
	ok "dpkg -r diskgate"
else
	not_ok "dpkg -r diskgate: $(tail -n5 "$WORK/dpkg.log")"
fi
left=$(while read -r path; do [[ -e $path ]] && echo "$path"; done <<<"$files")
check "after remove only the conffile is left of the package's files" "/etc/default/diskgated" "$left"
check "the package is config-files" "deinstall ok config-files" "$(dpkg-query -W -f='${Status}' diskgate 2>&1)"

# ---- purge: nothing ----
if dpkg -P diskgate >>"$WORK/dpkg.log" 2>&1; then
	ok "dpkg -P diskgate"
else
	not_ok "dpkg -P diskgate: $(tail -n5 "$WORK/dpkg.log")"
fi
check_cmd "dpkg knows no diskgate any more" bash -c '! dpkg-query -W diskgate >/dev/null 2>&1'
tree >"$WORK/after.txt"
# The user stays (as Debian keeps system users); systemd-sysusers may leave
# the backups it made of the files it changed.
extra=$(comm -13 "$WORK/before.txt" "$WORK/after.txt" | grep -vxE '/etc/(passwd|group|shadow|gshadow)-')
gone=$(comm -23 "$WORK/before.txt" "$WORK/after.txt")
check "after purge no file or directory is left over (/etc, /usr, /lib, /var/lib)" "" "$extra"
check "after purge nothing that was there before is missing" "" "$gone"
if [[ $passwd_had_user -eq 0 ]]; then
	echo "# _diskgate stays in /etc/passwd, as Debian keeps system users (files on the backup disk may be its)"
fi

echo "# $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
