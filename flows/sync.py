"""Bill sync flows: ``sync_bills`` (scheduled and on demand) and ``rerun_failed_syncs``.

How the work is split (a Prefect task run costs ~14 ms and loads the API, so there are few):
one subflow per integration (``sync <name>``, run side by side); inside it, bills are planned
in-process page by page (filters, mappings, ledger) and posted by one task per
``sync_documents_per_task`` documents, which sends them in batches of up to 50 with the
tenant's Prefect limits around every call. When a run syncs several integrations, one reader
(``tasks.sync.feed``) lists m3ter's bills once for all of them. After a complete read the
integration's watermark moves, so the next sync reads only what changed, plus the bills that
failed. Memory holds a few pages, the integration's accounts and the posts in flight.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, PrefectWrappedFuture
from prefect.settings import get_current_settings
from prefect.states import Completed
from prefect.utilities.annotations import quote

from config.errors import BillSyncError, Interrupted, NotFound, RunFailed
from config.integration import IntegrationStatus
from config.settings import Settings, get_settings
from store.factory import credential_store, database, integration_store
from store.integrations import IntegrationView
from store.ledger import FAILED, RETRYABLE, Fate, Ledger, Outcome
from store.watermarks import Watermarks
from tasks.m3ter.client import M3terClient
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.notifications import notify_disabled
from tasks.prefect_api import BestEffort, wait_until_reachable
from tasks.prefect_engine import expected_failure, prompt_flow_exit, quiet_expected_failures
from tasks.sync import handoff, stopping
from tasks.sync.accounts import AccountLookup
from tasks.sync.failures import BillFailure, count_causes, not_sent, report_markdown
from tasks.sync.feed import (
    BillFeed,
    ReadPlan,
    ReadTracker,
    joined,
    read_bills,
    read_bills_by_id,
)
from tasks.sync.lease import IntegrationBusy, IntegrationLease
from tasks.sync.limits import TenantSlots, ensure_tenant_limits
from tasks.sync.plan import ACCOUNT_EXCLUDED, Send, bill_version, plan_page
from tasks.sync.post import PostReport, TenantPoster, unsent_fate
from tasks.sync.runtime import return_free_memory, tune_process
from tasks.xero.credentials import token_provider
from tasks.xero.invoices import XeroAccountingClient

prompt_flow_exit()  # a flow run returns when it is over (tasks.prefect_engine)
quiet_expected_failures()  # an expected Failed end logs no traceback


LISTED = 200  # failed bills a report lists (all of them are counted)


@dataclass
class IntegrationReport:
    """One integration's run: the summary table's row, its failures and what else happened."""

    integration: str
    integration_id: str
    organisation: str = ""
    dry_run: bool = False
    sent: int = 0
    updated: int = 0
    unchanged: int = 0
    outside: int = 0
    would_send: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0  # bills that did not reach Xero
    causes: Counter[str] = field(default_factory=Counter)
    failures: list[BillFailure] = field(default_factory=list)  # the first LISTED of them
    xero_calls: int = 0
    read: str = ""
    problem: str | None = None  # the integration was not synced to the end (crashed, busy)
    disabled: str | None = None
    auth_failed: str | None = None  # Xero refused the credential (with its words)

    @property
    def failing(self) -> bool:
        return self.failed > 0 or self.problem is not None

    def row(self) -> dict[str, Any]:
        """The summary table's row: few, short columns, the counts a person looks for first."""
        sent = ("would send", self.would_send) if self.dry_run else ("sent", self.sent)
        return {
            "integration": self.integration,
            "organisation": self.organisation,
            sent[0]: sent[1],
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": sum(self.skipped.values()),
            "failed": self.failed if self.problem is None else "not synced",
            "xero calls": self.xero_calls,
        }

    def details(self) -> dict[str, Any]:
        """Everything the run knows of the integration (the run's result, for callers)."""
        return {
            "integration": self.integration,
            "organisation": self.organisation,
            "sent": self.sent,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "other accounts' bills": self.outside,
            "would send (dry run)": self.would_send,
            "skipped": sum(self.skipped.values()),
            "skipped why": dict(sorted(self.skipped.items())),
            "failed": self.failed,
            "failed why": dict(self.causes),
            "xero calls": self.xero_calls,
            "read": self.read,
            "note": "; ".join(self.notes()),
        }

    def notes(self) -> list[str]:
        return [n for n in (self.problem, self.disabled) if n]

    def describe(self) -> str:
        """A log line with what the table leaves out."""
        skipped = ", ".join(f"{why}: {n}" for why, n in sorted(self.skipped.items()))
        parts = [
            f"{self.integration} ({self.organisation or 'no organisation'})",
            f"read {self.read or 'nothing'}",
            f"other accounts' bills {self.outside}",
            f"skipped {sum(self.skipped.values())}" + (f" ({skipped})" if skipped else ""),
            *self.notes(),
        ]
        if self.dry_run:
            parts.insert(2, f"would send {self.would_send}")
        return "; ".join(parts)

    def message(self) -> str:
        return _message([self])

    def add_failures(self, failures: Iterable[BillFailure]) -> None:
        for failure in failures:
            self.failed += 1
            self.causes[failure.cause] += 1
            if len(self.failures) < LISTED:
                self.failures.append(failure)

    def add_post(self, report: PostReport) -> None:
        self.sent += report.created
        self.updated += report.updated
        self.xero_calls += report.calls
        self.add_failures(report.failures)

    def add_skips(self, fates: Iterable[Fate]) -> None:
        for fate in fates:
            if fate.outcome not in FAILED:
                self.skipped[fate.reason or fate.outcome.value] += 1


