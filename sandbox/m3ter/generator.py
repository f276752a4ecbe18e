"""Deterministic m3ter data: accounts and bills, as wire dicts (the product catalogue is
``catalogue``, the external mappings ``mappings``; their names are re-exported here).

Everything is a pure function of ``(seed, index[, version])`` so the sandbox keeps only compact
records and renders a bill when it is asked for: 50,000 bills cost a list of small records, not
50,000 JSON trees. Money is ``Decimal`` (2 dp subtotals, 4 dp unit prices); band subtotals add up
to the line subtotal exactly; credit-type lines are negative, so some bill totals are too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from sandbox.m3ter.catalogue import accounting_product
from sandbox.m3ter.catalogue import products as products
from sandbox.m3ter.ids import account_id as account_id
from sandbox.m3ter.ids import integration_config_id as integration_config_id
from sandbox.m3ter.ids import stable_id as stable_id
from sandbox.m3ter.mappings import XERO_CONTACT_TABLE as XERO_CONTACT_TABLE
from sandbox.m3ter.mappings import XERO_SYSTEM as XERO_SYSTEM
from sandbox.m3ter.mappings import make_mapping as make_mapping
from sandbox.m3ter.mappings import make_mappings as make_mappings

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
BASE_MONTH = date(2025, 1, 1)
"""Bill k of every account covers month ``BASE_MONTH + k months``."""

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


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    cities: tuple[tuple[str, str, str], ...]  # (locality, region, postcode)
    streets: tuple[str, ...]


COUNTRIES: tuple[Country, ...] = (
    Country(
        "GB",
        "GBP",
        (("London", "Greater London", "EC1A 1BB"), ("Manchester", "Greater Manchester", "M1 1AE")),
        ("High Street", "Station Road", "Church Lane"),
    ),
    Country(
        "US",
        "USD",
        (("New York", "NY", "10001"), ("San Francisco", "CA", "94105"), ("Austin", "TX", "73301")),
        ("Main Street", "Market Street", "5th Avenue"),
    ),
    Country(
        "DE",
        "EUR",
        (("Berlin", "Berlin", "10115"), ("München", "Bayern", "80331")),
        ("Hauptstraße", "Schillerstraße", "Goethestraße"),
    ),
    Country(
        "NZ",
        "NZD",
        (("Auckland", "Auckland", "1010"), ("Wellington", "Wellington", "6011")),
        ("Queen Street", "Lambton Quay", "Ponsonby Road"),
    ),
    Country(
        "IE",
        "EUR",
        (("Dublin", "County Dublin", "D02 X285"),),
        ("Grafton Street", "Baggot Street"),
    ),
)

_FIRST = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Tyrell",
    "Kiwi",
    "Pied Piper",
    "Soylent",
    "Wonka",
    "Cyberdyne",
    "Ørsted",
    "Müller & Söhne",
)
_LAST = ("Ltd", "Inc", "GmbH", "Limited", "Holdings", "Labs", "Cloud", "Systems")


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(dt: datetime) -> str:
    """To the millisecond, as m3ter stamps changes: a change within the second of a cut still
    compares as after it."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_instant(raw: str) -> datetime:
    """An ISO 8601 date-time (``Z`` allowed), UTC when it names no zone."""
    stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def make_account(seed: int, index: int) -> dict[str, Any]:
    """Account ``index`` as m3ter sends it (``AccountResponse``)."""
    rng = random.Random(f"{seed}:account:{index}")
    country = COUNTRIES[index % len(COUNTRIES)]
    locality, region, post_code = rng.choice(country.cities)
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {index:05d}"
    code = f"ACC-{index:05d}"
    created = datetime(2024, 6, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=index)
    address: dict[str, Any] = {
        "addressLine1": f"{rng.randint(1, 250)} {rng.choice(country.streets)}",
        "locality": locality,
        "region": region,
        "postCode": post_code,
        "country": country.code,
    }
    if index % 3 == 0:
        address["addressLine2"] = f"Floor {rng.randint(1, 9)}"
    if index % 7 == 0:
        address["addressLine3"] = "Building B"
        address["addressLine4"] = "Business Park"
    custom: dict[str, Any] = {
        "xeroAccountCode": rng.choice(("200", "260", "400")),
        "segment": rng.choice(("enterprise", "midmarket", "smb")),
        "region": country.code,
        "tier": rng.randint(1, 3),
        "discountRate": Decimal(rng.randint(0, 20)) / 100,
    }
    return {
        "id": account_id(seed, index),
        "code": code,
        "name": name,
        "currency": country.currency,
        "emailAddress": f"billing+{index}@example.{country.code.lower()}",
        "address": address,
        "customFields": custom,
        "daysBeforeBillDue": 30,
        "billEpoch": BASE_MONTH.isoformat(),
        "creditApplicationOrder": ["PREPAYMENT", "BALANCE"],
        "autoGenerateStatementMode": "NONE",
        "purchaseOrderNumber": f"PO-{index:05d}" if index % 4 == 0 else None,
        "dtCreated": iso(created),
        "dtLastModified": iso(created),
        "createdBy": "sandbox",
        "lastModifiedBy": "sandbox",
        "version": 1,
    }


def add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def bill_period(period: int) -> tuple[date, date]:
    """(startDate, endDate) of monthly period ``period``; endDate is exclusive, as in m3ter."""
    return add_months(BASE_MONTH, period), add_months(BASE_MONTH, period + 1)


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


