#!/bin/sh
# Install what building and testing rszshm needs, on Debian 12 or later:
# only the packages that are missing, so a second run does nothing.
set -eu
pkgs="gcc libc6-dev meson ninja-build pkg-config check libbsd-dev"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then sudo=sudo; else
		echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
else
	sudo=
fi
echo "deps.sh: installing$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
