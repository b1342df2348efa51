# shellcheck shell=bash
# Sourced by the shell integration tests: TAP-like check lines, bounded
# waits, fresh names, the usual start (arguments, skips) and end (cleanup)
# of a test. Counts in PASSED and FAILED.
PASSED=0 FAILED=0
ok() {
	echo "ok - $*"
	PASSED=$((PASSED + 1))
}
not_ok() {
	echo "not ok - $*"
	FAILED=$((FAILED + 1))
}
# check DESCRIPTION EXPECTED ACTUAL
check() {
	if [[ $2 == "$3" ]]; then
		ok "$1"
	else
		not_ok "$1"
		echo "#   expected: $2"
		echo "#   actual:   $3"
	fi
}
# check_cmd DESCRIPTION COMMAND...: the command succeeds
check_cmd() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# wait_until SECONDS COMMAND...: polls COMMAND until it succeeds; 1 on timeout.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= deadline)) && return 1
		sleep 0.05
	done
	return 0
}
# check_log_clean LOG: the daemon's log holds no internal error (the event
# loop's catch-all), crash or sanitizer report; one check, the lines shown.
check_log_clean() {
	local crash='internal error|terminate called|Assertion .* failed|Sanitizer|runtime error:'
	if grep -qE "$crash" "$1"; then
		not_ok "diskgated logged no internal error, crash or sanitizer report"
		grep -E "$crash" "$1" | head -n 20 | sed 's/^/#   /'
	else
		ok "diskgated logged no internal error, crash or sanitizer report"
	fi
}
# Names unique to this run: other tests may attach images at the same time.
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
new_uuid() { cat /proc/sys/kernel/random/uuid; }

# ---- the start of a test: arguments, what it needs (skips otherwise) ----

# diskgated_args "$@": the arguments DISKGATED DISKGATECTL, made absolute in
# DISKGATED and DISKGATECTL; anything else: usage, exit 2.
# shellcheck disable=SC2034  # the test's variables
diskgated_args() {
	if [[ $# -ne 2 ]]; then
		echo "usage: $0 DISKGATED DISKGATECTL" >&2
		exit 2
	fi
	DISKGATED=$(readlink -f "$1")
	DISKGATECTL=$(readlink -f "$2")
}
# skip REASON: "SKIP: REASON", exit 77 (meson's convention).
skip() {
	echo "SKIP: $*"
	exit 77
}
# need_root WHY: skips unless root ("needs root (WHY)").
need_root() { [[ $EUID -eq 0 ]] || skip "needs root ($1)"; }
need_loop_control() {
	[[ -c /dev/loop-control && -w /dev/loop-control ]] || skip "/dev/loop-control is missing or not writable"
}
need_free_loop() { losetup -f >/dev/null 2>&1 || skip "no free loop device"; }
# need_fs FSTYPE: the kernel has it.
need_fs() { grep -qw "$1" /proc/filesystems || skip "the kernel has no $1 (not in /proc/filesystems)"; }
# need_udevd_slot: skips unless /run/udev/control is either answered by a
# udevd or free for the test's own (a dead udevd's socket is removed).
need_udevd_slot() {
	# A udevd process, zombies aside.
	udevd_runs() { pgrep -x -r D,R,S,T systemd-udevd >/dev/null || pgrep -x -r D,R,S,T udevd >/dev/null; }
	local i
	# One that is starting makes its control socket in a moment.
	for ((i = 0; i < 100; i++)); do
		[[ -e /run/udev/control ]] || ! udevd_runs && break
		sleep 0.1
	done
	if [[ -e /run/udev/control ]]; then
		# udevd never removes its control socket: it outlives a udevd that
		# died. With nobody there, take the dead socket away.
		if ! udevadm control --ping --timeout=2 >/dev/null 2>&1; then
			udevd_runs && skip "a udevd runs but does not answer on /run/udev/control"
			rm -f /run/udev/control
		fi
	elif udevd_runs; then
		skip "a udevd runs but /run/udev/control is absent"
	fi
}
# stop_own_udevd: stops the udevd a test started (UDEVD_PID, if set) and
# removes what it leaves behind, which would make the next run believe a
# udevd is there: all of /run/udev when the test made it (CREATED_RUN_UDEV),
# else the control socket.
stop_own_udevd() {
	[[ -n ${UDEVD_PID:-} ]] || return 0
	kill "$UDEVD_PID" 2>/dev/null
	wait_until 10 eval '! kill -0 "$UDEVD_PID" 2>/dev/null' || kill -KILL "$UDEVD_PID" 2>/dev/null
	wait "$UDEVD_PID" 2>/dev/null
	if ((${CREATED_RUN_UDEV:-0})); then rm -rf /run/udev; else rm -f /run/udev/control; fi
}
# need_tools TOOL...: each is installed (the first missing one is named).
need_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || skip "$tool is not installed"
	done
}
# need_executables FILE...: each is executable, else a failed check, exit 1.
need_executables() {
	local exe
	for exe in "$@"; do
		if [[ ! -x $exe ]]; then
			echo "not ok - $exe is not an executable"
			exit 1
		fi
	done
}

# ---- cleanup ----

# on_exit_cleanup: cleanup() runs on exit; SIGINT and SIGTERM exit 130 and 143.
on_exit_cleanup() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
# finish_cleanup STATUS [KEEP [WHAT]]: the end of a cleanup(): removes $WORK
# unless KEEP is set (then says "# kept $WORK WHAT"), exits STATUS.
finish_cleanup() {
	if [[ -n ${2:-} ]]; then
		echo "# kept $WORK${3:+ $3}"
	else
		rm -rf "$WORK"
	fi
	exit "$1"
}

# ---- processes, devices ----

# has_exited PID: gone or a zombie (a child we have not waited for yet).
has_exited() { [[ ! -e /proc/$1 || $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]; }
# uevent NODE ACTION: a kernel uevent for loop device NODE. A "disk gone" for
# the daemon is a remove uevent (a mounted loop device cannot be detached).
uevent() { echo "$2" >"/sys/block/${1#/dev/}/uevent"; }
