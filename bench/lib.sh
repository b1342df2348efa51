# Sourced by the benchmarks (bench/hotplug, scale, slowdisk, gate, rescan-flood): stopping what a
# bench started, bounded waits, RESULT lines, RSS, the loop devices and nodes
# a bench makes, and the reference services (udisks2, systemd-udevd, a system
# bus). Expects WORK (the bench's scratch folder) and, for remove_our_loops,
# LOOP_REMOVER (bench-rescan-flood, whose remove-loops does LOOP_CTL_REMOVE).

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
result() { sed -n "s/^RESULT.* $2=\([^ ]*\).*/\1/p;s/^RESULT $2=\([^ ]*\).*/\1/p" "$1" | head -n1; }
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

# ---- udisks2 + systemd-udevd, the reference (bench/hotplug, bench/scale,
# bench/slowdisk) ----
# Expects PIDS (what the bench started, stopped in reverse order by its
# cleanup), die and note; the bench's cleanup calls services_stop first.

UDEVD_BIN=${UDEVD_BIN:-/lib/systemd/systemd-udevd}
UDISKSD_BIN=${UDISKSD_BIN:-/usr/libexec/udisks2/udisksd}
SYSTEM_SOCKET=/run/dbus/system_bus_socket
UDEVD_PID=''       # the systemd-udevd we started
UDEVD_MAIN=''      # the one in use (ours or one that ran already)
CREATED_RUN_UDEV=0
DEV_DISK_BEFORE=() # the links in /dev/disk before our udevd started
SYSTEM_BUS_PID=''  # the system bus we started
UDISKS_PID=''      # the udisksd in use
UDISKS_OURS=0

# forget PID: drops a stopped PID from PIDS (cleanup must not signal a pid
# the system has given to someone else since).
forget() {
	local i
	for i in "${!PIDS[@]}"; do [[ ${PIDS[i]} == "$1" ]] && unset 'PIDS[i]'; done
	PIDS=("${PIDS[@]}")
}
owns_name() { # BUS-OPTION NAME
	dbus-send "$1" --dest=org.freedesktop.DBus --print-reply /org/freedesktop/DBus \
		org.freedesktop.DBus.GetNameOwner "string:$2" >/dev/null 2>&1
}
name_pid() { # BUS-OPTION NAME
	dbus-send "$1" --dest=org.freedesktop.DBus --print-reply /org/freedesktop/DBus \
		org.freedesktop.DBus.GetConnectionUnixProcessID "string:$2" 2>/dev/null | sed -n 's/.*uint32 //p'
}
# udevd_rss_kb MAIN: udevd's main process and its workers.
udevd_rss_kb() {
	local main=$1 total worker
	total=$(rss_kb "$main")
	for worker in $(pgrep -P "$main"); do total=$((total + $(rss_kb "$worker"))); done
	echo "$total"
}
udevd_running() { pgrep -x systemd-udevd >/dev/null || pgrep -x udevd >/dev/null; }

# udevd_start [reuse]: starts a systemd-udevd of our own (UDEVD_PID) when
# none runs; with "reuse", a udevd that runs and answers is used instead
# (UDEVD_PID stays empty). Sets UDEVD_MAIN. Returns 1 with a note when
# there is none to use.
udevd_start() {
	# One that is starting makes its control socket in a moment.
	udevd_running && wait_until 10 test -S /run/udev/control
	if udevd_running; then
		if [[ ${1:-} == reuse && -e /run/udev/control ]] && udevadm control --ping --timeout=2 >/dev/null 2>&1; then
			UDEVD_MAIN=$(pgrep -x systemd-udevd | head -n1)
			note "using the systemd-udevd that runs (pid $UDEVD_MAIN)"
			return 0
		fi
		note "a udevd runs already (pid $(pgrep -x systemd-udevd || pgrep -x udevd)): not starting one"
		return 1
	fi
	if [[ ! -x $UDEVD_BIN ]]; then
		note "$UDEVD_BIN is not installed"
		return 1
	fi
	[[ -e /run/udev ]] || CREATED_RUN_UDEV=1
	rm -f /run/udev/control # stale: no udevd answers on it
	mapfile -t DEV_DISK_BEFORE < <(find /dev/disk -type l 2>/dev/null)
	# As a job rather than --daemon, and exec in a subshell: $! is then
	# udevd itself, the daemon we stop.
	(exec "$UDEVD_BIN" >>"$WORK/udevd.log" 2>&1) &
	UDEVD_PID=$!
	UDEVD_MAIN=$UDEVD_PID
	PIDS+=("$UDEVD_PID")
	wait_until 10 test -S /run/udev/control || die "systemd-udevd did not start: $(cat "$WORK/udevd.log")"
	udevadm control --ping --timeout=10 >/dev/null || die "systemd-udevd does not answer"
	note "started systemd-udevd (pid $UDEVD_PID)"
}
# udevd_stop: stops our udevd and removes what it leaves behind: /run/udev
# (control socket, database: the next run would believe a udevd is there)
# if it made it, and the links it made in /dev/disk (they would point at
# whatever later takes those loop numbers).
udevd_stop() {
	[[ -n $UDEVD_PID ]] || return 0
	local link
	local -A before=()
	stop "$UDEVD_PID"
	forget "$UDEVD_PID"
	UDEVD_PID='' UDEVD_MAIN=''
	for link in "${DEV_DISK_BEFORE[@]}"; do before[$link]=1; done
	while read -r link; do
		[[ -z ${before[$link]:-} ]] && rm -f "$link"
	done < <(find /dev/disk -type l 2>/dev/null)
	((CREATED_RUN_UDEV)) && rm -rf /run/udev
	CREATED_RUN_UDEV=0
	return 0
}

