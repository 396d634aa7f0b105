# SPDX-License-Identifier: Apache-2.0
"""rszshm: resizable, fixed-address shared memory regions for Python.

A pure-Python layer (ctypes) over the C library librszshm: regions, named
records, NumPy arrays in place, and waiting for changes, shared with other
Python processes and with C programs.  See the "Python" section of the
README for a tour.
"""
import collections.abc
import ctypes
import errno as _errno
import os
import struct as _struct
import sys as _sys
import time
import weakref
from typing import NamedTuple, Optional

from . import _lib
from ._lib import lib as _c

__all__ = ["Region", "Records", "RecordInfo", "ARRAY_TYPE", "error"]

#: The type tag of a record that holds a NumPy array ("npy1").
ARRAY_TYPE = 0x6E707931

# Longest sleep of one wait call: between two, Python runs signal handlers
# (KeyboardInterrupt for Ctrl-C).
_WAIT_SLICE_MS = 100


def error(what=None):
    """The OSError subclass for the C library's last failure in this thread:
    errno from ctypes, text from rszshm_errmsg()."""
    e = ctypes.get_errno()
    msg = _c.rszshm_errmsg()
    text = msg.decode(errors="replace") if msg else os.strerror(e)
    if what:
        return OSError(e, text, what)
    return OSError(e, text)


def _name(name):
    if not isinstance(name, str):
        raise TypeError("record names are str, not %s" % type(name).__name__)
    return name.encode()


class RecordInfo(NamedTuple):
    """A record's fields, from one moment (struct rszshm_rec_info)."""
    name: str
    type: int
    size: int
    gen: int
    address: int
    copied: bool


def _info(i):
    return RecordInfo(i.name.decode(errors="replace"), i.type, i.size, i.gen, i.ptr or 0,
                      bool(i.copied))


