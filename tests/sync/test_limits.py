"""A poster's hold on its tenant's shared limits (project database, no Prefect): one slot for
all its calls, renewed in time, given back at the end; a dead poster's slot back after its
lease; every wait ends, with a message that says what it waited for; a stopping process ends
them at once."""

from __future__ import annotations

import threading
import time

import pytest

from config.errors import Stopping, WaitExpired
from config.settings import Settings
from store.db import make_engine, migrate
from store.tenant_limits import TenantLimits
from tasks.sync import stopping
from tasks.sync.limits import TenantSlots, _handoff, call_interval


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'limits.db'}"
    migrate(url)
    return make_engine(url)


def _limits(engine, settings: Settings, tenant: str, clock=time.time) -> TenantLimits:
    limits = TenantLimits(engine, clock=clock)
    limits.ensure(tenant, settings.xero_tenant_concurrency)
    return limits


def test_one_slot_for_every_call_renewed_in_time_and_given_back_at_the_end(engine):
    settings, clock = Settings(xero_slot_lease_seconds=60), Clock()
    limits = _limits(engine, settings, "t-one", clock)
    with TenantSlots(settings, "t-one", limits=limits, clock=clock, pause=lambda s: None) as slots:
        for _ in range(3):
            clock.now += 1.1  # past the rate interval: no pause needed
            with slots.call():
                assert limits.held("t-one") == 1
        clock.now += 21  # past a third of the lease: renewed before the next call
        with slots.call():
            assert limits.held("t-one") == 1
        clock.now += 50  # 50 s after the renewal, 71 s after the take: still ours
        assert limits.held("t-one") == 1
    assert limits.held("t-one") == 0


def test_a_dead_posters_slots_come_back_after_the_lease_and_a_wait_ends_naming_them(engine):
    """The wedge of issue 14: slots held by nobody alive. Here they come back after the
    lease; until then a poster waits at most ``xero_limit_wait_seconds`` and says why."""
    settings = Settings(
        xero_tenant_concurrency=2, xero_slot_lease_seconds=60, xero_limit_wait_seconds=5
    )
    clock = Clock()
    limits = _limits(engine, settings, "t-dead", clock)
    for n in range(2):
        assert limits.take_slot("t-dead", f"dead-run-{n}", 60) is not None

    def pause(seconds: float) -> None:
        clock.now += seconds

    with TenantSlots(settings, "t-dead", limits=limits, clock=clock, pause=pause) as slots:
        # The slot wait polls the database; the fake clock moves by each poll's timeout.
        original_wait = _handoff("t-dead").wait
        _handoff("t-dead").wait = lambda seconds: pause(seconds)  # type: ignore[method-assign]
        try:
            with pytest.raises(WaitExpired) as refused, slots.call():
                pass
            assert "waited 5 s for one of the tenant's 2 call slots" in str(refused.value)
            assert "dead-run-0" in str(refused.value) and "t-dead" in str(refused.value)
            clock.now += 60  # the dead run's leases lapse
            with slots.call():
                assert limits.held("t-dead") == 1
        finally:
            _handoff("t-dead").wait = original_wait  # type: ignore[method-assign]
    assert limits.held("t-dead") == 0


def test_calls_are_granted_an_interval_apart_across_processes(engine):
    settings = Settings(xero_minute_seconds=3)  # 60 calls a 3-s minute: one per ~51 ms
    interval = call_interval(settings)
    limits = _limits(engine, settings, "t-rate")
    starts: list[float] = []
    lock = threading.Lock()

    def poster() -> None:
        # Each poster as its own process would: its own store object and pacer lock.
        own = TenantLimits(engine)
        with TenantSlots(settings, "t-rate", limits=own) as slots:
            for _ in range(10):
                with slots.call(), lock:
                    starts.append(time.time())

    threads = [threading.Thread(target=poster) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    starts.sort()
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 30
    assert min(gaps) >= interval * 0.9  # the clock is read before the grant, not after
    assert limits.held("t-rate") == 0


def test_a_stopping_process_ends_a_wait_at_once(engine):
    settings = Settings(xero_tenant_concurrency=1, xero_limit_wait_seconds=600)
    limits = _limits(engine, settings, "t-stop")
    limits.take_slot("t-stop", "someone", 600)
    outcome: list[BaseException] = []

    def poster() -> None:
        try:
            with TenantSlots(settings, "t-stop", limits=limits) as slots, slots.call():
                pass
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=poster)
    thread.start()
    time.sleep(0.5)
    began = time.monotonic()
    stopping.request_stop("SIGTERM (test)")
    try:
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - began < 2
        assert len(outcome) == 1 and isinstance(outcome[0], Stopping)
        assert "SIGTERM (test)" in str(outcome[0])
    finally:
        stopping.reset()


def test_a_poster_that_is_done_hands_its_slot_to_one_that_waits(engine):
    settings = Settings(xero_tenant_concurrency=1)
    limits = _limits(engine, settings, "t-hand")
    seen: list[object] = []

    def second() -> None:
        with TenantSlots(settings, "t-hand", limits=limits) as slots, slots.call():
            seen.append(slots._slot.number if slots._slot else None)
            seen.append(limits.held("t-hand"))

    with TenantSlots(settings, "t-hand", limits=limits) as first:
        with first.call():
            pass
        assert first._slot is not None
        held = first._slot.number
        other = threading.Thread(target=second)
        other.start()
        deadline = time.monotonic() + 10
        while _handoff("t-hand")._waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # until the second poster waits
    other.join(30)
    assert seen == [held, 1]  # the same slot, handed over, not a second one
    assert limits.held("t-hand") == 0  # given back once the second was done
