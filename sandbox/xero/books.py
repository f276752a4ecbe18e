"""One Xero organisation's reference data: what its invoices and credit notes are checked against.

Per tenant: the organisation (base currency, country, lock dates), subscribed currencies, a chart
of accounts, tax rates, items, tracking categories and contacts. ``BooksStore`` seeds each
tenant on first use from its organisation's name, like Xero's demo companies: a name ending in
"(US)" gets a US organisation (USD, sales tax), any other a UK one (GBP, VAT). ``reset`` brings
every tenant back to its seed.

The seeds follow Xero's demo company and its documented defaults: account 200 "Sales"
(REVENUE), 090 bank, 610 receivable (system DEBTORS), 820 VAT (system GST); UK tax types
OUTPUT2 (20 % VAT on Income), ZERORATEDOUTPUT, EXEMPTOUTPUT, NONE, INPUT2; US "Tax on Sales"
as a two-component rate. Sources: https://developer.xero.com/documentation/api/accounting/accounts,
/taxrates (tax types per region), /types#tax-types, and the Demo Company (UK) chart.

This module is data and lookups only; the wire shapes are rendered by the routes that serve
them, the rules that use them live with the documents.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

# Account class by account type (https://developer.xero.com/documentation/api/accounting/types
# #account-class-types and #account-types).
CLASS_OF_TYPE: dict[str, str] = {
    "BANK": "ASSET", "CURRENT": "ASSET", "FIXED": "ASSET", "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET", "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY", "LIABILITY": "LIABILITY", "TERMLIAB": "LIABILITY",
    "PAYG": "LIABILITY",
    "DIRECTCOSTS": "EXPENSE", "EXPENSE": "EXPENSE", "OVERHEADS": "EXPENSE",
    "DEPRECIATN": "EXPENSE",
    "EQUITY": "EQUITY",
    "REVENUE": "REVENUE", "SALES": "REVENUE", "OTHERINCOME": "REVENUE",
}  # fmt: skip
CLASSES = ("ASSET", "EQUITY", "EXPENSE", "LIABILITY", "REVENUE")


def _id(*parts: object) -> str:
    """A stable id: the same tenant and name give the same GUID after every reset."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "xero-sandbox-books:" + ":".join(map(str, parts))))


@dataclass
class Account:
    """One account of the chart; ``code`` is what a line's ``AccountCode`` names."""

    account_id: str
    code: str
    name: str
    type: str
    status: str = "ACTIVE"  # ACTIVE | ARCHIVED
    tax_type: str | None = None
    system_account: str | None = None
    bank_account_number: str | None = None
    currency_code: str | None = None
    description: str | None = None
    updated: float = 0.0
    # EnablePaymentsToAccount: "describes whether account can have payments applied to it"
    # (spec, Account); a BANK account takes payments without it.
    enable_payments: bool = False

    @property
    def account_class(self) -> str:
        """ASSET, EQUITY, EXPENSE, LIABILITY or REVENUE, from the type."""
        return CLASS_OF_TYPE[self.type]


@dataclass
class TaxComponent:
    """One component of a tax rate (a rate in percent, e.g. ``Decimal("20")``)."""

    name: str
    rate: Decimal
    is_compound: bool = False
    is_non_recoverable: bool = False


@dataclass
class TaxRate:
    """A tax rate; ``tax_type`` is what a line's ``TaxType`` names."""

    tax_type: str
    name: str
    components: list[TaxComponent]
    report_tax_type: str = "OUTPUT"
    status: str = "ACTIVE"  # ACTIVE | DELETED | ARCHIVED
    applies_to: frozenset[str] = frozenset({"REVENUE"})  # account classes it may be used on

    @property
    def effective_rate(self) -> Decimal:
        """The rate in percent a line's tax is computed with: simple components add up; a
        compound one applies to the amount plus the simple tax before it."""
        simple = sum((c.rate for c in self.components if not c.is_compound), Decimal(0))
        rate = simple
        for c in self.components:
            if c.is_compound:
                rate += c.rate * (Decimal(100) + simple) / Decimal(100)
        return rate


@dataclass
class Item:
    """A product or service; a line naming ``code`` in ``ItemCode`` takes its sales details."""

    item_id: str
    code: str
    name: str
    description: str | None = None
    is_sold: bool = True
    is_purchased: bool = False
    sales_account_code: str | None = None
    sales_tax_type: str | None = None
    sales_unit_price: Decimal | None = None
    updated: float = 0.0


