"""The Xero identity sandbox over HTTP on loopback: consent pages, PKCE code grant, rotating
refresh tokens, revocation, connections and the control endpoints. Answers the identity spec
covers are validated against Xero's ``xero-identity.yaml``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from sandbox.serve import ServerHandle, free_port, run_in_thread
from sandbox.xero.app import create_app
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS
from tests.sandbox.openapi import validate_response, validate_schema

SPEC = "xero-identity.yaml"
REDIRECT = "http://127.0.0.1:8765/callback"
UK, US = DEFAULT_ORGS
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def http(xero_server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=xero_server.url, timeout=10, follow_redirects=False) as client:
        assert client.post("/_sandbox/reset").status_code == 200
        yield client


# -- helpers -----------------------------------------------------------------------------------
def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid offline_access accounting.invoices",
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def redirect_query(response: httpx.Response, redirect: str = REDIRECT) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect + "?")
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def consent(http: httpx.Client, orgs: str, **extra: str) -> tuple[str, str]:
    """Unattended consent to ``orgs``: the code and its verifier."""
    verifier, challenge = pkce()
    params = authorize_params(challenge, sandbox_consent=orgs, **extra)
    query = redirect_query(http.get("/identity/connect/authorize", params=params))
    assert query["state"] == "st-123"
    return query["code"], verifier


def token_call(
    http: httpx.Client, auth: tuple[str, str] | None = None, **form: str
) -> httpx.Response:
    auth = auth or (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    return http.post("/connect/token", data=form, auth=auth)


def exchange(http: httpx.Client, code: str, verifier: str, **form: str) -> httpx.Response:
    fields = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        **form,
    }
    return token_call(http, **fields)


def tokens_for(http: httpx.Client, orgs: str) -> dict[str, Any]:
    code, verifier = consent(http, orgs)
    answer = exchange(http, code, verifier)
    assert answer.status_code == 200, answer.text
    validate_schema(SPEC, "AccessToken", answer.json())
    return answer.json()


def claims(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def connections(http: httpx.Client, access: str, **params: str) -> httpx.Response:
    response = http.get(
        "/connections", params=params, headers={"Authorization": f"Bearer {access}"}
    )
    if response.status_code == 200:
        validate_response(SPEC, "/Connections", "get", 200, response.json())
    return response


def advance(http: httpx.Client, seconds: float) -> None:
    assert http.post("/_sandbox/clock", json={"advance_seconds": seconds}).status_code == 200


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


class Forms(HTMLParser):
    """The forms of a page: action, hidden inputs, and attributes of every element with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}
        self.ids: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        if tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        if "id" in a:
            self.ids[a["id"]] = {"tag": tag, **a}


def parse(page: str) -> Forms:
    forms = Forms()
    forms.feed(page)
    return forms


def consent_form(http: httpx.Client, challenge: str) -> Forms:
    """Open the authorise URL and log in: the organisation page's form."""
    login = parse(http.get("/identity/connect/authorize", params=authorize_params(challenge)).text)
    answer = http.post(login.action, data={**login.hidden, "email": "a@b.c", "password": "x"})
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


# -- the consent pages -------------------------------------------------------------------------
def test_consent_pages_log_in_choose_organisations_and_allow(http: httpx.Client) -> None:
    verifier, challenge = pkce()
    first = http.get("/identity/connect/authorize", params=authorize_params(challenge))
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    login = parse(first.text)
    assert {"email", "password", "login"} <= login.ids.keys()
    assert login.ids["password"]["type"] == "password"

    second = http.post(
        login.action, data={**login.hidden, "email": "me@example.com", "password": "anything"}
    )
    assert second.status_code == 200
    page = parse(second.text)
    assert {"allow", "cancel"} <= page.ids.keys()
    boxes = {v["data-org"]: k for k, v in page.ids.items() if k.startswith("org-")}
    assert boxes == {UK: "org-0", US: "org-1"}
    assert all(page.ids[b]["type"] == "checkbox" for b in boxes.values())

    allowed = http.post(
        page.action, data={**page.hidden, "org": [UK, US], "action": page.ids["allow"]["value"]}
    )
    query = redirect_query(allowed)
    assert query["state"] == "st-123" and "error" not in query
    answer = exchange(http, query["code"], verifier)
    assert answer.status_code == 200, answer.text
    found = connections(http, answer.json()["access_token"]).json()
    assert sorted(c["tenantName"] for c in found) == [UK, US]


