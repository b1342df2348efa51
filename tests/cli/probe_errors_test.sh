#!/usr/bin/env bash
# diskgatectl probe on bad input: each bad path gets one error line naming it
# and the reason, the good paths are still probed, and nothing crashes.
#   probe_errors_test.sh DISKGATECTL FIXTURES
set -uo pipefail
DG=$1 FIXTURES=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
check() {  # check WHAT CONDITION...
  local what=$1
  shift
  if "$@"; then echo "ok - $what"; else echo "not ok - $what"; failed=1; fi
}

gzip -dc "$FIXTURES/images/ext4-4k.img.gz" >"$work/good.img"
head -c 1500 "$work/good.img" >"$work/cut.img"
head -c 70000 /dev/urandom >"$work/random.img"
mkdir "$work/dir"

rc=0
"$DG" probe "$work/missing.img" "$work/dir" /dev/null "$work/cut.img" "$work/random.img" "$work/good.img" \
  >"$work/out" 2>"$work/err" || rc=$?
check "exit 0 when one path of several was identified" test "$rc" -eq 0
check "the good image is still printed" grep -q "^$work/good.img: .*TYPE=\"ext4\"" "$work/out"
check "only the good image is printed" test "$(wc -l <"$work/out")" -eq 1
check "a missing path: one line naming it and the reason" \
  grep -qx "diskgatectl: $work/missing.img: cannot open: No such file or directory" "$work/err"
check "a directory: named, and why it is refused" \
  grep -qx "diskgatectl: $work/dir: is a directory, not a device or image" "$work/err"
check "a character device is refused" grep -qx "diskgatectl: /dev/null: is not a block device or regular file" "$work/err"
check "three error lines, nothing for cut or random images" test "$(wc -l <"$work/err")" -eq 3

rc=0
"$DG" probe "$work/missing.img" >/dev/null 2>&1 || rc=$?
check "exit 2 when nothing was found" test "$rc" -eq 2
rc=0
"$DG" probe -o nonsense "$work/good.img" >/dev/null 2>"$work/usage" || rc=$?
check "exit 4 on bad usage, naming the option" test "$rc" -eq 4
check "the usage error names --output" grep -q -- "--output" "$work/usage"

"$DG" probe -o json "$work/missing.img" "$work/good.img" >"$work/json" 2>/dev/null
check "json: one object per path" test "$(wc -l <"$work/json")" -eq 2
check "json: the error is in the object" grep -q '"status":"error","error":".*missing.img: cannot open' "$work/json"
check "json: the good one is found" grep -q '"status":"found"' "$work/json"
exit $failed
