"""Sync leases on SQLite and PostgreSQL: one holder at a time, taken over only once lapsed,
renewed and released only by their holder, gone with their integration."""

from __future__ import annotations

import threading

import pytest

from store.db import make_engine, migrate
from store.integrations import IntegrationStore
from store.sync_leases import SyncLeases


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    store = IntegrationStore(engine)
    clock = Clock()
    return SyncLeases(engine, clock=clock), clock, store, store.create({"name": "Leased"}).id


def test_one_holder_at_a_time_until_the_lease_lapses(setup):
    leases, clock, _, iid = setup
    assert leases.acquire(iid, "run-a", 60) is None
    assert leases.acquire(iid, "run-a", 60) is None  # the holder may take it again
    other = leases.acquire(iid, "run-b", 60)
    assert other is not None and other.holder == "run-a" and other.expires_at == 1_060.0
    clock.now = 1_059.0
    assert leases.acquire(iid, "run-b", 60) is not None
    clock.now = 1_060.0  # run-a stopped renewing: its lease is over
    assert leases.acquire(iid, "run-b", 60) is None
    assert leases.get(iid).holder == "run-b"


def test_only_the_holder_renews_or_releases(setup):
    leases, clock, _, iid = setup
    assert leases.acquire(iid, "run-a", 60) is None
    clock.now = 1_050.0
    assert leases.renew(iid, "run-a", 60)
    assert not leases.renew(iid, "run-b", 60)
    clock.now = 1_100.0  # past the first end, within the renewed one
    assert leases.acquire(iid, "run-b", 60).holder == "run-a"
    leases.release(iid, "run-b")  # not theirs: nothing happens
    assert leases.get(iid).holder == "run-a"
    leases.release(iid, "run-a")
    assert leases.get(iid) is None
    assert leases.acquire(iid, "run-b", 60) is None


def test_a_lapsed_lease_taken_over_is_no_longer_renewable_by_its_old_holder(setup):
    leases, clock, _, iid = setup
    leases.acquire(iid, "run-a", 60)
    clock.now = 2_000.0
    assert leases.acquire(iid, "run-b", 60) is None
    assert not leases.renew(iid, "run-a", 60)
    leases.release(iid, "run-a")
    assert leases.get(iid).holder == "run-b"


def test_many_contenders_at_once_get_exactly_one_lease(setup, db_url):
    _, _, _, iid = setup
    leases = SyncLeases(make_engine(db_url))
    won: list[str] = []
    start = threading.Barrier(6)

    def contend(name: str) -> None:
        start.wait()
        if leases.acquire(iid, name, 60) is None:
            won.append(name)

    threads = [threading.Thread(target=contend, args=(f"run-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1, won
    assert leases.get(iid).holder == won[0]


def test_deleting_the_integration_deletes_its_lease(setup):
    leases, _, store, iid = setup
    leases.acquire(iid, "run-a", 60)
    store.delete(iid)
    assert leases.get(iid) is None
