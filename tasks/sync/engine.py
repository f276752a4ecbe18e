"""One integration's sync, page by page: read, plan, record, post; every bill ends with a fate.

``IntegrationSync`` is plain code: the reading, the page's rules, the ledger, the posting and
the recorder of bills not sent are given to it (``tasks.sync.assembly`` puts the real ones
together in a flow run; the unit tests give it their own). Every bill it reads ends in its
report (and in the ledger when the database answers): sent, unchanged, skipped with a reason,
failed with a cause, or INTERRUPTED when the run stopped short (a wait that expired, the
database away, SIGTERM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from config.errors import BillSyncError, Interrupted
from store.integrations import IntegrationView
from store.ledger import Ledger, LedgerEntry
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.sync import stopping
from tasks.sync.organisation import CodingRefused
from tasks.sync.plan import PagePlan, Send, plan_page
from tasks.sync.posting import Log, Recorder
from tasks.sync.report import IntegrationReport, Stop
from tasks.sync.runtime import return_free_memory
from tasks.xero.reference import XeroReference


class PageRules(Protocol):
    """What planning a page needs, fetched before it is planned (``tasks.sync.reading.Rules``)."""

    xero_calls: int

    def for_page(
        self, bills: Sequence[Bill], entries: Mapping[str, LedgerEntry]
    ) -> tuple[dict[str, Account], list[ExternalMapping], XeroReference | None]:
        """The accounts, mappings and organisation the page's bills need."""
        ...


class Pipeline(Protocol):
    """Where planned documents go (``tasks.sync.posting.Posting``)."""

    @property
    def interrupted(self) -> str | None:
        """Why posting stopped short, if it did."""
        ...

    def add(self, sends: Iterable[Send]) -> None:
        """Take planned documents."""
        ...

    def check(self) -> None:
        """Raise ``Interrupted`` once posting was."""
        ...

    def finish(self) -> None:
        """Post what is left; wait for every poster."""
        ...

    def interrupt(self, why: str) -> None:
        """Post nothing more; settle what is in flight."""
        ...


class Meter(Protocol):
    """Shows how far the reading got (``tasks.sync.progress.Progress``)."""

    def advance(self, bills: int) -> None:
        """Count ``bills`` more handled."""
        ...

    def finish(self) -> None:
        """Show it done."""
        ...


class _NoMeter:
    def advance(self, bills: int) -> None:
        pass

    def finish(self) -> None:
        pass


Planner = Callable[..., PagePlan]


@dataclass
class IntegrationSync:
    """Read ``pages``, plan each against the ledger and ``rules``, record what is decided and
    hand what goes to Xero to ``posting``; ``run`` returns the filled ``report``."""

    integration: IntegrationView
    report: IntegrationReport
    pages: Iterator[list[Bill]] | Iterable[list[Bill]]
    rules: PageRules
    ledger: Ledger
    posting: Pipeline
    recorder: Recorder
    log: Log = field(default_factory=lambda: logging.getLogger(__name__))
    progress: Meter = field(default_factory=_NoMeter)
    dry_run: bool = False
    plan: Planner = plan_page
    stop_process: Callable[[str], None] = stopping.request_stop
    #: Why the sync stopped short (set by ``run``), or ``None`` when it read to the end.
    interrupted: str | None = None
    #: Read, not planned yet: the bills whose fate an interruption must tell.
    _unplanned: list[Bill] = field(default_factory=list, repr=False)

    def run(self) -> IntegrationReport:
        """The page loop, then the posting's end. A ``BaseException`` (SIGTERM, Ctrl-C) stops
        every poster of the process and is raised again once the bills' fates are recorded."""
        report, posting = self.report, self.posting
        try:
            for page in self.pages:
                self._page(page)
            posting.finish()
        except CodingRefused as exc:  # nothing sent; the bills wait for the coding to be fixed
            self.log.error("%s", exc)
            self.interrupted = str(exc)
            posting.interrupt(self.interrupted)
            report.stopped(Stop.CODING_REFUSED, f"not synced: {exc}")
        except BaseException as exc:
            why = self.interrupted = interruption(exc, self.log)
            if not isinstance(exc, Exception):  # SIGTERM or Ctrl-C: every poster stops at once
                self.stop_process(why)
            if not self.dry_run:  # a dry run records nothing
                report.add_post(self.recorder.defer_bills(self._unplanned, why))
            posting.interrupt(why)
            report.stopped(
                stop_of(exc), f"interrupted ({why}); bills not read yet wait for the next sync"
            )
            if not isinstance(exc, Exception):
                raise
        if self.interrupted is None and posting.interrupted is not None:  # the last tasks stopped
            self.interrupted = posting.interrupted
            report.stopped(Stop.INTERRUPTED, f"interrupted ({self.interrupted})")
        self.progress.finish()
        report.xero_calls += self.rules.xero_calls  # reading the organisation counts as calls
        return report

    @cached_property
    def _listed(self) -> frozenset[str] | None:
        """The integration's listed accounts (``None``: every account), made once per sync."""
        return frozenset(self.integration.config.account_ids) or None

    def _page(self, page: list[Bill]) -> None:
        report = self.report
        self.progress.advance(len(page))
        return_free_memory()  # at most once a second (tasks.sync.runtime)
        # Bills of accounts off the integration's list are not its bills: no ledger read.
        listed = self._listed
        bills = page if listed is None else [b for b in page if (b.account_id or "") in listed]
        report.outside += len(page) - len(bills)
        if not bills:
            return
        self._unplanned = bills
        entries = self.ledger.for_bills(self.integration.id, (b.id for b in bills))
        accounts, mappings, xero = self.rules.for_page(bills, entries)  # first: a pure plan
        plan = self.plan(
            self.integration.config, self.integration.id, bills, accounts, mappings, entries, xero
        )
        if plan.fates and not self.dry_run:
            self.ledger.record(self.integration.id, plan.fates, sync_run_id=self.recorder.run_id)
        self._unplanned = []
        report.unchanged += plan.unchanged
        report.add_skips(plan.fates)
        report.add_failures(plan.failures)
        if self.dry_run:
            report.would_send += len(plan.sends)
            return
        self.posting.add(plan.sends)
        self.posting.check()  # posting was interrupted: reading on would only defer every bill


def stop_of(exc: BaseException) -> Stop:
    """What kind of stop an exception that ended a sync is: an interruption the next run
    recovers from, an error of the whole integration, or a crash."""
    if isinstance(exc, Interrupted) or not isinstance(exc, Exception):
        return Stop.INTERRUPTED
    return Stop.ERROR if isinstance(exc, BillSyncError) else Stop.CRASHED


def interruption(exc: BaseException, logger: Log) -> str:
    """What stopped a sync, in a line; a traceback in the logs when it was not foreseen."""
    if isinstance(exc, BillSyncError):
        return str(exc)
    if isinstance(exc, Exception):
        logger.exception("the sync stopped on an unexpected error")
        return f"{type(exc).__name__}: {exc}"
    return f"the process is stopping ({type(exc).__name__})"