def _message(reports: Sequence[IntegrationReport]) -> str:
    """The state message of a run that left bills out: ``"15 bills not sent: 12 missing account
    mapping, 3 Xero validation error"``, and any integration that was not synced to the end."""
    causes: Counter[str] = Counter()
    for report in reports:
        causes.update(report.causes)
    parts = [not_sent(causes, dry_run=any(r.dry_run for r in reports))] if causes else []
    parts += [f"{r.integration} {r.problem}" for r in reports if r.problem]
    return "; ".join(parts)


def _ended(report: IntegrationReport) -> Any:
    """The integration subflow's end: Failed, with its report, when a bill did not reach Xero.
    Its end is reported to the Prefect API: if that is away, wait for it (bounded)."""
    wait_until_reachable(
        get_settings().prefect_api_wait_seconds,
        f"reporting the end of the sync of {report.integration}",
        get_run_logger(),
    )
    if not report.failing:
        return report
    message = report.message()
    return expected_failure(message, report)


def _reported(value: Any) -> Any:
    """A run's report, whether the run Completed with it or Failed with it (``RunFailed``)."""
    if isinstance(value, RunFailed):
        return value.details
    if isinstance(value, BaseException):
        raise value
    return value


def run_summary(state: Any) -> dict[str, Any]:
    """What a ``sync_bills`` or ``rerun_failed_syncs`` run reports (``integrations`` rows,
    ``failed``), whether it Completed or Failed; empty when it crashed before reporting."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException) and not isinstance(value, RunFailed):
        return {}  # crashed: no report
    report = _reported(value)
    return report if isinstance(report, dict) else {}


def _run_id() -> str | None:
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


# -- tasks -----------------------------------------------------------------------------------
@task(name="load external mappings", cache_policy=NO_CACHE, persist_result=False)
def load_mappings(integration: IntegrationView) -> list[ExternalMapping]:
    if not integration.config.use_external_mapping_account_code:
        return []
    with M3terClient.from_settings(get_settings()) as m3ter:
        mappings = m3ter.list_external_mappings(
            integration_config_id=(
                integration.id if integration.config.enforce_external_mappings_for_config else None
            )
        )
    get_run_logger().info("%d Account → Xero Contact mapping(s)", len(mappings))
    return mappings


@task(name="post to Xero", cache_policy=NO_CACHE, persist_result=False)
def post_sends(integration: IntegrationView, tenant_id: str, documents: str) -> Any:
    """Post a group of documents (handed over as ``documents``, see ``tasks.sync.handoff``) to
    the tenant in batches of up to 50. Returns the ``PostReport``; as a Failed state (with the
    report in its ``RunFailed``) when any of them did not reach Xero."""
    sends: list[Send] = handoff.take(documents)
    settings = get_settings()
    provider = token_provider(settings)
    credential_id = integration.credential_id or ""
    with (
        XeroAccountingClient(
            settings.xero_api_url,
            tenant_id,
            provider.getter(credential_id),
            timeout=settings.http_timeout_seconds,
            replace_token=lambda rejected: provider.replace_rejected(credential_id, rejected),
        ) as client,
        TenantSlots(settings, tenant_id) as slots,
    ):
        poster = TenantPoster(
            slots=slots,
            settings=settings,
            client=client,
            ledger=Ledger(database(settings)),
            integration_id=integration.id,
            tenant_id=tenant_id,
            run_id=_run_id(),
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


def _defer_sends(
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
    _record_if_possible(integration, fates, logger)
    report = PostReport()
    for fate, send in zip(fates, sends, strict=True):
        report.add(fate, update=False, send=send)
    return report


def _defer(
    integration: IntegrationView, tenant_id: str, bills: list[Bill], why: str, logger: Any
) -> PostReport:
    """Record bills read but not planned when the run was interrupted (INTERRUPTED: the next
    run, or ``rerun_failed_syncs``, plans and sends them)."""
    reason = f"not sent, the run was interrupted: {why}"
    fates = [
        Fate(b.id, bill_version(b), Outcome.INTERRUPTED, account_id=b.account_id, reason=reason)
        for b in bills
    ]
    _record_if_possible(integration, fates, logger)
    report = PostReport()
    for fate in fates:
        report.add(fate, update=False)
    return report


def _record_if_possible(integration: IntegrationView, fates: list[Fate], logger: Any) -> None:
    if not fates:
        return
    try:
        Ledger(database(get_settings())).record(integration.id, fates, sync_run_id=_run_id())
    except Interrupted as exc:
        logger.error(
            "could not record %d bill(s) %s in the ledger (%s); the next sync reads them again",
            len(fates),
            fates[0].outcome.value,
            exc,
        )


# -- the integration subflow ------------------------------------------------------------------
class Progress:
    """A progress artifact per integration, moved as pages are handled.

    m3ter does not say how many bills a listing holds, so the estimate is the bills this
    integration's ledger holds (or the bills asked for, or the failed bills retried); a first
    run approaches 100 % and jumps to it at the end. The artifact appears with the first bill:
    a sync that finds nothing new shows none. Best effort: while the Prefect API is away the
    bar stands still and the sync goes on (``tasks.prefect_api.BestEffort``).
    """

    EVERY_SECONDS = 5.0  # one API call per 5 s at most, however fast pages go

    def __init__(self, integration: IntegrationView, organisation: str, expected: int) -> None:
        self.integration = integration
        self.organisation = organisation
        self.expected = expected
        self.done = 0
        self.shown_at = 0.0
        self.artifact_id: Any = None
        self._api = BestEffort(get_run_logger())

    def advance(self, bills: int) -> None:
        if self.artifact_id is None and bills:
            self.artifact_id = self._api.call(
                lambda: create_progress_artifact(
                    0.0,
                    key=f"sync-progress-{slug(self.integration.name) or self.integration.id}",
                    description=f"Bills of {self.integration.name} handled ({self.organisation})",
                ),
                "create the progress artifact",
            )
        previous = self.done
        self.done += bills
        now = time.monotonic()
        # Report a page once the next one arrives (it was handled by then).
        if previous and self.artifact_id is not None and now - self.shown_at >= self.EVERY_SECONDS:
            self.shown_at = now
            total = max(self.expected, self.done + bills)
            self._show(round(100 * previous / total, 1))

    def finish(self) -> None:
        self._show(100.0)

    def _show(self, percent: float) -> None:
        if self.artifact_id is not None:
            artifact = self.artifact_id
            self._api.call(
                lambda: update_progress_artifact(artifact, percent), "update the progress artifact"
            )


def slug(name: str) -> str:
    """``"Main (#2)"`` → ``"main-2"``: a name as part of a Prefect artifact key (lowercase
    letters, digits and dashes); empty when the name has none of them."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _organisation(settings: Settings, view: IntegrationView | str) -> str:
    """The Xero organisation the integration (or integration id) posts to, by name (its
    tenant id if unnamed); empty if it has none."""
    try:
        if isinstance(view, str):
            view = integration_store(settings).get(view)
        credential = credential_store(settings).get(view.credential_id or "")
    except BillSyncError:
        return ""
    return credential.tenant_name or credential.tenant_id or ""


