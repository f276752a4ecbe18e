"""The Xero Accounting API sandbox: Invoices, CreditNotes and Payments, behind Xero's limits.

``accounting_routes(sandbox)`` returns the Starlette routes ``sandbox.xero.app.create_app``
mounts. Each API call goes: bearer token (401) -> ``xero-tenant-id`` among the grant's tenants
(403) -> rate limits (429) -> injected faults -> ``Idempotency-Key`` (replay or 400) -> the
document store, which checks each document against the tenant's books (``sandbox.books``:
accounts, tax rates, items, tracking, contacts, currencies, lock dates). Control endpoints
under ``/_sandbox`` (no auth) pay invoices, set lock dates, tune limits and faults;
``GET /_sandbox/state`` gains an ``accounting`` section.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from sandbox.xero import wire
from sandbox.xero.books import BooksStore
from sandbox.xero.control import control_routes
from sandbox.xero.faults import FaultPlan
from sandbox.xero.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyStore,
    KeyConflict,
    StoredAnswer,
    fingerprint,
)
from sandbox.xero.invoice_store import CREDIT_NOTES, INVOICES, DocKind, InvoiceStore, render
from sandbox.xero.limits import LimitConfig, RateLimiter
from sandbox.xero.payments import PaymentsApi

API = "/api.xro/2.0"
JSON = "application/json; charset=utf-8"
# What runs behind the gate: (request, tenant id, body) -> the answer to send and remember.
Handler = Callable[[Request, str, bytes], StoredAnswer]
_CLAUSE = re.compile(r'^\s*(\w+)\s*==\s*(?:Guid\(\s*"([^"]*)"\s*\)|"((?:[^"\\]|\\.)*)")\s*$')


class DroppedConnection(Exception):
    """Raised on purpose after the answer's headers: the server drops the connection."""


class _DropFilter(logging.Filter):
    """Keep uvicorn from printing a traceback for a connection the sandbox dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, DroppedConnection):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


class _DroppingResponse(Response):
    """Sends the status line and headers, then drops the connection without a body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        raise DroppedConnection("drop_after_store fault")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire.dumps(payload), status_code=status, headers=headers, media_type=JSON)


