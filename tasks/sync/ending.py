"""An integration's sync ends in the project database: the watermark, the failing streak, and
auto-disable (with an e-mail to its notification users)."""

from __future__ import annotations

import datetime as dt
import time

from config.errors import BillSyncError, Interrupted
from config.integration import IntegrationStatus
from config.settings import Settings
from store.credentials import CredentialStatus
from store.factory import credential_store, database, integration_store
from store.integrations import IntegrationView
from store.watermarks import Watermarks
from tasks.notifications import notify_disabled
from tasks.sync.organisation import connected_organisation
from tasks.sync.posting import Log
from tasks.sync.reading import Reading, Rules, fingerprint
from tasks.sync.report import Disabled, IntegrationReport, named

ENABLE = "enable_integration once what disabled it is fixed"


def organisation_of(settings: Settings, view: IntegrationView | str) -> str:
    """The Xero organisation the integration (or integration id) posts to, by name (its
    tenant id if unnamed); empty if it has none."""
    try:
        if isinstance(view, str):
            view = integration_store(settings).get(view)
    except BillSyncError:
        return ""
    return connected_organisation(settings, view.credential_id)


def reconnect(credential_name: str | None, integration: str) -> str:
    """The flows that bring back an integration whose credential Xero refused."""
    credential = f"credential {credential_name!r}" if credential_name else "its credential"
    return (
        f"reconnect {credential} to Xero (provision_xero_credential, then change_credential "
        f"of {integration!r} to the new credential), then enable_integration"
    )


def disable(
    settings: Settings, integration: IntegrationView, reason: str, todo: str, log: Log
) -> Disabled:
    """Disable the integration for ``reason`` and e-mail its notification users what to do."""
    integration_store(settings).disable(integration.id, reason)
    log.error("integration %r DISABLED: %s; to send its bills: %s", integration.name, reason, todo)
    try:
        notify_disabled(
            settings, integration.config.notification_users, integration.name, reason, todo
        )
    except BillSyncError as exc:
        log.error("could not e-mail the notification users: %s", exc)
    return Disabled(reason, todo)


def not_enabled(settings: Settings, view: IntegrationView) -> Disabled:
    """Why a disabled or unconnected integration sends nothing, since when, and what to do."""
    if view.status is IntegrationStatus.NOT_CONNECTED:
        return Disabled("", f"connect_credential {view.name!r}", status="NOT CONNECTED")
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(view.disabled_at or 0))
    try:
        refused = (
            credential_store(settings).get(view.credential_id or "").status
            is CredentialStatus.NEEDS_REAUTH
        )
    except BillSyncError:
        refused = False
    todo = reconnect(view.credential_name, view.name) if refused else ENABLE
    return Disabled(view.disabled_reason or "disabled", todo, since=since)


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
        credential = integration.credential_name
        reason = f"Xero refused credential {credential!r}: {auth_failed}"
        todo = reconnect(credential, integration.name)
        report.disabled = disable(settings, integration, reason, todo, log)
    elif not dry_run:
        count_run(settings, integration, report, log)


def count_run(
    settings: Settings, integration: IntegrationView, report: IntegrationReport, log: Log
) -> None:
    """Count the run in the integration's failing streak; disable it (and say so in the report)
    once ``auto_disable_after_failed_runs`` runs in a row stopped the whole integration
    (``IntegrationReport.broken``: its coding refused, errors, crashes). Bills that failed on
    their own data never count: they are reported bill by bill, and the other accounts' bills
    keep going. The database away: the run is not counted, and the log says so."""
    broken = report.broken
    try:
        count = integration_store(settings).record_run(integration.id, failed=broken)
    except Interrupted as exc:
        log.error("could not count the sync of %s: %s", integration.name, exc)
        return
    if broken and count >= settings.auto_disable_after_failed_runs:
        reason = f"{count} sync runs in a row stopped before the end (last: {report.problem})"
        report.disabled = disable(settings, integration, reason, ENABLE, log)
