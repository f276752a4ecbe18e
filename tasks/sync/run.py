"""One ``TenantPoster.post``: what its steps share, and the fates of its bills.

Each fate goes into the report once and into the ledger with the next write: a batch's outcomes
are held and written with the next batch's STARTED rows, in one transaction (or at the end, or
with whatever else is recorded first), so that a call costs one ledger write instead of two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from config.settings import Settings
from store.ledger import Fate, Ledger, Outcome
from tasks.sync.calls import Log, XeroCalls
from tasks.sync.fates import PostReport, fate_for
from tasks.sync.plan import Send
from tasks.xero.invoices import XeroAccountingClient

T = TypeVar("T")


@dataclass
class PostRun:
    """The client, calls and ledger of one post, its report, and its fates not yet written."""

    settings: Settings
    client: XeroAccountingClient
    calls: XeroCalls
    ledger: Ledger
    integration_id: str
    tenant_id: str
    run_id: str | None
    log: Log
    batches: Iterator[int]  # the poster's batch numbers, for log lines
    given: dict[str, Send]  # the bills of this post, by id
    report: PostReport = field(default_factory=PostReport)
    reported: set[str] = field(default_factory=set)  # the bills whose fate is in the report
    unwritten: list[Fate] = field(default_factory=list)  # held for the next ledger write

    def call(self, fn: Callable[[], T], label: str) -> T:
        """``fn()`` as one of the tenant's calls, retried (``XeroCalls.call``)."""
        return self.calls.call(fn, label, self.report)

    def chunks(self, sends: Sequence[Send]) -> Iterator[list[Send]]:
        """``sends`` in batches of the configured size."""
        size = self.settings.sync_batch_size
        for start in range(0, len(sends), size):
            yield list(sends[start : start + size])

    def fate(self, send: Send, outcome: Outcome, **extra: Any) -> Fate:
        """The ledger's record of ``send`` ending in ``outcome``."""
        return fate_for(send, self.tenant_id, outcome, **extra)

    def count(self, fate: Fate, *, update: bool) -> None:
        """Put ``fate`` in the report (an update's COMPLETE counts as updated)."""
        self.reported.add(fate.bill_id)
        self.report.add(fate, update=update, send=self.given.get(fate.bill_id))

    def hold(self, fates: Sequence[Fate]) -> None:
        """Write ``fates`` with the next ledger write."""
        self.unwritten.extend(fates)

    def record(self, fates: Sequence[Fate] = ()) -> None:
        """Write ``fates`` and those held, in one transaction."""
        rows, self.unwritten = [*self.unwritten, *fates], []
        self.ledger.record(self.integration_id, rows, sync_run_id=self.run_id)

    def settle(self, fates: Sequence[Fate], *, update: bool) -> None:
        """Report ``fates`` and write them now."""
        for fate in fates:
            self.count(fate, update=update)
        self.record(fates)

    def fail(self, sends: Sequence[Send], outcome: Outcome, reason: str, *, update: bool) -> None:
        """Settle ``sends`` all ending in ``outcome`` for ``reason``, and log it."""
        fates = [self.fate(s, outcome, reason=reason) for s in sends]
        self.settle(fates, update=update)
        self.log.error("%d bill(s) %s: %s", len(fates), outcome.value, reason)

    def unreported(self, sends: Sequence[Send]) -> list[Send]:
        """The bills of ``sends`` that have no fate in the report yet."""
        return [s for s in sends if s.bill_id not in self.reported]
