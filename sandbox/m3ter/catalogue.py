"""The seeded product catalogue and m3ter's choice of a bill line's accounting product.

An accounting product is an m3ter Product like any other (``ProductResponse``: id, code, name):
pricings, aggregations and plans name one by id ("Optional Product ID this Pricing / Aggregation /
Plan's standing charge should be attributed to for accounting purposes": ``accountingProductId``
of ``PricingResponse``, ``AggregationResponse``, ``CompoundAggregationResponse`` and
``standingChargeAccountingProductId`` of ``PlanResponse`` in m3ter's SDK 0.9.0). A bill line
carries the chosen one as ``accountingProductId``/``Code``/``Name`` (``BillResponse.LineItem``).

Which one a line gets, per m3ter's guide "Bill Line Items - Mapping to Accounting Products"
(https://www.m3ter.com/docs/guides/billing-and-usage-data/running-viewing-and-managing-bills/
bill-line-items-mapping-accounting-products):

- Usage and Usage credit lines: the Pricing's accounting product takes precedence; if the
  Pricing has none, the Aggregation's (simple or compound) used to price the Plan; if neither has
  one, the Product the Plan belongs to. Overage usage is priced the same way (by a Pricing on the
  Plan's Aggregation), so it follows the same order (our reading: the guide names only usage).
- Minimum spend lines: the Plan's minimum spend accounting product, else the Plan's Product
  (no seeded Plan sets one, so the Plan's Product).
- Standing charge lines: the Plan's ``standingChargeAccountingProductId``, else the Plan's Product
  (the SDK's field; the same order as the guide gives minimum spend).
- Balance consumed lines: the Balance's consumptions accounting product; "if you omit [it] then
  Balance consumed Bill line items will not be linked to a Product" (guide "Creating and Managing
  Account Balances"). Seeded balances set none, so these lines carry no accounting product.
- Everything else (counter charges, prepayment fees and draw-downs, balance fees, ad-hoc charges,
  credit and debit memos, adjustments) is attributed to the Product its Plan, Prepayment, Charge
  or memo is linked to; m3ter requires one on credit and debit line items (``accountingProductId``
  is ``Required`` in ``CreditLineItemCreateParams``/``DebitLineItemCreateParams``). The seed links
  each to the line's Product and sets no separate accounting product on them (nor on counter
  pricings, though ``CounterPricingResponse`` has an ``accountingProductId`` too).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sandbox.m3ter.ids import stable_id

USAGE_PRICED = frozenset({"USAGE", "USAGE_CREDIT", "OVERAGE_USAGE"})
"""Line types priced by a Pricing on an Aggregation: Pricing > Aggregation > Plan's Product."""


@dataclass(frozen=True)
class Product:
    """An m3ter Product: what ``ProductResponse`` names it by. Accounting products are these."""

    id: str
    name: str
    code: str


@dataclass(frozen=True)
class PlanProduct(Product):
    """A Product sold through a Plan, with the meter, Aggregation and Pricing that price it and
    the accounting products those (and the Plan) name, if any."""

    unit: str
    meter_id: str
    aggregation_id: str
    pricing_id: str
    pricing_accounting: Product | None = None
    """``PricingResponse.accountingProductId`` of the Plan's Pricing."""
    aggregation_accounting: Product | None = None
    """``AggregationResponse.accountingProductId`` of the Aggregation the Pricing uses."""
    standing_charge_accounting: Product | None = None
    """``PlanResponse.standingChargeAccountingProductId``."""


_ACCOUNTING_SPECS = (
    ("Compute Revenue", "compute_revenue"),
    ("Storage Revenue", "storage_revenue"),
    ("Usage Revenue", "usage_revenue"),
    ("Platform Subscriptions", "platform_subscriptions"),
)

_PRODUCT_SPECS: tuple[tuple[str, str, str, str | None, str | None, str | None], ...] = (
    # name, code, unit, Pricing's, Aggregation's, Plan standing charge's accounting product code
    (
        "Compute",
        "compute",
        "vCPU-hour",
        "compute_revenue",
        "usage_revenue",
        "platform_subscriptions",
    ),
    ("Storage", "storage", "GB", None, "storage_revenue", "platform_subscriptions"),
    ("API Calls", "api_calls", "call", None, None, None),
    ("Data Transfer", "egress", "GB", None, "usage_revenue", None),
    ("Support", "support", "seat", None, None, None),
    ("Analytics", "analytics", "query", "usage_revenue", None, None),
)
"""The order is the generator's: a line draws its product from this tuple, so reordering it
changes every generated bill. Usage lines of Compute show a Pricing winning over an Aggregation,
Storage and Data Transfer an Aggregation winning over the Plan's Product, API Calls and Support
the Plan's Product, Analytics a Pricing alone."""


@lru_cache(maxsize=64)
def accounting_products(seed: int) -> tuple[Product, ...]:
    """The Products that exist for accounting only (no Plan sells them)."""
    return tuple(
        Product(id=stable_id(seed, "accounting-product", code), name=name, code=code)
        for name, code in _ACCOUNTING_SPECS
    )


@lru_cache(maxsize=64)
def products(seed: int) -> tuple[PlanProduct, ...]:
    """The products sold through plans, the same for every account of a seed."""
    accounting = {p.code: p for p in accounting_products(seed)}

    def pick(code: str | None) -> Product | None:
        return accounting[code] if code else None

    return tuple(
        PlanProduct(
            id=stable_id(seed, "product", code),
            name=name,
            code=code,
            unit=unit,
            meter_id=stable_id(seed, "meter", code),
            aggregation_id=stable_id(seed, "aggregation", code),
            pricing_id=stable_id(seed, "pricing", code),
            pricing_accounting=pick(pricing),
            aggregation_accounting=pick(aggregation),
            standing_charge_accounting=pick(standing),
        )
        for name, code, unit, pricing, aggregation, standing in _PRODUCT_SPECS
    )


def all_products(seed: int) -> tuple[Product, ...]:
    """Every Product of the seed's organisation: those sold, then the accounting-only ones."""
    return (*products(seed), *accounting_products(seed))


def product_by_code(seed: int, code: str) -> Product:
    """The Product with this code; ``KeyError`` if there is none."""
    for product in all_products(seed):
        if product.code == code:
            return product
    raise KeyError(code)


def accounting_product(product: PlanProduct, line_type: str) -> Product | None:
    """The accounting product m3ter gives a line of ``line_type`` for ``product`` (see the module
    docstring for the rules and their sources); ``None``: the line is linked to none."""
    if line_type in USAGE_PRICED:
        return product.pricing_accounting or product.aggregation_accounting or product
    if line_type == "STANDING_CHARGE":
        return product.standing_charge_accounting or product
    if line_type == "BALANCE_CONSUMED":
        return None
    return product
