#!/bin/sh
# How rszshm installs and embeds, checked from its source tree with Meson
# itself.  Usage: test-packaging.sh MESON SRCDIR install|subproject|nocheck
#
#   install     meson install into a staging directory lists every man page,
#               the header, rszshm.pc and the libraries; an installed
#               rszshm.pc gives a program that links and runs.
#   subproject  test/subproject-consumer uses rszshm as a subproject with a
#               plain dependency('rszshm'): none of our tests is registered,
#               none of our tools built; default_library=static there gives
#               a program that does not need librszshm.so.
#   nocheck     with Check hidden from pkg-config and CMake, meson setup
#               succeeds and says the tests are skipped.
#
# Each case works in a directory of its own, removed at the end.
set -eu
meson=$1 src=$2 what=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rszshm-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
quiet() { "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "$*"; }; }

# A copy of the source without build directories (they may be anywhere).
copy_src() {
	mkdir -p "$1"
	for f in meson.build meson_options.txt include lib tools doc test LICENSE NOTICE NEWS README.md; do
		[ -e "$src/$f" ] && cp -R "$src/$f" "$1/"
	done
	rm -rf "$1/test/fuzz/corpus"
}

case $what in
install)
	quiet "$meson" setup "$tmp/b" "$src" --prefix=/usr/local -Dtests=disabled
	"$meson" install -C "$tmp/b" --destdir "$tmp/stage" >"$tmp/install.log" 2>&1 ||
		{ cat "$tmp/install.log" >&2; fail "meson install"; }
	for f in share/man/man1/rszshm-dump.1 share/man/man1/rszshm-clean.1 \
		 share/man/man1/rszshm-demo.1 share/man/man3/rszshm.3 include/rszshm.h include/rszshm.hpp \
		 bin/rszshm-dump bin/rszshm-clean bin/rszshm-demo; do
		grep -q "^Installing .*$(basename "$f") to $tmp/stage/usr/local/$(dirname "$f")/*\$" \
			"$tmp/install.log" || fail "meson install does not list $f"
		[ -e "$tmp/stage/usr/local/$f" ] || fail "$f not installed"
	done
	# Every page in the tree is installed.
	for p in "$src"/tools/*.1 "$src"/doc/*.3; do
		n=$(basename "$p")
		grep -q "^Installing .*/$n to .*/share/man/man" "$tmp/install.log" ||
			fail "man page $n not installed"
	done
	pc=$(find "$tmp/stage" -name rszshm.pc)
	[ -n "$pc" ] || fail "rszshm.pc not installed"
	[ -n "$(find "$tmp/stage" -name 'librszshm.so*')" ] || fail "librszshm.so not installed"
	# A program built with the staged rszshm.pc links and runs.
	libdir=$(dirname "$(dirname "$pc")")
	sed "s|^prefix=.*|prefix=$tmp/stage/usr/local|" "$pc" >"$tmp/rszshm.pc"
	cflags=$(PKG_CONFIG_PATH="$tmp" pkg-config --cflags rszshm)
	libs=$(PKG_CONFIG_PATH="$tmp" pkg-config --libs rszshm)
	# shellcheck disable=SC2086
	cc $cflags -o "$tmp/consumer" "$src/test/subproject-consumer/consumer.c" $libs ||
		fail "compiling against the installed rszshm.pc"
	LD_LIBRARY_PATH="$libdir" "$tmp/consumer" >/dev/null || fail "the installed library does not run"
	echo "installed: $(grep -c '^Installing' "$tmp/install.log") files, every man page among them"
	;;
subproject)
	cp -R "$src/test/subproject-consumer" "$tmp/c"
	copy_src "$tmp/c/subprojects/rszshm"
	quiet "$meson" setup "$tmp/b" "$tmp/c" --force-fallback-for=rszshm
	grep -q "a subproject" "$tmp/log" || fail "no message that our tests are left out"
	"$meson" test -C "$tmp/b" --list >"$tmp/list" 2>&1 || { cat "$tmp/list" >&2; fail "meson test --list"; }
	[ "$(grep -v -e '^consumer-works$' -e '^ninja:' "$tmp/list" | grep -c . || true)" = 0 ] ||
		{ cat "$tmp/list" >&2; fail "the consumer sees tests that are not its own"; }
	quiet ninja -C "$tmp/b"
	ls "$tmp/b/subprojects/rszshm/tools" >/dev/null 2>&1 && fail "our tools were built"
	readelf -d "$tmp/b/consumer" | grep -q 'NEEDED.*librszshm' ||
		fail "default_library=shared: the consumer does not link librszshm.so"
	"$meson" test -C "$tmp/b" >/dev/null 2>&1 || fail "the consumer's test fails"
	# default_library=static: the consumer has the library built in.
	quiet "$meson" setup "$tmp/s" "$tmp/c" --force-fallback-for=rszshm -Ddefault_library=static
	quiet ninja -C "$tmp/s"
	readelf -d "$tmp/s/consumer" | grep -q 'NEEDED.*librszshm' &&
		fail "default_library=static: the consumer still needs librszshm.so"
	"$tmp/s/consumer" >/dev/null || fail "the static consumer fails"
	echo "subproject: only the consumer's test; static and shared honoured"
	;;
nocheck)
	# pkg-config sees every package but check; CMake finds nothing.
	mkdir "$tmp/pc"
	for d in $(pkg-config --variable pc_path pkg-config | tr : ' '); do
		for p in "$d"/*.pc; do
			[ -e "$p" ] || continue
			case $(basename "$p") in check.pc) ;; *) ln -sf "$p" "$tmp/pc/" ;; esac
		done
	done
	printf '[binaries]\ncmake = %s\n' "'/bin/false'" >"$tmp/native.ini"
	PKG_CONFIG_LIBDIR="$tmp/pc" quiet "$meson" setup "$tmp/b" "$src" \
		--native-file "$tmp/native.ini"
	grep -q "tests: skipped, Check was not found" "$tmp/log" ||
		{ cat "$tmp/log" >&2; fail "no message that the tests are skipped"; }
	"$meson" test -C "$tmp/b" --list 2>/dev/null | grep -v -e '^No tests defined' -e '^ninja:' |
		grep -q . &&
		fail "tests registered without Check"
	# -Dtests=enabled still insists on Check.
	PKG_CONFIG_LIBDIR="$tmp/pc" "$meson" setup "$tmp/e" "$src" -Dtests=enabled \
		--native-file "$tmp/native.ini" >"$tmp/log" 2>&1 &&
		fail "-Dtests=enabled set up without Check"
	echo "no Check: setup succeeds, tests skipped with a message"
	;;
*)
	fail "unknown case $what"
	;;
esac
