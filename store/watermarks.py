"""How far each integration has read m3ter's bills, so a sync reads only what changed.

A watermark is the newest ``dtLastModified`` among the bills a completed read saw, with a
fingerprint of everything that decided which of those bills the integration sends (its
configuration, credential and allowed accounts). The next sync reads only bills modified at or
after the watermark minus an overlap (m3ter stamps a change before it is visible to readers;
the overlap re-reads that window, which costs nothing since the ledger says "unchanged").
A different fingerprint means the old read decided with other rules: read everything again.
Failed bills do not depend on the watermark: the sync retries them from the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from store.schema import sync_watermarks as t


@dataclass(frozen=True)
class Watermark:
    """How far an integration has read, under which rules."""

    fingerprint: str
    modified_through: float  # epoch seconds

    def read_from(self, overlap_seconds: float) -> float:
        """Where the next read starts: the watermark less the overlap (see above)."""
        return self.modified_through - overlap_seconds


class Watermarks:
    """The integrations' watermarks."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def get(self, integration_id: str) -> Watermark | None:
        """The integration's watermark, or None before its first whole read."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.integration_id == integration_id)).first()
        return Watermark(row.fingerprint, row.modified_through) if row else None

    def advance(self, integration_id: str, fingerprint: str, modified_through: float) -> None:
        """Store the watermark; never moves it back for the same fingerprint (two runs may
        finish out of order)."""
        stmt = self._insert(t).values(
            integration_id=integration_id,
            fingerprint=fingerprint,
            modified_through=modified_through,
            updated_at=self.clock(),
        )
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.integration_id],
            set_={
                "modified_through": case(
                    (
                        (t.c.fingerprint == ex.fingerprint)
                        & (t.c.modified_through > ex.modified_through),
                        t.c.modified_through,
                    ),
                    else_=ex.modified_through,
                ),
                "fingerprint": ex.fingerprint,
                "updated_at": ex.updated_at,
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def clear(self, integration_id: str) -> None:
        """Forget the watermark: the next sync reads every bill."""
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.integration_id == integration_id))
