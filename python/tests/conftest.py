# SPDX-License-Identifier: Apache-2.0
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
SRC = os.path.dirname(PKG)
sys.path.insert(0, PKG)


@pytest.fixture
def shmdir():
    """A directory of the test's own in /dev/shm, removed with all it holds."""
    d = tempfile.mkdtemp(prefix="rszshm-py-", dir="/dev/shm")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def python(code, *args, check=True, timeout=60, **kw):
    """Run code in a freshly exec'd Python that imports this package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                       text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("child failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
    return p


def popen(code, *args, **kw):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True, **kw)
