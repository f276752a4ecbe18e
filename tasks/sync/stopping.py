"""A process that is stopping tells its posters, so that they stop at their next call.

Posting runs on task-runner threads. On SIGTERM Prefect's engine ends the flow run in the main
thread, then the interpreter joins those threads before it exits: a poster with calls left
kept a stopped process alive for as long as its work took. ``request_stop`` (called when the
flow sees the signal, and by ``install`` at interpreter exit) makes every wait here end at once
with ``Stopping``, and no new call start.
"""

from __future__ import annotations

import threading

from config.errors import Stopping

_stop = threading.Event()
_why: list[str] = []
_installed = False
_lock = threading.Lock()


def request_stop(why: str) -> None:
    """Stop every poster of this process at its next call or wait (idempotent)."""
    with _lock:
        if not _why:
            _why.append(why)
    _stop.set()


def stopping() -> str | None:
    """Why this process is stopping, or ``None``."""
    return _why[0] if _stop.is_set() and _why else None


def check() -> None:
    """Raise ``Stopping`` when the process is stopping."""
    if _stop.is_set():
        raise Stopping(f"the process is stopping ({stopping()})")


def pause(seconds: float) -> None:
    """Sleep ``seconds``, or less and raise ``Stopping`` when the process stops meanwhile."""
    if seconds > 0 and _stop.wait(seconds):
        check()
    check()


def install() -> None:
    """Request a stop when the interpreter starts to exit, before it joins the task runner's
    threads (``threading``'s exit hooks run last registered first; ``concurrent.futures``
    registered its join when it was imported, long before this runs). Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # a Python without the hook: SIGTERM in the flow still requests it
        return
    register(lambda: request_stop("the interpreter is exiting"))


def reset() -> None:
    """Forget a stop (tests: one process runs many flows)."""
    with _lock:
        _why.clear()
    _stop.clear()
