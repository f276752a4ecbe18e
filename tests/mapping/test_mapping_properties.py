"""Properties of the mapper over generated bills: the Xero lines add up to the bill total to the
cent (or the bill is skipped), every line passes Xero's Quantity x UnitAmount check, and every
document validates against Xero's schema."""

from __future__ import annotations

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


configs = st.fixed_dictionaries(
    {
        "name": st.just("prop"),
        "split_usage_line_items": st.sampled_from(["ITEM_PER_USAGE_BAND", "ITEM_PER_PRODUCT"]),
        "sort_line_items_by": st.sampled_from(["NONE", "SUBTOTAL", "AGGREGATION_ID"]),
        "invoice_status": st.sampled_from(["DRAFT", "SUBMITTED", "AUTHORISED"]),
        "excluded_line_item_types": st.lists(st.sampled_from(LINE_ITEM_TYPES), max_size=3),
        "excluded_products": st.lists(st.sampled_from(["p1", "ap1"]), max_size=1),
        "excluded_aggregations": st.lists(st.sampled_from(["g2"]), max_size=1),
    }
).map(validate_config)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs, st.lists(line_items(), max_size=6))
def test_lines_add_up_to_the_bill_total_or_the_bill_is_skipped(config, lines) -> None:
    bill = {"id": "bill-p", "version": 1, "currency": "GBP", "billDate": "2024-05-01",
            "dueDate": "2024-05-31", "status": "APPROVED", "lineItems": lines}
    result = map_bill(config, "int-1", bill, {"id": "acc-1", "name": "Acme"}, [])
    kept = [
        li for li in lines
        if li["lineItemType"] not in config.excluded_line_item_types
        and (li["accountingProductId"] or li["productId"]) not in config.excluded_products
        and li["aggregationId"] not in config.excluded_aggregations
    ]
    if not kept:
        assert result.outcome is Outcome.SKIPPED
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
    assert to_xero_json(doc)["LineItems"] == doc["LineItems"]