@dataclass
class TrackingOption:
    """An option of a tracking category (what a line's ``Tracking`` ``Option`` names)."""

    option_id: str
    name: str
    status: str = "ACTIVE"  # ACTIVE | ARCHIVED


@dataclass
class TrackingCategory:
    """A tracking category; Xero allows two active ones per organisation."""

    category_id: str
    name: str
    options: list[TrackingOption]
    status: str = "ACTIVE"  # ACTIVE | ARCHIVED

    def option(self, name: str) -> TrackingOption | None:
        """The option named ``name`` (case-insensitive, as Xero matches names)."""
        wanted = name.strip().lower()
        return next((o for o in self.options if o.name.lower() == wanted), None)


@dataclass
class Contact:
    """A customer or supplier; found by id, by ``contact_number`` or by ``name``."""

    contact_id: str
    name: str
    contact_number: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    status: str = "ACTIVE"  # ACTIVE | ARCHIVED | GDPRREQUEST
    addresses: list[dict[str, str]] = field(default_factory=list)
    is_customer: bool = False
    is_supplier: bool = False
    updated: float = 0.0


@dataclass
class Organisation:
    """The organisation itself: what ``GET /Organisation`` shows."""

    organisation_id: str
    name: str
    legal_name: str
    base_currency: str
    country_code: str
    version: str  # Xero's region: UK, US, AU, NZ, GLOBAL
    timezone: str
    short_code: str
    period_lock_date: date | None = None
    end_of_year_lock_date: date | None = None
    created: float = 0.0
    organisation_type: str = "COMPANY"
    is_demo_company: bool = False
    pays_tax: bool = True
    financial_year_end_day: int = 31
    financial_year_end_month: int = 12
    # Invoice settings: the prefixes and the next number Xero numbers sales documents with when
    # none is sent (document_rules.next_number says how).
    invoice_prefix: str = "INV-"
    credit_note_prefix: str = "CN-"
    next_number: str = "0001"

    @property
    def lock_date(self) -> date | None:
        """The later lock date: documents dated on or before it are refused."""
        dates = [d for d in (self.period_lock_date, self.end_of_year_lock_date) if d]
        return max(dates) if dates else None


@dataclass
class Books:
    """One tenant's reference data, with the lookups invoices need."""

    organisation: Organisation
    currencies: dict[str, str]  # code -> description; the base currency included
    accounts: list[Account]
    tax_rates: list[TaxRate]
    items: list[Item]
    tracking: list[TrackingCategory]
    contacts: list[Contact]

    def account(self, code: str | None = None, account_id: str | None = None) -> Account | None:
        """The account with this code (case-insensitive) or id, archived ones included."""
        for acc in self.accounts:
            if code is not None and acc.code.lower() == code.strip().lower():
                return acc
            if account_id is not None and acc.account_id == account_id.lower():
                return acc
        return None

    def tax_rate(self, tax_type: str) -> TaxRate | None:
        """The tax rate of this type, whatever its status."""
        return next((t for t in self.tax_rates if t.tax_type == tax_type.strip().upper()), None)

    def item(self, code: str) -> Item | None:
        """The item with this code (case-insensitive)."""
        wanted = code.strip().lower()
        return next((i for i in self.items if i.code.lower() == wanted), None)

    def tracking_category(self, name: str) -> TrackingCategory | None:
        """The tracking category with this name (case-insensitive)."""
        wanted = name.strip().lower()
        return next((c for c in self.tracking if c.name.lower() == wanted), None)

    def contact(
        self, contact_id: str | None = None, number: str | None = None, name: str | None = None
    ) -> Contact | None:
        """The contact found as Xero finds one: by id, else by number, else by name."""
        if contact_id:
            return next((c for c in self.contacts if c.contact_id == contact_id.lower()), None)
        if number:
            return next((c for c in self.contacts if c.contact_number == number), None)
        if name:
            wanted = name.strip().lower()
            return next((c for c in self.contacts if c.name.strip().lower() == wanted), None)
        return None

    def add_contact(self, name: str, now: float, **details: object) -> Contact:
        """A new contact (``details``: any other ``Contact`` field), listed from now on."""
        contact = Contact(contact_id=str(uuid.uuid4()), name=name, updated=now, **details)  # type: ignore[arg-type]
        self.contacts.append(contact)
        return contact


