"""Xero's per-tenant limits in the project database, on SQLite and PostgreSQL: never more slots
than the tenant has, a dead holder's slot back once its lease lapses, grants an interval apart."""

from __future__ import annotations

import pytest

from store.db import make_engine, migrate
from store.tenant_limits import TenantLimits, TenantLimitsMissing


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limits(db_url):
    migrate(db_url)
    clock = Clock()
    store = TenantLimits(make_engine(db_url), clock=clock)
    store.ensure("t1", 3)
    return store, clock


def test_no_more_slots_than_the_tenant_has_and_a_freed_one_is_taken_again(limits):
    store, _ = limits
    taken = [store.take_slot("t1", f"h{n}", 60) for n in range(3)]
    assert sorted(taken) == [0, 1, 2]
    assert store.take_slot("t1", "h3", 60) is None
    assert store.held("t1") == 3 and sorted(store.holders("t1")) == ["h0", "h1", "h2"]
    store.release_slot("t1", taken[1], "h1")
    assert store.take_slot("t1", "h3", 60) == taken[1]
    store.release_slot("t1", taken[0], "someone else")  # not theirs: nothing happens
    assert store.held("t1") == 3


def test_a_dead_holders_slot_comes_back_when_its_lease_lapses(limits):
    store, clock = limits
    for n in range(3):
        store.take_slot("t1", f"dead{n}", 60)
    clock.now += 59
    assert store.take_slot("t1", "alive", 60) is None
    clock.now += 2  # past the lease: nobody renewed it
    assert store.held("t1") == 0
    slot = store.take_slot("t1", "alive", 60)
    assert slot is not None
    assert not store.renew_slot("t1", slot, "dead0", 60)  # the dead holder lost it
    assert store.renew_slot("t1", slot, "alive", 60)


def test_grants_come_an_interval_apart_wherever_they_are_asked(limits):
    store, clock = limits
    other_process = TenantLimits(store.engine, clock=clock)
    assert store.take_token("t1", 1.0) == 0.0
    assert other_process.take_token("t1", 1.0) == pytest.approx(1.0)
    clock.now += 0.4
    assert store.take_token("t1", 1.0) == pytest.approx(0.6)
    clock.now += 0.6
    assert other_process.take_token("t1", 1.0) == 0.0
    assert store.take_token("t1", 1.0) == pytest.approx(1.0)


def test_a_lowered_concurrency_drops_the_free_slots_above_it(limits):
    store, _ = limits
    store.take_slot("t1", "h0", 60)
    store.ensure("t1", 1)
    assert store.take_slot("t1", "h1", 60) is None  # slot 0 is held; 1 and 2 are gone
    store.ensure("t1", 2)
    assert store.take_slot("t1", "h1", 60) == 1


def test_a_tenant_without_rows_is_refused_not_unlimited(limits):
    store, _ = limits
    assert store.take_slot("nobody", "h", 60) is None
    with pytest.raises(TenantLimitsMissing):
        store.take_token("nobody", 1.0)
    assert store.known("t1") and not store.known("nobody")
