"""The Xero Accounting API sandbox: Invoices, CreditNotes and Payments, behind Xero's limits.

``accounting_routes(sandbox)`` returns the Starlette routes ``sandbox.xero.app.create_app``
mounts. Each API call passes the gate (``accounting_gate``): bearer token (401) ->
``xero-tenant-id`` among the grant's tenants (403) -> rate limits (429) -> injected faults ->
``Idempotency-Key`` (replay or 400) -> the handler (``documents_api``, ``payments``) and the
document store, which checks each document against the tenant's books (``sandbox.books``:
accounts, tax rates, items, tracking, contacts, currencies, lock dates). Control endpoints
under ``/_sandbox`` (no auth) pay invoices, set lock dates, tune limits and faults;
``GET /_sandbox/state`` gains an ``accounting`` section.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox.xero import reference_wire as rw
from sandbox.xero.accounting_gate import API, AccountingGate
from sandbox.xero.books import BooksStore
from sandbox.xero.control import control_routes
from sandbox.xero.documents import CREDIT_NOTES, INVOICES
from sandbox.xero.documents_api import DocumentsApi
from sandbox.xero.invoice_store import InvoiceStore
from sandbox.xero.limits import LimitConfig
from sandbox.xero.payments import PaymentsApi


class AccountingApi(AccountingGate):
    """State and handlers of the Accounting API sandbox, bound to one ``XeroSandbox``."""

    def __init__(self, sandbox: Any, limits: LimitConfig | None = None) -> None:
        super().__init__(sandbox, limits)
        if getattr(sandbox, "books", None) is None:
            # ``reference_routes`` normally hangs the books on the sandbox first; alone, the
            # invoices bring their own (and reset them with everything else).
            sandbox.books = BooksStore(sandbox.orgs, sandbox.clock.now)
            self._own_books = True
        else:
            self._own_books = False
        self.store = InvoiceStore(now=sandbox.clock.now)
        self.documents = DocumentsApi(self.store, lambda: self.books, sandbox.clock.now)
        self.payments = PaymentsApi(self.store, lambda: self.books, sandbox.clock.now)

    def reset(self) -> None:
        """Back to as created: no documents, counters, keys or faults; the first limits."""
        self.store.reset()
        self.payments.reset()
        if self._own_books:
            self.books.reset()
        self.reset_gate()

    @property
    def books(self) -> BooksStore:
        """Every tenant's books (organisation, accounts, tax rates, items, contacts...)."""
        books: BooksStore = self.sandbox.books
        return books

    def state(self) -> dict[str, Any]:
        """The ``accounting`` section of ``GET /_sandbox/state``."""
        gate = self.gate_state()
        with self.books.lock:
            locks = {t: self.books.for_tenant(t).organisation.period_lock_date
                     for t in self.books.tenants()}  # fmt: skip
        lock_dates = {t: day.isoformat() for t, day in locks.items() if day is not None}
        return {
            "accounting": {
                **self.store.snapshot(),
                "lock_dates": lock_dates,
                "payments": self.payments.snapshot(),
                **gate,
            }
        }

    def routes(self) -> list[BaseRoute]:
        """Invoices, CreditNotes and Payments behind the gate, and the control routes."""
        routes: list[BaseRoute] = []
        for kind in (INVOICES, CREDIT_NOTES):
            handler = self.documents.handler(kind)

            async def collection(request: Request, handler: rw.Handler = handler) -> Response:
                return await self.guarded(request, handler)

            routes += [
                Route(f"{API}/{kind.collection}", collection, methods=["GET", "PUT", "POST"]),
                Route(f"{API}/{kind.collection}/{{doc_id}}", collection, methods=["GET", "POST"]),
            ]

        async def payments(request: Request) -> Response:
            return await self.guarded(request, self.payments.handle)

        return routes + [
            Route(f"{API}/Payments", payments, methods=["GET", "PUT", "POST"]),
            Route(f"{API}/Payments/{{payment_id}}", payments, methods=["GET"]),
            *control_routes(self),
        ]


def accounting_routes(sandbox: Any) -> list[BaseRoute]:
    """Routes for ``create_app``; also hangs the API on ``sandbox.accounting`` and registers
    its reset and state hooks on the sandbox."""
    api = AccountingApi(sandbox)
    sandbox.accounting = api
    hooks = getattr(sandbox, "reset_hooks", None)
    if isinstance(hooks, list):
        hooks.append(api.reset)
    extra = getattr(sandbox, "extra_state", None)
    if isinstance(extra, list):
        extra.append(api.state)
    return api.routes()