class BooksStore:
    """Every tenant's books, seeded on first use; one lock guards them all."""

    def __init__(self, orgs: dict[str, str], now: Callable[[], float]) -> None:
        """``orgs``: organisation name -> tenant id (the identity sandbox's ``orgs``)."""
        self._names = {tenant: name for name, tenant in orgs.items()}
        self._now = now
        self.lock = threading.RLock()
        self._books: dict[str, Books] = {}

    def reset(self) -> None:
        """Every tenant back to its seed."""
        with self.lock:
            self._books.clear()

    def for_tenant(self, tenant_id: str) -> Books:
        """This tenant's books (seeded now if new). Hold ``lock`` while changing them."""
        with self.lock:
            books = self._books.get(tenant_id)
            if books is None:
                name = self._names.get(tenant_id, f"Organisation {tenant_id[:8]}")
                books = self._books[tenant_id] = seed(tenant_id, name, self._now())
            return books

    def tenants(self) -> Iterable[str]:
        """Tenants whose books exist (seeded or changed) so far."""
        with self.lock:
            return list(self._books)


# ----- seeds -------------------------------------------------------------------------------

_CURRENCY_NAMES = {
    "GBP": "Pound Sterling", "USD": "United States Dollar", "EUR": "Euro",
    "NZD": "New Zealand Dollar", "AUD": "Australian Dollar", "JPY": "Japanese Yen",
    "CAD": "Canadian Dollar", "CHF": "Swiss Franc", "SGD": "Singapore Dollar",
    "HKD": "Hong Kong Dollar", "SEK": "Swedish Krona", "ZAR": "South African Rand",
}  # fmt: skip


def currency_name(code: str) -> str | None:
    """The description ``GET /Currencies`` shows for a code the sandbox knows, else None."""
    return _CURRENCY_NAMES.get(code.strip().upper())


# The chart both regions share (code, name, type, system account); tax types per region below.
_CHART: tuple[tuple[str, str, str, str | None], ...] = (
    ("090", "Business Bank Account", "BANK", None),
    ("200", "Sales", "REVENUE", None),
    ("201", "Subscription Revenue", "REVENUE", None),
    ("202", "Usage Revenue", "REVENUE", None),
    ("203", "Minimum Spend Revenue", "REVENUE", None),
    ("204", "Prepayment Drawdowns", "REVENUE", None),
    ("205", "Credits and Adjustments", "REVENUE", None),
    ("260", "Other Revenue", "OTHERINCOME", None),
    ("270", "Interest Income", "REVENUE", None),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", None),
    ("400", "Advertising", "OVERHEADS", None),
    ("610", "Accounts Receivable", "CURRENT", "DEBTORS"),
    ("800", "Accounts Payable", "CURRLIAB", "CREDITORS"),
    ("820", "Sales Tax", "CURRLIAB", "GST"),
    ("860", "Rounding", "CURRLIAB", "ROUNDING"),
    ("960", "Retained Earnings", "EQUITY", "RETAINEDEARNINGS"),
)
_ARCHIVED_ACCOUNT = ("206", "Legacy Sales", "REVENUE")


def _uk_tax_rates() -> list[TaxRate]:
    revenue, expense = frozenset({"REVENUE"}), frozenset({"EXPENSE", "ASSET"})
    anywhere = frozenset(CLASSES)
    return [
        TaxRate("OUTPUT2", "20% (VAT on Income)", [TaxComponent("VAT", Decimal("20"))],
                "OUTPUT", applies_to=revenue),
        TaxRate("RROUTPUT", "5% (VAT on Income)", [TaxComponent("VAT", Decimal("5"))],
                "OUTPUT", applies_to=revenue),
        TaxRate("ZERORATEDOUTPUT", "Zero Rated Income", [TaxComponent("VAT", Decimal("0"))],
                "OUTPUT", applies_to=revenue),
        TaxRate("EXEMPTOUTPUT", "Exempt Income", [TaxComponent("VAT", Decimal("0"))],
                "EXEMPTOUTPUT", applies_to=revenue),
        TaxRate("INPUT2", "20% (VAT on Expenses)", [TaxComponent("VAT", Decimal("20"))],
                "INPUT", applies_to=expense),
        TaxRate("NONE", "No VAT", [TaxComponent("VAT", Decimal("0"))], "NONE",
                applies_to=anywhere),
        TaxRate("OUTPUT", "17.5% (VAT on Income)", [TaxComponent("VAT", Decimal("17.5"))],
                "OUTPUT", status="DELETED", applies_to=revenue),
    ]  # fmt: skip


