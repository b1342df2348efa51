#!/bin/bash
# The built man pages render without a warning from man(1) or groff.
#
#   man_test.sh PAGE...
#
# No PAGE: the pages were not built (no scdoc, or -Dman=disabled): skipped.
# One line per page and renderer: "ok - ..." or "not ok - ..." with the
# warnings. Exit: 0 all passed, 1 a check failed, 77 skipped.
set -o pipefail

# shellcheck source=../lib/checks.sh
source "$(dirname "$(readlink -f "$0")")/../lib/checks.sh"

(($#)) || skip "no man pages were built (scdoc not found, or -Dman=disabled)"
need_tools man groff

for page in "$@"; do
	name=$(basename "$page")
	if [[ ! -s $page ]]; then
		not_ok "$name was built ($page)"
		continue
	fi
	# As lintian runs it: every warning of man-db and groff on stderr.
	warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 "$page" 2>&1 >/dev/null)
	check "$name: man --warnings -l renders it without a warning" "" "$warnings"
	warnings=$(groff -ww -man -z "$page" 2>&1)
	check "$name: groff -ww -man -z finds nothing to warn about" "" "$warnings"
	# The header names the page as it is installed.
	check "$name: its header is ${name%.*}(${name##*.})" "${name%.*}(${name##*.})" \
		"$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null | awk 'NF { print $1; exit }')"
done
((FAILED == 0))
