"""sync_bills end to end: m3ter sandbox → mapping → Xero sandbox, on a real Prefect server; each
behaviour checked in the Xero sandbox's stored documents and in the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from config.settings import get_settings
from flows.sync import rerun_failed_syncs, sync_bills
from store.factory import database, integration_store
from store.ledger import Ledger, Outcome
from tasks.xero.credentials import token_provider
from tasks.xero.invoices import XeroAccountingClient
from tests.flows.documents import by_bill


def xero_docs(xero_server, tenant_id: str) -> dict[str, dict[str, Any]]:
    state = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]
    tenant = state["documents"].get(tenant_id, {})
    return by_bill({**tenant.get("Invoices", {}), **tenant.get("CreditNotes", {})})


def ledger_of(integration_id: str) -> dict[str, Any]:
    return Ledger(database(get_settings())).snapshot(integration_id)


def test_every_bill_reaches_xero_once_and_a_rerun_sends_nothing(
    sync_env, connect, xero_server, m3ter_sandbox
):
    main = connect("Everything")
    state = sync_bills(return_state=True)
    assert state.is_completed(), state.message
    ledger = ledger_of(main["id"])
    docs = xero_docs(xero_server, main["tenant_id"])
    complete = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    assert complete, ledger
    assert complete == set(docs)  # every sent bill is one document, keyed by the bill id
    for bill_id in complete:
        entry = ledger[bill_id]
        rendered = m3ter_sandbox.bill(bill_id)
        assert entry.sent_version == rendered["version"]
        total = sum(Decimal(str(li["subtotal"])) for li in rendered["lineItems"])
        assert Decimal(docs[bill_id]["SubTotal"]) == abs(total).quantize(Decimal("0.01"))
    credit = [b for b in complete if ledger[b].document_type == "credit_note"]
    assert credit, "the generator makes some negative bills: they must be credit notes"

    calls_before = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]["calls"]
    again = sync_bills(return_state=True)
    assert again.is_completed()
    calls_after = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]["calls"]
    assert calls_after == calls_before
    assert xero_docs(xero_server, main["tenant_id"]) == docs


def test_a_call_costs_one_ledger_write_outcomes_ride_with_the_next_started(
    sync_env, connect, xero_server, m3ter_sandbox, monkeypatch
):
    """A batch's outcomes are written with the next batch's STARTED rows: one transaction per
    call, plus one at the end of each posting task, instead of two per call."""
    from tasks.sync.post import TenantPoster

    m3ter_sandbox.add_generated_accounts(90, bills_per_account=2)
    main = connect("Writes")
    writes: list[set[Outcome]] = []
    posts: list[int] = []
    record, post = Ledger.record, TenantPoster.post

    def counted_record(self, integration_id, fates, **kwargs):
        writes.append({f.outcome for f in fates})
        return record(self, integration_id, fates, **kwargs)

    def counted_post(self, sends):
        posts.append(len(sends))
        return post(self, sends)

    monkeypatch.setattr(Ledger, "record", counted_record)
    monkeypatch.setattr(TenantPoster, "post", counted_post)
    state = sync_bills(return_state=True)
    assert state.is_completed(), state.message
    calls = document_calls(xero_server)  # not the reference data's and contacts' calls
    posting = [w for w in writes if w & {Outcome.STARTED, Outcome.COMPLETE}]
    assert calls > len(posts) > 0
    assert sum(1 for w in posting if Outcome.STARTED in w) == calls  # one before each call
    assert len(posting) == calls + len(posts)  # not 2 × calls
    ledger = ledger_of(main["id"])
    assert not [b for b, e in ledger.items() if e.outcome is Outcome.STARTED]
    complete = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    assert complete == set(xero_docs(xero_server, main["tenant_id"]))


def xero_state(xero_server) -> dict[str, Any]:
    return httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]


def document_calls(xero_server) -> int:
    """Calls that wrote invoices or credit notes (PUT or POST)."""
    by_endpoint = xero_state(xero_server)["calls_by_endpoint"]
    return sum(
        n
        for endpoint, n in by_endpoint.items()
        if endpoint.split()[0] in ("PUT", "POST")
        and endpoint.split()[1] in ("Invoices", "CreditNotes")
    )


def first_bill(m3ter_sandbox, **where: Any) -> dict[str, Any]:
    for record in m3ter_sandbox.bills:
        bill = m3ter_sandbox.bill(record.id)
        if all(bill.get(k) == v for k, v in where.items()):
            total = sum(Decimal(str(li["subtotal"])) for li in bill["lineItems"])
            if total > 0:
                return bill
    raise AssertionError(f"no bill with {where}")


def test_only_on_approval_waits_for_approved_bills(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Approved only", only_send_bill_on_approval=True)
    pending = first_bill(m3ter_sandbox, status="PENDING")
    assert sync_bills(return_state=True).is_completed()
    entry = ledger_of(main["id"])[pending["id"]]
    assert entry.outcome is Outcome.SKIPPED and "approved" in entry.reason
    assert pending["id"] not in xero_docs(xero_server, main["tenant_id"])
    approved = {b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.COMPLETE}
    assert approved and all(m3ter_sandbox.bill(b)["status"] == "APPROVED" for b in approved)

    m3ter_sandbox.approve(pending["id"])
    assert sync_bills(return_state=True).is_completed()
    assert ledger_of(main["id"])[pending["id"]].outcome is Outcome.COMPLETE
    assert pending["id"] in xero_docs(xero_server, main["tenant_id"])


def test_without_approval_pending_bills_are_sent(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Every version")
    pending = first_bill(m3ter_sandbox, status="PENDING")
    assert sync_bills(return_state=True).is_completed()
    assert ledger_of(main["id"])[pending["id"]].outcome is Outcome.COMPLETE
    assert pending["id"] in xero_docs(xero_server, main["tenant_id"])


def test_regenerated_bill_updates_its_invoice_in_place(
    sync_env, connect, xero_server, m3ter_sandbox
):
    main = connect("Regenerate")
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    before = xero_docs(xero_server, main["tenant_id"])[bill["id"]]
    regenerated = m3ter_sandbox.regenerate(bill["id"])
    assert regenerated["version"] > bill["version"]
    assert sync_bills(return_state=True).is_completed()
    after = xero_docs(xero_server, main["tenant_id"])[bill["id"]]
    assert after["InvoiceID"] == before["InvoiceID"]  # same invoice, updated
    total = sum(Decimal(str(li["subtotal"])) for li in regenerated["lineItems"])
    assert Decimal(after["SubTotal"]) == total.quantize(Decimal("0.01"))
    entry = ledger_of(main["id"])[bill["id"]]
    assert (entry.outcome, entry.sent_version) == (Outcome.COMPLETE, regenerated["version"])


def test_paid_invoice_refuses_the_update(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Paid")
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    invoice_id = xero_docs(xero_server, main["tenant_id"])[bill["id"]]["InvoiceID"]
    paid = httpx.post(f"{xero_server.url}/_sandbox/invoices/{invoice_id}/pay")
    assert paid.status_code == 200
    m3ter_sandbox.regenerate(bill["id"])
    state = sync_bills(return_state=True)
    assert state.is_failed()
    entry = ledger_of(main["id"])[bill["id"]]
    assert entry.outcome is Outcome.INVOICE_ALREADY_PAID
    assert "valid status" in entry.reason
    assert xero_docs(xero_server, main["tenant_id"])[bill["id"]]["Status"] == "PAID"


def tenant_docs(xero_server, tenant_id: str, collection: str) -> dict[str, dict[str, Any]]:
    """One collection ("Invoices", "CreditNotes") of a tenant by bill id: a bill may be in both."""
    return by_bill(xero_state(xero_server)["documents"].get(tenant_id, {}).get(collection, {}))


def as_credit(bill: dict[str, Any]) -> list[dict[str, Any]]:
    """The bill's standing charges, turned into credits (a correction that owes the customer)."""
    lines = []
    for li in bill["lineItems"]:
        if li["lineItemType"] == "STANDING_CHARGE":
            negated = {k: -li[k] for k in ("subtotal", "convertedSubtotal", "averageUnitPrice")}
            lines.append({**li, **negated})
    return lines


