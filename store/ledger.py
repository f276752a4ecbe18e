"""The ledger: per integration and bill, the version sent, the Xero id, the outcome and why.

Outcomes mirror m3ter's integration run statuses, plus SKIPPED (with its reason) and
MISSING_ACCOUNT_MAPPING. A row is written STARTED before a bill goes to Xero, so an attempt
that ends unknown (timeout, dropped connection, killed process) is visible to the next run,
which looks its document up before posting again.

``invoice_number`` is the number on the bill's document: the one Xero answered with once the
document is made (Xero's own, under the ``XERO_SEQUENCE`` numbering); on a STARTED row, the one
that attempt sent, None when it sent none. The next run finds an unknown attempt's document by
that number when it was the bill id, else by the bill id in its Reference (``tasks.sync.unknown``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Engine, case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from store.schema import bill_ledger as t


class Outcome(StrEnum):
    """A bill's fate in the ledger: m3ter's own statuses, plus STARTED, SKIPPED,
    MISSING_ACCOUNT_MAPPING, INTERRUPTED, and the Xero organisation refusing the bill before any
    call (CURRENCY_NOT_SUBSCRIBED, CONTACT_ARCHIVED: a person fixes it in Xero, then reruns).
    """

    STARTED = "STARTED"
    COMPLETE = "COMPLETE"
    ERROR = "ERROR"
    AUTH_FAILED = "AUTH_FAILED"
    RATE_LIMIT_RETRY = "RATE_LIMIT_RETRY"
    INVOICE_ALREADY_PAID = "INVOICE_ALREADY_PAID"
    ACCOUNTING_PERIOD_CLOSED = "ACCOUNTING_PERIOD_CLOSED"
    SKIPPED = "SKIPPED"
    MISSING_ACCOUNT_MAPPING = "MISSING_ACCOUNT_MAPPING"
    INTERRUPTED = "INTERRUPTED"  # the run stopped before sending it (config.errors.Interrupted)
    CURRENCY_NOT_SUBSCRIBED = "CURRENCY_NOT_SUBSCRIBED"  # the organisation has not the currency
    CONTACT_ARCHIVED = "CONTACT_ARCHIVED"  # the account's Xero contact is archived


#: Failed, and another attempt may succeed without a person acting in Xero first (paid and
#: locked-period bills need one: move the lock date, remove the payment).
RETRYABLE = frozenset(
    {
        Outcome.STARTED,
        Outcome.ERROR,
        Outcome.AUTH_FAILED,
        Outcome.RATE_LIMIT_RETRY,
        Outcome.MISSING_ACCOUNT_MAPPING,
        Outcome.INTERRUPTED,
        Outcome.CURRENCY_NOT_SUBSCRIBED,
        Outcome.CONTACT_ARCHIVED,
    }
)
#: Every outcome of a bill that did not reach Xero: what ``rerun_failed_syncs`` sends again.
FAILED = RETRYABLE | {Outcome.INVOICE_ALREADY_PAID, Outcome.ACCOUNTING_PERIOD_CLOSED}

#: A failed outcome, as a form's dropdown offers it (``rerun_failed_syncs(outcomes=...)``).
FailedOutcome = Literal[tuple(sorted(o.value for o in FAILED))]  # type: ignore[valid-type]


@dataclass(frozen=True)
class LedgerEntry:
    """A bill's row in the ledger: what was last sent of it, where it is in Xero, how it ended."""

    integration_id: str
    bill_id: str
    account_id: str | None
    bill_version: int
    sent_version: int | None
    document_type: str | None
    invoice_number: str | None
    xero_id: str | None
    tenant_id: str | None
    outcome: Outcome
    reason: str | None
    attempts: int
    idempotency_key: str | None
    updated_at: float


@dataclass(frozen=True)
class Fate:
    """What happened to one bill in one step; ``None`` fields keep what the row had."""

    bill_id: str
    bill_version: int
    outcome: Outcome
    account_id: str | None = None
    reason: str | None = None
    document_type: str | None = None
    invoice_number: str | None = None
    xero_id: str | None = None
    tenant_id: str | None = None
    idempotency_key: str | None = None
    attempt: bool = False


