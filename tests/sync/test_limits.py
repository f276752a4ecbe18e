"""A posting task's hold on a tenant's Prefect concurrency slot, on a real Prefect server: one
slot for all its calls, renewed before it can lapse, taken afresh if it did, freed at the end."""

from __future__ import annotations

import threading
import time
import uuid

from prefect.client.orchestration import get_client

from config.settings import Settings
from tasks.sync.limits import (
    TenantSlots,
    _handoff,
    concurrency_name,
    ensure_tenant_limits,
    rate_shape,
)


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
    """A token is asked for a refill time after the last grant's ask (refused, again a few
    milliseconds later), never after Prefect's Retry-After, a jittered refill time that left
    tokens unused: the tenant reached 80 % of its allowed rate."""
    settings = Settings(xero_minute_seconds=3)  # 59 tokens a 3-s minute: one per 51 ms
    tenant = f"tenant-{uuid.uuid4()}"
    ensure_tenant_limits(settings, tenant)
    assert rate_shape(settings)[0] == 1  # one token: every call after the first is paced
    interval = 1 / rate_shape(settings)[1] + TenantSlots.TOKEN_MARGIN_SECONDS
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    with TenantSlots(settings, tenant, sleep=sleep) as slots:
        for _ in range(25):
            with slots.call():
                pass
    assert len(sleeps) >= 24, "calls were not paced: the bucket never ran dry"
    assert max(sleeps) <= interval
    # Paced from the granted ask, most tokens come at the first ask.
    assert slots._refusals < 12


def test_a_poster_that_is_done_hands_its_slot_to_one_that_waits(prefect_server):
    """A waiting poster gets the slot another poster of the process frees at once, instead of
    sleeping out Prefect's Retry-After (seconds) while the slot sits unused."""
    settings, tenant = Settings(xero_tenant_concurrency=1), f"tenant-{uuid.uuid4()}"
    ensure_tenant_limits(settings, tenant)
    second_lease: list[object] = []

    def second() -> None:
        with TenantSlots(settings, tenant) as slots, slots.call():
            second_lease.append(slots._lease[0] if slots._lease else None)
            second_lease.append(active_slots(tenant))

    with TenantSlots(settings, tenant) as first:
        with first.call():
            pass
        assert first._lease is not None
        held = first._lease[0]
        other = threading.Thread(target=second)
        other.start()
        deadline = time.monotonic() + 10
        while _handoff(tenant)._waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # until the second poster, refused by Prefect, waits
    other.join(30)
    assert second_lease == [held, 1]  # the same slot, handed over, not a second one
    assert active_slots(tenant) == 0  # nobody waited for it after that: released to Prefect
