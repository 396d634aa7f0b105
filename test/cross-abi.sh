#!/bin/sh
# cross-abi.sh BUILD_A WRAP_A BUILD_B WRAP_B - regions made by one ABI are
# refused by another: each build's test/abi-probe makes a heap region, and
# the other build's abi-probe (rszshm_at) and rszshm-dump must refuse it
# with EPROTONOSUPPORT and a message naming both ABIs; each build attaches
# its own region (the control).  WRAP_x: the command that runs build x's
# programs ("" natively; e.g. "qemu-aarch64-static -L /usr/aarch64-linux-gnu").
# Exit 0 if all hold, 1 otherwise.
set -u
a=$1 wa=$2 b=$3 wb=$4
work=$(mktemp -d /dev/shm/rszshm-abi-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0

check() {	# MAKER_DIR MAKER_WRAP USER_DIR USER_WRAP NAME
	md=$1 mw=$2 ud=$3 uw=$4 name=$5
	f=$work/$name
	if ! $mw "$md/test/abi-probe" mk "$f"; then
		echo "FAIL: $md could not make $f"; fail=1; return
	fi
	# The control: the maker attaches its own region.
	if ! $mw "$md/test/abi-probe" at "$f"; then
		echo "FAIL: $md cannot attach its own region"; fail=1
	fi
	$uw "$ud/test/abi-probe" at "$f"
	rc=$?
	if [ "$ud" = "$md" ] || [ $rc -eq 3 ]; then :; else
		echo "FAIL: $ud/test/abi-probe at: status $rc, not 3 (EPROTONOSUPPORT)"; fail=1
	fi
	if [ -x "$ud/tools/rszshm-dump" ]; then
		out=$($uw "$ud/tools/rszshm-dump" "$f" 2>&1) && {
			echo "FAIL: $ud/tools/rszshm-dump read $f:"; echo "$out"; fail=1; }
		echo "$out"
		case $out in
		*"made by another ABI: "*"; this build is "*) ;;
		*) echo "FAIL: rszshm-dump does not name both ABIs"; fail=1 ;;
		esac
	fi
	rm -rf "$f"
}

check "$a" "$wa" "$b" "$wb" a-made
check "$b" "$wb" "$a" "$wa" b-made
[ $fail -eq 0 ] && echo "cross-abi: $a and $b refuse each other's regions (EPROTONOSUPPORT)"
exit $fail
