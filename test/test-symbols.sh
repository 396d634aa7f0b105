#!/bin/sh
# test-symbols.sh STATIC SHARED HEADER - the libraries' symbol tables:
#  - the static library defines no global symbol outside the rszshm namespace
#    (rszshm_ public, rszshm__ internal), so linking it never clashes;
#  - the shared library exports exactly the public functions of the header:
#    none of the internal rszshm__ names, nothing else, none missing.
# $NM: the build's nm (a cross build's, from the cross file), default nm.
set -eu
static=$1 shared=$2 header=$3
nm=${NM:-nm}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Global defined symbols of the archive, without the ODR indicators that
# AddressSanitizer adds beside each global (__odr_asan.NAME), and without the
# compiler's own helpers: i386 gcc's __x86.get_pc_thunk.REG (hidden, one copy
# per link, never exported).
"$nm" -g --defined-only "$static" | awk 'NF == 3 { print $3 }' |
	grep -v -e '^__odr_asan\.' -e '^__x86\.get_pc_thunk\.' |
	sort -u > "$tmp/static"
if grep -v '^rszshm_' "$tmp/static" > "$tmp/leak"; then
	echo "static library: global symbols without the rszshm prefix:"
	cat "$tmp/leak"
	fail=1
fi

# Exported dynamic symbols, without the version nodes (type A).
"$nm" -D --defined-only "$shared" | awk 'NF == 3 && $2 != "A" { print $3 }' |
	sed 's/@.*//' | sort -u > "$tmp/shared"
if grep -v '^rszshm_[a-z]' "$tmp/shared" > "$tmp/bad"; then
	echo "shared library: exported symbols outside the API:"
	cat "$tmp/bad"
	fail=1
fi
if grep '^rszshm__' "$tmp/shared"; then
	echo "shared library: internal symbols exported (above)"
	fail=1
fi

# Every function the header declares with RSZSHM_API is exported.
grep -o '^RSZSHM_API [^(]*(' "$header" | sed 's/($//; s/.*[ *]//' | sort -u > "$tmp/api"
[ -s "$tmp/api" ] || { echo "no RSZSHM_API declarations found in $header"; fail=1; }
if ! comm -23 "$tmp/api" "$tmp/shared" > "$tmp/missing" || [ -s "$tmp/missing" ]; then
	echo "declared in the header but not exported:"
	cat "$tmp/missing"
	fail=1
fi
if ! comm -13 "$tmp/api" "$tmp/shared" > "$tmp/extra" || [ -s "$tmp/extra" ]; then
	echo "exported but not declared in the header:"
	cat "$tmp/extra"
	fail=1
fi
[ $fail -eq 0 ] && echo "symbols: $(wc -l < "$tmp/shared") exported, all in the API; static archive clean"
exit $fail
