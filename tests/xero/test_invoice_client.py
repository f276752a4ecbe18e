"""XeroAccountingClient against the real Xero xero_sandbox app over loopback HTTP.

Every request body and every answer in these tests passes through an httpx event hook that
validates it against Xero's own OpenAPI spec (``xero_accounting.yaml``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from config.errors import (
    AuthError,
    NotEditable,
    NotFound,
    RateLimitError,
    TransientError,
    ValidationFailed,
)
from sandbox.serve import ServerHandle
from sandbox.xero.state import DEFAULT_ORGS
from tasks.retries import with_retries
from tasks.xero.invoices import InvoiceResult, XeroAccountingClient
from tests.sandbox.openapi import validate_response, validate_schema

SPEC = "xero_accounting.yaml"
LOCKED = "The document date cannot be before the period lock date, currently set at 01-Feb-2025"
LOCKED_EDIT = "Document cannot be edited as it is currently dated before period lock date"
NOT_EDITABLE = "Invoice not of valid status for modification"
CENT = Decimal("0.01")


def with_vat(amount: Decimal) -> Decimal:
    """``amount`` plus 20 % VAT (OUTPUT2, account 200's default in Demo Company (UK))."""
    return amount + (amount * Decimal("0.2")).quantize(CENT, ROUND_HALF_UP)


def _spec_path(path: str) -> tuple[str, str]:
    """(spec path template, collection) for a request path like /api.xro/2.0/Invoices/<id>."""
    parts = path.split("/api.xro/2.0/", 1)[1].split("/")
    collection = parts[0]
    if len(parts) == 1:
        return f"/{collection}", collection
    id_field = "InvoiceID" if collection == "Invoices" else "CreditNoteID"
    return f"/{collection}/{{{id_field}}}", collection


def validate_exchange(response: httpx.Response) -> None:
    """Request body against the collection schema; answer against the operation's response."""
    request = response.request
    if "/api.xro/2.0/" not in request.url.path:
        return
    template, collection = _spec_path(request.url.path)
    if request.content:
        validate_schema(SPEC, collection, json.loads(request.content))
    response.read()
    body = json.loads(response.content)
    if response.status_code in (200, 400):
        validate_response(SPEC, template, request.method.lower(), response.status_code, body)
        if response.status_code == 400:  # the spec's 400 is a $ref'd response: check it here
            validate_schema(SPEC, "Error", body)
    else:  # 401/403/404/429/5xx: Xero's problem shape
        assert body["Status"] == response.status_code and body["Title"]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(event_hooks={"response": [validate_exchange]}) as client:
        yield client


@pytest.fixture
def tokens(xero_sandbox: Any) -> dict[str, Any]:
    return xero_sandbox.grant(list(DEFAULT_ORGS))


@pytest.fixture
def tenant(tokens: dict[str, Any], xero_sandbox: Any) -> str:
    # The UK organisation: the tax its accounts default to (20 % VAT) is in the expectations.
    return str(xero_sandbox.orgs["Demo Company (UK)"])


@pytest.fixture
def client(xero_server: ServerHandle, tokens: dict[str, Any], tenant: str, http: httpx.Client):
    return XeroAccountingClient(xero_server.url, tenant, lambda: tokens["access_token"], http=http)


def state(xero_server: ServerHandle) -> dict[str, Any]:
    return httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]


def invoice(number: str, *lines: tuple[str, str], **extra: Any) -> dict[str, Any]:
    items = [
        {"Description": f"usage {i}", "Quantity": Decimal(q), "UnitAmount": Decimal(u),
         "AccountCode": "200"}
        for i, (q, u) in enumerate(lines or [("1", "10.00")])
    ]  # fmt: skip
    return {
        "Type": "ACCREC",
        "Contact": {"Name": "Acme Ltd"},
        "InvoiceNumber": number,
        "Date": "2025-01-31",
        "DueDate": "2025-02-28",
        "LineItems": items,
        **extra,
    }


def key() -> str:
    return f"test-{uuid.uuid4()}"


