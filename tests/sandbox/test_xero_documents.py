"""Invoices, credit notes and payments checked against the organisation's books, over real HTTP.

Each rule the sandbox enforces (accounts, tax types, items, currencies, contacts, tracking, tax
arithmetic, status changes, lock dates, payments) with Xero's wording; every answer with a
documented status is validated against ``xero_accounting.yaml`` and every 200 is parsed by the
official SDK's deserializer (``xero_python``). Money is compared as exact Decimals.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient

from sandbox.serve import ServerHandle
from sandbox.xero.state import DEFAULT_ORGS
from tasks.xero import money_json
from tests.sandbox.openapi import (
    check_answer,
    request_body,
)

SPEC = "xero_accounting.yaml"
API = "/api.xro/2.0"
UK, US = DEFAULT_ORGS
D = Decimal
_SDK = AccountingApi(ApiClient())
# Collection -> (SDK model, its list attribute).
MODELS = {
    "Invoices": ("Invoices", "invoices"),
    "CreditNotes": ("CreditNotes", "credit_notes"),
    "Payments": ("Payments", "payments"),
}

ACCOUNT_REQUIRED = "Account code or ID must be specified"
NOT_EDITABLE = "Invoice not of valid status for modification"
HAS_PAYMENT = "This document cannot be edited as it has a payment or credit note allocated to it."


class Xero:
    """Raw calls with a valid token: request and answer checked against the spec, every 200
    parsed by the SDK."""

    def __init__(self, http: httpx.Client, sandbox: Any) -> None:
        self.http, self.sandbox = http, sandbox
        self.token = sandbox.grant(list(DEFAULT_ORGS))["access_token"]
        self.tenants = [sandbox.orgs[name] for name in DEFAULT_ORGS]  # UK, US

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        tenant: int = 0,
        template: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "xero-tenant-id": self.tenants[tenant]}
        collection = path.split("/")[1]
        content = request_body(collection, body)
        answer = self.http.request(method, API + path, content=content, headers=headers,
                                   params=params)  # fmt: skip
        check_answer(template or path, method, answer, strict=False)
        if answer.status_code == 200:
            raw = SimpleNamespace(text=answer.text, data=answer.content)
            model, attribute = MODELS[collection]
            parsed = _SDK.api_client.deserialize(raw, model, _SDK.get_model_finder())
            assert getattr(parsed, attribute) is not None
        return answer

    def put(self, kind: str, *docs: dict[str, Any], tenant: int = 0, **params: str) -> Any:
        """PUT with ``summarizeErrors=false``: each element's own verdict."""
        params = {"summarizeErrors": "false", **params}
        answer = self.call("PUT", f"/{kind}", {kind: list(docs)}, params=params, tenant=tenant)
        assert answer.status_code == 200, answer.text
        return body(answer)[kind]

    def post_one(self, kind: str, doc_id: str, changes: dict[str, Any], tenant: int = 0) -> Any:
        template = "/Invoices/{InvoiceID}" if kind == "Invoices" else "/CreditNotes/{CreditNoteID}"
        answer = self.call(
            "POST", f"/{kind}/{doc_id}", {kind: [changes]}, tenant=tenant, template=template,
            params={"summarizeErrors": "false"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        return body(answer)[kind][0]

    def pay(self, *payments: dict[str, Any], summarize: bool = False) -> httpx.Response:
        params = {} if summarize else {"summarizeErrors": "false"}
        return self.call("PUT", "/Payments", {"Payments": list(payments)}, params=params)

    def books(self, tenant: int = 0) -> Any:
        """The tenant's books, as the sandbox holds them."""
        return self.sandbox.books.for_tenant(self.tenants[tenant])


def body(answer: httpx.Response) -> Any:
    return json.loads(answer.text, parse_float=Decimal)


def errors(element: dict[str, Any]) -> list[str]:
    return [e["Message"] for e in element.get("ValidationErrors", [])]


@pytest.fixture
def xero(xero_server: ServerHandle, xero_sandbox: Any) -> Iterator[Xero]:
    with httpx.Client(base_url=xero_server.url) as http:
        yield Xero(http, xero_sandbox)


def line(amount: str = "10.00", qty: str = "1", **extra: Any) -> dict[str, Any]:
    return {"Description": "usage", "Quantity": D(qty), "UnitAmount": D(amount), **extra}


def invoice(*lines: dict[str, Any], status: str = "AUTHORISED", **extra: Any) -> dict[str, Any]:
    return {
        "Type": "ACCREC",
        "Contact": {"Name": "Acme"},
        "Date": "2025-03-01",
        "DueDate": "2025-03-31",
        "Status": status,
        "LineItems": list(lines) or [line(AccountCode="200")],
        **extra,
    }


# ----- accounts ----------------------------------------------------------------------------------
def test_an_account_is_required_unless_draft(xero: Xero) -> None:
    approved, submitted, draft = xero.put(
        "Invoices",
        invoice(line()),
        invoice(line(), status="SUBMITTED"),
        invoice(line(), status="DRAFT"),
    )
    assert errors(approved) == errors(submitted) == [ACCOUNT_REQUIRED]
    assert draft["Status"] == "DRAFT" and "AccountCode" not in draft["LineItems"][0]
    assert draft["LineItems"][0]["TaxAmount"] == D("0.00") and draft["Total"] == D("10.00")
    approving = xero.call(
        "POST", f"/Invoices/{draft['InvoiceID']}", {"Invoices": [{"Status": "AUTHORISED"}]},
        template="/Invoices/{InvoiceID}",
    )  # fmt: skip
    assert approving.status_code == 400
    (element,) = body(approving)["Elements"]
    assert errors(element) == [ACCOUNT_REQUIRED]


def test_unknown_and_archived_codes_refused_when_approved_removed_from_drafts(xero: Xero) -> None:
    unknown, archived, draft = xero.put(
        "Invoices",
        invoice(line(AccountCode="999")),
        invoice(line(AccountCode="206")),
        invoice(line(AccountCode="999"), line(AccountCode="200"), status="DRAFT"),
    )
    assert errors(unknown) == ["Account code '999' is not a valid code for this document."]
    assert errors(archived) == [
        "Account code '206' has been archived, or has been deleted. Each line item must "
        "reference a valid account."
    ]
    removed = "Account code '999' has been removed as it does not match a recognised account."
    assert draft["StatusAttributeString"] == "OK" and draft["Warnings"] == [{"Message": removed}]
    stripped, kept = draft["LineItems"]
    assert "AccountCode" not in stripped and stripped["TaxAmount"] == D("0.00")
    assert kept["AccountCode"] == "200" and kept["TaxAmount"] == D("2.00")


def test_account_by_id_and_tax_types(xero: Xero) -> None:
    account = xero.books().account(code="201")
    by_id, unknown_id, bogus, deleted, wrong_class, default = xero.put(
        "Invoices",
        invoice(line(AccountID=account.account_id)),
        invoice(line(AccountID=str(uuid.uuid4()))),
        invoice(line(AccountCode="200", TaxType="BOGUS")),
        invoice(line(AccountCode="200", TaxType="OUTPUT")),  # deleted in the UK
        invoice(line(AccountCode="200", TaxType="INPUT2")),  # expenses only
        invoice(line(AccountCode="200")),
    )
    assert (by_id["LineItems"][0]["AccountCode"], by_id["LineItems"][0]["AccountID"]) == (
        "201", account.account_id,
    )  # fmt: skip
    assert errors(unknown_id)[0].startswith("Account ID '")
    assert errors(bogus) == [
        "The TaxType code BOGUS does not exist or cannot be used for this type of transaction."
    ]
    assert errors(deleted) == [
        "The TaxType code OUTPUT does not exist or cannot be used for this type of transaction."
    ]
    assert errors(wrong_class) == [
        "The TaxType code 'INPUT2' cannot be used with account code '200'."
    ]
    assert default["LineItems"][0]["TaxType"] == "OUTPUT2"  # the account's own tax type


# ----- items -------------------------------------------------------------------------------------
def test_items_give_account_tax_and_description_unknown_ones_are_refused(xero: Xero) -> None:
    usage = {"ItemCode": "usage", "Quantity": D("3"), "UnitAmount": D("2.00")}
    taken, own_account, unknown, unknown_draft = xero.put(
        "Invoices",
        invoice(usage),
        invoice({**usage, "AccountCode": "201", "Description": "Compute"}),
        invoice(line(ItemCode="AP-compute", AccountCode="200")),
        invoice(line(ItemCode="AP-compute"), status="DRAFT"),
    )
    got = taken["LineItems"][0]
    item = xero.books().item("USAGE")
    assert (got["ItemCode"], got["AccountCode"], got["TaxType"], got["Description"]) == (
        "USAGE", "202", "OUTPUT2", "Metered usage",
    )  # fmt: skip
    assert got["Item"] == {"ItemID": item.item_id, "Code": "USAGE", "Name": "Metered usage"}
    assert (got["LineAmount"], got["TaxAmount"], taken["Total"]) == (
        D("6.00"),
        D("1.20"),
        D("7.20"),
    )
    assert own_account["LineItems"][0]["AccountCode"] == "201"
    assert own_account["LineItems"][0]["Description"] == "Compute"
    assert errors(unknown) == errors(unknown_draft) == ["Item code 'AP-compute' is not valid"]


# ----- currencies --------------------------------------------------------------------------------
def test_currency_defaults_to_base_and_must_be_subscribed(xero: Xero) -> None:
    uk, euro, yen = xero.put(
        "Invoices", invoice(), invoice(CurrencyCode="EUR"), invoice(CurrencyCode="JPY")
    )
    (us,) = xero.put("Invoices", invoice(), tenant=1)
    assert (uk["CurrencyCode"], us["CurrencyCode"], euro["CurrencyCode"]) == ("GBP", "USD", "EUR")
    assert euro["CurrencyRate"] == D("1.0000000000")  # the sandbox has no exchange rates
    assert errors(yen) == ["Organisation is not subscribed to currency JPY"]
    malformed = xero.http.put(  # the spec's CurrencyCode enum refuses it: sent as is
        f"{API}/Invoices",
        content=money_json.dumps({"Invoices": [invoice(CurrencyCode="G8P")]}),
        headers={"Authorization": f"Bearer {xero.token}", "xero-tenant-id": xero.tenants[0]},
    )
    assert malformed.status_code == 400
    assert errors(malformed.json()["Elements"][0]) == ["The currency code is not valid"]


# ----- contacts ----------------------------------------------------------------------------------
def test_contacts_by_id_number_or_name_new_ones_created_archived_refused(xero: Xero) -> None:
    books = xero.books()
    bank_west = books.contact(name="Bank West")
    mapped = str(uuid.uuid4())
    by_number, by_name, by_id, new, again, unmapped = xero.put(
        "Invoices",
        invoice(Contact={"ContactNumber": "RIDGEWAY"}),
        invoice(Contact={"Name": "bank west"}),
        invoice(Contact={"ContactID": bank_west.contact_id}),
        invoice(Contact={"ContactNumber": "ACC-42", "Name": "Acme Rockets"}),
        invoice(Contact={"ContactNumber": "ACC-42"}),
        invoice(Contact={"ContactID": mapped, "Name": "Mapped Ltd"}),
    )
    ridgeway = books.contact(number="RIDGEWAY")
    assert by_number["Contact"] == {
        "ContactID": ridgeway.contact_id, "Name": "Ridgeway University",
        "ContactNumber": "RIDGEWAY", "ContactStatus": "ACTIVE",
    }  # fmt: skip
    assert by_name["Contact"]["ContactID"] == by_id["Contact"]["ContactID"] == bank_west.contact_id
    created = books.contact(number="ACC-42")
    assert created is not None and created.name == "Acme Rockets"
    assert new["Contact"]["ContactID"] == again["Contact"]["ContactID"] == created.contact_id
    assert unmapped["Contact"]["ContactID"] == mapped  # unknown ContactIDs are taken as sent
    with xero.sandbox.books.lock:  # changed in the books between two batches (as PUT Contacts)
        created.contact_number = "ACC-43"
    (renumbered,) = xero.put("Invoices", invoice(Contact={"ContactNumber": "ACC-43"}))
    assert renumbered["Contact"]["ContactID"] == created.contact_id

    nameless, archived, archived_by_name, empty, refused = xero.put(
        "Invoices",
        invoice(Contact={"ContactNumber": "NOPE-1"}),
        invoice(Contact={"ContactNumber": "OLD-1"}),
        invoice(Contact={"Name": "Old Customer Ltd"}),
        invoice(Contact={}),
        invoice(line(AccountCode="999"), Contact={"Name": "Never Made"}),
    )
    assert errors(nameless) == ["Contact Name cannot be empty."]
    assert (
        errors(archived)
        == errors(archived_by_name)
        == [
            "The contact with the specified contact details has been archived. The contact must be "
            "un-archived before creating new invoices or credit notes."
        ]
    )
    assert errors(empty) == [
        "The Contact must contain at least 1 of the following elements to identify the "
        "contact: Name, ContactID, ContactNumber"
    ]
    assert errors(refused) and books.contact(name="Never Made") is None


# ----- tracking ----------------------------------------------------------------------------------
def test_tracking_by_name_or_id_active_only_two_per_line(xero: Xero) -> None:
    books = xero.books()
    region, product = books.tracking_category("Region"), books.tracking_category("Product Line")
    north, compute = region.option("North"), product.option("Compute")
    by_name = line(AccountCode="200", Tracking=[
        {"Name": "region", "Option": "north"}, {"Name": "Product Line", "Option": "Compute"},
    ])  # fmt: skip
    by_id = line(AccountCode="200", Tracking=[
        {"TrackingCategoryID": region.category_id, "TrackingOptionID": north.option_id},
    ])  # fmt: skip
    named, ided, archived, unknown, three, twice = xero.put(
        "Invoices",
        invoice(by_name),
        invoice(by_id),
        invoice(line(AccountCode="200", Tracking=[{"Name": "Region", "Option": "Highlands"}])),
        invoice(line(AccountCode="200", Tracking=[{"Name": "Department", "Option": "X"}])),
        invoice(line(AccountCode="200", Tracking=[{"Name": "Region", "Option": "North"}] * 3)),
        invoice(line(AccountCode="200", Tracking=[
            {"Name": "Region", "Option": "North"}, {"Name": "Region", "Option": "South"},
        ])),
    )  # fmt: skip
    assert named["LineItems"][0]["Tracking"] == [
        {"TrackingCategoryID": region.category_id, "TrackingOptionID": north.option_id,
         "Name": "Region", "Option": "North"},
        {"TrackingCategoryID": product.category_id, "TrackingOptionID": compute.option_id,
         "Name": "Product Line", "Option": "Compute"},
    ]  # fmt: skip
    assert ided["LineItems"][0]["Tracking"][0]["Option"] == "North"
    assert errors(archived) == ["There is no ACTIVE tracking option with the name 'Highlands'"]
    assert errors(unknown) == ["There is no ACTIVE tracking category with the name 'Department'"]
    assert errors(three) == ["A line item can have a maximum of 2 tracking categories"]
    assert errors(twice) == ["The tracking category 'Region' can only be used once per line item"]


# ----- tax ---------------------------------------------------------------------------------------
def test_exclusive_tax_per_line_half_up_then_summed(xero: Xero) -> None:
    cents_lines = [line("0.03", AccountCode="200") for _ in range(3)]
    half_cents = [line("1.30", AccountCode="200", TaxType="RROUTPUT"),
                  line("0.10", AccountCode="200", TaxType="RROUTPUT")]  # fmt: skip
    per_line, half_up, override = xero.put(
        "Invoices",
        invoice(*cents_lines),
        invoice(*half_cents),
        invoice(line("10.00", AccountCode="200", TaxAmount=D("1.99"))),
    )
    # 3 x 0.006 rounds to 3 x 0.01 = 0.03 (rounding the 0.018 total would give 0.02).
    assert (per_line["SubTotal"], per_line["TotalTax"], per_line["Total"]) == (
        D("0.09"), D("0.03"), D("0.12"),
    )  # fmt: skip
    # 5 % of 1.30 = 0.065 -> 0.07 and of 0.10 = 0.005 -> 0.01 (half up; half even gives 0.06, 0.00).
    assert [li["TaxAmount"] for li in half_up["LineItems"]] == [D("0.07"), D("0.01")]
    assert (half_up["SubTotal"], half_up["TotalTax"], half_up["Total"]) == (
        D("1.40"), D("0.08"), D("1.48"),
    )  # fmt: skip
    assert override["TotalTax"] == D("1.99") and override["Total"] == D("11.99")


def test_inclusive_and_no_tax_amounts(xero: Xero) -> None:
    inclusive, no_tax = xero.put(
        "Invoices",
        invoice(line("12.00", AccountCode="200"), line("10.00", AccountCode="200"),
                LineAmountTypes="Inclusive"),
        invoice(line("10.00", AccountCode="200"), LineAmountTypes="NoTax"),
    )  # fmt: skip
    # 12.00 holds 2.00 of 20 % VAT; 10.00 holds 1.666.. -> 1.67.
    assert [li["TaxAmount"] for li in inclusive["LineItems"]] == [D("2.00"), D("1.67")]
    assert [li["LineAmount"] for li in inclusive["LineItems"]] == [D("12.00"), D("10.00")]
    assert (inclusive["SubTotal"], inclusive["TotalTax"], inclusive["Total"]) == (
        D("18.33"), D("3.67"), D("22.00"),
    )  # fmt: skip
    assert inclusive["AmountDue"] == D("22.00")
    assert (no_tax["SubTotal"], no_tax["TotalTax"], no_tax["Total"]) == (
        D("10.00"), D("0.00"), D("10.00"),
    )  # fmt: skip


def test_us_compound_and_two_component_rates(xero: Xero) -> None:
    compound, city_state = xero.put(
        "Invoices",
        invoice(line("100.00", AccountCode="200", TaxType="TAX001"),
                line("10.10", AccountCode="200", TaxType="TAX001")),
        invoice(line("2.00", AccountCode="200")),  # account 200: "Tax on Sales", 4 % + 4.875 %
        tenant=1,
    )  # fmt: skip
    # TAX001: 5 % state tax and 2 % local tax compounded on it: 5 + 2 x 1.05 = 7.1 %.
    assert [li["TaxAmount"] for li in compound["LineItems"]] == [D("7.10"), D("0.72")]
    assert (compound["SubTotal"], compound["TotalTax"], compound["Total"]) == (
        D("110.10"), D("7.82"), D("117.92"),
    )  # fmt: skip
    assert city_state["LineItems"][0]["TaxType"] == "OUTPUT"
    assert city_state["TotalTax"] == D("0.18")  # 8.875 % of 2.00 = 0.1775


def test_credit_notes_follow_the_same_rules(xero: Xero) -> None:
    note = {**invoice(line("24.00", AccountCode="200"), LineAmountTypes="Inclusive"),
            "Type": "ACCRECCREDIT"}  # fmt: skip
    note.pop("DueDate")
    unknown = {**note, "LineItems": [line(ItemCode="AP-compute", AccountCode="200")]}
    created, refused = xero.put("CreditNotes", note, unknown)
    assert (created["SubTotal"], created["TotalTax"], created["Total"]) == (
        D("20.00"), D("4.00"), D("24.00"),
    )  # fmt: skip
    assert created["RemainingCredit"] == D("24.00")
    assert errors(refused) == ["Item code 'AP-compute' is not valid"]


def test_line_amount_must_be_quantity_times_unit_amount(xero: Xero) -> None:
    (refused,) = xero.put("Invoices", invoice(line("10.00", "2", AccountCode="200",
                                                   LineAmount=D("20.01"))))  # fmt: skip
    assert errors(refused) == ["The line total 20.01 does not match the expected line total 20.00"]


# ----- status ------------------------------------------------------------------------------------
def test_authorised_without_payments_is_edited_voided_not_deleted(xero: Xero) -> None:
    (created,) = xero.put("Invoices", invoice(line("10.00", AccountCode="200")))
    doc_id = created["InvoiceID"]
    relined = xero.post_one("Invoices", doc_id, {"LineItems": [
        line("5.00", "3", AccountCode="201"), line("1.00", AccountCode="200", TaxType="NONE"),
    ]})  # fmt: skip
    assert relined["Status"] == "AUTHORISED" and len(relined["LineItems"]) == 2
    assert (relined["SubTotal"], relined["TotalTax"], relined["Total"]) == (
        D("16.00"), D("3.00"), D("19.00"),
    )  # fmt: skip
    assert errors(xero.post_one("Invoices", doc_id, {"Status": "DELETED"})) == [NOT_EDITABLE]
    assert xero.post_one("Invoices", doc_id, {"Status": "VOIDED"})["Status"] == "VOIDED"
    assert errors(xero.post_one("Invoices", doc_id, {"Reference": "x"})) == [NOT_EDITABLE]
    (paid_new, void_draft) = xero.put("Invoices", invoice(status="PAID"), invoice(status="DRAFT"))
    assert errors(paid_new) == ["Invoice not of valid status for creation"]
    voiding = xero.post_one("Invoices", void_draft["InvoiceID"], {"Status": "VOIDED"})
    assert errors(voiding) == [NOT_EDITABLE]  # only approved documents are voided


def test_per_element_verdicts_and_the_summarized_400(xero: Xero) -> None:
    batch = [
        invoice(InvoiceNumber="PE-1"),
        invoice(line(), InvoiceNumber="PE-2"),
        invoice(line(ItemCode="AP-compute", AccountCode="200"), InvoiceNumber="PE-3"),
        invoice(Contact={"ContactNumber": "OLD-1"}, InvoiceNumber="PE-4"),
        invoice(CurrencyCode="JPY", InvoiceNumber="PE-5"),
    ]
    verdicts = xero.put("Invoices", *batch)
    assert [v["StatusAttributeString"] for v in verdicts] == ["OK"] + ["ERROR"] * 4
    assert [len(errors(v)) for v in verdicts] == [0, 1, 1, 1, 1]
    assert verdicts[1]["InvoiceNumber"] == "PE-2"  # refusals echo what identifies them
    renamed = [{**doc, "InvoiceNumber": f"S{doc['InvoiceNumber']}"} for doc in batch]
    summarized = xero.call("PUT", "/Invoices", {"Invoices": renamed})
    assert summarized.status_code == 400
    elements = body(summarized)["Elements"]
    assert [e["InvoiceNumber"] for e in elements] == ["SPE-2", "SPE-3", "SPE-4", "SPE-5"]
    assert [errors(e) for e in elements] == [errors(v) for v in verdicts[1:]]
    stored = xero.call("GET", "/Invoices", params={"InvoiceNumbers": "SPE-1"})
    assert len(body(stored)["Invoices"]) == 1  # the valid element was stored anyway


# ----- numbers -----------------------------------------------------------------------------------
def note(**extra: Any) -> dict[str, Any]:
    doc = {**invoice(**extra), "Type": "ACCRECCREDIT"}
    doc.pop("DueDate")
    return doc


def test_xero_numbers_documents_from_the_organisations_one_sequence(xero: Xero) -> None:
    settings = {"invoice_prefix": "INV-", "credit_note_prefix": "CN-", "next_number": "0041"}
    changed = xero.http.post(f"/_sandbox/tenants/{UK}/books", json={"invoice_settings": settings})
    assert changed.status_code == 200, changed.text
    first, second = xero.put("Invoices", invoice(), invoice(status="DRAFT"))
    (credit,) = xero.put("CreditNotes", note())
    assert (first["InvoiceNumber"], second["InvoiceNumber"]) == ("INV-0041", "INV-0042")
    assert credit["CreditNoteNumber"] == "CN-0043"  # invoices and credit notes: one sequence
    (own,) = xero.put("Invoices", invoice(InvoiceNumber="INV-0044"))  # a client's own number
    (after,) = xero.put("Invoices", invoice())
    assert (own["InvoiceNumber"], after["InvoiceNumber"]) == ("INV-0044", "INV-0045")
    state = xero.http.get("/_sandbox/state").json()["books"][xero.tenants[0]]
    assert state["invoice_settings"]["next_number"] == "0046"
    # An update that sends no number keeps the one Xero gave.
    kept = xero.post_one("Invoices", second["InvoiceID"], {"Reference": "bill-2"})
    assert (kept["InvoiceNumber"], kept["Reference"]) == ("INV-0042", "bill-2")
    bad = xero.http.post(f"/_sandbox/tenants/{UK}/books",
                         json={"invoice_settings": {"next_number": "one"}})  # fmt: skip
    assert bad.status_code == 400


def test_sales_numbers_are_unique_a_deleted_documents_number_is_free_again(xero: Xero) -> None:
    made, draft, voided = xero.put(
        "Invoices",
        invoice(InvoiceNumber="INV-000061"),
        invoice(InvoiceNumber="DRAFT-1", status="DRAFT"),
        invoice(InvoiceNumber="VOID-1"),
    )
    (taken,) = xero.put("Invoices", invoice(InvoiceNumber="INV-000061"))
    assert errors(taken) == ["Invoice # must be unique."]
    assert taken["InvoiceNumber"] == "INV-000061"  # the refusal echoes the number sent
    (credit,) = xero.put("CreditNotes", note(CreditNoteNumber="INV-000061"))
    assert credit["CreditNoteNumber"] == "INV-000061"  # credit notes are numbered apart
    (again,) = xero.put("CreditNotes", note(CreditNoteNumber="INV-000061"))
    assert errors(again) == ["Credit Note # must be unique."]
    assert xero.post_one("Invoices", draft["InvoiceID"], {"Status": "DELETED"})["Status"] == (
        "DELETED"
    )
    assert xero.post_one("Invoices", voided["InvoiceID"], {"Status": "VOIDED"})["Status"] == (
        "VOIDED"
    )
    reused, kept = xero.put(
        "Invoices", invoice(InvoiceNumber="DRAFT-1"), invoice(InvoiceNumber="VOID-1")
    )
    assert reused["InvoiceNumber"] == "DRAFT-1" and reused["InvoiceID"] != draft["InvoiceID"]
    assert errors(kept) == ["Invoice # must be unique."]  # a voided document keeps its number
    purchases = xero.put("Invoices", *[{**invoice(InvoiceNumber="B-1"), "Type": "ACCPAY"}] * 2)
    assert [errors(p) for p in purchases] == [[], []]  # bills' numbers are not unique


def test_an_update_may_change_the_number_to_a_free_one(xero: Xero) -> None:
    old, other = xero.put(
        "Invoices",
        invoice(InvoiceNumber="bbc89498-e85f-4b6e-9d1c-0c3a3f7d2a11", Reference="INV-000061"),
        invoice(InvoiceNumber="INV-000062"),
    )
    renamed = xero.post_one(
        "Invoices", old["InvoiceID"], {"InvoiceNumber": "INV-000061", "Reference": "bill"}
    )
    assert (renamed["InvoiceID"], renamed["InvoiceNumber"]) == (old["InvoiceID"], "INV-000061")
    clash = xero.post_one("Invoices", old["InvoiceID"], {"InvoiceNumber": "INV-000062"})
    assert errors(clash) == ["Invoice # must be unique."]
    stored = body(xero.call("GET", f"/Invoices/{old['InvoiceID']}",
                            template="/Invoices/{InvoiceID}"))["Invoices"][0]  # fmt: skip
    assert stored["InvoiceNumber"] == "INV-000061"


def test_number_and_reference_are_at_most_255_characters(xero: Xero) -> None:
    batch = [
        invoice(InvoiceNumber="N" * 256),  # the spec refuses it too (maxLength 255): sent raw
        invoice(Reference="R" * 256),
        invoice(InvoiceNumber="N" * 255, Reference="R" * 255),
    ]
    answer = xero.http.put(
        API + "/Invoices",
        content=money_json.dumps({"Invoices": batch}),
        params={"summarizeErrors": "false"},
        headers={"Authorization": f"Bearer {xero.token}", "xero-tenant-id": xero.tenants[0]},
    )
    assert answer.status_code == 200, answer.text
    long_number, long_reference, longest = body(answer)["Invoices"]
    assert errors(long_number) == ["InvoiceNumber must be at most 255 characters"]
    assert errors(long_reference) == ["Reference must be at most 255 characters"]
    assert errors(longest) == []


def test_documents_are_found_by_reference(xero: Xero) -> None:
    xero.put("Invoices", invoice(Reference="bill-a"), invoice(Reference="bill-b"), invoice())
    xero.put("CreditNotes", note(Reference="bill-c"))
    where = 'Reference=="bill-a" OR Reference=="bill-b" OR Reference=="bill-c"'
    found = body(xero.call("GET", "/Invoices", params={"where": where}))["Invoices"]
    assert sorted(d["Reference"] for d in found) == ["bill-a", "bill-b"]
    notes = body(xero.call("GET", "/CreditNotes", params={"where": where}))["CreditNotes"]
    assert [d["Reference"] for d in notes] == ["bill-c"]


# ----- lock dates --------------------------------------------------------------------------------
def test_lock_dates_refuse_approved_documents_on_or_before_them(xero: Xero) -> None:
    locked = xero.http.post(
        f"/_sandbox/tenants/{UK}/lock-date",
        json={"date": "2025-01-31", "end_of_year": "2024-12-31"},
    )
    assert locked.json() == {
        "tenant_id": xero.tenants[0], "lock_date": "2025-01-31",
        "end_of_year_lock_date": "2024-12-31",
    }  # fmt: skip
    organisation = xero.books().organisation
    assert organisation.period_lock_date == date(2025, 1, 31)
    assert organisation.end_of_year_lock_date == date(2024, 12, 31)
    year, period, after, draft = xero.put(
        "Invoices",
        invoice(Date="2024-12-31"),
        invoice(Date="2025-01-31"),
        invoice(Date="2025-02-01"),
        invoice(Date="2025-01-15", status="DRAFT"),
    )
    assert errors(year) == [
        "The document date cannot be before the end of year lock date, currently set at 31-Dec-2024"
    ]
    assert errors(period) == [
        "The document date cannot be before the period lock date, currently set at 31-Jan-2025"
    ]
    assert after["StatusAttributeString"] == draft["StatusAttributeString"] == "OK"
    approving = xero.post_one("Invoices", draft["InvoiceID"], {"Status": "AUTHORISED"})
    assert errors(approving) == errors(period)
    assert xero.http.get("/_sandbox/state").json()["accounting"]["lock_dates"] == {
        xero.tenants[0]: "2025-01-31"
    }


# ----- payments ----------------------------------------------------------------------------------
def test_payments_part_pay_then_pay_an_invoice(xero: Xero) -> None:
    (created,) = xero.put("Invoices", invoice(line("100.00", AccountCode="200"),
                                              InvoiceNumber="PAY-1"))  # fmt: skip
    doc_id = created["InvoiceID"]
    part = xero.pay({"Invoice": {"InvoiceID": doc_id}, "Account": {"Code": "090"},
                     "Date": "2025-03-05", "Amount": D("20.00"), "Reference": "part"})  # fmt: skip
    (payment,) = body(part)["Payments"]
    assert (payment["Amount"], payment["PaymentType"], payment["Status"]) == (
        D("20.00"), "ACCRECPAYMENT", "AUTHORISED",
    )  # fmt: skip
    assert payment["Account"]["Code"] == "090" and payment["Date"] == "/Date(1741132800000+0000)/"
    paid_part = payment["Invoice"]
    assert (paid_part["Status"], paid_part["AmountPaid"], paid_part["AmountDue"]) == (
        "AUTHORISED", D("20.00"), D("100.00"),
    )  # fmt: skip
    assert [p["Amount"] for p in paid_part["Payments"]] == [D("20.00")]

    # A payment freezes the document: no edit, no void.
    assert errors(xero.post_one("Invoices", doc_id, {"Reference": "new"})) == [HAS_PAYMENT]
    assert errors(xero.post_one("Invoices", doc_id, {"Status": "VOIDED"})) == [HAS_PAYMENT]

    too_much = xero.pay({"Invoice": {"InvoiceID": doc_id}, "Account": {"Code": "090"},
                         "Amount": D("100.01")}, summarize=True)  # fmt: skip
    assert too_much.status_code == 400
    assert errors(body(too_much)["Elements"][0]) == [
        "Payment amount exceeds the amount outstanding on this document"
    ]
    bank = xero.books().account(code="090")
    rest = xero.pay({"Invoice": {"InvoiceNumber": "PAY-1"},
                     "Account": {"AccountID": bank.account_id},
                     "Date": "2025-03-09", "Amount": D("100.00")})  # fmt: skip
    paid = body(rest)["Payments"][0]["Invoice"]
    assert (paid["Status"], paid["AmountPaid"], paid["AmountDue"]) == (
        "PAID", D("120.00"), D("0.00"),
    )  # fmt: skip
    assert paid["FullyPaidOnDate"] == "/Date(1741478400000+0000)/"
    assert errors(xero.post_one("Invoices", doc_id, {"Reference": "x"})) == [NOT_EDITABLE]
    (again,) = body(xero.pay({"Invoice": {"InvoiceID": doc_id}, "Account": {"Code": "090"},
                              "Amount": D("1.00")}))["Payments"]  # fmt: skip
    assert errors(again) == ["Payments can only be made against authorised documents"]

    listed = body(xero.call("GET", "/Payments"))["Payments"]
    assert sorted(p["Amount"] for p in listed) == [D("20.00"), D("100.00")]
    one = xero.call("GET", f"/Payments/{payment['PaymentID']}", template="/Payments/{PaymentID}")
    assert body(one)["Payments"][0]["Reference"] == "part"
    assert xero.http.get("/_sandbox/state").json()["accounting"]["payments"] == {xero.tenants[0]: 2}


def test_payments_need_an_authorised_document_and_a_bank_or_payable_account(
    xero: Xero,
) -> None:
    draft, approved = xero.put(
        "Invoices", invoice(status="DRAFT"), invoice(line("10.00", AccountCode="200"))
    )
    note = {**invoice(line("6.00", AccountCode="200")), "Type": "ACCRECCREDIT"}
    note.pop("DueDate")
    (credit,) = xero.put("CreditNotes", note)
    revenue = {"Invoice": {"InvoiceID": approved["InvoiceID"]}, "Account": {"Code": "200"},
               "Amount": D("1.00")}  # fmt: skip
    verdicts = body(xero.pay(
        {"Invoice": {"InvoiceID": draft["InvoiceID"]}, "Account": {"Code": "090"},
         "Amount": D("1.00")},
        {"Invoice": {"InvoiceID": str(uuid.uuid4())}, "Account": {"Code": "090"},
         "Amount": D("1.00")},
        revenue,
        {"Invoice": {"InvoiceID": approved["InvoiceID"]}, "Account": {"Code": "090"},
         "Amount": D("0")},
        {"CreditNote": {"CreditNoteID": credit["CreditNoteID"]}, "Account": {"Code": "090"},
         "Amount": D("2.20")},
    ))["Payments"]  # fmt: skip
    assert [errors(v) for v in verdicts] == [
        ["Payments can only be made against authorised documents"],
        ["Invoice could not be found"],
        ["Account code '200' is not a bank account and does not have payments enabled"],
        ["Payment amount must be greater than zero"],
        [],
    ]
    refund = verdicts[4]
    assert refund["PaymentType"] == "ARCREDITPAYMENT"
    assert refund["CreditNote"]["RemainingCredit"] == D("5.00")  # 7.20 - 2.20
    xero.books().account(code="260").enable_payments = True  # EnablePaymentsToAccount
    (taken,) = body(xero.pay({**revenue, "Account": {"Code": "260"}}))["Payments"]
    assert taken["Invoice"]["AmountDue"] == D("11.00")


def test_the_control_endpoint_still_pays_in_full(xero: Xero) -> None:
    (created,) = xero.put("Invoices", invoice(line("10.00", AccountCode="200")))
    paid = xero.http.post(f"/_sandbox/invoices/{created['InvoiceID']}/pay")
    assert paid.status_code == 200 and paid.json()["Status"] == "PAID"
    got = xero.call("GET", f"/Invoices/{created['InvoiceID']}", template="/Invoices/{InvoiceID}")
    assert body(got)["Invoices"][0]["AmountDue"] == D("0.00")
