"""Bill -> Xero invoice: table tests for every console option; documents checked against Xero's
own OpenAPI schema."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from config.integration import IntegrationConfig, validate_config
from tasks.m3ter.models import Account, Bill
from tasks.mapping import (
    Outcome,
    account_allowed,
    bill_wanted,
    map_bill,
    select_accounts,
)
from tasks.xero.money_json import dumps, to_xero_json
from tests.sandbox.openapi import assert_valid, schema_errors

INTEGRATION = "7d0c4c8e-1111-4c1e-9a52-3b3f0e7b2a11"
OTHER_INTEGRATION = "7d0c4c8e-2222-4c1e-9a52-3b3f0e7b2a11"
CONTACT = "6f5b5c8e-8a3b-4c1e-9a52-3b3f0e7b2a11"
OTHER_CONTACT = "6f5b5c8e-0000-4c1e-9a52-3b3f0e7b2a11"


def cfg(**options: Any) -> IntegrationConfig:
    return validate_config({"name": "test", **options})


def line(
    subtotal: str,
    *,
    type_: str = "STANDING_CHARGE",
    quantity: str = "1",
    price: str | None = None,
    bands: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    data = {
        "averageUnitPrice": price if price is not None else subtotal,
        "conversionRate": 1,
        "convertedSubtotal": subtotal,
        "currency": "GBP",
        "description": extra.pop("description", f"{type_} line"),
        "lineItemType": type_,
        "quantity": quantity,
        "subtotal": subtotal,
        "unit": extra.pop("unit", "calls"),
        "units": quantity,
        **extra,
    }
    if bands is not None:
        data["usagePerPricingBand"] = bands
    return data


def band(quantity: str, price: str, subtotal: str, lower: str) -> dict[str, Any]:
    return {"bandQuantity": quantity, "unitPrice": price, "bandSubtotal": subtotal,
            "lowerLimit": lower}


USAGE = line(
    "123.456",
    type_="USAGE",
    quantity="15000",
    price="0.0082304",
    productId="prod-api",
    productName="API calls",
    aggregationId="agg-b",
    bands=[
        band("1000", "0", "0", "0"),
        band("9000", "0.01", "90", "1000"),
        band("5000", "0.0066912", "33.456", "10000"),
        band("0", "0.005", "0", "50000"),
    ],
)
STORAGE = line(
    "20.00",
    type_="USAGE",
    quantity="200",
    price="0.1",
    productId="prod-api",
    productName="API calls",
    accountingProductId="acc-prod-1",
    accountingProductCode="API-STORAGE",
    aggregationId="agg-a",
    unit="GB",
    description="Storage",
)
FEE = line("49.995", description="Platform fee", productId="prod-platform")


def bill(*lines: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": "bill-0001",
        "version": 3,
        "accountId": "acc-1",
        "currency": "GBP",
        "billDate": "2024-02-01",
        "dueDate": "2024-03-02",
        "status": "APPROVED",
        "sequentialInvoiceNumber": "INV-000042",
        "lineItems": list(lines),
        **fields,
    }


ACCOUNT = {"id": "acc-1", "name": "Acme Ltd", "code": "ACME", "address": {"country": "UK"},
           "daysBeforeBillDue": 14}


def mapped(config: IntegrationConfig, b: dict[str, Any], account: dict | None = None,
           mappings: list | None = None) -> dict[str, Any]:
    result = map_bill(config, INTEGRATION, b, account or ACCOUNT, mappings or [])
    assert result.outcome is Outcome.MAPPED, result.reason
    assert result.document is not None
    schema = "CreditNote" if result.kind == "credit_note" else "Invoice"
    assert_valid(schema, result.document)
    return result.document


def amounts(doc: dict[str, Any]) -> list[Decimal]:
    return [li["LineAmount"] for li in doc["LineItems"]]


def xero_line_check(doc: dict[str, Any]) -> None:
    for li in doc["LineItems"]:
        assert (li["Quantity"] * li["UnitAmount"]).quantize(Decimal("0.01")) == li["LineAmount"]
        assert li["UnitAmount"] == li["UnitAmount"].quantize(Decimal("0.0001"))
        assert li["Quantity"] == li["Quantity"].quantize(Decimal("0.0001"))


# --------------------------------------------------------------------------- the document


def test_invoice_per_band_with_every_field() -> None:
    doc = mapped(cfg(), bill(USAGE, FEE))
    assert doc["Type"] == "ACCREC"
    assert doc["Contact"] == {"ContactNumber": "acc-1", "Name": "Acme Ltd"}
    assert (doc["Date"], doc["DueDate"]) == ("2024-02-01", "2024-03-02")
    assert doc["CurrencyCode"] == "GBP"
    assert doc["InvoiceNumber"] == "INV-000042"  # m3ter's number, by default
    assert doc["Reference"] == "bill-0001"  # the bill id, how the sync finds its document
    assert doc["Status"] == "DRAFT"
    assert doc["LineAmountTypes"] == "Exclusive"
    assert [li["Description"].split(" (")[0] for li in doc["LineItems"]] == [
        "API calls — band 0–1,000",
        "API calls — band 1,000–10,000",
        "API calls — band 10,000–50,000",
        "Platform fee",
    ]
    # 123.456 + 49.995 = 173.451 -> 173.45; rounded lines give 0 + 90 + 33.46 + 50.00 = 173.46:
    # the extra cent comes off the largest line.
    assert amounts(doc) == [Decimal("0.00"), Decimal("89.99"), Decimal("33.46"), Decimal("50.00")]
    assert sum(amounts(doc)) == Decimal("173.45")
    first = doc["LineItems"][0]
    assert (first["Quantity"], first["UnitAmount"]) == (Decimal(1000), Decimal(0))
    xero_line_check(doc)
    body = json.loads(dumps({"Invoices": [doc]}), parse_float=Decimal)
    assert body["Invoices"][0]["LineItems"][1]["LineAmount"] == Decimal("89.99")


def test_band_with_representable_price_keeps_its_quantity() -> None:
    doc = mapped(cfg(), bill(line("90", type_="USAGE", quantity="9000", price="0.01",
                                  productName="API calls",
                                  bands=[band("9000", "0.01", "90", "1000")])))
    [only] = doc["LineItems"]
    assert only == {"Description": "API calls", "Quantity": Decimal(9000),
                    "UnitAmount": Decimal("0.01"), "LineAmount": Decimal("90.00")}


def test_bands_that_do_not_add_up_fall_back_to_one_line() -> None:
    broken = line("100", type_="USAGE", quantity="10", price="10", description="Broken",
                  bands=[band("10", "1", "10", "0")])
    doc = mapped(cfg(), bill(broken))
    assert [(li["Description"], li["LineAmount"]) for li in doc["LineItems"]] == [
        ("Broken", Decimal("100.00"))
    ]
    assert (doc["LineItems"][0]["Quantity"], doc["LineItems"][0]["UnitAmount"]) == (10, 10)


def test_per_product_sums_usage_lines_of_one_product() -> None:
    config = cfg(split_usage_line_items="ITEM_PER_PRODUCT")
    same_unit = line("5.00", type_="USAGE", quantity="500", price="0.01", productId="prod-api",
                     productName="API calls")
    doc = mapped(config, bill(USAGE, same_unit, FEE))
    assert [li["Description"] for li in doc["LineItems"]] == [
        "API calls (15,500 × 0.00828748)",  # 15,500 x any 4-place price misses 128.46
        "Platform fee",
    ]
    api = doc["LineItems"][0]
    # 123.456 + 5.00 + 49.995 = 178.451 -> 178.45; rounded lines 128.46 + 50.00 miss by a cent,
    # which comes off the largest line.
    assert api["LineAmount"] == Decimal("128.45")
    assert (api["Quantity"], api["UnitAmount"]) == (1, Decimal("128.45"))
    assert sum(amounts(doc)) == Decimal("178.45")
    xero_line_check(doc)


def test_per_product_mixed_units_become_one_times_amount() -> None:
    config = cfg(split_usage_line_items="ITEM_PER_PRODUCT")
    doc = mapped(config, bill(USAGE, STORAGE))
    # STORAGE's accounting product id is its product key, so it stays separate from USAGE.
    assert len(doc["LineItems"]) == 2
    doc = mapped(config, bill(USAGE, line("20.00", type_="USAGE", quantity="200", price="0.1",
                                          productId="prod-api", unit="GB")))
    [api] = doc["LineItems"]
    assert (api["Quantity"], api["UnitAmount"], api["LineAmount"]) == (
        1, Decimal("143.46"), Decimal("143.46"))


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("NONE", ["Storage", "Platform fee", "Tiny"]),
        ("SUBTOTAL", ["Platform fee", "Storage", "Tiny"]),
        ("AGGREGATION_ID", ["Storage", "Tiny", "Platform fee"]),
    ],
)
def test_sorting(sort: str, expected: list[str]) -> None:
    tiny = line("0.50", description="Tiny", aggregationId="agg-z")
    doc = mapped(cfg(sort_line_items_by=sort), bill(STORAGE, FEE, tiny))
    assert [li["Description"] for li in doc["LineItems"]] == expected


def test_accounting_product_code_is_not_a_xero_item_code() -> None:
    # m3ter's accountingProductCode names a product, not a Xero item: a real Xero refuses an
    # item code it does not know, so only a Product -> Xero Item mapping gives ItemCode
    # (tests/mapping/test_coding.py).
    doc = mapped(cfg(), bill(STORAGE))
    assert "ItemCode" not in doc["LineItems"][0]


def test_negative_bill_is_a_credit_note_with_positive_amounts() -> None:
    refund = line("-30.005", type_="CREDIT_MEMO", description="Refund")
    extra = line("10.00", description="Fee")
    result = map_bill(cfg(), INTEGRATION, bill(refund, extra), ACCOUNT, [])
    assert result.kind == "credit_note" and result.total == Decimal("20.01")
    doc = result.document
    assert doc is not None
    assert_valid("CreditNote", doc)
    assert doc["Type"] == "ACCRECCREDIT"
    assert doc["CreditNoteNumber"] == "INV-000042" and "InvoiceNumber" not in doc
    assert doc["Reference"] == "bill-0001"
    assert amounts(doc) == [Decimal("30.01"), Decimal("-10.00")]
    assert sum(amounts(doc)) == Decimal("20.01")
    xero_line_check(doc)
    assert schema_errors("CreditNote", {**doc, "Type": "ACCREC"})  # the schema does bite


def test_bill_id_numbering_is_stable_across_versions_and_reference_falls_back() -> None:
    by_id = cfg(invoice_numbering="BILL_ID")  # the numbering before the option
    v1 = mapped(by_id, bill(FEE, version=1, sequentialInvoiceNumber=None,
                            externalInvoiceReference="PO-9"))
    v2 = mapped(by_id, bill(FEE, version=2))
    assert v1["InvoiceNumber"] == v2["InvoiceNumber"] == "bill-0001"
    assert (v1["Reference"], v2["Reference"]) == ("PO-9", "INV-000042")
    credit = map_bill(by_id, INTEGRATION, bill(line("-5.00", type_="CREDIT_MEMO")), ACCOUNT, [])
    assert credit.document and credit.document["CreditNoteNumber"] == "bill-0001"


def test_m3ter_numbering_falls_back_to_the_bill_id_until_m3ter_numbers_the_bill() -> None:
    m3ter = cfg()  # the default
    assert m3ter.invoice_numbering == "M3TER_INVOICE_NUMBER"
    pending = mapped(m3ter, bill(FEE, status="PENDING", sequentialInvoiceNumber=None,
                                 externalInvoiceReference="PO-9"))
    blank = mapped(m3ter, bill(FEE, sequentialInvoiceNumber="  "))
    approved = mapped(m3ter, bill(FEE, version=4))
    assert pending["InvoiceNumber"] == blank["InvoiceNumber"] == "bill-0001"
    assert approved["InvoiceNumber"] == "INV-000042"
    # The bill id rides in Reference whatever the number: how the sync finds the document.
    assert pending["Reference"] == blank["Reference"] == approved["Reference"] == "bill-0001"
    long = mapped(m3ter, bill(FEE, sequentialInvoiceNumber="N" * 300))
    assert long["InvoiceNumber"] == "N" * 255  # Xero's longest number


def test_xero_sequence_sends_no_number_and_the_bill_id_in_reference() -> None:
    xero = cfg(invoice_numbering="XERO_SEQUENCE")
    doc = mapped(xero, bill(USAGE, FEE))
    assert "InvoiceNumber" not in doc and doc["Reference"] == "bill-0001"
    credit = map_bill(xero, INTEGRATION, bill(line("-5.00", type_="CREDIT_MEMO")), ACCOUNT, [])
    assert credit.kind == "credit_note" and credit.document is not None
    assert "CreditNoteNumber" not in credit.document
    assert credit.document["Reference"] == "bill-0001"


@pytest.mark.parametrize(
    ("numbering", "number", "reference"),
    [
        ("M3TER_INVOICE_NUMBER", "INV-000042", "bill-0001"),
        ("XERO_SEQUENCE", None, "bill-0001"),
        ("BILL_ID", "bill-0001", "INV-000042"),
    ],
)
def test_every_numbering_carries_the_bill_id_as_number_or_reference(
    numbering: str, number: str | None, reference: str
) -> None:
    doc = mapped(cfg(invoice_numbering=numbering), bill(FEE))
    assert (doc.get("InvoiceNumber"), doc.get("Reference")) == (number, reference)
    assert "bill-0001" in (doc.get("InvoiceNumber"), doc.get("Reference"))


def test_an_unknown_numbering_is_refused_naming_the_field() -> None:
    from config.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        cfg(invoice_numbering="NEXT_FREE")
    assert refused.value.field == "invoice_numbering"


def test_dates_prefer_external_invoice_date_and_derive_due_date() -> None:
    doc = mapped(cfg(), bill(FEE, externalInvoiceDate="2024-03-01", dueDate=None))
    assert (doc["Date"], doc["DueDate"]) == ("2024-03-01", "2024-03-15")


def test_currency_conversion_uses_converted_amounts() -> None:
    usd = line("10.00", description="USD fee", price="10.00", currency="USD",
               conversionRate="0.8", convertedSubtotal="8.00")
    doc = mapped(cfg(), bill(usd, FEE))
    assert amounts(doc) == [Decimal("8.00"), Decimal("50.00")]
    assert doc["LineItems"][0]["UnitAmount"] == Decimal(8)


def test_invoice_status_option() -> None:
    # An approved document needs an account on every line (test_coding.py: without one the bill
    # is MISSING_ACCOUNT_MAPPING); a DRAFT, the default, does not.
    config = cfg(invoice_status="AUTHORISED", default_account_code="200")
    assert mapped(config, bill(FEE))["Status"] == "AUTHORISED"
    assert mapped(cfg(), bill(FEE))["Status"] == "DRAFT"


# --------------------------------------------------------------------------- contacts


def mapping(external_id: str, integration: str | None = None, **over: Any) -> dict[str, Any]:
    return {"id": f"map-{external_id[-4:]}-{integration}", "externalId": external_id,
            "externalSystem": "Xero", "externalTable": "Contact", "m3terEntity": "Account",
            "m3terId": "acc-1", "integrationConfigId": integration, **over}


def test_external_mapping_contact_prefers_one_linked_to_this_integration() -> None:
    config = cfg(use_external_mapping_account_code=True)
    maps = [mapping(OTHER_CONTACT), mapping(CONTACT, INTEGRATION)]
    assert mapped(config, bill(FEE), mappings=maps)["Contact"] == {"ContactID": CONTACT}
    assert mapped(config, bill(FEE), mappings=[mapping(OTHER_CONTACT, OTHER_INTEGRATION),
                                               mapping(CONTACT)])["Contact"] == {
        "ContactID": CONTACT}


@pytest.mark.parametrize(
    "maps",
    [
        [],
        [mapping(CONTACT, OTHER_INTEGRATION), mapping(CONTACT)],  # enforce: only linked ones
        [mapping(CONTACT, INTEGRATION, m3terId="acc-2")],
        [mapping(CONTACT, INTEGRATION, externalTable="Item")],
        [mapping(CONTACT, INTEGRATION, externalSystem="QuickBooks")],
    ],
)
def test_missing_mapping_is_an_outcome(maps: list[dict[str, Any]]) -> None:
    config = cfg(use_external_mapping_account_code=True, enforce_external_mappings_for_config=True)
    result = map_bill(config, INTEGRATION, bill(FEE), ACCOUNT, maps)
    assert result.outcome is Outcome.MISSING_ACCOUNT_MAPPING
    assert result.document is None and "acc-1" in result.reason


def test_enforced_linked_mapping_is_used() -> None:
    config = cfg(use_external_mapping_account_code=True, enforce_external_mappings_for_config=True)
    doc = mapped(config, bill(FEE), mappings=[mapping(OTHER_CONTACT),
                                              mapping(CONTACT, INTEGRATION)])
    assert doc["Contact"] == {"ContactID": CONTACT}


# --------------------------------------------------------------------------- what is sent


@pytest.mark.parametrize(
    ("options", "b", "reason"),
    [
        ({"only_send_bill_on_approval": True}, bill(FEE, status="PENDING"), "PENDING"),
        ({"account_ids": ["acc-9"]}, bill(FEE), "excluded"),
        ({"restricted_account_ids": ["acc-1"]}, bill(FEE), "excluded"),
        ({"account_filter": "address.country == US"}, bill(FEE), "excluded"),
        ({"excluded_line_item_types": ["STANDING_CHARGE"]}, bill(FEE), "no lines left"),
        ({}, bill(), "no lines left"),
        ({"excluded_products": ["prod-platform"]}, bill(FEE), "no lines left"),
        ({"excluded_aggregations": ["agg-a"]}, bill(STORAGE), "no lines left"),
    ],
)
def test_skips(options: dict[str, Any], b: dict[str, Any], reason: str) -> None:
    result = map_bill(cfg(**options), INTEGRATION, b, ACCOUNT, [])
    assert result.outcome is Outcome.SKIPPED and not result.mapped
    assert reason in result.reason
    assert result.bill_id == "bill-0001" and result.bill_version == 3


def test_excluded_products_match_accounting_product_first() -> None:
    # STORAGE has accountingProductId acc-prod-1 and productId prod-api: the accounting one counts.
    assert len(mapped(cfg(excluded_products=["prod-api"]), bill(STORAGE))["LineItems"]) == 1
    result = map_bill(cfg(excluded_products=["acc-prod-1"]), INTEGRATION, bill(STORAGE), ACCOUNT)
    assert result.outcome is Outcome.SKIPPED
    doc = mapped(cfg(excluded_products=["prod-api"], excluded_line_item_types=["USAGE_CREDIT"]),
                 bill(USAGE, FEE, STORAGE))
    assert [li["Description"] for li in doc["LineItems"]] == ["Platform fee", "Storage"]
    assert sum(amounts(doc)) == Decimal("70.00")  # 49.995 + 20.00 = 69.995 -> 70.00


def test_account_selection() -> None:
    accounts = [
        {"id": "a1", "address": {"country": "UK"}},
        Account(id="a2", address={"country": "UK"}),
        {"id": "a3", "address": {"country": "US"}},
        {"id": "a4", "address": {"country": "UK"}},
    ]
    config = cfg(restricted_account_ids=["a4"], account_filter="address.country == UK")
    assert [a["id"] if isinstance(a, dict) else a.id
            for a in select_accounts(config, accounts)] == ["a1", "a2"]
    assert [account_allowed(cfg(account_ids=["a3"]), a) for a in accounts] == [
        False, False, True, False]
    assert all(account_allowed(cfg(), a) for a in accounts)


def test_bill_wanted() -> None:
    pending, approved = Bill(id="b", status="PENDING"), Bill(id="b", status="APPROVED")
    assert bill_wanted(cfg(), pending) and bill_wanted(cfg(), approved)
    on_approval = cfg(only_send_bill_on_approval=True)
    assert not bill_wanted(on_approval, pending) and bill_wanted(on_approval, approved)


# --------------------------------------------------------------------------- JSON


def test_dumps_is_exact_and_to_xero_json_keeps_decimals() -> None:
    value = Decimal("0.1") + Decimal("0.2")
    text = dumps({"a": value, "b": [Decimal("12.30"), 1, True, None, "é\""]}).decode()
    assert text == '{"a":0.3,"b":[12.30,1,true,null,"\\u00e9\\""]}'
    assert json.loads(text)["a"] == 0.3
    assert to_xero_json({"x": Decimal("1.10")}) == {"x": Decimal("1.10")}
    with pytest.raises(ValueError):
        dumps(Decimal("NaN"))
    with pytest.raises(TypeError):
        dumps({"money": 0.5})  # a float on its way to an invoice is a bug
    with pytest.raises(TypeError):
        dumps(object())
