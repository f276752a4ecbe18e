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

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.exceptions import ObjectAlreadyExists

from config.errors import PermanentError
from config.settings import Settings


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
    with get_client(sync_client=True) as client:
        for name, limit, slot_decay in wanted:
            try:
                client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay)
            except ObjectAlreadyExists:  # another run created it between read and create
                client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay)


class TenantSlots:
    """Acquires the tenant's two Prefect limits for each Xero call over one kept-alive client.

    Prefect's ``concurrency()``/``rate_limit()`` helpers open a new API client (TLS context,
    connection) for every acquire and release and start a lease-renewal loop per call: ~3 fresh
    connections per Xero call, which held a tenant far below its ceiling. Here the same server
    endpoints are called on one client: the concurrency slot is taken with a lease (freed by the
    server if this process dies mid-call; ``LEASE_SECONDS`` outlasts any one HTTP call, so no
    renewal is needed), the rate token is spent, then the lease is released. A 423 answer is
    waited out for its Retry-After, as Prefect's own helpers do.
    """

    LEASE_SECONDS = 300.0

    def __init__(
        self, settings: Settings, tenant_id: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.enabled = settings.xero_use_prefect_limits
        self.tenant_id = tenant_id
        self._sleep = sleep
        self._client: SyncPrefectClient | None = None

    def __enter__(self) -> TenantSlots:
        if self.enabled:
            self._client = get_client(sync_client=True)
            self._client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None

    @contextmanager
    def call(self) -> Iterator[None]:
        """Hold a concurrency slot and spend a rate token for one call to the tenant."""
        client = self._client
        if client is None:
            if self.enabled:
                raise RuntimeError("TenantSlots used outside its 'with' block")
            yield
            return
        lease = self._increment(
            lambda: client.increment_concurrency_slots_with_lease(
                [concurrency_name(self.tenant_id)], 1, "concurrency", self.LEASE_SECONDS
            )
        )
        try:
            self._increment(
                lambda: client.increment_concurrency_slots(
                    [rate_name(self.tenant_id)], 1, "rate_limit"
                )
            )
            yield
        finally:
            client.release_concurrency_slots_with_lease(UUID(lease["lease_id"]))

    def _increment(self, request: Callable[[], httpx.Response]) -> Any:
        while True:
            try:
                body = request().json()
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:
                    raise
                self._sleep(float(exc.response.headers.get("Retry-After", "0.1")))
                continue
            limits = body.get("limits", []) if isinstance(body, dict) else body
            if not limits:  # strict: a missing limit must not mean "unlimited"
                raise PermanentError(
                    f"Prefect has no concurrency limits for tenant {self.tenant_id}; "
                    "ensure_tenant_limits must run first"
                )
            return body
