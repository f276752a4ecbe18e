"""The m3ter API sandbox as a Starlette app: same paths, queries and wire shapes as the SDK uses.

API (bearer token required): ``POST /oauth/token`` (client credentials, HTTP Basic or body),
``GET /organizations/{orgId}/bills[/{id}]``, ``/bills/search``, ``/accounts[/{id}]``,
``/externalmappings[/{id}]``, ``/externalmappings/externalid/{system}/{table}/{externalId}``,
``/externalmappings/external/{entity}/{m3terId}``. Lists answer ``{"data": [...], "nextToken"}``.
Control (no auth): ``/_sandbox/reset``, ``bills/{id}/regenerate``, ``bills/{id}/approve``,
``accounts/bulk``, ``bills/bulk`` (both take ``modifiedAt``), ``mappings``, ``faults``,
``expire-tokens``, ``GET state``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.m3ter import search
from sandbox.m3ter.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORG_ID,
    Fault,
    M3terSandbox,
    decode_token,
)
from sandbox.m3ter.wire import DecimalJSONResponse, loads

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 10

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ORG_ID",
    "M3terSandbox",
    "create_app",
]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return DecimalJSONResponse(content, status_code=status, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"message": message}, status, headers)


def _sandbox(request: Request) -> M3terSandbox:
    return request.app.state.sandbox  # type: ignore[no-any-return]


# ---- query helpers ------------------------------------------------------------------------
def _csv(request: Request, name: str) -> set[str] | None:
    """SDK arrays go out comma-separated (``Querystring(array_format="comma")``)."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return {v for raw in values for v in raw.split(",") if v}


def _date(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an ISO 8601 date") from exc


def _page_size(request: Request) -> int:
    raw_size = request.query_params.get("pageSize")
    try:
        size = int(raw_size) if raw_size else DEFAULT_PAGE_SIZE
    except ValueError as exc:
        raise ApiError(400, "pageSize must be an integer") from exc
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    return size


def _paging(request: Request) -> tuple[int, int]:
    """(position, pageSize) of a list call: ``nextToken`` is where the last page stopped."""
    size = _page_size(request)
    token = request.query_params.get("nextToken")
    try:
        start = decode_token(token) if token else 0
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid nextToken") from exc
    return start, size


def _bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    return None if raw is None else raw.lower() == "true"


def _listing(data: list[Any], token: str | None) -> Response:
    body: dict[str, Any] = {"data": data}
    if token:
        body["nextToken"] = token
    return _json(body)


# ---- auth + faults wrapper -----------------------------------------------------------------
Handler = Callable[[Request], Awaitable[Response]]


def api(handler: Handler) -> Handler:
    """Count the call, apply injected faults, check the bearer token and the org id."""

    async def wrapped(request: Request) -> Response:
        sb = _sandbox(request)
        with sb.lock:
            sb.counters.api_calls += 1
            path = request.url.path
            sb.counters.paths[path] = sb.counters.paths.get(path, 0) + 1
        fault = sb.take_fault(token_endpoint=False)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                return _error(fault.status, "injected fault", headers)
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not sb.token_valid(token.strip()):
            with sb.lock:
                sb.counters.unauthorised += 1
            return _error(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
        if request.path_params.get("orgId") != sb.org_id:
            return _error(403, "Access to this organization is denied")
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.message)

    return wrapped


async def _token_params(request: Request) -> dict[str, str]:
    body = await request.body()
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        try:
            data = loads(body) if body else {}
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: str(v) for k, v in data.items() if v is not None}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


async def oauth_token(request: Request) -> Response:
    """Client credentials: HTTP Basic (the SDK, authlib) or ``client_id``/``client_secret``."""
    sb = _sandbox(request)
    fault = sb.take_fault(token_endpoint=True)
    if fault is not None and fault.status:
        return _error(fault.status, "injected fault")
    params = await _token_params(request)
    client_id, client_secret = params.get("client_id", ""), params.get("client_secret", "")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = client_secret = ""
    if params.get("grant_type") != "client_credentials":
        return _json({"error": "unsupported_grant_type"}, 400)
    ok = hmac.compare_digest(client_id.encode(), sb.client_id.encode()) and hmac.compare_digest(
        client_secret.encode(), sb.client_secret.encode()
    )
    if not ok:
        return _json({"error": "invalid_client"}, 401)
    return _json(sb.issue_token(), headers={"Cache-Control": "no-store"})


