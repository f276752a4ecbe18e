"""Xero's per-tenant limits held across every worker by Prefect global concurrency limits.

Two limits per tenant, created (or corrected) when a sync starts:

- ``xero-tenant-<id>``: at most ``xero_tenant_concurrency`` (5) calls in flight.
- ``xero-tenant-rate-<id>``: a token bucket (Prefect's slot decay) that can never exceed
  ``xero_tenant_calls_per_minute`` (60) in any sliding minute: a burst of ``B`` = the concurrency
  and a refill of ``(60 - B)`` per minute, since burst + refill × window ≤ 60 is what a sliding
  window demands. The cost is a steady rate of 55 rather than 60 a minute; Retry-After covers
  whatever slips through (another app, clock skew).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.exceptions import ObjectAlreadyExists

from config.errors import PermanentError
from config.settings import Settings
from tasks.http import prefect_ssl_context


def concurrency_name(tenant_id: str) -> str:
    return f"xero-tenant-{tenant_id}"


def rate_name(tenant_id: str) -> str:
    return f"xero-tenant-rate-{tenant_id}"


def rate_shape(settings: Settings) -> tuple[int, float]:
    """(burst slots, slots regained per second) of the per-tenant rate limit."""
    per_minute = settings.xero_tenant_calls_per_minute
    burst = max(1, min(settings.xero_tenant_concurrency, per_minute // 2))
    return burst, (per_minute - burst) / settings.xero_minute_seconds


def ensure_tenant_limits(settings: Settings, tenant_id: str) -> None:
    """Create the tenant's limits when missing, correct them when settings changed."""
    if not settings.xero_use_prefect_limits:
        return
    burst, decay = rate_shape(settings)
    wanted = (
        (concurrency_name(tenant_id), settings.xero_tenant_concurrency, None),
        (rate_name(tenant_id), burst, decay),
    )
    with get_client(httpx_settings={"verify": prefect_ssl_context()}, sync_client=True) as client:
        for name, limit, slot_decay in wanted:
            try:
                client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay)
            except ObjectAlreadyExists:  # another run created it between read and create
                client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay)


_local_slots: dict[str, threading.BoundedSemaphore] = {}
_local_lock = threading.Lock()


def _local_semaphore(tenant_id: str, size: int) -> threading.BoundedSemaphore:
    with _local_lock:
        semaphore = _local_slots.get(tenant_id)
        if semaphore is None:
            semaphore = _local_slots[tenant_id] = threading.BoundedSemaphore(size)
        return semaphore