def _disable(integration: IntegrationView, reason: str) -> str:
    settings = get_settings()
    integration_store(settings).disable(integration.id, reason)
    logger = get_run_logger()
    logger.error("integration %r disabled: %s", integration.name, reason)
    try:
        notify_disabled(settings, integration.config.notification_users, integration.name, reason)
    except BillSyncError as exc:
        logger.error("could not e-mail the notification users: %s", exc)
    return f"disabled: {reason}"


def fingerprint(integration: IntegrationView) -> str:
    """The rules that decided which bills the integration sends: a watermark is only good
    under them. (Accounts are not in it: an account that is allowed now but was not is found
    through its bills' SKIPPED rows; a new account's bills are new.)"""
    digest = hashlib.sha256(integration.config.model_dump_json().encode())
    digest.update(f"|{integration.credential_id}".encode())
    return digest.hexdigest()


class Rules:
    """The integration's accounts (``tasks.sync.accounts``: looked up as bills need them, in a
    bounded cache) and its external mappings (a task, run when the first bill needs them): a
    sync whose bills are all unchanged looks up neither."""

    def __init__(self, integration: IntegrationView, accounts: AccountLookup) -> None:
        self.integration = integration
        self.accounts = accounts
        self._mappings: list[ExternalMapping] | None = None
        self.mapping_list = _LazyList(self.mappings)

    def for_page(self, bills: Sequence[Bill]) -> Mapping[str, Account]:
        """The allowed accounts of these bills, looked up only if planning asks for one."""
        return _PageAccounts(self.accounts, [b.account_id for b in bills])

    def mappings(self) -> list[ExternalMapping]:
        if self._mappings is None:
            self._mappings = load_mappings(self.integration)
        return self._mappings


class _PageAccounts(Mapping[str, Account]):
    def __init__(self, lookup: AccountLookup, account_ids: list[str | None]) -> None:
        self._lookup = lookup
        self._ids = account_ids
        self._found: dict[str, Account] | None = None

    def _accounts(self) -> dict[str, Account]:
        if self._found is None:
            self._found = self._lookup.allowed(self._ids)
        return self._found

    def __getitem__(self, account_id: str) -> Account:
        return self._accounts()[account_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._accounts())

    def __len__(self) -> int:
        return len(self._accounts())


