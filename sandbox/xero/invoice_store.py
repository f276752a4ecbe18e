"""In-memory Xero documents (invoices and credit notes), validated against the tenant's books.

One store serves both collections: a ``DocKind`` names the fields that differ. Money is Decimal
throughout. The line rules (accounts, tax, items, tracking) live in ``document_rules`` and
``tax``, the line shapes in ``lines``; this module keeps the documents and their life cycle:

- ``InvoiceNumber`` unique per tenant for ACCREC (``CreditNoteNumber`` for ACCRECCREDIT), a
  deleted document's number free again; a missing number is given from the organisation's
  invoice settings (``INV-0001``, ``CN-0002``: one sequence); an update may change the number
  (xeroizer saves a document, then saves it again with its number,
  https://github.com/waynerobinson/xeroizer/issues/125) and keeps it when it sends none.
  ``document_rules`` has the rules and their sources.
- POST updates an element that carries the id, or (like Xero) whose number matches an existing
  sales document ("Using POST ... will override the document but succeed",
  https://github.com/freakboy3742/pyxero/issues/328); PUT only creates.
- DRAFT and SUBMITTED are editable; so is AUTHORISED while nothing is paid on it, the lines
  sent replacing the old ones ("An invoice is updatable while its status is DRAFT, SUBMITTED
  or AUTHORISED and nothing is applied to it", https://github.com/XeroAPI/xero-mcp-server/
  pull/221; https://github.com/XeroAPI/Xero-Net/issues/339). AUTHORISED can be VOIDED, not
  DELETED. A payment freezes it; PAID, VOIDED and DELETED refuse every change.
- Lock dates (the organisation's, in the books) refuse approved documents dated on or before
  them; a negative total is refused (that is a credit note's job); a contact is required.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sandbox.xero.books import Books
from sandbox.xero.document_rules import (
    CREATE_STATUSES,
    FINAL,
    HAS_PAYMENT,
    LINE_AMOUNT_TYPES,
    MAX_TEXT,
    NOT_CREATABLE,
    NOT_EDITABLE,
    NUMBER_NOT_TEXT,
    NUMBER_NOT_UNIQUE,
    NUMBER_TOO_LONG,
    REFERENCE_TOO_LONG,
    TRANSITIONS,
    ContactIndex,
    ContactRef,
    currency,
    holds_number,
    lock_refusal,
    next_number,
    resolve_contact,
    resolve_line,
)
from sandbox.xero.documents import CREDIT_NOTES, INVOICES, KINDS, DocKind, Document, echo_of, render
from sandbox.xero.lines import Invalid, guid, lines_from
from sandbox.xero.lines import number as parse_number
from sandbox.xero.tax import CENT, line_tax
from sandbox.xero.wire import parse_date

__all__ = ["CREDIT_NOTES", "INVOICES", "DocKind", "Document", "ElementResult", "InvoiceStore",
           "render"]  # fmt: skip


@dataclass
class ElementResult:
    """The fate of one element of a batch: the stored document, or the refusal."""

    document: Document | None
    errors: list[str]
    echo: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


class InvoiceStore:
    """Every tenant's invoices and credit notes; one lock makes each batch atomic."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._docs: dict[str, Document] = {}
            self._by_tenant: dict[tuple[str, str], list[str]] = {}
            # (tenant, collection, number) -> ids: a lookup by number must not scan every
            # document (a 50,000-bill sync made that quadratic).
            self._by_number_index: dict[tuple[str, str, str | None], list[str]] = {}
            self._seq: dict[str, int] = {}
            self._contacts: dict[str, ContactIndex] = {}

    # ----- reading -------------------------------------------------------------------------
    def get(self, tenant_id: str, kind: DocKind, doc_id: str) -> Document | None:
        with self.lock:
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
        references: set[str] | None = None,
    ) -> list[Document]:
        """Documents of a tenant in creation order, filtered by any of ids, numbers, statuses
        and references."""
        with self.lock:
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
            found = []
            for doc_id in candidates:
                doc = self._docs[doc_id]
                if ids is not None and doc.id not in ids:
                    continue
                if numbers is not None and doc.number not in numbers:
                    continue
                if statuses is not None and doc.status not in statuses:
                    continue
                if references is not None and doc.reference not in references:
                    continue
                found.append(doc)
            return found

    def by_number(self, tenant_id: str, kind: DocKind, number: str) -> Document | None:
        """The sales document (ACCREC / ACCRECCREDIT) with this number."""
        for doc in self.find(tenant_id, kind, numbers={number}):
            if doc.type in kind.unique_types:
                return doc
        return None

    def holder(self, tenant_id: str, kind: DocKind, number: str) -> Document | None:
        """The sales document that keeps ``number`` from others (a deleted one keeps none)."""
        for doc in self.find(tenant_id, kind, numbers={number}):
            if doc.type in kind.unique_types and holds_number(doc.status):
                return doc
        return None

    # ----- writing -------------------------------------------------------------------------
    def write_batch(
        self,
        tenant_id: str,
        kind: DocKind,
        elements: list[Any],
        *,
        books: Books,
        books_lock: Any,
        allow_update: bool,
        unitdp: int,
        target_id: str | None = None,
    ) -> list[ElementResult]:
        """Create or update each element on its own; a refused element leaves no trace."""
        with self.lock, books_lock:
            if tenant_id in self._contacts:
                self._contacts[tenant_id].stale()
            return [
                self._write_one(tenant_id, kind, raw, books, allow_update, unitdp, target_id)
                for raw in elements
            ]

    def _write_one(
        self,
        tenant_id: str,
        kind: DocKind,
        raw: Any,
        books: Books,
        allow_update: bool,
        unitdp: int,
        target_id: str | None,
    ) -> ElementResult:
        if not isinstance(raw, dict):
            return ElementResult(None, [f"{kind.label} must be an object"], {})
        echo = echo_of(kind, raw)
        try:
            existing = self._target(tenant_id, kind, raw, allow_update, target_id)
            if existing is not None:
                echo[kind.id_field] = existing.id
                self._check_editable(existing, raw, books)
            doc, contact, errors, warnings = self._build(
                tenant_id, kind, raw, existing, unitdp, books
            )
        except Invalid as refusal:
            return ElementResult(None, [str(refusal)], echo)
        if errors:
            return ElementResult(None, errors, echo, warnings)
        if contact is not None and contact.new is not None:
            self._contact_index(tenant_id, books).add(contact.new)
        self._docs[doc.id] = doc
        if existing is None:
            self._by_tenant.setdefault((tenant_id, kind.collection), []).append(doc.id)
            self._seq[doc.id] = len(self._seq)
        elif existing.number != doc.number:
            self._by_number_index[(tenant_id, kind.collection, existing.number)].remove(doc.id)
        if existing is None or existing.number != doc.number:
            key = (tenant_id, kind.collection, doc.number)
            self._by_number_index.setdefault(key, []).append(doc.id)
        return ElementResult(doc, [], echo, warnings)

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
            doc_id = guid(raw_id, kind.id_field)
            if not allow_update:
                raise Invalid(f"{kind.label}s are updated with POST, not created again with PUT")
            doc = self.get(tenant_id, kind, doc_id)
            if doc is None:
                raise Invalid(f"{kind.label} could not be found")
            return doc
        number = raw.get(kind.number_field)
        if allow_update and isinstance(number, str) and number:
            return self.holder(tenant_id, kind, number)
        return None

    def _check_editable(self, doc: Document, raw: dict[str, Any], books: Books) -> None:
        """Whether ``doc`` may take the change ``raw`` at all (before the change is built)."""
        label = doc.kind.label
        if doc.status in FINAL:
            raise Invalid(NOT_EDITABLE.format(label=label))
        if doc.amount_paid > 0:
            raise Invalid(HAS_PAYMENT)
        if doc.status == "AUTHORISED":
            locked = lock_refusal(books.organisation, doc.date, editing=True)
            if locked is not None:
                raise Invalid(locked)

    def _build(
        self,
        tenant_id: str,
        kind: DocKind,
        raw: dict[str, Any],
        existing: Document | None,
        unitdp: int,
        books: Books,
    ) -> tuple[Document, ContactRef | None, list[str], list[str]]:
        errors: list[str] = []
        warnings: list[str] = []

        def field_value(key: str, parse: Callable[[Any], Any], default: Any) -> Any:
            if key not in raw or raw[key] is None:
                return default
            try:
                return parse(raw[key])
            except (Invalid, ValueError) as refusal:
                errors.append(str(refusal) if isinstance(refusal, Invalid) else f"{key} is invalid")
                return default

        label = kind.label
        now = self._now()
        today = datetime.fromtimestamp(now, UTC).date()
        doc_type = field_value("Type", str, existing.type if existing else None)
        if doc_type not in kind.types:
            errors.append(f"{label} Type must be one of {', '.join(sorted(kind.types))}")
        elif existing is not None and doc_type != existing.type:
            errors.append(f"{label} Type cannot be changed")
        contact: ContactRef | None = None
        if "Contact" in raw:
            try:
                index = self._contact_index(tenant_id, books)
                contact = resolve_contact(index, raw["Contact"], now)
            except Invalid as refusal:
                errors.append(str(refusal))
        elif existing is None:
            errors.append("A Contact must be specified for this type of transaction")
        doc_date = field_value("Date", parse_date, existing.date if existing else today)
        due = field_value("DueDate", parse_date, existing.due_date if existing else None)
        status = field_value("Status", str, existing.status if existing else "DRAFT")
        if existing is None and status not in CREATE_STATUSES:
            errors.append(NOT_CREATABLE.format(label=label))
        elif existing is not None and status not in TRANSITIONS.get(existing.status, set()):
            errors.append(NOT_EDITABLE.format(label=label))
        lat = field_value(
            "LineAmountTypes", str, existing.line_amount_types if existing else "Exclusive"
        )
        if lat not in LINE_AMOUNT_TYPES:
            errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax")
        base = books.organisation.base_currency
        code = field_value(
            "CurrencyCode",
            lambda v: currency(books, v),
            existing.currency_code if existing else base,
        )
        rate = field_value(
            "CurrencyRate",
            lambda v: parse_number(v, "CurrencyRate"),
            existing.currency_rate if existing else None,
        )
        reference = field_value("Reference", str, existing.reference if existing else None)
        if reference is not None and len(reference) > MAX_TEXT:
            errors.append(REFERENCE_TOO_LONG)
        old = existing.lines if existing else []
        lines = lines_from(raw, old, Decimal("0.0001") if unitdp == 4 else CENT, errors)
        for line in lines:
            line_errors, line_warnings = resolve_line(books, line, draft=status == "DRAFT")
            errors += line_errors
            warnings += line_warnings
            line.tax_amount = line_tax(line.line_amount, line.tax_rate, lat, line.tax_override)
        number = raw.get(kind.number_field)
        if number is not None and not isinstance(number, str):
            errors.append(NUMBER_NOT_TEXT.format(field=kind.number_field))
            number = None
        number = number or (existing.number if existing else None)  # none sent: kept
        if number is not None and len(number) > MAX_TEXT:
            errors.append(NUMBER_TOO_LONG.format(field=kind.number_field))
        if status == "AUTHORISED" and isinstance(doc_date, date):
            locked = lock_refusal(books.organisation, doc_date)
            if locked is not None:
                errors.append(locked)
        doc = Document(
            kind=kind,
            tenant_id=tenant_id,
            id=existing.id if existing else str(uuid.uuid4()),
            type=doc_type or "",
            number=number,
            contact=contact.rendered if contact else existing.contact if existing else {},
            date=doc_date,
            due_date=due,
            status=status,
            line_amount_types=lat,
            reference=reference,
            currency_code=code,
            lines=lines,
            updated_at=now,
            # Xero uses the day's XE.com rate when none is sent ("CurrencyRate", Invoices
            # docs); the sandbox has no rates and answers 1 for a foreign currency.
            currency_rate=rate if code != base else None,
            version=existing.version + 1 if existing else 1,
            extra={k: raw[k] for k in ("Url", "BrandingThemeID") if isinstance(raw.get(k), str)},
        )
        if existing is not None:
            doc.extra = {**existing.extra, **doc.extra}
        if doc.total < 0:
            errors.append(f"The {label} total cannot be negative")
        if doc.type in kind.unique_types and not errors:
            if number is None:
                doc.number = next_number(
                    books.organisation,
                    kind is CREDIT_NOTES,
                    lambda n: self.holder(tenant_id, kind, n) is not None,
                )
            else:
                other = self.holder(tenant_id, kind, number)
                if other is not None and other.id != doc.id:
                    errors.append(NUMBER_NOT_UNIQUE.format(label=label))
        return doc, contact, errors, warnings

    def _contact_index(self, tenant_id: str, books: Books) -> ContactIndex:
        index = self._contacts.get(tenant_id)
        if index is None or index.books is not books:  # new, or the books were reset
            index = self._contacts[tenant_id] = ContactIndex(books)
        return index

    # ----- payments ------------------------------------------------------------------------
    def record_payment(self, doc: Document, amount: Decimal, day: date, summary: dict) -> None:
        """A payment of ``amount`` on ``doc`` (checked by the caller, under ``lock``): part
        paid, or PAID once nothing is due."""
        doc.amount_paid = (doc.amount_paid + amount).quantize(CENT)
        doc.payments.append(summary)
        if doc.amount_due <= 0:
            doc.status = "PAID"
            doc.fully_paid_on = day
        doc.updated_at = self._now()

    def mark_paid(self, doc_id: str) -> Document | None:
        """Pay a document in full (control endpoint; drafts are authorised on the way)."""
        with self.lock:
            doc = self._docs.get(doc_id)
            if doc is None or doc.status in {"VOIDED", "DELETED"}:
                return None
            doc.amount_paid = doc.total
            doc.status = "PAID"
            doc.fully_paid_on = datetime.fromtimestamp(self._now(), UTC).date()
            doc.updated_at = self._now()
            return doc

    def snapshot(self) -> dict[str, Any]:
        """Per tenant: counts and number -> {id, status, totals, version, reference if any},
        JSON-safe."""
        with self.lock:
            tenants: dict[str, Any] = {}
            for (tenant_id, collection), ids in self._by_tenant.items():
                kind = KINDS[collection]
                entry = tenants.setdefault(tenant_id, {})
                entry[f"{collection}_count"] = len(ids)
                entry[collection] = {
                    (doc.number or doc.id): _summary(kind, doc)
                    for doc in (self._docs[i] for i in ids)
                }
            return {"documents": tenants}


def _summary(kind: DocKind, doc: Document) -> dict[str, Any]:
    """One document as ``snapshot`` shows it."""
    out: dict[str, Any] = {
        kind.id_field: doc.id,
        "Status": doc.status,
        "SubTotal": str(doc.sub_total),
        "TotalTax": str(doc.total_tax),
        "Total": str(doc.total),
        "Version": doc.version,
    }
    if doc.reference:
        out["Reference"] = doc.reference
    return out
