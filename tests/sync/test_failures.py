"""How bills that did not reach Xero are counted, worded and explained (pure)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from store.ledger import Outcome
from tasks.sync.failures import BillFailure, cause_of, fix_for, not_sent, report_markdown


def failure(outcome: Outcome, reason: str = "", **fields: object) -> BillFailure:
    return BillFailure(
        "bill-1",
        outcome.value,
        reason,
        account_id="acc-1",
        account_name="Acme Ltd",
        account_code="ACME",
        bill_date="2024-02-01",
        amount=Decimal("10.01"),
        currency="GBP",
        **fields,  # type: ignore[arg-type]
    )


def test_the_message_counts_bills_by_cause_biggest_first() -> None:
    causes = Counter({"Xero validation error": 3, "missing account mapping": 12})
    assert (
        not_sent(causes) == "15 bills not sent: 12 missing account mapping, 3 Xero validation error"
    )
    assert not_sent(Counter({"missing account mapping": 1})) == (
        "1 bill not sent: 1 missing account mapping"
    )
    assert not_sent(Counter({"Xero unavailable": 2}), of=50) == (
        "2 of 50 bills not sent: 2 Xero unavailable"
    )
    assert not_sent(Counter({"missing account mapping": 2}), dry_run=True).startswith(
        "2 bills would not be sent:"
    )


@pytest.mark.parametrize(
    ("outcome", "reason", "cause"),
    [
        (
            Outcome.MISSING_ACCOUNT_MAPPING,
            "no Xero Contact external mapping",
            "missing account mapping",
        ),
        (Outcome.ERROR, "The currency code is not valid", "Xero validation error"),
        (Outcome.ERROR, "outcome unknown after 8 attempts: 500", "Xero unavailable"),
        (Outcome.AUTH_FAILED, "invalid_grant", "Xero refused the credential"),
        (Outcome.RATE_LIMIT_RETRY, "daily limit", "deferred by Xero's rate limit"),
        (Outcome.INVOICE_ALREADY_PAID, "valid status", "already paid in Xero"),
        (Outcome.ACCOUNTING_PERIOD_CLOSED, "lock date", "accounting period closed in Xero"),
    ],
)
def test_causes(outcome: Outcome, reason: str, cause: str) -> None:
    assert cause_of(outcome.value, reason) == cause


def test_each_outcome_says_what_a_person_can_do() -> None:
    def fix(outcome: Outcome, reason: str = "") -> str:
        return fix_for(failure(outcome, reason), "Main", "Demo Company (UK)")

    assert fix(Outcome.MISSING_ACCOUNT_MAPPING) == (
        "add an Account → Xero Contact external mapping in m3ter for account Acme Ltd (ACME), "
        "then run rerun_failed_syncs"
    )
    assert "linked to this integration" in fix(
        Outcome.MISSING_ACCOUNT_MAPPING, "no mapping for acc-1 linked to integration i-1"
    )
    assert "provision_xero_credential, then change_credential" in fix(Outcome.AUTH_FAILED)
    assert fix(Outcome.RATE_LIMIT_RETRY).startswith("nothing: the next run")
    assert fix(Outcome.ERROR, "outcome unknown after 8 attempts").startswith("nothing:")
    assert "Demo Company (UK)" in fix(Outcome.INVOICE_ALREADY_PAID)
    assert "lock date" in fix(Outcome.ACCOUNTING_PERIOD_CLOSED)
    invalid = fix(Outcome.ERROR, "The currency code is not valid")
    assert "The currency code is not valid" in invalid and "rerun_failed_syncs" in invalid


def test_the_report_lists_what_to_do_once_and_every_bill_with_its_details() -> None:
    rows = [("Main", "Demo Company (UK)", failure(Outcome.MISSING_ACCOUNT_MAPPING))] * 2
    markdown = report_markdown("2 bills not sent: 2 missing account mapping", rows, total=3)
    assert markdown.startswith("# 2 bills not sent: 2 missing account mapping")
    assert markdown.count("then run rerun_failed_syncs (2 bills)") == 1
    assert "(the first 2 of 3)" in markdown
    assert "### Main → Demo Company (UK)" in markdown
    assert "- **Acme Ltd (ACME)**, 2024-02-01, 10.01 GBP: MISSING_ACCOUNT_MAPPING" in markdown
    unnamed = BillFailure("bill-2", "ERROR", "a | b", account_id="acc-9")
    assert unnamed.account == "acc-9"
    assert "a / b" in report_markdown("x", [("Main", "Org", unnamed)], total=1)
