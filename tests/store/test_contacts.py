"""The contacts the sync made sure of, per tenant: remembered, replaced, kept apart by tenant, on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from store.contacts import ContactCache, KnownContact
from store.db import make_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Engine:
    migrate(db_url)
    return make_engine(db_url)


def test_remembers_and_replaces_contacts_per_tenant(engine: Engine) -> None:
    cache = ContactCache(engine, clock=lambda: 1000.0)
    assert cache.get("t1", ["acc-1"]) == {}
    cache.put("t1", [KnownContact("acc-1", "c-1", "ACTIVE", "f1"),
                     KnownContact("acc-2", "c-2", "ARCHIVED", "f2")])  # fmt: skip
    cache.put("t2", [KnownContact("acc-1", "c-9", "ACTIVE", "f9")])
    got = cache.get("t1", ["acc-1", "acc-2", "acc-3"])
    assert got == {
        "acc-1": KnownContact("acc-1", "c-1", "ACTIVE", "f1"),
        "acc-2": KnownContact("acc-2", "c-2", "ARCHIVED", "f2"),
    }
    cache.put("t1", [KnownContact("acc-2", "c-2", "ACTIVE", "f3")])  # restored, details changed
    assert cache.get("t1", ["acc-2"])["acc-2"] == KnownContact("acc-2", "c-2", "ACTIVE", "f3")
    assert cache.get("t2", ["acc-1"])["acc-1"].contact_id == "c-9"


def test_many_numbers_are_read_in_chunks(engine: Engine) -> None:
    cache = ContactCache(engine)
    cache.put("t1", [KnownContact(f"acc-{n}", f"c-{n}", "ACTIVE", "f") for n in range(1200)])
    assert len(cache.get("t1", [f"acc-{n}" for n in range(1300)])) == 1200
