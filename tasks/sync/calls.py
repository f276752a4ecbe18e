"""Calls from a poster to one Xero tenant: inside its call slots, retried, each logged.

Every attempt takes a slot (the task's, or with shared limits off this process's) and counts in
the report as a call; transient errors are retried with ``tasks.retries`` (Retry-After
honoured), and a retried batch keeps its Idempotency-Key so Xero replays its first answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from config.errors import Interrupted, RateLimitError, TransientError
from config.settings import Settings
from tasks.retries import with_retries
from tasks.sync.fates import PostReport
from tasks.sync.limits import TenantSlots, xero_tenant

T = TypeVar("T")
Log = logging.Logger | logging.LoggerAdapter[Any]


class DailyLimitReached(TransientError):
    """Xero's daily limit for the tenant is spent: the rest waits for the next run."""


class XeroCalls:
    """Makes one tenant's calls for a poster: within its limits, retried on transient errors."""

    def __init__(
        self,
        settings: Settings,
        tenant_id: str,
        *,
        log: Log,
        sleep: Callable[[float], None],
        slots: TenantSlots | None,
        organisation: str = "",
    ) -> None:
        if slots is None and settings.xero_shared_limits:
            raise ValueError(
                "a poster under shared limits needs its task's TenantSlots (one slot for all its "
                "calls); without them each call would take a slot of its own"
            )
        self.settings = settings
        self.tenant_id = tenant_id
        self.where = xero_tenant(organisation, tenant_id)
        self.log = log
        self.sleep = sleep
        self.slots = slots

    def call(self, fn: Callable[[], T], label: str, report: PostReport) -> T:
        """``fn()``, retried; ``DailyLimitReached`` when Xero says the day's calls are spent."""

        def attempt() -> T:
            with self._slot():
                report.calls += 1  # a call that reaches Xero (a wait that expired is none)
                try:
                    return fn()
                except RateLimitError as exc:
                    if (exc.problem or "").lower().startswith("day"):
                        raise DailyLimitReached(
                            f"Xero's daily limit for {self.where} is spent",
                            retry_after=exc.retry_after,
                        ) from exc
                    raise

        def on_retry(number: int, error: TransientError, delay: float) -> None:
            self.log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.2f s",
                label,
                number,
                self.settings.sync_max_attempts,
                error,
                delay,
            )

        return with_retries(
            attempt,
            max_attempts=self.settings.sync_max_attempts,
            base_delay=self.settings.sync_retry_base_seconds,
            max_delay=self.settings.sync_retry_max_seconds,
            give_up=(DailyLimitReached, Interrupted),  # the day is spent; waited, or stopping
            sleep=self.sleep,
            on_retry=on_retry,
        )

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """Room for one call: the task's slot, or (shared limits off) this process's."""
        if self.slots is not None:
            with self.slots.call():
                yield
            return
        with TenantSlots(self.settings, self.tenant_id) as slots, slots.call():
            yield
