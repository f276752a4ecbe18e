"""Properties of the mapper over generated bills: the Xero lines add up to the bill total to the
cent (or the bill is skipped), every line passes Xero's Quantity x UnitAmount check, and every
document validates against Xero's schema; with coding (product mappings, per-type codes,
defaults, tracking) the money of each account is its lines' money, and an approved document with
a line Xero cannot book is stopped before any call."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.integration import validate_config
from tasks.m3ter.models import LINE_ITEM_TYPES
from tasks.mapping import Outcome, map_bill
from tasks.xero.money_json import to_xero_json
from tests.sandbox.openapi import assert_valid

CENT = Decimal("0.01")


def _dec(lo: str, hi: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(Decimal(lo), Decimal(hi), places=places, allow_nan=False,
                       allow_infinity=False)


@st.composite
def bands(draw: st.DrawFn, total: Decimal) -> list[dict[str, Any]]:
    """Bands whose subtotals add up to ``total`` (or, sometimes, do not)."""
    n = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(_dec("0", "1", 3), min_size=n - 1, max_size=n - 1)))
    shares = [b - a for a, b in zip([Decimal(0), *cuts], [*cuts, Decimal(1)], strict=True)]
    result, lower = [], Decimal(0)
    for share in shares:
        subtotal = total * share
        quantity = draw(_dec("0", "100000", draw(st.integers(0, 5))))
        price = subtotal / quantity if quantity else draw(_dec("0", "5", 4))
        result.append({"bandQuantity": str(quantity), "bandSubtotal": str(subtotal),
                       "unitPrice": str(price), "lowerLimit": str(lower)})
        lower += draw(_dec("0", "10000", 0))
    if draw(st.integers(0, 9)) == 0:
        result[0]["bandSubtotal"] = str(Decimal(result[0]["bandSubtotal"]) + 5)
    return result


@st.composite
def line_items(draw: st.DrawFn) -> dict[str, Any]:
    subtotal = draw(_dec("-5000", "20000", draw(st.integers(0, 7))))
    quantity = draw(_dec("0", "1000000", draw(st.integers(0, 6))))
    price = (subtotal / quantity) if quantity else subtotal
    converted = draw(st.booleans()) and draw(st.booleans())
    rate = draw(_dec("0.1", "3", 6)) if converted else Decimal(1)
    line = {
        "averageUnitPrice": str(price),
        "conversionRate": str(rate),
        "convertedSubtotal": str(subtotal * rate),
        "currency": "USD" if converted else "GBP",
        "description": draw(st.sampled_from(["API calls", "Storage", "Fee", ""])),
        "lineItemType": draw(st.sampled_from(LINE_ITEM_TYPES)),
        "quantity": str(quantity),
        "subtotal": str(subtotal),
        "unit": draw(st.sampled_from(["calls", "GB"])),
        "units": str(quantity),
        "productId": draw(st.sampled_from(["p1", "p2", None])),
        "accountingProductId": draw(st.sampled_from(["ap1", None, None])),
        "aggregationId": draw(st.sampled_from(["g1", "g2", None])),
    }
    if draw(st.booleans()):
        line["usagePerPricingBand"] = draw(bands(subtotal * rate if converted else subtotal))
    return line


PRODUCTS = ["p1", "p2", "ap1"]
TABLES = ["Account", "Item", "TaxRate", "TrackingOption"]
INTEGRATION = "int-1"


@st.composite
def product_mappings(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Product -> Xero mappings: linked to this integration, to another, or to none."""
    maps = []
    for n in range(draw(st.integers(0, 8))):
        table = draw(st.sampled_from(TABLES))
        value = {
            "Account": st.sampled_from(["4000", "4100", "4200"]),
            "Item": st.sampled_from(["ITEM-A", "ITEM-B"]),
            "TaxRate": st.sampled_from(["OUTPUT2", "TAX001"]),
            "TrackingOption": st.sampled_from(["Region:Asia", "Team:Core", "Channel:Web"]),
        }[table]
        maps.append({
            "id": f"pm-{n}",
            "externalId": draw(value),
            "externalSystem": "Xero",
            "externalTable": table,
            "m3terEntity": "Product",
            "m3terId": draw(st.sampled_from(PRODUCTS)),
            "integrationConfigId": draw(st.sampled_from([INTEGRATION, "int-other", None])),
        })
    return maps


def chosen(
    maps: list[dict[str, Any]], enforce: bool, product: str | None, table: str
) -> str | None:
    """The oracle: the external id that counts (linked, else unless enforced unlinked, else any)."""
    found = [m for m in maps if m["m3terId"] == product and m["externalTable"] == table]
    linked = [m for m in found if m["integrationConfigId"] == INTEGRATION]
    unlinked = [m for m in found if m["integrationConfigId"] is None]
    pick = linked or ([] if enforce else unlinked or found)
    return pick[0]["externalId"] if pick else None


def booking(
    config, maps: list[dict[str, Any]], li: dict[str, Any]
) -> tuple[str | None, str | None]:
    """The oracle: (AccountCode, ItemCode) of a generated line."""
    product = li["accountingProductId"] or li["productId"]
    enforce = config.enforce_external_mappings_for_config
    item = chosen(maps, enforce, product, "Item")
    account = config.line_item_type_account_codes.get(li["lineItemType"]) or chosen(
        maps, enforce, product, "Account"
    )
    if not account and not item:
        account = config.default_account_code
    return account, item


