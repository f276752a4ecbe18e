"""Xero's per-tenant limits in the project database, shared by every process that posts.

Xero allows a tenant 5 calls in flight and 60 a minute across every app instance, so every
worker must draw from one pool. The pool lives here, beside the ledger, rather than in the
orchestrator: a Prefect server restart forgot its in-memory slot leases while its database
kept the slots counted as taken, which wedged a tenant for good (issue 14). Here a slot is a
row with a holder and a lease; a holder that dies stops renewing and its slot is free again
when the lease lapses, so a leak lasts at most one lease, whatever else restarts.

- Slots: ``slots`` rows per tenant (0 … n-1). Taking one is a conditional update of a free or
  lapsed row, one statement (atomic on SQLite and PostgreSQL alike).
- Rate: one row per tenant, ``next_at``. A grant is a conditional update that moves it one
  interval past the grant, so grants are at least an interval apart wherever they are asked.

Times are the asking process's wall clock, as for the integration lease (store/sync_leases.py):
the machines of a cluster keep NTP time, and a skew of milliseconds moves a grant by as much.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from store.schema import tenant_rate as r
from store.schema import tenant_slots as s


class TenantLimitsMissing(LookupError):
    """The tenant's rows were never created (``ensure`` runs before a sync's first call)."""


class TenantLimits:
    """Xero's per-tenant call slots and call rate, as rows every process shares."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def ensure(self, tenant_id: str, slots: int) -> None:
        """Create the tenant's slot and rate rows when missing; a lowered ``slots`` drops the
        rows above it that nobody holds (a held one goes once it is given back or lapses)."""
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(s)
                .values(
                    [
                        {"tenant_id": tenant_id, "slot": n, "holder": None, "expires_at": 0.0}
                        for n in range(slots)
                    ]
                )
                .on_conflict_do_nothing()
            )
            conn.execute(
                delete(s).where(
                    (s.c.tenant_id == tenant_id)
                    & (s.c.slot >= slots)
                    & (s.c.holder.is_(None) | (s.c.expires_at <= now))
                )
            )
            conn.execute(
                self._insert(r).values(tenant_id=tenant_id, next_at=0.0).on_conflict_do_nothing()
            )

    def take_slot(self, tenant_id: str, holder: str, seconds: float) -> int | None:
        """A free (or lapsed) slot of the tenant, held by ``holder`` for ``seconds``; ``None``
        when all are held."""
        now = self.clock()
        free = (s.c.tenant_id == tenant_id) & (s.c.holder.is_(None) | (s.c.expires_at <= now))
        with self.engine.connect() as conn:
            candidates = conn.execute(select(s.c.slot).where(free).order_by(s.c.slot)).scalars()
            numbers = list(candidates)
        for number in numbers:  # each its own statement: a lost race moves to the next slot
            with self.engine.begin() as conn:
                taken = conn.execute(
                    update(s)
                    .where(free & (s.c.slot == number))
                    .values(holder=holder, expires_at=now + seconds)
                ).rowcount
            if taken:
                return int(number)
        return None

    def renew_slot(self, tenant_id: str, slot: int, holder: str, seconds: float) -> bool:
        """Push the slot's lease ``seconds`` from now; ``False`` when it is no longer ours
        (it lapsed and someone took it)."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(s)
                .where((s.c.tenant_id == tenant_id) & (s.c.slot == slot) & (s.c.holder == holder))
                .values(expires_at=self.clock() + seconds)
            ).rowcount
        return moved == 1

    def release_slot(self, tenant_id: str, slot: int, holder: str) -> None:
        """Give the slot back (a no-op when it is someone else's by now)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(s)
                .where((s.c.tenant_id == tenant_id) & (s.c.slot == slot) & (s.c.holder == holder))
                .values(holder=None, expires_at=0.0)
            )

    def take_token(self, tenant_id: str, interval: float) -> float:
        """Spend the tenant's next call: ``0.0`` when granted (the next is due ``interval``
        from now), else the seconds until one is due."""
        now = self.clock()
        with self.engine.begin() as conn:
            granted = conn.execute(
                update(r)
                .where((r.c.tenant_id == tenant_id) & (r.c.next_at <= now))
                .values(next_at=now + interval)
            ).rowcount
            if granted:
                return 0.0
            next_at = conn.execute(select(r.c.next_at).where(r.c.tenant_id == tenant_id)).scalar()
        if next_at is None:  # strict: a missing limit must not mean "unlimited"
            raise TenantLimitsMissing(f"no call rate row for tenant {tenant_id}")
        return max(float(next_at) - now, 0.001)

    def held(self, tenant_id: str) -> int:
        """Slots held now (by a holder whose lease has not lapsed)."""
        now = self.clock()
        with self.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(s)
                .where(
                    (s.c.tenant_id == tenant_id) & s.c.holder.is_not(None) & (s.c.expires_at > now)
                )
            ).scalar()
        return int(count or 0)

    def holders(self, tenant_id: str) -> list[str]:
        """Who holds the tenant's slots now (for a message that says what a wait waited on)."""
        now = self.clock()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.c.holder).where(
                    (s.c.tenant_id == tenant_id) & s.c.holder.is_not(None) & (s.c.expires_at > now)
                )
            ).scalars()
            return [str(h) for h in rows]

    def known(self, tenant_id: str) -> bool:
        """Whether a sync created the tenant's rows."""
        with self.engine.connect() as conn:
            return (
                conn.execute(select(r.c.tenant_id).where(r.c.tenant_id == tenant_id)).first()
                is not None
            )
