"""A Xero organisation's reference data, as much of it as a sync checks its documents against.

Read once per sync run and tenant (``read_reference``) before any document is planned: the
organisation (name, base currency, lock dates), its subscribed currencies, chart of accounts and
tax rates, and, only when the integration names some, its items and tracking categories. Each
collection is one GET (Xero does not page them), and each counts against the tenant's limits
like any other call, so the caller passes a ``fetch`` that goes through them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AccountRef", "TaxRef", "XeroReference", "read_reference"]

Fetch = Callable[[str, dict[str, str] | None], list[dict[str, Any]]]
_MS_DATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/")


@dataclass(frozen=True)
class AccountRef:
    """One account of the chart, as the checks need it."""

    code: str
    name: str
    status: str
    account_class: str
    type: str


@dataclass(frozen=True)
class TaxRef:
    """One tax rate: its status and the account classes it may be used on."""

    tax_type: str
    name: str
    status: str
    applies_to: frozenset[str]


@dataclass(frozen=True)
class XeroReference:
    """What the tenant holds; ``items`` and ``tracking`` are None when they were not read."""

    organisation: str
    base_currency: str
    currencies: frozenset[str]
    accounts: dict[str, AccountRef]  # by code, upper-cased
    tax_rates: dict[str, TaxRef]  # by tax type, upper-cased
    items: dict[str, str | None] | None = None  # item code (upper) -> its sales account code
    #: category (lower) -> option (lower) -> status
    tracking: dict[str, dict[str, str]] | None = None
    lock_date: dt.date | None = None
    calls: int = field(default=0, compare=False)

    def account(self, code: str) -> AccountRef | None:
        """The account with this code (Xero matches codes case-insensitively)."""
        return self.accounts.get(code.strip().upper())

    def tax_rate(self, tax_type: str) -> TaxRef | None:
        """The tax rate of this type."""
        return self.tax_rates.get(tax_type.strip().upper())


def _ms_date(raw: Any) -> dt.date | None:
    """Xero's ``/Date(1700000000000+0000)/`` (or an ISO date) as a date."""
    if not isinstance(raw, str) or not raw:
        return None
    match = _MS_DATE.fullmatch(raw.strip())
    if match:
        return dt.datetime.fromtimestamp(int(match.group(1)) / 1000, dt.UTC).date()
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        return None


def _applies_to(rate: dict[str, Any]) -> frozenset[str]:
    flags = {
        "ASSET": "CanApplyToAssets",
        "EQUITY": "CanApplyToEquity",
        "EXPENSE": "CanApplyToExpenses",
        "LIABILITY": "CanApplyToLiabilities",
        "REVENUE": "CanApplyToRevenue",
    }
    return frozenset(cls for cls, key in flags.items() if rate.get(key))


def read_reference(fetch: Fetch, *, items: bool, tracking: bool) -> XeroReference:
    """The tenant's reference data in four calls, plus one each for items and tracking."""
    calls = 4
    orgs = fetch("Organisation", None)
    org = orgs[0] if orgs else {}
    lock_dates: Iterable[dt.date | None] = (
        _ms_date(org.get("PeriodLockDate")),
        _ms_date(org.get("EndOfYearLockDate")),
    )
    accounts = {
        str(a["Code"]).upper(): AccountRef(
            code=str(a["Code"]),
            name=str(a.get("Name") or ""),
            status=str(a.get("Status") or "ACTIVE"),
            account_class=str(a.get("Class") or ""),
            type=str(a.get("Type") or ""),
        )
        for a in fetch("Accounts", None)
        if a.get("Code")
    }
    rates = {
        str(r["TaxType"]).upper(): TaxRef(
            tax_type=str(r["TaxType"]),
            name=str(r.get("Name") or ""),
            status=str(r.get("Status") or "ACTIVE"),
            applies_to=_applies_to(r),
        )
        for r in fetch("TaxRates", None)
        if r.get("TaxType")
    }
    currencies = frozenset(
        str(c["Code"]).upper() for c in fetch("Currencies", None) if c.get("Code")
    )
    item_accounts = None
    if items:
        calls += 1
        item_accounts = {
            str(i["Code"]).upper(): ((i.get("SalesDetails") or {}).get("AccountCode") or None)
            for i in fetch("Items", None)
            if i.get("Code")
        }
    categories = None
    if tracking:
        calls += 1
        categories = {
            str(c.get("Name") or "").lower(): {
                str(o.get("Name") or "").lower(): str(o.get("Status") or "ACTIVE")
                for o in c.get("Options") or []
            }
            for c in fetch("TrackingCategories", None)
            if str(c.get("Status") or "ACTIVE") == "ACTIVE"
        }
    base = str(org.get("BaseCurrency") or "").upper()
    return XeroReference(
        organisation=str(org.get("Name") or ""),
        base_currency=base,
        currencies=currencies | ({base} if base else set()),
        accounts=accounts,
        tax_rates=rates,
        items=item_accounts,
        tracking=categories,
        lock_date=max((d for d in lock_dates if d), default=None),
        calls=calls,
    )
