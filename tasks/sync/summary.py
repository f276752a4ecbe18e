"""How a sync run and each integration's subflow end: the Prefect state a person sees, the
summary table, the failures report; and what a caller reads back from a finished run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed

from config.errors import RunFailed
from config.settings import Settings, get_settings
from store.integrations import IntegrationView
from store.ledger import LedgerEntry
from tasks.prefect_api import wait_until_reachable
from tasks.prefect_engine import expected_failure, reported
from tasks.sync.ending import not_enabled, organisation_of
from tasks.sync.failures import BillFailure, report_markdown
from tasks.sync.report import LISTED, IntegrationReport, Stop, message_of


def forget_earlier_attempts() -> int:
    """A run retried (Prefect's Retry) shows what its last attempt did: the reports of its
    earlier attempts (summary, failures) are deleted as a new attempt starts. Best effort: the
    API away, they stay, and the log says so. Returns how many were deleted."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or (run.run_count or 0) <= 1:
        return 0
    logger = get_run_logger()
    try:
        with get_client(sync_client=True) as client:
            earlier = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
            for artifact in earlier:
                client.delete_artifact(artifact.id)
    except Exception as exc:  # noqa: BLE001 (the run's work matters more than old reports)
        logger.warning("could not remove the reports of this run's earlier attempts: %s", exc)
        return 0
    if earlier:
        logger.info(
            "attempt %d: removed %d report(s) of the earlier attempts", run.run_count, len(earlier)
        )
    return len(earlier)


def subflow_end(report: IntegrationReport) -> Any:
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


def run_summary(state: Any) -> dict[str, Any]:
    """What a ``sync_bills`` or ``rerun_failed_syncs`` run reports (``integrations`` rows,
    ``failed``), whether it Completed or Failed; empty when it crashed before reporting."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException) and not isinstance(value, RunFailed):
        return {}  # crashed: no report
    report = reported(value)
    return report if isinstance(report, dict) else {}


def not_synced(
    settings: Settings, view: IntegrationView, waiting: Sequence[LedgerEntry] = ()
) -> IntegrationReport:
    """An integration a run cannot sync (disabled, or not connected): named first with since
    when, why and the flow that brings it back, and the failed bills that wait (a rerun's)
    counted by cause. It fails the run."""
    report = IntegrationReport(
        view.name,
        view.id,
        organisation=organisation_of(settings, view),
        stop=Stop.NOT_ENABLED,
        disabled=not_enabled(settings, view),
    )
    report.add_failures(
        BillFailure(e.bill_id, e.outcome.value, e.reason or "", account_id=e.account_id)
        for e in waiting
    )
    return report


def summarise(reports: list[IntegrationReport], dry_run: bool) -> Any:
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
        table=[r.row() for r in reports] or [{"integration": "(none: create_integration)"}],
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
        done = "all bills synced" if reports else "no integrations to sync: create_integration"
        return Completed(message=done, data=summary)
    message = message_of(reports)
    listed = [(r.integration, r.organisation, f) for r in reports for f in r.failures]
    create_markdown_artifact(
        markdown=report_markdown(
            message,
            listed[:LISTED],
            total=summary["failed"],
            notes=[n for r in failing for n in r.notes()],
            disabled={r.integration for r in reports if r.disabled},
        ),
        key="bill-sync-failures",
        description="Bills that did not reach Xero, and what to do about each",
    )
    return expected_failure(message, summary)
