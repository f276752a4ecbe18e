"""The number on the Xero document (issue 21, item 7), end to end: m3ter's invoice number by
default, Xero's own sequence, or the bill id, as the integration's ``invoice_numbering`` says;
exactly once whatever is chosen, a lost answer included; documents made before the option kept
and updated in place. Through real flow runs, checked in the Xero sandbox and the ledger."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from config.settings import get_settings
from flows.sync import sync_bills
from store.factory import database, integration_store
from store.ledger import Ledger, Outcome
from store.schema import integrations as integrations_table
from tests.flows.documents import by_bill

M3TER, XERO, BILL_ID = "M3TER_INVOICE_NUMBER", "XERO_SEQUENCE", "BILL_ID"
UPGRADED = "stored before the option"  # a configuration saved without invoice_numbering


def state(xero_server) -> dict[str, Any]:
    return httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]


def documents(xero_server, tenant_id: str) -> tuple[dict[str, dict[str, Any]], int]:
    """(bill id -> document, with its ``Number``; how many documents the tenant holds)."""
    tenant = state(xero_server)["documents"].get(tenant_id, {})
    docs = by_bill({**tenant.get("Invoices", {}), **tenant.get("CreditNotes", {})})
    held = int(tenant.get("Invoices_count", 0)) + int(tenant.get("CreditNotes_count", 0))
    return docs, held


def ledger_of(integration_id: str) -> dict[str, Any]:
    return Ledger(database(get_settings())).snapshot(integration_id)


def doc_id(doc: dict[str, Any]) -> str:
    return doc.get("InvoiceID") or doc["CreditNoteID"]


def positive_copy_without_a_number(m3ter_sandbox) -> str:
    """A new bill m3ter has not numbered yet (no ``sequentialInvoiceNumber``): a copy of the
    first positive bill."""
    for record in m3ter_sandbox.bills:
        bill = copy.deepcopy(m3ter_sandbox.bill(record.id))
        if sum(Decimal(str(li["subtotal"])) for li in bill["lineItems"]) > 0:
            for key in ("id", "version", "dtLastModified", "sequentialInvoiceNumber"):
                bill.pop(key, None)
            return str(m3ter_sandbox.add_bill(bill))
    raise AssertionError("no positive bill to copy")


def set_numbering(integration_id: str, numbering: str) -> None:
    """The integration's numbering changed, or (``UPGRADED``) its configuration as stored before
    the option existed: without the key, so that the default applies."""
    settings = get_settings()
    if numbering != UPGRADED:
        integration_store(settings).update(integration_id, {"invoice_numbering": numbering})
        return
    config = integration_store(settings).get(integration_id).config.model_dump(mode="json")
    config.pop("invoice_numbering")
    with database(settings).begin() as conn:
        conn.execute(
            update(integrations_table)
            .where(integrations_table.c.id == integration_id)
            .values(config_json=json.dumps(config))
        )
    assert integration_store(settings).get(integration_id).config.invoice_numbering == M3TER


def assert_exactly_once(main: dict[str, Any], xero_server) -> dict[str, dict[str, Any]]:
    """Every bill the ledger calls COMPLETE is one document, its id and number in the ledger;
    nothing left failed; the tenant holds no document twice. Returns the documents."""
    ledger = ledger_of(main["id"])
    stuck = {b: e.outcome for b, e in ledger.items() if e.outcome is not Outcome.COMPLETE}
    assert not stuck, stuck
    docs, held = documents(xero_server, main["tenant_id"])
    assert held == len(docs) == len(ledger), (held, len(docs), len(ledger))
    assert set(docs) == set(ledger)
    for bill_id, entry in ledger.items():
        doc = docs[bill_id]
        assert (entry.xero_id, entry.invoice_number) == (doc_id(doc), doc["Number"]), bill_id
    return docs


@pytest.mark.parametrize("numbering", [M3TER, XERO, BILL_ID])
def test_each_numbering_puts_its_number_on_the_document(
    sync_env, connect, xero_server, m3ter_sandbox, numbering
):
    unnumbered = positive_copy_without_a_number(m3ter_sandbox)
    main = connect(f"Numbered {numbering}", invoice_numbering=numbering)
    assert sync_bills(return_state=True).is_completed()
    docs = assert_exactly_once(main, xero_server)
    ledger = ledger_of(main["id"])
    assert unnumbered in docs and any(e.document_type == "credit_note" for e in ledger.values())
    for bill_id, doc in docs.items():
        m3ter_number = m3ter_sandbox.bill(bill_id).get("sequentialInvoiceNumber")
        credit = ledger[bill_id].document_type == "credit_note"
        if numbering == M3TER:  # m3ter's number; the bill id until m3ter gives one
            assert doc["Number"] == (m3ter_number or bill_id)
            assert doc["Reference"] == bill_id
        elif numbering == XERO:  # the organisation's sequence, INV- or CN-
            assert re.fullmatch(r"(CN|INV)-\d{4}", doc["Number"]), doc["Number"]
            assert doc["Number"].startswith("CN-" if credit else "INV-")
            assert doc["Reference"] == bill_id
        else:  # the bill id; m3ter's number in Reference
            assert doc["Number"] == bill_id
            assert doc.get("Reference") == m3ter_number
    if numbering == XERO:  # invoices and credit notes share one sequence, from 0001
        numbers = sorted(int(d["Number"][-4:]) for d in docs.values())
        assert numbers == list(range(1, len(docs) + 1))
    else:  # m3ter has not numbered it yet: its bill id
        assert docs[unnumbered]["Number"] == unnumbered


@pytest.mark.parametrize(
    ("attempted", "after"),
    [(M3TER, M3TER), (XERO, XERO), (BILL_ID, BILL_ID), (BILL_ID, UPGRADED)],
    ids=["m3ter number", "xero sequence", "bill id", "bill id, then the upgrade"],
)
def test_a_lost_answer_is_found_by_the_next_run_not_created_again(
    sync_env, connect, xero_server, m3ter_sandbox, attempted, after
):
    """Xero stores the invoices, the answer is lost, and every retry fails: the bills end
    unknown. The next run finds each document (by the bill id as its number, or in its
    Reference) and records it: no invoice is created twice, none is written again."""
    unnumbered = positive_copy_without_a_number(m3ter_sandbox)  # numbered by its bill id
    main = connect(f"Lost {attempted} {after}", invoice_numbering=attempted)
    lost = {"next": ["drop_after_store"] + ["500"] * 7, "endpoints": ["PUT Invoices"]}
    assert httpx.post(f"{xero_server.url}/_sandbox/faults", json=lost).status_code == 200
    first = sync_bills(return_state=True)
    assert state(xero_server)["faults"]["injected"] == {"drop_after_store": 1, "500": 7}
    httpx.delete(f"{xero_server.url}/_sandbox/faults")
    assert first.is_failed()
    unknown = {b: e for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.ERROR}
    assert unknown and unnumbered in unknown
    assert all(e.reason.startswith("outcome unknown") and not e.xero_id for e in unknown.values())
    stored, _ = documents(xero_server, main["tenant_id"])
    assert set(unknown) <= set(stored)  # Xero made them all the same
    if after != attempted:
        set_numbering(main["id"], after)

    before = state(xero_server)["calls_by_endpoint"]
    assert sync_bills(return_state=True).is_completed()
    calls = state(xero_server)["calls_by_endpoint"]
    assert calls.get("PUT Invoices", 0) == before.get("PUT Invoices", 0)  # nothing created
    assert calls.get("POST Invoices", 0) == before.get("POST Invoices", 0)  # nor rewritten
    assert calls["GET Invoices"] > before.get("GET Invoices", 0)  # looked up
    docs = assert_exactly_once(main, xero_server)
    assert all(docs[b]["Version"] == 1 for b in unknown)
    for bill_id in unknown:
        assert docs[bill_id]["Number"] == stored[bill_id]["Number"]  # as the lost call made it


@pytest.mark.parametrize("now", [UPGRADED, XERO, M3TER])
def test_a_document_numbered_with_its_bill_id_before_is_updated_in_place(
    sync_env, connect, xero_server, m3ter_sandbox, now
):
    """Documents made before the option (numbered with the bill id, m3ter's number in
    Reference) stay: a regenerated bill updates its document by its Xero id, whatever the
    numbering is now, and the document takes the number the numbering gives (Xero's sequence
    sends none: it keeps its number). An unchanged bill costs nothing and keeps its number."""
    main = connect(f"Upgrade {now}", invoice_numbering=BILL_ID)
    assert sync_bills(return_state=True).is_completed()
    before = assert_exactly_once(main, xero_server)
    assert all(d["Number"] == b for b, d in before.items())
    invoices = [b for b, e in ledger_of(main["id"]).items() if e.document_type == "invoice"]
    changed, untouched = invoices[0], invoices[1]
    set_numbering(main["id"], now)
    regenerated = m3ter_sandbox.regenerate(changed)

    assert sync_bills(return_state=True).is_completed()
    after = assert_exactly_once(main, xero_server)
    assert set(after) == set(before)  # no document added
    doc = after[changed]
    assert doc_id(doc) == doc_id(before[changed]) and doc["Version"] == 2
    m3ter_number = regenerated["sequentialInvoiceNumber"]
    assert doc["Number"] == (changed if now == XERO else m3ter_number)
    assert doc["Reference"] == changed
    total = sum(Decimal(str(li["subtotal"])) for li in regenerated["lineItems"])
    assert Decimal(doc["SubTotal"]) == total.quantize(Decimal("0.01"))
    entry = ledger_of(main["id"])[changed]
    assert (entry.sent_version, entry.invoice_number) == (regenerated["version"], doc["Number"])
    assert after[untouched] == before[untouched]  # not sent again


def test_a_bill_m3ter_numbers_later_has_its_document_renamed_in_place(
    sync_env, connect, xero_server, m3ter_sandbox
):
    bill_id = positive_copy_without_a_number(m3ter_sandbox)
    main = connect("Numbered later")
    assert sync_bills(return_state=True).is_completed()
    first = assert_exactly_once(main, xero_server)[bill_id]
    assert (first["Number"], first["Reference"]) == (bill_id, bill_id)
    m3ter_sandbox.record(bill_id).given["sequentialInvoiceNumber"] = "INV-900001"  # approved
    m3ter_sandbox.regenerate(bill_id)
    assert sync_bills(return_state=True).is_completed()
    renamed = assert_exactly_once(main, xero_server)[bill_id]
    assert doc_id(renamed) == doc_id(first) and renamed["Number"] == "INV-900001"
    assert ledger_of(main["id"])[bill_id].invoice_number == "INV-900001"
