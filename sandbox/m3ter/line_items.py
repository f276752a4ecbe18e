"""Generated bill lines: m3ter's line item types and one seeded line of each. Money is ``Decimal``
(2 dp subtotals, 4 dp unit prices); band subtotals add up to the line subtotal exactly."""

from __future__ import annotations

import random
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.m3ter.catalogue import accounting_product, products
from sandbox.m3ter.ids import stable_id

LINE_ITEM_TYPES: tuple[str, ...] = (
    "STANDING_CHARGE",
    "USAGE",
    "COUNTER_RUNNING_TOTAL_CHARGE",
    "COUNTER_ADJUSTMENT_DEBIT",
    "COUNTER_ADJUSTMENT_CREDIT",
    "USAGE_CREDIT",
    "MINIMUM_SPEND",
    "MINIMUM_SPEND_REFUND",
    "CREDIT_DEDUCTION",
    "MANUAL_ADJUSTMENT",
    "CREDIT_MEMO",
    "DEBIT_MEMO",
    "COMMITMENT_CONSUMED",
    "COMMITMENT_FEE",
    "OVERAGE_SURCHARGE",
    "OVERAGE_USAGE",
    "BALANCE_CONSUMED",
    "BALANCE_FEE",
    "AD_HOC",
)
"""m3ter's 19 bill ``lineItemType`` values, in the order of its API reference (the ``Literal`` of
``m3ter.types.bill_response.LineItem`` in m3ter's SDK, generated from that API). The emulator keeps
its own copy rather than importing the client's (``config.line_items``): it stands for m3ter, not
for the code it checks, so a type the client forgot still turns up in its bills.
``tests/m3ter/test_generator.py`` holds both lists to the SDK's. The order sets which bills carry
which types: change it and the generated data changes."""

CENT = Decimal("0.01")
PRICE_DP = Decimal("0.0001")
AVG_DP = Decimal("0.00000001")

CREDIT_TYPES = frozenset(
    {
        "COUNTER_ADJUSTMENT_CREDIT",
        "USAGE_CREDIT",
        "MINIMUM_SPEND_REFUND",
        "CREDIT_DEDUCTION",
        "CREDIT_MEMO",
        "COMMITMENT_CONSUMED",
        "BALANCE_CONSUMED",
    }
)
"""Line types whose subtotal is negative (MANUAL_ADJUSTMENT may go either way)."""
BANDED_TYPES = frozenset({"USAGE", "OVERAGE_USAGE", "COUNTER_RUNNING_TOTAL_CHARGE", "USAGE_CREDIT"})
"""Line types that carry ``usagePerPricingBand`` entries."""


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _bands(
    rng: random.Random, quantity_total: int, sign: int, seed: int, key: str
) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
    """Tiered bands; returns (bands, quantity, subtotal) with subtotal = sum of band subtotals."""
    n = rng.randint(1, 3)
    limits = [0, *sorted(rng.sample(range(1, max(quantity_total, n + 1)), n - 1))]
    bands: list[dict[str, Any]] = []
    subtotal = Decimal(0)
    price = Decimal(rng.randint(500, 5000)) / 10000 * 10
    for b, lower in enumerate(limits):
        upper = limits[b + 1] if b + 1 < len(limits) else quantity_total
        qty = Decimal(max(upper - lower, 0))
        unit_price = (price * (Decimal(1) - Decimal(b) / 10)).quantize(PRICE_DP)
        band_subtotal = _money(qty * unit_price) * sign
        subtotal += band_subtotal
        bands.append(
            {
                "pricingBandId": stable_id(seed, "band", key, b),
                "lowerLimit": Decimal(lower),
                "bandQuantity": qty,
                "bandUnits": qty,
                "unitPrice": unit_price,
                "fixedPrice": Decimal(0),
                "unitSubtotal": band_subtotal,
                "bandSubtotal": band_subtotal,
                "convertedBandSubtotal": band_subtotal,
            }
        )
    return bands, Decimal(quantity_total), subtotal


def make_line_item(
    seed: int,
    rng: random.Random,
    bill_key: str,
    n: int,
    line_type: str,
    currency: str,
    start: date,
    end: date,
) -> dict[str, Any]:
    """One line of type ``line_type``; credits negative; banded types carry pricing bands."""
    product = rng.choice(products(seed))
    sign = -1 if line_type in CREDIT_TYPES else 1
    if line_type == "MANUAL_ADJUSTMENT":
        sign = rng.choice((-1, 1))
    bands: list[dict[str, Any]] | None = None
    if line_type in BANDED_TYPES:
        total_qty = rng.randint(10, 5000)
        bands, quantity, subtotal = _bands(rng, total_qty, sign, seed, f"{bill_key}:{n}")
    else:
        quantity = Decimal(1) if rng.random() < 0.7 else Decimal(rng.randint(2, 12))
        unit_price = (Decimal(rng.randint(1000, 250000)) / 100).quantize(PRICE_DP)
        subtotal = _money(quantity * unit_price) * sign
    average = (subtotal / quantity).quantize(AVG_DP) if quantity else Decimal(0)
    item: dict[str, Any] = {
        "id": stable_id(seed, "line", bill_key, n),
        "lineItemType": line_type,
        "description": f"{product.name} {line_type.replace('_', ' ').lower()}",
        "productId": product.id,
        "productName": product.name,
        "productCode": product.code,
        "quantity": quantity,
        "units": quantity,
        "unit": product.unit,
        "averageUnitPrice": average,
        "subtotal": subtotal,
        "convertedSubtotal": subtotal,
        "conversionRate": Decimal(1),
        "currency": currency,
        "sequenceNumber": n,
        "servicePeriodStartDate": f"{start.isoformat()}T00:00:00Z",
        "servicePeriodEndDate": f"{end.isoformat()}T00:00:00Z",
    }
    accounting = accounting_product(product, line_type)  # m3ter's precedence: see catalogue
    if accounting is not None:
        item["accountingProductId"] = accounting.id
        item["accountingProductCode"] = accounting.code
        item["accountingProductName"] = accounting.name
    if line_type in ("USAGE", "OVERAGE_USAGE", "USAGE_CREDIT"):
        item["meterId"] = product.meter_id
        item["aggregationId"] = product.aggregation_id
    if line_type.startswith("COUNTER"):
        item["counterId"] = stable_id(seed, "counter", product.code)
    if line_type.startswith("COMMITMENT"):
        item["commitmentId"] = stable_id(seed, "commitment", bill_key)
    if line_type.startswith("BALANCE"):
        item["balanceId"] = stable_id(seed, "balance", bill_key)
    if line_type in ("CREDIT_MEMO", "DEBIT_MEMO", "CREDIT_DEDUCTION"):
        item["reasonId"] = stable_id(seed, "reason", line_type)
    if bands is not None:
        item["usagePerPricingBand"] = bands
        item["pricingId"] = product.pricing_id
    return item