class _LazyList(Sequence[ExternalMapping]):
    def __init__(self, load: Callable[[], list[ExternalMapping]]) -> None:
        self._load = load

    def __getitem__(self, index: Any) -> Any:
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())


@dataclass
class Reading:
    """The pages one integration handles in a run, and whether they let its watermark move."""

    pages: Iterator[list[Bill]]
    expected: int = 0  # bills this reading is likely to hold (for the progress estimate)
    retries: int = 0
    tracker: ReadTracker | None = None  # set: a full or incremental read that may advance
    feed: BillFeed | None = None
    mode: str = ""

    def modified_through(self) -> float | None:
        if self.tracker is None or (self.feed is not None and not self.feed.complete):
            return None
        return self.tracker.modified_through


def _reading(
    settings: Settings,
    integration: IntegrationView,
    rules: Rules,
    since: dt.date | None,
    bill_ids: list[str] | None,
    feed: BillFeed | None,
) -> Reading:
    """Choose what to read: the bills asked for; else what changed since the watermark (and the
    bills that failed before); else every bill. Shares the run's feed when it covers that."""
    if bill_ids is not None:
        if feed is not None:
            feed.leave(integration.id)
        return Reading(
            read_bills_by_id(settings, bill_ids),
            expected=len(bill_ids),
            mode=f"{len(bill_ids)} bill(s)",
        )
    mark = Watermarks(database(settings)).get(integration.id)
    current = mark is not None and mark.fingerprint == fingerprint(integration)
    plan = ReadPlan(
        bill_date_start=since,
        modified_since=(
            mark.modified_through - settings.sync_modified_overlap_seconds
            if mark is not None and current
            else None
        ),
    )
    ledger = Ledger(database(settings))
    if plan.modified_since is None:
        retry_ids: list[str] = []
        expected = ledger.count(integration.id)
    else:
        retry_ids = [bill for bill, _ in ledger.bill_ids(integration.id, FAILED)]
        excluded = ledger.bill_ids(integration.id, [Outcome.SKIPPED], reason=ACCOUNT_EXCLUDED)
        if excluded:
            allowed = rules.accounts.allowed(account for _, account in excluded)
            retry_ids += [bill for bill, account in excluded if account in allowed]
        expected = len(retry_ids)
    if feed is not None and feed.plan.covers(plan):
        tracker, main = feed.tracker, feed.pages(integration.id)
    else:
        if feed is not None:
            feed.leave(integration.id)
            feed = None
        tracker = ReadTracker()
        main = read_bills(settings, plan, tracker)
    mode = (
        "every bill"
        if plan.modified_since is None
        else "bills modified since "
        + dt.datetime.fromtimestamp(plan.modified_since, dt.UTC).isoformat(timespec="seconds")
        + f" and {len(retry_ids)} failed bill(s)"
    )
    if not retry_ids:
        return Reading(main, expected=expected, tracker=tracker, feed=feed, mode=mode)
    again = set(retry_ids)
    pages = itertools.chain(
        read_bills_by_id(settings, retry_ids),
        ([b for b in page if b.id not in again] for page in main),
    )
    return Reading(
        pages,
        expected=expected,
        retries=len(retry_ids),
        tracker=tracker,
        feed=feed,
        mode=mode,
    )


@flow(name="sync_integration", flow_run_name="sync {integration_name}")
def sync_integration(
    integration_id: str,
    integration_name: str,
    since: dt.date | None = None,
    dry_run: bool = False,
    bill_ids: list[str] | None = None,
    feed: str | None = None,
) -> Any:
    """Sync one integration's bills (or only ``bill_ids``) to its Xero tenant.

    ``feed`` names the run's shared bill reader (``sync_bills`` passes it); without one, or
    when it reads less than this integration needs, the integration reads on its own. One run
    at a time posts an integration's bills: another waits for the first to finish (a dry run
    posts nothing and does not wait). Returns its ``IntegrationReport``; as a Failed state
    (the report in its ``RunFailed``) when a bill did not reach Xero.
    """
    logger = get_run_logger()
    settings = get_settings()
    shared = joined(feed)
    with ExitStack() as closing:
        if dry_run:
            return _ended(
                _sync(closing, settings, integration_id, since, dry_run, bill_ids, shared)
            )
        holder = _run_id() or uuid.uuid4().hex
        lease = IntegrationLease(settings, integration_id, integration_name, holder, log=logger)
        try:
            if lease.taken() is not None and shared is not None:
                shared.leave(integration_id)  # waiting must not hold back the other readers
                shared = None
            with lease:
                report = _sync(closing, settings, integration_id, since, dry_run, bill_ids, shared)
        except IntegrationBusy as exc:
            logger.error("%s", exc)
            report = IntegrationReport(
                integration_name,
                integration_id,
                organisation=_organisation(settings, integration_id),
                problem=f"not synced (busy): {exc}",
            )
        except Interrupted as exc:  # before or after the sync proper: the database went away
            logger.error("%s", exc)
            report = IntegrationReport(
                integration_name,
                integration_id,
                organisation=_organisation(settings, integration_id),
                problem=f"interrupted ({exc})",
            )
        return _ended(report)


