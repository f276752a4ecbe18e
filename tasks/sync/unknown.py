"""Find in Xero, by number, the documents of bills whose earlier attempt ended unknown.

A process that died after its call but before its write leaves the bills STARTED: the document
may exist. One found at the version that attempt carried is recorded COMPLETE and not sent
again; one found at an older version is updated in place; one not found is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from store.ledger import Fate, Outcome
from tasks.sync.kinds import KINDS
from tasks.sync.plan import Send
from tasks.sync.run import PostRun


def lookup(run: PostRun, sends: Sequence[Send]) -> dict[str, dict[str, Any]]:
    """The documents of ``sends`` that Xero has, by number."""
    found: dict[str, dict[str, Any]] = {}
    for kind in KINDS.values():
        numbers = [s.number for s in sends if s.kind == kind.name]
        if not numbers:
            continue
        find = kind.calls(run.client).find_by_number
        found.update(run.call(lambda f=find, n=numbers: f(n), f"look up {kind.name}s"))
    return found


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
        doc = found.get(send.number)
        if doc is None:
            continue
        xero_id = KINDS[send.kind].doc_id(doc)
        if send.started_version == send.bill_version:
            fate = run.fate(send, Outcome.COMPLETE, xero_id=xero_id)
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
