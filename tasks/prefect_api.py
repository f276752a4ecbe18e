"""The Prefect API as a running sync sees it: reachable or not, and calls that must not stall.

Xero, m3ter and the ledger do not need Prefect, so a sync keeps posting while the Prefect server
restarts. What does need it: the progress artifact (best effort: skipped while the API is away,
each try quick), and the end of a flow run (its final state, its artifacts), which waits for the
API to come back, for ``prefect_api_wait_seconds`` at most, rather than let Prefect's client
give up after its own retries (about a minute) and lose the run's report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from tasks.http import prefect_ssl_context
from tasks.process import PROCESS
from tasks.sync import stopping

T = TypeVar("T")
log = logging.getLogger(__name__)


def _api_url() -> str | None:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url).rstrip("/") if url else None


def reachable(timeout: float = 2.0) -> bool:
    """Whether the Prefect API answers its health check now (no API URL: an in-process one)."""
    url = _api_url()
    if url is None:
        return True
    try:
        answer = httpx.get(f"{url}/health", timeout=timeout, verify=prefect_ssl_context())
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def wait_until_reachable(
    seconds: float,
    what: str,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    *,
    probe: Callable[[], bool] = reachable,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = stopping.pause,
) -> bool:
    """Wait up to ``seconds`` for the API before ``what``; False when it stayed away."""
    if probe():
        return True
    started = clock()
    (logger or log).warning(
        "the Prefect API is unreachable; waiting up to %.0f s for it before %s", seconds, what
    )
    while clock() - started < seconds:
        pause(1.0)
        if probe():
            (logger or log).info(
                "the Prefect API is back after %.0f s; %s", clock() - started, what
            )
            return True
    return False


@contextmanager
def quick_calls(timeout: float = 5.0) -> Iterator[None]:
    """Prefect client calls in this block fail at once when the API is away (no retries).

    What ``prefect.settings.context.temporary_settings`` does, with the quick settings made
    once per process and base settings: making them reads the environment and validates every
    Prefect setting, which cost a sync more CPU than its progress bar's calls (bench/README.md).
    """
    import prefect.context
    from prefect.settings import PREFECT_API_REQUEST_TIMEOUT, PREFECT_CLIENT_MAX_RETRIES

    context = prefect.context.get_settings_context()
    base = context.settings

    def make() -> tuple[Any, Any]:
        quick = base.copy_with_update(
            updates={PREFECT_CLIENT_MAX_RETRIES: 0, PREFECT_API_REQUEST_TIMEOUT: timeout}
        )
        return base, quick  # the base kept alive: its id stays its own

    _, quick = PROCESS.get_or_make(PROCESS.prefect_settings, (id(base), timeout), make)
    with prefect.context.SettingsContext(profile=context.profile, settings=quick):
        yield


class BestEffort:
    """Calls whose failure must not stop the work (a progress bar): tried quickly, and after a
    failure not tried again for ``quiet_seconds``; the first failure of a spell is logged."""

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        *,
        quiet_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger or log
        self._quiet = quiet_seconds
        self._clock = clock
        self._skip_until = 0.0
        self._failing = False

    def call(self, fn: Callable[[], T], what: str) -> T | None:
        """``fn()``, or ``None`` when it failed or failed lately (``what`` names it in the log)."""
        if self._clock() < self._skip_until:
            return None
        try:
            with quick_calls():
                result = fn()
        except Exception as exc:  # noqa: BLE001 (best effort: any failure only skips it)
            self._skip_until = self._clock() + self._quiet
            if not self._failing:
                self._log.warning("could not %s (%s); the sync goes on", what, exc)
            self._failing = True
            return None
        self._failing = False
        return result
