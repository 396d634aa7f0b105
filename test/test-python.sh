#!/bin/sh
# The Python package's pytest suite (python/tests), against this build's
# library: test-python.sh SRCDIR LIBRARY [MONITOR].  Debian's Python
# (/usr/bin/python3, with python3-pytest) if it has pytest, else any
# python3 on PATH that has it; skipped (77) when none does.
src=$1 lib=$2 mon=${3:-}
for py in /usr/bin/python3 python3; do
	if "$py" -c 'import pytest' 2>/dev/null; then
		export RSZSHM_LIBRARY="$lib" RSZSHM_MONITOR="$mon" PYTHONDONTWRITEBYTECODE=1
		cd "$src/python" && exec "$py" -m pytest -q -p no:cacheprovider tests
	fi
done
echo "skipped: no python3 with pytest (install python3-pytest)"
exit 77
