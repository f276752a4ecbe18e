"""Run calls side by side on threads that carry the caller's context.

Each call runs in a copy of the caller's ``contextvars`` (as Prefect's own thread-pool task
runner does), so a flow called there is a subflow of the caller's flow run, and is seen as
such in the Prefect UI. A call that outlives ``timeout`` is left to its thread (its waits are
bounded elsewhere) and the caller goes on without it.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def side_by_side(
    calls: Sequence[Callable[[], T]], timeout: float, name: str = "side-by-side"
) -> list[T | TimeoutError]:
    """Each call's result, in order; a ``TimeoutError`` in its place when it was still running
    ``timeout`` seconds after the start. An exception a call raises is raised here."""
    if not calls:
        return []
    pool = ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix=name)
    try:
        futures = [pool.submit(contextvars.copy_context().run, call) for call in calls]
        deadline = time.monotonic() + timeout
        results: list[T | TimeoutError] = []
        for future in futures:
            try:
                results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError as exc:
                results.append(exc)
        return results
    finally:
        pool.shutdown(wait=False)  # a stuck call must not hold the caller
