"""Generated m3ter bills: the compact record the sandbox keeps per bill, and the full
``BillResponse`` rendered from it on demand.

Everything is a pure function of ``(seed, index[, version])`` so the sandbox keeps only compact
records and renders a bill when it is asked for: 50,000 bills cost a list of small records, not
50,000 JSON trees. Credit-type lines are negative, so some bill totals are too. The tests reach
``integration_config_id``, ``CREDIT_TYPES`` and ``BANDED_TYPES`` here too (``gen.<name>``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sandbox.m3ter.ids import account_id, stable_id
from sandbox.m3ter.ids import integration_config_id as integration_config_id
from sandbox.m3ter.line_items import AVG_DP, LINE_ITEM_TYPES, make_line_item
from sandbox.m3ter.line_items import BANDED_TYPES as BANDED_TYPES
from sandbox.m3ter.line_items import CREDIT_TYPES as CREDIT_TYPES
from sandbox.m3ter.stamps import EPOCH, iso, iso_ms, parse_instant

BASE_MONTH = date(2025, 1, 1)
"""Bill k of every account covers month ``BASE_MONTH + k months``."""


def add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def bill_period(period: int) -> tuple[date, date]:
    """(startDate, endDate) of monthly period ``period``; endDate is exclusive, as in m3ter."""
    return add_months(BASE_MONTH, period), add_months(BASE_MONTH, period + 1)


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
