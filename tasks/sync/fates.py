"""What a poster reports, and the ledger's record of a bill's fate (sent, refused or not sent)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from config.errors import AuthError, Interrupted
from store.ledger import Fate, Outcome
from tasks.sync.failures import BillFailure
from tasks.sync.kinds import KINDS
from tasks.sync.plan import Send
from tasks.xero.invoices import InvoiceResult


@dataclass
class PostReport:
    """What happened to the documents one poster handled."""

    created: int = 0
    updated: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[BillFailure] = field(default_factory=list)
    calls: int = 0
    #: Set when the poster stopped early (Xero refused the credential, or the day's calls are
    #: spent): (outcome, Xero's words). Every bill it was given has its fate all the same.
    stop: tuple[Outcome, str] | None = None

    def add(self, fate: Fate, *, update: bool, send: Send | None = None) -> None:
        """Count one bill's fate (a failure keeps what the report names of it)."""
        self.outcomes[fate.outcome.value] += 1
        if fate.outcome is Outcome.COMPLETE:
            if update:
                self.updated += 1
            else:
                self.created += 1
        elif send is not None:
            self.failures.append(send.failure(fate.outcome, fate.reason or ""))
        else:
            self.failures.append(
                BillFailure(
                    fate.bill_id, fate.outcome.value, fate.reason or "", account_id=fate.account_id
                )
            )

    def merge(self, other: PostReport) -> None:
        """Add another poster's report to this one."""
        self.created += other.created
        self.updated += other.updated
        self.outcomes.update(other.outcomes)
        self.failures.extend(other.failures)
        self.calls += other.calls
        self.stop = self.stop or other.stop


def fate_for(send: Send, tenant_id: str, outcome: Outcome, **extra: Any) -> Fate:
    """The ledger's record of ``send`` ending in ``outcome``. Its number is the one Xero gave
    (``invoice_number=``, once Xero has answered: under ``XERO_SEQUENCE`` only Xero knows it),
    else the one sent; a STARTED row's says how the next run finds the document
    (``tasks.sync.unknown``)."""
    return Fate(
        bill_id=send.bill_id,
        bill_version=send.bill_version,
        outcome=outcome,
        account_id=send.account_id,
        document_type=send.kind,
        invoice_number=extra.pop("invoice_number", None) or send.number,
        xero_id=extra.pop("xero_id", None) or send.xero_id,
        tenant_id=tenant_id,
        **extra,
    )


def unsent_fate(send: Send, tenant_id: str, outcome: Outcome, reason: str) -> Fate:
    """The ledger's record of ``send`` not attempted (deferred, or its credential refused).

    A bill whose sign changed keeps pointing at its old document, which is still there.
    """
    fate = fate_for(send, tenant_id, outcome, reason=reason)
    if not send.withdraw_id:
        return fate
    return kept_fate(fate, send)


def kept_fate(fate: Fate, send: Send) -> Fate:
    """``fate`` recorded against the old document of ``send`` (its sign changed), which stays.

    The ledger then still points at that document, so the next run withdraws it first.
    """
    old_kind = KINDS[send.kind].other_name
    return replace(fate, document_type=old_kind, xero_id=send.withdraw_id)


def interrupted_reason(why: str) -> str:
    """The ledger's reason for a bill an interrupted run did not send."""
    return f"not sent, the run was interrupted: {why}"


def stopped(exc: Exception) -> tuple[Outcome, str]:
    """The outcome and ledger reason of bills a poster did not send because of ``exc``."""
    if isinstance(exc, AuthError):
        return Outcome.AUTH_FAILED, f"not sent: {exc}"
    if isinstance(exc, Interrupted):
        return Outcome.INTERRUPTED, interrupted_reason(str(exc))
    return Outcome.RATE_LIMIT_RETRY, f"deferred to the next run: {exc}"


# Xero's refusal of a document for an archived contact (sandbox/xero/document_rules.py cites it).
ARCHIVED_CONTACT = "contact with the specified contact details has been archived"


def refused_outcome(result: InvoiceResult) -> Outcome:
    """The outcome of a document Xero refused: a closed period, a paid document, an archived
    contact (archived in Xero after the sync last made sure of it), or an error."""
    if any(ARCHIVED_CONTACT in e.lower() for e in result.errors):
        return Outcome.CONTACT_ARCHIVED
    reason = (result.not_editable_reason or "").lower()
    if "lock date" in reason:
        return Outcome.ACCOUNTING_PERIOD_CLOSED
    if reason:
        return Outcome.INVOICE_ALREADY_PAID
    return Outcome.ERROR
