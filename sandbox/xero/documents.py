"""Xero's documents (invoices and credit notes) as the sandbox keeps and shows them.

``DocKind`` names what differs between the two collections; ``Document`` is one stored
document, its totals computed from its lines (tax per line, then summed: ``tax``); ``render``
gives Xero's JSON shape (spec ``Invoice`` / ``CreditNote``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sandbox.xero.lines import Invalid, Line, guid, render_line
from sandbox.xero.tax import CENT, ZERO, totals
from sandbox.xero.wire import date_string, iso_utc, ms_date, ms_datetime


@dataclass(frozen=True)
class DocKind:
    """What differs between invoices and credit notes."""

    collection: str
    id_field: str
    number_field: str
    label: str
    types: frozenset[str]
    unique_types: frozenset[str]  # the types whose numbers are unique (and Xero's to give)


INVOICES = DocKind(
    "Invoices", "InvoiceID", "InvoiceNumber", "Invoice",
    frozenset({"ACCREC", "ACCPAY"}), frozenset({"ACCREC"}),
)  # fmt: skip
CREDIT_NOTES = DocKind(
    "CreditNotes", "CreditNoteID", "CreditNoteNumber", "Credit Note",
    frozenset({"ACCRECCREDIT", "ACCPAYCREDIT"}), frozenset({"ACCRECCREDIT"}),
)  # fmt: skip
KINDS = {kind.collection: kind for kind in (INVOICES, CREDIT_NOTES)}


@dataclass
class Document:
    """One stored invoice or credit note."""

    kind: DocKind
    tenant_id: str
    id: str
    type: str
    number: str | None
    contact: dict[str, str]
    date: date
    due_date: date | None
    status: str
    line_amount_types: str
    reference: str | None
    currency_code: str
    lines: list[Line]
    updated_at: float
    currency_rate: Decimal | None = None
    amount_paid: Decimal = ZERO
    fully_paid_on: date | None = None
    payments: list[dict[str, Any]] = field(default_factory=list)  # rendered summaries
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def money(self) -> tuple[Decimal, Decimal, Decimal]:
        amounts = [line.line_amount for line in self.lines]
        taxes = [line.tax_amount for line in self.lines]
        return totals(amounts, taxes, self.line_amount_types)

    @property
    def sub_total(self) -> Decimal:
        return self.money[0]

    @property
    def total_tax(self) -> Decimal:
        return self.money[1]

    @property
    def total(self) -> Decimal:
        return self.money[2]

    @property
    def amount_due(self) -> Decimal:
        return (self.total - self.amount_paid).quantize(CENT)


def render(doc: Document, unitdp: int = 2) -> dict[str, Any]:
    """A document in Xero's JSON shape (Decimals stay Decimals; the encoder writes them)."""
    kind = doc.kind
    places = Decimal("0.0001") if unitdp == 4 else CENT
    sub_total, total_tax, total = doc.money
    out: dict[str, Any] = {
        "Type": doc.type,
        kind.id_field: doc.id,
        kind.number_field: doc.number or "",
        "Reference": doc.reference or "",
        "Contact": dict(doc.contact),
        "DateString": date_string(doc.date),
        "Date": ms_date(doc.date),
    }
    if doc.due_date is not None:
        out["DueDateString"] = date_string(doc.due_date)
        out["DueDate"] = ms_date(doc.due_date)
    due = (total - doc.amount_paid).quantize(CENT)
    out.update(
        {
            "Status": doc.status,
            "LineAmountTypes": doc.line_amount_types,
            "LineItems": [render_line(line, places) for line in doc.lines],
            "SubTotal": sub_total,
            "TotalTax": total_tax,
            "Total": total,
            "UpdatedDateUTC": ms_datetime(doc.updated_at),
            "UpdatedDateUTCString": iso_utc(doc.updated_at),
            "CurrencyCode": doc.currency_code,
            "CurrencyRate": doc.currency_rate or Decimal("1.0000000000"),
            "HasAttachments": False,
            "HasErrors": False,
            "Payments": [dict(p) for p in doc.payments],
        }
    )
    if kind is INVOICES:
        out.update(
            {
                "AmountDue": due,
                "AmountPaid": doc.amount_paid,
                "AmountCredited": ZERO,
                "SentToContact": False,
                "IsDiscounted": False,
                "Prepayments": [],
                "Overpayments": [],
            }
        )
    else:
        out["RemainingCredit"] = due
        out["Allocations"] = []
    if doc.fully_paid_on is not None:
        out["FullyPaidOnDate"] = ms_date(doc.fully_paid_on)
    out.update(doc.extra)
    return out


def echo_of(kind: DocKind, raw: dict[str, Any]) -> dict[str, Any]:
    """What Xero echoes back about a refused element: the recognisable, well-typed bits."""
    echo: dict[str, Any] = {}
    if raw.get("Type") in kind.types:
        echo["Type"] = raw["Type"]
    for key in (kind.number_field, "Reference"):
        if isinstance(raw.get(key), str):
            echo[key] = raw[key]
    try:
        if raw.get(kind.id_field):
            echo[kind.id_field] = guid(raw[kind.id_field], kind.id_field)
    except Invalid:
        pass
    return echo
