"""The one retry policy of the project's HTTP calls, and where it is applied.

What: only ``TransientError`` is retried (429, 5xx, 408, timeouts, dropped connections);
permanent and auth errors pass straight through. A wait honours ``Retry-After`` (plus up to
``retry_after_spread``, 10 % by default, so parallel callers do not return in lock-step);
without one, exponential backoff with jitter (``retry_delay``). A ``Retry-After`` longer than
``max_retry_after`` is not waited for: the error is raised at once for the caller to reschedule.
A 401 is not a retry: ``tasks.http.BearerAuth`` replays it once with a fresh token.

Where, each in one place:

- m3ter reads: inside ``M3terClient`` (every call is a GET, safe to repeat; its callers, the
  bill feed and the account lookup, have nothing to add per attempt). Each retry is a warning on
  the client's logger.
- Xero Accounting calls of a sync: by the sync's poster (``tasks.sync.calls.XeroCalls``)
  around each call, so every attempt takes a tenant call slot, is a log line on the task, and a
  retried batch keeps its ``Idempotency-Key`` (Xero replays its first answer). The Xero client
  itself never loops. A token refresh happens inside such a call, so it is retried with it.
- Xero identity (consent's code exchange, connections, revoke): not retried; the flow that asked
  fails with the error, and a person runs it again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from config.errors import TransientError

T = TypeVar("T")
OnRetry = Callable[[int, TransientError, float], None]
"""``on_retry(attempt, error, delay)``: told before each wait (attempts count from 1)."""


def retry_delay(
    error: TransientError,
    attempt: int,
    *,
    base_delay: float,
    max_delay: float,
    retry_after_spread: float = 0.1,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): the server's ``Retry-After`` and up
    to ``retry_after_spread`` of it more, else half to all of
    ``min(max_delay, base_delay * 2 ** (attempt - 1))``."""
    if error.retry_after is not None:
        return error.retry_after * (1 + retry_after_spread * rng())
    cap = min(max_delay, base_delay * 2 ** (attempt - 1))
    return cap / 2 + cap / 2 * rng()


def with_retries(
    fn: Callable[[], T],
    *,
    max_attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    retry_after_spread: float = 0.1,
    max_retry_after: float | None = None,
    give_up: tuple[type[TransientError], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
    on_retry: OnRetry | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying ``TransientError`` up to ``max_attempts`` calls.

    ``on_retry(attempt, error, delay)`` runs before each wait. The last error is re-raised, as
    is at once one whose ``retry_after`` exceeds ``max_retry_after`` or that is one of
    ``give_up`` (transient, but not worth another attempt now: a spent daily limit, a wait that
    already lasted its deadline).
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    attempt = 1
    while True:
        try:
            return fn()
        except TransientError as error:
            if attempt >= max_attempts or isinstance(error, give_up):
                raise
            if max_retry_after is not None and (error.retry_after or 0) > max_retry_after:
                raise
            delay = retry_delay(
                error,
                attempt,
                base_delay=base_delay,
                max_delay=max_delay,
                retry_after_spread=retry_after_spread,
            )
            if on_retry is not None:
                on_retry(attempt, error, delay)
            sleep(delay)
            attempt += 1