# ---- API endpoints -------------------------------------------------------------------------
@api
async def list_bills(request: Request) -> Response:
    start, size = _paging(request)
    status = request.query_params.get("status")
    if status is not None and status not in ("PENDING", "APPROVED"):
        raise ApiError(400, "status must be PENDING or APPROVED")
    data, token = _sandbox(request).list_bills(
        start=start,
        size=size,
        status=status,
        account_id=request.query_params.get("accountId") or None,
        bill_date=_date(request, "billDate"),
        bill_date_start=_date(request, "billDateStart"),
        bill_date_end=_date(request, "billDateEnd"),
        ids=_csv(request, "ids"),
        exclude_locked=_bool(request, "locked") is False,
    )
    if _bool(request, "excludeLineItems"):
        data = [{k: v for k, v in b.items() if k != "lineItems"} for b in data]
    if not _bool(request, "includeBillTotal"):
        data = [{k: v for k, v in b.items() if k != "billTotal"} for b in data]
    return _listing(data, token)


@api
async def search_bills(request: Request) -> Response:
    """Search Bills: ``searchQuery``/``operator`` filter, ``sortBy``/``sortOrder`` sort,
    ``fromDocument`` is the offset of the first bill returned, ``nextToken`` the next one's.
    Full bills, as Get Bill answers (``excludeLineItems``/``includeBillTotal`` do not apply)."""
    params = request.query_params
    start_raw = params.get("fromDocument") or "0"
    try:
        start = int(start_raw)
    except ValueError as exc:
        raise ApiError(400, f"fromDocument must be an integer, not {start_raw!r}") from exc
    if start < 0:
        raise ApiError(400, f"fromDocument must be 0 or more, not {start}")
    size = _page_size(request)
    try:
        query = search.Query.parse(params.get("searchQuery"), params.get("operator"))
        sort = search.Sort.parse(params.get("sortBy"), params.get("sortOrder"))
    except search.SearchError as exc:
        raise ApiError(400, str(exc)) from exc
    data, after = _sandbox(request).search_bills(query, sort, start, size)
    return _listing(data, None if after is None else str(after))


@api
async def get_bill(request: Request) -> Response:
    try:
        return _json(_sandbox(request).bill(request.path_params["id"]))
    except KeyError:
        return _error(404, "Bill not found")


@api
async def list_accounts(request: Request) -> Response:
    start, size = _paging(request)
    data, token = _sandbox(request).list_accounts(
        start=start, size=size, ids=_csv(request, "ids"), codes=_csv(request, "codes")
    )
    return _listing(data, token)


@api
async def get_account(request: Request) -> Response:
    sb = _sandbox(request)
    with sb.lock:
        index = sb.account_index.get(request.path_params["id"])
        if index is None:
            return _error(404, "Account not found")
        return _json(sb.accounts[index])


@api
async def list_mappings(request: Request) -> Response:
    start, size = _paging(request)
    q = request.query_params
    data, token = _sandbox(request).list_mappings(
        start=start,
        size=size,
        external_system=q.get("externalSystemId") or None,
        integration_config_id=q.get("integrationConfigId") or None,
        m3ter_ids=_csv(request, "m3terIds"),
    )
    return _listing(data, token)


@api
async def get_mapping(request: Request) -> Response:
    sb = _sandbox(request)
    with sb.lock:
        for m in sb.mappings:
            if m["id"] == request.path_params["id"]:
                return _json(m)
    return _error(404, "ExternalMapping not found")


@api
async def mappings_by_external(request: Request) -> Response:
    start, size = _paging(request)
    p = request.path_params
    data, token = _sandbox(request).list_mappings(
        start=start,
        size=size,
        external_system=p["system"],
        external_table=p["table"],
        external_id=p["externalId"],
    )
    return _listing(data, token)


@api
async def mappings_by_m3ter(request: Request) -> Response:
    start, size = _paging(request)
    p = request.path_params
    data, token = _sandbox(request).list_mappings(
        start=start, size=size, m3ter_entity=p["entity"], m3ter_ids={p["m3terId"]}
    )
    return _listing(data, token)


# ---- control endpoints -----------------------------------------------------------------------
async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = loads(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def control(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.message)
        except KeyError as exc:
            return _error(404, f"not found: {exc.args[0]}")
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))

    return wrapped


