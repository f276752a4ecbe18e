"""One integration's sync as its subflow runs it: the engine's parts made from settings.

``run_integration`` is the body of ``sync_integration`` once it holds the integration's lease:
it reads the integration and its credential, chooses the reading, gives ``IntegrationSync``
the real ledger, rules and ``post to Xero`` tasks, and records the end (``tasks.sync.ending``).
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack

from config.errors import Interrupted
from config.settings import Settings
from store.factory import credential_store, database, integration_store
from store.ledger import Ledger
from tasks.prefect_engine import flow_run_id
from tasks.sync.accounts import AccountLookup
from tasks.sync.ending import conclude
from tasks.sync.engine import IntegrationSync
from tasks.sync.feed import BillFeed
from tasks.sync.limits import ensure_tenant_limits
from tasks.sync.post_task import PostingTasks
from tasks.sync.posting import Log, Posting, Recorder
from tasks.sync.progress import Progress
from tasks.sync.reading import Rules, choose_reading
from tasks.sync.report import IntegrationReport, Stop


def run_integration(
    closing: ExitStack,
    settings: Settings,
    integration_id: str,
    *,
    since: dt.date | None,
    dry_run: bool,
    bill_ids: list[str] | None,
    shared: BillFeed | None,
    log: Log,
) -> IntegrationReport:
    """Read, plan page by page, post, record, report (``closing`` closes what it opens,
    however it ends)."""
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
    log.info("reading %s", reading.mode)
    report.read = reading.mode
    ledger = Ledger(database(settings))
    recorder = Recorder(integration.id, tenant_id, ledger, flow_run_id(), log)
    sync = IntegrationSync(
        integration=integration,
        report=report,
        pages=reading.pages,
        rules=rules,
        ledger=ledger,
        posting=Posting(
            settings,
            report,
            submit=PostingTasks(integration, tenant_id, organisation),
            recorder=recorder,
            prepare=lambda: ensure_tenant_limits(settings, tenant_id),
            log=log,
        ),
        recorder=recorder,
        log=log,
        progress=Progress(integration, organisation, expected=reading.expected),
        dry_run=dry_run,
    )
    sync.run()
    try:
        conclude(
            settings,
            integration,
            rules,
            reading,
            report,
            since=since,
            dry_run=dry_run,
            interrupted=sync.interrupted,
            log=log,
        )
    except Interrupted as exc:  # the database went away at the very end
        log.error("could not record the end of this sync: %s", exc)
        report.stopped(Stop.INTERRUPTED, f"interrupted at the end ({exc})")
    log.info(
        "%s: sent %d, updated %d, unchanged %d, skipped %d, failed %d",
        integration.name,
        report.sent,
        report.updated,
        report.unchanged,
        sum(report.skipped.values()),
        report.failed,
    )
    return report
