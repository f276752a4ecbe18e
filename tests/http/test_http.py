"""The shared HTTP layer on its own: Retry-After, the status map, one attempt, the bearer token
and its single replay. ``httpx.MockTransport`` answers; no server, no sandbox, no Prefect."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from config.errors import (
    AuthError,
    NotEditable,
    NotFound,
    PermanentError,
    RateLimitError,
    TransientError,
    ValidationFailed,
)
from tasks.http import (
    BearerAuth,
    call,
    error_detail,
    error_for,
    new_client,
    retry_after,
    ssl_context,
    transport_error,
)
from tasks.xero.invoices import XeroAccountingClient

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    if body is None:
        content = b""
    else:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


# ---- Retry-After --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        (" 0 ", 0.0),
        ("-4", 0.0),  # never negative
        (format_datetime(datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        (format_datetime(datetime(2025, 6, 1, 11, 0, 0, tzinfo=UTC), usegmt=True), 0.0),  # past
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str, seconds: float | None) -> None:
    response = answer(429, **{"Retry-After": header})
    assert retry_after(response, now=lambda: NOW) == seconds


def test_retry_after_absent_is_none() -> None:
    assert retry_after(answer(503)) is None


# ---- the status map ------------------------------------------------------------------------------
def test_429_is_a_rate_limit_with_its_wait_and_problem() -> None:
    error = error_for(answer(429, {"Title": "Too many"}, **{"Retry-After": "7",
                      "X-Rate-Limit-Problem": "minute"}), "Xero GET /Invoices")  # fmt: skip
    assert isinstance(error, RateLimitError)
    assert (error.retry_after, error.problem) == (7.0, "minute")
    assert str(error) == "Xero GET /Invoices: HTTP 429: Too many"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_failures_and_request_timeouts_are_transient(status: int) -> None:
    error = error_for(answer(status, **{"Retry-After": "2"}), "m3ter get bill")
    assert type(error) is TransientError and error.retry_after == 2.0
    assert str(error).startswith(f"m3ter get bill: HTTP {status}")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, AuthError), (403, AuthError), (404, NotFound), (400, PermanentError),
     (409, PermanentError), (422, PermanentError)],
)  # fmt: skip
def test_refusals_map_onto_the_hierarchy(status: int, kind: type[Exception]) -> None:
    error = error_for(answer(status, {"message": "no"}), "m3ter get bill")
    assert type(error) is kind and str(error) == f"m3ter get bill: HTTP {status}: no"


def test_a_service_reads_only_the_refusals_the_map_leaves_open() -> None:
    seen: list[int] = []

    def refused(response: httpx.Response, what: str) -> ValidationFailed:
        seen.append(response.status_code)
        return ValidationFailed(f"{what}: refused", messages=["theirs"])

    for status in (400, 409, 422):
        assert isinstance(error_for(answer(status), "x", refused=refused), ValidationFailed)
    for status in (401, 403, 404, 408, 429, 500):
        assert not isinstance(error_for(answer(status), "x", refused=refused), ValidationFailed)
    assert seen == [400, 409, 422]


def test_detail_is_the_services_words_never_an_oauth_description() -> None:
    assert error_detail(answer(400, {"message": "m3ter says"})) == "m3ter says"
    assert error_detail(answer(400, {"Message": "Xero says", "Detail": "more"})) == "Xero says"
    assert error_detail(answer(404, {"Title": "Not Found", "Detail": "gone"})) == "gone"
    oauth = {"error": "invalid_grant", "error_description": "token abc123"}
    assert error_detail(answer(400, oauth)) == "invalid_grant"
    assert error_detail(answer(502, b"<html>Bad gateway</html>")) == "<html>Bad gateway</html>"
    assert error_detail(answer(400, b"x" * 500)) == "x" * 200
    assert error_detail(answer(500, {"other": 1})) == ""
    assert str(error_for(answer(500), "m3ter get bill")) == "m3ter get bill: HTTP 500"
    custom = error_for(answer(400), "x", detail=lambda r: "custom")
    assert str(custom) == "x: HTTP 400: custom"


def test_no_answer_is_transient_and_says_which() -> None:
    request = httpx.Request("GET", "http://test/x?secret=s")
    timed_out = transport_error(httpx.ReadTimeout("slow", request=request), "Xero GET /x")
    dropped = transport_error(httpx.ConnectError("refused", request=request), "Xero GET /x")
    assert str(timed_out) == "Xero GET /x: timed out (ReadTimeout)"
    assert str(dropped) == "Xero GET /x: connection failed (ConnectError)"
    assert all(type(e) is TransientError for e in (timed_out, dropped))


# ---- one attempt ---------------------------------------------------------------------------------
def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://test")


def test_call_returns_an_answer_below_400_and_raises_the_mapped_error_otherwise() -> None:
    statuses = iter([200, 503])
    with mock_client(lambda request: answer(next(statuses), {"ok": True})) as client:
        assert call(client, "GET", "/a", what="svc a").json() == {"ok": True}
        with pytest.raises(TransientError, match="svc a: HTTP 503"):
            call(client, "GET", "/a", what="svc a")


def test_call_maps_a_dropped_connection() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=request)

    with mock_client(drop) as client, pytest.raises(TransientError, match="connection failed"):
        call(client, "POST", "/a", what="svc a", content=b"{}")


def test_new_client_shares_one_tls_context() -> None:
    with new_client(timeout=3) as one, new_client(timeout=4) as two:
        assert one.timeout.read == 3 and two.timeout.read == 4
    assert ssl_context() is ssl_context()


# ---- the bearer token and its one replay ---------------------------------------------------------
class Tokens:
    """A token owner that counts what it was asked."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.asked = 0
        self.replaced: list[str] = []

    def current(self) -> str:
        self.asked += 1
        return self.tokens[0]

    def replace(self, rejected: str) -> str:
        self.replaced.append(rejected)
        if len(self.tokens) > 1:
            self.tokens.pop(0)
        return self.tokens[0]


