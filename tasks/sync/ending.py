"""An integration's sync ends in the project database: the watermark, the failing streak, and
auto-disable (with an e-mail to its notification users)."""

from __future__ import annotations

import datetime as dt

from config.errors import BillSyncError, Interrupted
from config.settings import Settings
from store.factory import credential_store, database, integration_store
from store.integrations import IntegrationView
from store.watermarks import Watermarks
from tasks.notifications import notify_disabled
from tasks.sync.posting import Log
from tasks.sync.reading import Reading, Rules, fingerprint
from tasks.sync.report import IntegrationReport, named


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


def disable(settings: Settings, integration: IntegrationView, reason: str, log: Log) -> str:
    """Disable the integration for ``reason`` and e-mail its notification users; returns the
    report's note."""
    integration_store(settings).disable(integration.id, reason)
    log.error("integration %r disabled: %s", integration.name, reason)
    try:
        notify_disabled(settings, integration.config.notification_users, integration.name, reason)
    except BillSyncError as exc:
        log.error("could not e-mail the notification users: %s", exc)
    return f"disabled: {reason}"


def conclude(
    settings: Settings,
    integration: IntegrationView,
    rules: Rules,
    reading: Reading,
    report: IntegrationReport,
    *,
    since: dt.date | None,
    dry_run: bool,
    interrupted: str | None,
    log: Log,
) -> None:
    """After the posting: name the failed bills' accounts, move the watermark after a whole
    read, count the run for auto-disable (and disable)."""
    report.failures = named(rules.accounts, report.failures, log)
    if rules.accounts.requests:
        log.info(
            "looked up %d account(s) in %d request(s)",
            rules.accounts.looked_up,
            rules.accounts.requests,
        )
    through = reading.modified_through()
    if through is not None and since is None and not dry_run and interrupted is None:
        Watermarks(database(settings)).advance(integration.id, fingerprint(integration), through)
    auth_failed = report.auth_failed
    if auth_failed is not None:
        reason = f"Xero refused the credential: {auth_failed}"
        report.disabled = disable(settings, integration, reason, log)
    elif not dry_run:
        count_run(settings, integration, report, log)


def count_run(
    settings: Settings, integration: IntegrationView, report: IntegrationReport, log: Log
) -> None:
    """Count the run in the integration's failing streak; disable it (and say so in the report)
    once ``auto_disable_after_failed_runs`` runs in a row failed. The database away: the run
    is not counted, and the log says so."""
    failing = report.failing
    try:
        count = integration_store(settings).record_run(integration.id, failed=failing)
    except Interrupted as exc:
        log.error("could not count the sync of %s: %s", integration.name, exc)
        return
    if failing and count >= settings.auto_disable_after_failed_runs:
        last = report.problem if report.failed == 0 and report.problem else report.message()
        reason = f"{count} failing sync runs in a row (last: {last})"
        report.disabled = disable(settings, integration, reason, log)
