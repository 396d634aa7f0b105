#!/bin/sh
# Compile and run every ```c block of README.md against the library, so the
# examples stay true.  Usage: readme-examples.sh README CC INCDIR LIBDIR [SANITIZE]
# (SANITIZE: the build's b_sanitize, so the examples load the same runtime.)
set -eu
readme=$1 cc=$2 inc=$3 libdir=$4 san=${5:-none}
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
	$cc -std=gnu11 -Wall -Wextra -Werror $sanflags -I"$inc" "$src" -o "$exe" \
		-L"$libdir" -Wl,-rpath,"$libdir" -lrszshm -lpthread
	if ! "$exe" >"$exe.out" 2>&1; then
		echo "README example $count failed:"; cat "$exe.out"; exit 1
	fi
	echo "README example $count: ok"
done
[ "$count" -gt 0 ] || { echo "no C examples found in $readme"; exit 1; }