@pytest.mark.parametrize(("status", "withdrawn"), [("DRAFT", "DELETED"), ("AUTHORISED", "VOIDED")])
def test_a_bill_that_turns_into_a_credit_withdraws_its_invoice(
    sync_env, connect, xero_server, m3ter_sandbox, status, withdrawn
):
    main = connect(f"Sign change {status}", invoice_status=status)
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    invoice = tenant_docs(xero_server, main["tenant_id"], "Invoices")[bill["id"]]
    assert invoice["Status"] == status

    credit = m3ter_sandbox.recalculate(bill["id"], as_credit(bill))
    assert sync_bills(return_state=True).is_completed()
    invoices = tenant_docs(xero_server, main["tenant_id"], "Invoices")
    notes = tenant_docs(xero_server, main["tenant_id"], "CreditNotes")
    assert invoices[bill["id"]]["Status"] == withdrawn  # the invoice no longer counts
    owed = -sum(Decimal(str(li["subtotal"])) for li in credit["lineItems"])
    assert Decimal(notes[bill["id"]]["SubTotal"]) == owed.quantize(Decimal("0.01"))
    entry = ledger_of(main["id"])[bill["id"]]
    assert (entry.outcome, entry.document_type) == (Outcome.COMPLETE, "credit_note")
    assert entry.xero_id == notes[bill["id"]]["CreditNoteID"] != invoice["InvoiceID"]

    calls = xero_state(xero_server)["calls"]
    assert sync_bills(return_state=True).is_completed()  # nothing left to do
    assert xero_state(xero_server)["calls"] == calls


