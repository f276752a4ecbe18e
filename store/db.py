"""Engines and migrations for the project database (SQLite by default, PostgreSQL at scale)."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError, OperationalError

from config.errors import StoreUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine tuned for several processes and threads sharing one database.

    SQLite gets WAL and a busy timeout, so concurrent writers wait rather than fail.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        event.listen(engine, "handle_error", _unavailable)
        return engine
    engine = create_engine(url)
    _ping_when_idle(engine)
    event.listen(engine, "handle_error", _unavailable)
    return engine


#: A pooled connection idle this long is pinged before it is handed out again.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling, for connections that sat idle only: a connection that
    was back in the pool for under ``PING_AFTER_IDLE_SECONDS`` was just used, so pinging it
    too (what ``pool_pre_ping`` does, on every checkout) only added a round trip to every
    ledger write. A ping that fails makes the pool replace the connection (SQLAlchemy's
    ``checkout`` event recipe); a server lost in the last second fails the statement, which
    ``_unavailable`` turns into ``StoreUnavailable`` as before."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 (any failure: the connection is gone)
            raise DisconnectionError(f"the pooled connection did not answer a ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("the pooled connection did not answer a ping")


def _unavailable(context: ExceptionContext) -> None:
    """A database that does not answer raises ``StoreUnavailable`` (an ``Interrupted``: the
    sync stops cleanly and the next run finishes), not a driver error a caller cannot place.
    A failed pre-ping is left to the pool, which reconnects."""
    if context.is_pre_ping:
        return
    if context.is_disconnect or isinstance(context.sqlalchemy_exception, OperationalError):
        raise _unanswered(context.original_exception) from context.original_exception


def _unanswered(error: BaseException) -> StoreUnavailable:
    first = str(error).strip().splitlines()
    return StoreUnavailable(
        f"the project database did not answer: {first[0] if first else 'no reason given'}"
    )


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the database at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (idempotent)."""
    try:
        command.upgrade(alembic_config(url), "head")
    except OperationalError as exc:  # alembic's own engine: no handle_error of ours
        raise _unanswered(exc.orig if exc.orig is not None else exc) from exc