def _sync(
    closing: ExitStack,
    settings: Settings,
    integration_id: str,
    since: dt.date | None,
    dry_run: bool,
    bill_ids: list[str] | None,
    shared: BillFeed | None,
) -> IntegrationReport:
    """The body of ``sync_integration``: read, plan page by page, post, record, report
    (``closing`` closes what it opens, however it ends)."""
    logger = get_run_logger()
    try:
        integration = integration_store(settings).get(integration_id)
        credential = credential_store(settings).get(integration.credential_id or "")
        tenant_id = credential.tenant_id or ""
        organisation = credential.tenant_name or tenant_id
        report = IntegrationReport(
            integration.name, integration.id, organisation=organisation, dry_run=dry_run
        )
        rules = Rules(
            integration, closing.enter_context(AccountLookup(settings, integration.config))
        )
        reading = _reading(settings, integration, rules, since, bill_ids, shared)
    except BaseException:
        if shared is not None:
            shared.leave(integration_id)
        raise
    logger.info("reading %s", reading.mode)
    report.read = reading.mode
    ledger = Ledger(database(settings))
    listed = frozenset(integration.config.account_ids) or None
    progress = Progress(integration, organisation, expected=reading.expected)
    posting = _Posting(settings, integration, tenant_id, organisation, report)
    unplanned: list[Bill] = []  # read, not planned yet: whose fate an interruption must tell
    interrupted: str | None = None
    try:
        for page in reading.pages:
            progress.advance(len(page))
            return_free_memory()  # at most once a second (tasks.sync.runtime)
            # Bills of accounts off the integration's list are not its bills: no ledger read.
            bills = page if listed is None else [b for b in page if (b.account_id or "") in listed]
            report.outside += len(page) - len(bills)
            if not bills:
                continue
            unplanned = bills
            entries = ledger.for_bills(integration.id, (b.id for b in bills))
            plan = plan_page(
                integration.config,
                integration.id,
                bills,
                rules.for_page(bills),
                rules.mapping_list,
                entries,
            )
            if plan.fates and not dry_run:
                ledger.record(integration.id, plan.fates, sync_run_id=_run_id())
            unplanned = []
            report.unchanged += plan.unchanged
            report.add_skips(plan.fates)
            report.add_failures(plan.failures)
            if dry_run:
                report.would_send += len(plan.sends)
                continue
            posting.add(plan.sends)
            posting.check()  # posting was interrupted: reading on would only defer every bill
        posting.finish()
    except BaseException as exc:
        interrupted = _interruption(exc, logger)
        if not isinstance(exc, Exception):  # SIGTERM or Ctrl-C: every poster stops at once
            stopping.request_stop(interrupted)
        if not dry_run:  # a dry run records nothing
            report.add_post(_defer(integration, tenant_id, unplanned, interrupted, logger))
        posting.interrupt(interrupted)
        report.problem = f"interrupted ({interrupted}); bills not read yet wait for the next sync"
        if not isinstance(exc, Exception):
            raise
    if interrupted is None and posting.interrupted is not None:  # the last tasks stopped
        interrupted = posting.interrupted
        report.problem = f"interrupted ({interrupted})"
    progress.finish()
    try:
        _conclude(settings, integration, rules, reading, report, since, dry_run, interrupted)
    except Interrupted as exc:  # the database went away at the very end
        logger.error("could not record the end of this sync: %s", exc)
        report.problem = report.problem or f"interrupted at the end ({exc})"
    logger.info(
        "%s: sent %d, updated %d, unchanged %d, skipped %d, failed %d",
        integration.name,
        report.sent,
        report.updated,
        report.unchanged,
        sum(report.skipped.values()),
        report.failed,
    )
    return report


def _interruption(exc: BaseException, logger: Any) -> str:
    """What stopped a sync, in a line; a traceback in the logs when it was not foreseen."""
    if isinstance(exc, BillSyncError):
        return str(exc)
    if isinstance(exc, Exception):
        logger.exception("the sync stopped on an unexpected error")
        return f"{type(exc).__name__}: {exc}"
    return f"the process is stopping ({type(exc).__name__})"


def _conclude(
    settings: Settings,
    integration: IntegrationView,
    rules: Rules,
    reading: Reading,
    report: IntegrationReport,
    since: dt.date | None,
    dry_run: bool,
    interrupted: str | None,
) -> None:
    """After the posting: name the failed bills' accounts, move the watermark after a whole
    read, count the run for auto-disable (and disable), all in the project database."""
    logger = get_run_logger()
    report.failures = _named(rules.accounts, report.failures, logger)
    if rules.accounts.requests:
        logger.info(
            "looked up %d account(s) in %d request(s)",
            rules.accounts.looked_up,
            rules.accounts.requests,
        )
    through = reading.modified_through()
    if through is not None and since is None and not dry_run and interrupted is None:
        Watermarks(database(settings)).advance(integration.id, fingerprint(integration), through)
    auth_failed = report.auth_failed
    if auth_failed is not None:
        report.disabled = _disable(integration, f"Xero refused the credential: {auth_failed}")
    elif not dry_run:
        failing = report.failing
        count = integration_store(settings).record_run(integration.id, failed=failing)
        if failing and count >= settings.auto_disable_after_failed_runs:
            report.disabled = _disable(
                integration, f"{count} failing sync runs in a row (last: {report.message()})"
            )