class AccountingApi:
    """State and handlers of the Accounting API sandbox, bound to one ``XeroSandbox``."""

    def __init__(self, sandbox: Any, limits: LimitConfig | None = None) -> None:
        self.sandbox = sandbox
        if getattr(sandbox, "books", None) is None:
            # ``reference_routes`` normally hangs the books on the sandbox first; alone, the
            # invoices bring their own (and reset them with everything else).
            sandbox.books = BooksStore(sandbox.orgs, sandbox.clock.now)
            self._own_books = True
        else:
            self._own_books = False
        self.store = InvoiceStore(now=sandbox.clock.now)
        self.payments = PaymentsApi(self.store, lambda: self.books, sandbox.clock.now)
        self.limiter = RateLimiter(limits or LimitConfig(time_scale=_time_scale(sandbox)))
        self._initial_limits = asdict(self.limiter.config)
        self._counting = threading.Lock()
        self.calls_by_endpoint: Counter[str] = Counter()
        self.tenant_calls: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.faults = FaultPlan()
        self.idempotency = IdempotencyStore()

    def reset(self) -> None:
        """Back to as created: no documents, counters, keys or faults; the first limits."""
        self.limiter.configure(self._initial_limits)
        self.store.reset()
        self.payments.reset()
        if self._own_books:
            self.books.reset()
        self.limiter.reset()
        self.faults.clear()
        self.idempotency.reset()
        with self._counting:
            self.calls_by_endpoint.clear()
            self.tenant_calls.clear()

    @property
    def books(self) -> BooksStore:
        """Every tenant's books (organisation, accounts, tax rates, items, contacts...)."""
        books: BooksStore = self.sandbox.books
        return books

    def state(self) -> dict[str, Any]:
        limits = self.limiter.snapshot()
        with self.books.lock:
            locks = {t: self.books.for_tenant(t).organisation.period_lock_date
                     for t in self.books.tenants()}  # fmt: skip
        lock_dates = {t: day.isoformat() for t, day in locks.items() if day is not None}
        return {
            "accounting": {
                **self.store.snapshot(),
                "lock_dates": lock_dates,
                "payments": self.payments.snapshot(),
                "limits": limits["config"],
                "calls": limits["calls"],
                "calls_per_minute": limits["calls_per_minute"],
                "max_concurrency": limits["max_concurrency"],
                "refused": limits["refused"],
                "calls_by_endpoint": dict(self.calls_by_endpoint),
                "calls_by_tenant_endpoint": {t: dict(c) for t, c in self.tenant_calls.items()},
                "answered_while_limited": limits["answered_while_limited"],
                "idempotency": self.idempotency.snapshot(),
                "idempotent_replays": self.idempotency.snapshot()["replays"],
                "faults": self.faults.snapshot(),
            }
        }

    # ----- the gate every API call passes -----------------------------------------------------
    async def guarded(self, request: Request, handler: Handler) -> Response:
        """Another API (reference data, contacts) behind this same gate."""
        return await self._guarded(request, None, handler)

    async def _guarded(
        self, request: Request, kind: DocKind | None, handler: Handler | None = None
    ) -> Response:
        tenant_or_refusal = self._authorise(request)
        if isinstance(tenant_or_refusal, Response):
            return tenant_or_refusal
        tenant_id, app_id = tenant_or_refusal
        admission = self.limiter.admit(tenant_id, app_id)
        headers = dict(admission.headers)
        if admission.admitted:  # what each admitted call asked for: "PUT Invoices", ...
            endpoint = request.url.path.removeprefix(API + "/").split("/", 1)[0]
            with self._counting:
                self.calls_by_endpoint[f"{request.method} {endpoint}"] += 1
                self.tenant_calls[tenant_id][f"{request.method} {endpoint}"] += 1
        if not admission.admitted:
            detail = f"Rate limit exceeded: {admission.problem}"
            return _json(wire.problem(429, "Too Many Requests", detail), 429, headers)
        try:
            fault = self.faults.draw()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.kind == "429":
                headers.update({"Retry-After": "1", "X-Rate-Limit-Problem": "minute"})
                detail = "Rate limit exceeded: minute"
                return _json(wire.problem(429, "Too Many Requests", detail), 429, headers)
            if fault.kind in ("500", "503"):
                status = int(fault.kind)
                title = "Internal Server Error" if status == 500 else "Service Unavailable"
                return _json(wire.problem(status, title, "sandbox fault"), status, headers)
            self.limiter.answering(tenant_id, admission)
            try:
                answer = await self._idempotent(request, tenant_id, app_id, kind, handler)
            except ClientDisconnect:
                return Response(status_code=499)  # nobody is listening any more
            finally:
                self.limiter.answered(tenant_id, admission)
            if fault.kind == "drop_after_store":
                return _DroppingResponse(answer.body, headers=headers, media_type=JSON)
            return Response(answer.body, answer.status, headers=headers, media_type=JSON)
        finally:
            self.limiter.release(tenant_id, admission)

    def _authorise(self, request: Request) -> tuple[str, str] | Response:
        from sandbox.xero.state import InvalidToken

        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        unauthorised = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        if scheme.lower() != "bearer" or not token.strip():
            body = wire.problem(401, "Unauthorized", "AuthenticationUnsuccessful")
            return _json(body, 401, unauthorised)
        try:
            grant = self.sandbox.authenticate_bearer(token.strip())
        except InvalidToken as exc:
            expired = "expire" in str(exc).lower()
            detail = "TokenExpired" if expired else "AuthenticationUnsuccessful"
            return _json(wire.problem(401, "Unauthorized", detail), 401, unauthorised)
        tenant_id = request.headers.get("xero-tenant-id", "").strip()
        if not tenant_id or tenant_id not in grant.tenant_ids:
            return _json(wire.problem(403, "Forbidden", "AuthenticationUnsuccessful"), 403)
        app_id = str(getattr(grant, "client_id", None) or "default")
        return tenant_id, app_id

    async def _idempotent(
        self,
        request: Request,
        tenant_id: str,
        app_id: str,
        kind: DocKind | None,
        handler: Handler | None = None,
    ) -> StoredAnswer:
        body = await request.body()
        if handler is None:
            handler = lambda req, tenant, raw: self._handle(req, tenant, kind, raw)  # noqa: E731
        key = request.headers.get("idempotency-key")
        if key is None or request.method == "GET":
            return handler(request, tenant_id, body)
        if not key or len(key) > MAX_KEY_LENGTH:
            message = f"The Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"
            return _error_answer(message)
        scope = (app_id, tenant_id, key)
        print_ = fingerprint(request.method, request.url.path, request.url.query, body)
        try:
            stored = await self.idempotency.claim(scope, print_)
        except KeyConflict:
            return _error_answer("The Idempotency-Key was already used with a different request")
        if stored is not None:
            return stored
        answer = None
        try:
            answer = handler(request, tenant_id, body)
        finally:
            self.idempotency.finish(scope, answer)
        return answer

    # ----- the API itself --------------------------------------------------------------------
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
            return _error_answer(
                f"The request body must be JSON with a {kind.collection} list",
                error_type="PostDataInvalidException",
                number=14,
            )
        if doc_id is not None:
            if self.store.get(tenant_id, kind, doc_id) is None:
                return _not_found()
            elements = elements[:1]
        books = self.books
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
            return StoredAnswer(400, wire.dumps(wire.validation_exception(failed)), JSON)
        now = self.sandbox.clock.now()
        return StoredAnswer(200, wire.dumps(wire.envelope(kind.collection, out, now)), JSON)

    def _read(
        self, request: Request, tenant_id: str, kind: DocKind, doc_id: str | None, unitdp: int
    ) -> StoredAnswer:
        if doc_id is not None:
            doc = self.store.get(tenant_id, kind, _normal_id(doc_id))
            if doc is None:
                return _not_found()
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
                    return _error_answer(str(exc), error_type="QueryParseException", number=16)
            docs = self.store.find(tenant_id, kind, **filters)
            page = params.get("page")
            if page and page.isdigit() and int(page) >= 1:
                docs = docs[(int(page) - 1) * 100 : int(page) * 100]
        items = [render(doc, unitdp) for doc in docs]
        now = self.sandbox.clock.now()
        return StoredAnswer(200, wire.dumps(wire.envelope(kind.collection, items, now)), JSON)

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for kind in (INVOICES, CREDIT_NOTES):

            async def collection(request: Request, kind: DocKind = kind) -> Response:
                return await self._guarded(request, kind)

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


