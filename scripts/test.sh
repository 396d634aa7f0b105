#!/bin/sh
# The test suite, leg by leg.  Installs what each leg needs first.
#
#   scripts/test.sh [LEG...]
#
#   plain    gcc, every suite (the slow one too)
#   asan     gcc with AddressSanitizer and UndefinedBehaviorSanitizer
#   clang    clang, warnings are errors, C++ header test with clang++
#   i386     i686 cross build (runs natively), then the cross-ABI test
#            against the plain build (test/cross-abi.sh)
#   aarch64  aarch64 cross build run under qemu-user, then the cross-ABI
#            test against the plain build
#   fuzz     clang -Dfuzz=true: the libFuzzer target, replaying the corpus
#
# With no LEG: plain and asan.  Legs other than plain and asan leave out the
# slow suite.  Each leg builds in build-test-LEG and prints its time; the
# last line is "N passed, N failed" (legs).
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- plain asan
scripts/deps.sh "$@"

passed=0 failed=0 times=""

setup() {	# DIR OPTIONS...: configure once ($cc, $cxx: the compilers, if set)
	d=$1
	shift
	[ -f "$d/build.ninja" ] && return 0
	if [ -n "${cc:-}" ]; then
		env CC="$cc" CXX="$cxx" meson setup "$d" "$@" >/dev/null
	else
		meson setup "$d" "$@" >/dev/null
	fi
}

run_leg() {
	leg=$1 dir=build-test-$1 cc= cxx=
	case $leg in
	plain)
		setup $dir && ninja -C $dir && meson test -C $dir --print-errorlogs ;;
	asan)
		setup $dir -Db_sanitize=address,undefined -Db_lundef=false &&
			ninja -C $dir && meson test -C $dir --print-errorlogs ;;
	clang)
		cc=clang cxx=clang++
		setup $dir -Dwerror=true && ninja -C $dir &&
			meson test -C $dir --no-suite slow --print-errorlogs ;;
	i386)
		setup $dir --cross-file scripts/cross/i686-linux-gnu.ini && ninja -C $dir &&
			meson test -C $dir --no-suite slow --print-errorlogs &&
			cross_abi $dir "" ;;
	aarch64)
		setup $dir --cross-file scripts/cross/aarch64-linux-gnu.ini && ninja -C $dir &&
			meson test -C $dir --no-suite slow --print-errorlogs &&
			cross_abi $dir qemu-aarch64-static ;;
	fuzz)
		cc=clang cxx=clang++
		setup $dir -Dfuzz=true && ninja -C $dir &&
			meson test -C $dir --suite fuzz --print-errorlogs ;;
	*)
		echo "test.sh: unknown leg $leg" >&2; return 2 ;;
	esac
}

# Regions of this leg's build and of an x86-64 build refuse each other.
cross_abi() {	# DIR WRAPPER
	native=build-test-plain cc= cxx=
	setup $native && ninja -C $native test/abi-probe tools/rszshm-dump >/dev/null &&
		test/cross-abi.sh "$native" "" "$1" "$2"
}

for leg; do
	start=$(date +%s)
	echo "=== leg $leg"
	if run_leg "$leg"; then
		result=ok passed=$((passed + 1))
	else
		result=FAILED failed=$((failed + 1))
	fi
	secs=$(($(date +%s) - start))
	line=$(printf '%-8s %-6s %3dm%02ds' "$leg" "$result" $((secs / 60)) $((secs % 60)))
	echo "=== leg $line"
	times="$times$line
"
done
echo "=== legs"
printf '%s' "$times"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