@dataclass
class BillRecord:
    """What the sandbox keeps per bill; the rest is rendered from the seed on demand."""

    id: str
    number: int
    account_index: int
    period: int
    version: int
    status: str
    locked: bool
    bill_date: date
    account_id: str
    given: dict[str, Any] | None = None
    approved_at: datetime | None = None
    modified_at: datetime | None = None
    """When the sandbox last changed or added the bill; None: as the seed made it."""


def new_bill_record(seed: int, number: int, account_index: int, period: int) -> BillRecord:
    """Bill ``number`` (global counter) of an account: its version, status and lock."""
    rng = random.Random(f"{seed}:billrec:{number}")
    status = "APPROVED" if rng.random() < 0.6 else "PENDING"
    locked = status == "APPROVED" and rng.random() < 0.3
    _, end = bill_period(period)
    return BillRecord(
        id=stable_id(seed, "bill", number),
        number=number,
        account_index=account_index,
        period=period,
        version=rng.randint(1, 3),
        status=status,
        locked=locked,
        bill_date=end,
        account_id=account_id(seed, account_index),
    )


def calculated_at(rec: BillRecord) -> datetime:
    """When the seed's bill run calculated this version: 02:00 after its period, + version min."""
    return _calculated_at(rec.period, rec.version)


@lru_cache(maxsize=4096)
def _calculated_at(period: int, version: int) -> datetime:
    """Cached: a search sorts every record by it (a few periods and versions, many bills)."""
    _, end = bill_period(period)
    return datetime(end.year, end.month, end.day, 2, 0, tzinfo=UTC) + timedelta(minutes=version)


def last_modified(rec: BillRecord) -> datetime:
    """``dtLastModified``, from the record alone (search sorts 50,000 of these per page without
    rendering one): when the sandbox changed or added the bill, else the seed's calculation
    time (the sandbox caps it at its start for periods not yet over, see ``M3terSandbox``)."""
    if rec.modified_at is not None:
        return rec.modified_at
    if rec.given is not None:
        raw = rec.given.get("dtLastModified")
        return parse_instant(raw) if raw else EPOCH
    return calculated_at(rec)


def render_bill(seed: int, rec: BillRecord, account: dict[str, Any]) -> dict[str, Any]:
    """The full ``BillResponse`` dict for a record at its current version.

    Bill ``number`` always includes line type ``LINE_ITEM_TYPES[number % 19]`` (so 19 bills show
    every type); every 7th bill is mostly credits, so its total is negative.
    """
    if rec.given is not None:
        return rec.given
    rng = random.Random(f"{seed}:bill:{rec.number}:v{rec.version}")
    start, end = bill_period(rec.period)
    currency = account.get("currency") or "GBP"
    types = [LINE_ITEM_TYPES[rec.number % len(LINE_ITEM_TYPES)]]
    if rec.number % 7 == 3:
        types += ["CREDIT_MEMO", "USAGE_CREDIT", "STANDING_CHARGE"]
    else:
        types += ["STANDING_CHARGE", "USAGE"]
        types += rng.sample(LINE_ITEM_TYPES, rng.randint(0, 3))
    key = f"{rec.number}:v{rec.version}"
    lines = [
        make_line_item(seed, rng, key, n, t, currency, start, end) for n, t in enumerate(types)
    ]
    if rec.number % 7 == 3:
        # Make the credit outweigh the charges whatever the draw: a negative total.
        charges = sum((li["subtotal"] for li in lines if li["subtotal"] > 0), Decimal(0))
        credit = lines[1]  # CREDIT_MEMO: no bands to keep in step
        extra = -(charges + Decimal(1))
        credit["subtotal"] = credit["convertedSubtotal"] = credit["subtotal"] + extra
        credit["averageUnitPrice"] = (credit["subtotal"] / credit["quantity"]).quantize(AVG_DP)
    total = sum((li["subtotal"] for li in lines), Decimal(0))
    calculated = min(calculated_at(rec), last_modified(rec))
    bill: dict[str, Any] = {
        "id": rec.id,
        "version": rec.version,
        "accountId": rec.account_id,
        "accountCode": account.get("code"),
        "billDate": rec.bill_date.isoformat(),
        "dueDate": (rec.bill_date + timedelta(days=30)).isoformat(),
        "externalInvoiceDate": rec.bill_date.isoformat(),
        "startDate": start.isoformat(),
        "endDate": end.isoformat(),
        "startDateTimeUTC": f"{start.isoformat()}T00:00:00Z",
        "endDateTimeUTC": f"{end.isoformat()}T00:00:00Z",
        "billingFrequency": "MONTHLY",
        "billFrequencyInterval": 1,
        "billJobId": stable_id(seed, "billjob", rec.period),
        "currency": currency,
        "status": rec.status,
        "locked": rec.locked,
        "timezone": "UTC",
        "sequentialInvoiceNumber": f"INV-{rec.number + 1:06d}",
        "purchaseOrderNumber": account.get("purchaseOrderNumber"),
        "lineItems": lines,
        "billTotal": total,
        "csvStatementGenerated": False,
        "jsonStatementGenerated": False,
        "statementStale": False,
        "createdBy": "sandbox",
        "lastModifiedBy": "sandbox",
        "dtCreated": iso(calculated - timedelta(minutes=rec.version)),
        "dtLastModified": iso_ms(last_modified(rec)),
        "lastCalculatedDate": iso(calculated),
    }
    if rec.status == "APPROVED":
        bill["approvedBy"] = "sandbox"
        bill["dtApproved"] = iso(rec.approved_at or calculated + timedelta(hours=1))
    if rec.locked:
        bill["lockedBy"] = "sandbox"
        bill["dtLocked"] = iso(calculated + timedelta(hours=2))
    return {k: v for k, v in bill.items() if v is not None}
