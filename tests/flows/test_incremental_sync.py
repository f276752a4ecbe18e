"""What a sync reads from m3ter: once per run for all its integrations, and after a complete
read only what changed (plus what failed), unless the integration itself changed."""

from __future__ import annotations

import time
from typing import Any

import httpx

from config.settings import get_settings
from flows.sync import sync_bills
from store.factory import database, integration_store
from store.ledger import Ledger, Outcome
from store.watermarks import Watermarks
from tests.flows.documents import by_bill


def ledger_of(integration_id: str) -> dict[str, Any]:
    return Ledger(database(get_settings())).snapshot(integration_id)


def reads(m3ter_sandbox) -> dict[str, int]:
    """m3ter calls so far: full listings and searches of bills."""
    paths = dict(m3ter_sandbox.counters.paths)
    return {
        "list": sum(n for p, n in paths.items() if p.endswith("/bills")),
        "search": sum(n for p, n in paths.items() if p.endswith("/bills/search")),
    }


def xero_calls(xero_server) -> int:
    state = httpx.get(f"{xero_server.url}/_sandbox/state?documents=false").json()
    return sum(state["accounting"]["calls"].values())


def xero_docs(xero_server, tenant_id: str) -> dict[str, dict[str, Any]]:
    state = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]
    tenant = state["documents"].get(tenant_id, {})
    return by_bill({**tenant.get("Invoices", {}), **tenant.get("CreditNotes", {})})


def complete(integration_id: str) -> set[str]:
    return {b for b, e in ledger_of(integration_id).items() if e.outcome is Outcome.COMPLETE}


def test_nothing_new_means_one_search_page_and_no_xero_call_then_changes_are_found(
    sync_env, connect, xero_server, m3ter_sandbox
):
    main = connect("Incremental")
    assert sync_bills(return_state=True).is_completed()
    assert Watermarks(database(get_settings())).get(main["id"]) is not None
    first = complete(main["id"])
    assert len(first) == len(m3ter_sandbox.bills)

    before, calls = reads(m3ter_sandbox), xero_calls(xero_server)
    quiet = sync_bills(return_state=True)
    assert quiet.is_completed()
    (row,) = quiet.result()["integrations"]
    assert row["read"].startswith("nothing modified since"), row
    after = reads(m3ter_sandbox)
    assert after["list"] == before["list"], "a nothing-changed sync must not list every bill"
    assert after["search"] == before["search"] + 1
    assert xero_calls(xero_server) == calls

    changed = next(iter(sorted(first)))
    regenerated = m3ter_sandbox.regenerate(changed)
    (new_account,) = m3ter_sandbox.add_generated_accounts(1, bills_per_account=2)
    new_bills = {r.id for r in m3ter_sandbox.bills if r.account_id == new_account}
    assert sync_bills(return_state=True).is_completed()
    assert reads(m3ter_sandbox)["list"] == before["list"]
    ledger = ledger_of(main["id"])
    assert ledger[changed].sent_version == regenerated["version"]
    assert all(ledger[b].outcome is Outcome.COMPLETE for b in new_bills)
    assert new_bills <= set(xero_docs(xero_server, main["tenant_id"]))


def test_a_changed_integration_reads_every_bill_again(
    sync_env, connect, xero_server, m3ter_sandbox
):
    excluded = m3ter_sandbox.accounts[0]
    country = excluded["address"]["country"]
    main = connect("Refiltered", account_filter=f'address.country != "{country}"')
    assert sync_bills(return_state=True).is_completed()
    theirs = {r.id for r in m3ter_sandbox.bills if r.account_id == excluded["id"]}
    assert theirs and not theirs & complete(main["id"])

    integration_store(get_settings()).update(main["id"], {"account_filter": None})
    before = reads(m3ter_sandbox)
    assert sync_bills(return_state=True).is_completed()
    assert reads(m3ter_sandbox)["list"] > before["list"]  # the old watermark no longer holds
    assert theirs <= complete(main["id"])  # unchanged bills, found by the full read
    assert theirs <= set(xero_docs(xero_server, main["tenant_id"]))


