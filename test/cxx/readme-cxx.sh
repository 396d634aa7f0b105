#!/bin/sh
# Compile and run every ```cpp block of README.md against the library, so the
# C++ examples stay true.  Usage: readme-cxx.sh README INCDIR LIBDIR SANITIZE CXX...
set -eu
readme=$1 inc=$2 libdir=$3 san=$4
shift 4
cxx=$*
sanflags=
[ "$san" = none ] || sanflags=-fsanitize=$san
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk -v dir="$work" '
	/^```cpp$/ { n++; f = dir "/ex" n ".cpp"; inblock = 1; next }
	/^```$/    { inblock = 0; next }
	inblock    { print > f }
' "$readme"
count=0
for src in "$work"/ex*.cpp; do
	[ -e "$src" ] || break
	count=$((count + 1))
	exe=${src%.cpp}
	$cxx -std=c++17 -Wall -Wextra -pedantic -Werror $sanflags -I"$inc" "$src" -o "$exe" \
		-L"$libdir" -Wl,-rpath,"$libdir" -lrszshm -lpthread
	if ! "$exe" >"$exe.out" 2>&1; then
		echo "README C++ example $count failed:"; cat "$exe.out"; exit 1
	fi
	echo "README C++ example $count: ok"
done
[ "$count" -gt 0 ] || { echo "no C++ examples found in $readme"; exit 1; }