class Region:
    """A mapped region.  Make one with Region.open() or Region.anonymous();
    close() (or the end of a with block) detaches it."""

    def __init__(self, _h, _template=False):
        self._h = _h
        self._template = _template
        # The ctypes arrays under every memoryview handed out, and weak
        # references to those views: an array is in use while anything but
        # this list refers to it (a view, or an object made over one).
        self._bufs = []
        self._views = []
        self._records = None

    # -- making and attaching ------------------------------------------
    @classmethod
    def _open(cls, path, flags, length, span, mode):
        if span is not None and length is not None and length > span:
            raise ValueError("length %d is past span %d" % (length, span))
        o = _lib.Opts()
        o.flags = flags
        o.mode = mode
        o.len = length if length is not None else 1 << 20
        if span is not None:
            o.scan = _lib.default_scan(span)
        h = _lib.Handle()
        p = os.fsencode(path) if path is not None else None
        if _c.rszshm_open(ctypes.byref(h), p, ctypes.byref(o)) is None:
            raise error(path)
        template = path is None or os.path.basename(os.path.dirname(os.fsdecode(p))).endswith("XXXXXX")
        return cls(h, bool(flags & _lib.CREATE) and template and not flags & _lib.ANON)

    @classmethod
    def open(cls, path, *, create=False, exclusive=False, heap=False, length=None, span=None,
             mode=0o600, readonly=False, allocate=False):
        """Attach the region at path, or make it.

        create: make it if it does not exist (race-free between makers);
        exclusive: with create, FileExistsError if it exists; heap: make a
        heap region (records, arrays) instead of a raw one; length: initial
        length of the raw area or heap when making (default 1 MiB); span:
        the most the region can grow to (default 4 GiB on 64-bit); mode:
        permission bits of a file it makes; readonly: attach read-only
        (writes then fail with PermissionError); allocate: allocate the
        file's blocks at every grow.  With create and path None, a new
        region under /dev/shm/rszshm_XXXXXX/0 (remove() takes the directory
        too).  Errors: OSError subclasses (FileNotFoundError,
        FileExistsError, PermissionError, ...) with the library's text.
        """
        flags = 0
        if create:
            flags |= _lib.CREATE
            if exclusive:
                flags |= _lib.EXCL
            if heap:
                flags |= _lib.HEAP
            if allocate:
                flags |= _lib.ALLOCATE
        elif exclusive or heap or allocate or length is not None or span is not None:
            raise ValueError("exclusive, heap, allocate, length and span need create=True")
        if readonly:
            flags |= _lib.RDONLY
        return cls._open(path, flags, length, span, mode)

    @classmethod
    def anonymous(cls, *, heap=False, length=None, span=None, allocate=False):
        """Make a region with no name (a memfd): shared only with children
        made by os.fork() (or multiprocessing's fork method) after it."""
        flags = _lib.CREATE | _lib.ANON | (_lib.HEAP if heap else 0) | (_lib.ALLOCATE if allocate else 0)
        return cls._open(None, flags, length, span, 0)

    def __reduce__(self):
        # multiprocessing's spawn method: the child attaches by name.
        if self.path is None:
            raise TypeError("an anonymous region is shared by fork only")
        return (_reopen, (self.path, self.readonly))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._h is not None and not self._in_use():
                _c.rszshm_dt(ctypes.byref(self._h))
                self._h = None
        except Exception:
            pass

    def _handle(self):
        if self._h is None:
            raise ValueError("the region is closed")
        return ctypes.byref(self._h)

    def close(self):
        """Detach: flush, unmap, close.  Every memoryview handed out is
        released first; BufferError (and the region stays mapped) while an
        object made over one (a NumPy array, say) still exists."""
        if self._h is None:
            return
        for w in self._views:
            v = w()
            if v is not None:
                try:
                    v.release()
                except BufferError:
                    pass
        self._views = []
        if self._in_use():
            raise BufferError("objects made over the region's memory (NumPy arrays, "
                              "memoryviews) still exist: delete them before close()")
        self._bufs = []
        if _c.rszshm_dt(ctypes.byref(self._h)) == -1:
            self._h = None
            raise error(self.path)
        self._h = None

    @property
    def closed(self):
        return self._h is None

    # -- properties -----------------------------------------------------
    @property
    def path(self):
        """The file's path (None for an anonymous region)."""
        self._handle()
        return os.fsdecode(self._h.fname) or None

    @property
    def base(self):
        """The region's address, the same in every process."""
        self._handle()
        return self._h.hdr

    @property
    def length(self):
        """The region's current length, header included."""
        if _c.rszshm_up(self._handle()) == -1:
            raise error(self.path)
        return self._h.flen

    @property
    def span(self):
        """The most the region can grow to."""
        self._handle()
        return self._h.max

    @property
    def readonly(self):
        self._handle()
        return bool(self._h.flags & _lib.RDONLY)

    @property
    def heap(self):
        """True for a heap region (records, arrays), False for a raw one."""
        self._handle()
        return bool(self._h.flags & _lib.HEAP)

    @property
    def fd(self):
        self._handle()
        return self._h.fd

    # -- growing, flushing, removing -------------------------------------
    def grow(self, length=None):
        """Double the region (length None), or grow it to at least length
        bytes (header included).  Returns the new length."""
        h = self._handle()
        rc = _c.rszshm_grow(h) if length is None else _c.rszshm_grow_to(h, length)
        if rc == -1:
            raise error(self.path)
        return self.length

    def flush(self):
        """Write the whole region back to its file (msync)."""
        h = self._handle()
        if _c.rszshm_flush(h, self._h.hdr, self._h.flen) == -1:
            raise error(self.path)

    def remove(self):
        """Remove the region's file (and the directory a template made);
        attached processes keep their mapping.  The handle stays open."""
        h = self._handle()
        if _c.rszshm_unlink(h) == -1:
            raise error(self.path)
        if self._template and _c.rszshm_rmdir(h) == -1:
            raise error(self.path)

    def check(self):
        """Walk the region: None if consistent, else the first damage found
        (a str).  Read-only; run it when no process is writing."""
        buf = ctypes.create_string_buffer(256)
        rc = _c.rszshm_check(self._handle(), buf, len(buf))
        if rc == -1:
            raise error(self.path)
        return buf.value.decode(errors="replace") if rc else None

    # -- raw area ---------------------------------------------------------
    def _view(self, addr, size, readonly):
        self._bufs = [b for b in self._bufs if _sys.getrefcount(b) > 3]
        self._views = [w for w in self._views if w() is not None]
        buf = (ctypes.c_char * size).from_address(addr)
        mv = memoryview(buf).cast("B")
        if readonly:
            mv = mv.toreadonly()
        self._bufs.append(buf)
        self._views.append(weakref.ref(mv))
        return mv

    def _in_use(self):
        return any(_sys.getrefcount(b) > 3 for b in self._bufs)

    @property
    def raw(self):
        """A memoryview over the raw area as it is now (read-only for a
        read-only handle).  It stays valid while the region grows but keeps
        its length: take region.raw again after a grow (yours or another
        process's) to see the new bytes.  close() releases it."""
        if self.heap:
            raise TypeError("a heap region has no raw area")
        self.length  # refresh cap
        return self._view(self._h.dat, self._h.cap, self.readonly)

    # -- records ----------------------------------------------------------
    @property
    def records(self):
        """The region's named records, a MutableMapping[str, bytes]."""
        if self._records is None:
            self._records = Records(self)
        return self._records

    @property
    def changes(self):
        """How many changes the record index has had (for wait_any())."""
        ctypes.set_errno(0)
        n = _c.rszshm_rec_changes(self._handle())
        if n == 0 and ctypes.get_errno():
            raise error(self.path)
        return n

    def _wait(self, call, seen, timeout):
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or >= 0")
        s = ctypes.c_uint64(seen)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                ms = _WAIT_SLICE_MS
            else:
                ms = max(0, min(_WAIT_SLICE_MS, int((deadline - time.monotonic()) * 1000 + 0.999)))
            if call(ctypes.byref(s), ms) == 0:
                return s.value
            e = ctypes.get_errno()
            if e == _errno.EINTR or (e == _errno.ETIMEDOUT and
                                     (deadline is None or time.monotonic() < deadline)):
                continue    # Python runs pending signal handlers here
            raise error(self.path)

    def wait(self, name, seen=0, timeout=None):
        """Sleep until the record name's stamp differs from seen (0: no such
        record) and return the new stamp (0 when it was removed).
        timeout in seconds (None: for ever); TimeoutError when it passes.
        The GIL is released while asleep; Ctrl-C raises KeyboardInterrupt
        within 0.1 s."""
        n = _name(name)
        h = self._handle()
        return self._wait(lambda s, ms: _c.rszshm_rec_wait(h, n, s, ms), seen, timeout)

    def wait_any(self, seen=0, timeout=None):
        """Sleep until the index's change count differs from seen (see
        changes) and return the new count.  As wait() otherwise."""
        h = self._handle()
        return self._wait(lambda s, ms: _c.rszshm_rec_wait_any(h, s, ms), seen, timeout)

    # -- NumPy arrays -----------------------------------------------------
    def array(self, name, shape=None, dtype=None):
        """region.array(name, shape, dtype): allocate a zeroed array in the
        heap, publish it under name and return an ndarray over it.
        region.array(name): the array published under name (by any
        process), in place: no copy, the same address everywhere; read-only
        for a read-only handle.  The shape and dtype are kept in a header
        at the start of the record's block."""
        import numpy as np
        if shape is None:
            if dtype is not None:
                raise TypeError("dtype given without shape")
            return self._array_at(name, np)
        return self._array_new(name, shape, dtype, np)

    def _array_new(self, name, shape, dtype, np):
        dt = np.dtype(dtype if dtype is not None else float)
        if dt.fields is not None or dt.subdtype is not None or dt.hasobject:
            raise TypeError("only plain dtypes go in a region, not %r" % dt)
        code = dt.str.encode()
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if len(shape) > _ARR_MAXDIM or any(s < 0 for s in shape) or len(code) > 16:
            raise ValueError("bad shape or dtype")
        nbytes = dt.itemsize
        for s in shape:
            nbytes *= s
        n = _name(name)
        h = self._handle()
        p = _c.rszshm_alloc_aligned(h, 64, _ARR_HDR + max(nbytes, 1))
        if p is None:
            raise error(self.path)
        hdr = _struct.pack(_ARR_FMT, _ARR_MAGIC, len(shape), nbytes, code,
                           *(shape + (0,) * (_ARR_MAXDIM - len(shape))))
        ctypes.memmove(p, hdr, len(hdr))
        ctypes.memset(p + _ARR_HDR, 0, nbytes)
        if _c.rszshm_rec_add(h, n, ARRAY_TYPE, p, _ARR_HDR + nbytes) == -1:
            err = error(self.path)
            _c.rszshm_dealloc(h, p)
            raise err
        return self._array_at(name, np)

    def _array_at(self, name, np):
        info = _lib.RecInfo()
        p = _c.rszshm_rec_find(self._handle(), _name(name), ctypes.byref(info))
        if p is None:
            raise error(name)
        bad = OSError(_errno.EBADMSG, "record %r does not hold an array" % name)
        if info.type != ARRAY_TYPE or info.size < _ARR_HDR:
            raise bad
        f = _struct.unpack(_ARR_FMT, ctypes.string_at(p, _struct.calcsize(_ARR_FMT)))
        magic, ndim, nbytes, code = f[:4]
        if magic != _ARR_MAGIC or ndim > _ARR_MAXDIM or nbytes != info.size - _ARR_HDR:
            raise bad
        try:
            dt = np.dtype(code.rstrip(b"\0").decode("ascii"))
        except (TypeError, ValueError, UnicodeDecodeError):
            raise bad from None
        if dt.fields is not None or dt.subdtype is not None or dt.hasobject:
            raise bad
        shape = f[4:4 + ndim]
        n = dt.itemsize
        for s in shape:
            n *= s
        if n != nbytes:
            raise bad
        mv = self._view(p + _ARR_HDR, nbytes, self.readonly) if nbytes else memoryview(b"")
        return np.frombuffer(mv, dtype=dt).reshape(shape)

    def free_array(self, name):
        """Remove the record name and free its array's block: arrays over
        it, in any process, must no longer be used."""
        info = _lib.RecInfo()
        h = self._handle()
        p = _c.rszshm_rec_find(h, _name(name), ctypes.byref(info))
        if p is None:
            raise error(name)
        if info.type != ARRAY_TYPE:
            raise OSError(_errno.EBADMSG, "record %r does not hold an array" % name)
        if _c.rszshm_rec_remove(h, _name(name)) == -1 or _c.rszshm_dealloc(h, p) == -1:
            raise error(name)