def test_create_find_and_get_keep_money_exact(client: XeroAccountingClient) -> None:
    lines = [("1000.5", "0.1234"), ("3", "0.3333"), ("1", "-0.01")]
    results = client.post_invoices(
        [invoice("INV-A", *lines), invoice("INV-B")], idempotency_key=key()
    )
    assert [r.ok for r in results] == [True, True]
    assert [r.invoice_number for r in results] == ["INV-A", "INV-B"]
    expected = sum(
        (with_vat((Decimal(q) * Decimal(u)).quantize(CENT, ROUND_HALF_UP)) for q, u in lines),
        Decimal(0),
    )  # tax per line, rounded, then summed
    doc = results[0].document
    assert doc["Total"] == expected and isinstance(doc["Total"], Decimal)
    assert doc["LineItems"][0]["UnitAmount"] == Decimal("0.1234")  # unitdp=4 kept
    assert doc["LineItems"][0]["LineAmount"] == Decimal("123.46")
    assert doc["AmountDue"] == expected and doc["Status"] == "DRAFT"

    found = client.find_invoices_by_number(["INV-A", "INV-B", "INV-MISSING"])
    assert set(found) == {"INV-A", "INV-B"}
    assert found["INV-A"]["InvoiceID"] == results[0].invoice_id
    fetched = client.get_invoice(results[0].invoice_id)
    assert fetched["Total"] == expected
    assert fetched["Date"] == "/Date(1738281600000+0000)/"


def test_floats_are_refused_before_anything_is_sent(
    client: XeroAccountingClient, xero_server: ServerHandle
) -> None:
    bad = invoice("INV-F")
    bad["LineItems"][0]["UnitAmount"] = 0.1
    with pytest.raises(TypeError):
        client.post_invoices([bad], idempotency_key=key())
    assert state(xero_server)["calls"] == {}


def test_each_invoice_gets_its_own_verdict(
    client: XeroAccountingClient, xero_server, tenant
) -> None:
    client.post_invoices([invoice("INV-1")], idempotency_key=key())
    no_contact = invoice("INV-3")
    del no_contact["Contact"]
    results = client.post_invoices(
        [
            invoice("INV-2"),
            invoice("INV-1"),
            invoice("INV-NEG", ("1", "-5.00")),
            no_contact,
        ],
        idempotency_key=key(),
    )
    assert results[0].ok
    assert results[1].errors == ["Invoice # must be unique."]
    assert any("negative" in m for m in results[2].errors)
    assert results[3].errors == ["A Contact must be specified for this type of transaction"]
    with pytest.raises(ValidationFailed) as refused:
        results[1].raise_for_errors()
    assert refused.value.messages == ["Invoice # must be unique."]
    assert results[1].not_editable_reason is None
    stored = state(xero_server)["documents"][tenant]
    assert stored["Invoices_count"] == 2 and set(stored["Invoices"]) == {"INV-1", "INV-2"}


def test_draft_and_unpaid_authorised_edit_then_void(
    client: XeroAccountingClient, xero_server, tenant
) -> None:
    (created,) = client.post_invoices([invoice("INV-E")], idempotency_key=key())
    edited = client.update_invoice(
        created.invoice_id, {"LineItems": invoice("x", ("2", "7.50"))["LineItems"]},
        idempotency_key=key(),
    )  # fmt: skip
    assert edited.invoice_id == created.invoice_id and edited.document["Total"] == Decimal("18.00")
    client.update_invoice(created.invoice_id, {"Status": "AUTHORISED"}, idempotency_key=key())
    # Like Xero, an AUTHORISED invoice without payments takes changes: the lines sent replace
    # the old ones and the totals follow.
    renamed = client.update_invoice(created.invoice_id, {"Reference": "new"}, idempotency_key=key())
    assert renamed.document["Reference"] == "new" and renamed.status == "AUTHORISED"
    relined = client.update_invoice(
        created.invoice_id, {"LineItems": invoice("x", ("1", "5.00"))["LineItems"]},
        idempotency_key=key(),
    )  # fmt: skip
    assert len(relined.document["LineItems"]) == 1 and relined.document["Total"] == Decimal("6.00")
    with pytest.raises(NotEditable) as refused:  # voided, never deleted
        client.update_invoice(created.invoice_id, {"Status": "DELETED"}, idempotency_key=key())
    assert refused.value.reason == NOT_EDITABLE
    voided = client.update_invoice(created.invoice_id, {"Status": "VOIDED"}, idempotency_key=key())
    assert voided.status == "VOIDED"
    with pytest.raises(NotEditable):
        client.update_invoice(created.invoice_id, {"Status": "DRAFT"}, idempotency_key=key())
    entry = state(xero_server)["documents"][tenant]["Invoices"]["INV-E"]
    assert entry["Status"] == "VOIDED" and entry["Version"] == 6