configs = st.fixed_dictionaries(
    {
        "name": st.just("prop"),
        "split_usage_line_items": st.sampled_from(["ITEM_PER_USAGE_BAND", "ITEM_PER_PRODUCT"]),
        "sort_line_items_by": st.sampled_from(["NONE", "SUBTOTAL", "AGGREGATION_ID"]),
        "invoice_status": st.sampled_from(["DRAFT", "SUBMITTED", "AUTHORISED"]),
        "excluded_line_item_types": st.lists(st.sampled_from(LINE_ITEM_TYPES), max_size=3),
        "excluded_products": st.lists(st.sampled_from(["p1", "ap1"]), max_size=1),
        "excluded_aggregations": st.lists(st.sampled_from(["g2"]), max_size=1),
        "enforce_external_mappings_for_config": st.booleans(),
        "default_account_code": st.sampled_from([None, "", "200"]),
        "default_tax_type": st.sampled_from([None, "output2"]),
        "line_item_type_account_codes": st.dictionaries(
            st.sampled_from(LINE_ITEM_TYPES), st.sampled_from(["4500", "4900"]), max_size=4
        ),
        "tracking": st.lists(
            st.sampled_from(
                [{"category": "Region", "option": "Europe"}, {"category": "Dept", "option": "Ops"}]
            ),
            max_size=2,
            unique_by=lambda t: t["category"],
        ),
    }
).map(validate_config)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs, st.lists(line_items(), max_size=6), product_mappings())
def test_lines_add_up_to_the_bill_total_or_the_bill_is_skipped(config, lines, maps) -> None:
    bill = {"id": "bill-p", "version": 1, "currency": "GBP", "billDate": "2024-05-01",
            "dueDate": "2024-05-31", "status": "APPROVED", "lineItems": lines}
    result = map_bill(config, INTEGRATION, bill, {"id": "acc-1", "name": "Acme"}, maps)
    kept = [
        li for li in lines
        if li["lineItemType"] not in config.excluded_line_item_types
        and (li["accountingProductId"] or li["productId"]) not in config.excluded_products
        and li["aggregationId"] not in config.excluded_aggregations
    ]
    if not kept:
        assert result.outcome is Outcome.SKIPPED
        return
    bookings = [booking(config, maps, li) for li in kept]
    if config.invoice_status != "DRAFT" and not all(a or i for a, i in bookings):
        assert result.outcome is Outcome.MISSING_ACCOUNT_MAPPING and result.document is None
        assert "no Xero account code for " in result.reason
        return
    assert result.outcome is Outcome.MAPPED and result.document is not None
    exact = sum(Decimal(li["convertedSubtotal"]) for li in kept)
    total = exact.quantize(CENT, rounding=ROUND_HALF_UP)
    doc = result.document
    line_sum = sum(li["LineAmount"] for li in doc["LineItems"])
    if total < 0:
        assert result.kind == "credit_note" and doc["Type"] == "ACCRECCREDIT"
        assert line_sum == -total == result.total
        assert_valid("CreditNote", doc)
    else:
        assert result.kind == "invoice" and doc["Type"] == "ACCREC"
        assert line_sum == total == result.total
        assert_valid("Invoice", doc)
    for li in doc["LineItems"]:
        for key in ("Quantity", "UnitAmount", "LineAmount"):
            assert isinstance(li[key], Decimal)
        assert li["LineAmount"] == li["LineAmount"].quantize(CENT)
        assert li["UnitAmount"] == li["UnitAmount"].quantize(Decimal("0.0001"))
        assert li["Quantity"] == li["Quantity"].quantize(Decimal("0.0001"))
        assert li["Quantity"] >= 0
        # Xero's own check, under either rounding rule it might use.
        product = li["Quantity"] * li["UnitAmount"]
        assert product.quantize(CENT) == li["LineAmount"]
        assert product.quantize(CENT, rounding=ROUND_HALF_UP) == li["LineAmount"]
        assert li["Description"]
        names = [t["Name"] for t in li.get("Tracking", [])]
        assert len(names) <= 2 and len({n.casefold() for n in names}) == len(names)
        if config.invoice_status != "DRAFT":
            assert li.get("AccountCode") or li.get("ItemCode")
    assert to_xero_json(doc)["LineItems"] == doc["LineItems"]
    # Coding never moves money: each (account, item)'s Xero lines carry its m3ter lines' amounts
    # (to the cent per line: rounding, the remainder and bands within a cent).
    sign = -1 if total < 0 else 1
    expected: dict[tuple[str | None, str | None], Decimal] = defaultdict(Decimal)
    for li, key in zip(kept, bookings, strict=True):
        expected[key] += Decimal(li["convertedSubtotal"]) * sign
    sent: dict[tuple[str | None, str | None], Decimal] = defaultdict(Decimal)
    for li in doc["LineItems"]:
        sent[(li.get("AccountCode"), li.get("ItemCode"))] += li["LineAmount"]
    assert set(sent) <= set(expected)
    slack = CENT * (len(doc["LineItems"]) + len(kept) + 1)
    for key, amount in expected.items():
        assert abs(sent.get(key, Decimal(0)) - amount) <= slack, key
