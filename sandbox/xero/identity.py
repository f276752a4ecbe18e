"""Routes of Xero's identity service (login.xero.com, identity.xero.com, /connections)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlparse

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.xero.consent_page import consent_page, error_page, login_page
from sandbox.xero.state import InvalidToken, OAuthError, XeroSandbox

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DENY = "__deny__"


class _BadAuthorize(Exception):
    pass


def _redirect(uri: str, state: str | None, **params: str) -> RedirectResponse:
    """Back to the app; ``state`` only if the app sent one (as Xero does)."""
    if state is not None:
        params["state"] = state
    sep = "&" if urlparse(uri).query else "?"
    return RedirectResponse(f"{uri}{sep}{urlencode(params)}", status_code=302)


async def _json_object(request: Request) -> dict[str, Any]:
    """A control endpoint's JSON body, or ``OAuthError(invalid_request)``."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise OAuthError("invalid_request", 400, "body must be JSON") from exc
    if not isinstance(body, dict):
        raise OAuthError("invalid_request", 400, "body must be a JSON object")
    return body


def _counts_only(state: dict[str, Any]) -> None:
    """``?documents=false``: keep per-tenant counts, drop the per-document map (a big sync's
    state would otherwise weigh more than the sync that asks for it)."""
    tenants = (state.get("accounting") or {}).get("documents") or {}
    for entry in tenants.values():
        for key in [k for k, v in entry.items() if isinstance(v, dict)]:
            del entry[key]