def test_bills_that_failed_are_retried_although_m3ter_did_not_change(
    sync_env, connect, xero_server, m3ter_sandbox, clean_settings
):
    main = connect("Retried")
    clean_settings.setenv("BILLSYNC_SYNC_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    faults = {"rate_500": 1.0, "seed": 3}
    assert httpx.post(f"{xero_server.url}/_sandbox/faults", json=faults).status_code == 200
    assert sync_bills(return_state=True).is_failed()
    failed = {b for b, e in ledger_of(main["id"]).items() if e.outcome is Outcome.ERROR}
    assert failed
    httpx.delete(f"{xero_server.url}/_sandbox/faults")

    state = sync_bills(return_state=True)
    assert state.is_completed(), state.message
    (row,) = state.result()["integrations"]
    # Found in the ledger and fetched by id, not by listing every bill again.
    assert row["read"].startswith("bills modified since"), row["read"]
    assert row["read"].endswith(f"and {len(failed)} failed bill(s)"), row["read"]
    assert failed <= complete(main["id"])
    docs = xero_docs(xero_server, main["tenant_id"])
    assert failed <= set(docs) and all(docs[b]["Version"] == 1 for b in failed)


def test_one_run_lists_bills_once_for_all_its_integrations(
    sync_env, connect, xero_server, m3ter_sandbox
):
    ids = [a["id"] for a in m3ter_sandbox.accounts]
    north = connect("North half", account_ids=ids[:5])
    south = connect("South half", org="Demo Company (US)", account_ids=ids[5:])
    before = reads(m3ter_sandbox)
    state = sync_bills(return_state=True)
    assert state.is_completed(), state.message
    # 20 bills fit one page (page size 200): one listing, not one per integration.
    assert reads(m3ter_sandbox)["list"] == before["list"] + 1
    for made, accounts in ((north, set(ids[:5])), (south, set(ids[5:]))):
        theirs = {r.id for r in m3ter_sandbox.bills if r.account_id in accounts}
        ledger = ledger_of(made["id"])
        assert set(ledger) == theirs  # no rows for the other integration's bills
        assert complete(made["id"]) == theirs
        assert set(xero_docs(xero_server, made["tenant_id"])) == theirs
    rows = {r["integration"]: r for r in state.result()["integrations"]}
    assert rows["North half"]["other accounts' bills"] == len(m3ter_sandbox.bills) - len(
        complete(north["id"])
    )


def test_two_runs_of_one_integration_at_once_write_each_document_once(
    sync_env, connect, xero_server, m3ter_sandbox, clean_settings, in_background
):
    """The second run waits for the first (the integration's sync lease), then finds its
    bills done: without it both would post them, and Xero would hold each document twice
    written (a create refused as a duplicate number becomes an update)."""
    main = connect("Contended")
    clean_settings.setenv("BILLSYNC_SYNC_BATCH_SIZE", "5")
    get_settings.cache_clear()
    slow = {"slow_rate": 1.0, "slow_seconds": 0.3, "seed": 11}
    assert httpx.post(f"{xero_server.url}/_sandbox/faults", json=slow).status_code == 200
    try:
        first = in_background(sync_bills)
        deadline = time.monotonic() + 60
        while not xero_docs(xero_server, main["tenant_id"]):  # the first run is posting
            assert time.monotonic() < deadline, "the first run never posted"
            time.sleep(0.05)
        second = in_background(sync_bills)
        states = [first.join(120), second.join(120)]
    finally:
        httpx.delete(f"{xero_server.url}/_sandbox/faults")
    assert all(s.is_completed() for s in states), [s.message for s in states]
    (posted,), (waited,) = (s.result()["integrations"] for s in states)
    bills = {r.id for r in m3ter_sandbox.bills}
    assert posted["sent"] == len(bills) and posted["updated"] == 0
    assert waited["sent"] == 0 and waited["updated"] == 0
    docs = xero_docs(xero_server, main["tenant_id"])
    assert set(docs) == bills == complete(main["id"])
    assert {n: d["Version"] for n, d in docs.items() if d["Version"] != 1} == {}
