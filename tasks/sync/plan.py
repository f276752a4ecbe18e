"""Decide, for one page of bills, what goes to Xero and what is recorded as skipped (pure).

The ledger snapshot makes a nothing-changed rerun free: a bill already COMPLETE at its version,
or skipped at its version for the same reason, produces no work and no write. A bill that
failed (``store.ledger.FAILED``: a missing account mapping, say) is never free: it is planned
again and, failing again, is a failure of this run too, with what a person needs to fix it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from config.integration import IntegrationConfig
from store.ledger import FAILED, Fate, LedgerEntry, Outcome
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.mapping import XeroMappings, map_bill
from tasks.mapping.lines import document_total
from tasks.mapping.selection import line_kept
from tasks.sync.failures import BillFailure
from tasks.sync.kinds import KINDS
from tasks.xero.contacts import contact_details
from tasks.xero.reference import XeroReference

Kind = Literal["invoice", "credit_note"]
NUMBER_FIELD = {name: kind.number_field for name, kind in KINDS.items()}
ID_FIELD = {name: kind.id_field for name, kind in KINDS.items()}
ACCOUNT_EXCLUDED = "account excluded by the integration (restricted or filtered out)"


@dataclass(frozen=True)
class Send:
    """One bill's document on its way to Xero."""

    bill_id: str
    bill_version: int
    account_id: str | None
    kind: Kind
    document: dict[str, Any]
    total: Any = None
    xero_id: str | None = None  # set: update this document in place
    lookup_first: bool = False  # an earlier attempt ended unknown: find its document first
    started_version: int | None = None  # the version that earlier attempt carried
    started_number: str | None = None  # the number it sent (None: none, Xero numbered it)
    withdraw_id: str | None = None  # the bill's document of the other kind: withdrawn first
    bill_date: str | None = None  # for the failures report
    contact: dict[str, Any] | None = None  # set: upsert this Xero contact first (contacts.py)
    attempts: int = 0  # earlier attempts at this bill (the ledger's): part of the batch's key

    @property
    def number(self) -> str | None:
        """The number the document is sent with (None: Xero numbers it, ``XERO_SEQUENCE``)."""
        value = self.document.get(NUMBER_FIELD[self.kind])
        return str(value) if value else None

    @property
    def reference(self) -> str | None:
        """The document's ``Reference`` (the bill id, unless it is numbered with the bill id)."""
        value = self.document.get("Reference")
        return str(value) if value else None

    def failure(self, outcome: Outcome, reason: str = "") -> BillFailure:
        """This bill, not sent for ``reason``: as the failures report names it."""
        currency = self.document.get("CurrencyCode")
        amount = None
        if self.total is not None:
            amount = -self.total if self.kind == "credit_note" else self.total
        return BillFailure(
            bill_id=self.bill_id,
            outcome=outcome.value,
            reason=reason,
            account_id=self.account_id,
            bill_date=self.bill_date,
            amount=amount,
            currency=currency,
            document=self.kind,
        )


@dataclass
class PagePlan:
    """What a page of bills comes to: documents to send, fates to record, failures, unchanged
    bills.
    """

    sends: list[Send] = field(default_factory=list)
    fates: list[Fate] = field(default_factory=list)  # to record: skips and failures
    failures: list[BillFailure] = field(default_factory=list)  # the fates that are failures
    unchanged: int = 0


def bill_version(bill: Bill) -> int:
    """The bill's version as the ledger keeps it (m3ter's, or 0 when it sends none)."""
    return int(bill.version or 0)


def unchanged(bill: Bill, entry: LedgerEntry | None) -> bool:
    """In Xero already at this version (or a later one): the bill costs nothing."""
    return (
        entry is not None
        and entry.outcome is Outcome.COMPLETE
        and entry.sent_version is not None
        and entry.sent_version >= bill_version(bill)
    )


def _same_skip(entry: LedgerEntry | None, version: int, outcome: Outcome, reason: str) -> bool:
    """Already recorded so at this version: nothing to do or write. Never so for a failure."""
    return (
        outcome not in FAILED
        and entry is not None
        and entry.bill_version == version
        and entry.outcome is outcome
        and (entry.reason or "") == reason
    )


