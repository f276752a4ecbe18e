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

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency, rate_limit
from prefect.exceptions import ObjectAlreadyExists

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


@contextmanager
def xero_call_slot(settings: Settings, tenant_id: str) -> Iterator[None]:
    """Hold a concurrency slot and spend a rate token for one call to the tenant."""
    if not settings.xero_use_prefect_limits:
        yield
        return
    with concurrency(concurrency_name(tenant_id), occupy=1, strict=True):
        rate_limit(rate_name(tenant_id), occupy=1, strict=True)
        yield