def test_an_invoice_withdrawn_by_a_run_that_died_is_not_a_failure(
    sync_env, connect, xero_server, m3ter_sandbox
):
    main = connect("Sign change twice")
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    invoice_id = tenant_docs(xero_server, main["tenant_id"], "Invoices")[bill["id"]]["InvoiceID"]
    # An earlier sync deleted the invoice and died before the ledger heard of it.
    settings = get_settings()
    credential_id = integration_store(settings).get(main["id"]).credential_id or ""
    getter = token_provider(settings).getter(credential_id)
    with XeroAccountingClient(settings.xero_api_url, main["tenant_id"], getter) as client:
        deleted = client.post_invoices(
            [{"InvoiceID": invoice_id, "Status": "DELETED"}], idempotency_key="died", update=True
        )
    assert deleted[0].ok

    m3ter_sandbox.recalculate(bill["id"], as_credit(bill))
    assert sync_bills(return_state=True).is_completed()
    invoice = tenant_docs(xero_server, main["tenant_id"], "Invoices")[bill["id"]]
    assert invoice["Status"] == "DELETED"
    note = tenant_docs(xero_server, main["tenant_id"], "CreditNotes")[bill["id"]]
    entry = ledger_of(main["id"])[bill["id"]]
    assert (entry.outcome, entry.xero_id) == (Outcome.COMPLETE, note["CreditNoteID"])


def test_a_paid_invoice_is_not_joined_by_a_credit_note(
    sync_env, connect, xero_server, m3ter_sandbox
):
    main = connect("Sign change paid", invoice_status="AUTHORISED")
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    invoice_id = tenant_docs(xero_server, main["tenant_id"], "Invoices")[bill["id"]]["InvoiceID"]
    paid = httpx.post(f"{xero_server.url}/_sandbox/invoices/{invoice_id}/pay")
    assert paid.status_code == 200

    m3ter_sandbox.recalculate(bill["id"], as_credit(bill))
    assert sync_bills(return_state=True).is_failed()
    assert tenant_docs(xero_server, main["tenant_id"], "Invoices")[bill["id"]]["Status"] == "PAID"
    assert bill["id"] not in tenant_docs(xero_server, main["tenant_id"], "CreditNotes")
    entry = ledger_of(main["id"])[bill["id"]]
    assert entry.outcome is Outcome.INVOICE_ALREADY_PAID
    assert f"invoice {invoice_id} (PAID) could not be withdrawn" in entry.reason
    assert (entry.document_type, entry.xero_id) == ("invoice", invoice_id)  # tried again next run


