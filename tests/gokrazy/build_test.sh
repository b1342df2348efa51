#!/usr/bin/env bash
# The gokrazy package rpi/gokrazy/diskgate (standard library only), in a
# temporary copy with its own GOPATH and GOCACHE and no module proxy:
# gofmt, go vet, go test; the arm64 build is a static aarch64 ELF (what
# gokrazy on a Raspberry Pi runs); the host build, run against a fake
# diskgated, passes argv and environment through with execve (same pid, so
# signals reach diskgated) and its exit status back; a diskgated that cannot
# run ends the service with status 125 and a message naming what is wrong.
# Skips when go is not installed (bash .ci/install-deps --test installs it).
#   build_test.sh
set -uo pipefail
here=.
[[ ${BASH_SOURCE[0]} == */* ]] && here=${BASH_SOURCE[0]%/*}
here=$(cd "$here" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/checks.sh
source "$here/../lib/checks.sh"

command -v go >/dev/null || skip "go is not installed (golang-go; bash .ci/install-deps --test installs it)"
need_tools file gofmt

WORK=$(mktemp -d /tmp/diskgate-gokrazy.XXXXXX)
cleanup() {
	local status=$?
	# The module cache is read-only by design; make it removable.
	chmod -R u+w "$WORK" 2>/dev/null
	((FAILED)) && status=1
	finish_cleanup "$status" "${KEEP_WORK:-}"
}
on_exit_cleanup

mkdir -p "$WORK/src" "$WORK/bin" "$WORK/alone"
cp "$root"/rpi/gokrazy/diskgate/go.mod "$root"/rpi/gokrazy/diskgate/*.go "$WORK/src/"
export GOPATH=$WORK/gopath GOCACHE=$WORK/cache GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local \
	GOENV=off GO111MODULE=on GOSUMDB=off
unset GOOS GOARCH CGO_ENABLED DISKGATED
cd "$WORK/src" || exit 1

# ---- the package itself ----
check "gofmt: nothing to reformat" "" "$(gofmt -l . 2>&1)"
check_cmd "go vet" go vet ./...
if go test -count=1 ./... >"$WORK/test.log" 2>&1; then
	ok "go test"
else
	not_ok "go test"
	sed 's/^/#   /' "$WORK/test.log"
fi
check "standard library only: no go.sum, no requirements" "" \
	"$( [[ -e go.sum ]] && echo go.sum; grep -E '^(require|replace)' go.mod)"

# ---- config.json.example says what the gate's end-to-end test runs ----
example=$root/rpi/gokrazy/config.json.example
module=$(sed -n 's/^module //p' go.mod)
if command -v jq >/dev/null; then
	pkg=".PackageConfig[\"$module\"]"
	# shellcheck disable=SC2016  # $m is jq's
	check "config.json.example is JSON listing the package (module $module)" true \
		"$(jq --arg m "$module" '.Packages | index($m) != null' "$example")"
	check "config.json.example: rest-server is not started by gokrazy (DontStart)" true \
		"$(jq '.PackageConfig["github.com/restic/rest-server/cmd/rest-server"].DontStart' "$example")"
	check "config.json.example: CommandLineFlags are rpi/gokrazy-flags.txt" "$(cat "$root/rpi/gokrazy-flags.txt")" \
		"$(jq -r "$pkg.CommandLineFlags[]" "$example")"
	check "config.json.example: Environment is rpi/gokrazy-env.txt" "$(cat "$root/rpi/gokrazy-env.txt")" \
		"$(jq -r "$pkg.Environment[]" "$example")"
	check "config.json.example: diskgated is the extra file the wrapper looks for" \
		"$(sed -n 's/^[[:space:]]*ExtraFilePath[[:space:]]*=[[:space:]]*"\(.*\)"$/\1/p' main.go)" \
		"$(jq -r "$pkg.ExtraFilePaths | keys[]" "$example")"
else
	echo "# config.json.example not checked: jq is not installed"
fi

# ---- the arm64 build gokrazy runs ----
if GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -o "$WORK/diskgate-arm64" . 2>"$WORK/build.log"; then
	ok "GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build"
	kind=$(file -b "$WORK/diskgate-arm64")
	echo "# $kind"
	check_cmd "the arm64 build is an ARM aarch64 ELF executable" \
		grep -q 'ELF 64-bit LSB executable, ARM aarch64' <<<"$kind"
	check_cmd "the arm64 build is statically linked" grep -q 'statically linked' <<<"$kind"
else
	not_ok "GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build"
	sed 's/^/#   /' "$WORK/build.log"
fi

# ---- the host build against a fake diskgated next to it ----
if ! CGO_ENABLED=0 go build -o "$WORK/bin/diskgate" . 2>"$WORK/build.log"; then
	not_ok "host build"
	sed 's/^/#   /' "$WORK/build.log"
	exit 1
fi
ok "host build ($(go env GOARCH))"
cp "$WORK/bin/diskgate" "$WORK/alone/diskgate"

# The fake records its pid, its argv (one per line, NUL-terminated) and its
# environment, then exits with FAKE_STATUS, or waits for SIGTERM and exits 0.
cat >"$WORK/bin/diskgated" <<EOF
#!/bin/bash
echo \$\$ >"$WORK/fake.pid"
printf '%s\0' "\$0" "\$@" >"$WORK/fake.argv"
env -0 >"$WORK/fake.env"
if [[ \${FAKE_WAIT:-} ]]; then
	trap 'exit 0' TERM
	touch "$WORK/fake.ready"
	sleep 30 &
	wait
	exit 3
fi
exit "\${FAKE_STATUS:-0}"
EOF
chmod 755 "$WORK/bin/diskgated"

# The wrapper's own configuration: rpi/gokrazy-env.txt and, as gokrazy passes
# flags.txt (one argument per line), rpi/gokrazy-flags.txt, plus arguments a
# shell would mangle.
mapfile -t flags <"$root/rpi/gokrazy-flags.txt"
# shellcheck disable=SC2016  # a literal $HOME*: nothing may expand it
flags+=("" "with space" '$HOME*')
mapfile -t envs <"$root/rpi/gokrazy-env.txt"

rc=0
env "${envs[@]}" FAKE_STATUS=7 "$WORK/bin/diskgate" "${flags[@]}" >"$WORK/out" 2>"$WORK/err" &
pid=$!
wait "$pid" || rc=$?
check "diskgated's exit status comes back (7)" 7 "$rc"
check "execve: diskgated runs with the wrapper's pid" "$pid" "$(cat "$WORK/fake.pid" 2>/dev/null)"
mapfile -d '' -t argv <"$WORK/fake.argv"
check "argv[0] is diskgated next to the wrapper" "$WORK/bin/diskgated" "${argv[0]:-}"
check "argv[1:] is the wrapper's command line, unchanged" "$(printf '<%s>' "${flags[@]}")" \
	"$(printf '<%s>' "${argv[@]:1}")"
for kv in "${envs[@]}"; do
	check_cmd "environment passed through: $kv" grep -qzx -- "$kv" "$WORK/fake.env"
done
check_cmd "the rest of the environment too (PATH)" grep -qzx -- "PATH=$PATH" "$WORK/fake.env"
check "one line on stderr naming what runs" "diskgate: running $WORK/bin/diskgated" "$(cat "$WORK/err")"

rm -f "$WORK/fake.ready"
FAKE_WAIT=1 "$WORK/bin/diskgate" >/dev/null 2>&1 &
pid=$!
if wait_until 10 test -e "$WORK/fake.ready"; then
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	check "SIGTERM to the service's pid reaches diskgated (it exits 0)" 0 "$rc"
else
	not_ok "the fake diskgated did not start"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
fi

# ---- diskgated that cannot run: status 125 and why ----
run_alone() {  # run_alone [VAR=VALUE...]: the wrapper with no diskgated beside it
	rc=0
	env "$@" "$WORK/alone/diskgate" -- --path /perm/restic >"$WORK/out" 2>"$WORK/err" || rc=$?
}
expect_125() {  # expect_125 WHAT TEXT...: status 125, each TEXT on stderr
	local what=$1 text
	shift
	check "$what: exit status 125 (gokrazy: do not supervise)" 125 "$rc"
	for text in "$@"; do
		check_cmd "$what: stderr says '$text'" grep -qF -- "$text" "$WORK/err"
	done
}

run_alone DISKGATED="$WORK/nowhere/diskgated"
expect_125 "missing (\$DISKGATED)" "diskgated not found" "$WORK/nowhere/diskgated: no such file" \
	"/usr/local/bin/diskgated (an ExtraFilePaths entry" "status 125"

if [[ -e /usr/local/bin/diskgated ]]; then
	echo "# skipped the default-lookup case: this machine has /usr/local/bin/diskgated"
else
	run_alone
	expect_125 "missing (default lookup)" "$WORK/alone/diskgated: no such file" \
		"/usr/local/bin/diskgated: no such file"
fi

printf 'not a program\n' >"$WORK/plain"
chmod 644 "$WORK/plain"
run_alone DISKGATED="$WORK/plain"
expect_125 "not executable" "$WORK/plain: not executable (mode 0644)"

printf '\x7fELF garbage, not a program for this machine' >"$WORK/garbage"
chmod 755 "$WORK/garbage"
run_alone DISKGATED="$WORK/garbage"
expect_125 "not a program for this machine" "cannot run $WORK/garbage: exec format error" \
	"rpi/build-static aarch64"

echo "# $PASSED passed, $FAILED failed"
