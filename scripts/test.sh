#!/bin/sh
# The whole test suite, twice: a plain build, then one with AddressSanitizer
# and UndefinedBehaviorSanitizer.  Installs what is missing first.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
for kind in plain asan; do
	dir=build-test-$kind
	opts=
	[ $kind = asan ] && opts="-Db_sanitize=address,undefined -Db_lundef=false"
	[ -f $dir/build.ninja ] || meson setup $dir $opts >/dev/null
	ninja -C $dir
	meson test -C $dir --print-errorlogs
done
