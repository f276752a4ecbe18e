"""What every m3ter sandbox route shares: the request's sandbox, its query parameters as the SDK
sends them, and JSON answers and errors."""

from __future__ import annotations

import binascii
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.m3ter.queries import decode_token
from sandbox.m3ter.state import M3terSandbox
from sandbox.m3ter.wire import DecimalJSONResponse

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 10

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """A refused request: the route answers ``status`` with ``{"message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer whose Decimals stay exact."""
    return DecimalJSONResponse(content, status_code=status, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer, ``{"message": ...}`` as m3ter sends them."""
    return json_response({"message": message}, status, headers)


def sandbox_of(request: Request) -> M3terSandbox:
    """The sandbox of the app serving ``request``."""
    return request.app.state.sandbox  # type: ignore[no-any-return]


def csv_param(request: Request, name: str) -> set[str] | None:
    """SDK arrays go out comma-separated (``Querystring(array_format="comma")``)."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return {v for raw in values for v in raw.split(",") if v}


def date_param(request: Request, name: str) -> date | None:
    """An ISO 8601 date parameter (a date-time's date part); ``ApiError`` 400 if not one."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an ISO 8601 date") from exc


def bool_param(request: Request, name: str) -> bool | None:
    """``true`` (any case) is True, anything else False, absent None."""
    raw = request.query_params.get(name)
    return None if raw is None else raw.lower() == "true"


def page_size(request: Request) -> int:
    """``pageSize``: 1 to ``MAX_PAGE_SIZE``, ``DEFAULT_PAGE_SIZE`` if absent."""
    raw_size = request.query_params.get("pageSize")
    try:
        size = int(raw_size) if raw_size else DEFAULT_PAGE_SIZE
    except ValueError as exc:
        raise ApiError(400, "pageSize must be an integer") from exc
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    return size


def paging(request: Request) -> tuple[int, int]:
    """(position, pageSize) of a list call: ``nextToken`` is where the last page stopped."""
    size = page_size(request)
    token = request.query_params.get("nextToken")
    try:
        start = decode_token(token) if token else 0
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid nextToken") from exc
    return start, size


def listing(data: list[Any], token: str | None) -> Response:
    """A list answer: ``{"data": [...], "nextToken": ...}`` (no ``nextToken`` on the last page)."""
    body: dict[str, Any] = {"data": data}
    if token:
        body["nextToken"] = token
    return json_response(body)
