"""Bills that did not reach Xero, as a person needs them: which bill (account, date, amount),
why (the outcome and Xero's words), and what to do about it.

A run's state message counts them by cause ("15 bills not sent: 12 missing account mapping,
3 Xero validation error"); the failures report lists them with the fix. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from store.ledger import Outcome

#: Reasons ``TenantPoster`` gives an ERROR that Xero did not decide (no answer, 5xx, timeouts).
UNANSWERED = ("outcome unknown after", "Xero's answer omitted", "cannot be found")

CAUSES = {
    Outcome.MISSING_ACCOUNT_MAPPING.value: "missing account mapping",
    Outcome.AUTH_FAILED.value: "Xero refused the credential",
    Outcome.RATE_LIMIT_RETRY.value: "deferred by Xero's rate limit",
    Outcome.INVOICE_ALREADY_PAID.value: "already paid in Xero",
    Outcome.ACCOUNTING_PERIOD_CLOSED.value: "accounting period closed in Xero",
    Outcome.STARTED.value: "outcome unknown",
    Outcome.INTERRUPTED.value: "interrupted",
    Outcome.CURRENCY_NOT_SUBSCRIBED.value: "currency not subscribed in Xero",
    Outcome.CONTACT_ARCHIVED.value: "contact archived in Xero",
}


@dataclass(frozen=True)
class BillFailure:
    """One bill that did not reach Xero, with what a person needs to find and fix it."""

    bill_id: str
    outcome: str
    reason: str = ""
    account_id: str | None = None
    account_name: str | None = None
    account_code: str | None = None
    bill_date: str | None = None
    amount: Decimal | None = None  # the bill's total (negative for a credit)
    currency: str | None = None
    document: str | None = None  # "invoice" or "credit_note", when one was made

    @property
    def cause(self) -> str:
        """The cause a person reads in the run's message (one of a few words)."""
        return cause_of(self.outcome, self.reason)

    @property
    def account(self) -> str:
        """The account as a person knows it: ``Name (CODE)``, else its id."""
        if self.account_name and self.account_code:
            return f"{self.account_name} ({self.account_code})"
        return self.account_name or self.account_code or self.account_id or "an unknown account"

    def named(self, accounts: dict[str, Any]) -> BillFailure:
        """This failure with its account's name and code from ``accounts`` (by id), if there."""
        found = accounts.get(self.account_id or "")
        if found is None or (self.account_name and self.account_code):
            return self
        return replace(self, account_name=found.name, account_code=found.code)


def cause_of(outcome: str, reason: str = "") -> str:
    """The short cause a run's message counts: one phrase per thing a person would do."""
    if outcome == Outcome.ERROR.value:
        if any(marker in reason for marker in UNANSWERED):
            return "Xero unavailable"
        return "Xero validation error"
    return CAUSES.get(outcome, outcome.lower().replace("_", " "))


def count_causes(failures: Iterable[BillFailure]) -> Counter[str]:
    """Failures counted by cause."""
    return Counter(f.cause for f in failures)


def not_sent(causes: Counter[str], *, of: int | None = None, dry_run: bool = False) -> str:
    """``"15 bills not sent: 12 missing account mapping, 3 Xero validation error"`` (``"15 of
    500 bills …"`` with ``of``)."""
    total = sum(causes.values())
    parts = ", ".join(f"{n} {cause}" for cause, n in sorted(causes.items(), key=_biggest))
    verb = "would not be sent" if dry_run else "not sent"
    count = f"{total} of {of}" if of is not None else str(total)
    plural = (of if of is not None else total) != 1
    return f"{count} bill{'s' if plural else ''} {verb}: {parts}"


