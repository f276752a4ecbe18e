"""Posting an integration's planned documents to Xero, and the fate of every one of them.

``post_sends`` is the Prefect task (one per group of documents); ``Posting`` feeds it from the
sync's page loop and settles what it reports; bills the sync could not send are recorded with
why (``defer_sends``, ``defer_bills``) so the next run, or ``rerun_failed_syncs``, sends them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, PrefectWrappedFuture
from prefect.utilities.annotations import quote

from config.errors import Interrupted
from config.settings import Settings, get_settings
from store.factory import database
from store.integrations import IntegrationView
from store.ledger import Fate, Ledger, Outcome
from tasks.m3ter.models import Bill
from tasks.prefect_engine import expected_failure, flow_run_id, reported
from tasks.sync import handoff
from tasks.sync.failures import count_causes, not_sent
from tasks.sync.fates import interrupted_reason
from tasks.sync.kinds import KINDS
from tasks.sync.limits import TenantSlots, ensure_tenant_limits
from tasks.sync.organisation import xero_client
from tasks.sync.plan import Send, bill_version
from tasks.sync.post import PostReport, TenantPoster, unsent_fate
from tasks.sync.report import IntegrationReport


@task(name="post to Xero", cache_policy=NO_CACHE, persist_result=False)
def post_sends(integration: IntegrationView, tenant_id: str, documents: str) -> Any:
    """Post a group of documents (handed over as ``documents``, see ``tasks.sync.handoff``) to
    the tenant in batches of up to 50. Returns the ``PostReport``; as a Failed state (with the
    report in its ``RunFailed``) when any of them did not reach Xero."""
    sends: list[Send] = handoff.take(documents)
    settings = get_settings()
    with (
        xero_client(settings, integration, tenant_id) as client,
        TenantSlots(settings, tenant_id) as slots,
    ):
        poster = TenantPoster(
            slots=slots,
            settings=settings,
            client=client,
            ledger=Ledger(database(settings)),
            integration_id=integration.id,
            tenant_id=tenant_id,
            run_id=flow_run_id(),
            log=get_run_logger(),
        )
        report = poster.post(sends)
    if not report.failures:
        return report
    message = not_sent(count_causes(report.failures), of=len(sends))
    return expected_failure(message, report)


def _finished(future: PrefectFuture[Any]) -> bool:
    """Whether a posting task is over, asked of its thread's future: ``future.state`` opens a
    Prefect client and reads the task run from the API, once per planned task."""
    if isinstance(future, PrefectWrappedFuture):
        return bool(future.wrapped_future.done())
    return future.state.is_final()


def defer_sends(
    integration: IntegrationView,
    tenant_id: str,
    sends: list[Send],
    outcome: Outcome,
    reason: str,
    logger: Any,
) -> PostReport:
    """Record bills not attempted this run (after a daily limit, an auth failure, an
    interruption); when the database is away too, they are only counted."""
    fates = [unsent_fate(send, tenant_id, outcome, reason) for send in sends]
    record_if_possible(integration, fates, logger)
    report = PostReport()
    for fate, send in zip(fates, sends, strict=True):
        report.add(fate, update=False, send=send)
    return report


def defer_bills(
    integration: IntegrationView, tenant_id: str, bills: list[Bill], why: str, logger: Any
) -> PostReport:
    """Record bills read but not planned when the run was interrupted (INTERRUPTED: the next
    run, or ``rerun_failed_syncs``, plans and sends them)."""
    reason = interrupted_reason(why)
    fates = [
        Fate(b.id, bill_version(b), Outcome.INTERRUPTED, account_id=b.account_id, reason=reason)
        for b in bills
    ]
    record_if_possible(integration, fates, logger)
    report = PostReport()
    for fate in fates:
        report.add(fate, update=False)
    return report


def record_if_possible(integration: IntegrationView, fates: list[Fate], logger: Any) -> None:
    """Write ``fates`` to the ledger; when the database is away, log what could not be written."""
    if not fates:
        return
    try:
        Ledger(database(get_settings())).record(integration.id, fates, sync_run_id=flow_run_id())
    except Interrupted as exc:
        logger.error(
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
        integration: IntegrationView,
        tenant_id: str,
        organisation: str,
        report: IntegrationReport,
    ) -> None:
        self.settings = settings
        self.integration = integration
        self.tenant_id = tenant_id
        self.organisation = organisation
        self.report = report
        self.logger = get_run_logger()
        self.window = max(1, settings.xero_tenant_concurrency)
        self.in_flight: deque[tuple[PrefectFuture[Any], list[Send]]] = deque()
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
        return defer_sends(self.integration, self.tenant_id, sends, outcome, reason, self.logger)

    def _post(self, sends: list[Send]) -> None:
        try:
            while self.in_flight and (
                len(self.in_flight) >= self.window or _finished(self.in_flight[0][0])
            ):
                self._settle(*self.in_flight.popleft())
            if self.stop is None and self.posts == 0:  # the tenant's limits, before any call
                ensure_tenant_limits(self.settings, self.tenant_id)
        except Interrupted as exc:
            if self.stop is None:
                self._stop_interrupted(str(exc))
        if self.stop is not None:
            self.report.add_post(self._defer(sends))
            return
        self.posts += 1
        what = documents_label(len(sends), sends[0].kind, update=bool(sends[0].xero_id))
        future = post_sends.with_options(
            task_run_name=f"post {what} to {self.organisation} for {self.integration.name} "
            f"(#{self.posts})"
        ).submit(quote(self.integration), self.tenant_id, handoff.hand(sends))
        self.in_flight.append((future, sends))

    def _settle(self, future: PrefectFuture[Any], sends: list[Send]) -> None:
        """Add a posting task's report; a task that ended without one (it crashed, or did not
        end in time) counts its bills as interrupted (the ledger keeps what it had written)."""
        timeout = self.settings.sync_post_task_timeout_seconds
        try:
            posted = reported(future.result(timeout=timeout, raise_on_failure=False))
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
