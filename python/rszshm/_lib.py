# SPDX-License-Identifier: Apache-2.0
"""Finding librszshm and declaring its functions and structs (ctypes).

The structs mirror include/rszshm.h field by field; ctypes lays them out
with the C compiler's rules for this machine, so they match on every ABI
the library builds for.  Only calls that take pointers are used (no struct
passed by value): rszshm_open() makes and attaches every kind of region.
"""
import ctypes
import os

RSZSHM_PATH_MAX = 128
RSZSHM_NAME_MAX = 63

ALLOCATE = 0x1
HEAP = 0x2
ANON = 0x4
RDONLY = 0x100
CREATE = 0x200
EXCL = 0x400

_P = ctypes.c_void_p
_SZ = ctypes.c_size_t


class Scan(ctypes.Structure):
    _fields_ = [("start", _P), ("len", _SZ), ("hop", _SZ), ("iter", ctypes.c_uint)]


class Handle(ctypes.Structure):
    """struct rszshm"""
    _fields_ = [("fd", ctypes.c_int), ("flen", _SZ),
                ("fname", ctypes.c_char * RSZSHM_PATH_MAX), ("hdr", _P),
                ("dat", _P), ("cap", _SZ), ("flags", ctypes.c_uint), ("max", _SZ)]


class Opts(ctypes.Structure):
    """struct rszshm_opts (mode_t is unsigned int on Linux)"""
    _fields_ = [("flags", ctypes.c_uint), ("mode", ctypes.c_uint), ("len", _SZ),
                ("scan", Scan), ("init", _P), ("arg", _P), ("lock_timeout_ms", ctypes.c_uint)]


class RecInfo(ctypes.Structure):
    """struct rszshm_rec_info"""
    _fields_ = [("name", ctypes.c_char * (RSZSHM_NAME_MAX + 1)), ("type", ctypes.c_uint32),
                ("size", _SZ), ("ptr", _P), ("gen", ctypes.c_uint64), ("copied", ctypes.c_bool)]


class RecIter(ctypes.Structure):
    """struct rszshm_rec_iter"""
    _fields_ = [("pos_", ctypes.c_uint64 * 2)]


def default_scan(span):
    """RSZSHM_DFLT_SCAN with another length: start, hop and iter kept, so
    the address plan places it (see the top of rszshm.h)."""
    if ctypes.sizeof(_P) == 8:
        return Scan(64 << 40, span, 1 << 40, 10)
    return Scan((1024 + 512) << 20, span, 256 << 20, 10)


def _candidates():
    env = os.environ.get("RSZSHM_LIBRARY")
    if env:
        return [env]
    out = []
    # The build tree this package sits in: SRC/python/rszshm/_lib.py.
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(src, "include", "rszshm.h")):
        for d in sorted(os.listdir(src)):
            lib = os.path.join(src, d, "librszshm.so.1")
            if d.startswith("build") and os.path.exists(lib):
                out.append(lib)
    out.append("librszshm.so.1")
    return out


def _load():
    tried = []
    for c in _candidates():
        try:
            return ctypes.CDLL(c, use_errno=True)
        except OSError as e:
            tried.append("%s (%s)" % (c, e))
    raise ImportError("rszshm: cannot load the C library librszshm; tried: " + "; ".join(tried)
                      + ". Install librszshm or set RSZSHM_LIBRARY to its path.")


lib = _load()

_H = ctypes.POINTER(Handle)
_U64P = ctypes.POINTER(ctypes.c_uint64)
_sigs = {
    "rszshm_open": (_P, [_H, ctypes.c_char_p, ctypes.POINTER(Opts)]),
    "rszshm_errmsg": (ctypes.c_char_p, []),
    "rszshm_dt": (ctypes.c_int, [_H]),
    "rszshm_up": (ctypes.c_int, [_H]),
    "rszshm_grow": (ctypes.c_int, [_H]),
    "rszshm_grow_to": (ctypes.c_int, [_H, _SZ]),
    "rszshm_flush": (ctypes.c_int, [_H, _P, _SZ]),
    "rszshm_unlink": (ctypes.c_int, [_H]),
    "rszshm_rmdir": (ctypes.c_int, [_H]),
    "rszshm_alloc_aligned": (_P, [_H, _SZ, _SZ]),
    "rszshm_dealloc": (ctypes.c_int, [_H, _P]),
    "rszshm_rec_add": (ctypes.c_int, [_H, ctypes.c_char_p, ctypes.c_uint32, _P, _SZ]),
    "rszshm_rec_put": (ctypes.c_int, [_H, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p, _SZ]),
    "rszshm_rec_find": (_P, [_H, ctypes.c_char_p, ctypes.POINTER(RecInfo)]),
    "rszshm_rec_get": (ctypes.c_ssize_t, [_H, ctypes.c_char_p, _P, _SZ, ctypes.POINTER(RecInfo)]),
    "rszshm_rec_remove": (ctypes.c_int, [_H, ctypes.c_char_p]),
    "rszshm_rec_clear": (ctypes.c_int, [_H]),
    "rszshm_rec_next": (ctypes.c_int, [_H, ctypes.POINTER(RecIter), ctypes.POINTER(RecInfo)]),
    "rszshm_rec_wait": (ctypes.c_int, [_H, ctypes.c_char_p, _U64P, ctypes.c_int]),
    "rszshm_rec_changes": (ctypes.c_uint64, [_H]),
    "rszshm_rec_wait_any": (ctypes.c_int, [_H, _U64P, ctypes.c_int]),
    "rszshm_check": (ctypes.c_int, [_H, ctypes.c_char_p, _SZ]),
}
for _n, (_res, _args) in _sigs.items():
    _f = getattr(lib, _n)
    _f.restype = _res
    _f.argtypes = _args
