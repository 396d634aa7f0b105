# SPDX-License-Identifier: Apache-2.0
"""Regions, raw areas, records and errors, in one process and across
freshly exec'd ones and forked children."""
import errno
import os
import signal
import struct

import pytest

import rszshm
from conftest import SRC, python, popen


def test_make_attach_properties(shmdir):
    p = os.path.join(shmdir, "r")
    with rszshm.Region.open(p, create=True, heap=True, length=1 << 16, span=1 << 26,
                            mode=0o640) as r:
        assert r.path == p and r.heap and not r.readonly
        assert r.span == 1 << 26 and 1 << 16 < r.length <= 1 << 26
        assert r.base % os.sysconf("SC_PAGE_SIZE") == 0
        assert os.stat(p).st_mode & 0o777 == 0o640
        with pytest.raises(FileExistsError):
            rszshm.Region.open(p, create=True, exclusive=True)
        out = python("import rszshm,sys\nr = rszshm.Region.open(sys.argv[1], readonly=True)\n"
                     "print(r.base, r.span, r.heap, r.readonly)", p).stdout.split()
        assert out == [str(r.base), str(1 << 26), "True", "True"]
        r.remove()
        assert not os.path.exists(p)
    assert r.closed
    with pytest.raises(ValueError):
        r.length
    with pytest.raises(FileNotFoundError) as e:
        rszshm.Region.open(p)
    assert e.value.errno == errno.ENOENT and p in str(e.value)


def test_raw_grow_and_flush_seen_by_another_process(shmdir):
    p = os.path.join(shmdir, "raw")
    with rszshm.Region.open(p, create=True, length=4096, span=1 << 24) as r:
        m = r.raw
        assert not r.heap and len(m) >= 4096 and not m.readonly
        m[:5] = b"hello"
        old = r.length
        assert r.grow() > old and r.grow(1 << 20) >= 1 << 20
        assert len(m) < (1 << 20) - 8192 <= len(r.raw)  # old view keeps its length
        m2 = r.raw
        m2[len(m2) - 3:] = b"end"
        r.flush()
        code = ("import rszshm,sys\nr = rszshm.Region.open(sys.argv[1], readonly=True)\n"
                "m = r.raw\nprint(bytes(m[:5]).decode(), bytes(m[-3:]).decode(), m.readonly)")
        assert python(code, p).stdout.split() == ["hello", "end", "True"]
        with pytest.raises(OSError) as e:
            r.grow(1 << 30)
        assert e.value.errno == errno.ENOMEM
        with pytest.raises(OSError) as e:   # a raw region has no records
            r.records["x"] = b"y"
        assert e.value.errno == errno.EINVAL
        del m, m2
        r.remove()


def test_anonymous_shared_with_forked_child():
    with rszshm.Region.anonymous(heap=True) as r:
        assert r.path is None
        with pytest.raises(TypeError):
            import pickle
            pickle.dumps(r)
        pid = os.fork()
        if pid == 0:
            try:
                r.records.put("from-child", b"%d" % os.getpid(), type=3)
                os._exit(0)
            finally:
                os._exit(1)
        _, st = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(st) == 0
        assert r.records["from-child"] == b"%d" % pid
        assert r.records.info("from-child").type == 3


def test_records_mapping(shmdir):
    with rszshm.Region.open(os.path.join(shmdir, "h"), create=True, heap=True) as r:
        rec = r.records
        assert len(rec) == 0 and list(rec) == []
        rec["b"] = b"1"
        rec.put("a", bytearray(b"x" * 5000), type=0x1234)
        rec["c"] = memoryview(b"three")
        assert list(rec) == ["b", "a", "c"] and len(rec) == 3
        assert rec["a"] == b"x" * 5000 and rec["c"] == b"three"
        i = rec.info("a")
        assert (i.name, i.type, i.size, i.copied) == ("a", 0x1234, 5000, True)
        assert r.base < i.address < r.base + r.length
        rec["b"] = b"22"              # replacing keeps the place, new gen
        assert list(rec) == ["b", "a", "c"] and rec.info("b").gen > 1
        v = rec.view("c")
        assert v.readonly and bytes(v) == b"three"
        del rec["b"]
        assert "b" not in rec and "a" in rec and list(rec) == ["a", "c"]
        with pytest.raises(KeyError):
            rec["b"]
        with pytest.raises(KeyError):
            del rec["b"]
        with pytest.raises(OSError) as e:
            rec["n" * 64] = b""
        assert e.value.errno == errno.ENAMETOOLONG
        rec.clear()
        assert len(rec) == 0
        r.remove()


