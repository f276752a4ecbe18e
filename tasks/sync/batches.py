"""Post documents to Xero in batches, and record what Xero said of each.

Each batch is STARTED in the ledger (with its Idempotency-Key) before its call. A create that
Xero refuses because the number exists is looked up: the bill's own document (an earlier run
made it) is updated; another one holding the number (keyed in by hand, another system's) is
left alone and the bill fails, saying so.

Xero's answer is matched to the bills by what each element carries, not by its place: Xero
does not promise to answer in the order sent (results came back in date order after one change,
https://github.com/XeroAPI/Xero-NetStandard/issues/532; the order is undocumented and Xero's
SDK team referred the question to Xero support, https://github.com/XeroAPI/Xero-NetStandard/
issues/586). Every document carries its bill id as its number or its Reference, and Xero echoes
both, refusals included (https://github.com/XeroAPI/Xero-Java/issues/171 shows a refused
element with its Reference), so an element is the bill's whose number or Reference is the bill
id, or whose number is the one sent; a batch of one takes its one answer.
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
from tasks.sync.unknown import live, owns
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


def match_results(
    batch: Sequence[Send], results: Sequence[InvoiceResult]
) -> dict[str, InvoiceResult]:
    """Xero's verdict on each bill of ``batch`` it answered for, by bill id (module docstring)."""
    by_value: dict[str, InvoiceResult] = {}
    for result in results:
        for value in (result.invoice_number, result.reference):
            if value:
                by_value.setdefault(value, result)
    matched: dict[str, InvoiceResult] = {}
    for send in batch:
        result = by_value.get(send.bill_id) or (by_value.get(send.number) if send.number else None)
        if result is None and len(batch) == len(results) == 1:
            result = results[0]
        if result is not None:
            matched[send.bill_id] = result
    return matched


def _record_results(
    run: PostRun, batch: list[Send], results: list[InvoiceResult], update: bool, label: str
) -> list[Send]:
    """Report each bill's fate, held for the next ledger write; returns the bills whose create
    Xero refused because the number exists."""
    matched = match_results(batch, results)
    fates: list[Fate] = []
    duplicates: list[Send] = []
    for send in batch:
        result = matched.get(send.bill_id)
        if result is None:
            fate = run.fate(send, Outcome.ERROR, reason="Xero's answer omitted this bill")
        elif result.ok:
            fate = run.fate(
                send,
                Outcome.COMPLETE,
                xero_id=result.invoice_id,
                invoice_number=result.invoice_number,
            )
        elif not update and send.number and any(DUPLICATE_MARKER in m for m in result.errors):
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
    """Look up the documents whose numbers Xero says exist: update the bill's own in place;
    one that is not the bill's, or no longer counts, stops the bill with the reason."""
    found: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, number) -> document
    for kind in KINDS.values():
        numbers = [str(s.number) for s in duplicates if s.kind == kind.name]
        if numbers:
            find = kind.calls(run.client).find_by_number
            label = f"look up {kind.name}s by number"
            docs = run.call(lambda f=find, n=numbers: f(n), label)
            found.update({(kind.name, number): doc for number, doc in docs.items()})
    retry: list[Send] = []
    stopped: dict[str, list[Send]] = {}
    for send in duplicates:
        doc = found.get((send.kind, str(send.number)))
        kind = KINDS[send.kind]
        if doc is None:
            why = "Xero says the number exists but it cannot be found"
        elif not owns(send, doc):
            why = (
                f"Xero already has {kind.noun} {send.number}, not this bill's (neither its number "
                f"nor its Reference is the bill id {send.bill_id}); rename that {kind.noun} in "
                "Xero, or choose another invoice numbering for the integration"
            )
        elif not live(doc):
            why = (
                f"this bill's {kind.noun} {send.number} is {doc.get('Status')} in Xero and "
                "keeps its number"
            )
        else:
            retry.append(replace(send, xero_id=kind.doc_id(doc)))
            continue
        stopped.setdefault(why, []).append(send)
    for why, sends in stopped.items():
        run.fail(sends, Outcome.ERROR, why, update=update)
    for batch in run.chunks(retry):
        post_batch(run, batch, True)


def _document(send: Send) -> dict[str, Any]:
    """The document to post: an update names the Xero document it changes."""
    if not send.xero_id:
        return send.document
    return {**send.document, KINDS[send.kind].id_field: send.xero_id}