def test_post_updates_by_number_put_only_creates(client: XeroAccountingClient, xero_server) -> None:
    (first,) = client.post_invoices([invoice("INV-U")], idempotency_key=key())
    (again,) = client.post_invoices(
        [invoice("INV-U", ("3", "1.00"))], idempotency_key=key(), update=True
    )
    assert again.ok and again.invoice_id == first.invoice_id
    assert again.document["Total"] == with_vat(Decimal("3.00"))
    (dup,) = client.post_invoices([invoice("INV-U")], idempotency_key=key())
    assert dup.errors == ["Invoice # must be unique."]


def test_paid_invoice_refuses_every_change(client: XeroAccountingClient, xero_server) -> None:
    (created,) = client.post_invoices(
        [invoice("INV-P", Status="AUTHORISED")], idempotency_key=key()
    )
    paid = httpx.post(f"{xero_server.url}/_sandbox/invoices/{created.invoice_id}/pay")
    assert paid.status_code == 200
    assert client.get_invoice(created.invoice_id)["AmountDue"] == Decimal("0.00")
    (result,) = client.post_invoices(
        [invoice("INV-P", ("2", "1.00"))], idempotency_key=key(), update=True
    )
    assert result.not_editable_reason == NOT_EDITABLE
    with pytest.raises(NotEditable):
        result.raise_for_errors()
    with pytest.raises(NotEditable):
        client.update_invoice(created.invoice_id, {"Status": "VOIDED"}, idempotency_key=key())


def test_lock_date_refuses_approved_documents_on_or_before_it(
    client: XeroAccountingClient, xero_server, tenant
) -> None:
    (early,) = client.post_invoices([invoice("INV-L0", Status="AUTHORISED")], idempotency_key=key())
    locked = httpx.post(
        f"{xero_server.url}/_sandbox/tenants/{tenant}/lock-date", json={"date": "2025-02-01"}
    )
    assert locked.status_code == 200
    before, on, after, draft = client.post_invoices(
        [
            invoice("INV-L1", Status="AUTHORISED"),
            invoice("INV-L2", Status="AUTHORISED", Date="2025-02-01"),
            invoice("INV-L3", Status="AUTHORISED", Date="2025-02-02"),
            invoice("INV-L4"),  # a draft may still be dated in a locked period
        ],
        idempotency_key=key(),
    )
    assert before.not_editable_reason == on.not_editable_reason == LOCKED
    assert after.ok and draft.ok
    with pytest.raises(NotEditable) as refused:
        client.update_invoice(early.invoice_id, {"Reference": "late"}, idempotency_key=key())
    assert refused.value.reason == LOCKED_EDIT


def test_batch_size_and_key_length_are_checked(client: XeroAccountingClient, xero_server) -> None:
    with pytest.raises(ValueError):
        client.post_invoices([invoice(f"N{i}") for i in range(51)], idempotency_key=key())
    with pytest.raises(ValueError):
        client.post_invoices([invoice("N")], idempotency_key="k" * 129)
    assert state(xero_server)["calls"] == {}
    results = client.post_invoices([invoice(f"N{i}") for i in range(50)], idempotency_key="k" * 128)
    assert len(results) == 50 and all(r.ok for r in results)


def test_http_failures_map_onto_the_error_hierarchy(
    client: XeroAccountingClient, xero_server: ServerHandle, tokens, http
) -> None:
    faults = {"next": ["429", "500", "503"]}
    assert httpx.post(f"{xero_server.url}/_sandbox/faults", json=faults).status_code == 200
    with pytest.raises(RateLimitError) as limited:
        client.find_invoices_by_number(["X"])
    assert (limited.value.retry_after, limited.value.problem) == (1.0, "minute")
    for _ in range(2):
        with pytest.raises(TransientError) as failed:
            client.find_invoices_by_number(["X"])
        assert not isinstance(failed.value, RateLimitError)
    with pytest.raises(NotFound):
        client.get_invoice(str(uuid.uuid4()))
    with pytest.raises(AuthError):
        XeroAccountingClient(
            xero_server.url, client.tenant_id, lambda: "nope", http=http
        ).get_invoice(str(uuid.uuid4()))
    stranger = XeroAccountingClient(
        xero_server.url, str(uuid.uuid4()), lambda: tokens["access_token"], http=http
    )
    with pytest.raises(AuthError):
        stranger.find_invoices_by_number(["X"])
    httpx.post(f"{xero_server.url}/_sandbox/faults", json={"slow_rate": 1, "slow_seconds": 1})
    slow = XeroAccountingClient(
        xero_server.url, client.tenant_id, lambda: tokens["access_token"], timeout=0.2
    )
    with pytest.raises(TransientError, match="timed out"):
        slow.find_invoices_by_number(["X"])
    slow.close()