def identity_routes(sandbox: XeroSandbox) -> list[BaseRoute]:
    """The identity endpoints bound to ``sandbox``."""

    def checked(params: dict[str, str]) -> dict[str, str]:
        """The authorise request's parameters, or ``_BadAuthorize`` (no redirect then)."""
        if params.get("client_id") not in sandbox.apps:
            raise _BadAuthorize("unknown client_id")
        redirect = params.get("redirect_uri", "")
        parsed = urlparse(redirect)
        if parsed.scheme not in ("http", "https") or parsed.hostname not in LOOPBACK:
            raise _BadAuthorize("redirect_uri must be a loopback address")
        if params.get("response_type") != "code":
            raise _BadAuthorize("response_type must be code")
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            raise _BadAuthorize("PKCE with code_challenge_method=S256 is required")
        return params

    def finish(params: dict[str, str], orgs: list[str] | None) -> Response:
        state = params.get("state")
        if orgs is None:
            return _redirect(params["redirect_uri"], state, error="access_denied")
        try:
            code = sandbox.issue_code(
                params["client_id"],
                params["redirect_uri"],
                params["code_challenge"],
                params.get("scope", ""),
                orgs,
            )
        except OAuthError as exc:
            return HTMLResponse(error_page(exc.description or exc.error), status_code=400)
        return _redirect(params["redirect_uri"], state, code=code)

    async def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            checked(params)
        except _BadAuthorize as exc:
            return HTMLResponse(error_page(str(exc)), status_code=400)
        unattended = params.pop("sandbox_consent", None)
        if unattended is not None:
            orgs = None if unattended == DENY else [o for o in unattended.split(",") if o]
            return finish(params, orgs)
        return HTMLResponse(login_page(urlencode(params)))

    async def login(request: Request) -> Response:
        form = await request.form()
        params = dict(parse_qsl(str(form.get("q", ""))))
        try:
            checked(params)
        except _BadAuthorize as exc:
            return HTMLResponse(error_page(str(exc)), status_code=400)
        return HTMLResponse(
            consent_page(
                urlencode(params), params["client_id"], list(sandbox.orgs), params.get("scope", "")
            )
        )

    async def consent(request: Request) -> Response:
        form = await request.form()
        params = dict(parse_qsl(str(form.get("q", ""))))
        try:
            checked(params)
        except _BadAuthorize as exc:
            return HTMLResponse(error_page(str(exc)), status_code=400)
        if form.get("action") != "allow":
            return finish(params, None)
        chosen = [str(v) for v in form.getlist("org")]
        if not chosen:
            return HTMLResponse(error_page("choose at least one organisation"), status_code=400)
        return finish(params, chosen)

    async def token(request: Request) -> Response:
        form = dict(await request.form())
        try:
            client_id, secret = _client_auth(request, form)
            sandbox.check_client(client_id, secret)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                answer = sandbox.exchange_code(
                    client_id,
                    str(form.get("code", "")),
                    form.get("redirect_uri"),
                    form.get("code_verifier"),
                )
            elif grant_type == "refresh_token":
                answer = sandbox.refresh(client_id, str(form.get("refresh_token", "")))
            else:
                raise OAuthError("unsupported_grant_type", 400)
        except OAuthError as exc:
            return _oauth_error(exc)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def revocation(request: Request) -> Response:
        form = dict(await request.form())
        try:
            client_id, secret = _client_auth(request, form)
            sandbox.check_client(client_id, secret)
        except OAuthError as exc:
            return _oauth_error(exc)
        sandbox.revoke(client_id, str(form.get("token", "")))
        return Response(status_code=200)

    def bearer(request: Request) -> str:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    async def connections(request: Request) -> Response:
        try:
            found = sandbox.connections(bearer(request), request.query_params.get("authEventId"))
        except InvalidToken as exc:
            return _unauthorised(str(exc))
        return JSONResponse(found)

    async def delete_connection(request: Request) -> Response:
        try:
            deleted = sandbox.delete_connection(bearer(request), request.path_params["id"])
        except InvalidToken as exc:
            return _unauthorised(str(exc))
        return Response(status_code=204 if deleted else 404)

    async def control_reset(_: Request) -> Response:
        sandbox.reset()
        return JSONResponse({"reset": True})

    async def control_state(request: Request) -> Response:
        state = sandbox.state()
        if request.query_params.get("documents") == "false":
            _counts_only(state)
        return JSONResponse(state)

    async def control_clock(request: Request) -> Response:
        try:
            body = await _json_object(request)
        except OAuthError as exc:
            return _oauth_error(exc)
        seconds = body.get("advance_seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            return JSONResponse({"error": "advance_seconds must be a number ≥ 0"}, 400)
        sandbox.clock.advance(seconds)
        return JSONResponse({"now": sandbox.clock.now()})

    async def control_grant(request: Request) -> Response:
        try:
            body = await _json_object(request)
            orgs = body.get("orgs")
            if not isinstance(orgs, list) or not all(isinstance(o, str) for o in orgs):
                raise OAuthError("invalid_request", 400, "orgs must be a list of names")
            return JSONResponse(sandbox.grant(orgs, body.get("client_id")))
        except OAuthError as exc:
            return _oauth_error(exc)

    return [
        Route("/identity/connect/authorize", authorize, methods=["GET"]),
        Route("/identity/connect/authorize/login", login, methods=["POST"]),
        Route("/identity/connect/authorize/consent", consent, methods=["POST"]),
        Route("/connect/token", token, methods=["POST"]),
        Route("/connect/revocation", revocation, methods=["POST"]),
        Route("/connections", connections, methods=["GET"]),
        Route("/connections/{id}", delete_connection, methods=["DELETE"]),
        Route("/_sandbox/reset", control_reset, methods=["POST"]),
        Route("/_sandbox/state", control_state, methods=["GET"]),
        Route("/_sandbox/clock", control_clock, methods=["POST"]),
        Route("/_sandbox/grant", control_grant, methods=["POST"]),
    ]


def _client_auth(request: Request, form: dict[str, Any]) -> tuple[str | None, str | None]:
    """client_secret_basic, else client_secret_post."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
        except ValueError as exc:
            raise OAuthError("invalid_client", 401, "malformed basic auth") from exc
        return unquote(client_id), unquote(secret)
    return form.get("client_id"), form.get("client_secret")


def _oauth_error(exc: OAuthError) -> JSONResponse:
    body = {"error": exc.error}
    if exc.description and exc.error != "invalid_grant":
        body["error_description"] = exc.description
    return JSONResponse(body, status_code=exc.status)


def _unauthorised(detail: str) -> JSONResponse:
    return JSONResponse(
        {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": detail},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
