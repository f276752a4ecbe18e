"""The project database's engine on PostgreSQL: a connection used a moment ago is handed out
again without a ping (a round trip per ledger write saved); one that sat idle is pinged, and
one whose server side died meanwhile is replaced, so the caller never sees it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from store import db
from store.db import make_engine
from tests.conftest import _postgres_base_url


@pytest.fixture
def engine() -> Iterator[Engine]:
    made = make_engine(_postgres_base_url())
    yield made
    made.dispose()


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_just_used_is_not_pinged_an_idle_one_is(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.3)
    pings = _count_pings(engine, monkeypatch)
    for _ in range(20):
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    assert pings == []
    time.sleep(0.4)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert pings == [1]


def test_an_idle_connection_whose_server_side_died_is_replaced_unseen(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.3)
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    admin = create_engine(_postgres_base_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()
    time.sleep(0.4)
    with engine.connect() as conn:  # the dead connection is pinged, found gone and replaced
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
