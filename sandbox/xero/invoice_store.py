"""In-memory Xero documents (invoices and credit notes) with Xero's own rules.

One store serves both collections: a ``DocKind`` names the fields that differ. Money is Decimal
throughout. Rules kept (the ones the sync depends on):

- ``InvoiceNumber`` unique per tenant for ACCREC (``CreditNoteNumber`` for ACCRECCREDIT);
  missing numbers are generated (``INV-0001`` / ``CN-0001``).
- POST updates an element that carries the id, or (like Xero) whose number matches an existing
  sales document; PUT only creates.
- DRAFT and SUBMITTED are editable; AUTHORISED only takes a status change (to VOIDED);
  PAID, VOIDED and DELETED refuse every change.
- A tenant's period lock date refuses documents dated before it.
- A negative total is refused (that is a credit note's job); a contact is required.
- ``UnitAmount`` keeps 4 decimals with ``unitdp=4``, else 2; ``LineAmount`` = Quantity x
  UnitAmount rounded half up to cents; a given ``LineAmount`` must agree. No tax: TotalTax 0.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sandbox.xero.wire import date_string, iso_utc, ms_date, ms_datetime, parse_date

CENT = Decimal("0.01")
NOT_EDITABLE = "{label} not of valid status for modification"
LOCKED = "The document date cannot be before the period lock date"
EDITABLE = {"DRAFT", "SUBMITTED"}
FINAL = {"PAID", "VOIDED", "DELETED"}
CREATE_STATUSES = {"DRAFT", "SUBMITTED", "AUTHORISED"}
TRANSITIONS = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
}
LINE_AMOUNT_TYPES = {"Exclusive", "Inclusive", "NoTax"}


@dataclass(frozen=True)
class DocKind:
    """What differs between invoices and credit notes."""

    collection: str
    id_field: str
    number_field: str
    label: str
    types: frozenset[str]
    unique_types: frozenset[str]
    number_prefix: str


INVOICES = DocKind(
    "Invoices", "InvoiceID", "InvoiceNumber", "Invoice",
    frozenset({"ACCREC", "ACCPAY"}), frozenset({"ACCREC"}), "INV-",
)  # fmt: skip
CREDIT_NOTES = DocKind(
    "CreditNotes", "CreditNoteID", "CreditNoteNumber", "Credit Note",
    frozenset({"ACCRECCREDIT", "ACCPAYCREDIT"}), frozenset({"ACCRECCREDIT"}), "CN-",
)  # fmt: skip
KINDS = {kind.collection: kind for kind in (INVOICES, CREDIT_NOTES)}


@dataclass
class Line:
    """One stored line item."""

    line_item_id: str
    description: str | None
    quantity: Decimal | None
    unit_amount: Decimal | None
    line_amount: Decimal
    account_code: str | None = None
    item_code: str | None = None
    tax_type: str | None = None


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
    amount_paid: Decimal = Decimal("0.00")
    fully_paid_on: date | None = None
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sub_total(self) -> Decimal:
        return sum((line.line_amount for line in self.lines), Decimal("0.00")).quantize(CENT)

    @property
    def total_tax(self) -> Decimal:
        return Decimal("0.00")

    @property
    def total(self) -> Decimal:
        return self.sub_total + self.total_tax

    @property
    def amount_due(self) -> Decimal:
        return (self.total - self.amount_paid).quantize(CENT)


@dataclass
class ElementResult:
    """The fate of one element of a batch: the stored document, or the refusal."""

    document: Document | None
    errors: list[str]
    echo: dict[str, Any]


class Invalid(Exception):
    """One validation message about a field."""


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{key} must be text")
    return value


def _number(value: Any, key: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Invalid(f"{key} must be a number")
    try:
        number = Decimal(str(value)) if isinstance(value, int | str | float) else value
    except InvalidOperation:
        raise Invalid(f"{key} must be a number") from None
    if not isinstance(number, Decimal) or not number.is_finite():
        raise Invalid(f"{key} must be a number")
    return number


def _uuid(value: Any, key: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise Invalid(f"{key} is not a valid identifier") from None


def _parse_line(raw: Any, unit_places: Decimal) -> Line:
    if not isinstance(raw, dict):
        raise Invalid("A line item must be an object")
    description = _text(raw, "Description")
    quantity = _number(raw.get("Quantity"), "Quantity")
    unit = _number(raw.get("UnitAmount"), "UnitAmount")
    given = _number(raw.get("LineAmount"), "LineAmount")
    if quantity is None and unit is None and given is not None:
        quantity, unit = Decimal("1"), given
    elif quantity is not None and unit is None and given is not None and quantity != 0:
        unit = given / quantity
    elif unit is not None and quantity is None:
        quantity = Decimal("1")
    if quantity is not None:
        quantity = quantity.quantize(Decimal("0.0001"), ROUND_HALF_UP)
    if unit is not None:
        unit = unit.quantize(unit_places, ROUND_HALF_UP)
    if quantity is None or unit is None:
        if not description:
            raise Invalid("Description needs to be at least 1 char long")
        amount = Decimal("0.00")
    else:
        amount = (quantity * unit).quantize(CENT, ROUND_HALF_UP)
        if given is not None and given.quantize(CENT, ROUND_HALF_UP) != amount:
            raise Invalid(
                f"The line total {given} does not match the expected line total {amount}"
            )
    return Line(
        line_item_id=str(uuid.uuid4()),
        description=description,
        quantity=quantity,
        unit_amount=unit,
        line_amount=amount,
        account_code=_text(raw, "AccountCode"),
        item_code=_text(raw, "ItemCode"),
        tax_type=_text(raw, "TaxType"),
    )


class InvoiceStore:
    """Every tenant's invoices and credit notes; one lock makes each batch atomic."""

    def __init__(self, now: Callable[[], float], base_currency: str = "USD") -> None:
        self._now = now
        self.base_currency = base_currency
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._docs: dict[str, Document] = {}
            self._by_tenant: dict[tuple[str, str], list[str]] = {}
            # (tenant, collection, number) -> ids: a lookup by number must not scan every
            # document (a 50,000-bill sync made that quadratic).
            self._by_number_index: dict[tuple[str, str, str | None], list[str]] = {}
            self._seq: dict[str, int] = {}
            self._contacts: dict[tuple[str, str], str] = {}
            self.lock_dates: dict[str, date] = {}

    # ----- reading -------------------------------------------------------------------------
    def get(self, tenant_id: str, kind: DocKind, doc_id: str) -> Document | None:
        with self._lock:
            doc = self._docs.get(doc_id)
            if doc is None or doc.tenant_id != tenant_id or doc.kind is not kind:
                return None
            return doc

    def find(
        self,
        tenant_id: str,
        kind: DocKind,
        *,
        ids: set[str] | None = None,
        numbers: set[str] | None = None,
        statuses: set[str] | None = None,
    ) -> list[Document]:
        """Documents of a tenant in creation order, filtered by any of ids/numbers/statuses."""
        with self._lock:
            found = []
            candidates: list[str] = self._by_tenant.get((tenant_id, kind.collection), [])
            if numbers is not None:
                candidates = sorted(
                    {
                        doc_id
                        for number in numbers
                        for doc_id in self._by_number_index.get(
                            (tenant_id, kind.collection, number), ()
                        )
                    },
                    key=self._seq.__getitem__,
                )
            for doc_id in candidates:
                doc = self._docs[doc_id]
                if ids is not None and doc.id not in ids:
                    continue
                if numbers is not None and doc.number not in numbers:
                    continue
                if statuses is not None and doc.status not in statuses:
                    continue
                found.append(doc)
            return found

    def _by_number(self, tenant_id: str, kind: DocKind, number: str) -> Document | None:
        for doc in self.find(tenant_id, kind, numbers={number}):
            if doc.type in kind.unique_types:
                return doc
        return None

    # ----- writing -------------------------------------------------------------------------
    def write_batch(
        self,
        tenant_id: str,
        kind: DocKind,
        elements: list[Any],
        *,
        allow_update: bool,
        unitdp: int,
        target_id: str | None = None,
    ) -> list[ElementResult]:
        """Create or update each element on its own; a refused element leaves no trace."""
        with self._lock:
            return [
                self._write_one(tenant_id, kind, raw, allow_update, unitdp, target_id)
                for raw in elements
            ]

    def _write_one(
        self,
        tenant_id: str,
        kind: DocKind,
        raw: Any,
        allow_update: bool,
        unitdp: int,
        target_id: str | None,
    ) -> ElementResult:
        if not isinstance(raw, dict):
            return ElementResult(None, [f"{kind.label} must be an object"], {})
        echo = self._echo(kind, raw)
        try:
            existing = self._target(tenant_id, kind, raw, allow_update, target_id)
            if existing is not None:
                echo[kind.id_field] = existing.id
                self._check_editable(existing, raw)
            doc, errors = self._build(tenant_id, kind, raw, existing, unitdp)
        except Invalid as refusal:
            return ElementResult(None, [str(refusal)], echo)
        if errors:
            return ElementResult(None, errors, echo)
        self._docs[doc.id] = doc
        if existing is None:
            self._by_tenant.setdefault((tenant_id, kind.collection), []).append(doc.id)
            self._seq[doc.id] = len(self._seq)
        elif existing.number != doc.number:
            self._by_number_index[(tenant_id, kind.collection, existing.number)].remove(doc.id)
        if existing is None or existing.number != doc.number:
            key = (tenant_id, kind.collection, doc.number)
            self._by_number_index.setdefault(key, []).append(doc.id)
        return ElementResult(doc, [], echo)

    def _target(
        self,
        tenant_id: str,
        kind: DocKind,
        raw: dict[str, Any],
        allow_update: bool,
        target_id: str | None,
    ) -> Document | None:
        raw_id = target_id or raw.get(kind.id_field)
        if raw_id:
            doc_id = _uuid(raw_id, kind.id_field)
            if not allow_update:
                raise Invalid(f"{kind.label}s are updated with POST, not created again with PUT")
            doc = self.get(tenant_id, kind, doc_id)
            if doc is None:
                raise Invalid(f"{kind.label} could not be found")
            return doc
        number = raw.get(kind.number_field)
        if allow_update and isinstance(number, str) and number:
            return self._by_number(tenant_id, kind, number)
        return None

    def _check_editable(self, doc: Document, raw: dict[str, Any]) -> None:
        if doc.status in FINAL:
            raise Invalid(NOT_EDITABLE.format(label=doc.kind.label))
        lock = self.lock_dates.get(doc.tenant_id)
        if lock is not None and doc.date < lock:
            raise Invalid(LOCKED)
        if doc.status == "AUTHORISED":
            allowed = {doc.kind.id_field, doc.kind.number_field, "Type", "Status"}
            changed = set(raw) - allowed
            if changed or raw.get("Status", "AUTHORISED") not in TRANSITIONS["AUTHORISED"]:
                raise Invalid(NOT_EDITABLE.format(label=doc.kind.label))

    def _build(
        self,
        tenant_id: str,
        kind: DocKind,
        raw: dict[str, Any],
        existing: Document | None,
        unitdp: int,
    ) -> tuple[Document, list[str]]:
        errors: list[str] = []

        def field_value(key: str, parse: Callable[[Any], Any], default: Any) -> Any:
            if key not in raw or raw[key] is None:
                return default
            try:
                return parse(raw[key])
            except (Invalid, ValueError) as refusal:
                errors.append(str(refusal) if isinstance(refusal, Invalid) else f"{key} is invalid")
                return default

        today = datetime.fromtimestamp(self._now(), UTC).date()
        doc_type = field_value("Type", str, existing.type if existing else None)
        if doc_type not in kind.types:
            errors.append(f"{kind.label} Type must be one of {', '.join(sorted(kind.types))}")
        elif existing is not None and doc_type != existing.type:
            errors.append(f"{kind.label} Type cannot be changed")
        contact = field_value(
            "Contact", lambda v: self._contact(tenant_id, v), existing.contact if existing else None
        )
        if contact is None and not any("Contact" in e for e in errors):
            errors.append("A Contact must be specified for this type of transaction")
        doc_date = field_value("Date", parse_date, existing.date if existing else today)
        due = field_value("DueDate", parse_date, existing.due_date if existing else None)
        status = field_value("Status", str, existing.status if existing else "DRAFT")
        if existing is None and status not in CREATE_STATUSES:
            errors.append(f"A new {kind.label} cannot have the status {status}")
        elif existing is not None and status not in TRANSITIONS.get(existing.status, set()):
            errors.append(f"{kind.label} cannot change from {existing.status} to {status}")
        lat = field_value(
            "LineAmountTypes", str, existing.line_amount_types if existing else "Exclusive"
        )
        if lat not in LINE_AMOUNT_TYPES:
            errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax")
        currency = field_value(
            "CurrencyCode", str, existing.currency_code if existing else self.base_currency
        )
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            errors.append("The currency code is not valid")
        reference = field_value("Reference", str, existing.reference if existing else None)
        lines = existing.lines if existing else []
        if "LineItems" in raw:
            if not isinstance(raw["LineItems"], list):
                errors.append("LineItems must be a list")
            else:
                places = Decimal("0.0001") if unitdp == 4 else CENT
                lines = []
                for item in raw["LineItems"]:
                    try:
                        lines.append(_parse_line(item, places))
                    except Invalid as refusal:
                        errors.append(str(refusal))
        number = raw.get(kind.number_field)
        if number is not None and not isinstance(number, str):
            errors.append(f"{kind.number_field} must be text")
            number = None
        number = number or (existing.number if existing else None)
        if number is not None and len(number) > 255:
            errors.append(f"{kind.number_field} must be at most 255 characters")
        lock = self.lock_dates.get(tenant_id)
        if lock is not None and isinstance(doc_date, date) and doc_date < lock:
            errors.append(LOCKED)
        doc = Document(
            kind=kind,
            tenant_id=tenant_id,
            id=existing.id if existing else str(uuid.uuid4()),
            type=doc_type or "",
            number=number,
            contact=contact or {},
            date=doc_date,
            due_date=due,
            status=status,
            line_amount_types=lat,
            reference=reference,
            currency_code=currency,
            lines=lines,
            updated_at=self._now(),
            amount_paid=existing.amount_paid if existing else Decimal("0.00"),
            version=existing.version + 1 if existing else 1,
            extra={k: raw[k] for k in ("Url", "BrandingThemeID") if isinstance(raw.get(k), str)},
        )
        if doc.total < 0:
            errors.append(f"The {kind.label} total cannot be negative")
        if doc.type in kind.unique_types and not errors:
            if number is None:
                doc.number = self._next_number(tenant_id, kind)
            else:
                other = self._by_number(tenant_id, kind, number)
                if other is not None and other.id != doc.id:
                    errors.append(f"{kind.label} # must be unique.")
        return doc, errors

    def _contact(self, tenant_id: str, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise Invalid("A Contact must be specified for this type of transaction")
        name = raw.get("Name")
        if raw.get("ContactID"):
            contact_id = _uuid(raw["ContactID"], "ContactID")
            known = {cid: n for (t, n), cid in self._contacts.items() if t == tenant_id}
            name = known.get(contact_id, name)
            if isinstance(name, str) and name:
                self._contacts.setdefault((tenant_id, name), contact_id)
            return {"ContactID": contact_id, **({"Name": name} if isinstance(name, str) else {})}
        if isinstance(name, str) and name.strip():
            contact_id = self._contacts.setdefault((tenant_id, name), str(uuid.uuid4()))
            return {"ContactID": contact_id, "Name": name}
        raise Invalid("A Contact must be specified for this type of transaction")

    def _next_number(self, tenant_id: str, kind: DocKind) -> str:
        taken = {doc.number for doc in self.find(tenant_id, kind)}
        n = len(taken) + 1
        while f"{kind.number_prefix}{n:04d}" in taken:
            n += 1
        return f"{kind.number_prefix}{n:04d}"

    def _echo(self, kind: DocKind, raw: dict[str, Any]) -> dict[str, Any]:
        """What Xero echoes back about a refused element: the recognisable, well-typed bits."""
        echo: dict[str, Any] = {}
        if raw.get("Type") in kind.types:
            echo["Type"] = raw["Type"]
        for key in (kind.number_field, "Reference"):
            if isinstance(raw.get(key), str):
                echo[key] = raw[key]
        try:
            if raw.get(kind.id_field):
                echo[kind.id_field] = _uuid(raw[kind.id_field], kind.id_field)
        except Invalid:
            pass
        return echo

    # ----- control (the /_sandbox endpoints) -----------------------------------------------
    def mark_paid(self, doc_id: str) -> Document | None:
        """Pay a document in full (an AUTHORISED one; drafts are authorised on the way)."""
        with self._lock:
            doc = self._docs.get(doc_id)
            if doc is None or doc.status in {"VOIDED", "DELETED"}:
                return None
            today = datetime.fromtimestamp(self._now(), UTC).date()
            paid = replace(doc, status="PAID", amount_paid=doc.total, fully_paid_on=today)
            paid.updated_at = self._now()
            self._docs[doc_id] = paid
            return paid

    def set_lock_date(self, tenant_id: str, lock: date | None) -> None:
        with self._lock:
            if lock is None:
                self.lock_dates.pop(tenant_id, None)
            else:
                self.lock_dates[tenant_id] = lock

    def snapshot(self) -> dict[str, Any]:
        """Per tenant: counts and number -> {id, status, total, version}, JSON-safe."""
        with self._lock:
            tenants: dict[str, Any] = {}
            for (tenant_id, collection), ids in self._by_tenant.items():
                kind = KINDS[collection]
                entry = tenants.setdefault(tenant_id, {})
                entry[f"{collection}_count"] = len(ids)
                entry[collection] = {
                    (doc.number or doc.id): {
                        kind.id_field: doc.id,
                        "Status": doc.status,
                        "Total": str(doc.total),
                        "Version": doc.version,
                    }
                    for doc in (self._docs[i] for i in ids)
                }
            return {
                "documents": tenants,
                "lock_dates": {t: d.isoformat() for t, d in self.lock_dates.items()},
            }


def render(doc: Document, unitdp: int = 2) -> dict[str, Any]:
    """A document in Xero's JSON shape (Decimals stay Decimals; the encoder writes them)."""
    kind = doc.kind
    places = Decimal("0.0001") if unitdp == 4 else CENT
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
    out.update(
        {
            "Status": doc.status,
            "LineAmountTypes": doc.line_amount_types,
            "LineItems": [_render_line(line, places) for line in doc.lines],
            "SubTotal": doc.sub_total,
            "TotalTax": doc.total_tax,
            "Total": doc.total,
            "UpdatedDateUTC": ms_datetime(doc.updated_at),
            "UpdatedDateUTCString": iso_utc(doc.updated_at),
            "CurrencyCode": doc.currency_code,
            "CurrencyRate": Decimal("1.0000000000"),
            "HasAttachments": False,
            "HasErrors": False,
        }
    )
    if kind is INVOICES:
        out.update(
            {
                "AmountDue": doc.amount_due,
                "AmountPaid": doc.amount_paid,
                "AmountCredited": Decimal("0.00"),
                "SentToContact": False,
                "IsDiscounted": False,
                "Prepayments": [],
                "Overpayments": [],
            }
        )
    else:
        out["RemainingCredit"] = doc.amount_due
        out["Allocations"] = []
    if doc.fully_paid_on is not None:
        out["FullyPaidOnDate"] = ms_date(doc.fully_paid_on)
    out.update(doc.extra)
    return out


def _render_line(line: Line, places: Decimal) -> dict[str, Any]:
    out: dict[str, Any] = {"LineItemID": line.line_item_id}
    if line.description is not None:
        out["Description"] = line.description
    if line.quantity is not None:
        out["Quantity"] = line.quantity
    if line.unit_amount is not None:
        out["UnitAmount"] = line.unit_amount.quantize(places, ROUND_HALF_UP)
    for key, value in (
        ("AccountCode", line.account_code),
        ("ItemCode", line.item_code),
        ("TaxType", line.tax_type),
    ):
        if value is not None:
            out[key] = value
    out["TaxAmount"] = Decimal("0.00")
    out["LineAmount"] = line.line_amount
    out["Tracking"] = []
    return out
