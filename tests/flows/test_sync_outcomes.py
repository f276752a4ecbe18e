"""What a person sees when bills do not reach Xero: every run that leaves one out ends Failed and
says why, reruns included, until the cause is fixed; the report names what to fix and where.

Checked through real flow runs against the sandboxes, and read back from Prefect's API as the
UI would show it (states, subflow states, task run names, artifacts)."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)

from config.errors import RunFailed
from config.settings import get_settings
from flows.sync import rerun_failed_syncs, sync_bills
from store.factory import database
from store.ledger import Ledger, Outcome
from tests.flows.documents import by_bill


def ledger_of(integration_id: str) -> dict[str, Any]:
    return Ledger(database(get_settings())).snapshot(integration_id)


def xero_docs(xero_server, tenant_id: str) -> dict[str, dict[str, Any]]:
    state = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]
    tenant = state["documents"].get(tenant_id, {})
    return by_bill({**tenant.get("Invoices", {}), **tenant.get("CreditNotes", {})})


def unmapped_accounts(m3ter_sandbox) -> list[dict[str, Any]]:
    """The sandbox's accounts without an Account → Xero Contact mapping (every fifth)."""
    mapped = {
        m["m3terId"]
        for m in m3ter_sandbox.mappings
        if m["externalSystem"].lower() == "xero" and m["externalTable"].lower() == "contact"
    }
    return [a for a in m3ter_sandbox.accounts if a["id"] not in mapped]


def summary_of(state) -> dict[str, Any]:
    """The run's summary (its data when Completed, its RunFailed's details when Failed)."""
    value = state.result(raise_on_failure=False)
    if state.is_failed():
        assert isinstance(value, RunFailed), value
        return value.details
    return value


def run_id(state) -> UUID:
    return UUID(str(state.state_details.flow_run_id))


def subflows(state) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id(state)])
            )
        )


def task_runs(flow_run_ids: list[UUID]) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids))
        )


def artifacts(flow_run_ids: list[UUID]) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
        )


def test_missing_mappings_fail_every_run_until_mapped_then_a_rerun_completes(
    sync_env, connect, xero_server, m3ter_sandbox, clean_settings
):
    # Three failing runs in a row would disable the integration (its own behaviour): not here.
    clean_settings.setenv("BILLSYNC_AUTO_DISABLE_AFTER_FAILED_RUNS", "10")
    get_settings.cache_clear()
    main = connect("Mapped", use_external_mapping_account_code=True)
    lacking = unmapped_accounts(m3ter_sandbox)
    assert lacking

    first = sync_bills(return_state=True)
    ledger = ledger_of(main["id"])
    missing = {b for b, e in ledger.items() if e.outcome is Outcome.MISSING_ACCOUNT_MAPPING}
    sent = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    n = len(missing)
    assert n and sent
    assert first.is_failed()
    assert first.message == f"{n} bills not sent: {n} missing account mapping"
    (row,) = summary_of(first)["integrations"]
    assert (row["failed"], row["sent"]) == (n, len(sent))
    (sub,) = subflows(first)
    assert sub.state.is_failed(), sub.state
    assert sub.state.message == first.message

    # What Prefect's Retry does: the same flow with the same parameters. Called as a served run
    # is (its result, not its state), it raises the run's own reason, not a TypeError.
    with pytest.raises(
        RunFailed, match=f"^{n} bills not sent: {n} missing account mapping$"
    ) as again:
        sync_bills()
    (row,) = again.value.details["integrations"]
    assert (row["failed"], row["unchanged"], row["sent"]) == (n, 0, 0)

    rerun = rerun_failed_syncs(return_state=True)
    assert rerun.is_failed()
    assert rerun.message == f"{n} bills not sent: {n} missing account mapping"
    (row,) = summary_of(rerun)["integrations"]
    assert (row["failed"], row["unchanged"]) == (n, 0)
    (sub,) = subflows(rerun)
    assert sub.state.is_failed(), sub.state
    ledger = ledger_of(main["id"])
    assert {b for b, e in ledger.items() if e.outcome is Outcome.MISSING_ACCOUNT_MAPPING} == missing
    assert not missing & set(xero_docs(xero_server, main["tenant_id"]))

    for account in lacking:  # a person adds the mappings in m3ter
        m3ter_sandbox.add_mapping({"m3terId": account["id"], "externalId": str(uuid.uuid4())})
    fixed = rerun_failed_syncs(return_state=True)
    assert fixed.is_completed(), fixed.message
    (row,) = summary_of(fixed)["integrations"]
    assert (row["sent"], row["failed"]) == (n, 0)
    ledger = ledger_of(main["id"])
    assert all(ledger[b].outcome is Outcome.COMPLETE for b in missing)
    assert missing <= set(xero_docs(xero_server, main["tenant_id"]))
    assert sync_bills(return_state=True).is_completed()


