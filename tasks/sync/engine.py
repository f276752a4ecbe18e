"""One integration's sync, start to end: read, plan page by page, post, record, report.

``sync_integration_body`` is what the ``sync_integration`` subflow runs once it holds the
integration's lease. Every bill it reads ends with a fate in its report (and in the ledger
when the database answers): sent, unchanged, skipped with a reason, failed with a cause, or
INTERRUPTED when the run stopped short (a wait that expired, the database away, SIGTERM).
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack
from typing import Any

from prefect import get_run_logger

from config.errors import BillSyncError, Interrupted
from config.settings import Settings, get_settings
from store.factory import credential_store, database, integration_store
from store.integrations import IntegrationView
from store.ledger import Ledger
from store.watermarks import Watermarks
from tasks.m3ter.models import Bill
from tasks.notifications import notify_disabled
from tasks.prefect_engine import flow_run_id
from tasks.sync import stopping
from tasks.sync.accounts import AccountLookup
from tasks.sync.feed import BillFeed
from tasks.sync.organisation import CodingRefused
from tasks.sync.plan import plan_page
from tasks.sync.posting import Posting, defer_bills
from tasks.sync.progress import Progress
from tasks.sync.reading import Reading, Rules, choose_reading, fingerprint
from tasks.sync.report import IntegrationReport, named
from tasks.sync.runtime import return_free_memory


def organisation_of(settings: Settings, view: IntegrationView | str) -> str:
    """The Xero organisation the integration (or integration id) posts to, by name (its
    tenant id if unnamed); empty if it has none."""
    try:
        if isinstance(view, str):
            view = integration_store(settings).get(view)
        credential = credential_store(settings).get(view.credential_id or "")
    except BillSyncError:
        return ""
    return credential.tenant_name or credential.tenant_id or ""


def disable(integration: IntegrationView, reason: str) -> str:
    """Disable the integration for ``reason`` and e-mail its notification users; returns the
    report's note.
    """
    settings = get_settings()
    integration_store(settings).disable(integration.id, reason)
    logger = get_run_logger()
    logger.error("integration %r disabled: %s", integration.name, reason)
    try:
        notify_disabled(settings, integration.config.notification_users, integration.name, reason)
    except BillSyncError as exc:
        logger.error("could not e-mail the notification users: %s", exc)
    return f"disabled: {reason}"


def sync_integration_body(
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
            integration,
            closing.enter_context(AccountLookup(settings, integration.config)),
            tenant_id=tenant_id,
            run_key=shared.id if shared is not None else None,
        )
        reading = choose_reading(settings, integration, rules, since, bill_ids, shared)
    except BaseException:
        if shared is not None:
            shared.leave(integration_id)
        raise
    logger.info("reading %s", reading.mode)
    report.read = reading.mode
    ledger = Ledger(database(settings))
    listed = frozenset(integration.config.account_ids) or None
    progress = Progress(integration, organisation, expected=reading.expected)
    posting = Posting(settings, integration, tenant_id, organisation, report)
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
            accounts, mappings, xero = rules.for_page(bills, entries)  # first: a pure plan
            plan = plan_page(
                integration.config, integration.id, bills, accounts, mappings, entries, xero
            )
            if plan.fates and not dry_run:
                ledger.record(integration.id, plan.fates, sync_run_id=flow_run_id())
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
    except CodingRefused as exc:  # nothing sent; the bills wait for the coding to be fixed
        logger.error("%s", exc)
        interrupted = str(exc)
        posting.interrupt(interrupted)
        report.problem = f"not synced: {exc}"
    except BaseException as exc:
        interrupted = interruption(exc, logger)
        if not isinstance(exc, Exception):  # SIGTERM or Ctrl-C: every poster stops at once
            stopping.request_stop(interrupted)
        if not dry_run:  # a dry run records nothing
            report.add_post(defer_bills(integration, tenant_id, unplanned, interrupted, logger))
        posting.interrupt(interrupted)
        report.problem = f"interrupted ({interrupted}); bills not read yet wait for the next sync"
        if not isinstance(exc, Exception):
            raise
    if interrupted is None and posting.interrupted is not None:  # the last tasks stopped
        interrupted = posting.interrupted
        report.problem = f"interrupted ({interrupted})"
    progress.finish()
    report.xero_calls += rules.xero_calls  # the organisation's reading counts as calls too
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


def interruption(exc: BaseException, logger: Any) -> str:
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
    report.failures = named(rules.accounts, report.failures, logger)
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
        report.disabled = disable(integration, f"Xero refused the credential: {auth_failed}")
    elif not dry_run:
        count_run(settings, integration, report)


def count_run(settings: Settings, integration: IntegrationView, report: IntegrationReport) -> None:
    """Count the run in the integration's failing streak; disable it (and say so in the report)
    once ``auto_disable_after_failed_runs`` runs in a row failed. The database away: the run
    is not counted, and the log says so."""
    failing = report.failing
    try:
        count = integration_store(settings).record_run(integration.id, failed=failing)
    except Interrupted as exc:
        get_run_logger().error("could not count the sync of %s: %s", integration.name, exc)
        return
    if failing and count >= settings.auto_disable_after_failed_runs:
        last = report.problem if report.failed == 0 and report.problem else report.message()
        report.disabled = disable(integration, f"{count} failing sync runs in a row (last: {last})")
