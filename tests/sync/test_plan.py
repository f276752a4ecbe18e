"""Planning a page against the ledger: what is free (unchanged), what is sent, what fails."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from config.integration import validate_config
from store.ledger import LedgerEntry, Outcome
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.sync.plan import ACCOUNT_EXCLUDED, plan_page

INTEGRATION = "7d0c4c8e-1111-4c1e-9a52-3b3f0e7b2a11"
ACCOUNT = Account.model_validate({"id": "acc-1", "name": "Acme Ltd", "code": "ACME"})


def bill(bill_id: str = "bill-1", version: int = 2, **fields: Any) -> Bill:
    line = {
        "averageUnitPrice": "10.005",
        "conversionRate": 1,
        "convertedSubtotal": "10.005",
        "currency": "GBP",
        "description": "Platform fee",
        "lineItemType": "STANDING_CHARGE",
        "quantity": "1",
        "subtotal": "10.005",
        "unit": "month",
        "units": "1",
    }
    return Bill.model_validate(
        {
            "id": bill_id,
            "version": version,
            "accountId": "acc-1",
            "currency": "GBP",
            "billDate": "2024-02-01",
            "status": "APPROVED",
            "lineItems": [line],
            **fields,
        }
    )


def entry(bill_id: str, outcome: Outcome, version: int = 2, reason: str = "") -> LedgerEntry:
    return LedgerEntry(
        integration_id=INTEGRATION,
        bill_id=bill_id,
        account_id="acc-1",
        bill_version=version,
        sent_version=version if outcome is Outcome.COMPLETE else None,
        document_type=None,
        invoice_number=None,
        xero_id=None,
        tenant_id=None,
        outcome=outcome,
        reason=reason,
        attempts=0,
        idempotency_key=None,
        updated_at=0.0,
    )


def test_a_bill_that_failed_is_planned_again_and_fails_again_not_unchanged() -> None:
    config = validate_config({"name": "t", "use_external_mapping_account_code": True})
    first = plan_page(config, INTEGRATION, [bill()], {"acc-1": ACCOUNT}, [], {})
    (fate,) = first.fates
    assert fate.outcome is Outcome.MISSING_ACCOUNT_MAPPING
    assert first.unchanged == 0

    # The ledger row says so at the same version: the next run must count it failed again.
    ledger = {"bill-1": entry("bill-1", fate.outcome, reason=fate.reason or "")}
    again = plan_page(config, INTEGRATION, [bill()], {"acc-1": ACCOUNT}, [], ledger)
    assert again.unchanged == 0
    assert [f.outcome for f in again.fates] == [Outcome.MISSING_ACCOUNT_MAPPING]

    # Once the mapping exists, it is sent.
    mapping = ExternalMapping.model_validate(
        {
            "id": "m-1",
            "externalId": "6f5b5c8e-8a3b-4c1e-9a52-3b3f0e7b2a11",
            "externalSystem": "Xero",
            "externalTable": "Contact",
            "m3terEntity": "Account",
            "m3terId": "acc-1",
        }
    )
    fixed = plan_page(config, INTEGRATION, [bill()], {"acc-1": ACCOUNT}, [mapping], ledger)
    assert [s.bill_id for s in fixed.sends] == ["bill-1"] and not fixed.fates


def test_a_skip_at_the_same_version_for_the_same_reason_stays_free() -> None:
    config = validate_config({"name": "t", "only_send_bill_on_approval": True})
    pending = bill(status="PENDING")
    (fate,) = plan_page(config, INTEGRATION, [pending], {"acc-1": ACCOUNT}, [], {}).fates
    assert fate.outcome is Outcome.SKIPPED
    ledger = {"bill-1": entry("bill-1", Outcome.SKIPPED, reason=fate.reason or "")}
    again = plan_page(config, INTEGRATION, [pending], {"acc-1": ACCOUNT}, [], ledger)
    assert (again.unchanged, again.fates, again.sends) == (1, [], [])
    excluded = {"bill-1": entry("bill-1", Outcome.SKIPPED, reason=ACCOUNT_EXCLUDED)}
    off = plan_page(config, INTEGRATION, [pending], {}, [], excluded)
    assert (off.unchanged, off.fates) == (1, [])


def test_a_failure_names_the_account_the_date_and_the_amount() -> None:
    config = validate_config({"name": "t", "use_external_mapping_account_code": True})
    plan = plan_page(config, INTEGRATION, [bill()], {"acc-1": ACCOUNT}, [], {})
    (failure,) = plan.failures
    assert failure.bill_id == "bill-1"
    assert (failure.account_name, failure.account_code) == ("Acme Ltd", "ACME")
    assert (failure.bill_date, failure.amount, failure.currency) == (
        "2024-02-01",
        Decimal("10.01"),
        "GBP",
    )
    assert failure.outcome == "MISSING_ACCOUNT_MAPPING"
