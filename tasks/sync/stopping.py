"""A process that is stopping tells its posters, so that they stop at their next call.

Posting runs on task-runner threads. On SIGTERM Prefect's engine ends the flow run in the main
thread, then the interpreter joins those threads before it exits: a poster with calls left
kept a stopped process alive for as long as its work took. ``request_stop`` (called when the
flow sees the signal, and by ``install`` at interpreter exit) makes every wait here end at once
with ``Stopping``, and no new call start.

``StopSignals`` goes further for a flow that runs in the main thread: SIGINT (Ctrl-C) and
SIGTERM request the stop instead of raising in the middle of the flow (Prefect's engine would
end the run Crashed, with a traceback, and kill the process before its threads recorded
anything), so the flow waits for its threads and ends with what they did not send, counted.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

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


#: How a person names the signals that stop a flow run's process.
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopSignals:
    """``with StopSignals() as signals:`` SIGINT and SIGTERM request a stop (``request_stop``,
    named ``Ctrl-C`` or ``SIGTERM``) while the block runs; ``signals.received`` is the first
    one. Outside the main thread (where Python cannot take signals) it changes nothing."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._before: dict[signal.Signals, Any] = {}
        self._blocked: set[signal.Signals] = set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_NAMES:
                self._before[signum] = signal.signal(signum, self._take)
            # serve starts its flow-run processes with SIGINT blocked (deployments.serving):
            # here it is taken, a Ctrl-C that came while the process started included.
            self._blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return self

    def _take(self, signum: int, _frame: FrameType | None) -> None:
        received = signal.Signals(signum)
        if self.received is None:
            self.received = received
        request_stop(SIGNAL_NAMES[received])

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if signal.SIGINT in self._blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        for signum, before in self._before.items():
            if before is not None:  # None: a handler not set from Python, left as it is
                signal.signal(signum, before)
        self._before.clear()
