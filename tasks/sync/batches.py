"""Post documents to Xero in batches, and record what Xero said of each.

Each batch is STARTED in the ledger (with its Idempotency-Key) before its call. A create that
Xero refuses because the number exists (an earlier run made it) is looked up and updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from config.errors import AuthError, Interrupted, PermanentError, RateLimitError, TransientError
from store.ledger import Fate, Outcome
from tasks.sync.calls import DailyLimitReached
from tasks.sync.fates import refused_outcome
from tasks.sync.kinds import KINDS
from tasks.sync.plan import Send, idempotency_key
from tasks.sync.run import PostRun
from tasks.sync.unknown import lookup
from tasks.xero.invoices import InvoiceResult

DUPLICATE_MARKER = "must be unique"


def post_all(run: PostRun, sends: Sequence[Send]) -> None:
    """Send ``sends`` in batches of one kind and one operation: invoices first, creates first."""
    for kind in KINDS.values():
        for update in (False, True):
            group = [s for s in sends if s.kind == kind.name and bool(s.xero_id) == update]
            for batch in run.chunks(group):
                post_batch(run, batch, update)


def post_batch(run: PostRun, batch: list[Send], update: bool) -> None:
    """Send one batch (all of one kind) and record each bill's fate.

    Xero refusing the credential or a spent daily limit records the batch and raises; so does
    an interruption, but ``TenantPoster.post`` records that. Any other error is the batch's fate.
    """
    if not batch:
        return
    number = next(run.batches)
    kind = KINDS[batch[0].kind]
    verb = "update" if update else "create"
    key = idempotency_key(run.integration_id, batch, f"{verb}-{kind.name}")
    label = f"batch {number} ({len(batch)} {kind.name}s to {verb})"
    run.record([run.fate(s, Outcome.STARTED, idempotency_key=key, attempt=True) for s in batch])
    documents = [_document(s) for s in batch]
    post = kind.calls(run.client).post
    try:
        results = run.call(lambda: post(documents, idempotency_key=key, update=update), label)
    except AuthError as exc:
        run.fail(batch, Outcome.AUTH_FAILED, str(exc), update=update)
        raise
    except DailyLimitReached as exc:
        run.fail(batch, Outcome.RATE_LIMIT_RETRY, str(exc), update=update)
        raise
    except Interrupted:
        raise  # post() records the batch and the rest INTERRUPTED (a lookup comes first)
    except RateLimitError as exc:
        run.fail(batch, Outcome.RATE_LIMIT_RETRY, str(exc), update=update)
        return
    except TransientError as exc:
        reason = f"outcome unknown after {run.settings.sync_max_attempts} attempts: {exc}"
        run.fail(batch, Outcome.ERROR, reason, update=update)
        return
    except PermanentError as exc:
        run.fail(batch, Outcome.ERROR, str(exc), update=update)
        return
    duplicates = _record_results(run, batch, results, update, label)
    if duplicates:
        _update_duplicates(run, duplicates, update)


def _record_results(
    run: PostRun, batch: list[Send], results: list[InvoiceResult], update: bool, label: str
) -> list[Send]:
    """Report each bill's fate, held for the next ledger write; returns the bills whose create
    Xero refused because the number exists."""
    by_number = {r.invoice_number: r for r in results if r.invoice_number}
    fates: list[Fate] = []
    duplicates: list[Send] = []
    for index, send in enumerate(batch):
        result = by_number.get(send.number) or (results[index] if index < len(results) else None)
        if result is None:
            fate = run.fate(send, Outcome.ERROR, reason="Xero's answer omitted this bill")
        elif result.ok:
            fate = run.fate(send, Outcome.COMPLETE, xero_id=result.invoice_id)
        elif not update and any(DUPLICATE_MARKER in m for m in result.errors):
            duplicates.append(send)
            continue
        else:
            fate = run.fate(send, refused_outcome(result), reason="; ".join(result.errors))
        fates.append(fate)
        run.count(fate, update=update)
    run.hold(fates)
    complete = sum(1 for f in fates if f.outcome is Outcome.COMPLETE)
    run.log.info(
        "%s: %d complete, %d refused%s",
        label,
        complete,
        len(fates) - complete,
        f", {len(duplicates)} already in Xero" if duplicates else "",
    )
    return duplicates


def _update_duplicates(run: PostRun, duplicates: list[Send], update: bool) -> None:
    """Look up the documents whose numbers Xero says exist, and update them in place."""
    found = lookup(run, duplicates)
    retry = [
        replace(s, xero_id=KINDS[s.kind].doc_id(found[s.number]))
        for s in duplicates
        if s.number in found
    ]
    missing = [s for s in duplicates if s.number not in found]
    if missing:
        reason = "Xero says the number exists but it cannot be found"
        run.fail(missing, Outcome.ERROR, reason, update=update)
    for batch in run.chunks(retry):
        post_batch(run, batch, True)


def _document(send: Send) -> dict[str, Any]:
    """The document to post: an update names the Xero document it changes."""
    if not send.xero_id:
        return send.document
    return {**send.document, KINDS[send.kind].id_field: send.xero_id}
