# Sourced by bench/hotplug and bench/scale: stopping what a bench started,
# bounded waits, RESULT lines, RSS, and the loop devices and nodes a bench
# makes. Expects WORK (the bench's scratch folder) and, for
# remove_our_loops, LOOP_REMOVER (bench-rescan-flood, whose remove-loops
# does LOOP_CTL_REMOVE).

# stop PID: SIGTERM, then SIGKILL after 10 s.
stop() {
	local pid=$1 deadline=$((SECONDS + 10))
	kill "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
# wait_until SECONDS COMMAND...: polls until COMMAND succeeds; 1 on timeout.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS >= deadline)) && return 1
		sleep 0.05
	done
}
# result FILE KEY: a value from the RESULT line in FILE.
result() { sed -n "s/^RESULT.* $2=\([^ ]*\).*/\1/p" "$1" | head -n1; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The loop numbers whose node exists before the bench starts: any other is
# the bench's own (losetup --find and LOOP_CTL_GET_FREE make new nodes).
declare -A LOOPS_BEFORE=()
for dev in /sys/block/loop*; do [[ -e $dev ]] && LOOPS_BEFORE[${dev##*/loop}]=1; done
# detach_our_loops: detaches the loop devices backed by files under $WORK.
detach_our_loops() {
	local node back
	while read -r node back; do
		[[ $back == "$WORK"/* ]] && losetup -d "$node" 2>/dev/null
	done < <(losetup -n -O NAME,BACK-FILE 2>/dev/null)
}
# remove_our_loops: for cleanup(), detaches ours and removes the nodes the
# bench made, or every later daemon run enumerates them.
remove_our_loops() {
	local created=() dev number
	detach_our_loops
	for dev in /sys/block/loop*; do
		number=${dev##*/loop}
		[[ -e $dev && $number =~ ^[0-9]+$ && -z ${LOOPS_BEFORE[$number]:-} ]] && created+=("$number")
	done
	((${#created[@]})) && "$LOOP_REMOVER" remove-loops "${created[@]}"
	return 0
}
