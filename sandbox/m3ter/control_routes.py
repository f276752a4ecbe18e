"""The sandbox's own control endpoints under ``/_sandbox`` (no auth): reset, add accounts, bills
and mappings, change bills, inject faults, expire tokens, and read the state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.m3ter.access import Fault
from sandbox.m3ter.http_io import ApiError, Handler, error_response, json_response, sandbox_of
from sandbox.m3ter.stamps import parse_instant
from sandbox.m3ter.wire import loads


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = loads(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def control(handler: Handler) -> Handler:
    """Answer a control handler's errors: ``ApiError`` as it says, an unknown id 404, a bad
    value 400."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        except KeyError as exc:
            return error_response(404, f"not found: {exc.args[0]}")
        except (ValueError, TypeError) as exc:
            return error_response(400, str(exc))

    return wrapped


@control
async def ctl_reset(request: Request) -> Response:
    sandbox_of(request).reset()
    return json_response(sandbox_of(request).state())


@control
async def ctl_regenerate(request: Request) -> Response:
    return json_response(sandbox_of(request).regenerate(request.path_params["id"]))


@control
async def ctl_approve(request: Request) -> Response:
    return json_response(sandbox_of(request).approve(request.path_params["id"]))


def _modified_at(body: dict[str, Any]) -> datetime | None:
    """Optional ``modifiedAt`` (ISO 8601): when the generated bills' bill run was."""
    raw = body.get("modifiedAt")
    if raw is None:
        return None
    try:
        return parse_instant(str(raw))
    except ValueError as exc:
        raise ApiError(400, "modifiedAt must be an ISO 8601 date-time") from exc


@control
async def ctl_accounts_bulk(request: Request) -> Response:
    """``{"count": N, "billsPerAccount": B}`` generates; ``{"accounts": [...]}`` adds as given."""
    body = await _body(request)
    sb = sandbox_of(request)
    ids = [sb.add_account(a) for a in body.get("accounts", [])]
    if body.get("count"):
        ids += sb.add_generated_accounts(
            int(body["count"]),
            int(body.get("billsPerAccount", 0)),
            modified_at=_modified_at(body),
        )
    return json_response({"ids": ids}, 201)


@control
async def ctl_bills_bulk(request: Request) -> Response:
    """``{"count": N, "accountIds": [...], "status": ..., "firstPeriod": P}`` generates;
    ``{"bills": [...]}`` adds wire bills as given."""
    body = await _body(request)
    sb = sandbox_of(request)
    ids = [sb.add_bill(b) for b in body.get("bills", [])]
    if body.get("count"):
        ids += sb.add_generated_bills(
            int(body["count"]),
            account_ids=body.get("accountIds"),
            status=body.get("status"),
            first_period=int(body.get("firstPeriod", 0)),
            modified_at=_modified_at(body),
        )
    return json_response({"ids": ids}, 201)


@control
async def ctl_mappings(request: Request) -> Response:
    """One external mapping: ``{"m3terId", "externalId"}`` is an Account -> Xero Contact one;
    ``{"m3terEntity": "Product", "productCode": "compute", "externalTable": "TaxRate",
    "externalId": "OUTPUT2"}`` a Product one (``m3terId`` instead of ``productCode`` works too);
    ``externalSystem``, ``integrationConfigId`` and ``id`` are optional."""
    return json_response(sandbox_of(request).add_mapping(await _body(request)), 201)


@control
async def ctl_faults(request: Request) -> Response:
    """``{"status": 503, "count": 2, "retryAfter": 1, "delay": 0, "includeToken": false}``;
    ``status: 0`` with a ``delay`` only slows calls down (timeouts)."""
    body = await _body(request)
    retry_after = body.get("retryAfter")
    fault = Fault(
        status=int(body.get("status", 503)),
        count=int(body.get("count", 1)),
        retry_after=float(retry_after) if retry_after is not None else None,
        delay=float(body.get("delay", 0)),
        include_token=bool(body.get("includeToken", False)),
    )
    sandbox_of(request).add_fault(fault)
    return json_response(sandbox_of(request).state(), 201)


@control
async def ctl_expire_tokens(request: Request) -> Response:
    sandbox_of(request).expire_tokens()
    return json_response({"ok": True})


@control
async def ctl_state(request: Request) -> Response:
    return json_response(sandbox_of(request).state())


def control_routes() -> list[Route]:
    """The ``/_sandbox`` routes."""
    return [
        Route("/_sandbox/reset", ctl_reset, methods=["POST"]),
        Route("/_sandbox/bills/bulk", ctl_bills_bulk, methods=["POST"]),
        Route("/_sandbox/bills/{id}/regenerate", ctl_regenerate, methods=["POST"]),
        Route("/_sandbox/bills/{id}/approve", ctl_approve, methods=["POST"]),
        Route("/_sandbox/accounts/bulk", ctl_accounts_bulk, methods=["POST"]),
        Route("/_sandbox/mappings", ctl_mappings, methods=["POST"]),
        Route("/_sandbox/faults", ctl_faults, methods=["POST"]),
        Route("/_sandbox/expire-tokens", ctl_expire_tokens, methods=["POST"]),
        Route("/_sandbox/state", ctl_state, methods=["GET"]),
    ]