def _biggest(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def fix_for(
    failure: BillFailure, integration: str, organisation: str, *, disabled: bool = False
) -> str:
    """What a person can do so that the bill reaches Xero (or why nobody needs to). A
    ``disabled`` integration refuses a rerun, so its fixes enable it first: "What to do" never
    points to a flow that refuses."""
    if disabled:
        rerun = "then enable_integration and run rerun_failed_syncs"
        nothing = "nothing but enable_integration: the next run then"
    else:
        rerun = "then run rerun_failed_syncs"
        nothing = "nothing: the next run"
    outcome, reason = failure.outcome, failure.reason
    if outcome == Outcome.MISSING_ACCOUNT_MAPPING.value and "account code" in reason:
        return (
            "map the line's product to a Xero Account (or Item) in m3ter's external mappings, "
            "or give the integration an account code for that line type or a default account "
            f"code, {rerun}"
        )
    if outcome == Outcome.CURRENCY_NOT_SUBSCRIBED.value:
        return f"add the currency in Xero ({organisation}: Settings → Currencies), {rerun}"
    if outcome == Outcome.CONTACT_ARCHIVED.value:
        return f"restore the contact in Xero ({organisation}), {rerun}"
    if outcome == Outcome.MISSING_ACCOUNT_MAPPING.value:
        linked = " linked to this integration" if "linked to integration" in reason else ""
        return (
            "add an Account → Xero Contact external mapping in m3ter for account "
            f"{failure.account}{linked}, {rerun}"
        )
    if outcome == Outcome.AUTH_FAILED.value:
        return (
            f"reconnect the credential of {integration} (provision_xero_credential, then "
            f"change_credential; enable_integration if it was disabled), {rerun}"
        )
    if outcome == Outcome.RATE_LIMIT_RETRY.value:
        return f"{nothing} retries it"
    if outcome == Outcome.INTERRUPTED.value:
        return f"{nothing} sends it"
    if outcome == Outcome.STARTED.value:
        return f"{nothing} looks it up in Xero and finishes it"
    if outcome == Outcome.INVOICE_ALREADY_PAID.value:
        return (
            f"in Xero ({organisation}), the bill's document is paid or no longer editable: "
            "remove the payment (or void it and enter the change by hand), "
            f"{rerun}; or leave it if the paid document stands"
        )
    if outcome == Outcome.ACCOUNTING_PERIOD_CLOSED.value:
        return (
            f"in Xero ({organisation}), the bill's date is before the lock date: move the lock "
            "date (Settings → Advanced → Financial settings) or date the change in an open "
            f"period, {rerun}"
        )
    if cause_of(outcome, reason) == "Xero unavailable":
        return f"{nothing} looks it up in Xero and retries it"
    return (
        f"fix what Xero names ({_short(reason)}): in m3ter (the bill, account {failure.account}, "
        f"the integration's options) or in Xero ({organisation}), {rerun}"
    )


def _short(text: str, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", text).strip() or "no reason given"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def money(failure: BillFailure) -> str:
    """An amount as a person reads it: two decimals, the currency after."""
    if failure.amount is None:
        return ""
    return f"{failure.amount} {failure.currency or ''}".strip()


def _cell(text: Any) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def report_markdown(
    message: str,
    listed: Iterable[tuple[str, str, BillFailure]],
    *,
    total: int,
    notes: Iterable[str] = (),
    disabled: Collection[str] = (),
) -> str:
    """The failures report: the run's message, what to do (once per fix), then every listed
    bill (integration, organisation, failure) with its own fix; the bills of ``disabled``
    integrations are told to enable it before a rerun."""
    rows = list(listed)

    def fix(failure: BillFailure, integration: str, organisation: str) -> str:
        return fix_for(failure, integration, organisation, disabled=integration in disabled)

    fixes: Counter[str] = Counter()
    for integration, organisation, failure in rows:
        fixes[f"**{integration}**: {fix(failure, integration, organisation)}"] += 1
    lines = [f"# {message}", ""]
    notes = list(notes)
    if notes:
        lines += [*(f"- {_cell(n)}" for n in notes), ""]
    if fixes:
        lines += ["## What to do", ""]
        lines += [
            f"- {fix} ({n} bill{'' if n == 1 else 's'})"
            for fix, n in sorted(fixes.items(), key=_biggest)
        ]
        lines.append("")
        shown = f" (the first {len(rows)} of {total})" if total > len(rows) else ""
        lines += [f"## Bills{shown}", ""]
        # One list per integration and organisation: a line per bill wraps to any width,
        # where a table of seven columns ran off the right edge of the artifact page.
        groups: dict[tuple[str, str], list[BillFailure]] = {}
        for integration, organisation, f in rows:
            groups.setdefault((integration, organisation), []).append(f)
        for (integration, organisation), failures in groups.items():
            lines += [f"### {_cell(integration)} → {_cell(organisation)}", ""]
            lines += [
                f"- **{_cell(f.account)}**, "
                + ", ".join(p for p in (f.bill_date or "no date", money(f)) if p)
                + f": {f.outcome}, {_cell(_short(_reason(f), 300))} → "
                f"{_cell(fix(f, integration, organisation))} (bill `{f.bill_id}`)"
                for f in failures
            ]
            lines.append("")
    return "\n".join(lines)


def _reason(failure: BillFailure) -> str:
    """The reason a bill's line gives: an interruption's, which every bill of the run shares,
    is said once at the top of the report."""
    if failure.outcome == Outcome.INTERRUPTED.value:
        return "not sent: the run was interrupted (why: at the top)"
    return failure.reason