def _time_scale(sandbox: Any) -> float:
    scale = getattr(sandbox, "time_scale", None)
    return float(scale) if isinstance(scale, int | float) and scale > 0 else 1.0


def _normal_id(raw: str) -> str:
    return raw.strip().lower()


def _not_found() -> StoredAnswer:
    body = wire.problem(404, "Not Found", "The resource you're looking for cannot be found")
    return StoredAnswer(404, wire.dumps(body), JSON)


def _error_answer(
    message: str, *, error_type: str = "ValidationException", number: int = 10
) -> StoredAnswer:
    body = {"ErrorNumber": number, "Type": error_type, "Message": message}
    return StoredAnswer(400, wire.dumps(body), JSON)


def _where(expression: str, kind: DocKind, filters: dict[str, set[str]]) -> None:
    """The slice of Xero's ``where`` language the client uses: ``Field=="v"`` joined by OR."""
    fields = {kind.number_field: "numbers", kind.id_field: "ids", "Status": "statuses"}
    for clause in re.split(r"\s+OR\s+", expression):
        match = _CLAUSE.match(clause)
        if not match or match.group(1) not in fields:
            raise ValueError(f"unsupported where clause: {clause.strip()[:80]}")
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if match.group(3) is not None:
            value = re.sub(r"\\(.)", r"\1", value)
        target = fields[match.group(1)]
        filters.setdefault(target, set()).add(_normal_id(value) if target == "ids" else value)
