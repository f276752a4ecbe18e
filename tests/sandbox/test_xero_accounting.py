"""The Xero Accounting API xero_sandbox over raw HTTP: Xero's shapes, rules, limits and faults.

Answers with a documented status are validated against ``xero_accounting.yaml``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from sandbox.serve import ServerHandle
from sandbox.xero.app import create_app
from sandbox.xero.state import DEFAULT_ORGS
from tests.sandbox.openapi import check_answer, request_body

SPEC = "xero_accounting.yaml"
API = "/api.xro/2.0"


@pytest.fixture
def xero(xero_server: ServerHandle, xero_sandbox: Any) -> Iterator[Xero]:
    with httpx.Client(base_url=xero_server.url) as http:
        tokens = xero_sandbox.grant(list(DEFAULT_ORGS))
        tokens["tenant_ids"] = [xero_sandbox.orgs[name] for name in DEFAULT_ORGS]  # in that order
        yield Xero(http, tokens)


class Xero:
    """Raw calls with a valid token; every exchange checked against the spec."""

    def __init__(self, http: httpx.Client, tokens: dict[str, Any]) -> None:
        self.http = http
        self.token = tokens["access_token"]
        self.tenants = list(tokens["tenant_ids"])

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        tenant: str | None = None,
        key: str | None = None,
        params: dict[str, str] | None = None,
        template: str | None = None,
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "xero-tenant-id": self.tenants[0] if tenant is None else tenant,
        }
        if key:
            headers["Idempotency-Key"] = key
        content = request_body(path.split("/")[1], body)
        response = self.http.request(
            method, API + path, content=content, headers=headers, params=params
        )
        check_answer(template or path, method, response)
        return response

    def state(self) -> dict[str, Any]:
        return self.http.get("/_sandbox/state").json()["accounting"]


def inv(number: str, unit: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {
        "Type": "ACCREC",
        "Contact": {"Name": "Acme"},
        "InvoiceNumber": number,
        "Date": "2025-03-01",
        "LineItems": [{"Description": "usage", "Quantity": 2, "UnitAmount": Decimal(unit)}],
        **extra,
    }


def test_token_and_tenant_are_checked(xero: Xero, xero_server: ServerHandle) -> None:
    bare = httpx.get(
        f"{xero_server.url}{API}/Invoices", headers={"xero-tenant-id": xero.tenants[0]}
    )
    assert bare.status_code == 401 and "Bearer" in bare.headers["WWW-Authenticate"]
    wrong = httpx.get(
        f"{xero_server.url}{API}/Invoices",
        headers={"Authorization": "Bearer forged", "xero-tenant-id": xero.tenants[0]},
    )
    assert wrong.status_code == 401 and wrong.json()["Title"] == "Unauthorized"
    assert xero.call("GET", "/Invoices", tenant=str(uuid.uuid4())).status_code == 403
    assert xero.call("GET", "/Invoices", tenant="").json()["Status"] == 403
    assert xero.state()["calls"] == {}


def test_summarized_errors_are_400_yet_valid_elements_are_stored(xero: Xero) -> None:
    answer = xero.call("PUT", "/Invoices", {"Invoices": [inv("A-1"), inv("A-1")]})
    assert answer.status_code == 400
    error = answer.json()
    assert (error["ErrorNumber"], error["Type"]) == (10, "ValidationException")
    assert error["Message"] == "A validation exception occurred"
    assert [e["ValidationErrors"] for e in error["Elements"]] == [
        [{"Message": "Invoice # must be unique."}]
    ]
    listed = xero.call("GET", "/Invoices", params={"InvoiceNumbers": "A-1"}).json()
    assert len(listed["Invoices"]) == 1  # like Xero: the valid element was stored anyway

    mixed = xero.call(
        "PUT", "/Invoices", {"Invoices": [inv("A-2"), inv("A-1")]},
        params={"summarizeErrors": "false"},
    )  # fmt: skip
    assert mixed.status_code == 200
    body = mixed.json()
    assert body["Status"] == "OK" and body["DateTimeUTC"].startswith("/Date(")
    first, second = body["Invoices"]
    assert (first["StatusAttributeString"], first["HasErrors"]) == ("OK", False)
    assert (second["StatusAttributeString"], second["HasErrors"]) == ("ERROR", True)
    assert first["Date"] == "/Date(1740787200000+0000)/"
    assert first["DateString"] == "2025-03-01T00:00:00"
    uuid.UUID(first["InvoiceID"])


def test_unit_amount_decimals_follow_unitdp(xero: Xero) -> None:
    created = xero.call(
        "PUT", "/Invoices", {"Invoices": [inv("U-1", unit="1.23456")]}, params={"unitdp": "4"}
    )
    assert '"UnitAmount":1.2346' in created.text and '"LineAmount":2.47' in created.text
    doc_id = created.json()["Invoices"][0]["InvoiceID"]
    template = "/Invoices/{InvoiceID}"
    two = xero.call("GET", f"/Invoices/{doc_id}", template=template)
    four = xero.call("GET", f"/Invoices/{doc_id}", params={"unitdp": "4"}, template=template)
    assert '"UnitAmount":1.23,' in two.text and '"UnitAmount":1.2346,' in four.text
    parsed = json.loads(four.text, parse_float=Decimal)["Invoices"][0]
    assert (parsed["SubTotal"], parsed["TotalTax"], parsed["Total"]) == (
        Decimal("2.47"), Decimal("0.00"), Decimal("2.47"),
    )  # fmt: skip
    wrong = inv("U-2")
    wrong["LineItems"][0]["LineAmount"] = Decimal("20.01")
    params = {"summarizeErrors": "false"}
    refused = xero.call("PUT", "/Invoices", {"Invoices": [wrong]}, params=params)
    (message,) = refused.json()["Invoices"][0]["ValidationErrors"]
    assert "does not match" in message["Message"]


def test_every_answer_carries_limit_headers_and_limits_bite(xero: Xero) -> None:
    ok = xero.call("GET", "/Invoices")
    assert ok.headers["X-MinLimit-Remaining"] == "59"
    assert ok.headers["X-DayLimit-Remaining"] == "4999"
    assert ok.headers["X-AppMinLimit-Remaining"] == "9999"
    xero.http.post("/_sandbox/limits", json={"per_day": 2})
    xero.call("GET", "/Invoices")
    day = xero.call("GET", "/Invoices")
    assert day.status_code == 429 and day.headers["X-Rate-Limit-Problem"] == "day"
    assert int(day.headers["Retry-After"]) > 80_000 and day.headers["X-DayLimit-Remaining"] == "0"
    xero.http.post("/_sandbox/limits", json={"per_day": 5000, "app_per_minute": 3})
    assert xero.call("GET", "/Invoices", tenant=xero.tenants[1]).status_code == 200
    app = xero.call("GET", "/Invoices", tenant=xero.tenants[1])
    assert (app.status_code, app.headers["X-Rate-Limit-Problem"]) == (429, "appminute")
    assert xero.state()["refused"] == {
        xero.tenants[0]: {"day": 1}, xero.tenants[1]: {"appminute": 1}
    }  # fmt: skip


def test_concurrency_limit(xero: Xero, xero_server: ServerHandle) -> None:
    xero.http.post("/_sandbox/faults", json={"slow_rate": 1, "slow_seconds": 0.4})
    statuses: list[int] = []

    def call() -> None:
        with httpx.Client(base_url=xero_server.url) as own:
            statuses.append(Xero(own, {"access_token": xero.token, "tenant_ids": xero.tenants})
                            .call("GET", "/Invoices").status_code)  # fmt: skip

    threads = [threading.Thread(target=call) for _ in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 5 + [429] * 2
    state = xero.state()
    assert state["max_concurrency"][xero.tenants[0]] == 5
    assert state["refused"][xero.tenants[0]] == {"concurrent": 2}


def test_scaled_minute_gives_fractional_retry_after(xero: Xero) -> None:
    assert (
        xero.http.post("/_sandbox/limits", json={"time_scale": 0.02, "per_minute": 2}).json()[
            "time_scale"
        ]
        == 0.02
    )  # a minute lasts 1.2 s
    xero.call("GET", "/Invoices")
    xero.call("GET", "/Invoices")
    limited = xero.call("GET", "/Invoices")
    assert limited.status_code == 429 and limited.headers["X-Rate-Limit-Problem"] == "minute"
    wait = float(limited.headers["Retry-After"])
    assert 0 < wait <= 1.2 and wait != int(wait)
    time.sleep(wait)
    assert xero.call("GET", "/Invoices").status_code == 200
    assert xero.state()["answered_while_limited"] == 0


def test_faults_queue_rates_and_clearing(xero: Xero) -> None:
    queued = xero.http.post("/_sandbox/faults", json={"next": ["503", "ok", "500", "429"]})
    assert queued.status_code == 200
    got = [xero.call("GET", "/Invoices").status_code for _ in range(5)]
    assert got == [503, 200, 500, 429, 200]

    def sequence() -> list[int]:
        xero.http.post("/_sandbox/faults", json={"rate_500": 0.5, "seed": 7})
        return [xero.call("GET", "/Invoices").status_code for _ in range(12)]

    first = sequence()
    assert first == sequence() and {200, 500} == set(first)
    xero.http.delete("/_sandbox/faults")
    assert {xero.call("GET", "/Invoices").status_code for _ in range(5)} == {200}
    assert xero.http.post("/_sandbox/faults", json={"rate_500": 2}).status_code == 400
    assert xero.http.post("/_sandbox/faults", json={"next": ["boom"]}).status_code == 400
    assert xero.http.post("/_sandbox/limits", json={"per_minute": 0}).status_code == 400
    assert xero.http.post("/_sandbox/limits", json={"burst": 3}).status_code == 400


def test_faults_aimed_at_endpoints_leave_the_others_alone(xero: Xero) -> None:
    aimed = {"next": ["500", "503"], "endpoints": ["GET CreditNotes"]}
    assert xero.http.post("/_sandbox/faults", json=aimed).status_code == 200
    assert [xero.call("GET", "/Invoices").status_code for _ in range(3)] == [200] * 3
    got = [xero.call("GET", "/CreditNotes").status_code for _ in range(3)]
    assert got == [500, 503, 200]
    assert xero.http.get("/_sandbox/faults").json()["endpoints"] == ["GET CreditNotes"]
    assert xero.http.post("/_sandbox/faults", json={"endpoints": "PUT"}).status_code == 400
    xero.http.delete("/_sandbox/faults")


def test_idempotency_replays_exactly_and_is_scoped(xero: Xero) -> None:
    body = {"Invoices": [inv("I-1")]}
    first = xero.call("PUT", "/Invoices", body, key="k-1")
    again = xero.call("PUT", "/Invoices", body, key="k-1")
    assert first.status_code == again.status_code == 200 and first.content == again.content
    other_tenant = xero.call("PUT", "/Invoices", body, key="k-1", tenant=xero.tenants[1])
    first_id = first.json()["Invoices"][0]["InvoiceID"]
    assert other_tenant.json()["Invoices"][0]["InvoiceID"] != first_id
    changed = xero.call("PUT", "/Invoices", {"Invoices": [inv("I-2")]}, key="k-1")
    assert changed.status_code == 400 and "different request" in changed.json()["Message"]
    assert xero.call("PUT", "/Invoices", body, key="x" * 129).status_code == 400
    state = xero.state()
    assert state["idempotent_replays"] == 1
    assert [t["Invoices_count"] for t in state["documents"].values()] == [1, 1]


def test_a_second_call_with_the_key_waits_for_the_first(xero: Xero, xero_server) -> None:
    xero.http.post("/_sandbox/faults", json={"next": ["slow"], "slow_seconds": 0.3})
    answers: list[httpx.Response] = []

    def put() -> None:
        with httpx.Client(base_url=xero_server.url) as own:
            client = Xero(own, {"access_token": xero.token, "tenant_ids": xero.tenants})
            answers.append(client.call("PUT", "/Invoices", {"Invoices": [inv("W-1")]}, key="w"))

    threads = [threading.Thread(target=put) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert xero.state()["documents"][xero.tenants[0]]["Invoices_count"] == 1


def test_lookups_control_endpoints_state_and_reset(xero: Xero, xero_sandbox: Any) -> None:
    created = xero.call("PUT", "/Invoices", {"Invoices": [inv("L-1"), inv("L-2")]}).json()
    ids = [i["InvoiceID"] for i in created["Invoices"]]
    by_id = xero.call("GET", "/Invoices", params={"IDs": ids[1]}).json()["Invoices"]
    assert [i["InvoiceNumber"] for i in by_id] == ["L-2"]
    line = {"Description": "back", "Quantity": 1, "UnitAmount": Decimal("5.00")}
    note = {"Type": "ACCRECCREDIT", "Contact": {"Name": "Acme"}, "CreditNoteNumber": "CN-9"}
    note["LineItems"] = [line]
    xero.call("PUT", "/CreditNotes", {"CreditNotes": [note]})
    where = xero.call("GET", "/CreditNotes", params={"where": 'CreditNoteNumber=="CN-9"'})
    assert [n["CreditNoteNumber"] for n in where.json()["CreditNotes"]] == ["CN-9"]
    headers = {"Authorization": f"Bearer {xero.token}", "xero-tenant-id": xero.tenants[0]}
    bad = xero.http.get(f"{API}/CreditNotes", params={"where": "Total>5"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["Type"] == "QueryParseException"
    assert xero.http.post(f"/_sandbox/invoices/{uuid.uuid4()}/pay").status_code == 404
    assert xero.http.post(f"/_sandbox/invoices/{ids[0]}/pay").json()["Status"] == "PAID"
    org = DEFAULT_ORGS[0]
    locked = xero.http.post(f"/_sandbox/tenants/{org}/lock-date", json={"date": "2030-01-01"})
    assert locked.json() == {"tenant_id": xero.tenants[0], "lock_date": "2030-01-01"}
    state = xero.state()
    mine = state["documents"][xero.tenants[0]]
    assert mine["Invoices"]["L-1"] == {
        "InvoiceID": ids[0], "Status": "PAID", "SubTotal": "20.00", "TotalTax": "0.00",
        "Total": "20.00", "Version": 1,
    }  # fmt: skip
    assert mine["CreditNotes_count"] == 1 and state["calls"][xero.tenants[0]] == 5
    assert sum(state["calls_per_minute"][xero.tenants[0]].values()) == 5
    assert state["lock_dates"] == {xero.tenants[0]: "2030-01-01"}
    xero_sandbox.reset()
    state = xero.state()
    assert state["documents"] == {} and state["calls"] == {} and state["lock_dates"] == {}


def test_time_scale_is_set_at_creation_and_survives_reset() -> None:
    xero_sandbox = create_app(time_scale=0.05).state.sandbox
    limiter = xero_sandbox.accounting.limiter
    assert limiter.config.time_scale == 0.05
    limiter.configure({"time_scale": 1, "enabled": False})
    xero_sandbox.reset()
    assert (limiter.config.time_scale, limiter.config.enabled) == (0.05, True)
