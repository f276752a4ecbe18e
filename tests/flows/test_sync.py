"""sync_bills end to end: m3ter sandbox → mapping → Xero sandbox, on a real Prefect server; each
behaviour checked in the Xero sandbox's stored documents and in the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from config.settings import get_settings
from flows.sync import sync_bills
from store.factory import database
from store.ledger import Ledger, Outcome


def xero_docs(xero_server, tenant_id: str) -> dict[str, dict[str, Any]]:
    state = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]
    tenant = state["documents"].get(tenant_id, {})
    return {**tenant.get("Invoices", {}), **tenant.get("CreditNotes", {})}


def ledger_of(integration_id: str) -> dict[str, Any]:
    return Ledger(database(get_settings())).snapshot(integration_id)


def test_every_bill_reaches_xero_once_and_a_rerun_sends_nothing(
    sync_env, connect, xero_server, m3ter_sandbox
):
    main = connect("Everything")
    state = sync_bills(return_state=True)
    assert state.is_completed(), state.message
    ledger = ledger_of(main["id"])
    docs = xero_docs(xero_server, main["tenant_id"])
    complete = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    assert complete, ledger
    assert complete == set(docs)  # every sent bill is one document, keyed by the bill id
    for bill_id in complete:
        entry = ledger[bill_id]
        rendered = m3ter_sandbox.bill(bill_id)
        assert entry.sent_version == rendered["version"]
        total = sum(Decimal(str(li["subtotal"])) for li in rendered["lineItems"])
        assert Decimal(docs[bill_id]["Total"]) == abs(total).quantize(Decimal("0.01"))
    credit = [b for b in complete if ledger[b].document_type == "credit_note"]
    assert credit, "the generator makes some negative bills: they must be credit notes"

    calls_before = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]["calls"]
    again = sync_bills(return_state=True)
    assert again.is_completed()
    calls_after = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]["calls"]
    assert calls_after == calls_before
    assert xero_docs(xero_server, main["tenant_id"]) == docs


def xero_state(xero_server) -> dict[str, Any]:
    return httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]


def first_bill(m3ter_sandbox, **where: Any) -> dict[str, Any]:
    for record in m3ter_sandbox.bills:
        bill = m3ter_sandbox.bill(record.id)
        if all(bill.get(k) == v for k, v in where.items()):
            total = sum(Decimal(str(li["subtotal"])) for li in bill["lineItems"])
            if total > 0:
                return bill
    raise AssertionError(f"no bill with {where}")


def test_only_on_approval_waits_for_approved_bills(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Approved only", only_send_bill_on_approval=True)
    pending = first_bill(m3ter_sandbox, status="PENDING")
    assert sync_bills(return_state=True).is_completed()
    entry = ledger_of(main["id"])[pending["id"]]
    assert entry.outcome is Outcome.SKIPPED and "approved" in entry.reason
    assert pending["id"] not in xero_docs(xero_server, main["tenant_id"])
    approved = {b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.COMPLETE}
    assert approved and all(m3ter_sandbox.bill(b)["status"] == "APPROVED" for b in approved)

    m3ter_sandbox.approve(pending["id"])
    assert sync_bills(return_state=True).is_completed()
    assert ledger_of(main["id"])[pending["id"]].outcome is Outcome.COMPLETE
    assert pending["id"] in xero_docs(xero_server, main["tenant_id"])


def test_without_approval_pending_bills_are_sent(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Every version")
    pending = first_bill(m3ter_sandbox, status="PENDING")
    assert sync_bills(return_state=True).is_completed()
    assert ledger_of(main["id"])[pending["id"]].outcome is Outcome.COMPLETE
    assert pending["id"] in xero_docs(xero_server, main["tenant_id"])


def test_regenerated_bill_updates_its_invoice_in_place(
    sync_env, connect, xero_server, m3ter_sandbox
):
    main = connect("Regenerate")
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    before = xero_docs(xero_server, main["tenant_id"])[bill["id"]]
    regenerated = m3ter_sandbox.regenerate(bill["id"])
    assert regenerated["version"] > bill["version"]
    assert sync_bills(return_state=True).is_completed()
    after = xero_docs(xero_server, main["tenant_id"])[bill["id"]]
    assert after["InvoiceID"] == before["InvoiceID"]  # same invoice, updated
    total = sum(Decimal(str(li["subtotal"])) for li in regenerated["lineItems"])
    assert Decimal(after["Total"]) == total.quantize(Decimal("0.01"))
    entry = ledger_of(main["id"])[bill["id"]]
    assert (entry.outcome, entry.sent_version) == (Outcome.COMPLETE, regenerated["version"])


def test_paid_invoice_refuses_the_update(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Paid")
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    invoice_id = xero_docs(xero_server, main["tenant_id"])[bill["id"]]["InvoiceID"]
    paid = httpx.post(f"{xero_server.url}/_sandbox/invoices/{invoice_id}/pay")
    assert paid.status_code == 200
    m3ter_sandbox.regenerate(bill["id"])
    state = sync_bills(return_state=True)
    assert state.is_failed()
    entry = ledger_of(main["id"])[bill["id"]]
    assert entry.outcome is Outcome.INVOICE_ALREADY_PAID
    assert "valid status" in entry.reason
    assert xero_docs(xero_server, main["tenant_id"])[bill["id"]]["Status"] == "PAID"


def test_missing_mapping_is_recorded_not_a_crash(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Mapped", use_external_mapping_account_code=True)
    state = sync_bills(return_state=True)
    ledger = ledger_of(main["id"])
    missing = {b for b, e in ledger.items() if e.outcome is Outcome.MISSING_ACCOUNT_MAPPING}
    sent = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    assert missing and sent  # the generator leaves every fifth account without a mapping
    assert state.is_failed() and "did not reach Xero" in state.message
    docs = xero_docs(xero_server, main["tenant_id"])
    assert not missing & set(docs) and sent <= set(docs)


def test_account_filtered_out_is_skipped(sync_env, connect, xero_server, m3ter_sandbox):
    excluded = m3ter_sandbox.accounts[0]
    country = excluded["address"]["country"]
    main = connect("Filtered", account_filter=f'address.country != "{country}"')
    assert sync_bills(return_state=True).is_completed()
    ledger = ledger_of(main["id"])
    theirs = [r.id for r in m3ter_sandbox.bills if r.account_id == excluded["id"]]
    assert theirs
    for bill_id in theirs:
        assert ledger[bill_id].outcome is Outcome.SKIPPED
        assert "excluded" in ledger[bill_id].reason
    assert not set(theirs) & set(xero_docs(xero_server, main["tenant_id"]))


def test_dry_run_posts_and_records_nothing(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Dry")
    state = sync_bills(dry_run=True, return_state=True)
    assert state.is_completed()
    (row,) = state.result()["integrations"]
    assert row["would send (dry run)"] > 0
    assert xero_docs(xero_server, main["tenant_id"]) == {}
    assert ledger_of(main["id"]) == {}