class _Posting:
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
        for send in sends:
            key = (send.kind, bool(send.xero_id))
            group = self.pending.setdefault(key, [])
            group.append(send)
            size = self.settings.sync_documents_per_task if self.posts else 2 * self.batch
            if len(group) >= size:
                self._post(self.pending.pop(key))

    @property
    def batch(self) -> int:
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
            self.why = why
            self.stop = (Outcome.INTERRUPTED, f"not sent, the run was interrupted: {why}")
        groups, self.pending = list(self.pending.values()), {}
        for group in groups:
            self.report.add_post(self._defer(group))
        while self.in_flight:
            self._settle(*self.in_flight.popleft())

    def _defer(self, sends: list[Send]) -> PostReport:
        assert self.stop is not None
        outcome, reason = self.stop
        return _defer_sends(self.integration, self.tenant_id, sends, outcome, reason, self.logger)

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
                self.why = str(exc)
                self.stop = (Outcome.INTERRUPTED, f"not sent, the run was interrupted: {exc}")
        if self.stop is not None:
            self.report.add_post(self._defer(sends))
            return
        self.posts += 1
        what = _documents(len(sends), sends[0].kind, update=bool(sends[0].xero_id))
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
            posted = _reported(future.result(timeout=timeout, raise_on_failure=False))
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
            self.why = why
            self.stop = (Outcome.INTERRUPTED, f"not sent, the run was interrupted: {why}")
            self.logger.error("posting stopped: %s", why)
        elif self.stop is None:
            self.stop = (Outcome.RATE_LIMIT_RETRY, f"deferred to the next run: {why}")
            self.logger.warning("%s; the remaining bills wait for the next run", why)


def _unreported(sends: list[Send], why: str) -> PostReport:
    report = PostReport(stop=(Outcome.INTERRUPTED, why))
    report.failures = [s.failure(Outcome.INTERRUPTED, why) for s in sends]
    return report


KINDS = {"invoice": ("invoice", "invoices"), "credit_note": ("credit note", "credit notes")}


def _documents(count: int, kind: str, *, update: bool) -> str:
    """``"23 invoices"``, ``"1 credit note update"``: what a posting task sends."""
    one, many = KINDS.get(kind, (kind, f"{kind}s"))
    noun = one if count == 1 else many
    if update:
        noun = f"{one} update" if count == 1 else f"{one} updates"
    return f"{count} {noun}"


def _named(accounts: AccountLookup, failures: list[BillFailure], logger: Any) -> list[BillFailure]:
    """The failures with their accounts' names and codes (cached mostly; else asked of m3ter)."""
    unnamed = [f.account_id for f in failures if f.account_id and not f.account_name]
    if not unnamed:
        return failures
    try:
        found = accounts.allowed(unnamed)
    except BillSyncError as exc:
        logger.warning("could not look up the failed bills' accounts: %s", exc)
        return failures
    return [f.named(found) for f in failures]


# -- entry points ----------------------------------------------------------------------------
def _asked(names: list[str] | None) -> list[IntegrationView]:
    """The integrations named (by name or id), or all of them, whatever their status."""
    views = integration_store(get_settings()).list()
    if names:
        wanted = set(names)
        unknown = wanted - {v.name for v in views} - {v.id for v in views}
        if unknown:
            raise NotFound(f"no integration(s) named {', '.join(sorted(unknown))}")
        views = [v for v in views if v.name in wanted or v.id in wanted]
    return views


def _targets(names: list[str] | None) -> list[IntegrationView]:
    return [v for v in _asked(names) if v.status is IntegrationStatus.CONNECTED]


def _not_rerun(settings: Settings, view: IntegrationView, waiting: int) -> IntegrationReport:
    """An integration whose failed bills a rerun cannot send: disabled, or not connected."""
    if view.status is IntegrationStatus.DISABLED:
        todo = "fix the cause, then enable_integration and rerun_failed_syncs"
    else:
        todo = "connect_credential, then rerun_failed_syncs"
    return IntegrationReport(
        view.name,
        view.id,
        organisation=_organisation(settings, view),
        problem=(
            f"not rerun: {waiting} failed bill{'' if waiting == 1 else 's'} wait "
            f"({view.status_detail}); {todo}"
        ),
    )


