"""Bill sync flows: ``sync_bills`` (scheduled and on demand) and ``rerun_failed_syncs``.

How the work is split (a Prefect task run costs time and the server's CPU, so there are few):
one subflow per integration (``sync <name>``, run side by side); inside it, bills are planned
in-process page by page (filters, mappings, ledger) and posted by one task per
``sync_documents_per_task`` documents, which sends them in batches of up to 50 with the
tenant's shared limits around every call. When a run syncs several integrations, one reader
(``tasks.sync.feed``) lists m3ter's bills once for all of them. After a complete read the
integration's watermark moves, so the next sync reads only what changed, plus the bills that
failed. Memory holds a few pages, the integration's accounts and the posts in flight.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from prefect import flow, get_run_logger

from config.errors import Interrupted, InvalidInput, NotFound, RunFailed
from config.integration import IntegrationStatus
from config.settings import get_settings
from flows.run_names import rerun_run_name, sync_run_name
from store.factory import database, integration_store
from store.integrations import IntegrationView
from store.ledger import FAILED, FailedOutcome, Ledger, Outcome
from tasks.m3ter.models import Bill
from tasks.prefect_api import wait_until_reachable
from tasks.prefect_engine import (
    expected_failure,
    flow_run_id,
)
from tasks.sync import handoff, stopping
from tasks.sync.assembly import run_integration
from tasks.sync.ending import count_run, organisation_of
from tasks.sync.feed import (
    BillFeed,
    ReadTracker,
    joined,
    read_bills,
)
from tasks.sync.lease import IntegrationBusy, IntegrationLease
from tasks.sync.report import IntegrationReport, Stop
from tasks.sync.runtime import tune_process
from tasks.sync.scope import can_share, nothing_new, shared_plan
from tasks.sync.stopped import RunStopped, stopped_end
from tasks.sync.summary import forget_earlier_attempts, not_synced, subflow_end, summarise
from tasks.threads import side_by_side


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

    One run at a time posts an integration's bills: another waits for the first to finish (a
    dry run posts nothing and does not wait).

    Args:
        integration_id: the integration to sync.
        integration_name: its name, for the run's name.
        since: only bills dated on or after this day.
        dry_run: show what would be sent; post nothing and record nothing.
        bill_ids: only these m3ter bills (a rerun of failed bills).
        feed: the run's shared bill reader (``sync_bills`` passes it); without one, or when it
            reads less than this integration needs, the integration reads on its own.

    Returns its ``IntegrationReport``; as a Failed state (the report in its ``RunFailed``)
    when a bill did not reach Xero.
    """
    logger = get_run_logger()
    handoff.require_in_process()
    settings = get_settings()
    shared = joined(feed)
    with ExitStack() as closing:

        def body(shared: BillFeed | None) -> IntegrationReport:
            return run_integration(
                closing,
                settings,
                integration_id,
                since=since,
                dry_run=dry_run,
                bill_ids=bill_ids,
                shared=shared,
                log=logger,
            )

        if dry_run:
            return subflow_end(body(shared))
        holder = flow_run_id() or uuid.uuid4().hex
        lease = IntegrationLease(settings, integration_id, integration_name, holder, log=logger)
        try:
            if lease.taken() is not None and shared is not None:
                shared.leave(integration_id)  # waiting must not hold back the other readers
                shared = None
            with lease:
                report = body(shared)
        except (IntegrationBusy, Interrupted) as exc:  # Interrupted: the database went away
            logger.error("%s", exc)
            report = IntegrationReport(
                integration_name,
                integration_id,
                organisation=organisation_of(settings, integration_id),
            )
            if isinstance(exc, IntegrationBusy):
                report.stopped(Stop.BUSY, f"not synced (busy): {exc}")
            else:
                report.stopped(Stop.INTERRUPTED, f"interrupted ({exc})")
        return subflow_end(report)


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
            result = state.result(raise_on_failure=False)
        except Exception:  # no result to read: handled as a crash below
            result = None
        if isinstance(result, RunFailed) and isinstance(result.details, IntegrationReport):
            return result.details
    settings = get_settings()
    report = IntegrationReport(
        view.name,
        view.id,
        organisation=organisation_of(settings, view),
        dry_run=bool(kwargs.get("dry_run")),
    )
    report.stopped(Stop.CRASHED, f"sync crashed: {str(state.message)[:300]}")
    count_run(settings, view, report, get_run_logger())
    return report


