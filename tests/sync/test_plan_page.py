"""``plan_page`` bill by bill (pure): what costs nothing, what is skipped and why, what fails,
and how each bill that goes to Xero is sent (create, update in place, look up first, withdraw
the document of the other kind first). Builds on the helpers of ``test_plan``."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from config.integration import validate_config
from store.ledger import LedgerEntry, Outcome
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.sync.plan import ACCOUNT_EXCLUDED, plan_page
from tests.sync.test_plan import ACCOUNT, INTEGRATION, bill, entry

CONFIG = validate_config({"name": "t"})
ACCOUNTS = {"acc-1": ACCOUNT}


def credit(bill_id: str = "bill-1", version: int = 2, **fields: Any) -> Bill:
    """A bill whose total is negative: a credit note."""
    line = {
        "averageUnitPrice": "-25",
        "conversionRate": 1,
        "convertedSubtotal": "-25",
        "currency": "GBP",
        "description": "Service credit",
        "lineItemType": "CREDIT_MEMO",
        "quantity": "1",
        "subtotal": "-25",
        "unit": "credit",
        "units": "1",
    }
    return bill(bill_id, version, lineItems=[line], **fields)


def sent(bill_id: str, kind: str, xero_id: str, version: int = 1) -> LedgerEntry:
    """The ledger row of a bill whose ``version`` made the Xero document ``xero_id``."""
    return replace(
        entry(bill_id, Outcome.COMPLETE, version=version),
        document_type=kind,
        invoice_number=bill_id,
        xero_id=xero_id,
        attempts=1,
    )


def test_a_page_of_every_case_each_bill_planned_once() -> None:
    config = validate_config(
        {
            "name": "t",
            "use_external_mapping_account_code": True,
            "restricted_account_ids": ["acc-r"],
        }
    )
    mapped = ExternalMapping.model_validate(
        {
            "id": "m-1",
            "externalId": "6f5b5c8e-8a3b-4c1e-9a52-3b3f0e7b2a11",
            "externalSystem": "Xero",
            "externalTable": "Contact",
            "m3terEntity": "Account",
            "m3terId": "acc-1",
        }
    )
    restricted = Account.model_validate({"id": "acc-r", "name": "Restricted Ltd", "code": "R"})
    unmapped = Account.model_validate({"id": "acc-u", "name": "Unmapped Ltd", "code": "U"})
    accounts = {"acc-1": ACCOUNT, "acc-r": restricted, "acc-u": unmapped}
    bills = [
        bill("done"),
        bill("new"),
        bill("gone", accountId="acc-x"),  # an account the integration does not send
        bill("restricted", accountId="acc-r"),
        bill("unmapped", accountId="acc-u"),
    ]
    ledger = {"done": entry("done", Outcome.COMPLETE)}
    plan = plan_page(config, INTEGRATION, bills, accounts, [mapped], ledger)

    assert plan.unchanged == 1
    assert [s.bill_id for s in plan.sends] == ["new"]
    (new,) = plan.sends
    assert new.document["Contact"] == {"ContactID": mapped.external_id}
    fates = {f.bill_id: f for f in plan.fates}
    assert set(fates) == {"gone", "restricted", "unmapped"}
    assert (fates["gone"].outcome, fates["gone"].reason) == (Outcome.SKIPPED, ACCOUNT_EXCLUDED)
    assert (fates["restricted"].outcome, fates["restricted"].reason) == (
        Outcome.SKIPPED,
        "account acc-r is excluded by the integration",
    )
    assert fates["unmapped"].outcome is Outcome.MISSING_ACCOUNT_MAPPING
    assert fates["unmapped"].reason == "no Xero Contact external mapping for account acc-u"
    assert all(f.bill_version == 2 for f in plan.fates)
    assert fates["restricted"].account_id == "acc-r"
    # Only the failure is a failure: a skip is the integration doing what it was told.
    assert [(f.bill_id, f.outcome) for f in plan.failures] == [
        ("unmapped", "MISSING_ACCOUNT_MAPPING")
    ]


def test_a_bill_complete_at_its_version_or_a_later_one_costs_nothing() -> None:
    ledger = {
        "same": entry("same", Outcome.COMPLETE, version=2),
        "older": entry("older", Outcome.COMPLETE, version=3),  # the read lags the ledger
    }
    bills = [bill("same", version=2), bill("older", version=2)]
    plan = plan_page(CONFIG, INTEGRATION, bills, ACCOUNTS, [], ledger)
    assert (plan.unchanged, plan.sends, plan.fates, plan.failures) == (2, [], [], [])


def test_a_new_bill_is_created_with_its_number_date_and_total() -> None:
    plan = plan_page(CONFIG, INTEGRATION, [bill(version=4)], ACCOUNTS, [], {})
    (send,) = plan.sends
    assert (send.kind, send.bill_version, send.account_id) == ("invoice", 4, "acc-1")
    assert (send.xero_id, send.withdraw_id, send.lookup_first) == (None, None, False)
    assert send.number == "bill-1" == send.document["InvoiceNumber"]
    assert send.document["Contact"] == {"ContactNumber": "acc-1", "Name": "Acme Ltd"}
    assert (send.total, send.bill_date) == (Decimal("10.01"), "2024-02-01")
    assert plan.unchanged == 0 and not plan.fates


def test_a_regenerated_bill_is_sent_as_an_update_of_its_xero_document() -> None:
    ledger = {"bill-1": sent("bill-1", "invoice", "INV-ID", version=1)}
    plan = plan_page(CONFIG, INTEGRATION, [bill(version=2)], ACCOUNTS, [], ledger)
    (send,) = plan.sends
    assert (send.kind, send.bill_version, send.xero_id) == ("invoice", 2, "INV-ID")
    assert (send.withdraw_id, send.lookup_first) == (None, False)
    assert plan.unchanged == 0


def test_a_bill_that_failed_before_is_planned_again() -> None:
    refused = replace(
        entry("refused", Outcome.ERROR, reason="The currency code is not valid"), attempts=1
    )
    deferred = entry("deferred", Outcome.RATE_LIMIT_RETRY, reason="deferred to the next run")
    paid = replace(
        sent("paid", "invoice", "INV-PAID", version=1),
        outcome=Outcome.INVOICE_ALREADY_PAID,
        bill_version=2,
        sent_version=1,
    )
    ledger = {"refused": refused, "deferred": deferred, "paid": paid}
    bills = [bill("refused"), bill("deferred"), bill("paid")]
    plan = plan_page(CONFIG, INTEGRATION, bills, ACCOUNTS, [], ledger)

    assert plan.unchanged == 0 and not plan.fates
    sends = {s.bill_id: s for s in plan.sends}
    assert set(sends) == {"refused", "deferred", "paid"}
    # An attempt reached Xero (or may have) without an id to show: looked up by number first.
    assert (sends["refused"].lookup_first, sends["refused"].started_version) == (True, 2)
    assert sends["deferred"].lookup_first is False  # never attempted: created straight away
    assert (sends["paid"].xero_id, sends["paid"].lookup_first) == ("INV-PAID", False)


def test_a_bill_whose_sign_changed_withdraws_its_old_document() -> None:
    ledger = {"bill-1": sent("bill-1", "invoice", "INV-ID", version=1)}
    plan = plan_page(CONFIG, INTEGRATION, [credit(version=2)], ACCOUNTS, [], ledger)
    (send,) = plan.sends
    assert (send.kind, send.withdraw_id, send.xero_id) == ("credit_note", "INV-ID", None)
    assert send.document["Type"] == "ACCRECCREDIT"
    assert send.number == "bill-1" == send.document["CreditNoteNumber"]
    assert send.total == Decimal("25.00")  # Xero's credit notes carry positive totals

    # And back: a credit note that is an invoice again.
    back = {"bill-1": sent("bill-1", "credit_note", "CN-ID", version=2)}
    again = plan_page(CONFIG, INTEGRATION, [bill(version=3)], ACCOUNTS, [], back)
    (send,) = again.sends
    assert (send.kind, send.withdraw_id, send.xero_id) == ("invoice", "CN-ID", None)


def test_a_sign_change_before_any_document_was_made_withdraws_nothing() -> None:
    failed = replace(
        entry("bill-1", Outcome.MISSING_ACCOUNT_MAPPING, version=1), document_type="invoice"
    )
    plan = plan_page(CONFIG, INTEGRATION, [credit()], ACCOUNTS, [], {"bill-1": failed})
    (send,) = plan.sends
    assert (send.kind, send.withdraw_id, send.xero_id) == ("credit_note", None, None)


def test_a_skip_whose_reason_changed_is_recorded_again() -> None:
    config = validate_config({"name": "t", "only_send_bill_on_approval": True})
    ledger = {"bill-1": entry("bill-1", Outcome.SKIPPED, reason=ACCOUNT_EXCLUDED)}
    pending = bill(status="PENDING")
    plan = plan_page(config, INTEGRATION, [pending], ACCOUNTS, [], ledger)
    (fate,) = plan.fates
    assert fate.outcome is Outcome.SKIPPED
    assert fate.reason == "bill is PENDING: only approved bills are sent"
    assert plan.unchanged == 0 and not plan.failures
    # A new version of a skipped bill is recorded again too (its version changed).
    newer = plan_page(
        config,
        INTEGRATION,
        [bill(status="PENDING", version=3)],
        ACCOUNTS,
        [],
        {
            "bill-1": entry("bill-1", Outcome.SKIPPED, reason=fate.reason or ""),
        },
    )
    assert [(f.bill_version, f.outcome) for f in newer.fates] == [(3, Outcome.SKIPPED)]