def test_bills_failing_on_their_own_data_never_disable_the_integration(
    sync_env, connect, xero_server, m3ter_sandbox
):
    """Bills that fail on their data (accounts without a contact mapping) are reported bill by
    bill, run after run; they never disable the integration, whose other bills keep going."""
    from flows.integrations import integrations

    main = connect("A few bad bills", use_external_mapping_account_code=True)
    for _ in range(get_settings().auto_disable_after_failed_runs + 1):
        state = sync_bills(return_state=True)
        assert state.is_failed()
        assert "DISABLED" not in state.message, state.message
    view = integrations().get(main["id"])
    assert view.status.value == "CONNECTED", view.status_detail
    mapped = next(a for a in m3ter_sandbox.accounts if a not in unmapped_accounts(m3ter_sandbox))
    record = next(r for r in m3ter_sandbox.bills if r.account_id == mapped["id"])
    bill = dict(m3ter_sandbox.bill(record.id))
    for key in ("id", "version", "dtLastModified", "sequentialInvoiceNumber"):
        bill.pop(key, None)
    fresh = m3ter_sandbox.add_bill(bill)  # a new bill of a good account still goes
    sync_bills(return_state=True)
    assert ledger_of(main["id"])[fresh].outcome is Outcome.COMPLETE


def test_a_disabled_integration_is_named_first_and_its_failed_bills_counted(
    sync_env, connect, xero_server, m3ter_sandbox
):
    """Disabled (here by a person): a scheduled sync and a rerun are not green, their message
    says since when, why, and the flow that turns it back on, and the rerun counts every one of
    its failed bills; enabled again, the rerun sends them."""
    from flows.integrations import disable_integration, enable_integration

    main = connect("Paused", use_external_mapping_account_code=True)
    assert sync_bills(return_state=True).is_failed()
    missing = {
        b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.MISSING_ACCOUNT_MAPPING
    }
    n = len(missing)
    disable_integration("Paused", reason="month-end close")
    for account in unmapped_accounts(m3ter_sandbox):
        m3ter_sandbox.add_mapping({"m3terId": account["id"], "externalId": str(uuid.uuid4())})

    for state in (sync_bills(return_state=True), rerun_failed_syncs(return_state=True)):
        assert state.is_failed(), state.message
        assert state.message.startswith("Paused is DISABLED since 20"), state.message
        assert ": month-end close; to send its bills: " in state.message
        assert "enable_integration" in state.message
    (row,) = summary_of(state)["integrations"]
    assert row["failed"] == n
    assert state.message.endswith(f"{n} bills not sent: {n} missing account mapping")
    assert not missing & set(xero_docs(xero_server, main["tenant_id"]))

    enable_integration(main["id"])
    rerun = rerun_failed_syncs(return_state=True)
    assert rerun.is_completed(), rerun.message
    assert missing <= set(xero_docs(xero_server, main["tenant_id"]))


