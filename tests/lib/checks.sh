# Sourced by the shell integration tests: TAP-like check lines, bounded
# waits and fresh names. Counts in PASSED and FAILED.
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
# Names unique to this run: other tests may attach images at the same time.
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
new_uuid() { cat /proc/sys/kernel/random/uuid; }