def test_minute_limit_answers_429_with_retry_after(
    client: XeroAccountingClient, xero_server
) -> None:
    httpx.post(f"{xero_server.url}/_sandbox/limits", json={"per_minute": 3})
    for _ in range(3):
        client.find_invoices_by_number(["X"])
    with pytest.raises(RateLimitError) as limited:
        client.find_invoices_by_number(["X"])
    assert limited.value.problem == "minute"
    assert 1 <= limited.value.retry_after <= 60 and limited.value.retry_after == int(
        limited.value.retry_after
    )


def test_dropped_answer_then_retry_with_same_key_stores_once(
    client: XeroAccountingClient, xero_server: ServerHandle, tenant: str
) -> None:
    httpx.post(f"{xero_server.url}/_sandbox/faults", json={"next": ["drop_after_store"]})
    attempts: list[tuple[int, str]] = []
    same_key = key()
    results = with_retries(
        lambda: client.post_invoices([invoice("INV-D")], idempotency_key=same_key),
        max_attempts=3,
        base_delay=0.01,
        max_delay=0.05,
        on_retry=lambda n, err, delay: attempts.append((n, type(err).__name__)),
    )
    assert attempts == [(1, "TransientError")]
    assert results[0].ok
    snapshot = state(xero_server)
    assert snapshot["documents"][tenant]["Invoices_count"] == 1
    assert snapshot["idempotent_replays"] == 1
    assert snapshot["faults"]["injected"] == {"drop_after_store": 1}


def test_same_key_with_another_body_is_refused(client: XeroAccountingClient, xero_server) -> None:
    same_key = key()
    client.post_invoices([invoice("INV-K1")], idempotency_key=same_key)
    with pytest.raises(ValidationFailed, match="different request"):
        client.post_invoices([invoice("INV-K2")], idempotency_key=same_key)


def test_credit_notes_share_the_same_path(
    client: XeroAccountingClient, xero_server, tenant
) -> None:
    note = {
        "Type": "ACCRECCREDIT",
        "Contact": {"Name": "Acme Ltd"},
        "CreditNoteNumber": 'CN-"1"',
        "Date": "2025-01-31",
        "LineItems": [{"Description": "refund", "Quantity": Decimal("2"),
                       "UnitAmount": Decimal("4.125"), "AccountCode": "200"}],
    }  # fmt: skip
    (created,) = client.post_credit_notes([note], idempotency_key=key())
    assert created.ok and created.document["Total"] == with_vat(Decimal("8.25"))
    (dup,) = client.post_credit_notes([note], idempotency_key=key())
    assert dup.errors == ["Credit Note # must be unique."]
    found = client.find_credit_notes_by_number(['CN-"1"', "CN-404"])
    assert list(found) == ['CN-"1"'] and found['CN-"1"']["CreditNoteID"] == created.invoice_id
    assert client.get_credit_note(created.invoice_id)["RemainingCredit"] == Decimal("9.90")
    updated = client.update_credit_note(
        created.invoice_id, {"Status": "AUTHORISED"}, idempotency_key=key()
    )
    assert updated.status == "AUTHORISED"
    assert state(xero_server)["documents"][tenant]["CreditNotes_count"] == 1


def test_documents_are_found_by_reference_the_live_one_first(client: XeroAccountingClient) -> None:
    """Xero's own numbering: no number is sent, the Reference carries the bill id; a bill whose
    first invoice was deleted has two invoices with its Reference, and the live one is found."""
    bare = {k: v for k, v in invoice("unused").items() if k != "InvoiceNumber"}
    first, other = client.post_invoices(
        [{**bare, "Reference": "bill-a"}, {**bare, "Reference": 'bill-"b"'}],
        idempotency_key=key(),
    )
    assert first.ok and first.invoice_number and first.reference == "bill-a"
    deleted = client.post_invoices(
        [{"InvoiceID": first.invoice_id, "Status": "DELETED"}], idempotency_key=key(), update=True
    )
    assert deleted[0].ok
    (again,) = client.post_invoices([{**bare, "Reference": "bill-a"}], idempotency_key=key())
    found = client.find_invoices_by_reference(["bill-a", 'bill-"b"', "bill-missing"])
    assert set(found) == {"bill-a", 'bill-"b"'}
    assert found["bill-a"]["InvoiceID"] == again.invoice_id  # not the deleted one
    assert found['bill-"b"']["InvoiceID"] == other.invoice_id
    note = {"Type": "ACCRECCREDIT", "Contact": {"Name": "Acme Ltd"}, "Reference": "bill-c",
            "LineItems": [{"Description": "refund", "Quantity": Decimal("1"),
                           "UnitAmount": Decimal("2.00"), "AccountCode": "200"}]}  # fmt: skip
    (made,) = client.post_credit_notes([note], idempotency_key=key())
    assert made.invoice_number and made.invoice_number.startswith("CN-")  # Xero's number
    assert client.find_credit_notes_by_reference(["bill-c"])["bill-c"]["CreditNoteID"] == (
        made.invoice_id
    )