# system_bus_start: a system bus at SYSTEM_SOCKET (SYSTEM_BUS_PID) unless
# one answers there; everyone may own and call anything on it, and it
# activates nothing.
system_bus_start() {
	owns_name --system org.freedesktop.DBus && return 0
	[[ -S $SYSTEM_SOCKET ]] && rm -f "$SYSTEM_SOCKET" # nobody answers on it
	mkdir -p "${SYSTEM_SOCKET%/*}"
	cat >"$WORK/system-bus.conf" <<-EOF2
		<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
		 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
		<busconfig>
		  <type>system</type>
		  <listen>unix:path=$SYSTEM_SOCKET</listen>
		  <auth>EXTERNAL</auth>
		  <policy context="default">
		    <allow user="*"/>
		    <allow own="*"/>
		    <allow send_destination="*" eavesdrop="true"/>
		    <allow eavesdrop="true"/>
		  </policy>
		</busconfig>
	EOF2
	dbus-daemon --config-file="$WORK/system-bus.conf" --fork --print-pid=1 >"$WORK/system-bus.pid" ||
		die "the system bus did not start"
	SYSTEM_BUS_PID=$(<"$WORK/system-bus.pid")
	PIDS+=("$SYSTEM_BUS_PID")
	note "started a system bus at $SYSTEM_SOCKET (pid $SYSTEM_BUS_PID)"
}
system_bus_stop() {
	[[ -n $SYSTEM_BUS_PID ]] || return 0
	stop "$SYSTEM_BUS_PID"
	forget "$SYSTEM_BUS_PID"
	SYSTEM_BUS_PID=''
	rm -f "$SYSTEM_SOCKET"
}

# udisksd_start [nowait|reuse]: starts udisksd on the system bus
# (UDISKS_PID). By default waits until it owns its name; with nowait it
# returns at once (the bench times it coming up itself); with reuse, a
# udisksd already on the bus is used. Returns 1 with a note when one runs
# and reuse is not given.
udisksd_start() {
	if owns_name --system org.freedesktop.UDisks2; then
		if [[ ${1:-} == reuse ]]; then
			UDISKS_PID=$(name_pid --system org.freedesktop.UDisks2)
			note "using the udisksd that runs (pid $UDISKS_PID)"
			return 0
		fi
		note "a udisksd runs already (pid $(name_pid --system org.freedesktop.UDisks2)): not starting one"
		return 1
	fi
	(exec "$UDISKSD_BIN" --no-debug >>"$WORK/udisksd.log" 2>&1) &
	UDISKS_PID=$!
	UDISKS_OURS=1
	PIDS+=("$UDISKS_PID")
	[[ ${1:-} == nowait ]] && return 0
	wait_until 30 owns_name --system org.freedesktop.UDisks2 ||
		die "udisksd did not start: $(cat "$WORK/udisksd.log")"
	note "started udisksd (pid $UDISKS_PID)"
}
udisksd_stop() {
	((UDISKS_OURS)) || return 0
	stop "$UDISKS_PID"
	forget "$UDISKS_PID"
	UDISKS_PID='' UDISKS_OURS=0
}
# services_stop: for cleanup(), before the rest of PIDS.
services_stop() {
	udisksd_stop
	udevd_stop
	system_bus_stop
}
