"""A bill sync as the team meets it with ``make serve``: Run, Retry and ``rerun_failed_syncs``
from the UI tell the truth about bills that did not reach Xero, until a person fixes the cause."""

from __future__ import annotations

import uuid

import httpx
import pytest

from config.settings import get_settings
from deployments.connect import connect_integration
from sandbox.xero.state import DEFAULT_ORGS
from store.factory import database
from store.ledger import Ledger, Outcome


@pytest.fixture
def unmapped(as_served, xero_server, xero_sandbox, m3ter_sandbox):
    """An integration on the served project whose accounts partly lack a Contact mapping."""
    limits = httpx.post(f"{xero_server.url}/_sandbox/limits", json={"time_scale": 0.05})
    assert limits.status_code == 200, limits.text
    made = connect_integration(
        xero_server.url, "Served sync", use_external_mapping_account_code=True
    )
    mapped = {
        m["m3terId"]
        for m in m3ter_sandbox.mappings
        if (m["externalSystem"].lower(), m["externalTable"].lower()) == ("xero", "contact")
    }
    lacking = [a for a in m3ter_sandbox.accounts if a["id"] not in mapped]
    assert lacking
    return made, lacking


def missing_mapping(integration_id: str) -> set[str]:
    ledger = Ledger(database(get_settings())).snapshot(integration_id)
    return {b for b, e in ledger.items() if e.outcome is Outcome.MISSING_ACCOUNT_MAPPING}


def reports(served, run_id: str) -> list[str]:
    """The keys of the artifacts a person sees on the run's page."""
    return sorted(a["key"] or a["type"] for a in served.artifacts([run_id]))


def no_traceback(served, run_id: str) -> None:
    crashes = [line for line in served.logs(run_id) if "Traceback" in line or "TypeError" in line]
    assert not crashes, crashes


def test_run_retry_and_rerun_fail_until_the_mapping_exists(as_served, unmapped, m3ter_sandbox):
    served = as_served
    made, lacking = unmapped

    run_id = served.run("sync_bills")
    run = served.finished(run_id)
    missing = missing_mapping(made.integration_id)
    n = len(missing)
    assert n
    assert run["state_type"] == "FAILED"
    assert run["state"]["message"] == f"{n} bills not sent: {n} missing account mapping"
    no_traceback(served, run_id)
    (sub,) = served.subflows(run_id)
    assert sub["state_type"] == "FAILED"
    report = [a for a in served.artifacts([run_id, sub["id"]]) if a["key"] == "bill-sync-failures"]
    assert report and lacking[0]["name"] in str(report[0]["data"])
    names = [t["name"] for t in served.task_runs([sub["id"]])]
    assert not any(made.tenant_id in name for name in names), names

    assert run["name"] == "sync Served sync"  # named for what it does, not "huge-quail"

    served.retry(run_id)  # the UI's Retry: the same run again
    run = served.wait(run_id, lambda r: r["run_count"] >= 2 and r["state_type"] == "FAILED")
    assert run["state"]["message"] == f"{n} bills not sent: {n} missing account mapping"
    no_traceback(served, run_id)
    # One report per run: what its last attempt did, not its failed attempts' cards too.
    assert reports(served, run_id) == ["bill-sync-failures", "bill-sync-summary"]

    rerun_id = served.run("rerun_failed_syncs")
    rerun = served.finished(rerun_id)
    assert rerun["state_type"] == "FAILED"
    assert rerun["state"]["message"] == f"{n} bills not sent: {n} missing account mapping"
    assert missing_mapping(made.integration_id) == missing

    for account in lacking:  # a person adds the mappings in m3ter, then reruns
        m3ter_sandbox.add_mapping({"m3terId": account["id"], "externalId": str(uuid.uuid4())})
    fixed_id = served.run("rerun_failed_syncs", integration="Served sync")
    fixed = served.finished(fixed_id)
    assert fixed["state_type"] == "COMPLETED", fixed["state"]["message"]
    assert fixed["name"] == "rerun failed bills of Served sync"
    assert missing_mapping(made.integration_id) == set()

    served.retry(run_id)  # the first run retried once more: green now, its report says so
    run = served.wait(run_id, lambda r: r["run_count"] >= 3 and r["state_type"] == "COMPLETED")
    assert run["state"]["message"] == "all bills synced"
    assert reports(served, run_id) == ["bill-sync-summary"]


def test_a_scheduled_sync_over_a_disabled_integration_is_not_green(as_served, xero_server):
    """Bills keep arriving in m3ter while an integration is disabled: every run of the schedule
    says so first (since when, why, the flow that turns it back on), instead of "all bills
    synced"."""
    served = as_served
    connect_integration(xero_server.url, "Served disabled", org=DEFAULT_ORGS[1])
    off = served.finished(served.run("disable_integration", integration="Served disabled"))
    assert off["state_type"] == "COMPLETED" and off["name"] == "disable Served disabled"
    try:
        run = served.finished(served.run("sync_bills"))
        assert run["state_type"] == "FAILED"
        message = run["state"]["message"]
        assert message.startswith("Served disabled is DISABLED since 20"), message
        assert "disabled by a person; to send its bills: " in message
        assert "enable_integration" in message and "all bills synced" not in message
        no_traceback(served, run["id"])
    finally:
        served.finished(served.run("delete_integration", integration="Served disabled"))
