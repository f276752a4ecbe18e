"""One run at a time posts an integration's bills: a lease per integration, in the database.

Two runs that sync the same integration at once (a schedule and a person's rerun, or two
``sync_bills`` over overlapping integrations on two workers) would both plan the same bills
from the same ledger and both post them; Xero would refuse the second create as a duplicate
number and the second run would update the document in place: one invoice, written twice. A
lease makes the second run wait for the first and then find the bills done.

The lease lapses unless renewed, so a run whose process is killed holds it for at most
``seconds`` more. Acquire is one statement (insert, or take over a lapsed lease), atomic on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from store.schema import sync_leases as t


@dataclass(frozen=True)
class Lease:
    """Who holds an integration's lease, since when, until when."""

    holder: str
    acquired_at: float
    expires_at: float


class SyncLeases:
    """The integration leases: one run at a time posts an integration's bills."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def acquire(self, integration_id: str, holder: str, seconds: float) -> Lease | None:
        """Take the integration's lease for ``seconds``: ``None`` when it is ours now, else the
        lease that someone else holds."""
        now = self.clock()
        stmt = self._insert(t).values(
            integration_id=integration_id, holder=holder, acquired_at=now, expires_at=now + seconds
        )
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.integration_id],
            set_={"holder": ex.holder, "acquired_at": ex.acquired_at, "expires_at": ex.expires_at},
            where=(t.c.expires_at <= now) | (t.c.holder == holder),
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            row = conn.execute(select(t).where(t.c.integration_id == integration_id)).first()
        if row is None or row.holder == holder:
            return None
        return Lease(row.holder, row.acquired_at, row.expires_at)

    def renew(self, integration_id: str, holder: str, seconds: float) -> bool:
        """Push the lease's end ``seconds`` from now; ``False`` when it is no longer ours."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(t)
                .where((t.c.integration_id == integration_id) & (t.c.holder == holder))
                .values(expires_at=self.clock() + seconds)
            ).rowcount
        return moved == 1

    def release(self, integration_id: str, holder: str) -> None:
        """Give the lease back (a no-op when it is someone else's by now)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(t).where((t.c.integration_id == integration_id) & (t.c.holder == holder))
            )

    def get(self, integration_id: str) -> Lease | None:
        """The integration's lease, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.integration_id == integration_id)).first()
        return Lease(row.holder, row.acquired_at, row.expires_at) if row else None