def test_consent_page_with_one_organisation_chosen(http: httpx.Client) -> None:
    verifier, challenge = pkce()
    page = consent_form(http, challenge)
    query = redirect_query(
        http.post(page.action, data={**page.hidden, "org": US, "action": "allow"})
    )
    access = exchange(http, query["code"], verifier).json()["access_token"]
    assert [c["tenantName"] for c in connections(http, access).json()] == [US]


def test_cancel_redirects_with_access_denied(http: httpx.Client) -> None:
    _, challenge = pkce()
    page = consent_form(http, challenge)
    query = redirect_query(
        http.post(
            page.action, data={**page.hidden, "org": UK, "action": page.ids["cancel"]["value"]}
        )
    )
    assert query == {"error": "access_denied", "state": "st-123"}


def test_allow_without_an_organisation_is_refused(http: httpx.Client) -> None:
    _, challenge = pkce()
    page = consent_form(http, challenge)
    refused = http.post(page.action, data={**page.hidden, "action": "allow"})
    assert refused.status_code == 400 and "location" not in refused.headers


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "someone-else"}, "unknown client_id"),
        ({"redirect_uri": "https://evil.example.com/cb"}, "loopback"),
        ({"redirect_uri": "http://127.0.0.1.evil.example.com/cb"}, "loopback"),
        ({"code_challenge": ""}, "PKCE"),
        ({"code_challenge_method": "plain"}, "PKCE"),
        ({"response_type": "token"}, "response_type"),
    ],
)
def test_bad_authorize_requests_get_an_error_page_and_no_redirect(
    http: httpx.Client, change: dict[str, str], message: str
) -> None:
    _, challenge = pkce()
    params = {**authorize_params(challenge, sandbox_consent=UK), **change}
    response = http.get("/identity/connect/authorize", params=params)
    assert response.status_code == 400 and "location" not in response.headers
    assert "error" in parse(response.text).ids and message in response.text


@pytest.mark.parametrize(
    "redirect", ["http://localhost:9/cb", "http://[::1]:50123/x", "http://127.0.0.1/"]
)
def test_any_loopback_redirect_uri_is_accepted(http: httpx.Client, redirect: str) -> None:
    verifier, challenge = pkce()
    params = authorize_params(challenge, sandbox_consent=UK, redirect_uri=redirect)
    query = redirect_query(http.get("/identity/connect/authorize", params=params), redirect)
    answer = exchange(http, query["code"], verifier, redirect_uri=redirect)
    assert answer.status_code == 200, answer.text


# -- unattended consent ------------------------------------------------------------------------
def test_unattended_consent_to_several_organisations(http: httpx.Client) -> None:
    tokens = tokens_for(http, f"{UK},{US}")
    state = http.get("/_sandbox/state").json()
    tenant_ids = {o["name"]: o["tenantId"] for o in state["organisations"]}
    found = connections(http, tokens["access_token"]).json()
    assert {(c["tenantName"], c["tenantId"]) for c in found} == set(tenant_ids.items())
    assert {c["tenantType"] for c in found} == {"ORGANISATION"}


def test_unattended_deny_and_unknown_organisation(http: httpx.Client) -> None:
    _, challenge = pkce()
    params = authorize_params(challenge, sandbox_consent="__deny__")
    denied = redirect_query(http.get("/identity/connect/authorize", params=params))
    assert denied == {"error": "access_denied", "state": "st-123"}
    params = authorize_params(challenge, sandbox_consent="No Such Org")
    unknown = http.get("/identity/connect/authorize", params=params)
    assert unknown.status_code == 400 and "location" not in unknown.headers