def test_429_storm_is_waited_out(
    xero_server: ServerHandle, xero_sandbox: Any, tokens, tenant, http
) -> None:
    """8 threads, a 2-second "minute", a little latency: every wait is as told, nothing is
    answered while limited, never more than 5 calls at once, every invoice stored once."""
    limits = {"time_scale": 2 / 60, "per_minute": 60, "concurrent": 5}
    assert httpx.post(f"{xero_server.url}/_sandbox/limits", json=limits).status_code == 200
    httpx.post(f"{xero_server.url}/_sandbox/faults", json={"slow_rate": 1, "slow_seconds": 0.02})
    told: list[tuple[float, float]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        client = XeroAccountingClient(
            xero_server.url, tenant, lambda: tokens["access_token"], http=http
        )
        for b in range(10):
            batch = [invoice(f"S-{w}-{b}-{i}") for i in range(5)]
            batch_key = f"storm-{w}-{b}"
            waits: list[float] = []

            def on_retry(n: int, err: TransientError, delay: float, waits=waits) -> None:
                assert isinstance(err, RateLimitError) and err.retry_after is not None
                with lock:
                    told.append((err.retry_after, delay))

            try:
                results = with_retries(
                    lambda batch=batch, k=batch_key: client.post_invoices(batch, idempotency_key=k),
                    max_attempts=40,
                    base_delay=0.05,
                    max_delay=1,
                    on_retry=on_retry,
                )
                assert all(r.ok for r in results)
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert time.monotonic() - started > 2  # 80 calls cannot fit in one 2-second minute
    snapshot = state(xero_server)
    assert told, "the storm produced no 429"
    assert all(retry_after <= delay <= retry_after * 1.1 for retry_after, delay in told)
    assert snapshot["answered_while_limited"] == 0
    assert snapshot["max_concurrency"][tenant] <= 5
    assert snapshot["refused"][tenant].get("minute", 0) > 0
    assert max(snapshot["calls_per_minute"][tenant].values()) <= 60
    stored = snapshot["documents"][tenant]
    assert stored["Invoices_count"] == 400 and len(stored["Invoices"]) == 400


def test_with_retries_backs_off_and_honours_retry_after() -> None:
    sleeps: list[float] = []
    calls = iter(
        [RateLimitError("429", retry_after=2.5, problem="minute"), TransientError("500"), "done"]
    )

    def flaky() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert with_retries(flaky, max_attempts=3, base_delay=1, max_delay=8, sleep=sleeps.append) == (
        "done"
    )
    assert 2.5 <= sleeps[0] <= 2.75 and 1 <= sleeps[1] <= 2  # attempt 2: cap 2, jitter [1, 2]


def test_with_retries_gives_up_and_passes_permanent_errors() -> None:
    sleeps: list[float] = []
    count = 0

    def always_down() -> None:
        nonlocal count
        count += 1
        raise TransientError("down")

    with pytest.raises(TransientError):
        with_retries(always_down, max_attempts=4, base_delay=1, max_delay=3, sleep=sleeps.append)
    assert count == 4 and len(sleeps) == 3 and 1.5 <= sleeps[2] <= 3  # capped at max_delay

    def refused() -> None:
        raise NotEditable("paid", reason="paid")

    with pytest.raises(NotEditable):
        with_retries(refused, max_attempts=4, sleep=sleeps.append)
    assert len(sleeps) == 3


def test_invoice_result_classifies_lock_and_status() -> None:
    assert InvoiceResult("i", "n", None, [LOCKED]).not_editable_reason == LOCKED
    assert InvoiceResult("i", "n", "DRAFT").ok
