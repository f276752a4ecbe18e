"""A sync that cannot make progress ends, in time, and says what it did not send.

Issue 14's wedge, without the cluster: a tenant whose call slots are all held by a run that
died. The sync's wait for a slot ends after ``xero_limit_wait_seconds``; the run ends Failed,
its message counts every bill it did not send, and the ledger holds exactly those for
``rerun_failed_syncs``. Once the dead run's leases lapse the rerun, then the next sync, send
every bill, once."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from config.errors import RunFailed
from config.settings import get_settings
from flows.sync import rerun_failed_syncs, sync_bills
from store.factory import database
from store.ledger import RETRYABLE, Ledger, Outcome
from store.tenant_limits import TenantLimits

DEAD_LEASE_SECONDS = 6.0


def documents(xero_server, tenant_id: str) -> int:
    state = httpx.get(f"{xero_server.url}/_sandbox/state").json()["accounting"]
    tenant = state["documents"].get(tenant_id, {})
    return len(tenant.get("Invoices", {})) + len(tenant.get("CreditNotes", {}))


def summary(state) -> dict[str, Any]:
    value = state.result(raise_on_failure=False)
    return value.details if isinstance(value, RunFailed) else value


def test_slots_held_by_a_dead_run_end_the_sync_in_time_count_every_bill_and_heal(
    sync_env, connect, xero_server, clean_settings
):
    clean_settings.setenv("BILLSYNC_XERO_LIMIT_WAIT_SECONDS", "2")
    clean_settings.setenv("BILLSYNC_AUTO_DISABLE_AFTER_FAILED_RUNS", "10")
    get_settings.cache_clear()
    main = connect("Wedged")
    settings = get_settings()
    limits = TenantLimits(database(settings))
    limits.ensure(main["tenant_id"], settings.xero_tenant_concurrency)
    dead = str(uuid.uuid4())  # a flow run that died holding every slot
    for n in range(settings.xero_tenant_concurrency):
        assert limits.take_slot(main["tenant_id"], f"{dead}/{n}", DEAD_LEASE_SECONDS) is not None
    held_until = time.time() + DEAD_LEASE_SECONDS

    began = time.monotonic()
    first = sync_bills(return_state=True)
    took = time.monotonic() - began

    assert first.is_failed(), first
    assert took < 30, f"the run took {took:.0f} s: its waits are not bounded"
    ledger = Ledger(database(settings))
    retryable = ledger.entries(integration_ids=[main["id"]], outcomes=RETRYABLE)
    n = len(retryable)
    assert n > 0 and {e.outcome for e in retryable} == {Outcome.INTERRUPTED}
    assert first.message.startswith(f"{n} bills not sent: {n} interrupted; Wedged interrupted")
    assert (
        f"waited 2 s for one of the tenant's 5 call slots (held by flow run {dead} (5)) "
        f"of Xero organisation Demo Company (UK) (tenant {main['tenant_id']})"
    ) in first.message
    (row,) = summary(first)["integrations"]
    assert row["failed"] == n and row["sent"] == 0
    assert documents(xero_server, main["tenant_id"]) == 0

    time.sleep(max(0.0, held_until - time.time()) + 0.5)  # the dead run's leases lapse
    rerun = rerun_failed_syncs(return_state=True)
    assert rerun.is_completed(), rerun.message
    assert documents(xero_server, main["tenant_id"]) == n
    assert not ledger.entries(integration_ids=[main["id"]], outcomes=RETRYABLE)

    rest = sync_bills(return_state=True)  # what the interrupted run never read
    assert rest.is_completed(), rest.message
    complete = ledger.entries(integration_ids=[main["id"]], outcomes=[Outcome.COMPLETE])
    assert documents(xero_server, main["tenant_id"]) == len(complete) >= n
    assert limits.held(main["tenant_id"]) == 0


def test_a_project_database_that_does_not_answer_fails_the_run_in_a_line(
    app_env, clean_settings
):
    from sandbox.serve import free_port

    clean_settings.setenv(
        "BILLSYNC_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    )
    get_settings.cache_clear()
    for flow in (sync_bills, rerun_failed_syncs):
        state = flow(return_state=True)
        assert state.is_failed(), state
        assert state.message.startswith("interrupted: the project database did not answer")
        assert "Connection refused" in state.message


def test_a_task_runner_outside_the_process_is_refused_with_a_clear_error(sync_env):
    from prefect.task_runners import PrefectTaskRunner

    state = sync_bills.with_options(task_runner=PrefectTaskRunner())(return_state=True)
    assert state.is_failed()
    assert "runs its tasks on Prefect's ThreadPoolTaskRunner" in state.message
    assert "PrefectTaskRunner" in state.message
