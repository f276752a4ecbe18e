"""The OAuth token endpoint, and the gate every API call passes: call counting, injected faults,
the bearer token and the organisation id."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from sandbox.m3ter.http_io import ApiError, Handler, error_response, json_response, sandbox_of
from sandbox.m3ter.wire import loads


def api(handler: Handler) -> Handler:
    """Count the call, apply injected faults, check the bearer token and the org id."""

    async def wrapped(request: Request) -> Response:
        sb = sandbox_of(request)
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
                return error_response(fault.status, "injected fault", headers)
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not sb.token_valid(token.strip()):
            with sb.lock:
                sb.counters.unauthorised += 1
            return error_response(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
        if request.path_params.get("orgId") != sb.org_id:
            return error_response(403, "Access to this organization is denied")
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)

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
    sb = sandbox_of(request)
    fault = sb.take_fault(token_endpoint=True)
    if fault is not None and fault.status:
        return error_response(fault.status, "injected fault")
    params = await _token_params(request)
    client_id, client_secret = params.get("client_id", ""), params.get("client_secret", "")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = client_secret = ""
    if params.get("grant_type") != "client_credentials":
        return json_response({"error": "unsupported_grant_type"}, 400)
    ok = hmac.compare_digest(client_id.encode(), sb.client_id.encode()) and hmac.compare_digest(
        client_secret.encode(), sb.client_secret.encode()
    )
    if not ok:
        return json_response({"error": "invalid_client"}, 401)
    return json_response(sb.issue_token(), headers={"Cache-Control": "no-store"})
