"""Token endpoints through the shared layer, for Xero and m3ter alike: one mapping of OAuth
answers onto the project's errors. ``httpx.MockTransport`` plays the token endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from config.errors import AuthError, PermanentError, RateLimitError, TransientError
from tasks.oauth_client import OAuth2Client, oauth_client, oauth_error, token_error, token_errors

TOKEN_URL = "http://identity/token"


def answer(status: int, body: object, **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=raw, headers=headers)


def endpoint(*answers: httpx.Response) -> Callable[[], OAuth2Client]:
    queue = list(answers)

    def client() -> OAuth2Client:
        return oauth_client(
            "svc token",
            timeout=5,
            client_id="id",
            client_secret="secret",
            token_endpoint=TOKEN_URL,
            transport=httpx.MockTransport(lambda request: queue.pop(0)),
        )

    return client


@pytest.mark.parametrize(
    ("code", "kind"),
    [("invalid_grant", AuthError), ("invalid_client", AuthError),
     ("unauthorized_client", AuthError), ("server_error", TransientError),
     ("temporarily_unavailable", TransientError), ("invalid_request", PermanentError),
     ("unsupported_grant_type", PermanentError)],
)  # fmt: skip
def test_oauth_codes_map_once(code: str, kind: type[Exception]) -> None:
    error = oauth_error(code, "svc token")
    assert type(error) is kind and str(error).endswith(code)


def test_a_refused_answer_says_its_code_not_its_description() -> None:
    body = {"error": "invalid_grant", "error_description": "refresh token rt-123 is spent"}
    error = token_error(answer(400, body), "Xero identity")
    assert isinstance(error, AuthError) and "rt-123" not in str(error)
    assert str(error) == "Xero identity: refused the grant: invalid_grant"


def test_try_later_statuses_win_over_a_code_and_bodies_without_one_use_the_status_map() -> None:
    limited = token_error(answer(429, {"error": "slow_down"}, **{"Retry-After": "3"}), "t")
    assert isinstance(limited, RateLimitError) and limited.retry_after == 3.0
    assert type(token_error(answer(503, {"error": "invalid_grant"}), "t")) is TransientError
    assert type(token_error(answer(401, b"<html>no</html>"), "t")) is AuthError
    assert type(token_error(answer(400, b"<html>no</html>"), "t")) is PermanentError


def test_fetch_and_refresh_raise_the_mapped_error_before_authlib_reads_the_answer() -> None:
    client = endpoint(
        answer(400, {"error": "invalid_grant"}),
        answer(502, b"Bad gateway"),
        answer(200, {"access_token": "a", "token_type": "Bearer", "expires_in": 60}),
        answer(401, {"error": "invalid_client"}),
    )
    with client() as c, pytest.raises(AuthError):
        c.fetch_token(grant_type="client_credentials")
    with client() as c, pytest.raises(TransientError, match="svc token: HTTP 502"):
        c.fetch_token(grant_type="client_credentials")
    with client() as c:
        assert c.fetch_token(grant_type="client_credentials")["access_token"] == "a"
    with client() as c, pytest.raises(AuthError):
        c.refresh_token(TOKEN_URL, refresh_token="r")


def test_what_authlib_raises_itself_is_mapped_too() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    client = endpoint(answer(200, {"error": "invalid_grant"}), answer(200, b"[1, 2]"))
    with client() as c, pytest.raises(AuthError), token_errors("svc token"):
        c.fetch_token(grant_type="client_credentials")  # an error code in a 200
    with client() as c, pytest.raises(PermanentError, match="oddly"), token_errors("svc token"):
        c.fetch_token(grant_type="client_credentials")  # not a token at all
    unreachable = oauth_client("svc token", timeout=1, transport=httpx.MockTransport(refused))
    with (
        unreachable,
        pytest.raises(TransientError, match="svc token: timed out"),
        token_errors("svc token"),
    ):
        unreachable.fetch_token(TOKEN_URL, grant_type="client_credentials")