def _summarise(reports: list[IntegrationReport], dry_run: bool) -> Any:
    """The run's end: a summary table (and a log line per integration with what it leaves
    out); when a bill did not reach Xero, the failures report and a Failed state that counts
    them by cause."""
    logger = get_run_logger()
    wait_until_reachable(
        get_settings().prefect_api_wait_seconds, "reporting the end of this run", logger
    )
    for report in reports:
        logger.info("%s", report.describe())
    create_table_artifact(
        table=[r.row() for r in reports] or [{"integration": "(none enabled and connected)"}],
        key="bill-sync-summary",
        description="Bill sync: per integration"
        + (" (dry run: nothing posted)" if dry_run else "")
        + ". What each read, and what was skipped why, is in the run's logs.",
    )
    summary = {
        "integrations": [r.details() for r in reports],
        "failed": sum(r.failed for r in reports),
    }
    failing = [r for r in reports if r.failing]
    if not failing:
        return Completed(message="all bills synced", data=summary)
    message = _message(reports)
    listed = [(r.integration, r.organisation, f) for r in reports for f in r.failures]
    create_markdown_artifact(
        markdown=report_markdown(
            message,
            listed[:LISTED],
            total=summary["failed"],
            notes=[f"{r.integration}: {n}" for r in failing for n in r.notes()],
        ),
        key="bill-sync-failures",
        description="Bills that did not reach Xero, and what to do about each",
    )
    return expected_failure(message, summary)


def _isolated(view: IntegrationView, **kwargs: Any) -> IntegrationReport:
    """Run one integration's subflow; its crash fails that subflow, not the others."""
    wait_until_reachable(
        get_settings().prefect_api_wait_seconds, f"starting the sync of {view.name}"
    )
    try:
        state = sync_integration(view.id, view.name, return_state=True, **kwargs)
    finally:
        shared = joined(kwargs.get("feed"))
        if shared is not None:  # however the subflow ended, the reader must not wait on it
            shared.leave(view.id)
    if state.is_completed():
        return state.result()
    if state.is_failed():  # bills that did not reach Xero: the report comes with the state
        try:
            ended = state.result(raise_on_failure=False)
        except Exception:  # no result to read: handled as a crash below
            ended = None
        if isinstance(ended, RunFailed) and isinstance(ended.details, IntegrationReport):
            return ended.details
    settings = get_settings()
    report = IntegrationReport(
        view.name,
        view.id,
        organisation=_organisation(settings, view),
        dry_run=bool(kwargs.get("dry_run")),
        problem=f"sync crashed: {str(state.message)[:300]}",
    )
    try:
        count = integration_store(settings).record_run(view.id, failed=True)
    except Interrupted as exc:  # the database is away: the run is not counted
        get_run_logger().error("could not count the failed sync of %s: %s", view.name, exc)
        return report
    if count >= settings.auto_disable_after_failed_runs:
        report.disabled = _disable(view, f"{count} failing sync runs in a row: {report.problem}")
    return report


@task(name="sync integration", cache_policy=NO_CACHE, persist_result=False)
def sync_one(view: IntegrationView, **kwargs: Any) -> Any:
    """Carries one integration's subflow so integrations run side by side (their tenants'
    limits are shared by every worker through the project database, so running together is
    safe). Failed, with the report, when its subflow is."""
    return _ended(_isolated(view, **kwargs))


def _concurrently(
    views: list[IntegrationView],
    per_view: dict[str, dict[str, Any]] | None = None,
    **kwargs: Any,
) -> list[IntegrationReport]:
    """Each integration's subflow, side by side; ``per_view`` adds arguments by integration id."""
    extra = per_view or {}
    if len(views) <= 1:
        return [_isolated(v, **kwargs, **extra.get(v.id, {})) for v in views]
    futures = [
        sync_one.with_options(task_run_name=f"sync {v.name}").submit(
            v, **kwargs, **extra.get(v.id, {})
        )
        for v in views
    ]
    timeout = get_settings().sync_run_timeout_seconds
    deadline = time.monotonic() + timeout
    reports = []
    for view, future in zip(views, futures, strict=True):
        try:
            left = max(0.0, deadline - time.monotonic())
            reports.append(_reported(future.result(timeout=left, raise_on_failure=False)))
        except TimeoutError:  # its waits are bounded, so only a stuck thread gets here
            reports.append(
                IntegrationReport(
                    view.name,
                    view.id,
                    problem=f"not synced to the end: its sync did not end within {timeout:.0f} s",
                )
            )
    return reports


@flow(name="sync_bills")
def sync_bills(
    integrations: tuple[str, ...] = (),
    since: dt.date | None = None,
    dry_run: bool = False,
) -> Any:
    """Send m3ter bills to Xero for every enabled, connected integration (or those named).

    Args:
        integrations: names or ids; empty means every enabled, connected integration.
        since: only bills dated on or after this day.
        dry_run: show what would be sent; post nothing and record nothing.
    """
    tune_process()
    stopping.install()
    return _unless_interrupted(lambda: _sync_all(integrations, since, dry_run))


def _unless_interrupted(run: Callable[[], Any]) -> Any:
    """A run the project database (or a stop) cut short before any integration could report
    ends Failed with the reason in a line, not a traceback."""
    try:
        return run()
    except Interrupted as exc:
        get_run_logger().error("the run was interrupted: %s", exc)
        return expected_failure(f"interrupted: {exc}")


