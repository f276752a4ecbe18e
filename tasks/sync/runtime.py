"""Interpreter and allocator settings for a process that syncs bills.

A sync plans bills on one thread (CPU-bound, holding the GIL) while poster threads wait for
rate grants and Xero's answers; the tenant's ceiling depends on those waits being short.
Python's cyclic GC made them long: its full collections walked the objects that the imports
(Prefect, SQLAlchemy, pydantic) leave behind, every thread stopped. ``gc.freeze()`` after one
collection leaves those objects out of later collections. Flow runs start in their own process
(a worker's or ``serve``'s subprocess), so a process freezes once, at its first sync.

A long sync's RSS also crept up while the objects alive stayed the same: glibc keeps freed
memory in its per-thread arenas and rarely hands it back. ``return_free_memory`` asks it to
(``malloc_trim``), at most once a second. The figures are in bench/README.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
import time
from collections.abc import Callable

_tuned = False
_lock = threading.Lock()
TRIM_EVERY_SECONDS = 1.0


def tune_process() -> None:
    """Collect once, then freeze what survives (idempotent)."""
    global _tuned
    with _lock:
        if _tuned:
            return
        gc.collect()
        gc.freeze()
        _tuned = True


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


_trim = _malloc_trim()
_trimmed_at = 0.0


def return_free_memory(clock: Callable[[], float] = time.monotonic) -> bool:
    """Hand the allocator's free memory back to the OS, unless that was done less than
    ``TRIM_EVERY_SECONDS`` ago (cheap to call per page). True when it trimmed."""
    global _trimmed_at
    if _trim is None:
        return False
    with _lock:
        now = clock()
        if now - _trimmed_at < TRIM_EVERY_SECONDS:
            return False
        _trimmed_at = now
    _trim(0)  # ctypes lets go of the GIL for the call: other threads run meanwhile
    return True
