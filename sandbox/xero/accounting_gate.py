"""The gate every Accounting API call passes: bearer token (401), tenant (403), rate limits
(429), injected faults, then ``Idempotency-Key`` (replay or 400) before the handler runs."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, defaultdict
from dataclasses import asdict
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.xero import reference_wire as rw
from sandbox.xero import wire
from sandbox.xero.faults import FaultPlan
from sandbox.xero.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyStore,
    KeyConflict,
    StoredAnswer,
    fingerprint,
)
from sandbox.xero.limits import LimitConfig, RateLimiter

API = "/api.xro/2.0"


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
    return Response(wire.dumps(payload), status_code=status, headers=headers, media_type=rw.JSON)


class AccountingGate:
    """The gate's limiter, faults, ``Idempotency-Key`` memory and call counters, bound to one
    ``XeroSandbox``; ``AccountingApi`` is one, and every API runs behind its ``guarded``."""

    def __init__(self, sandbox: Any, limits: LimitConfig | None = None) -> None:
        self.sandbox = sandbox
        self.limiter = RateLimiter(limits or LimitConfig(time_scale=_time_scale(sandbox)))
        self._initial_limits = asdict(self.limiter.config)
        self._counting = threading.Lock()
        self.calls_by_endpoint: Counter[str] = Counter()
        self.tenant_calls: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.faults = FaultPlan()
        self.idempotency = IdempotencyStore()

    def reset_gate(self) -> None:
        """The first limits again; no counters, keys or faults."""
        self.limiter.configure(self._initial_limits)
        self.limiter.reset()
        self.faults.clear()
        self.idempotency.reset()
        with self._counting:
            self.calls_by_endpoint.clear()
            self.tenant_calls.clear()

    def gate_state(self) -> dict[str, Any]:
        """The gate's part of ``GET /_sandbox/state``'s ``accounting`` section."""
        limits = self.limiter.snapshot()
        return {
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

    async def guarded(self, request: Request, handler: rw.Handler) -> Response:
        """``handler`` (documents, payments, reference data, contacts) behind this gate."""
        tenant_or_refusal = self._authorise(request)
        if isinstance(tenant_or_refusal, Response):
            return tenant_or_refusal
        tenant_id, app_id = tenant_or_refusal
        admission = self.limiter.admit(tenant_id, app_id)
        headers = dict(admission.headers)
        # What the call asked for: "PUT Invoices", ...
        endpoint = f"{request.method} {request.url.path.removeprefix(API + '/').split('/', 1)[0]}"
        if admission.admitted:
            with self._counting:
                self.calls_by_endpoint[endpoint] += 1
                self.tenant_calls[tenant_id][endpoint] += 1
        if not admission.admitted:
            detail = f"Rate limit exceeded: {admission.problem}"
            return _json(wire.problem(429, "Too Many Requests", detail), 429, headers)
        try:
            fault = self.faults.draw(endpoint)
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
                answer = await self._idempotent(request, tenant_id, app_id, handler)
            except ClientDisconnect:
                return Response(status_code=499)  # nobody is listening any more
            finally:
                self.limiter.answered(tenant_id, admission)
            if fault.kind == "drop_after_store":
                return _DroppingResponse(answer.body, headers=headers, media_type=rw.JSON)
            return Response(answer.body, answer.status, headers=headers, media_type=rw.JSON)
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
        self, request: Request, tenant_id: str, app_id: str, handler: rw.Handler
    ) -> StoredAnswer:
        body = await request.body()
        key = request.headers.get("idempotency-key")
        if key is None or request.method == "GET":
            return handler(request, tenant_id, body)
        if not key or len(key) > MAX_KEY_LENGTH:
            return rw.error(f"The Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        scope = (app_id, tenant_id, key)
        print_ = fingerprint(request.method, request.url.path, request.url.query, body)
        try:
            stored = await self.idempotency.claim(scope, print_)
        except KeyConflict:
            return rw.error("The Idempotency-Key was already used with a different request")
        if stored is not None:
            return stored
        answer = None
        try:
            answer = handler(request, tenant_id, body)
        finally:
            self.idempotency.finish(scope, answer)
        return answer


def _time_scale(sandbox: Any) -> float:
    scale = getattr(sandbox, "time_scale", None)
    return float(scale) if isinstance(scale, int | float) and scale > 0 else 1.0