def test_wait_and_wait_any_woken_by_another_process(shmdir):
    p = os.path.join(shmdir, "w")
    with rszshm.Region.open(p, create=True, heap=True) as r:
        seen = r.changes
        with pytest.raises(TimeoutError):
            r.wait("x", timeout=0.05)
        with pytest.raises(TimeoutError):
            r.wait_any(seen, timeout=0)
        python("import rszshm,sys\nrszshm.Region.open(sys.argv[1]).records['x'] = b'1'", p)
        stamp = r.wait("x", timeout=10)     # made meanwhile: returns at once
        assert stamp != 0 and r.records["x"] == b"1"
        assert r.wait_any(seen, timeout=10) == seen + 1
        # A waiter in another process, woken by our put (no polling: it
        # sleeps until the stamp moves).
        child = popen("import rszshm,sys\nr = rszshm.Region.open(sys.argv[1], readonly=True)\n"
                      "print(r.wait('x', int(sys.argv[2]), timeout=30), flush=True)\n"
                      "print(r.records['x'].decode())", p, str(stamp),
                      stdout=__import__("subprocess").PIPE)
        r.records["x"] = b"2"
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        new, value = out.split()
        assert int(new) != stamp and value == "2"
        del r.records["x"]
        assert r.wait("x", int(new), timeout=10) == 0
        r.remove()


def test_ctrl_c_interrupts_a_wait(shmdir):
    p = os.path.join(shmdir, "i")
    with rszshm.Region.open(p, create=True, heap=True) as r:
        code = ("import rszshm,sys\nr = rszshm.Region.open(sys.argv[1])\n"
                "try:\n    print('ready', flush=True)\n    r.wait('never')\n"
                "except KeyboardInterrupt:\n"
                "    r.records['after'] = b'ok'\n    print(r.records['after'].decode())\n")
        child = popen(code, p, stdout=__import__("subprocess").PIPE)
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0 and out == "ok\n"
        assert r.records["after"] == b"ok" and r.check() is None
        r.remove()


def test_readonly_handle_refuses_writes(shmdir):
    p = os.path.join(shmdir, "ro")
    raw = os.path.join(shmdir, "raw")
    with rszshm.Region.open(p, create=True, heap=True) as r, \
            rszshm.Region.open(raw, create=True) as w:
        r.records["k"] = b"v"
        code = ("import rszshm,sys\n"
                "r = rszshm.Region.open(sys.argv[1], readonly=True)\n"
                "assert r.records['k'] == b'v'\n"
                "for f in (lambda: r.records.put('k', b'w'), lambda: r.records.__delitem__('k'),\n"
                "          lambda: r.grow(), lambda: r.records.clear()):\n"
                "    try:\n        f()\n    except PermissionError as e:\n"
                "        print('refused', e.errno)\n"
                "w = rszshm.Region.open(sys.argv[2], readonly=True)\n"
                "try:\n    w.raw[0] = 1\nexcept TypeError:\n    print('raw read-only')\n")
        out = python(code, p, raw).stdout.splitlines()
        assert out == ["refused %d" % errno.EPERM] * 4 + ["raw read-only"]
        assert r.records["k"] == b"v"
        r.remove()
        w.remove()


def test_damaged_files_give_oserror(shmdir):
    p = os.path.join(shmdir, "d")
    with rszshm.Region.open(p, create=True, heap=True) as r:
        r.records["k"] = b"v"
    with open(p, "r+b") as f:
        f.truncate(8192)
    with pytest.raises(OSError) as e:
        rszshm.Region.open(p)
    assert e.value.errno == errno.ENODATA
    with open(p, "r+b") as f:
        f.write(b"not a region")
    with pytest.raises(OSError) as e:
        rszshm.Region.open(p, readonly=True)
    assert e.value.errno == errno.EPROTO and p in str(e.value)


