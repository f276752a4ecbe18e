"""The m3ter API's resources as the SDK reads them: bills (list, search, get), accounts and
external mappings, each behind the bearer-token gate."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.m3ter import search
from sandbox.m3ter.auth import api
from sandbox.m3ter.http_io import (
    ApiError,
    bool_param,
    csv_param,
    date_param,
    error_response,
    json_response,
    listing,
    page_size,
    paging,
    sandbox_of,
)


@api
async def list_bills(request: Request) -> Response:
    start, size = paging(request)
    status = request.query_params.get("status")
    if status is not None and status not in ("PENDING", "APPROVED"):
        raise ApiError(400, "status must be PENDING or APPROVED")
    data, token = sandbox_of(request).list_bills(
        start=start,
        size=size,
        status=status,
        account_id=request.query_params.get("accountId") or None,
        bill_date=date_param(request, "billDate"),
        bill_date_start=date_param(request, "billDateStart"),
        bill_date_end=date_param(request, "billDateEnd"),
        ids=csv_param(request, "ids"),
        exclude_locked=bool_param(request, "locked") is False,
    )
    if bool_param(request, "excludeLineItems"):
        data = [{k: v for k, v in b.items() if k != "lineItems"} for b in data]
    if not bool_param(request, "includeBillTotal"):
        data = [{k: v for k, v in b.items() if k != "billTotal"} for b in data]
    return listing(data, token)


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
    size = page_size(request)
    try:
        query = search.Query.parse(params.get("searchQuery"), params.get("operator"))
        sort = search.Sort.parse(params.get("sortBy"), params.get("sortOrder"))
    except search.SearchError as exc:
        raise ApiError(400, str(exc)) from exc
    data, after = sandbox_of(request).search_bills(query, sort, start, size)
    return listing(data, None if after is None else str(after))


@api
async def get_bill(request: Request) -> Response:
    try:
        return json_response(sandbox_of(request).bill(request.path_params["id"]))
    except KeyError:
        return error_response(404, "Bill not found")


@api
async def list_accounts(request: Request) -> Response:
    start, size = paging(request)
    data, token = sandbox_of(request).list_accounts(
        start=start, size=size, ids=csv_param(request, "ids"), codes=csv_param(request, "codes")
    )
    return listing(data, token)


@api
async def get_account(request: Request) -> Response:
    sb = sandbox_of(request)
    with sb.lock:
        index = sb.account_index.get(request.path_params["id"])
        if index is None:
            return error_response(404, "Account not found")
        return json_response(sb.accounts[index])


@api
async def list_mappings(request: Request) -> Response:
    start, size = paging(request)
    q = request.query_params
    data, token = sandbox_of(request).list_mappings(
        start=start,
        size=size,
        external_system=q.get("externalSystemId") or None,
        integration_config_id=q.get("integrationConfigId") or None,
        m3ter_ids=csv_param(request, "m3terIds"),
    )
    return listing(data, token)


@api
async def get_mapping(request: Request) -> Response:
    sb = sandbox_of(request)
    with sb.lock:
        for m in sb.mappings:
            if m["id"] == request.path_params["id"]:
                return json_response(m)
    return error_response(404, "ExternalMapping not found")


@api
async def mappings_by_external(request: Request) -> Response:
    start, size = paging(request)
    p = request.path_params
    data, token = sandbox_of(request).list_mappings(
        start=start,
        size=size,
        external_system=p["system"],
        external_table=p["table"],
        external_id=p["externalId"],
    )
    return listing(data, token)


@api
async def mappings_by_m3ter(request: Request) -> Response:
    start, size = paging(request)
    p = request.path_params
    data, token = sandbox_of(request).list_mappings(
        start=start, size=size, m3ter_entity=p["entity"], m3ter_ids={p["m3terId"]}
    )
    return listing(data, token)


def api_routes(org: str = "/organizations/{orgId}") -> list[Route]:
    """The API's routes under ``org`` (specific paths before the ``{id}`` ones they overlap)."""
    return [
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
    ]