def test_missing_mapping_is_recorded_not_a_crash(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Mapped", use_external_mapping_account_code=True)
    state = sync_bills(return_state=True)
    ledger = ledger_of(main["id"])
    missing = {b for b, e in ledger.items() if e.outcome is Outcome.MISSING_ACCOUNT_MAPPING}
    sent = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    assert missing and sent  # the generator leaves every fifth account without a mapping
    assert state.is_failed()
    assert state.message == f"{len(missing)} bills not sent: {len(missing)} missing account mapping"
    docs = xero_docs(xero_server, main["tenant_id"])
    assert not missing & set(docs) and sent <= set(docs)


def test_account_filtered_out_is_skipped(sync_env, connect, xero_server, m3ter_sandbox):
    excluded = m3ter_sandbox.accounts[0]
    country = excluded["address"]["country"]
    main = connect("Filtered", account_filter=f'address.country != "{country}"')
    assert sync_bills(return_state=True).is_completed()
    ledger = ledger_of(main["id"])
    theirs = [r.id for r in m3ter_sandbox.bills if r.account_id == excluded["id"]]
    assert theirs
    for bill_id in theirs:
        assert ledger[bill_id].outcome is Outcome.SKIPPED
        assert "excluded" in ledger[bill_id].reason
    assert not set(theirs) & set(xero_docs(xero_server, main["tenant_id"]))


def test_dry_run_posts_and_records_nothing(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Dry")
    state = sync_bills(dry_run=True, return_state=True)
    assert state.is_completed()
    (row,) = state.result()["integrations"]
    assert row["would send (dry run)"] > 0
    assert xero_docs(xero_server, main["tenant_id"]) == {}
    assert ledger_of(main["id"]) == {}


def assert_exactly_once(main: dict[str, Any], xero_server) -> set[str]:
    """Every bill the ledger calls COMPLETE is one document in Xero, created once, and the
    ledger has no bill left in a failed state."""
    ledger = ledger_of(main["id"])
    complete = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    stuck = {
        b: e.outcome
        for b, e in ledger.items()
        if e.outcome not in (Outcome.COMPLETE, Outcome.SKIPPED)
    }
    assert not stuck, stuck
    docs = xero_docs(xero_server, main["tenant_id"])
    assert set(docs) == complete
    assert {n: d["Version"] for n, d in docs.items() if d["Version"] != 1} == {}
    for bill_id in complete:
        assert ledger[bill_id].xero_id == (
            docs[bill_id].get("InvoiceID") or docs[bill_id].get("CreditNoteID")
        )
    return complete


def test_five_hundred_bills_through_every_injected_fault_land_exactly_once(
    sync_env, connect, xero_server, m3ter_sandbox
):
    m3ter_sandbox.add_generated_accounts(240, bills_per_account=2)
    assert len(m3ter_sandbox.bills) == 500
    main = connect("Stormy")
    faults = {
        "rate_429": 0.05,
        "rate_500": 0.05,
        "rate_503": 0.05,
        "drop_after_store_rate": 0.05,
        "seed": 11,
    }
    assert httpx.post(f"{xero_server.url}/_sandbox/faults", json=faults).status_code == 200
    state = sync_bills(return_state=True)
    injected = xero_state(xero_server)["faults"]["injected"]
    httpx.delete(f"{xero_server.url}/_sandbox/faults")
    assert sum(injected.values()) > 0, injected
    assert state.is_completed(), state.message
    complete = assert_exactly_once(main, xero_server)
    skipped = {b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.SKIPPED}
    assert len(complete) + len(skipped) == 500
    assert xero_state(xero_server)["answered_while_limited"] == 0


def test_sync_killed_mid_run_then_rerun_sends_every_bill_exactly_once(
    sync_env, connect, xero_server, m3ter_sandbox, clean_settings
):
    import os
    import signal
    import subprocess
    import sys
    import time

    # The killed run's integration lease and call slots lapse in seconds, not a minute: the
    # rerun waits for them as it would in production, only less long.
    for lease in ("BILLSYNC_SYNC_LEASE_SECONDS", "BILLSYNC_XERO_SLOT_LEASE_SECONDS"):
        clean_settings.setenv(lease, "6")
    get_settings.cache_clear()
    m3ter_sandbox.add_generated_accounts(90, bills_per_account=2)  # 200 bills
    main = connect("Interrupted")
    # Slow answers so the kill lands mid-run, some after Xero stored a batch but before the
    # ledger heard back (the worst case for exactly-once).
    faults = {"slow_rate": 1.0, "slow_seconds": 1.0, "seed": 5}
    assert httpx.post(f"{xero_server.url}/_sandbox/faults", json=faults).status_code == 200
    code = "from flows.sync import sync_bills; sync_bills()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=dict(os.environ), start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while not xero_docs(xero_server, main["tenant_id"]):
            assert time.monotonic() < deadline, "the sync never stored a document"
            assert proc.poll() is None, "the sync ended before it could be killed"
            time.sleep(0.1)
        time.sleep(0.5)  # let the next batch reach Xero and be stored
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    httpx.delete(f"{xero_server.url}/_sandbox/faults")
    stored_at_kill = len(xero_docs(xero_server, main["tenant_id"]))
    assert 0 < stored_at_kill < 200
    started = {b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.STARTED}

    state = sync_bills(return_state=True)
    assert state.is_completed(), state.message
    complete = assert_exactly_once(main, xero_server)
    assert started <= complete
    skipped = {b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.SKIPPED}
    assert len(complete) + len(skipped) == 200


def test_auth_failure_disables_and_mails_then_a_reconnected_rerun_completes(
    sync_env, connect, xero_server, m3ter_sandbox, smtp_inbox, clean_settings
):
    from deployments.connect import sandbox_credential
    from flows.integrations import change_credential, enable_integration, integrations
    from tasks.xero.credentials import credentials, xero_oauth

    clean_settings.setenv("BILLSYNC_SMTP_HOST", smtp_inbox.host)
    clean_settings.setenv("BILLSYNC_SMTP_PORT", str(smtp_inbox.port))
    get_settings.cache_clear()
    main = connect("Revoked", notification_users=["ops@example.com", "finance@example.com"])
    record = credentials().read_tokens(main["credential_id"])
    xero_oauth().revoke(record.tokens.refresh_token.get_secret_value())  # consent withdrawn

    state = sync_bills(return_state=True)
    assert state.is_failed()
    view = integrations().get(main["id"])
    assert view.status.value == "DISABLED"
    credential = view.credential_name
    assert f"Xero refused credential {credential!r}" in view.disabled_reason
    # The disable is the first thing the run says, naming the credential and the way back.
    assert state.message.startswith(
        f"Revoked is DISABLED: Xero refused credential {credential!r}"
    ), state.message
    assert (
        f"to send its bills: reconnect credential {credential!r} to Xero "
        "(provision_xero_credential, then change_credential of 'Revoked' to the new "
        "credential), then enable_integration; "
    ) in state.message
    assert state.message.endswith("Xero refused the credential"), state.message
    # The refused token was replaced once; the refresh itself was refused: a person must act.
    assert credentials().get(main["credential_id"]).status.value == "NEEDS_REAUTH"
    ledger = ledger_of(main["id"])
    assert {e.outcome for e in ledger.values()} <= {Outcome.AUTH_FAILED, Outcome.SKIPPED}
    assert any(e.outcome is Outcome.AUTH_FAILED for e in ledger.values())
    (mail,) = smtp_inbox.messages
    assert mail["To"] == "ops@example.com, finance@example.com"
    assert "Revoked" in mail["Subject"]
    assert f"reconnect credential {credential!r} to Xero" in mail.get_payload(decode=True).decode()
    # The failures report's "What to do" points to no flow that would refuse (a rerun is
    # refused while the integration is disabled).
    report = run_artifacts(state)["bill-sync-failures"]
    assert "then enable_integration and run rerun_failed_syncs" in report
    assert "), then run rerun_failed_syncs" not in report
    assert xero_docs(xero_server, main["tenant_id"]) == {}

    # A person reconnects: a new credential, then enables the integration and reruns failures.
    # (A credential alone: a second all-accounts integration on the org would be refused.)
    _, fresh_tenant = sandbox_credential(xero_server.url, "Fresh credential")
    change_credential(main["id"], "Fresh credential")
    enable_integration(main["id"])
    rerun = rerun_failed_syncs(integration="Revoked", return_state=True)
    assert rerun.is_completed(), rerun.message
    main["tenant_id"] = fresh_tenant
    complete = assert_exactly_once(main, xero_server)
    assert complete and all(ledger[b].outcome is Outcome.AUTH_FAILED for b in complete)


def run_artifacts(state) -> dict[str, str]:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = UUID(str(state.state_details.flow_run_id))
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key or a.type: str(a.data) for a in found}


def test_daily_limit_defers_the_rest_to_the_next_run(
    sync_env, connect, xero_server, m3ter_sandbox, clean_settings
):
    m3ter_sandbox.add_generated_accounts(40, bills_per_account=2)  # 100 bills: 10+ batches
    clean_settings.setenv("BILLSYNC_SYNC_BATCH_SIZE", "10")
    get_settings.cache_clear()
    main = connect("Daily")
    # The organisation's reference data (4 calls), then in each of the 5 posting tasks its
    # contacts (1 call, none when another task upserted them already) and its 2 batches: 14
    # calls a day leave 5 to 9 of the 10 batches to send.
    httpx.post(f"{xero_server.url}/_sandbox/limits", json={"per_day": 14})
    state = sync_bills(return_state=True)
    assert state.is_failed()
    ledger = ledger_of(main["id"])
    deferred = {b for b, e in ledger.items() if e.outcome is Outcome.RATE_LIMIT_RETRY}
    sent = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    assert sent and deferred  # one call was allowed, the rest waits
    assert all("daily limit" in ledger[b].reason for b in deferred)
    assert set(xero_docs(xero_server, main["tenant_id"])) == sent

    httpx.post(f"{xero_server.url}/_sandbox/limits", json={"per_day": 5000})
    assert sync_bills(return_state=True).is_completed()
    assert_exactly_once(main, xero_server)


def test_run_artifacts_and_per_tenant_limits(sync_env, connect, xero_server, m3ter_sandbox):
    from store.tenant_limits import TenantLimits

    main = connect("Observed")
    bill = first_bill(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    invoice_id = xero_docs(xero_server, main["tenant_id"])[bill["id"]]["InvoiceID"]
    httpx.post(f"{xero_server.url}/_sandbox/invoices/{invoice_id}/pay")
    m3ter_sandbox.regenerate(bill["id"])
    state = sync_bills(return_state=True)
    artifacts = run_artifacts(state)
    summary = artifacts["bill-sync-summary"]
    assert "Observed" in summary and "updated" in summary
    failures = artifacts["bill-sync-failures"]
    assert bill["id"] in failures and "INVOICE_ALREADY_PAID" in failures
    # The tenant's shared limits were made in the project database, and nothing holds them.
    limits = TenantLimits(database(get_settings()))
    assert limits.known(main["tenant_id"]) and limits.held(main["tenant_id"]) == 0