# -- the code exchange -------------------------------------------------------------------------
def test_code_exchange_answers_a_xero_shaped_token_set(http: httpx.Client) -> None:
    tokens = tokens_for(http, UK)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 1800
    assert tokens["scope"] == "openid offline_access accounting.invoices"
    assert tokens["refresh_token"] and tokens["refresh_token"] != tokens["access_token"]
    header, _, _ = tokens["access_token"].split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==="))["typ"] == "JWT"
    c = claims(tokens["access_token"])
    assert c["exp"] - c["iat"] == 1800 and c["nbf"] == c["iat"]
    assert c["client_id"] == DEFAULT_CLIENT_ID and c["sub"] == c["xero_userid"]
    assert c["scope"] == ["openid", "offline_access", "accounting.invoices"]
    assert abs(c["iat"] - time.time()) < 60
    # As with real Xero: the token's authentication event picks this consent's connections.
    found = connections(http, tokens["access_token"], authEventId=c["authentication_event_id"])
    assert [(x["tenantName"], x["authEventId"]) for x in found.json()] == [
        (UK, c["authentication_event_id"])
    ]


def test_id_token_only_for_openid_and_state_only_when_sent(http: httpx.Client) -> None:
    verifier, challenge = pkce()
    params = authorize_params(challenge, sandbox_consent=UK, scope="offline_access")
    del params["state"]
    location = http.get("/identity/connect/authorize", params=params).headers["location"]
    query = parse_qs(urlparse(location).query)
    assert set(query) == {"code"}
    plain = exchange(http, query["code"][0], verifier).json()
    assert "id_token" not in plain and plain["scope"] == "offline_access"

    with_openid = tokens_for(http, UK)
    identity = claims(with_openid["id_token"])
    access = claims(with_openid["access_token"])
    assert identity["aud"] == DEFAULT_CLIENT_ID and identity["sub"] == access["sub"]
    assert identity["iss"] == "https://identity.xero.com"


def test_client_secret_post_is_accepted_too(http: httpx.Client) -> None:
    code, verifier = consent(http, UK)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }
    assert http.post("/connect/token", data=form).status_code == 200


def test_wrong_verifier_is_refused(http: httpx.Client) -> None:
    code, _ = consent(http, UK)
    assert_oauth_error(exchange(http, code, pkce()[0]), 400, "invalid_grant")
    assert_oauth_error(exchange(http, code, ""), 400, "invalid_grant")


def test_a_code_works_once(http: httpx.Client) -> None:
    code, verifier = consent(http, UK)
    assert exchange(http, code, verifier).status_code == 200
    assert_oauth_error(exchange(http, code, verifier), 400, "invalid_grant")


def test_code_expires_after_five_minutes(http: httpx.Client) -> None:
    code, verifier = consent(http, UK)
    advance(http, 301)
    assert_oauth_error(exchange(http, code, verifier), 400, "invalid_grant")
    code, verifier = consent(http, UK)
    advance(http, 290)
    assert exchange(http, code, verifier).status_code == 200


def test_redirect_uri_must_match_the_authorise_one(http: httpx.Client) -> None:
    code, verifier = consent(http, UK)
    other = exchange(http, code, verifier, redirect_uri="http://127.0.0.1:8765/other")
    assert_oauth_error(other, 400, "invalid_grant")
    missing = token_call(http, grant_type="authorization_code", code=code, code_verifier=verifier)
    assert_oauth_error(missing, 400, "invalid_grant")


