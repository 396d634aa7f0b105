#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Python benchmarks: record put/get of 64 bytes, wake latency from a put to
a wait() in another process, and handing a 100 MB array to another process
(rszshm vs multiprocessing.shared_memory + Pipe vs pickling through a
Queue).  Medians of RUNS runs.  python3 bench.py [RUNS]"""
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rszshm  # noqa: E402
from multiprocessing import shared_memory  # noqa: E402

N = 100_000
MB100 = 100 * 1000 * 1000 // 8


def putget(r):
    v = b"x" * 64
    t = time.perf_counter()
    for _ in range(N):
        r.records["k"] = v
    put = (time.perf_counter() - t) / N
    t = time.perf_counter()
    for _ in range(N):
        r.records["k"]
    return put, (time.perf_counter() - t) / N


def _pong(r, n):
    seen = 0
    for i in range(n):
        seen = r.wait("ping", seen)
        r.records["pong"] = b"%d" % i


def wake(path, n=2000):
    r = rszshm.Region.open(path)
    p = mp.get_context("fork").Process(target=_pong, args=(r, n))
    p.start()
    seen = 0
    t = time.perf_counter()
    for i in range(n):
        r.records["ping"] = b"%d" % i
        seen = r.wait("pong", seen)
    d = (time.perf_counter() - t) / n / 2
    p.join()
    r.close()
    return d


def _rs_consumer(r, conn):
    # fork: the child has the parent's mapping (it must not attach again).
    conn.send("ready")
    r.wait("big", 0)
    a = r.array("big")
    conn.send((time.perf_counter(), float(a[-1])))


def _shm_consumer(conn):
    conn.send("ready")
    name = conn.recv()
    s = shared_memory.SharedMemory(name)
    a = np.ndarray((MB100,), np.float64, buffer=s.buf)
    conn.send((time.perf_counter(), float(a[-1])))
    del a
    s.close()


def _q_consumer(q, conn):
    conn.send("ready")
    a = q.get()
    conn.send((time.perf_counter(), float(a[-1])))


def share(d):
    ctx = mp.get_context("fork")
    out = {}
    # rszshm: the array is made in the region; the consumer waits for it.
    path = os.path.join(d, "big")
    r = rszshm.Region.open(path, create=True, heap=True, length=1 << 20, span=1 << 28)
    a = r.array("arr", (MB100,), "f8")
    a[:] = 1.0
    a0, b0 = ctx.Pipe()
    p = ctx.Process(target=_rs_consumer, args=(r, b0))
    p.start()
    info = r.records.info("arr")
    a0.recv()                       # the consumer is up and waiting
    t = time.perf_counter()
    # The notification: the array's block published under the name the
    # consumer waits for (one rszshm_rec_add, no copy).
    rszshm._c.rszshm_rec_add(r._handle(), b"big", rszshm.ARRAY_TYPE, info.address, info.size)
    t1, _ = a0.recv()
    out["rszshm"] = t1 - t
    p.join()
    del a
    r.remove()
    r.close()
    # shared_memory + Pipe
    s = shared_memory.SharedMemory(create=True, size=MB100 * 8)
    b = np.ndarray((MB100,), np.float64, buffer=s.buf)
    b[:] = 1.0
    a0, b0 = ctx.Pipe()
    p = ctx.Process(target=_shm_consumer, args=(b0,))
    p.start()
    a0.recv()                       # the consumer is up and waiting
    t = time.perf_counter()
    a0.send(s.name)
    t1, _ = a0.recv()
    out["shared_memory+Pipe"] = t1 - t
    p.join()
    del b
    s.close()
    s.unlink()
    # pickling through a Queue
    c = np.ones(MB100)
    q = ctx.Queue()
    a0, b0 = ctx.Pipe()
    p = ctx.Process(target=_q_consumer, args=(q, b0))
    p.start()
    a0.recv()                       # the consumer is up and waiting
    t = time.perf_counter()
    q.put(c)
    t1, _ = a0.recv()
    out["Queue (pickle)"] = t1 - t
    p.join()
    return out


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    d = tempfile.mkdtemp(prefix="rszshm-bench-", dir="/dev/shm")
    try:
        res = {"put 64 B": [], "get 64 B": [], "wake": [], "rszshm": [],
               "shared_memory+Pipe": [], "Queue (pickle)": []}
        for _ in range(runs):
            path = os.path.join(d, "r")
            r = rszshm.Region.open(path, create=True, heap=True)
            pu, ge = putget(r)
            res["put 64 B"].append(pu)
            res["get 64 B"].append(ge)
            r.close()
            res["wake"].append(wake(path))
            os.unlink(path)
            for k, v in share(d).items():
                res[k].append(v)
        for k, v in res.items():
            print("%-20s %10.2f us" % (k, statistics.median(v) * 1e6))
        base = statistics.median(res["rszshm"])
        for k in ("shared_memory+Pipe", "Queue (pickle)"):
            print("%-20s %10.1fx rszshm" % (k, statistics.median(res[k]) / base))
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


if __name__ == "__main__":
    main()