# The array header: magic, ndim, data bytes, dtype.str, the shape; the data
# start _ARR_HDR bytes into the block (a multiple of 64: aligned).
_ARR_MAGIC = b"RSZNPY1\0"
_ARR_MAXDIM = 32
_ARR_FMT = "=8sIQ16s%dQ" % _ARR_MAXDIM
_ARR_HDR = 320
assert _struct.calcsize(_ARR_FMT) <= _ARR_HDR


def _reopen(path, readonly):
    return Region.open(path, readonly=readonly)


class Records(collections.abc.MutableMapping):
    """The named records of a heap region: str names, bytes values.

    r[name] = data stores a copy (put() takes a type tag), r[name] returns
    an untorn copy, del removes, iteration is in insertion order.  Values
    published by C with rszshm_rec_add() read the same way."""

    def __init__(self, region):
        self._r = region

    def put(self, name, data, type=0):
        """Store a copy of data (bytes-like) under name, with a type tag."""
        b = bytes(data)
        if _c.rszshm_rec_put(self._r._handle(), _name(name), type, b, len(b)) == -1:
            raise error(name)

    def __setitem__(self, name, data):
        self.put(name, data)

    def get_with_info(self, name):
        """(value, RecordInfo), both from one moment."""
        h = self._r._handle()
        n = _name(name)
        info = _lib.RecInfo()
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            got = _c.rszshm_rec_get(h, n, buf, size, ctypes.byref(info))
            if got == -1:
                e = ctypes.get_errno()
                if e == _errno.ENOENT:
                    raise KeyError(name)
                raise error(name)
            if got <= size:
                return buf.raw[:got], _info(info)
            size = got

    def __getitem__(self, name):
        return self.get_with_info(name)[0]

    def __delitem__(self, name):
        if _c.rszshm_rec_remove(self._r._handle(), _name(name)) == -1:
            if ctypes.get_errno() == _errno.ENOENT:
                raise KeyError(name)
            raise error(name)

    def clear(self):
        if _c.rszshm_rec_clear(self._r._handle()) == -1:
            raise error(self._r.path)

    def infos(self):
        """Every record's RecordInfo, in insertion order."""
        h = self._r._handle()
        it = _lib.RecIter()
        info = _lib.RecInfo()
        while True:
            rc = _c.rszshm_rec_next(h, ctypes.byref(it), ctypes.byref(info))
            if rc == 0:
                return
            if rc == -1:
                raise error(self._r.path)
            yield _info(info)

    def __iter__(self):
        for i in self.infos():
            yield i.name

    def __len__(self):
        return sum(1 for _ in self.infos())

    def __contains__(self, name):
        try:
            self.info(name)
        except KeyError:
            return False
        return True

    def info(self, name):
        """The record's RecordInfo (type, size, gen, address); KeyError if
        there is none."""
        info = _lib.RecInfo()
        if _c.rszshm_rec_find(self._r._handle(), _name(name), ctypes.byref(info)) is None:
            if ctypes.get_errno() == _errno.ENOENT:
                raise KeyError(name)
            raise error(name)
        return _info(info)

    def view(self, name):
        """A read-only memoryview over the value in place: no copy.  For a
        value stored with put() it is valid only until the record is next
        put or removed, by any process (then its bytes may be reused):
        use it for values that do not change, or copy with r[name]."""
        info = _lib.RecInfo()
        p = _c.rszshm_rec_find(self._r._handle(), _name(name), ctypes.byref(info))
        if p is None:
            if ctypes.get_errno() == _errno.ENOENT:
                raise KeyError(name)
            raise error(name)
        if info.size == 0:
            return memoryview(b"")
        return self._r._view(p, info.size, True)