def snapshot(request: httpx.Request) -> httpx.Request:
    """A copy as sent: a replay sends the same ``Request`` object again, with a new header."""
    return httpx.Request(
        request.method, request.url, headers=dict(request.headers), content=request.read()
    )


def serve(accepted: set[str], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(snapshot(request))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return answer(200, {"ok": True}) if token in accepted else answer(401, {"Title": "no"})

    return httpx.MockTransport(handler)


def test_bearer_token_is_added_to_every_request() -> None:
    tokens, seen = Tokens("t1"), []
    with httpx.Client(transport=serve({"t1"}, seen), auth=BearerAuth(tokens.current)) as client:
        client.get("http://test/a")
        client.get("http://test/b")
    assert [r.headers["Authorization"] for r in seen] == ["Bearer t1"] * 2
    assert tokens.asked == 2 and tokens.replaced == []


def test_a_401_asks_for_a_fresh_token_once_and_replays_the_same_request() -> None:
    tokens, seen = Tokens("stale", "fresh"), []
    auth = BearerAuth(tokens.current, tokens.replace)
    with httpx.Client(transport=serve({"fresh"}, seen)) as client:
        response = client.post(
            "http://test/Invoices", content=b'{"a": 1}', headers={"Idempotency-Key": "k"},
            auth=auth,
        )  # fmt: skip
    assert response.status_code == 200
    assert tokens.replaced == ["stale"]
    assert [r.headers["Authorization"] for r in seen] == ["Bearer stale", "Bearer fresh"]
    assert {(r.method, r.headers["Idempotency-Key"], r.content) for r in seen} == {
        ("POST", "k", b'{"a": 1}')
    }


def test_a_second_401_is_the_answer_not_another_refresh() -> None:
    tokens, seen = Tokens("stale", "also-refused", "never-asked"), []
    auth = BearerAuth(tokens.current, tokens.replace)
    with httpx.Client(transport=serve(set(), seen)) as client:
        response = client.get("http://test/a", auth=auth)
        assert response.status_code == 401
        with pytest.raises(AuthError):
            call(client, "GET", "http://test/a", what="svc a", auth=auth)
    assert tokens.replaced == ["stale", "also-refused"]  # once per call
    assert len(seen) == 4


def test_no_replay_without_a_replacement() -> None:
    same, seen = Tokens("only"), []
    with httpx.Client(transport=serve(set(), seen)) as client:
        assert client.get("http://test/a", auth=BearerAuth(same.current)).status_code == 401
        replaced_by_itself = BearerAuth(same.current, same.replace)
        assert client.get("http://test/a", auth=replaced_by_itself).status_code == 401
    assert len(seen) == 2 and same.replaced == ["only"]  # the same token is not sent again


def test_a_token_that_cannot_be_had_fails_the_call_before_sending() -> None:
    def refused() -> str:
        raise AuthError("credential needs to be reconnected")

    seen: list[httpx.Request] = []
    with httpx.Client(transport=serve({"t"}, seen)) as client, pytest.raises(AuthError):
        call(client, "GET", "http://test/a", what="svc", auth=BearerAuth(refused))
    assert seen == []


def test_the_xero_client_replays_a_refused_token_with_its_idempotency_key() -> None:
    """``XeroAccountingClient`` through the layer: a 401, one replacement, the same batch again."""
    tokens, seen = Tokens("stale", "fresh"), []

    def xero(request: httpx.Request) -> httpx.Response:
        seen.append(snapshot(request))
        if request.headers["Authorization"] != "Bearer fresh":
            return answer(401, {"Title": "Unauthorized", "Status": 401})
        return answer(200, {"Invoices": [{"InvoiceID": "i1", "InvoiceNumber": "N1",
                                          "Status": "DRAFT", "Total": 1.5}]})  # fmt: skip

    http = httpx.Client(transport=httpx.MockTransport(xero))
    with XeroAccountingClient(
        "http://xero", "tenant", tokens.current, http=http, replace_token=tokens.replace
    ) as client:
        (result,) = client.post_invoices([{"InvoiceNumber": "N1"}], idempotency_key="key-1")
    assert result.ok and result.invoice_id == "i1" and str(result.document["Total"]) == "1.5"
    assert [r.headers["Idempotency-Key"] for r in seen] == ["key-1", "key-1"]
    assert seen[0].content == seen[1].content and tokens.replaced == ["stale"]
    http.close()


def test_the_xero_client_reads_its_refusals_and_unreadable_answers() -> None:
    paid = {"ValidationErrors": [{"Message": "Invoice not of valid status for modification"}]}
    answers = iter([
        answer(400, {"Elements": [paid]}),
        answer(400, {"Message": "A validation exception occurred"}),
        answer(400, b"not json"),
        answer(200, b"not json"),
        answer(429, {"Title": "Too many"}, **{"Retry-After": "60", "X-Rate-Limit-Problem": "day"}),
    ])  # fmt: skip
    http = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    client = XeroAccountingClient("http://xero", "tenant", lambda: "t", http=http)
    with pytest.raises(NotEditable):
        client.update_invoice("i1", {}, idempotency_key="k")
    with pytest.raises(ValidationFailed) as refused:
        client.update_invoice("i1", {}, idempotency_key="k")
    assert refused.value.messages == ["A validation exception occurred"]
    with pytest.raises(ValidationFailed) as unreadable:
        client.get_invoice("i1")
    assert unreadable.value.messages == []
    with pytest.raises(TransientError, match="unreadably"):
        client.get_invoice("i1")
    with pytest.raises(RateLimitError) as limited:
        client.get_invoice("i1")
    assert (limited.value.problem, limited.value.retry_after) == ("day", 60.0)
    http.close()
