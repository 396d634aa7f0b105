#!/bin/sh
# Compile and run every ```c block of README.md against the library, so the
# examples stay true.  Usage: readme-examples.sh README INCDIR LIBDIR SANITIZE CC...
# (SANITIZE: the build's b_sanitize, so the examples load the same runtime;
# CC...: the build's compiler command and its flags, e.g. gcc -m32 or a cross
# compiler; $RSZSHM_EXE_WRAPPER, if set, runs the examples, e.g. qemu-user.)
set -eu
readme=$1 inc=$2 libdir=$3 san=$4
shift 4
cc=$*
run=${RSZSHM_EXE_WRAPPER:-}
sanflags=
[ "$san" = none ] || sanflags=-fsanitize=$san
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk -v dir="$work" '
	/^```c$/ { n++; f = dir "/ex" n ".c"; inblock = 1; next }
	/^```$/  { inblock = 0; next }
	inblock  { print > f }
' "$readme"
count=0
for src in "$work"/ex*.c; do
	[ -e "$src" ] || break
	count=$((count + 1))
	exe=${src%.c}
	# An example that re-executes itself cannot go through an emulator
	# without binfmt_misc: the kernel cannot exec the program itself.
	if [ -n "$run" ] && grep -q '/proc/self/exe' "$src"; then
		echo "README example $count: skipped: it re-executes itself, which needs binfmt_misc under $run"
		continue
	fi
	$cc -std=gnu11 -Wall -Wextra -Werror $sanflags -I"$inc" "$src" -o "$exe" \
		-L"$libdir" -Wl,-rpath,"$libdir" -lrszshm -lpthread
	if ! $run "$exe" >"$exe.out" 2>&1; then
		echo "README example $count failed:"; cat "$exe.out"; exit 1
	fi
	echo "README example $count: ok"
done
[ "$count" -gt 0 ] || { echo "no C examples found in $readme"; exit 1; }