def plan_page(
    config: IntegrationConfig,
    integration_id: str,
    bills: Iterable[Bill],
    accounts: Mapping[str, Account],
    mappings: Sequence[ExternalMapping] | XeroMappings,
    ledger: Mapping[str, LedgerEntry],
    xero: XeroReference | None = None,
) -> PagePlan:
    """``accounts`` holds the integration's allowed accounts only; others are skipped.

    The caller leaves out bills of accounts off the integration's explicit account list (they
    are another integration's business); a bill of a restricted or filtered-out account is
    recorded as SKIPPED. With the organisation's reference data (``xero``), a document in a
    currency it has not subscribed to is a failure here, before any call. A document that
    names its contact by number carries the contact's details, to be upserted first.
    """
    plan = PagePlan()
    index = XeroMappings.of(mappings)  # once per page: each bill's lines look up in it
    for bill in bills:
        version = bill_version(bill)
        entry = ledger.get(bill.id)
        if unchanged(bill, entry):
            plan.unchanged += 1
            continue
        account = accounts.get(bill.account_id or "")
        if account is None:
            reason = ACCOUNT_EXCLUDED
            if _same_skip(entry, version, Outcome.SKIPPED, reason):
                plan.unchanged += 1
            else:
                plan.fates.append(
                    Fate(
                        bill.id, version, Outcome.SKIPPED, account_id=bill.account_id, reason=reason
                    )
                )
            continue
        result = map_bill(config, integration_id, bill, account, index)
        if not result.mapped:
            outcome = Outcome(result.outcome.value)
            if _same_skip(entry, version, outcome, result.reason):
                plan.unchanged += 1
                continue
            _not_sent(plan, config, bill, account, outcome, result.reason)
            continue
        document = result.document or {}
        refusal = _refused_by(document, xero)
        if refusal is not None:
            _not_sent(plan, config, bill, account, *refusal)
            continue
        kind: Kind = result.kind or "invoice"
        same_kind = entry is not None and entry.document_type == kind
        # A bill whose sign changed since its document was made (an invoice that is now a
        # credit, or back): that document is deleted or voided before the new one is made.
        other_kind = entry is not None and bool(entry.xero_id) and not same_kind
        plan.sends.append(
            Send(
                bill_id=bill.id,
                bill_version=version,
                account_id=bill.account_id,
                kind=kind,
                document=document,
                total=result.total,
                xero_id=entry.xero_id if same_kind and entry else None,
                lookup_first=bool(entry and not entry.xero_id and entry.attempts > 0),
                started_version=entry.bill_version if entry else None,
                started_number=entry.invoice_number if entry else None,
                attempts=entry.attempts if entry else 0,
                withdraw_id=entry.xero_id if other_kind and entry else None,
                bill_date=_date(bill),
                contact=(
                    contact_details(account)
                    if "ContactNumber" in (document.get("Contact") or {})
                    else None
                ),
            )
        )
    return plan


def _not_sent(
    plan: PagePlan,
    config: IntegrationConfig,
    bill: Bill,
    account: Account,
    outcome: Outcome,
    reason: str,
) -> None:
    """Record that ``bill`` is not sent, for ``reason``; a failure is reported too."""
    fate = Fate(bill.id, bill_version(bill), outcome, account_id=bill.account_id, reason=reason)
    plan.fates.append(fate)
    if outcome in FAILED:
        plan.failures.append(_failure(config, bill, account, outcome, reason))


def _refused_by(document: dict[str, Any], xero: XeroReference | None) -> tuple[Outcome, str] | None:
    """What the organisation would refuse ``document`` for, known without a call: a currency it
    has not subscribed to, or an AUTHORISED document dated on or before its lock date (drafts and
    submitted ones it takes; sandbox/xero/document_rules.py cites the rule). None: nothing."""
    if xero is None:
        return None
    org = xero.organisation or "the Xero organisation"
    currency = str(document.get("CurrencyCode") or "")
    if currency and currency.upper() not in xero.currencies:
        return Outcome.CURRENCY_NOT_SUBSCRIBED, f"{org} is not subscribed to currency {currency}"
    if xero.lock_date is None or document.get("Status") != "AUTHORISED":
        return None
    raw = document.get("Date")
    try:
        day = dt.date.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    if day is None or day > xero.lock_date:
        return None
    lock = xero.lock_date.isoformat()
    return (
        Outcome.ACCOUNTING_PERIOD_CLOSED,
        f"dated {day.isoformat()}, on or before the lock date {lock} of {org}",
    )


def _date(bill: Bill) -> str | None:
    return bill.bill_date.isoformat() if bill.bill_date else None


def _failure(
    config: IntegrationConfig, bill: Bill, account: Account, outcome: Outcome, reason: str
) -> BillFailure:
    """A bill that failed before it had a document: its amount as the document would have."""
    currency = bill.currency or account.currency
    lines = [li for li in bill.line_items or () if line_kept(config, li)]
    try:
        amount = document_total(lines, currency)
    except ArithmeticError:  # an amount too large to round: the report says so without it
        amount = None
    return BillFailure(
        bill_id=bill.id,
        outcome=outcome.value,
        reason=reason,
        account_id=account.id,
        account_name=account.name,
        account_code=account.code,
        bill_date=_date(bill),
        amount=amount,
        currency=currency.upper() if currency else None,
    )


def idempotency_key(integration_id: str, sends: Sequence[Send], operation: str) -> str:
    """Same integration, bills, versions, earlier attempts and operation → the same key
    (≤ 128 chars).

    A retried batch replays Xero's first answer instead of creating documents twice. A later
    run's attempt at a bill (its ledger counts one more attempt) has a key of its own: Xero
    replays refusals too, and a bill refused before (an archived contact, a closed period) must
    reach Xero again once a person has fixed it there. An attempt that ended unknown is looked up
    (by the bill id, as its number or Reference) before it is sent again (``tasks.sync.unknown``),
    so no key needs to outlive a run.
    """
    parts = sorted(f"{s.bill_id}:{s.bill_version}:{s.attempts}" for s in sends)
    digest = hashlib.sha256("|".join([operation, *parts]).encode()).hexdigest()[:40]
    return f"{integration_id}:{operation}:{digest}"