def test_a_sync_with_every_integration_disabled_or_unconnected_is_not_green(
    sync_env, connect, xero_server, m3ter_sandbox
):
    from flows.integrations import create_integration, disable_integration

    connect("Stopped one")
    disable_integration("Stopped one", reason="Xero refused it")
    create_integration({"name": "Never connected"})
    state = sync_bills(return_state=True)
    assert state.is_failed()
    assert state.message.startswith("Stopped one is DISABLED since 20"), state.message
    assert (
        "; Never connected is NOT CONNECTED; to send its bills: connect_credential "
        "'Never connected'"
    ) in state.message
    rows = {r["integration"]: r for r in summary_of(state)["integrations"]}
    assert set(rows) == {"Stopped one", "Never connected"}


def test_a_rerun_refuses_bills_that_did_not_fail(sync_env, connect, xero_server, m3ter_sandbox):
    main = connect("Asked by bill")
    assert sync_bills(return_state=True).is_completed()
    sent = sorted(ledger_of(main["id"]))[0]
    state = rerun_failed_syncs(bills=(sent, "no-such-bill"), return_state=True)
    assert state.is_failed()
    assert state.message == (
        "bills: not among the failed bills asked for, nothing rerun: "
        f"{sent} (COMPLETE), no-such-bill (not in the ledger)"
    )


def an_invalid_bill(m3ter_sandbox, account: dict[str, Any]) -> str:
    """A copy of one of ``account``'s bills in a currency Xero refuses."""
    record = next(r for r in m3ter_sandbox.bills if r.account_id == account["id"])
    bill = dict(m3ter_sandbox.bill(record.id))
    for key in ("id", "version", "dtLastModified", "sequentialInvoiceNumber"):
        bill.pop(key, None)
    bill["currency"] = "G8P"
    bill["lineItems"] = [{**li, "currency": "G8P"} for li in bill["lineItems"]]
    return m3ter_sandbox.add_bill(bill)


def test_the_failures_report_names_the_account_the_amount_and_the_fix(
    sync_env, connect, xero_server, m3ter_sandbox
):
    lacking = unmapped_accounts(m3ter_sandbox)
    mapped = next(a for a in m3ter_sandbox.accounts if a not in lacking)
    invalid = an_invalid_bill(m3ter_sandbox, mapped)
    main = connect("Reported", use_external_mapping_account_code=True)

    state = sync_bills(return_state=True)
    ledger = ledger_of(main["id"])
    missing = {b for b, e in ledger.items() if e.outcome is Outcome.MISSING_ACCOUNT_MAPPING}
    # The organisation has no such currency: the bill stops before any call, saying so.
    assert ledger[invalid].outcome is Outcome.CURRENCY_NOT_SUBSCRIBED
    assert "Demo Company (UK) is not subscribed to currency G8P" in ledger[invalid].reason
    assert state.is_failed()
    n = len(missing)
    assert state.message == (
        f"{n + 1} bills not sent: {n} missing account mapping, 1 currency not subscribed in Xero"
    )

    subs = subflows(state)
    found = {a.key: a for a in artifacts([run_id(state), *(s.id for s in subs)]) if a.key}
    report = str(found["bill-sync-failures"].data)
    assert "add the currency in Xero (Demo Company (UK): Settings → Currencies)" in report
    for account in lacking:
        assert account["name"] in report and account["code"] in report
        assert (
            "add an Account → Xero Contact external mapping in m3ter for account "
            f"{account['name']} ({account['code']}), then run rerun_failed_syncs"
        ) in report
    bill_id = sorted(missing)[0]
    bill = m3ter_sandbox.bill(bill_id)
    total = sum(Decimal(str(li["subtotal"])) for li in bill["lineItems"])
    assert f"{total.quantize(Decimal('0.01'))} {bill['currency']}" in report
    assert bill["billDate"] in report
    assert mapped["name"] in report and "is not subscribed to currency G8P" in report
    assert "Demo Company (UK)" in report
    assert "\n" + state.message in report or f"# {state.message}" in report

    # The summary's columns fit a screen, the counts a person looks for first.
    table = found["bill-sync-summary"].data
    (row,) = json.loads(table) if isinstance(table, str) else table
    assert list(row)[:7] == [
        "integration",
        "organisation",
        "sent",
        "updated",
        "unchanged",
        "skipped",
        "failed",
    ]
    assert len(row) <= 8
    assert (row["organisation"], row["failed"]) == ("Demo Company (UK)", n + 1)

    # Task runs and the progress artifact are named for the integration and the organisation.
    (sub,) = subs
    posts = [t for t in task_runs([sub.id]) if t.name.startswith("post ")]
    assert posts
    for run in posts:
        assert "to Demo Company (UK) for Reported" in run.name, run.name
        assert main["tenant_id"] not in run.name
    assert "sync-progress-reported" in found
    assert float(found["sync-progress-reported"].data) == 100.0  # the bar ends full
    assert not [k for k in found if main["id"] in k or main["tenant_id"] in k]


