"""The Invoices and CreditNotes endpoints behind the Accounting API gate: batch writes checked
against the tenant's books, and reads by id, number, status or the ``where`` slice clients use."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.requests import Request

from sandbox.xero import reference_wire as rw
from sandbox.xero import wire
from sandbox.xero.books import BooksStore
from sandbox.xero.documents import INVOICES, DocKind, render
from sandbox.xero.idempotency import StoredAnswer
from sandbox.xero.invoice_store import InvoiceStore

_CLAUSE = re.compile(r'^\s*(\w+)\s*==\s*(?:Guid\(\s*"([^"]*)"\s*\)|"((?:[^"\\]|\\.)*)")\s*$')


class DocumentsApi:
    """``GET``/``PUT``/``POST`` on ``/Invoices`` and ``/CreditNotes`` (and ``/{doc_id}``)."""

    def __init__(
        self, store: InvoiceStore, books: Callable[[], BooksStore], now: Callable[[], float]
    ) -> None:
        self.store = store
        self._books = books
        self._now = now

    def handler(self, kind: DocKind) -> rw.Handler:
        """The ``Handler`` the gate runs for ``kind``'s collection and documents."""
        return lambda request, tenant_id, body: self._handle(request, tenant_id, kind, body)

    def _handle(self, request: Request, tenant_id: str, kind: DocKind, body: bytes) -> StoredAnswer:
        unitdp = 4 if request.query_params.get("unitdp") == "4" else 2
        doc_id = request.path_params.get("doc_id")
        if request.method == "GET":
            return self._read(request, tenant_id, kind, doc_id, unitdp)
        try:
            payload = wire.loads(body)
            elements = payload[kind.collection]
            if not isinstance(elements, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return rw.bad_body(kind.collection)
        if doc_id is not None:
            if self.store.get(tenant_id, kind, doc_id) is None:
                return rw.not_found()
            elements = elements[:1]
        books = self._books()
        results = self.store.write_batch(
            tenant_id,
            kind,
            elements,
            books=books.for_tenant(tenant_id),
            books_lock=books.lock,
            allow_update=request.method == "POST",
            unitdp=unitdp,
            target_id=doc_id,
        )
        summarize = request.query_params.get("summarizeErrors", "true").lower() != "false"
        out = []
        for result in results:
            if result.document is not None:
                item = render(result.document, unitdp)
                item["StatusAttributeString"] = "OK"
                if result.warnings:
                    # A draft keeps its lines and loses what Xero could not use, with a warning
                    # (spec: Invoice.Warnings, "Displays array of warning messages from the API").
                    item["Warnings"] = [{"Message": m} for m in result.warnings]
            else:
                item = {
                    **result.echo,
                    "HasErrors": True,
                    "StatusAttributeString": "ERROR",
                    "ValidationErrors": [{"Message": m} for m in result.errors],
                    **({"Warnings": [{"Message": m} for m in result.warnings]}
                       if result.warnings else {}),
                }  # fmt: skip
            out.append(item)
        failed = [item for item in out if item.get("HasErrors")]
        if summarize and failed:
            return rw.answer(wire.validation_exception(failed), 400)
        return rw.collection(kind.collection, out, self._now())

    def _read(
        self, request: Request, tenant_id: str, kind: DocKind, doc_id: str | None, unitdp: int
    ) -> StoredAnswer:
        if doc_id is not None:
            doc = self.store.get(tenant_id, kind, _normal_id(doc_id))
            if doc is None:
                return rw.not_found()
            docs = [doc]
        else:
            params = request.query_params
            filters: dict[str, set[str]] = {}
            if params.get("IDs"):
                filters["ids"] = {_normal_id(i) for i in params["IDs"].split(",")}
            if kind is INVOICES and params.get("InvoiceNumbers"):
                filters["numbers"] = set(params["InvoiceNumbers"].split(","))
            if params.get("Statuses"):
                filters["statuses"] = set(params["Statuses"].split(","))
            if params.get("where"):
                try:
                    _where(params["where"], kind, filters)
                except ValueError as exc:
                    return rw.query_error(str(exc))
            docs = self.store.find(tenant_id, kind, **filters)
            page = params.get("page")
            if page and page.isdigit() and int(page) >= 1:
                docs = docs[(int(page) - 1) * 100 : int(page) * 100]
        items = [render(doc, unitdp) for doc in docs]
        return rw.collection(kind.collection, items, self._now())


def _normal_id(raw: str) -> str:
    return raw.strip().lower()


def _where(expression: str, kind: DocKind, filters: dict[str, set[str]]) -> None:
    """The slice of Xero's ``where`` language the client uses: ``Field=="v"`` joined by OR, on
    the number, the id, the status or the Reference (the spec's ``where``: "Filter by an any
    element"; Reference is one of the filters Xero optimises for invoices)."""
    fields = {
        kind.number_field: "numbers",
        kind.id_field: "ids",
        "Status": "statuses",
        "Reference": "references",
    }
    for clause in re.split(r"\s+OR\s+", expression):
        match = _CLAUSE.match(clause)
        if not match or match.group(1) not in fields:
            raise ValueError(f"unsupported where clause: {clause.strip()[:80]}")
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if match.group(3) is not None:
            value = re.sub(r"\\(.)", r"\1", value)
        target = fields[match.group(1)]
        filters.setdefault(target, set()).add(_normal_id(value) if target == "ids" else value)