def test_client_authentication_failures(http: httpx.Client) -> None:
    code, verifier = consent(http, UK)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    form["code_verifier"] = verifier
    bad_secret = token_call(http, (DEFAULT_CLIENT_ID, "wrong"), **form)
    assert_oauth_error(bad_secret, 401, "invalid_client")
    assert DEFAULT_CLIENT_SECRET not in bad_secret.text
    assert_oauth_error(token_call(http, ("nobody", "x"), **form), 401, "invalid_client")
    assert_oauth_error(http.post("/connect/token", data=form), 401, "invalid_client")
    # Failed client authentication did not spend the code.
    assert exchange(http, code, verifier).status_code == 200


def test_unsupported_grant_type(http: httpx.Client) -> None:
    answer = token_call(http, grant_type="client_credentials")
    assert_oauth_error(answer, 400, "unsupported_grant_type")


# -- refresh and revocation --------------------------------------------------------------------
def refresh(http: httpx.Client, token: str) -> httpx.Response:
    return token_call(http, grant_type="refresh_token", refresh_token=token)


def test_refresh_rotates_and_the_old_refresh_token_dies(http: httpx.Client) -> None:
    first = tokens_for(http, f"{UK},{US}")
    second = refresh(http, first["refresh_token"])
    assert second.status_code == 200, second.text
    validate_schema(SPEC, "AccessToken", second.json())
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert new["access_token"] != first["access_token"]
    assert_oauth_error(refresh(http, first["refresh_token"]), 400, "invalid_grant")
    assert refresh(http, first["refresh_token"]).json() == {"error": "invalid_grant"}
    # Same consent: same tenants and authentication event.
    event = claims(first["access_token"])["authentication_event_id"]
    assert claims(new["access_token"])["authentication_event_id"] == event
    assert sorted(c["tenantName"] for c in connections(http, new["access_token"]).json()) == [
        UK,
        US,
    ]
    third = refresh(http, new["refresh_token"])
    assert third.status_code == 200
    state = http.get("/_sandbox/state").json()
    assert (state["refreshes"], state["refresh_calls"], state["tokens_issued"]) == (2, 4, 3)


def test_concurrent_refreshes_of_one_token_give_exactly_one_winner(
    http: httpx.Client, xero_server: ServerHandle
) -> None:
    token = tokens_for(http, UK)["refresh_token"]
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def race() -> None:
        with httpx.Client(base_url=xero_server.url, timeout=10) as own:
            barrier.wait()
            statuses.append(refresh(own, token).status_code)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 400, 400, 400, 400, 400]


def test_refresh_token_unused_for_sixty_days_expires(http: httpx.Client) -> None:
    tokens = tokens_for(http, UK)
    advance(http, 59 * 86_400)
    rotated = refresh(http, tokens["refresh_token"])
    assert rotated.status_code == 200  # use resets the 60 days
    advance(http, 59 * 86_400)
    again = refresh(http, rotated.json()["refresh_token"])
    assert again.status_code == 200
    advance(http, 60 * 86_400 + 1)
    assert_oauth_error(refresh(http, again.json()["refresh_token"]), 400, "invalid_grant")


def test_refresh_token_of_another_client_is_refused() -> None:
    app = create_app()
    app.state.sandbox.apps["second-app"] = "second-secret"
    with run_in_thread(app) as handle, httpx.Client(base_url=handle.url) as http:
        theirs = http.post("/_sandbox/grant", json={"orgs": [UK], "client_id": "second-app"})
        token = theirs.json()["refresh_token"]
        assert claims(theirs.json()["access_token"])["client_id"] == "second-app"
        assert_oauth_error(refresh(http, token), 400, "invalid_grant")
        mine = token_call(
            http, ("second-app", "second-secret"), grant_type="refresh_token", refresh_token=token
        )
        assert mine.status_code == 200, mine.text


