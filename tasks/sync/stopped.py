"""How a sync run ends when its process is told to stop (Ctrl-C, SIGTERM) while it syncs.

Its integrations' subflows stop at their next call and record every bill they read but did
not send INTERRUPTED (``tasks.sync.stopping``); the run then ends Failed, its message counting
those bills and saying that the next run sends them, with the summary table and the failures
report of any run. A run stopped before any bill was sent ends Cancelled: nothing is left over.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from config.errors import Stopping
from store.ledger import Outcome
from tasks.prefect_engine import expected_cancel, expected_failure, reported
from tasks.sync.failures import cause_of, not_sent
from tasks.sync.report import IntegrationReport
from tasks.sync.summary import summarise

#: The cause a report counts INTERRUPTED bills under.
INTERRUPTED = cause_of(Outcome.INTERRUPTED.value)


class RunStopped(Stopping):
    """The process was told to stop while the run's integrations synced: ``why`` (``Ctrl-C``,
    ``SIGTERM``), what they reported, and the integrations that did not report in time."""

    def __init__(
        self, why: str, reports: list[IntegrationReport], late: list[str] | None = None
    ) -> None:
        super().__init__(f"stopped ({why})")
        self.why = why
        self.reports = reports
        self.late = late or []


def stopped_end(stop: RunStopped) -> Any:
    """The stopped run's state: Failed, counting the bills left INTERRUPTED (and any other that
    did not reach Xero); Cancelled when no bill was sent, updated or left over; the run's usual
    end (Completed) when its integrations finished before the stop reached them."""
    reports = stop.reports
    dry_run = any(r.dry_run for r in reports)
    idle = not stop.late and not any(r.sent or r.updated or r.failed for r in reports)
    if dry_run or idle:
        done = "a dry run: nothing was sent" if dry_run else "before any bill was sent"
        return expected_cancel(
            f"stopped ({stop.why}) {done}; the next run sends the bills",
            {"integrations": [r.details() for r in reports], "failed": 0},
        )
    end = summarise(reports, dry_run=False)  # the summary table, the failures report
    if end.is_completed() and not stop.late:
        return end
    return expected_failure(stopped_message(stop), reported(end.data))


def stopped_message(stop: RunStopped) -> str:
    """``"stopped (Ctrl-C): 350 bills not sent, recorded INTERRUPTED; the next run sends
    them"``, then the bills that did not reach Xero for other causes and the integrations
    that did not report in time."""
    causes: Counter[str] = Counter()
    for report in stop.reports:
        causes.update(report.causes)
    interrupted = causes.pop(INTERRUPTED, 0)
    if interrupted:
        bills = f"{interrupted} bill{'s' if interrupted != 1 else ''}"
        them = "them" if interrupted != 1 else "it"
        parts = [
            f"stopped ({stop.why}): {bills} not sent, recorded INTERRUPTED; "
            f"the next run sends {them}"
        ]
    else:
        parts = [f"stopped ({stop.why}); the next run sends the bills not read yet"]
    if +causes:
        parts.append(not_sent(+causes))
    parts += [r.disabled.note(r.integration) for r in stop.reports if r.disabled]
    if stop.late:
        parts.append(
            f"{', '.join(stop.late)} did not report in time: the ledger holds what it recorded"
        )
    return "; ".join(parts)