@dataclass
class _Pacer:
    """One rate-token asker per tenant per process (the others wait on ``lock``, not at
    Prefect), and when the next token can be there (``next_at``, set after a refusal)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    next_at: float = 0.0


_pacers: dict[str, _Pacer] = {}


def _pacer(tenant_id: str) -> _Pacer:
    with _local_lock:
        return _pacers.setdefault(tenant_id, _Pacer())


LAPSED = (404, 410)  # Prefect's answers for a lease that expired or was repossessed


class TenantSlots:
    """Xero's per-tenant limits for the calls of one poster (one task: one call at a time).

    With Prefect limits on, over one kept-alive client (Prefect's ``concurrency()`` and
    ``rate_limit()`` helpers open a client and start a lease-renewal loop per acquire, which
    held a tenant far below its ceiling):

    - one of the tenant's concurrency slots, taken at the first call and held, with a lease,
      until the poster is done: the poster never has two calls in flight, so one slot per
      poster is "at most 5 calls at once" at a third of the API calls. The lease is short
      (``LEASE_SECONDS``) so that a killed worker's slots come back within about a minute
      (Prefect's repossessor runs every 15 s); before a call, a lease older than
      ``RENEW_AFTER_SECONDS`` is renewed (or taken afresh if it already lapsed), so every call
      starts with more than an HTTP timeout of lease left;
    - a rate token spent right before every call (the token bucket's guarantee needs the call
      to follow its token at once). One thread per tenant and process asks for it at a time.
      Once the bucket has refused, the next token is asked for a refill time after the last
      grant (Prefect's bucket drops the part of a token that refilled before a grant, so
      asking early costs a refusal and asking late loses time), and a refusal is retried a
      tenth of that later, not after Prefect's Retry-After: that header grows with every
      refusal the limit has seen and is jittered, so posters slept while tokens refilled
      unused and a tenant reached 80 % of the rate it was allowed (the bench's ceiling).

    A refused concurrency slot is waited out for its Retry-After, as Prefect's own helpers do.
    With Prefect limits off, a process-wide semaphore per tenant still keeps this process
    within the tenant's concurrency.
    """

    LEASE_SECONDS = 60.0
    RENEW_AFTER_SECONDS = 20.0

    def __init__(
        self,
        settings: Settings,
        tenant_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = settings.xero_use_prefect_limits
        self.tenant_id = tenant_id
        self._sleep = sleep
        self._clock = clock
        self._concurrency = settings.xero_tenant_concurrency
        # Prefect's bucket drops the fraction of a token that refilled before each grant, so a
        # token is asked for when a whole one is back: a refill time (and a little) after the
        # last grant, once a refusal showed the bucket empty; refused, again a tenth later.
        self._token_interval = 1.0 / rate_shape(settings)[1] + 0.005
        self._refusals = 0
        self._client: SyncPrefectClient | None = None
        self._lease: tuple[UUID, float] | None = None  # (lease id, taken at)
        self._entered = False

    def __enter__(self) -> TenantSlots:
        self._entered = True
        if self.enabled:
            self._client = get_client(
                httpx_settings={"verify": prefect_ssl_context()}, sync_client=True
            )
            self._client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._entered = False
        if self._client is not None:
            try:
                self._release()
            finally:
                self._client.__exit__(None, None, None)
                self._client = None

    @contextmanager
    def call(self) -> Iterator[None]:
        """Make room for one call to the tenant (a held slot and a fresh rate token)."""
        if not self._entered:
            raise RuntimeError("TenantSlots used outside its 'with' block")
        client = self._client
        if client is None:
            with _local_semaphore(self.tenant_id, self._concurrency):
                yield
            return
        if self._lease is not None and self._clock() - self._lease[1] > self.RENEW_AFTER_SECONDS:
            self._renew(client)
        if self._lease is None:
            body = self._increment(
                lambda: client.increment_concurrency_slots_with_lease(
                    [concurrency_name(self.tenant_id)], 1, "concurrency", self.LEASE_SECONDS
                )
            )
            self._lease = (UUID(body["lease_id"]), self._clock())
        pacer = _pacer(self.tenant_id)
        with pacer.lock:
            wait = min(pacer.next_at - self._clock(), self._token_interval)
            if wait > 0:
                self._sleep(wait)
            refusals = self._refusals
            self._increment(
                lambda: client.increment_concurrency_slots(
                    [rate_name(self.tenant_id)], 1, "rate_limit"
                ),
                retry_after=self._token_interval / 10,
            )
            # Refused, or paced and granted: the bucket is running dry, keep the pace. Granted
            # without waiting: it had tokens to spare (a burst), ask freely next time.
            paced = self._refusals > refusals or wait > 0
            pacer.next_at = self._clock() + self._token_interval if paced else 0.0
        yield

    def _renew(self, client: SyncPrefectClient) -> None:
        assert self._lease is not None
        try:
            client.renew_concurrency_lease(self._lease[0], self.LEASE_SECONDS)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in LAPSED:
                raise
            self._lease = None  # lapsed and repossessed: take a slot afresh
            return
        self._lease = (self._lease[0], self._clock())

    def _release(self) -> None:
        if self._lease is not None and self._client is not None:
            lease, self._lease = self._lease[0], None
            try:
                self._client.release_concurrency_slots_with_lease(lease)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code not in LAPSED:  # a lapsed lease is already free
                    raise

    def _increment(
        self, request: Callable[[], httpx.Response], *, retry_after: float | None = None
    ) -> Any:
        """Ask until granted; a 423 waits ``retry_after`` if given, else its Retry-After."""
        while True:
            try:
                body = request().json()
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:
                    raise
                self._refusals += 1
                wait = float(exc.response.headers.get("Retry-After", "0.1"))
                self._sleep(wait if retry_after is None else min(wait, retry_after))
                continue
            limits = body.get("limits", []) if isinstance(body, dict) else body
            if not limits:  # strict: a missing limit must not mean "unlimited"
                raise PermanentError(
                    f"Prefect has no concurrency limits for tenant {self.tenant_id}; "
                    "ensure_tenant_limits must run first"
                )
            return body
