# SPDX-License-Identifier: Apache-2.0
"""multiprocessing workers (fork and spawn) and NumPy arrays shared in place."""
import multiprocessing
import os

import pytest

import rszshm
from conftest import python

WORKERS = 8
PUTS = 100


def _worker(region, i, start):
    # fork: the Region is inherited; spawn: it arrives pickled, and the
    # child attaches by name.
    start.wait()
    for j in range(PUTS):
        region.records["w%d-%d" % (i, j)] = b"%d:%d" % (i, j)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_put_concurrently_none_lost(shmdir, method):
    ctx = multiprocessing.get_context(method)
    p = os.path.join(shmdir, "mp")
    with rszshm.Region.open(p, create=True, heap=True, length=1 << 16) as r:
        start = ctx.Event()
        procs = [ctx.Process(target=_worker, args=(r, i, start)) for i in range(WORKERS)]
        for q in procs:
            q.start()
        start.set()
        for q in procs:
            q.join(120)
        assert [q.exitcode for q in procs] == [0] * WORKERS
        assert len(r.records) == WORKERS * PUTS
        for i in range(WORKERS):
            for j in range(PUTS):
                assert r.records["w%d-%d" % (i, j)] == b"%d:%d" % (i, j)
        assert r.check() is None
        r.remove()


def test_array_shared_in_place_no_copy(shmdir):
    np = pytest.importorskip("numpy", reason="NumPy is not installed: array tests skipped")
    p = os.path.join(shmdir, "np")
    with rszshm.Region.open(p, create=True, heap=True) as r:
        a = r.array("m", (256, 3), "<f8")
        assert a.shape == (256, 3) and a.dtype == np.float64 and a.flags.writeable
        assert not a.any()
        a[:] = np.arange(768).reshape(256, 3)
        addr = a.__array_interface__["data"][0]
        info = r.records.info("m")
        assert info.type == rszshm.ARRAY_TYPE and addr == info.address + 320
        code = ("import rszshm,sys\nr = rszshm.Region.open(sys.argv[1], readonly=True)\n"
                "a = r.array('m')\n"
                "print(a.__array_interface__['data'][0], a.shape, a.dtype, a.sum(), a.flags.writeable)\n"
                "try:\n    a[0, 0] = 1\nexcept ValueError:\n    print('read-only')\n")
        out = python(code, p).stdout.splitlines()
        assert out == ["%d (256, 3) float64 %r False" % (addr, float(a.sum())), "read-only"]
        # A writer in another process changes the array we hold: no copy.
        python("import rszshm,sys\nr = rszshm.Region.open(sys.argv[1])\n"
               "a = r.array('m')\na[10, 2] = -5\n", p)
        assert a[10, 2] == -5
        with pytest.raises(FileExistsError):
            r.array("m", 3, "i4")
        with pytest.raises(TypeError):
            r.array("s", 3, [("a", "i4")])
        e = r.array("empty", (0, 4), "u1")
        assert e.shape == (0, 4)
        r.records.put("notarray", b"x" * 400)
        with pytest.raises(OSError):
            r.array("notarray")
        with pytest.raises(BufferError):   # an array over the region is alive
            r.close()
        del a, e
        r.free_array("m")
        assert "m" not in r.records and r.check() is None
        r.remove()