def test_revocation_ends_the_grant_and_its_connections(http: httpx.Client) -> None:
    kept = tokens_for(http, US)
    tokens = tokens_for(http, UK)
    revoked = http.post(
        "/connect/revocation",
        data={"token": tokens["refresh_token"]},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    assert revoked.status_code == 200
    assert_oauth_error(refresh(http, tokens["refresh_token"]), 400, "invalid_grant")
    assert connections(http, tokens["access_token"]).status_code == 401
    assert [c["tenantName"] for c in connections(http, kept["access_token"]).json()] == [US]
    unknown = http.post(
        "/connect/revocation",
        data={"token": "nope"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    assert unknown.status_code == 200  # RFC 7009
    bad_client = http.post("/connect/revocation", data={"token": kept["refresh_token"]})
    assert_oauth_error(bad_client, 401, "invalid_client")
    assert refresh(http, kept["refresh_token"]).status_code == 200
    assert http.get("/_sandbox/state").json()["revocations"] == 1


# -- connections -------------------------------------------------------------------------------
def test_connections_filter_by_auth_event_and_delete(http: httpx.Client) -> None:
    first = tokens_for(http, UK)
    second = tokens_for(http, US)
    event1 = claims(first["access_token"])["authentication_event_id"]
    event2 = claims(second["access_token"])["authentication_event_id"]
    assert event1 != event2
    everything = connections(http, second["access_token"]).json()
    assert sorted(c["tenantName"] for c in everything) == [UK, US]  # the user's connections
    only_first = connections(http, second["access_token"], authEventId=event1).json()
    assert [c["tenantName"] for c in only_first] == [UK]
    none = connections(
        http, second["access_token"], authEventId="00000000-0000-0000-0000-000000000000"
    )
    assert none.json() == []

    bearer = {"Authorization": f"Bearer {second['access_token']}"}
    target = only_first[0]["id"]
    deleted = http.delete(f"/connections/{target}", headers=bearer)
    assert deleted.status_code == 204 and deleted.content == b""
    validate_response(SPEC, "/Connections/{id}", "delete", 204, None)
    assert [c["tenantName"] for c in connections(http, second["access_token"]).json()] == [US]
    assert http.delete(f"/connections/{target}", headers=bearer).status_code == 404
    assert http.delete(f"/connections/{target}").status_code == 401


def test_reconsent_replaces_the_connection_to_the_same_tenant(http: httpx.Client) -> None:
    tokens_for(http, UK)
    again = tokens_for(http, f"{UK},{US}")
    found = connections(http, again["access_token"]).json()
    assert sorted(c["tenantName"] for c in found) == [UK, US]
    event = claims(again["access_token"])["authentication_event_id"]
    assert {c["authEventId"] for c in found} == {event}


def test_connections_need_a_valid_unexpired_token(http: httpx.Client) -> None:
    tokens = tokens_for(http, UK)
    assert http.get("/connections").status_code == 401
    assert http.get("/connections", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    forged = tokens["access_token"][:-4] + "AAAA"
    assert connections(http, forged).status_code == 401
    advance(http, 1799)
    assert connections(http, tokens["access_token"]).status_code == 200
    advance(http, 2)
    expired = connections(http, tokens["access_token"])
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"].startswith("Bearer")
    assert expired.json()["Status"] == 401
    fresh = refresh(http, tokens["refresh_token"]).json()
    assert connections(http, fresh["access_token"]).status_code == 200


# -- Authlib, a real OAuth client --------------------------------------------------------------
def test_authlib_oauth2_client_completes_the_code_flow(xero_server: ServerHandle) -> None:
    scope = "openid offline_access accounting.invoices"
    with OAuth2Client(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        scope=scope,
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    ) as client:
        verifier = secrets.token_urlsafe(48)
        url, state = client.create_authorization_url(
            f"{xero_server.url}/identity/connect/authorize", code_verifier=verifier
        )
        with httpx.Client() as browser:
            browser.post(f"{xero_server.url}/_sandbox/reset")
            hop = browser.get(f"{url}&{urlencode({'sandbox_consent': UK})}")
        assert hop.status_code == 302
        token = client.fetch_token(
            f"{xero_server.url}/connect/token",
            authorization_response=hop.headers["location"],
            code_verifier=verifier,
            state=state,
        )
        assert token["token_type"] == "Bearer" and token["expires_at"] > time.time()
        event = claims(token["access_token"])["authentication_event_id"]
        found = client.get(f"{xero_server.url}/connections", params={"authEventId": event})
        assert found.status_code == 200
        assert [c["tenantName"] for c in found.json()] == [UK]
        renewed = client.refresh_token(f"{xero_server.url}/connect/token")
        assert renewed["refresh_token"] != token["refresh_token"]
        assert client.get(f"{xero_server.url}/connections").status_code == 200


# -- control endpoints -------------------------------------------------------------------------
def test_control_grant_state_clock_and_reset(http: httpx.Client) -> None:
    granted = http.post("/_sandbox/grant", json={"orgs": [UK, US]})
    assert granted.status_code == 200
    body = granted.json()
    state = http.get("/_sandbox/state").json()
    assert body["tenant_ids"] == sorted(o["tenantId"] for o in state["organisations"])
    assert state["apps"] == [DEFAULT_CLIENT_ID] and DEFAULT_CLIENT_SECRET not in json.dumps(state)
    assert state["tokens_issued"] == 1 and state["connections"] == 2
    assert isinstance(state["calls_per_tenant"], dict)
    assert connections(http, body["access_token"]).status_code == 200

    assert http.post("/_sandbox/clock", json={"advance_seconds": -5}).status_code == 400
    assert http.post("/_sandbox/clock", json={"advance_seconds": "x"}).status_code == 400
    before = http.get("/_sandbox/state").json()["clock"]
    advance(http, 3600)
    assert http.get("/_sandbox/state").json()["clock"] - before >= 3600
    assert connections(http, body["access_token"]).status_code == 401

    assert http.post("/_sandbox/grant", json={"orgs": ["Nope"]}).status_code == 400
    assert http.post("/_sandbox/reset").status_code == 200
    after = http.get("/_sandbox/state").json()
    assert (after["tokens_issued"], after["connections"], after["refresh_calls"]) == (0, 0, 0)
    assert after["clock"] - time.time() < 60
    assert_oauth_error(refresh(http, body["refresh_token"]), 400, "invalid_grant")
    # Tenant ids are stable across resets and apps.
    assert after["organisations"] == state["organisations"]
    other = create_app().state.sandbox
    assert other.orgs == {o["name"]: o["tenantId"] for o in state["organisations"]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sandbox/clock", b"not json"),
        ("/_sandbox/clock", b"[1]"),
        ("/_sandbox/grant", b"{"),
        ("/_sandbox/grant", b'{"orgs": "Demo Company (UK)"}'),
        ("/_sandbox/grant", b'{"orgs": ["Demo Company (UK)"], "client_id": "stranger"}'),
    ],
)
def test_control_endpoints_refuse_bad_bodies(http: httpx.Client, path: str, body: bytes) -> None:
    answer = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 401) and "error" in answer.json()
    assert http.get("/_sandbox/state").json()["tokens_issued"] == 0


def test_python_api_authenticate_bearer_and_extra_state() -> None:
    app = create_app(orgs=["Org A", "Org B"])
    sandbox = app.state.sandbox
    sandbox.extra_state.append(lambda: {"invoices": 7})
    answer = sandbox.grant(["Org B"])
    grant = sandbox.authenticate_bearer(answer["access_token"])
    assert grant.tenant_ids == {sandbox.orgs["Org B"]} == set(answer["tenant_ids"])
    assert grant.client_id == DEFAULT_CLIENT_ID and grant.user_id
    assert sandbox.state()["invoices"] == 7
    sandbox.clock.advance(1801)
    from sandbox.xero.state import InvalidToken

    with pytest.raises(InvalidToken):
        sandbox.authenticate_bearer(answer["access_token"])


def test_module_entry_point_serves_the_sandbox() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "sandbox.xero", "--port", str(port), "--orgs", "Org A,Org B"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/_sandbox/state", timeout=2).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
        assert [o["name"] for o in state["organisations"]] == ["Org A", "Org B"]
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}" in output
