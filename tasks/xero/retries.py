"""Retrying transient failures, honouring what the server said.

The client never loops on its own; the sync flow wraps calls in ``with_retries`` and logs each
attempt through ``on_retry``. A ``RateLimitError`` (429) waits at least its ``Retry-After``
(plus up to 10 % jitter so parallel workers do not return in lock-step); other transient errors
back off exponentially with jitter. Permanent and auth errors pass straight through.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from config.errors import TransientError

T = TypeVar("T")
OnRetry = Callable[[int, TransientError, float], None]


def retry_delay(
    error: TransientError,
    attempt: int,
    *,
    base_delay: float,
    max_delay: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed ``attempt`` (1-based)."""
    if error.retry_after is not None:
        return error.retry_after * (1 + 0.1 * rng())
    cap = min(max_delay, base_delay * 2 ** (attempt - 1))
    return cap / 2 + cap / 2 * rng()


def with_retries(
    fn: Callable[[], T],
    *,
    max_attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: OnRetry | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying ``TransientError`` up to ``max_attempts`` calls.

    ``on_retry(attempt, error, delay)`` runs before each wait. The last error is re-raised.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    attempt = 1
    while True:
        try:
            return fn()
        except TransientError as error:
            if attempt >= max_attempts:
                raise
            delay = retry_delay(error, attempt, base_delay=base_delay, max_delay=max_delay)
            if on_retry is not None:
                on_retry(attempt, error, delay)
            sleep(delay)
            attempt += 1
