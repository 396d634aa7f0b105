#!/bin/sh
# The version lives in one place, meson.build's project(); the header's
# RSZSHM_VERSION_* must say the same.  Usage: test-version.sh HEADER VERSION
set -eu
hdr=$1 want=$2
get() { sed -n "s/^#define RSZSHM_VERSION_$1 \([0-9][0-9]*\)\$/\1/p" "$hdr"; }
have="$(get MAJOR).$(get MINOR).$(get PATCH)"
if [ "$have" != "$want" ]; then
	echo "rszshm.h says $have, meson.build says $want: change both" >&2
	exit 1
fi
echo "version $have"
