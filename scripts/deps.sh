#!/bin/sh
# Install what building and testing rszshm needs, on Debian 12 or later:
# only the packages that are missing, so a second run does nothing.
#
#   scripts/deps.sh [LEG...]   LEG: plain asan clang i386 aarch64 fuzz
#
# With no LEG, what plain and asan need (the default of scripts/test.sh).
# i386 and aarch64 are cross builds: they add the dpkg architecture and the
# multiarch libraries, and aarch64 runs its tests under qemu-user.
# (gcc-multilib, for gcc -m32, cannot be installed beside
# gcc-aarch64-linux-gnu on Debian 12, so i386 uses the i686 cross compiler.)
set -eu
[ $# -gt 0 ] || set -- plain asan
pkgs="gcc g++ libc6-dev meson ninja-build pkg-config check libbsd-dev"
archs=""
for leg; do
	case $leg in
	# bindfs: a FUSE mount without O_TMPFILE, for test-open's killed-maker
	# test on a real file system that lacks it.
	# nats-server, libnats-dev: rszshm-mirror and its tests, which start
	# their own server (clang and fuzz build the tool but skip the suite).
	plain|asan) pkgs="$pkgs bindfs nats-server libnats-dev"
		# The Python package's suite (test/test-python.sh) and its
		# install (pip, venv); the asan leg skips that suite.
		if [ "$leg" = plain ]; then
			pkgs="$pkgs python3 python3-pytest python3-numpy python3-setuptools python3-pip python3-venv"
		fi ;;
	clang) pkgs="$pkgs clang" ;;
	fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
	i386)
		archs="$archs i386"
		# qemu-user-static, libc6:i386: where the kernel runs no 32-bit code,
		# the programs run under qemu-user (scripts/test.sh decides).
		pkgs="$pkgs gcc-i686-linux-gnu libc6-dev-i386-cross libbsd-dev:i386 check:i386 libsubunit-dev:i386"
		pkgs="$pkgs qemu-user-static libc6:i386"
		;;
	aarch64)
		archs="$archs arm64"
		# libc6:arm64: qemu runs the programs with the multiarch C library
		# (see scripts/cross/aarch64-linux-gnu.ini).
		pkgs="$pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libc6:arm64"
		pkgs="$pkgs libbsd-dev:arm64 check:arm64 libsubunit-dev:arm64"
		;;
	*) echo "deps.sh: unknown leg $leg (plain asan clang i386 aarch64 fuzz)" >&2; exit 2 ;;
	esac
done

newarch=""
for a in $archs; do
	dpkg --print-foreign-architectures | grep -qx "$a" || newarch="$newarch $a"
done
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && [ -z "$newarch" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then sudo=sudo; else
		echo "deps.sh: missing packages:$missing$newarch (run as root to install them)" >&2
		exit 1
	fi
else
	sudo=
fi
for a in $newarch; do
	echo "deps.sh: adding dpkg architecture $a"
	$sudo dpkg --add-architecture "$a"
done
echo "deps.sh: installing$missing"
# A mirror caught mid-sync fails one index; the install then says what is
# really missing.
$sudo apt-get update -qq -o DPkg::Lock::Timeout=600 ||
	echo "deps.sh: apt-get update reported errors; installing anyway" >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
	-o DPkg::Lock::Timeout=600 $missing >/dev/null
