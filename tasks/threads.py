"""Run calls side by side on threads that carry the caller's context.

Each call runs in a copy of the caller's ``contextvars`` (as Prefect's own thread-pool task
runner does), so a flow called there is a subflow of the caller's flow run, and is seen as
such in the Prefect UI. A call that outlives ``timeout`` is left to its thread (its waits are
bounded elsewhere) and the caller goes on without it.

A caller interrupted while it waits (SIGTERM, which Prefect raises in the main thread as a
``TerminationSignal`` before it lets the signal kill the process; Ctrl-C) first tells the calls
(``on_interrupt``) and gives them ``grace`` seconds to finish: threads die with the process,
so whatever they still had to record would be lost.
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
) -> list[T | TimeoutError]:
    """Each call's result, in order; a ``TimeoutError`` in its place when it was still running
    ``timeout`` seconds after the start. An exception a call raises is raised here."""
    if not calls:
        return []
    pool = ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix=name)
    futures = [pool.submit(contextvars.copy_context().run, call) for call in calls]
    try:
        deadline = time.monotonic() + timeout
        results: list[T | TimeoutError] = []
        for future in futures:
            try:
                results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
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
