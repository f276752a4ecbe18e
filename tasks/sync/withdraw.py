"""Withdraw the old documents of bills whose sign changed, before their new ones are made.

Xero must never hold both an invoice and a credit note for one bill: the old document (of the
other kind) is deleted, or voided when Xero refuses to delete it (AUTHORISED). A bill whose old
document Xero keeps (paid, in a locked period) is not sent: its fate says why, and the ledger
still points at that document so that the next run tries again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from config.errors import AuthError, PermanentError, RateLimitError, TransientError
from store.ledger import Fate, Outcome
from tasks.sync.calls import DailyLimitReached
from tasks.sync.fates import kept_fate, refused_outcome
from tasks.sync.kinds import KINDS, DocumentKind
from tasks.sync.plan import Send, idempotency_key
from tasks.sync.run import PostRun
from tasks.xero.invoices import InvoiceResult

WITHDRAWN = ("DELETED", "VOIDED")  # DRAFT and SUBMITTED documents delete; AUTHORISED ones void


def withdraw(run: PostRun, sends: list[Send]) -> list[Send]:
    """Withdraw the old documents of the bills of ``sends`` whose sign changed; returns the
    bills to send, those going on as creates of their new kind."""
    changed = [s for s in sends if s.withdraw_id]
    if not changed:
        return sends
    stopped: dict[str, Fate] = {}
    for new_kind in KINDS.values():
        for batch in run.chunks([s for s in changed if s.kind == new_kind.name]):
            stopped.update(_withdraw_batch(run, batch, new_kind.other))
    if stopped:
        run.settle(list(stopped.values()), update=True)
    gone = len(changed) - len(stopped)
    if gone:
        run.log.info("withdrew %d document(s) of bills whose sign changed", gone)
    return [
        replace(s, withdraw_id=None) if s.withdraw_id else s
        for s in sends
        if s.bill_id not in stopped
    ]


def _withdraw_batch(run: PostRun, batch: list[Send], old: DocumentKind) -> dict[str, Fate]:
    """Withdraw the old documents of ``batch``, all of kind ``old``: DELETED first, then VOIDED
    for those Xero refused; a document still refused is looked up, as an earlier run may have
    withdrawn it already. Returns the bills that stop here."""
    calls = old.calls(run.client)
    left = batch
    refusals: dict[str, InvoiceResult | None] = {}
    withdrawn: set[str] = set()  # bills whose old document is gone: they go on
    try:
        for status in WITHDRAWN:
            if not left:
                break
            key = idempotency_key(run.integration_id, left, f"{status.lower()}-{old.name}")
            documents = [{old.id_field: s.withdraw_id, "Status": status} for s in left]
            results = run.call(
                lambda d=documents, k=key: calls.post(d, idempotency_key=k, update=True),
                f"{status.lower()} {len(left)} {old.name}s of bills whose sign changed",
            )
            by_id = {r.invoice_id: r for r in results if r.invoice_id}
            refused = []
            for index, send in enumerate(left):
                result = by_id.get(send.withdraw_id) or (
                    results[index] if index < len(results) else None
                )
                if result is None or not result.ok:
                    refused.append(send)
                    refusals[send.bill_id] = result
                else:
                    withdrawn.add(send.bill_id)
            left = refused
        stopped: dict[str, Fate] = {}
        for send in left:
            label = f"look up {old.name} {send.withdraw_id}"
            doc = run.call(lambda i=send.withdraw_id: calls.get(i), label)
            if doc.get("Status") in WITHDRAWN:
                withdrawn.add(send.bill_id)
                continue
            stopped[send.bill_id] = _refused(run, send, refusals.get(send.bill_id), doc)
        return stopped
    except (AuthError, DailyLimitReached) as exc:
        outcome = Outcome.AUTH_FAILED if isinstance(exc, AuthError) else Outcome.RATE_LIMIT_RETRY
        run.settle([_kept(run, s, outcome, str(exc), None) for s in batch], update=True)
        raise
    except (TransientError, PermanentError) as exc:
        outcome = Outcome.RATE_LIMIT_RETRY if isinstance(exc, RateLimitError) else Outcome.ERROR
        return {
            s.bill_id: _kept(run, s, outcome, str(exc), None)
            for s in batch
            if s.bill_id not in withdrawn
        }


def _refused(run: PostRun, send: Send, result: InvoiceResult | None, doc: dict[str, Any]) -> Fate:
    """The fate of a bill whose old document Xero refused to withdraw, and still holds."""
    why = "; ".join(result.errors) if result else "Xero's answer omitted it"
    outcome = refused_outcome(result) if result else Outcome.ERROR
    return _kept(run, send, outcome, why, doc.get("Status"))


def _kept(run: PostRun, send: Send, outcome: Outcome, why: str, status: str | None) -> Fate:
    """The fate of a bill whose old document could not be withdrawn: recorded against that
    document (its kind and id), so the next run tries to withdraw it again."""
    state = f" ({status})" if status else ""
    old_kind = KINDS[send.kind].other_name
    reason = f"its {old_kind} {send.withdraw_id}{state} could not be withdrawn: {why}"
    return kept_fate(run.fate(send, outcome, reason=reason), send)
