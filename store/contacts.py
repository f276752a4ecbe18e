"""The Xero contacts the sync has made sure of, so an unchanged account costs no call.

Per tenant and contact number (the m3ter account id under the default identity): the contact's
id in Xero, its status there and a fingerprint of the details last sent. A run upserts only the
contacts whose details changed or that it has not seen, and those last seen archived (a person
may have restored them since).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from store.schema import xero_contacts as t

CHUNK = 500  # numbers per SELECT ... IN (...)


@dataclass(frozen=True)
class KnownContact:
    """A contact as the last upsert left it."""

    contact_number: str
    contact_id: str
    status: str
    fingerprint: str


class ContactCache:
    """Contacts per tenant, by contact number."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def get(self, tenant_id: str, numbers: Iterable[str]) -> dict[str, KnownContact]:
        """The known contacts among ``numbers``, by number."""
        wanted = list(dict.fromkeys(numbers))
        found: dict[str, KnownContact] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                rows = conn.execute(
                    select(t).where(
                        t.c.tenant_id == tenant_id,
                        t.c.contact_number.in_(wanted[start : start + CHUNK]),
                    )
                )
                for row in rows:
                    found[row.contact_number] = KnownContact(
                        row.contact_number, row.contact_id, row.status, row.fingerprint
                    )
        return found

    def put(self, tenant_id: str, contacts: Iterable[KnownContact]) -> None:
        """Remember these contacts (replacing what was known of them)."""
        rows = [
            {
                "tenant_id": tenant_id,
                "contact_number": c.contact_number,
                "contact_id": c.contact_id,
                "status": c.status,
                "fingerprint": c.fingerprint,
                "updated_at": self.clock(),
            }
            for c in contacts
        ]
        if not rows:
            return
        stmt = self._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.tenant_id, t.c.contact_number],
            set_={
                "contact_id": stmt.excluded.contact_id,
                "status": stmt.excluded.status,
                "fingerprint": stmt.excluded.fingerprint,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