def test_a_posting_task_whose_documents_failed_is_not_green(
    sync_env, connect, xero_server, m3ter_sandbox, clean_settings
):
    main = connect("Refused")
    clean_settings.setenv("BILLSYNC_SYNC_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    faults = {"rate_500": 1.0, "seed": 3}
    assert httpx.post(f"{xero_server.url}/_sandbox/faults", json=faults).status_code == 200
    try:
        state = sync_bills(return_state=True)
    finally:
        httpx.delete(f"{xero_server.url}/_sandbox/faults")
    failed = {b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.ERROR}
    assert failed and state.is_failed()
    assert state.message == f"{len(failed)} bills not sent: {len(failed)} Xero unavailable"
    (sub,) = subflows(state)
    # Prefect's server records task-run states from events, a moment after the run: wait for it.
    deadline = time.monotonic() + 15
    while True:
        posts = [t for t in task_runs([sub.id]) if t.name.startswith("post ")]
        if posts and all(t.state.is_final() for t in posts) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert posts and all(t.state.is_failed() for t in posts), [t.state for t in posts]


def test_a_spent_daily_limit_leaves_no_bill_without_its_fate(
    sync_env, connect, xero_server, m3ter_sandbox, clean_settings
):
    """A posting task of several batches that meets the daily limit records every bill it was
    given (the rest of its batches too), so each is counted and the next run sends it."""
    m3ter_sandbox.add_generated_accounts(40, bills_per_account=2)  # 100 bills
    clean_settings.setenv("BILLSYNC_SYNC_BATCH_SIZE", "10")
    clean_settings.setenv("BILLSYNC_SYNC_DOCUMENTS_PER_TASK", "60")
    get_settings.cache_clear()
    main = connect("Daily batches")
    httpx.post(f"{xero_server.url}/_sandbox/limits", json={"per_day": 1})
    try:
        state = sync_bills(return_state=True)
    finally:
        httpx.post(f"{xero_server.url}/_sandbox/limits", json={"per_day": 5000})
    ledger = ledger_of(main["id"])
    bills = {r.id for r in m3ter_sandbox.bills}
    assert set(ledger) == bills  # every bill has its fate
    deferred = {b for b, e in ledger.items() if e.outcome is Outcome.RATE_LIMIT_RETRY}
    assert {e.outcome for e in ledger.values()} <= {
        Outcome.COMPLETE,
        Outcome.RATE_LIMIT_RETRY,
        Outcome.SKIPPED,
    }
    assert state.is_failed()
    n = len(deferred)
    assert state.message == f"{n} bills not sent: {n} deferred by Xero's rate limit"

    assert sync_bills(return_state=True).is_completed()
    ledger = ledger_of(main["id"])
    assert all(ledger[b].outcome is Outcome.COMPLETE for b in deferred)
    assert deferred <= set(xero_docs(xero_server, main["tenant_id"]))