def _us_tax_rates() -> list[TaxRate]:
    revenue, anywhere = frozenset({"REVENUE"}), frozenset(CLASSES)
    return [
        TaxRate("OUTPUT", "Tax on Sales",
                [TaxComponent("State Tax", Decimal("4.0")), TaxComponent("City Tax",
                                                                         Decimal("4.875"))],
                "OUTPUT", applies_to=revenue),
        TaxRate("TAX001", "Compound Sales Tax",
                [TaxComponent("State Tax", Decimal("5.0")),
                 TaxComponent("Local Tax", Decimal("2.0"), is_compound=True)],
                "OUTPUT", applies_to=revenue),
        TaxRate("INPUT", "Tax on Purchases", [TaxComponent("Sales Tax", Decimal("0"))],
                "INPUT", applies_to=frozenset({"EXPENSE", "ASSET"})),
        TaxRate("NONE", "Tax Exempt", [TaxComponent("Tax", Decimal("0"))], "NONE",
                applies_to=anywhere),
    ]  # fmt: skip


def seed(tenant_id: str, name: str, now: float) -> Books:
    """A tenant's books as a new demo organisation named ``name`` has them."""
    us = name.rstrip().endswith("(US)")
    sales_tax = "OUTPUT" if us else "OUTPUT2"
    base = "USD" if us else "GBP"
    organisation = Organisation(
        organisation_id=_id(tenant_id, "organisation"),
        name=name,
        legal_name=name,
        base_currency=base,
        country_code="US" if us else "GB",
        version="US" if us else "UK",
        timezone="EASTERNSTANDARDTIME" if us else "GMTSTANDARDTIME",
        short_code="!" + _id(tenant_id, "short")[:5],
        created=now,
        is_demo_company=name.startswith("Demo Company"),
    )
    currencies = {c: _CURRENCY_NAMES[c] for c in (base, "GBP", "USD", "EUR", "NZD")}
    accounts = [
        Account(
            account_id=_id(tenant_id, "account", code),
            code=code,
            name=acc_name,
            type=acc_type,
            tax_type=sales_tax if CLASS_OF_TYPE[acc_type] == "REVENUE" else "NONE",
            system_account=system,
            bank_account_number="12345678" if acc_type == "BANK" else None,
            updated=now,
        )
        for code, acc_name, acc_type, system in _CHART
    ]
    code, acc_name, acc_type = _ARCHIVED_ACCOUNT
    accounts.append(
        Account(_id(tenant_id, "account", code), code, acc_name, acc_type, status="ARCHIVED",
                tax_type=sales_tax, updated=now)
    )  # fmt: skip
    items = [
        Item(_id(tenant_id, "item", c), c, n, description=n, sales_account_code=a,
             sales_tax_type=sales_tax, updated=now)
        for c, n, a in (
            ("PLATFORM", "Platform subscription", "201"),
            ("USAGE", "Metered usage", "202"),
            ("SUPPORT", "Premium support", "200"),
        )
    ]  # fmt: skip
    tracking = [
        TrackingCategory(
            _id(tenant_id, "tracking", "Region"),
            "Region",
            [TrackingOption(_id(tenant_id, "option", "Region", o), o, status)
             for o, status in (("Eastside", "ACTIVE"), ("North", "ACTIVE"), ("South", "ACTIVE"),
                               ("West Coast", "ACTIVE"), ("Highlands", "ARCHIVED"))],
        ),
        TrackingCategory(
            _id(tenant_id, "tracking", "Product Line"),
            "Product Line",
            [TrackingOption(_id(tenant_id, "option", "Product Line", o), o)
             for o in ("Compute", "Storage", "Platform")],
        ),
    ]  # fmt: skip
    contacts = [
        Contact(_id(tenant_id, "contact", "Bank West"), "Bank West", email="ap@bankwest.example",
                is_customer=True, updated=now),
        Contact(_id(tenant_id, "contact", "Ridgeway University"), "Ridgeway University",
                contact_number="RIDGEWAY", is_customer=True, updated=now),
        Contact(_id(tenant_id, "contact", "Old Customer"), "Old Customer Ltd",
                contact_number="OLD-1", status="ARCHIVED", is_customer=True, updated=now),
    ]  # fmt: skip
    return Books(organisation, currencies, accounts, _us_tax_rates() if us else _uk_tax_rates(),
                 items, tracking, contacts)  # fmt: skip