def _concurrently(
    views: list[IntegrationView],
    per_view: dict[str, dict[str, Any]] | None = None,
    **kwargs: Any,
) -> list[IntegrationReport]:
    """Each integration's subflow, side by side (their tenants' limits are shared by every
    worker through the project database, so running together is safe); ``per_view`` adds
    arguments by integration id."""
    extra = per_view or {}
    timeout = get_settings().sync_run_timeout_seconds
    if (why := stopping.stopping()) is not None:  # told to stop before any integration began
        raise RunStopped(why, [])
    outcomes = side_by_side(
        [lambda v=v: _isolated(v, **kwargs, **extra.get(v.id, {})) for v in views],
        timeout,
        name="sync-integration",
        # SIGTERM or Ctrl-C (``StopSignals``, or raised here when this thread cannot take
        # them): every poster stops, and each integration records its bills' fates before
        # the run ends (tasks.threads).
        on_interrupt=lambda exc: stopping.request_stop(
            f"the process is stopping ({type(exc).__name__})"
        ),
        stopped=lambda: stopping.stopping() is not None,
    )
    why = stopping.stopping()
    if why is not None:
        late = [v.name for v, r in zip(views, outcomes, strict=True) if isinstance(r, TimeoutError)]
        raise RunStopped(why, [r for r in outcomes if isinstance(r, IntegrationReport)], late)
    return [
        report if isinstance(report, IntegrationReport) else _timed_out(view, timeout)
        for view, report in zip(views, outcomes, strict=True)
    ]


def _timed_out(view: IntegrationView, timeout: float) -> IntegrationReport:
    """An integration whose sync outlived the run's timeout (its waits are bounded, so only a
    stuck thread gets here)."""
    report = IntegrationReport(view.name, view.id)
    report.stopped(
        Stop.TIMED_OUT, f"not synced to the end: its sync did not end within {timeout:.0f} s"
    )
    return report


@flow(name="sync_bills", flow_run_name=sync_run_name)
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
    handoff.require_in_process()
    forget_earlier_attempts()
    return _unless_interrupted(lambda: _sync_all(integrations, since, dry_run))


def _unless_interrupted(run: Callable[[], Any]) -> Any:
    """A run the project database (or a stop) cut short before any integration could report
    ends Failed with the reason in a line, not a traceback. Ctrl-C and SIGTERM stop the run's
    integrations, which record their bills' fates; the run then counts them (``stopped_end``)."""
    with stopping.StopSignals() as signals:
        try:
            return run()
        except RunStopped as stop:
            get_run_logger().warning("the run was stopped (%s)", stop.why)
            return stopped_end(stop)
        except Interrupted as exc:
            if signals.received is not None:  # stopped before any integration started
                return stopped_end(RunStopped(stopping.SIGNAL_NAMES[signals.received], []))
            get_run_logger().error("the run was interrupted: %s", exc)
            return expected_failure(f"interrupted: {exc}")
        except (InvalidInput, NotFound) as exc:  # what the person asked for: nothing was sent
            get_run_logger().error("%s", exc)
            return expected_failure(str(exc))


