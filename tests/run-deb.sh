#!/usr/bin/env bash
# The Debian package: rpi/make-deb amd64 (installs what is missing), lintian
# on it (0 errors; its warnings are printed and listed in the README), and
# tests/install/deb_test.sh (dpkg -i into this machine, used, removed,
# purged). Ends with "N passed, N failed[, N skipped]"; exit 0 only when
# none failed.
#
#   tests/run-deb.sh
#
# DEB_ARM64=1 also builds the arm64 package and runs lintian on it.
set -uo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT" || exit 1

passed=0 failed=0 skipped=0
result() {
	case $2 in
	0) passed=$((passed + 1)) && echo "=== $1: passed" ;;
	77) skipped=$((skipped + 1)) && echo "=== $1: skipped" ;;
	*) failed=$((failed + 1)) && echo "=== $1: FAILED (status $2)" ;;
	esac
}
# lint DEB: lintian's tags; errors fail.
lint() {
	local tags
	tags=$(lintian --tag-display-limit 0 "$1" 2>&1)
	[[ -n $tags ]] && echo "$tags"
	! grep -q '^E: ' <<<"$tags"
}
command -v lintian >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null

archs=(amd64)
[[ -n ${DEB_ARM64:-} ]] && archs+=(arm64)
for arch in "${archs[@]}"; do
	start=$SECONDS
	if deb=$(bash rpi/make-deb "$arch" 2>"build/make-deb-$arch.log" | tail -n 1) && [[ -f $deb ]]; then
		result "rpi/make-deb $arch: $deb ($((SECONDS - start)) s)" 0
	else
		tail -n 20 "build/make-deb-$arch.log"
		result "rpi/make-deb $arch" 1
		continue
	fi
	lint "$deb"
	result "lintian $(basename "$deb"): 0 errors" $?
	if [[ $arch == "$(dpkg --print-architecture)" ]]; then
		bash tests/install/deb_test.sh "$deb"
		result "dpkg -i, use, remove, purge" $?
	else
		# The packaged arm64 diskgatectl, unpacked, under qemu: probes a
		# fixture as the native build does.
		rm -rf "build/deb-$arch" && dpkg-deb -x "$deb" "build/deb-$arch"
		image=build/deb-probe.img
		gzip -dc fixtures/images/ext4-4k.img.gz >"$image"
		[[ $(qemu-aarch64-static "build/deb-$arch/usr/bin/diskgatectl" probe "$image" 2>&1) == "$(build/src/diskgatectl probe "$image")" ]]
		result "the packaged $arch diskgatectl probes as the native one (qemu)" $?
	fi
done

echo "# total $SECONDS s"
if ((skipped)); then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
((failed == 0))
