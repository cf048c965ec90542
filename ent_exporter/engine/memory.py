"""The process' memory tuning, in one place: glibc's malloc (``tune``, ``trim``) and Python's garbage
collector (``freeze_long_lived``). Each changes where memory comes from or which objects the collector
walks, never what a collector computes.

**malloc** (glibc only; a no-op elsewhere).

A window collector's first run (a full recount) allocates and frees large numpy arrays and
bytes, tens of MB at a time. glibc's malloc serves an allocation above its mmap threshold with a
mapping of its own, returned to the system when freed, but it raises that threshold to the size
of each such block freed (up to 32 MB on 64-bit), so that later blocks of that size come from the
heap, where a freed block stays resident until the top of the heap is free. The process's
resident size then keeps, after each first run, tens of MB that nothing uses, and the next first
run starts from there.

``tune()`` (once, at start-up) fixes the mmap threshold, which also turns off that dynamic
adjustment: every block of 1 MB or more is a mapping of its own, returned to the system as soon
as it is freed. (Not lower: a counter's minute allocates and frees blocks of a few hundred kB, the
dict copies of its series, and a mapping each would cost it page faults every minute.) ``trim()`` (after a collector's run) returns what the heap holds free
(malloc_trim(0)). Both are one C call; they change where memory comes from, never what a
collector computes.

**The garbage collector.** What a restart restores (the counters' series, the exposition's rendered
lines) lives as long as the process: millions of objects that every full collection would walk
again, about 70 ms of the first cycle at the month scale, since a minute's allocations trigger one.
``freeze_long_lived()`` (once, after the restore) moves them out of the collector's generations; they
are still freed by reference counting as usual.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 1 << 20  # fixed (glibc's default is 128 kB, raised as mapped blocks are freed, to 32 MB)

_libc: ctypes.CDLL | None = None
_loaded = False


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has malloc_trim and mallopt), else None."""
    global _libc, _loaded
    if not _loaded:
        _loaded = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                libc.malloc_trim.restype = ctypes.c_int
                libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                libc.mallopt.restype = ctypes.c_int
                _libc = libc
            except (OSError, AttributeError):  # musl and others: no malloc_trim / mallopt
                _libc = None
    return _libc


def tune(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Fixes glibc's mmap threshold (see the module docstring). Returns whether it was set."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1)


def freeze_long_lived() -> None:
    """Collects, then moves every object alive now out of the garbage collector's generations (see the
    module docstring): called once, after the restore."""
    gc.collect()
    gc.freeze()


def trim() -> bool:
    """Returns the heap's free memory to the system. Returns whether any was released."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
