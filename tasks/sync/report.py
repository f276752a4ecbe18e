"""What one integration's sync did: the summary table's row, its failures, its notes.

A subflow returns it (as its result, or inside the ``RunFailed`` of its Failed state), and the
run's end is built from the reports of all its integrations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from config.errors import BillSyncError
from store.ledger import FAILED, Fate
from tasks.sync.accounts import AccountLookup
from tasks.sync.failures import BillFailure, not_sent
from tasks.sync.post import PostReport

LISTED = 200  # failed bills a report lists (all of them are counted)


class Stop(StrEnum):
    """Why an integration was not synced to the end, set where it stopped: it decides whether
    the run counts toward auto-disable (``COUNTS_TOWARD_DISABLE``) and what a person is told."""

    CODING_REFUSED = "CODING_REFUSED"  # the organisation would refuse the integration's coding
    ERROR = "ERROR"  # m3ter or Xero failed the whole integration (not one bill)
    CRASHED = "CRASHED"  # an unforeseen error (a traceback is in the logs)
    TIMED_OUT = "TIMED_OUT"  # its sync did not end within the run's timeout
    INTERRUPTED = "INTERRUPTED"  # the process stopped or the database went away: next run
    BUSY = "BUSY"  # another run holds the integration
    NOT_ENABLED = "NOT_ENABLED"  # disabled or not connected: nothing was read


#: What stops the whole integration, run after run: ``auto_disable_after_failed_runs`` of these
#: in a row disable it. Bills that fail on their own data never count (they are reported bill by
#: bill), nor does a stop that the next run recovers from by itself.
COUNTS_TOWARD_DISABLE = frozenset({Stop.CODING_REFUSED, Stop.ERROR, Stop.CRASHED, Stop.TIMED_OUT})


@dataclass(frozen=True)
class Disabled:
    """The integration sends nothing (disabled, or not connected): why, since when, and the
    flows that turn it back on."""

    reason: str
    todo: str
    since: str = ""  # "2026-12-07 10:15 UTC"; empty when this run disabled it
    status: str = "DISABLED"  # or "NOT CONNECTED"

    def note(self, integration: str) -> str:
        """The first thing a run's message says of it."""
        when = f" since {self.since}" if self.since else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{integration} is {self.status}{when}{why}; to send its bills: {self.todo}"


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
    stop: Stop | None = None  # why, as a value (set with ``problem`` by ``stopped``)
    disabled: Disabled | None = None
    auth_failed: str | None = None  # Xero refused the credential (with its words)

    @property
    def failing(self) -> bool:
        """Whether the run should end Failed for this integration."""
        return self.failed > 0 or self.problem is not None or self.disabled is not None

    @property
    def broken(self) -> bool:
        """Whether the whole integration failed (what counts toward auto-disable)."""
        return self.stop in COUNTS_TOWARD_DISABLE

    def stopped(self, stop: Stop, problem: str) -> None:
        """Record why the integration was not synced to the end (the first reason stays)."""
        if self.problem is None:
            self.stop, self.problem = stop, problem

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
            "failed": self._failed_cell(),
            "xero calls": self.xero_calls,
        }

    def _failed_cell(self) -> int | str:
        """The failed count, "not synced", and the integration's state when it sends nothing."""
        synced = self.problem is None and self.stop is None
        failed: int | str = self.failed if synced else "not synced"
        return f"{failed} · {self.disabled.status}" if self.disabled else failed

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
        """What else happened (disabled first, then not synced to the end), a sentence each
        that names the integration."""
        disabled = self.disabled.note(self.integration) if self.disabled else None
        problem = f"{self.integration} {self.problem}" if self.problem else None
        return [n for n in (disabled, problem) if n]

    def describe(self) -> str:
        """A log line with what the table leaves out."""
        if self.stop is Stop.NOT_ENABLED:  # nothing was read: only why
            return "; ".join(self.notes())
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
        """The state message of a run of this integration alone."""
        return message_of([self])

    def add_failures(self, failures: Iterable[BillFailure]) -> None:
        """Count bills that did not reach Xero (the first ``LISTED`` are kept to be named)."""
        for failure in failures:
            self.failed += 1
            self.causes[failure.cause] += 1
            if len(self.failures) < LISTED:
                self.failures.append(failure)

    def add_post(self, report: PostReport) -> None:
        """Add what a posting task reported."""
        self.sent += report.created
        self.updated += report.updated
        self.xero_calls += report.calls
        self.add_failures(report.failures)

    def add_skips(self, fates: Iterable[Fate]) -> None:
        """Count the bills the integration's own rules skipped, by reason."""
        for fate in fates:
            if fate.outcome not in FAILED:
                self.skipped[fate.reason or fate.outcome.value] += 1


def message_of(reports: Sequence[IntegrationReport]) -> str:
    """The state message of a run that left bills out: first each disabled integration (why,
    and the flows that turn it back on), then ``"15 bills not sent: 12 missing account mapping,
    3 Xero validation error"``, then any integration that was not synced to the end."""
    causes: Counter[str] = Counter()
    for report in reports:
        causes.update(report.causes)
    parts = [r.disabled.note(r.integration) for r in reports if r.disabled]
    parts += [not_sent(causes, dry_run=any(r.dry_run for r in reports))] if causes else []
    parts += [f"{r.integration} {r.problem}" for r in reports if r.problem]
    return "; ".join(parts)


def named(accounts: AccountLookup, failures: list[BillFailure], logger: Any) -> list[BillFailure]:
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