class Ledger:
    """Reads and writes of the ledger; batched, upserting, portable SQLite / PostgreSQL."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def record(
        self, integration_id: str, fates: Sequence[Fate], *, sync_run_id: str | None = None
    ) -> None:
        """Upsert the fate of each bill (one statement per batch)."""
        if not fates:
            return
        now = self.clock()
        rows = [
            {
                "integration_id": integration_id,
                "bill_id": f.bill_id,
                "account_id": f.account_id,
                "bill_version": f.bill_version,
                "sent_version": f.bill_version if f.outcome is Outcome.COMPLETE else None,
                "document_type": f.document_type,
                "invoice_number": f.invoice_number,
                "xero_id": f.xero_id,
                "tenant_id": f.tenant_id,
                "outcome": f.outcome.value,
                "reason": f.reason,
                "attempts": 1 if f.attempt else 0,
                "idempotency_key": f.idempotency_key,
                "sync_run_id": sync_run_id,
                "first_seen_at": now,
                "updated_at": now,
                "sent_at": now if f.outcome is Outcome.COMPLETE else None,
            }
            for f in fates
        ]
        with self.engine.begin() as conn:
            conn.execute(_upsert(self.engine.dialect.name), rows)

    def snapshot(self, integration_id: str) -> dict[str, LedgerEntry]:
        """Every row of one integration, by bill id: one query per sync, not one per bill."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.integration_id == integration_id))
            return {row.bill_id: _entry(row) for row in rows}

    def for_bills(self, integration_id: str, bill_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        """The rows of one page's bills: memory follows the page, not the ledger's size."""
        ids = list(bill_ids)
        if not ids:
            return {}
        query = select(t).where(t.c.integration_id == integration_id, t.c.bill_id.in_(ids))
        with self.engine.connect() as conn:
            return {row.bill_id: _entry(row) for row in conn.execute(query)}

    def bill_ids(
        self, integration_id: str, outcomes: Iterable[Outcome], *, reason: str | None = None
    ) -> list[tuple[str, str | None]]:
        """(bill id, account id) of one integration's rows with one of ``outcomes`` (and this
        ``reason``, if given): ids only, however many rows."""
        query = (
            select(t.c.bill_id, t.c.account_id)
            .where(
                t.c.integration_id == integration_id,
                t.c.outcome.in_([o.value for o in outcomes]),
            )
            .order_by(t.c.bill_id)
        )
        if reason is not None:
            query = query.where(t.c.reason == reason)
        with self.engine.connect() as conn:
            return [(row.bill_id, row.account_id) for row in conn.execute(query)]

    def count(self, integration_id: str) -> int:
        """Bills the integration's ledger holds."""
        query = select(func.count()).where(t.c.integration_id == integration_id)
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def get(self, integration_id: str, bill_id: str) -> LedgerEntry | None:
        """The bill's row, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t).where(t.c.integration_id == integration_id, t.c.bill_id == bill_id)
            ).first()
        return _entry(row) if row else None

    def entries(
        self,
        *,
        integration_ids: Iterable[str] | None = None,
        bill_ids: Iterable[str] | None = None,
        outcomes: Iterable[Outcome] | None = None,
        since: float | None = None,
    ) -> list[LedgerEntry]:
        """Rows by integration, bill, outcome and time recorded (each filter optional)."""
        query = select(t).order_by(t.c.integration_id, t.c.bill_id)
        if integration_ids is not None:
            query = query.where(t.c.integration_id.in_(list(integration_ids)))
        if bill_ids is not None:
            query = query.where(t.c.bill_id.in_(list(bill_ids)))
        if outcomes is not None:
            query = query.where(t.c.outcome.in_([o.value for o in outcomes]))
        if since is not None:
            query = query.where(t.c.updated_at >= since)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]


@functools.cache
def _upsert(dialect: str) -> Any:
    """The ledger's upsert, built once per dialect: the statement object is reused, so
    SQLAlchemy's cache key for it is computed once too (building it per write was a third of
    the write's CPU)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(t)
    ex = stmt.excluded
    keep = _coalesce_with_existing
    other_kind = ex.document_type.is_not(None) & (ex.document_type != t.c.document_type)
    return stmt.on_conflict_do_update(
        index_elements=[t.c.integration_id, t.c.bill_id],
        set_={
            "account_id": keep(ex.account_id, t.c.account_id),
            "bill_version": ex.bill_version,
            "sent_version": keep(ex.sent_version, t.c.sent_version),
            "document_type": keep(ex.document_type, t.c.document_type),
            # A STARTED row says what that attempt sent, a number or none (Xero numbers it):
            # the next run looks its document up accordingly. Other fates keep what was known.
            "invoice_number": case(
                (ex.outcome == Outcome.STARTED.value, ex.invoice_number),
                else_=keep(ex.invoice_number, t.c.invoice_number),
            ),
            # A document of another kind (a bill whose sign changed) is another document:
            # its id replaces the old one's, even before Xero has given it one.
            "xero_id": case((other_kind, ex.xero_id), else_=keep(ex.xero_id, t.c.xero_id)),
            "tenant_id": keep(ex.tenant_id, t.c.tenant_id),
            "outcome": ex.outcome,
            "reason": ex.reason,
            "attempts": t.c.attempts + ex.attempts,
            "idempotency_key": keep(ex.idempotency_key, t.c.idempotency_key),
            "sync_run_id": keep(ex.sync_run_id, t.c.sync_run_id),
            "updated_at": ex.updated_at,
            "sent_at": keep(ex.sent_at, t.c.sent_at),
        },
    )


def _coalesce_with_existing(new: Any, old: Any) -> Any:
    return func.coalesce(new, old)


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        integration_id=row.integration_id,
        bill_id=row.bill_id,
        account_id=row.account_id,
        bill_version=row.bill_version,
        sent_version=row.sent_version,
        document_type=row.document_type,
        invoice_number=row.invoice_number,
        xero_id=row.xero_id,
        tenant_id=row.tenant_id,
        outcome=Outcome(row.outcome),
        reason=row.reason,
        attempts=row.attempts,
        idempotency_key=row.idempotency_key,
        updated_at=row.updated_at,
    )