@control
async def ctl_reset(request: Request) -> Response:
    _sandbox(request).reset()
    return _json(_sandbox(request).state())


@control
async def ctl_regenerate(request: Request) -> Response:
    return _json(_sandbox(request).regenerate(request.path_params["id"]))


@control
async def ctl_approve(request: Request) -> Response:
    return _json(_sandbox(request).approve(request.path_params["id"]))


def _modified_at(body: dict[str, Any]) -> datetime | None:
    """Optional ``modifiedAt`` (ISO 8601): when the generated bills' bill run was."""
    raw = body.get("modifiedAt")
    if raw is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, "modifiedAt must be an ISO 8601 date-time") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@control
async def ctl_accounts_bulk(request: Request) -> Response:
    """``{"count": N, "billsPerAccount": B}`` generates; ``{"accounts": [...]}`` adds as given."""
    body = await _body(request)
    sb = _sandbox(request)
    ids = [sb.add_account(a) for a in body.get("accounts", [])]
    if body.get("count"):
        ids += sb.add_generated_accounts(
            int(body["count"]),
            int(body.get("billsPerAccount", 0)),
            modified_at=_modified_at(body),
        )
    return _json({"ids": ids}, 201)


@control
async def ctl_bills_bulk(request: Request) -> Response:
    """``{"count": N, "accountIds": [...], "status": ..., "firstPeriod": P}`` generates;
    ``{"bills": [...]}`` adds wire bills as given."""
    body = await _body(request)
    sb = _sandbox(request)
    ids = [sb.add_bill(b) for b in body.get("bills", [])]
    if body.get("count"):
        ids += sb.add_generated_bills(
            int(body["count"]),
            account_ids=body.get("accountIds"),
            status=body.get("status"),
            first_period=int(body.get("firstPeriod", 0)),
            modified_at=_modified_at(body),
        )
    return _json({"ids": ids}, 201)


@control
async def ctl_mappings(request: Request) -> Response:
    """One external mapping: ``{"m3terId", "externalId"}`` is an Account -> Xero Contact one;
    ``{"m3terEntity": "Product", "productCode": "compute", "externalTable": "TaxRate",
    "externalId": "OUTPUT2"}`` a Product one (``m3terId`` instead of ``productCode`` works too);
    ``externalSystem``, ``integrationConfigId`` and ``id`` are optional."""
    return _json(_sandbox(request).add_mapping(await _body(request)), 201)


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
    _sandbox(request).add_fault(fault)
    return _json(_sandbox(request).state(), 201)


@control
async def ctl_expire_tokens(request: Request) -> Response:
    _sandbox(request).expire_tokens()
    return _json({"ok": True})


@control
async def ctl_state(request: Request) -> Response:
    return _json(_sandbox(request).state())


def create_app(
    seed: int = 1,
    accounts: int = 20,
    bills_per_account: int = 3,
    org_id: str = DEFAULT_ORG_ID,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    token_ttl: int = 18000,
) -> Starlette:
    """A fresh sandbox app; its data is ``app.state.sandbox`` (an ``M3terSandbox``)."""
    org = "/organizations/{orgId}"
    routes = [
        Route("/oauth/token", oauth_token, methods=["POST"]),
        Route(f"{org}/bills", list_bills, methods=["GET"]),
        Route(f"{org}/bills/search", search_bills, methods=["GET"]),
        Route(f"{org}/bills/{{id}}", get_bill, methods=["GET"]),
        Route(f"{org}/accounts", list_accounts, methods=["GET"]),
        Route(f"{org}/accounts/{{id}}", get_account, methods=["GET"]),
        Route(f"{org}/externalmappings", list_mappings, methods=["GET"]),
        Route(
            f"{org}/externalmappings/externalid/{{system}}/{{table}}/{{externalId}}",
            mappings_by_external,
            methods=["GET"],
        ),
        Route(
            f"{org}/externalmappings/external/{{entity}}/{{m3terId}}",
            mappings_by_m3ter,
            methods=["GET"],
        ),
        Route(f"{org}/externalmappings/{{id}}", get_mapping, methods=["GET"]),
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
    app = Starlette(routes=routes)
    app.state.sandbox = M3terSandbox(
        seed=seed,
        accounts=accounts,
        bills_per_account=bills_per_account,
        org_id=org_id,
        client_id=client_id,
        client_secret=client_secret,
        token_ttl=token_ttl,
    )
    return app
