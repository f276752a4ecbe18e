"""A posting task's hold on a tenant's Prefect concurrency slot, on a real Prefect server: one
slot for all its calls, renewed before it can lapse, taken afresh if it did, freed at the end."""

from __future__ import annotations

import time
import uuid

from prefect.client.orchestration import get_client

from config.settings import Settings
from tasks.sync.limits import TenantSlots, concurrency_name, ensure_tenant_limits, rate_shape


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def active_slots(tenant_id: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(
            concurrency_name(tenant_id)
        ).active_slots


def test_one_slot_for_every_call_renewed_in_time_and_freed_at_the_end(prefect_server):
    settings, tenant, clock = Settings(), f"tenant-{uuid.uuid4()}", Clock()
    ensure_tenant_limits(settings, tenant)
    with TenantSlots(settings, tenant, clock=clock) as slots:
        for _ in range(3):
            with slots.call():
                assert active_slots(tenant) == 1
        first = slots._lease
        clock.now += TenantSlots.RENEW_AFTER_SECONDS + 1
        with slots.call():
            assert active_slots(tenant) == 1
        assert slots._lease is not None and first is not None
        assert slots._lease[0] == first[0] and slots._lease[1] == clock.now  # renewed, same lease
    assert active_slots(tenant) == 0


def test_a_lapsed_lease_is_replaced_before_the_next_call(prefect_server):
    settings, tenant, clock = Settings(), f"tenant-{uuid.uuid4()}", Clock()
    ensure_tenant_limits(settings, tenant)
    with TenantSlots(settings, tenant, clock=clock) as slots:
        with slots.call():
            pass
        assert slots._lease is not None
        lapsed = slots._lease[0]
        with get_client(sync_client=True) as client:  # as Prefect's repossessor would
            client.release_concurrency_slots_with_lease(lapsed)
        assert active_slots(tenant) == 0
        clock.now += TenantSlots.RENEW_AFTER_SECONDS + 1
        with slots.call():
            assert active_slots(tenant) == 1  # the call holds a slot again
        assert slots._lease is not None and slots._lease[0] != lapsed
    assert active_slots(tenant) == 0


def test_rate_tokens_are_asked_for_when_one_is_due_not_after_prefects_retry_after(
    prefect_server,
):
    """Once the bucket is empty, a token is asked for a refill time after the last grant (and
    retried a tenth of that later), never after Prefect's Retry-After, which grows with every
    refusal and left tokens unused: the tenant reached 80 % of its allowed rate."""
    settings = Settings(xero_minute_seconds=3)  # 55 tokens a 3-s minute: one per 55 ms
    tenant = f"tenant-{uuid.uuid4()}"
    ensure_tenant_limits(settings, tenant)
    interval = 1 / rate_shape(settings)[1] + 0.005
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    with TenantSlots(settings, tenant, sleep=sleep) as slots:
        for _ in range(25):  # the burst of 5, then 20 at the bucket's pace
            with slots.call():
                pass
    assert slots._refusals > 0, "the bucket never ran dry: the test did not test pacing"
    assert sleeps and max(sleeps) <= interval
    # Paced, most tokens come at the first ask: far fewer refusals than tokens.
    assert slots._refusals < 20
