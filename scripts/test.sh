#!/bin/sh
# The test suite, leg by leg.  Installs what each leg needs first.
#
#   scripts/test.sh [LEG...]
#
#   plain    gcc, every suite (the slow one too)
#   asan     gcc with AddressSanitizer and UndefinedBehaviorSanitizer
#   clang    clang, warnings are errors, C++ header test with clang++
#   i386     i686 cross build, then the cross-ABI test against the plain
#            build (test/cross-abi.sh); its programs run natively where the
#            kernel runs 32-bit code, else under qemu-user (said on a line)
#   aarch64  aarch64 cross build run under qemu-user, then the cross-ABI
#            test against the plain build
#   fuzz     clang -Dfuzz=true: the libFuzzer target, replaying the corpus
#
# With no LEG: plain and asan.  Legs other than plain and asan leave out the
# slow suite.  Each leg builds in build-test-LEG and prints its time; at the
# end, each leg's tests (how many ran, passed, were skipped and why:
# scripts/summary.py), then the legs, then each failed test with its first
# failure line (so the end of the output says what failed), and the last line is
# "N passed, N failed, N skipped" (legs).  A leg this machine cannot run is
# skipped, saying why, never counted as passed.
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- plain asan
scripts/deps.sh "$@"

passed=0 failed=0 skipped=0 times="" notes="" fails=""

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
	rm -f $dir/meson-logs/testlog.json
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
		i386_runner || return 77
		# A build directory configured the other way is configured again.
		if [ -f $dir/build.ninja ] && [ "$(cat $dir/.runner 2>/dev/null)" != "$i386_wrap" ]; then
			rm -rf $dir
		fi
		mkdir -p $dir && echo "$i386_wrap" >$dir/.runner
		if [ -n "$i386_wrap" ]; then
			set -- --cross-file scripts/cross/i686-qemu.ini
		else
			set --
		fi
		setup $dir --cross-file scripts/cross/i686-linux-gnu.ini "$@" && ninja -C $dir &&
			meson test -C $dir --no-suite slow --print-errorlogs &&
			cross_abi $dir "$i386_wrap" ;;
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

# How i386 programs run here: natively where the kernel runs 32-bit code
# (a trivial program is built and run), else under qemu-i386-static; sets
# $i386_wrap ("" or the wrapper).  1, saying why, when neither can.
i386_runner() {
	t=$(mktemp -d)
	printf 'int main(void) { return 0; }\n' >"$t/t.c"
	i386_wrap=
	if ! i686-linux-gnu-gcc -o "$t/t" "$t/t.c"; then
		rm -rf "$t"
		echo "=== leg i386: skipped: the i686 cross compiler cannot build a program"
		return 1
	fi
	if "$t/t" 2>/dev/null; then
		echo "=== leg i386: the kernel runs 32-bit code: programs run natively"
	elif command -v qemu-i386-static >/dev/null && qemu-i386-static "$t/t"; then
		i386_wrap=qemu-i386-static
		echo "=== leg i386: the kernel runs no 32-bit code (exec fails): programs run under qemu-i386-static"
	else
		rm -rf "$t"
		echo "=== leg i386: skipped: the kernel runs no 32-bit code and qemu-i386-static cannot run it"
		return 1
	fi
	rm -rf "$t"
	return 0
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
	rc=0
	run_leg "$leg" || rc=$?
	if [ $rc -eq 0 ]; then
		result=ok passed=$((passed + 1))
	elif [ $rc -eq 77 ]; then
		result=SKIPPED skipped=$((skipped + 1))
	else
		result=FAILED failed=$((failed + 1))
	fi
	if [ $rc -ne 77 ] && [ -f build-test-$leg/meson-logs/testlog.json ]; then
		notes="$notes$(python3 scripts/summary.py build-test-$leg $leg)
"
		[ $rc -eq 0 ] || fails="$fails$(python3 scripts/summary.py build-test-$leg $leg --failures)
"
	fi
	secs=$(($(date +%s) - start))
	line=$(printf '%-8s %-6s %3dm%02ds' "$leg" "$result" $((secs / 60)) $((secs % 60)))
	echo "=== leg $line"
	times="$times$line
"
done
echo "=== tests"
printf '%s' "$notes"
echo "=== legs"
printf '%s' "$times"
if [ -n "$(printf '%s' "$fails" | tr -d '\n')" ]; then
	echo "=== failed tests"
	printf '%s' "$fails"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
