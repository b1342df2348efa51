#!/usr/bin/env bash
# `diskgatectl probe` parses its plain command lines without CLI11 (the fast
# path, cli/probe_command.h) and hands everything else to CLI11. Whichever
# parser takes a command line, the output, the errors and the exit status
# must be those of CLI11: each command line here is run as `probe ARGS`
# (fast path when plain) and as `--bus system probe ARGS` (always CLI11),
# so no line here may give --bus itself.
#   probe_fast_path_test.sh DISKGATECTL FIXTURES
set -uo pipefail
DG=$(readlink -f "$1") FIXTURES=$(readlink -f "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

cd "$work" || exit 1
gzip -dc "$FIXTURES/images/ext4-4k.img.gz" >ext4.img
gzip -dc "$FIXTURES/images/pt-gpt.img.gz" >gpt.img
gzip -dc "$FIXTURES/images/vfat-fat32.img.gz" >vfat.img
cp ext4.img list # a path spelled like a subcommand
mkdir dir

while IFS= read -r line; do
  read -r -a args <<<"$line"
  rc_fast=0 rc_cli11=0
  "$DG" probe "${args[@]}" >fast.out 2>fast.err || rc_fast=$?
  "$DG" --bus system probe "${args[@]}" >cli11.out 2>cli11.err || rc_cli11=$?
  # Help text names the program the same way in both; nothing else differs.
  if [[ $rc_fast == "$rc_cli11" ]] && cmp -s fast.out cli11.out && cmp -s fast.err cli11.err; then
    echo "ok - probe $line (exit $rc_fast)"
  else
    echo "not ok - probe $line: exit $rc_fast vs $rc_cli11"
    diff fast.out cli11.out | head -5
    diff fast.err cli11.err | head -5
    failed=1
  fi
done <<'LINES'
ext4.img
-p ext4.img
-p -o export ext4.img
--low-level --output export ext4.img gpt.img vfat.img
ext4.img -p
-o value -s UUID ext4.img
-s TYPE -s UUID -o export ext4.img vfat.img
--match-tag LABEL ext4.img
-o json ext4.img missing.img dir /dev/null
-o udev -p gpt.img
-o full gpt.img vfat.img
--debug -p vfat.img
missing.img
list
-s list ext4.img
-s -p ext4.img
-p -p ext4.img
--debug --debug ext4.img
-o export -o value ext4.img
-o nonsense ext4.img
-o
-s
-p
-h
--help
-po export ext4.img
--output=export ext4.img
-oexport ext4.img
-- ext4.img
- ext4.img
-x ext4.img
LINES
# With no arguments at all.
rc_fast=0 rc_cli11=0
"$DG" probe >fast.out 2>fast.err || rc_fast=$?
"$DG" --bus system probe >cli11.out 2>cli11.err || rc_cli11=$?
if [[ $rc_fast == "$rc_cli11" ]] && cmp -s fast.out cli11.out && cmp -s fast.err cli11.err; then
  echo "ok - probe (no arguments, exit $rc_fast)"
else
  echo "not ok - probe (no arguments): exit $rc_fast vs $rc_cli11"
  failed=1
fi
exit $failed
