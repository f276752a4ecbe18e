"""Posting an integration's planned documents to Xero, and the fate of every one of them.

``Posting`` groups the sync's planned documents, hands each group to a poster (``submit``: in a
flow run, the ``post to Xero`` task of ``tasks.sync.post_task``) and settles what each reports;
bills the sync could not send are recorded with why (``defer_sends``, ``defer_bills``) so the
next run, or ``rerun_failed_syncs``, sends them. Plain code: the poster, the ledger and the
tenant's limits are given to it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from config.errors import Interrupted
from config.settings import Settings
from store.ledger import Fate, Ledger, Outcome
from tasks.m3ter.models import Bill
from tasks.sync.fates import PostReport, interrupted_reason, unsent_fate
from tasks.sync.kinds import KINDS
from tasks.sync.plan import Send, bill_version
from tasks.sync.report import IntegrationReport

Log = logging.Logger | logging.LoggerAdapter[Any]


class PostHandle(Protocol):
    """A group of documents on its way to Xero (a posting task's future, in a flow run)."""

    def done(self) -> bool:
        """Whether the poster is over (its report can be read without waiting)."""
        ...

    def report(self, timeout: float) -> Any:
        """The poster's ``PostReport`` (``TimeoutError`` once ``timeout`` seconds pass; the
        poster's own exception when it crashed)."""
        ...


#: Hands a group to a poster: ``submit(sends, what, number)``; ``what`` ("23 invoices") and
#: ``number`` (the run's n-th group) name it for people.
Submit = Callable[[list[Send], str, int], PostHandle]


@dataclass
class Recorder:
    """Writes the fates of bills not sent to the ledger, with the run that decided them; when the
    database is away, logs what could not be written (the next sync reads those bills again)."""

    integration_id: str
    tenant_id: str
    ledger: Ledger
    run_id: str | None
    log: Log

    def defer_sends(self, sends: list[Send], outcome: Outcome, reason: str) -> PostReport:
        """Record bills not attempted this run (after a daily limit, an auth failure, an
        interruption)."""
        fates = [unsent_fate(send, self.tenant_id, outcome, reason) for send in sends]
        self.record(fates)
        report = PostReport()
        for fate, send in zip(fates, sends, strict=True):
            report.add(fate, update=False, send=send)
        return report

    def defer_bills(self, bills: list[Bill], why: str) -> PostReport:
        """Record bills read but not planned when the run was interrupted (INTERRUPTED: the next
        run, or ``rerun_failed_syncs``, plans and sends them)."""
        reason = interrupted_reason(why)
        fates = [
            Fate(b.id, bill_version(b), Outcome.INTERRUPTED, account_id=b.account_id, reason=reason)
            for b in bills
        ]
        self.record(fates)
        report = PostReport()
        for fate in fates:
            report.add(fate, update=False)
        return report

    def record(self, fates: list[Fate]) -> None:
        """Write ``fates`` to the ledger, or log that the database would not take them."""
        if not fates:
            return
        try:
            self.ledger.record(self.integration_id, fates, sync_run_id=self.run_id)
        except Interrupted as exc:
            self.log.error(
                "could not record %d bill(s) %s in the ledger (%s); the next sync reads them again",
                len(fates),
                fates[0].outcome.value,
                exc,
            )


class Posting:
    """The integration's documents on their way to Xero, and the fate of every one of them.

    Documents post while later pages are read and planned: grouped by kind and operation so
    every call carries a full batch of one kind, a task per ``sync_documents_per_task`` of them
    (the first small, so posting starts early), up to the tenant's concurrency of tasks in
    flight (the tenant's limits still decide when each call goes). Every document handed over
    ends in the report: posted, failed, or deferred (recorded so, when posting stopped).
    """

    def __init__(
        self,
        settings: Settings,
        report: IntegrationReport,
        *,
        submit: Submit,
        recorder: Recorder,
        prepare: Callable[[], None] = lambda: None,
        log: Log | None = None,
    ) -> None:
        """``submit`` hands a group to a poster; ``recorder`` writes what is not sent;
        ``prepare`` runs before the first group goes (the tenant's limits made sure of)."""
        self.settings = settings
        self.report = report
        self.submit = submit
        self.recorder = recorder
        self.prepare = prepare
        self.logger = log or logging.getLogger(__name__)
        self.window = max(1, settings.xero_tenant_concurrency)
        self.in_flight: deque[tuple[PostHandle, list[Send]]] = deque()
        self.pending: dict[tuple[str, bool], list[Send]] = {}
        self.stop: tuple[Outcome, str] | None = None
        self.why = ""  # what stopped the posting, in a line
        self.posts = 0

    def add(self, sends: Iterable[Send]) -> None:
        """Take planned documents; each group that fills a task is posted at once."""
        for send in sends:
            key = (send.kind, bool(send.xero_id))
            group = self.pending.setdefault(key, [])
            group.append(send)
            size = self.settings.sync_documents_per_task if self.posts else 2 * self.batch
            if len(group) >= size:
                self._post(self.pending.pop(key))

    @property
    def batch(self) -> int:
        """Documents per Xero call."""
        return self.settings.sync_batch_size

    @property
    def interrupted(self) -> str | None:
        """Why posting stopped short (a wait that expired, the database away), if it did."""
        return self.why if self.stop is not None and self.stop[0] is Outcome.INTERRUPTED else None

    def check(self) -> None:
        """Raise ``Interrupted`` once a posting task was (so the reading stops too)."""
        if self.interrupted is not None:
            raise Interrupted(self.interrupted)

    def finish(self) -> None:
        """Post what is left as small tasks side by side (not one long tail); wait for all."""
        groups, self.pending = list(self.pending.values()), {}
        for group in groups:
            for start in range(0, len(group), 2 * self.batch):
                self._post(group[start : start + 2 * self.batch])
        while self.in_flight:
            self._settle(*self.in_flight.popleft())

    def interrupt(self, why: str) -> None:
        """Post nothing more: what was not handed to a task is deferred INTERRUPTED; the tasks in
        flight end (at once when the process is stopping) and report their bills."""
        if self.stop is None:
            self._stop_interrupted(why)
        groups, self.pending = list(self.pending.values()), {}
        for group in groups:
            self.report.add_post(self._defer(group))
        while self.in_flight:
            self._settle(*self.in_flight.popleft())

    def _stop_interrupted(self, why: str) -> None:
        self.why = why
        self.stop = (Outcome.INTERRUPTED, interrupted_reason(why))

    def _defer(self, sends: list[Send]) -> PostReport:
        assert self.stop is not None
        outcome, reason = self.stop
        return self.recorder.defer_sends(sends, outcome, reason)

    def _post(self, sends: list[Send]) -> None:
        try:
            while self.in_flight and (
                len(self.in_flight) >= self.window or self.in_flight[0][0].done()
            ):
                self._settle(*self.in_flight.popleft())
            if self.stop is None and self.posts == 0:  # the tenant's limits, before any call
                self.prepare()
        except Interrupted as exc:
            if self.stop is None:
                self._stop_interrupted(str(exc))
        if self.stop is not None:
            self.report.add_post(self._defer(sends))
            return
        self.posts += 1
        what = documents_label(len(sends), sends[0].kind, update=bool(sends[0].xero_id))
        self.in_flight.append((self.submit(sends, what, self.posts), sends))

    def _settle(self, handle: PostHandle, sends: list[Send]) -> None:
        """Add a posting task's report; a task that ended without one (it crashed, or did not
        end in time) counts its bills as interrupted (the ledger keeps what it had written)."""
        timeout = self.settings.sync_post_task_timeout_seconds
        try:
            posted = handle.report(timeout)
        except TimeoutError:
            posted = _unreported(sends, f"its posting task did not end within {timeout:.0f} s")
        except Exception as exc:  # noqa: BLE001 (a crashed task: its bills are counted all the same)
            posted = _unreported(sends, f"its posting task crashed: {type(exc).__name__}: {exc}")
        if not isinstance(posted, PostReport):
            posted = _unreported(sends, f"its posting task ended without a report: {posted!r}")
        self.report.add_post(posted)
        if posted.stop is None:
            return
        outcome, why = posted.stop
        if outcome is Outcome.AUTH_FAILED and self.report.auth_failed is None:
            self.report.auth_failed = why
            self.stop = (Outcome.AUTH_FAILED, f"not sent: {why}")
        elif outcome is Outcome.INTERRUPTED and (self.stop is None or self.stop[0] is not outcome):
            self._stop_interrupted(why)
            self.logger.error("posting stopped: %s", why)
        elif self.stop is None:
            self.stop = (Outcome.RATE_LIMIT_RETRY, f"deferred to the next run: {why}")
            self.logger.warning("%s; the remaining bills wait for the next run", why)


def _unreported(sends: list[Send], why: str) -> PostReport:
    report = PostReport(stop=(Outcome.INTERRUPTED, why))
    report.failures = [s.failure(Outcome.INTERRUPTED, why) for s in sends]
    return report


def documents_label(count: int, kind: str, *, update: bool) -> str:
    """``"23 invoices"``, ``"1 credit note update"``: what a posting task sends."""
    one, many = KINDS[kind].noun, KINDS[kind].nouns
    noun = one if count == 1 else many
    if update:
        noun = f"{one} update" if count == 1 else f"{one} updates"
    return f"{count} {noun}"
