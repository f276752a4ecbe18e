"""The sandboxes restarted from their state file, over HTTP: the Xero sandbox keeps its tokens
(a rotated refresh token still refreshes, a spent one still does not), its documents with the
same totals, payments, lock dates and Idempotency-Key answers; the m3ter sandbox keeps its
bills, mappings, changes and tokens. Started fresh, all of it is gone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import jsonwire
from sandbox.m3ter import app as m3ter_app
from sandbox.m3ter.persistence import persist_app as persist_m3ter
from sandbox.serve import run_in_thread
from sandbox.xero.app import create_app
from sandbox.xero.persistence import persist_app as persist_xero
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS

API = "/api.xro/2.0"
UK = DEFAULT_ORGS[0]


@contextmanager
def xero_from(path: Path, fresh: bool = False) -> Iterator[httpx.Client]:
    """A Xero sandbox started from ``path``, on a new port each time, stopped and saved after."""
    app = create_app()
    snapshots = persist_xero(app, path, fresh=fresh)
    server = run_in_thread(app)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield http
    finally:
        server.stop()
        snapshots.close()


def refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return http.post("/connect/token", data=form, auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))


def call(
    http: httpx.Client, method: str, path: str, token: str, tenant: str, body: Any = None, **kw
) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "xero-tenant-id": tenant,
        **kw.pop("headers", {}),
    }
    content = jsonwire.dumps(body) if body is not None else None
    return http.request(method, API + path, content=content, headers=headers, **kw)


def money(document: dict[str, Any]) -> dict[str, Any]:
    """What a document says it is worth, as written (``10.0`` is not ``10.00`` here)."""
    keys = ("SubTotal", "TotalTax", "Total", "AmountPaid", "AmountDue", "Status", "InvoiceNumber")
    lines = [
        (str(line["UnitAmount"]), str(line["LineAmount"]), str(line["TaxAmount"]))
        for line in document["LineItems"]
    ]
    return {**{k: str(document[k]) for k in keys}, "lines": lines}


def test_a_restarted_xero_sandbox_keeps_tokens_documents_payments_and_lock_dates(tmp_path):
    path = tmp_path / "sandbox" / "xero.json"
    invoice = {
        "Type": "ACCREC",
        "Contact": {"Name": "Acme Ltd", "ContactNumber": "ACME-1"},
        "InvoiceNumber": "BILL-1",
        "Date": "2025-03-01",
        "Status": "AUTHORISED",
        "LineItems": [
            {"Description": "usage", "Quantity": Decimal("3"), "UnitAmount": Decimal("0.3333"),
             "AccountCode": "202", "TaxType": "OUTPUT2"},
            {"Description": "standing", "Quantity": Decimal("1"), "UnitAmount": Decimal("49.99"),
             "AccountCode": "201", "TaxType": "OUTPUT2"},
        ],
    }  # fmt: skip
    key = {"Idempotency-Key": "integration-1:create:BILL-1:v1"}
    with xero_from(path) as http:
        granted = http.post("/_sandbox/grant", json={"orgs": [UK]}).json()
        tenant = granted["tenant_ids"][0]
        rotated = refresh(http, granted["refresh_token"]).json()  # the first refresh token spent
        access = rotated["access_token"]
        made = call(http, "PUT", "/Invoices", access, tenant, {"Invoices": [invoice]},
                    params={"unitdp": "4"}, headers=key)  # fmt: skip
        assert made.status_code == 200, made.text
        (document,) = jsonwire.loads(made.content)["Invoices"]
        payment = {"Invoice": {"InvoiceID": document["InvoiceID"]}, "Account": {"Code": "090"},
                   "Date": "2025-03-05", "Amount": Decimal("10.01")}  # fmt: skip
        paid = call(http, "PUT", "/Payments", access, tenant, {"Payments": [payment]})
        assert paid.status_code == 200, paid.text
        lock = http.post(f"/_sandbox/tenants/{tenant}/lock-date", json={"date": "2025-01-31"})
        assert lock.status_code == 200
        url = f"/Invoices/{document['InvoiceID']}"
        shown = call(http, "GET", url, access, tenant, params={"unitdp": "4"})
        before = money(jsonwire.loads(shown.content)["Invoices"][0])
        assert (before["AmountPaid"], before["Status"]) == ("10.01", "AUTHORISED")
        assert before["lines"][0][0] == "0.3333"
        # Saved a moment after the requests, before any stop: a killed serve loses at most that.
        deadline = time.monotonic() + 5
        while "BILL-1" not in path.read_text():
            assert time.monotonic() < deadline, "the document was not saved within 5 s"
            time.sleep(0.1)

    with xero_from(path) as http:
        # The pre-restart access token still works, and the document is as it was.
        got = call(http, "GET", f"/Invoices/{document['InvoiceID']}", access, tenant,
                   params={"unitdp": "4"})  # fmt: skip
        assert got.status_code == 200, got.text
        assert money(jsonwire.loads(got.content)["Invoices"][0]) == before
        # The rotated refresh token refreshes; the one spent before the restart still does not.
        assert refresh(http, granted["refresh_token"]).json()["error"] == "invalid_grant"
        again = refresh(http, rotated["refresh_token"])
        assert again.status_code == 200, again.text
        fresh_access = again.json()["access_token"]
        auth = {"Authorization": f"Bearer {fresh_access}"}
        linked = http.get("/connections", headers=auth).json()
        assert [c["tenantId"] for c in linked] == [tenant]
        # The same request with the same key replays the first answer: no second document.
        replay = call(http, "PUT", "/Invoices", fresh_access, tenant, {"Invoices": [invoice]},
                      params={"unitdp": "4"}, headers=key)  # fmt: skip
        assert replay.content == made.content
        listed = call(http, "GET", "/Invoices", fresh_access, tenant).json()["Invoices"]
        assert [i["InvoiceNumber"] for i in listed] == ["BILL-1"]
        state = http.get("/_sandbox/state").json()
        assert state["accounting"]["lock_dates"] == {tenant: "2025-01-31"}
        assert state["accounting"]["payments"] == {tenant: 1}
        late = dict(invoice, InvoiceNumber="BILL-0", Date="2025-01-15")
        refused = call(http, "PUT", "/Invoices", fresh_access, tenant, {"Invoices": [late]})
        assert refused.status_code == 400 and "period lock date" in refused.text
        contacts = call(http, "GET", "/Contacts", fresh_access, tenant).json()["Contacts"]
        assert "Acme Ltd" in [c["Name"] for c in contacts]
        refreshed = again.json()

    with xero_from(path, fresh=True) as http:
        assert refresh(http, refreshed["refresh_token"]).json()["error"] == "invalid_grant"
        assert call(http, "GET", "/Invoices", fresh_access, tenant).status_code == 401
        granted = http.post("/_sandbox/grant", json={"orgs": [UK]}).json()
        token = granted["access_token"]
        assert call(http, "GET", "/Invoices", token, tenant).json()["Invoices"] == []
        assert http.get("/_sandbox/state").json()["accounting"]["lock_dates"] == {}
    assert "BILL-1" not in path.read_text()  # the fresh start replaced the file


@contextmanager
def m3ter_from(path: Path, fresh: bool = False, seed: int = 1) -> Iterator[httpx.Client]:
    app = m3ter_app.create_app(seed=seed, accounts=4, bills_per_account=2)
    snapshots = persist_m3ter(app, path, fresh=fresh)
    server = run_in_thread(app)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield http
    finally:
        server.stop()
        snapshots.close()


def m3ter_token(http: httpx.Client) -> str:
    answer = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(m3ter_app.DEFAULT_CLIENT_ID, m3ter_app.DEFAULT_CLIENT_SECRET),
    )
    return answer.json()["access_token"]


def bills(http: httpx.Client, token: str) -> dict[str, dict[str, Any]]:
    org = m3ter_app.DEFAULT_ORG_ID
    answer = http.get(f"/organizations/{org}/bills", params={"pageSize": 200},
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return {b["id"]: b for b in jsonwire.loads(answer.content)["data"]}


def test_a_restarted_m3ter_sandbox_keeps_its_bills_changes_mappings_and_tokens(tmp_path):
    path = tmp_path / "m3ter.json"
    with m3ter_from(path) as http:
        token = m3ter_token(http)
        first = bills(http, token)
        bill_id = next(iter(first))
        regenerated = http.post(f"/_sandbox/bills/{bill_id}/regenerate").json()
        added = http.post("/_sandbox/accounts/bulk", json={"count": 1, "billsPerAccount": 1})
        (new_account,) = added.json()["ids"]
        line = {"subtotal": Decimal("12.3450"), "lineItemType": "USAGE"}
        given = {"accountId": new_account, "billDate": "2025-06-01", "lineItems": [line]}
        given_ids = http.post("/_sandbox/bills/bulk", content=jsonwire.dumps({"bills": [given]}))
        (given_id,) = given_ids.json()["ids"]
        mapping = http.post(
            "/_sandbox/mappings", json={"m3terId": new_account, "externalId": "X-9"}
        )
        assert mapping.status_code == 201
        before = bills(http, token)
        state = http.get("/_sandbox/state").json()
    assert before[bill_id]["version"] == regenerated["version"] == first[bill_id]["version"] + 1

    with m3ter_from(path) as http:
        assert bills(http, token) == before  # same ids, versions, amounts, last-modified times
        after = http.get("/_sandbox/state").json()
        for key in ("accounts", "bills", "billsByStatus", "mappings"):
            assert after[key] == state[key]
        assert str(bills(http, token)[given_id]["lineItems"][0]["subtotal"]) == "12.3450"
        assert m3ter_token(http) != token  # a new token still works alongside

    with m3ter_from(path, fresh=True) as http:
        assert (
            http.get(
                f"/organizations/{m3ter_app.DEFAULT_ORG_ID}/bills",
                headers={"Authorization": f"Bearer {token}"},
            ).status_code
            == 401
        )
        regenerated_anew = bills(http, m3ter_token(http))
        assert regenerated_anew[bill_id]["version"] == first[bill_id]["version"]
        assert len(regenerated_anew) == len(first)


def test_a_state_file_of_another_seed_is_refused_and_left_alone(tmp_path, capsys):
    from sandbox.m3ter.__main__ import main

    path = tmp_path / "m3ter.json"
    with m3ter_from(path, seed=1):
        pass
    saved = path.read_text()
    with pytest.raises(SystemExit) as stopped:
        main(["--seed", "2", "--state-file", str(path)])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "seed 1 (now 2)" in error and str(path) in error and "--fresh" in error
    assert path.read_text() == saved
    assert json.loads(saved)["config"]["seed"] == 1
