#!/bin/bash
# The bash completion of diskgatectl (shell-completion/diskgatectl), sourced
# here and called as bash calls it: COMP_LINE, COMP_POINT, and COMP_WORDS
# split at COMP_WORDBREAKS as bash splits them (so UUID=... and
# unix:path=... arrive in pieces). Every check runs twice: without
# bash-completion, and with /usr/share/bash-completion/bash_completion
# loaded when it is installed.
#
#   completion_test.sh static COMPLETION DISKGATECTL
#       subcommands, options, option values, /dev paths for probe, and
#       nothing (no error, no wait) without a daemon
#   completion_test.sh daemon COMPLETION DISKGATED DISKGATECTL
#       the specs of a real diskgated on a private bus: an ext4 loop device
#       with a known UUID and label (root, dbus-daemon, mkfs.ext4)
#
# One line per check: "ok - ..." or "not ok - ...". Exit: 0 all passed, 1 a
# check failed, 77 skipped (meson's convention).
set -o pipefail

# shellcheck source=../lib/checks.sh
source "$(dirname "$(readlink -f "$0")")/../lib/checks.sh"

MODE=${1:-}
case $MODE in
	static) [[ $# -eq 3 ]] && COMPLETION=$(readlink -f "$2") && DISKGATECTL=$(readlink -f "$3") ;;
	daemon)
		[[ $# -eq 4 ]] && COMPLETION=$(readlink -f "$2") && DISKGATED=$(readlink -f "$3") &&
			DISKGATECTL=$(readlink -f "$4")
		;;
esac
if [[ -z ${COMPLETION:-} ]]; then
	echo "usage: $0 static COMPLETION DISKGATECTL | daemon COMPLETION DISKGATED DISKGATECTL" >&2
	exit 2
fi
[[ -r $COMPLETION ]] || { echo "not ok - $COMPLETION is not readable"; exit 1; }
need_executables "$DISKGATECTL"
[[ $MODE == daemon ]] && need_executables "$DISKGATED"
TIMEOUT=10
BASH_COMPLETION=/usr/share/bash-completion/bash_completion

WORK=$(mktemp -d /tmp/diskgate-completion-test.XXXXXX)
ERRORS=$WORK/stderr  # whatever the completion printed on stderr (nothing, we check)
: >"$ERRORS"

# ---- calling the completion as bash does ----

# complete_line LINE: COMPREPLY for LINE with the cursor at its end. The
# words are split as bash splits them for COMP_WORDS: at white space, and
# runs of COMP_WORDBREAKS characters (= : > < ...) make words of their own.
complete_line() {
	local line=$1 i c word='' q='' breaks='=:><;|&('
	COMP_WORDS=()
	for ((i = 0; i < ${#line}; i++)); do
		c=${line:i:1}
		if [[ -n $q ]]; then
			word+=$c
			[[ $c == "$q" ]] && q=''
		elif [[ $c == \\ ]]; then
			word+=$c${line:i+1:1}
			i=$((i + 1))
		elif [[ $c == [[:space:]] ]]; then
			[[ -n $word ]] && COMP_WORDS+=("$word")
			word=''
		elif [[ $breaks == *"$c"* ]]; then
			if [[ -n $word && $breaks != *"${word: -1}"* ]]; then
				COMP_WORDS+=("$word")
				word=''
			fi
			word+=$c
		else
			if [[ -n $word && $breaks == *"${word: -1}"* ]]; then
				COMP_WORDS+=("$word")
				word=''
			fi
			[[ $c == [\'\"] ]] && q=$c
			word+=$c
		fi
	done
	COMP_WORDS+=("$word")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE=$line
	COMP_POINT=${#line}
	COMPREPLY=()
	_diskgatectl diskgatectl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" 2>>"$ERRORS"
}
# replies LINE: COMPREPLY for LINE, sorted, space-separated.
replies() {
	complete_line "$1"
	((${#COMPREPLY[@]})) || return 0
	printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | paste -sd' '
}
# offers DESCRIPTION LINE WORD: COMPREPLY for LINE holds WORD.
offers() {
	local reply
	complete_line "$2"
	for reply in "${COMPREPLY[@]}"; do
		if [[ $reply == "$3" ]]; then
			ok "$1"
			return
		fi
	done
	not_ok "$1"
	echo "#   expected among the replies: $3"
	echo "#   replies: $(printf '<%s> ' "${COMPREPLY[@]}")"
}
# offers_nothing DESCRIPTION LINE
offers_nothing() { check "$1" "" "$(replies "$2")"; }

CTL=$DISKGATECTL  # the first word of every line: the completion runs it

# ---- the checks ----

static_checks() {
	check "$FLAVOUR: the subcommands" \
		"fs list monitor probe reload-program resolve resolve-all restart start status stop wait" "$(replies "$CTL ")"
	check "$FLAVOUR: subcommands by prefix" "reload-program resolve resolve-all restart" "$(replies "$CTL re")"
	check "$FLAVOUR: global options" "--bus --help" "$(replies "$CTL --")"
	check "$FLAVOUR: --bus values" "session system" "$(replies "$CTL --bus ")"
	check "$FLAVOUR: --bus=s (split at = by COMP_WORDBREAKS)" "session system" "$(replies "$CTL --bus=s")"
	check "$FLAVOUR: probe's options" "--debug --help --low-level --match-tag --output -h -o -p -s" \
		"$(replies "$CTL probe -")"
	check "$FLAVOUR: wait's options" "--complete --help --json --timeout" "$(replies "$CTL wait --")"
	check "$FLAVOUR: list's options, also without a dash" "--help --json -h" "$(replies "$CTL list ")"
	check "$FLAVOUR: no options for stop but -h" "--help -h" "$(replies "$CTL stop -")"
	check "$FLAVOUR: probe -o values" "export full json udev value" "$(replies "$CTL probe -o ")"
	check "$FLAVOUR: probe --output=j" "json" "$(replies "$CTL probe --output=j")"
	check "$FLAVOUR: probe -s tags" "PART_ENTRY_NAME PART_ENTRY_NUMBER" "$(replies "$CTL probe -s PART_ENTRY_N")"
	offers_nothing "$FLAVOUR: nothing after --timeout" "$CTL wait --timeout "
	offers_nothing "$FLAVOUR: nothing for an unknown subcommand" "$CTL frobnicate "

	# probe: files, and under /dev block devices (and directories) only.
	local block='' dev
	for dev in /dev/*; do
		if [[ -b $dev ]]; then
			block=$dev
			break
		fi
	done
	if [[ -n $block ]]; then
		offers "$FLAVOUR: probe ${block:0:7} offers the block device $block" "$CTL probe ${block:0:7}" "$block"
	else
		echo "ok - $FLAVOUR: probe /dev/... # SKIP no block device under /dev"
	fi
	offers "$FLAVOUR: probe /dev/di offers the directory /dev/disk" "$CTL probe /dev/di" /dev/disk
	[[ -c /dev/null ]] && offers_nothing "$FLAVOUR: probe /dev/nul offers no character device" "$CTL probe /dev/nul"
	: >"$WORK/image one.img"
	offers "$FLAVOUR: probe offers image files" "$CTL probe $WORK/image" "$WORK/image one.img"

	# Without a daemon: nothing, at once, silently.
	local start=$SECONDS
	offers_nothing "$FLAVOUR: resolve without a daemon offers nothing" \
		"$CTL --bus unix:path=$WORK/nobody.sock resolve "
	offers_nothing "$FLAVOUR: fs without a daemon offers nothing" "$CTL fs --bus=unix:path=$WORK/nobody.sock "
	# A socket that accepts but never answers: the 2 s limit.
	if [[ -n $SILENT_SOCKET ]]; then
		offers_nothing "$FLAVOUR: resolve with a bus that never answers offers nothing" \
			"$CTL --bus unix:path=$SILENT_SOCKET wait UUID="
	fi
	check "$FLAVOUR: ... within 5 s" 1 "$((SECONDS - start <= 5))"
}

daemon_checks() {
	local on="$CTL --bus $BUS"
	offers "$FLAVOUR: resolve offers UUID=<the ext4's UUID>" "$on resolve " "UUID=$EXT4_UUID"
	offers "$FLAVOUR: resolve offers LABEL=<its label>" "$on resolve " "LABEL=$EXT4_LABEL"
	# readline keeps what precedes the last COMP_WORDBREAKS character (=).
	check "$FLAVOUR: resolve UUID=<prefix> completes the UUID (after the =)" "$EXT4_UUID" \
		"$(replies "$on resolve UUID=${EXT4_UUID:0:8}")"
	check "$FLAVOUR: resolve-all LABEL=dg\\ cmp<TAB> completes the label with a space (unquoted: readline quotes)" \
		"$EXT4_LABEL" "$(replies "$on resolve-all LABEL=dg\\ cmp")"
	check "$FLAVOUR: resolve \"LABEL=dg cmp<TAB> (open quote before the =: readline keeps only the quote)" \
		"LABEL=$EXT4_LABEL" "$(replies "$on resolve \"LABEL=dg cmp")"
	check "$FLAVOUR: resolve LABEL=\"dg cmp<TAB> (open quote after the =)" "$EXT4_LABEL" \
		"$(replies "$on resolve LABEL=\"dg cmp")"
	offers "$FLAVOUR: wait --complete offers UUID=<the ext4's UUID>" "$on wait --complete " "UUID=$EXT4_UUID"
	offers "$FLAVOUR: resolve /dev/ offers the loop device" "$on resolve /dev/" "$LOOP"
	offers "$FLAVOUR: fs offers the bare UUID" "$on fs " "$EXT4_UUID"
	offers "$FLAVOUR: --bus after the subcommand is used too" "$CTL resolve --bus $BUS " "UUID=$EXT4_UUID"
	offers "$FLAVOUR: --bus=ADDRESS is used too" "$CTL --bus=$BUS resolve " "UUID=$EXT4_UUID"
	offers_nothing "$FLAVOUR: nothing after the one spec" "$on resolve UUID=$EXT4_UUID "
	offers_nothing "$FLAVOUR: list takes no spec" "$on list U"
	# Without --bus: the system bus, found through DBUS_SYSTEM_BUS_ADDRESS.
	local saved=${DBUS_SYSTEM_BUS_ADDRESS-unset}
	export DBUS_SYSTEM_BUS_ADDRESS=$BUS
	offers "$FLAVOUR: without --bus, the system bus (DBUS_SYSTEM_BUS_ADDRESS)" "$CTL resolve " "UUID=$EXT4_UUID"
	if [[ $saved == unset ]]; then unset DBUS_SYSTEM_BUS_ADDRESS; else DBUS_SYSTEM_BUS_ADDRESS=$saved; fi
}

# run_flavours CHECKS: CHECKS without bash-completion, then with it (each
# in a subshell of its own); adds their counts to PASSED and FAILED.
run_flavours() {
	local checks=$1 flavour counts
	for flavour in plain bash-completion; do
		if [[ $flavour == bash-completion && ! -r $BASH_COMPLETION ]]; then
			echo "ok - $checks with bash-completion # SKIP $BASH_COMPLETION is not installed"
			continue
		fi
		counts=$WORK/counts.$flavour
		(
			FLAVOUR=$flavour
			if [[ $flavour == bash-completion ]]; then
				# shellcheck source=/dev/null
				source "$BASH_COMPLETION" 2>"$WORK/bash_completion.err"
				declare -F _init_completion >/dev/null || not_ok "$BASH_COMPLETION defines _init_completion"
			fi
			# shellcheck source=/dev/null
			source "$COMPLETION"
			if [[ $flavour == plain ]] && declare -F _init_completion >/dev/null; then
				not_ok "plain: _init_completion is not defined"
			fi
			# shellcheck disable=SC2030  # counted here, added up below
			PASSED=0 FAILED=0
			"$checks"
			echo "$PASSED $FAILED" >"$counts"
		)
		if [[ -s $counts ]]; then
			read -r p f <"$counts"
			# shellcheck disable=SC2031
			PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
		else
			not_ok "$flavour: $checks ran to the end"
		fi
	done
	check "the completion printed nothing on stderr" "" "$(cat "$ERRORS")"
}

# ---- cleanup ----

BUS_PID='' DAEMON_PID='' SILENT_PID='' LOOP=''
cleanup() {
	local status=$? back
	trap '' INT TERM
	for pid in "$DAEMON_PID" "$SILENT_PID"; do
		[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	if [[ -n $LOOP ]]; then
		back=$(losetup -n -O BACK-FILE "$LOOP" 2>/dev/null) && [[ $back == "$WORK"/* ]] && losetup -d "$LOOP"
	fi
	[[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
	finish_cleanup "$status" "${COMPLETION_TEST_KEEP:-}" "(diskgated.log)"
}
on_exit_cleanup

# ---- static ----

if [[ $MODE == static ]]; then
	SILENT_SOCKET=''
	if command -v python3 >/dev/null; then
		# Listens, accepts, never says a word: what a wedged bus looks like.
		SILENT_SOCKET=$WORK/silent.sock
		(exec python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
held = []
while True:
    held.append(s.accept()[0])
' "$SILENT_SOCKET" 2>/dev/null) &
		SILENT_PID=$!
		wait_until "$TIMEOUT" test -S "$SILENT_SOCKET" || SILENT_SOCKET=''
	fi
	run_flavours static_checks
	((FAILED == 0))
	exit
fi

# ---- daemon ----

need_root "loop devices"
need_loop_control
need_free_loop
need_tools dbus-daemon mkfs.ext4 losetup

BUS=unix:path=$WORK/bus.sock
DAEMON_LOG=$WORK/diskgated.log
dbus-daemon --session --fork --print-pid=1 --address="$BUS" >"$WORK/bus.pid" 2>"$WORK/bus.err" || {
	echo "not ok - dbus-daemon did not start: $(cat "$WORK/bus.err")"
	exit 1
}
BUS_PID=$(<"$WORK/bus.pid")
wait_until "$TIMEOUT" test -S "$WORK/bus.sock" || { not_ok "the private bus's socket appears"; exit 1; }

(exec "$DISKGATED" --bus "$BUS" --uevents kernel --log-level debug 2>"$DAEMON_LOG") &
DAEMON_PID=$!
if ! wait_until "$TIMEOUT" "$DISKGATECTL" --bus "$BUS" list >/dev/null 2>&1; then
	not_ok "diskgated starts on the private bus"
	sed 's/^/# /' "$DAEMON_LOG"
	exit 1
fi
ok "diskgated runs on $BUS"

EXT4_UUID=$(new_uuid) EXT4_LABEL="dg cmp $(rand_hex 3)"  # a space: quoting
truncate -s 16M "$WORK/ext4.img"
mkfs.ext4 -q -F -L "$EXT4_LABEL" -U "$EXT4_UUID" "$WORK/ext4.img"
LOOP=$(losetup --find --show "$WORK/ext4.img") || { not_ok "losetup attaches the image"; exit 1; }
if wait_until "$TIMEOUT" "$DISKGATECTL" --bus "$BUS" resolve "UUID=$EXT4_UUID" >/dev/null 2>&1; then
	ok "diskgated identifies $LOOP as UUID=$EXT4_UUID"
else
	not_ok "diskgated identifies $LOOP as UUID=$EXT4_UUID (within ${TIMEOUT}s)"
	sed 's/^/# /' "$DAEMON_LOG"
	exit 1
fi

run_flavours daemon_checks
((FAILED == 0))
