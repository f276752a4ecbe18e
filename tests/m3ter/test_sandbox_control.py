"""The sandbox's ``/_sandbox/`` control endpoints and its token endpoint, over HTTP."""

from __future__ import annotations

from decimal import Decimal

import httpx

from sandbox.m3ter.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tasks.m3ter.client import M3terClient
from tests.m3ter.conftest import Running


def _post(server: Running, path: str, body: object | None = None) -> httpx.Response:
    r = httpx.post(f"{server.url}/_sandbox/{path}", json=body)
    r.raise_for_status()
    return r


def test_bulk_adds_mappings_approve_state_and_reset(
    client: M3terClient, m3ter_server: Running
) -> None:
    new_accounts = _post(m3ter_server, "accounts/bulk", {"count": 5, "billsPerAccount": 2})
    assert len(new_accounts.json()["ids"]) == 5
    given_account = {"name": "Given Ltd", "code": "G1"}
    given = _post(m3ter_server, "accounts/bulk", {"accounts": [given_account]})
    given_id = given.json()["ids"][0]
    assert client.get_account(given_id).name == "Given Ltd"

    bills = _post(
        m3ter_server, "bills/bulk", {"count": 4, "accountIds": [given_id], "status": "PENDING"}
    ).json()["ids"]
    assert {client.get_bill(b).status for b in bills} == {"PENDING"}
    hand_made = {
        "id": "hand-made", "accountId": given_id, "billDate": "2025-06-01", "currency": "GBP",
        "status": "APPROVED", "lineItems": [],
    }
    _post(m3ter_server, "bills/bulk", {"bills": [hand_made]})
    assert client.get_bill("hand-made").bill_date.isoformat() == "2025-06-01"

    approved = _post(m3ter_server, f"bills/{bills[0]}/approve").json()
    assert approved["status"] == "APPROVED"
    assert bills[0] in {b.id for b in client.iter_bills(status="APPROVED", account_id=given_id)}

    _post(m3ter_server, "mappings", {"m3terId": given_id, "externalId": "contact-1"})
    assert "contact-1" in {m.external_id for m in client.list_external_mappings()}

    state = httpx.get(f"{m3ter_server.url}/_sandbox/state").json()
    assert state["accounts"] == 26 and state["bills"] == 60 + 10 + 4 + 1
    assert state["counters"]["tokenRequests"] == 1

    reset = _post(m3ter_server, "reset").json()
    assert reset["accounts"] == 20 and reset["bills"] == 60


def test_regenerate_unknown_bill_is_404(m3ter_server: Running) -> None:
    r = httpx.post(f"{m3ter_server.url}/_sandbox/bills/nope/regenerate")
    assert r.status_code == 404


def test_token_endpoint_accepts_basic_and_body_credentials(m3ter_server: Running) -> None:
    url = f"{m3ter_server.url}/oauth/token"
    basic = httpx.post(
        url, data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    assert basic.status_code == 200
    assert basic.json()["token_type"] == "Bearer" and basic.json()["expires_in"] > 0
    posted = httpx.post(url, data={
        "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    })
    assert posted.status_code == 200
    wrong = httpx.post(url, data={"grant_type": "client_credentials"}, auth=("x", "y"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = httpx.post(url, data={"grant_type": "password"}, auth=("x", "y"))
    assert grant.status_code == 400


def test_money_goes_out_as_json_numbers(m3ter_server: Running) -> None:
    token = httpx.post(
        f"{m3ter_server.url}/oauth/token", data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    ).json()["access_token"]
    bill_id = m3ter_server.sandbox.bills[0].id
    r = httpx.get(
        f"{m3ter_server.url}/organizations/{m3ter_server.sandbox.org_id}/bills/{bill_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    body = r.json(parse_float=Decimal)
    assert isinstance(body["billTotal"], Decimal)
    assert body["billTotal"] == m3ter_server.sandbox.bill(bill_id)["billTotal"]
