"""Interpreter settings for a process that syncs bills, applied once per process.

A sync plans bills on one thread (CPU-bound, holding the GIL) while poster threads wait for
rate tokens and Xero's answers; the tenant's ceiling depends on those waits being short.
Python's cyclic GC made them long: its full collections walked the objects that the imports
(Prefect, SQLAlchemy, pydantic) leave behind, 130–230 ms each, every thread stopped, several
times a sync. ``gc.freeze()`` after one collection leaves those objects out of later
collections (40 ms each in the bench). Flow runs start in their own process (a worker's or
``serve``'s subprocess), so a process freezes once, at its first sync.
"""

from __future__ import annotations

import gc
import threading

_tuned = False
_lock = threading.Lock()


def tune_process() -> None:
    """Collect once, then freeze what survives (idempotent)."""
    global _tuned
    with _lock:
        if _tuned:
            return
        gc.collect()
        gc.freeze()
        _tuned = True
