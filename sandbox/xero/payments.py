"""Payments on invoices and credit notes: ``PUT``/``POST /Payments``, ``GET /Payments[/{id}]``.

A payment names its document (``Invoice`` by ``InvoiceID`` or ``InvoiceNumber``, or
``CreditNote`` by ``CreditNoteID`` or ``CreditNoteNumber``; or a top-level ``InvoiceNumber`` /
``CreditNoteNumber``), the account the money goes to (``Account`` by ``Code`` or
``AccountID``, or a top-level ``Code``), ``Date``, ``Amount`` and an optional ``Reference``
(spec ``Payment``; https://developer.xero.com/documentation/api/accounting/payments). It makes
the document part paid, or PAID once nothing is due. Each element gets its own verdict; with
``summarizeErrors`` (the default) a refusal answers 400, the valid elements stored anyway.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from sandbox.xero import wire
from sandbox.xero.books import Account, Books, BooksStore
from sandbox.xero.documents import CREDIT_NOTES, INVOICES, DocKind, Document, render
from sandbox.xero.idempotency import StoredAnswer
from sandbox.xero.invoice_store import InvoiceStore
from sandbox.xero.lines import Invalid, guid, number
from sandbox.xero.tax import cents

JSON = "application/json; charset=utf-8"
# Reported word for word by integrators (e.g. https://support.workguru.io/support/solutions/
# articles/43000710923, https://help.peakflo.co/payments-can-only-be-made-against-authorized-
# documents-xero): drafts, paid and voided documents take no payment.
NOT_AUTHORISED = "Payments can only be made against authorised documents"
# The spec's own example (xero_accounting.yaml, PUT /Payments).
EXCEEDS = "Payment amount exceeds the amount outstanding on this document"
# "Invoice could not be found" (workguru, above); the credit note's by analogy.
DOC_NOT_FOUND = "{label} could not be found"
# The account must be a BANK account or have "Enable payments to this account" set (Payments
# docs: "Account ... the Account the payment is made from/to"; EnablePaymentsToAccount,
# spec Account; https://help.request.finance/en/articles/13049427). Xero's wordings for these
# refusals and for a missing or non-positive amount were not found: these are the sandbox's own.
ACCOUNT_REQUIRED = "An Account must be specified for a payment"
ACCOUNT_NOT_FOUND = "Account could not be found"
ACCOUNT_CANNOT_PAY = (
    "Account code '{code}' is not a bank account and does not have payments enabled"
)
AMOUNT_REQUIRED = "Payment amount must be greater than zero"
TYPES = {"ACCREC": "ACCRECPAYMENT", "ACCPAY": "ACCPAYPAYMENT",
         "ACCRECCREDIT": "ARCREDITPAYMENT", "ACCPAYCREDIT": "APCREDITPAYMENT"}  # fmt: skip


@dataclass
class Payment:
    payment_id: str
    tenant_id: str
    kind: DocKind
    doc_id: str
    account_id: str
    account_code: str
    day: date
    amount: Decimal
    reference: str | None
    currency_rate: Decimal
    updated_at: float


class PaymentsApi:
    """The payments of every tenant, applied to the documents of ``store``."""

    def __init__(
        self, store: InvoiceStore, books: Callable[[], BooksStore], now: Callable[[], float]
    ) -> None:
        self._store = store
        self._books = books
        self._now = now
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._payments: dict[str, Payment] = {}

    def snapshot(self) -> dict[str, int]:
        """Payments per tenant."""
        with self._lock:
            counts: dict[str, int] = {}
            for payment in self._payments.values():
                counts[payment.tenant_id] = counts.get(payment.tenant_id, 0) + 1
            return counts

    def handle(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        """The ``Handler`` the gate runs for ``/Payments`` and ``/Payments/{payment_id}``."""
        if request.method == "GET":
            return self._read(tenant_id, request.path_params.get("payment_id"))
        try:
            payload = wire.loads(body)
            elements = payload["Payments"]
            if not isinstance(elements, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            body_error = {
                "ErrorNumber": 14,
                "Type": "PostDataInvalidException",
                "Message": "The request body must be JSON with a Payments list",
            }
            return StoredAnswer(400, wire.dumps(body_error), JSON)
        books_store = self._books()
        out = []
        with self._store.lock, books_store.lock, self._lock:
            books = books_store.for_tenant(tenant_id)
            for raw in elements:
                payment, errors = self._one(books, tenant_id, raw)
                if payment is None:
                    out.append(_refused(raw, errors))
                else:
                    out.append({**self._render(payment), "StatusAttributeString": "OK"})
        summarize = request.query_params.get("summarizeErrors", "true").lower() != "false"
        failed = [item for item in out if item.get("HasValidationErrors")]
        if summarize and failed:
            return StoredAnswer(400, wire.dumps(wire.validation_exception(failed)), JSON)
        return StoredAnswer(200, wire.dumps(wire.envelope("Payments", out, self._now())), JSON)

    def _one(self, books: Books, tenant_id: str, raw: Any) -> tuple[Payment | None, list[str]]:
        if not isinstance(raw, dict):
            return None, ["A payment must be an object"]
        errors: list[str] = []
        try:
            doc = self._document(tenant_id, raw)
        except Invalid as refusal:
            doc = None
            errors.append(str(refusal))
        account = _account(books, raw, errors)
        try:
            amount = number(raw.get("Amount"), "Amount")
        except Invalid as refusal:
            amount = None
            errors.append(str(refusal))
        if amount is None or amount <= 0:
            errors.append(AMOUNT_REQUIRED)
        try:
            # Xero documents Date as the day the payment is made; when it is left out the
            # sandbox takes today (what Xero does then was not found).
            today = datetime.fromtimestamp(self._now(), UTC).date()
            day = wire.parse_date(raw["Date"]) if raw.get("Date") else today
        except ValueError:
            errors.append("Date is invalid")
            day = None
        if doc is not None:
            if doc.status != "AUTHORISED":
                errors.append(NOT_AUTHORISED)
            elif amount is not None and amount > doc.amount_due:
                errors.append(EXCEEDS)
        if errors or doc is None or account is None or amount is None or day is None:
            return None, errors
        try:
            rate = number(raw.get("CurrencyRate"), "CurrencyRate")
        except Invalid:
            rate = None
        payment = Payment(
            payment_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            kind=doc.kind,
            doc_id=doc.id,
            account_id=account.account_id,
            account_code=account.code,
            day=day,
            amount=cents(amount),
            reference=raw.get("Reference") if isinstance(raw.get("Reference"), str) else None,
            # Only used for foreign-currency documents (spec); the sandbox has no rates: 1.
            currency_rate=rate if rate is not None and rate > 0 else Decimal("1.0"),
            updated_at=self._now(),
        )
        self._store.record_payment(doc, payment.amount, day, _summary(payment))
        self._payments[payment.payment_id] = payment
        return payment, []

    def _document(self, tenant_id: str, raw: dict[str, Any]) -> Document:
        for kind, key in ((INVOICES, "Invoice"), (CREDIT_NOTES, "CreditNote")):
            ref = raw.get(key) if isinstance(raw.get(key), dict) else {}
            doc_id = ref.get(kind.id_field)
            number_ = ref.get(kind.number_field) or raw.get(kind.number_field)
            if not (doc_id or number_):
                continue
            doc = None
            if doc_id:
                doc = self._store.get(tenant_id, kind, guid(doc_id, kind.id_field))
            elif isinstance(number_, str):
                doc = self._store.by_number(tenant_id, kind, number_)
            if doc is None:
                raise Invalid(DOC_NOT_FOUND.format(label=kind.label))
            return doc
        raise Invalid(DOC_NOT_FOUND.format(label=INVOICES.label))

    def _read(self, tenant_id: str, payment_id: str | None) -> StoredAnswer:
        with self._store.lock, self._lock:
            if payment_id is not None:
                found = self._payments.get(payment_id.strip().lower())
                if found is None or found.tenant_id != tenant_id:
                    detail = "The resource you're looking for cannot be found"
                    body = wire.problem(404, "Not Found", detail)
                    return StoredAnswer(404, wire.dumps(body), JSON)
                rows = [self._render(found)]
            else:
                rows = [
                    self._render(p) for p in self._payments.values() if p.tenant_id == tenant_id
                ]
        return StoredAnswer(200, wire.dumps(wire.envelope("Payments", rows, self._now())), JSON)

    def _render(self, payment: Payment) -> dict[str, Any]:
        doc = self._store.get(payment.tenant_id, payment.kind, payment.doc_id)
        out = {
            **_summary(payment),
            "BankAmount": payment.amount,
            "PaymentType": TYPES.get(doc.type if doc else "", "ACCRECPAYMENT"),
            "Status": "AUTHORISED",
            "UpdatedDateUTC": wire.ms_datetime(payment.updated_at),
            "UpdatedDateUTCString": wire.iso_utc(payment.updated_at),
            "IsReconciled": False,
            "Account": {"AccountID": payment.account_id, "Code": payment.account_code},
        }
        if doc is not None:
            out["Invoice" if payment.kind is INVOICES else "CreditNote"] = render(doc)
        return out


def _account(books: Books, raw: dict[str, Any], errors: list[str]) -> Account | None:
    ref = raw.get("Account") if isinstance(raw.get("Account"), dict) else {}
    account_id, code = ref.get("AccountID"), ref.get("Code") or raw.get("Code")
    if not (account_id or code):
        errors.append(ACCOUNT_REQUIRED)
        return None
    try:
        account = (
            books.account(account_id=guid(account_id, "AccountID"))
            if account_id
            else books.account(code=str(code))
        )
    except Invalid as refusal:
        errors.append(str(refusal))
        return None
    if account is None or account.status != "ACTIVE":
        errors.append(ACCOUNT_NOT_FOUND)
        return None
    if account.type != "BANK" and not account.enable_payments:
        errors.append(ACCOUNT_CANNOT_PAY.format(code=account.code))
        return None
    return account


def _summary(payment: Payment) -> dict[str, Any]:
    """What a document lists under ``Payments``."""
    return {
        "PaymentID": payment.payment_id,
        "Date": wire.ms_date(payment.day),
        "Amount": payment.amount,
        "Reference": payment.reference or "",
        "CurrencyRate": payment.currency_rate,
        "HasAccount": True,
        "HasValidationErrors": False,
    }


def _refused(raw: Any, errors: list[str]) -> dict[str, Any]:
    echo: dict[str, Any] = {}
    if isinstance(raw, dict):
        for key in ("Amount", "Reference"):
            if isinstance(raw.get(key), Decimal | int | str):
                echo[key] = raw[key]
    return {
        **echo,
        "HasValidationErrors": True,
        "StatusAttributeString": "ERROR",
        "ValidationErrors": [{"Message": m} for m in errors],
    }