HOSTILE = r"""
import errno, os, shutil, sys
import rszshm
try:
    import numpy
except ImportError:
    numpy = None
corpus, work = sys.argv[1], sys.argv[2]
opened = refused = 0
for n in sorted(os.listdir(corpus)):
    for ro in (True, False):
        dst = os.path.join(work, 'f')
        shutil.copyfile(os.path.join(corpus, n), dst)
        try:
            r = rszshm.Region.open(dst, readonly=ro)
        except OSError:
            refused += 1
            continue
        opened += 1
        with r:
            r.check()
            try:
                for name in r.records:
                    try:
                        r.records[name]
                        r.records.info(name)
                        bytes(r.records.view(name))
                    except (KeyError, OSError):
                        pass
                    if numpy is not None:
                        try:
                            r.array(name).sum()
                        except OSError:
                            pass
                if not ro:
                    r.records['new'] = b'x'
            except (OSError, TypeError):
                pass
        os.unlink(dst)
print(opened, refused)
"""


def test_hostile_corpus_gives_oserror_never_a_crash(shmdir):
    corpus = os.path.join(SRC, "test", "fuzz", "corpus")
    if not os.path.isdir(corpus):
        pytest.skip("no fuzz corpus at " + corpus)
    out = python(HOSTILE, corpus, shmdir, timeout=300).stdout.split()
    opened, refused = int(out[0]), int(out[1])
    assert opened + refused == 2 * len(os.listdir(corpus)) and refused > 0


WRITER = r"""
import os, sys
import rszshm
r = rszshm.Region.open(sys.argv[1])
r.records['ready'] = b'1'
i = 0
while True:
    r.records.put('k%d' % (i % 50), os.urandom(16 + i % 900))
    i += 1
"""


def test_killed_writer_leaves_region_consistent(shmdir):
    p = os.path.join(shmdir, "k")
    with rszshm.Region.open(p, create=True, heap=True) as r:
        child = popen(WRITER, p)
        try:
            r.wait("ready", timeout=60)
            seen = r.changes
            for _ in range(20):                 # let it write a while
                seen = r.wait_any(seen, timeout=60)
        finally:
            child.kill()
            child.wait()
        assert child.returncode == -signal.SIGKILL
        r.records["after"] = b"alive"           # takes the lock it may have held
        for name in r.records:
            r.records[name]
        assert r.records["after"] == b"alive"
        assert r.check() is None
        r.remove()


HIST = struct.Struct("=QQdd100QII")     # tools/monitor.c's struct hist
HPX_TYPE = 0x68707831


def monitor():
    m = os.environ.get("RSZSHM_MONITOR")
    if not m:
        pytest.skip("RSZSHM_MONITOR is not set (the tools are not built)")
    return m


def test_c_producer_python_consumer(shmdir):
    import subprocess
    p = os.path.join(shmdir, "hist")
    subprocess.run([monitor(), "produce", p, "300", "100"], check=True, timeout=60)
    with rszshm.Region.open(p, readonly=True) as r:
        seen = wakes = last = 0
        while True:
            seen = r.wait("hpx", seen, timeout=30)
            wakes += 1
            assert seen != 0
            data, info = r.records.get_with_info("hpx")
            assert info.type == HPX_TYPE and len(data) == HIST.size
            h = HIST.unpack(data)
            version, entries, done = h[0], h[1], h[104]
            assert version >= last and entries == 100 * version
            assert sum(h[4:104]) <= entries
            last = version
            if done:
                break
        assert last == 300 and wakes <= 302


def test_python_producer_c_consumer(shmdir):
    import subprocess
    p = os.path.join(shmdir, "hist")
    with rszshm.Region.open(p, create=True, heap=True) as r:
        cons = subprocess.Popen([monitor(), "consume", p], stdout=subprocess.PIPE, text=True)
        try:
            n = 50
            for v in range(1, n + 1):
                bins = [0] * 100
                bins[v % 100] = 100 * v
                r.records.put("hpx", HIST.pack(v, 100 * v, 0.0, 0.0, *bins, int(v == n), 0),
                              type=HPX_TYPE)
            out, _ = cons.communicate(timeout=60)
        finally:
            cons.kill()
            cons.wait()
        assert cons.returncode == 0
        last = out.splitlines()[-1]
        assert last.startswith("version %d: %d entries" % (n, 100 * n)) and "(done)" in last
        r.remove()
