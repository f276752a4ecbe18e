"""Run calls side by side on threads that carry the caller's context.

Each call runs in a copy of the caller's ``contextvars`` (as Prefect's own thread-pool task
runner does), so a flow called there is a subflow of the caller's flow run, and is seen as
such in the Prefect UI. A call that outlives ``timeout`` is left to its thread (its waits are
bounded elsewhere) and the caller goes on without it.

A caller interrupted while it waits (SIGTERM, which Prefect raises in the main thread as a
``TerminationSignal`` before it lets the signal kill the process; Ctrl-C) first tells the calls
(``on_interrupt``) and gives them ``grace`` seconds to finish: threads die with the process,
so whatever they still had to record would be lost. A caller that takes those signals itself
(``stopped`` turns true) gives the calls the same ``grace``, then returns what they returned.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def side_by_side(
    calls: Sequence[Callable[[], T]],
    timeout: float,
    *,
    name: str = "side-by-side",
    on_interrupt: Callable[[BaseException], None] | None = None,
    grace: float = 5.0,
    stopped: Callable[[], bool] | None = None,
) -> list[T | TimeoutError]:
    """Each call's result, in order; a ``TimeoutError`` in its place when it was still running
    ``timeout`` seconds after the start, or ``grace`` seconds after ``stopped`` turned true.
    An exception a call raises is raised here."""
    if not calls:
        return []
    pool = ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix=name)
    futures = [pool.submit(contextvars.copy_context().run, call) for call in calls]
    try:
        deadline = time.monotonic() + timeout
        _wait(futures, deadline, grace, stopped)
        results: list[T | TimeoutError] = []
        for future in futures:
            try:
                results.append(future.result(timeout=0))
            except TimeoutError as exc:
                results.append(exc)
        return results
    except BaseException as exc:
        if not isinstance(exc, Exception) and on_interrupt is not None:
            on_interrupt(exc)
            concurrent.futures.wait(futures, timeout=grace)
        raise
    finally:
        pool.shutdown(wait=False)  # a stuck call must not hold the caller


def _wait(
    futures: Sequence[concurrent.futures.Future[T]],
    deadline: float,
    grace: float,
    stopped: Callable[[], bool] | None,
) -> None:
    """Until every call is done, the deadline, or ``grace`` seconds after ``stopped``."""
    tick = 0.2 if stopped is not None else None  # how often a stop is looked for
    while True:
        left = deadline - time.monotonic()
        pending = [f for f in futures if not f.done()]
        if not pending or left <= 0:
            return
        if stopped is not None and stopped():
            deadline = min(deadline, time.monotonic() + grace)
            stopped, tick = None, None
            continue
        concurrent.futures.wait(pending, timeout=left if tick is None else min(left, tick))