def _sync_all(integrations: tuple[str, ...], since: dt.date | None, dry_run: bool) -> Any:
    settings = get_settings()
    targets = _targets(list(integrations) or None)
    idle = _nothing_new(settings, targets)
    if idle is not None:
        return _summarise(idle, dry_run)
    if not _can_share(targets):
        return _summarise(_concurrently(targets, since=since, dry_run=dry_run), dry_run)
    plan = _shared_plan(settings, targets, since)

    def read(tracker: ReadTracker) -> Iterator[list[Bill]]:
        return read_bills(settings, plan, tracker)

    with BillFeed(plan, read, [v.id for v in targets]) as feed:
        results = _concurrently(targets, since=since, dry_run=dry_run, feed=feed.id)
    return _summarise(results, dry_run)


def _nothing_new(
    settings: Settings, targets: list[IntegrationView]
) -> list[IntegrationReport] | None:
    """The summary rows of a run with nothing to do, or ``None`` when there may be work.

    Nothing to do: every integration has a watermark under its current rules, no failed or
    account-excluded bill in its ledger, and m3ter's newest-first search shows no bill modified
    since the oldest watermark (one request for one bill). Then no subflow starts: a quiet
    scheduled sync costs a few queries, not a flow run per integration.
    """
    if not targets:
        return None
    marks, ledger = Watermarks(database(settings)), Ledger(database(settings))
    cuts = []
    for view in targets:
        mark = marks.get(view.id)
        if mark is None or mark.fingerprint != fingerprint(view):
            return None
        if ledger.bill_ids(view.id, FAILED) or ledger.bill_ids(
            view.id, [Outcome.SKIPPED], reason=ACCOUNT_EXCLUDED
        ):
            return None
        cuts.append(mark.modified_through - settings.sync_modified_overlap_seconds)
    cut = dt.datetime.fromtimestamp(min(cuts), dt.UTC)
    with M3terClient.from_settings(settings) as m3ter:
        if next(m3ter.iter_bill_pages_modified_since(cut, page_size=1), None):
            return None
    read = f"nothing modified since {cut.isoformat(timespec='seconds')}, no failed bills"
    get_run_logger().info("%s: no integration has work", read)
    return [
        IntegrationReport(v.name, v.id, organisation=_organisation(settings, v), read=read)
        for v in targets
    ]


def _can_share(targets: list[IntegrationView]) -> bool:
    """One shared reading needs every integration consuming at once: more than one, and a
    thread pool that runs them all together (Prefect's default pool is unbounded)."""
    limit = get_current_settings().tasks.runner.thread_pool_max_workers
    return len(targets) > 1 and (limit is None or limit >= len(targets))


def _shared_plan(
    settings: Settings, targets: list[IntegrationView], since: dt.date | None
) -> ReadPlan:
    """The reading that serves every target: from the oldest watermark, or everything if one
    has none. (An integration whose accounts or configuration changed since its watermark
    finds out in its subflow and reads everything on its own.)"""
    marks = Watermarks(database(settings))
    cuts = []
    for view in targets:
        mark = marks.get(view.id)
        if mark is None:
            return ReadPlan(bill_date_start=since)
        cuts.append(mark.modified_through - settings.sync_modified_overlap_seconds)
    return ReadPlan(bill_date_start=since, modified_since=min(cuts))


@flow(name="rerun_failed_syncs")
def rerun_failed_syncs(
    integration: str = "",
    bills: tuple[str, ...] = (),
    since: dt.datetime | None = None,
) -> Any:
    """Rerun only the failed ledger rows (optionally of one integration, some bills, or since).

    Args:
        integration: name or id; empty means all.
        bills: m3ter bill ids; empty means every failed bill.
        since: only failures recorded at or after this time.
    """
    tune_process()
    stopping.install()
    return _unless_interrupted(lambda: _rerun(integration, bills, since))


def _rerun(integration: str, bills: tuple[str, ...], since: dt.datetime | None) -> Any:
    settings = get_settings()
    asked = _asked([integration] if integration else None)
    entries = Ledger(database(settings)).entries(
        integration_ids=[v.id for v in asked],
        bill_ids=list(bills) or None,
        outcomes=RETRYABLE,
        since=since.timestamp() if since else None,
    )
    by_integration: dict[str, list[str]] = {}
    for entry in entries:
        by_integration.setdefault(entry.integration_id, []).append(entry.bill_id)
    views = [v for v in asked if v.id in by_integration]
    targets = [v for v in views if v.status is IntegrationStatus.CONNECTED]
    # Failed bills of a disabled or unconnected integration wait: the run says so and fails,
    # rather than end "all bills synced" with nothing rerun.
    left = [
        _not_rerun(settings, v, len(by_integration[v.id]))
        for v in views
        if v.status is not IntegrationStatus.CONNECTED
    ]
    get_run_logger().info(
        "%d failed bill(s) to rerun",
        sum(len(by_integration[v.id]) for v in targets),
    )
    per_view = {v.id: {"bill_ids": by_integration[v.id]} for v in targets}
    return _summarise(_concurrently(targets, per_view) + left, dry_run=False)
