"""Find in Xero the documents of bills whose earlier attempt ended unknown, and tell a bill's own
document from another one holding the same number.

A process that died after its call but before its write leaves the bills STARTED: the document
may exist. One found at the version that attempt carried is recorded COMPLETE and not sent
again; one found at an older version is updated in place; one not found is created.

How a document is found: every document the sync makes carries its bill id, as its number or as
its ``Reference`` (``tasks.mapping.invoice``: the bill id is the number under ``BILL_ID``, for an
unnumbered bill under m3ter's numbering and for every document made before the option existed;
``Reference`` is the bill id under ``M3TER_INVOICE_NUMBER`` and ``XERO_SEQUENCE``). The ledger's
STARTED row keeps the number the attempt sent (None when it sent none), so the lookup follows
what that attempt carried: by number (``InvoiceNumbers=``, ``where=CreditNoteNumber==``) when it
was the bill id, else by ``where=Reference=="<bill id>"`` (Reference is one of the filters Xero
optimises for invoices; the spec's ``where`` takes any element for both kinds). The bill id and
not m3ter's number is searched for because the bill id is the same for every version and
attempt, while m3ter's number may arrive between two attempts and under Xero's sequence there is
no number before Xero answers; and because a number alone cannot tell the bill's own document
from someone else's with the same number (an invoice keyed in by hand, another system's), which
must never be overwritten (``owns``). Withdrawn documents (deleted, voided) are not a bill's
document: a bill whose sign changed twice has one of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from store.ledger import Fate, Outcome
from tasks.sync.kinds import KINDS
from tasks.sync.plan import Send
from tasks.sync.run import PostRun
from tasks.xero.invoices import WITHDRAWN


def by_number(send: Send) -> bool:
    """Whether the earlier attempt's document is found by its number: that attempt sent the
    bill id as the number. Otherwise its Reference carries the bill id."""
    return send.started_number == send.bill_id


def owns(send: Send, doc: dict[str, Any]) -> bool:
    """Whether ``doc`` is the bill's own document: it carries the bill id as its number or its
    Reference (another document with the same number is someone else's)."""
    number = KINDS[send.kind].doc_number(doc)
    return send.bill_id in (number, doc.get("Reference"))


def live(doc: dict[str, Any]) -> bool:
    """Whether the document still counts in Xero (neither deleted nor voided)."""
    return doc.get("Status") not in WITHDRAWN


def lookup(run: PostRun, sends: Sequence[Send]) -> dict[str, dict[str, Any]]:
    """The live documents of ``sends`` that Xero has, by bill id."""
    found: dict[str, dict[str, Any]] = {}
    for kind in KINDS.values():
        mine = [s for s in sends if s.kind == kind.name]
        if not mine:
            continue
        calls = kind.calls(run.client)
        numbered = [s.bill_id for s in mine if by_number(s)]
        referenced = [s.bill_id for s in mine if not by_number(s)]
        if numbered:
            label = f"look up {kind.name}s by number"
            found.update(run.call(lambda f=calls.find_by_number, n=numbered: f(n), label))
        if referenced:
            label = f"look up {kind.name}s by reference"
            found.update(run.call(lambda f=calls.find_by_reference, r=referenced: f(r), label))
    return {bill_id: doc for bill_id, doc in found.items() if live(doc)}


def resolve_unknown(run: PostRun, sends: list[Send]) -> list[Send]:
    """Record or turn into updates the bills of ``sends`` whose earlier attempt ended unknown
    and whose document Xero has; returns the bills still to send."""
    unknown = [s for s in sends if s.lookup_first and not s.xero_id]
    if not unknown:
        return sends
    found = lookup(run, unknown)
    done: list[Fate] = []
    resolved: dict[str, Send] = {}
    for send in unknown:
        doc = found.get(send.bill_id)
        if doc is None:
            continue
        kind = KINDS[send.kind]
        xero_id = kind.doc_id(doc)
        if send.started_version == send.bill_version:
            number = kind.doc_number(doc)
            fate = run.fate(send, Outcome.COMPLETE, xero_id=xero_id, invoice_number=number)
            done.append(fate)
            run.count(fate, update=False)
        else:
            resolved[send.bill_id] = replace(send, xero_id=xero_id, lookup_first=False)
    if done:
        run.log.info(
            "found %d document(s) of earlier unknown attempts in Xero: recorded, not re-sent",
            len(done),
        )
        run.record(done)
    finished = {f.bill_id for f in done}
    return [resolved.get(s.bill_id, s) for s in sends if s.bill_id not in finished]