def _sync_all(integrations: tuple[str, ...], since: dt.date | None, dry_run: bool) -> Any:
    """Every asked integration: the connected ones synced, the others (disabled, not
    connected) reported as not synced, so a run that could not send them is not green."""
    settings = get_settings()
    asked = _asked(list(integrations) or None)
    targets = [v for v in asked if v.status is IntegrationStatus.CONNECTED]
    unsynced = [
        not_synced(settings, v) for v in asked if v.status is not IntegrationStatus.CONNECTED
    ]
    if not asked:
        get_run_logger().info("no integrations yet: create_integration, then connect_credential")
    idle = nothing_new(settings, targets)
    if idle is not None:
        return summarise(unsynced + idle, dry_run)
    try:
        if not can_share(targets):
            results = _concurrently(targets, since=since, dry_run=dry_run)
            return summarise(unsynced + results, dry_run)
        plan = shared_plan(settings, targets, since)

        def read(tracker: ReadTracker) -> Iterator[list[Bill]]:
            return read_bills(settings, plan, tracker)

        with BillFeed(plan, read, [v.id for v in targets]) as feed:
            results = _concurrently(targets, since=since, dry_run=dry_run, feed=feed.id)
    except RunStopped as stop:  # a stopped run still says which integrations send nothing
        stop.reports[:0] = unsynced
        raise
    return summarise(unsynced + results, dry_run)


@flow(name="rerun_failed_syncs", flow_run_name=rerun_run_name)
def rerun_failed_syncs(
    integration: str = "",
    bills: tuple[str, ...] = (),
    since: dt.datetime | None = None,
    outcomes: tuple[FailedOutcome, ...] = (),
) -> Any:
    """Send again the bills that did not reach Xero (every failed ledger row, or those asked
    for by integration, bill, time or outcome), once what stopped them is fixed.

    Args:
        integration: name or id; empty means all.
        bills: m3ter bill ids; empty means every failed bill.
        since: only failures recorded at or after this time.
        outcomes: only these failed outcomes (e.g. ACCOUNTING_PERIOD_CLOSED once the lock date
            moved); empty means every one.
    """
    tune_process()
    stopping.install()
    handoff.require_in_process()
    forget_earlier_attempts()
    return _unless_interrupted(lambda: _rerun(integration, bills, since, outcomes))


def _rerun(
    integration: str,
    bills: tuple[str, ...],
    since: dt.datetime | None,
    outcomes: tuple[FailedOutcome, ...],
) -> Any:
    settings = get_settings()
    asked = _asked([integration] if integration else None)
    wanted = {Outcome(o) for o in outcomes} or FAILED
    ledger = Ledger(database(settings))
    entries = ledger.entries(
        integration_ids=[v.id for v in asked],
        bill_ids=list(bills) or None,
        outcomes=wanted,
        since=since.timestamp() if since else None,
    )
    if bills:
        _refuse_unknown_bills(ledger, asked, bills, {e.bill_id for e in entries})
    by_integration: dict[str, list[str]] = {}
    for entry in entries:
        by_integration.setdefault(entry.integration_id, []).append(entry.bill_id)
    views = [v for v in asked if v.id in by_integration]
    targets = [v for v in views if v.status is IntegrationStatus.CONNECTED]
    # Failed bills of a disabled or unconnected integration wait: the run says so, counts
    # every one of them and fails, rather than end "all bills synced" with nothing rerun.
    left = [
        not_synced(settings, v, [e for e in entries if e.integration_id == v.id])
        for v in views
        if v.status is not IntegrationStatus.CONNECTED
    ]
    get_run_logger().info(
        "%d failed bill(s) to rerun",
        sum(len(by_integration[v.id]) for v in targets),
    )
    per_view = {v.id: {"bill_ids": by_integration[v.id]} for v in targets}
    return summarise(left + _concurrently(targets, per_view), dry_run=False)


def _refuse_unknown_bills(
    ledger: Ledger, views: list[IntegrationView], asked: tuple[str, ...], failed: set[str]
) -> None:
    """A bill asked for by id that is not a failed bill: refused by name (nothing is sent),
    saying whether it is already in Xero or unknown to the ledger."""
    rest = [b for b in dict.fromkeys(asked) if b not in failed]
    if not rest:
        return
    known = {
        e.bill_id: e.outcome
        for e in ledger.entries(integration_ids=[v.id for v in views], bill_ids=rest)
    }
    said = [f"{b} ({known[b].value})" if b in known else f"{b} (not in the ledger)" for b in rest]
    raise InvalidInput(
        f"not among the failed bills asked for, nothing rerun: {', '.join(said)}", field="bills"
    )
