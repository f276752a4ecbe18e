"""The Accounting API sandbox's control endpoints (no auth): pay a document in full, set an
organisation's lock dates, tune the limits, inject faults. For tests and the demo only; Xero
has no such thing."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.xero import wire
from sandbox.xero.invoice_store import render

if TYPE_CHECKING:
    from sandbox.xero.accounting import AccountingApi


class Control:
    """The control endpoints of one ``AccountingApi``."""

    def __init__(self, api: AccountingApi) -> None:
        self.api = api

    async def pay(self, request: Request) -> Response:
        doc = self.api.store.mark_paid(_normal_id(request.path_params["doc_id"]))
        if doc is None:
            return JSONResponse({"error": "no payable document with that id"}, 404)
        return Response(wire.dumps(render(doc)), media_type="application/json")

    async def lock_date(self, request: Request) -> Response:
        """Set the organisation's period lock date (``{"date": "YYYY-MM-DD" or null}``) and,
        with ``"end_of_year"`` in the body, its end of year lock date, in the tenant's books."""
        tenant = request.path_params["tenant"]
        tenant_id = dict(getattr(self.api.sandbox, "orgs", {}) or {}).get(tenant, tenant)
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError
            raw = payload.get("date")
            lock = date.fromisoformat(raw) if raw else None
            eoy = payload.get("end_of_year")
            eoy_lock = date.fromisoformat(eoy) if eoy else None
        except (ValueError, TypeError):
            expected = '{"date": "YYYY-MM-DD" or null, "end_of_year": ... (optional)}'
            return JSONResponse({"error": f"expected {expected}"}, 400)
        with self.api.books.lock:
            org = self.api.books.for_tenant(tenant_id).organisation
            org.period_lock_date = lock
            if "end_of_year" in payload:
                org.end_of_year_lock_date = eoy_lock
        answer: dict[str, Any] = {"tenant_id": tenant_id, "lock_date": raw or None}
        if "end_of_year" in payload:
            answer["end_of_year_lock_date"] = eoy or None
        return JSONResponse(answer)

    async def limits(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(self.api.limiter.snapshot()["config"])
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("expected an object")
            return JSONResponse(self.api.limiter.configure(payload))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)

    async def faults_endpoint(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.api.faults.clear()
        elif request.method == "POST":
            try:
                self.api.faults.configure(await request.json())
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(self.api.faults.snapshot())


def control_routes(api: AccountingApi) -> list[BaseRoute]:
    """The ``/_sandbox`` routes of the Accounting API."""
    control = Control(api)
    return [
        Route("/_sandbox/invoices/{doc_id}/pay", control.pay, methods=["POST"]),
        Route("/_sandbox/tenants/{tenant}/lock-date", control.lock_date, methods=["POST"]),
        Route("/_sandbox/limits", control.limits, methods=["GET", "POST"]),
        Route("/_sandbox/faults", control.faults_endpoint, methods=["GET", "POST", "DELETE"]),
    ]


def _normal_id(raw: str) -> str:
    return raw.strip().lower()
