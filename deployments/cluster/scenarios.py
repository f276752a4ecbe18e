"""Scenarios 1–5 (numbered as in ``run.py``'s docstring): exactly once, killed workers,
Xero's limits across workers, one token refresh per expiry, zombie runs marked Crashed."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx

from deployments.cluster.flowruns import (
    completed,
    documents_of,
    entered_through_prepare,
    launch,
    wait_runs,
)
from deployments.cluster.processes import ClusterError, descendants, kill_pids
from deployments.cluster.startup import (
    ACCESS_TOKEN_SECONDS,
    LOAD_ORG,
    LOAD_RUNS,
    NORTH,
    RERUN,
    SHARED,
    SOUTH,
    SYNC,
    ZOMBIE_WITHIN_SECONDS,
    Cluster,
    project_settings,
    restart_workers,
    start_worker,
    wait_workers,
)


def check_delivery(cluster: Cluster, names: list[str]) -> None:
    from deployments.cluster.checks import exactly_once, m3ter_bills

    settings = project_settings()
    bills = m3ter_bills(settings)
    deliveries = []
    for name in names:
        made = cluster.integrations[name]
        deliveries.append(
            exactly_once(
                settings, cluster.xero_url, made.integration_id, name, made.tenant_id, bills
            )
        )
        if deliveries[-1].complete == 0:
            raise ClusterError(f"{name}: no bill reached Xero at all")
    cluster.figures["bills in m3ter"] = len(bills)
    cluster.figures["documents per tenant"] = {d.integration: d.documents for d in deliveries}


def concurrent_overlapping_runs(cluster: Cluster) -> None:
    first = launch(cluster, SYNC, "sync [shared, north]", integrations=[SHARED, NORTH])
    second = launch(cluster, SYNC, "sync [shared, south]", integrations=[SHARED, SOUTH])
    completed(cluster, [first, second])
    print(f"   ran on workers: {first.worker}, {second.worker}")
    if first.worker and second.worker and first.worker == second.worker:
        raise ClusterError("both overlapping runs ran on one worker (each has --limit 1)")
    for run in (first, second):
        entered_through_prepare(run)  # the engine behaviour, switched on by the pull step
    check_delivery(cluster, [SHARED, NORTH, SOUTH])


def _add_bills(cluster: Cluster, count: int) -> None:
    answer = httpx.post(f"{cluster.m3ter_url}/_sandbox/bills/bulk", json={"count": count})
    if answer.status_code != 201:
        raise ClusterError(f"m3ter sandbox refused new bills: {answer.status_code} {answer.text}")


def killed_worker_then_rerun(cluster: Cluster) -> None:
    from store.factory import database
    from store.ledger import Ledger, Outcome

    _add_bills(cluster, 200)
    before = documents_of(cluster, NORTH)
    faults = {"slow_rate": 1.0, "slow_seconds": 0.4, "seed": 5}  # long enough to land a kill
    httpx.post(f"{cluster.xero_url}/_sandbox/faults", json=faults).raise_for_status()
    try:
        run = launch(cluster, SYNC, "sync [north] (to be killed)", integrations=[NORTH])

        def posting(flow_runs: list[Any]) -> bool:
            if flow_runs[0].state is not None and flow_runs[0].state.is_final():
                raise ClusterError("the sync ended before it could be killed")
            return run.worker is not None and documents_of(cluster, NORTH) > before

        wait_runs(cluster, [run], until=posting)
        time.sleep(0.6)  # let another batch reach Xero, maybe not yet the ledger
        assert run.pid is not None and run.worker is not None
        worker_pid = cluster.procs.pid(run.worker)
        victims = [run.pid, *descendants(run.pid), worker_pid]
        kill_pids(victims, signal.SIGKILL)
        cluster.killed.append(run)
        cluster.killed_at = time.time()
        cluster.procs.forget(run.worker)
        print(f"   SIGKILLed {run.worker} (pid {worker_pid}) and flow run pid {run.pid}")
    finally:
        httpx.delete(f"{cluster.xero_url}/_sandbox/faults")
    at_kill = documents_of(cluster, NORTH) - before
    north = cluster.integrations[NORTH].integration_id
    ledger = Ledger(database(project_settings())).snapshot(north)
    started = {b for b, e in ledger.items() if e.outcome is Outcome.STARTED}
    cluster.figures["kill"] = {"new documents at kill": at_kill, "ledger STARTED": len(started)}
    if at_kill <= 0:
        raise ClusterError("the kill landed before any new document reached Xero")

    start_worker(cluster, run.worker)  # a replacement, as a supervisor would
    wait_workers(cluster)
    rerun = launch(cluster, RERUN, "rerun_failed_syncs [north]", integration=NORTH)
    completed(cluster, [rerun])
    again = launch(cluster, SYNC, "sync [north] after the kill", integrations=[NORTH])
    completed(cluster, [again])
    check_delivery(cluster, [NORTH])  # the others were not asked to sync the new bills


def zombies_crashed(cluster: Cluster) -> None:
    """Wait until no flow run is Running (the killed ones have no process to end them), then
    check the killed run was marked Crashed by the automation, within its window."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    if not cluster.killed:
        raise ClusterError("no flow run was killed before this check")
    deadline = cluster.killed_at + ZOMBIE_WITHIN_SECONDS + 120
    running_only = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    )
    with get_client(sync_client=True) as client:
        while True:
            running = client.read_flow_runs(flow_run_filter=running_only)
            if not running:
                break
            if time.time() > deadline:
                names = [f"{r.name} ({r.id})" for r in running]
                raise ClusterError(f"flow runs still Running long after the kill: {names}")
            time.sleep(2)
        crashed = []
        for run in cluster.killed:
            flow_run = client.read_flow_run(run.flow_run_id)
            if flow_run.state is None or flow_run.state.type is not StateType.CRASHED:
                raise ClusterError(f"{run.label} ended {flow_run.state_name}, not Crashed")
            crashed.append(round(flow_run.state.timestamp.timestamp() - cluster.killed_at, 1))
    cluster.figures["killed runs Crashed after (s)"] = crashed


def limits_held(cluster: Cluster) -> None:
    """The sync keeps each tenant's limits in the project database (``store.tenant_limits``),
    and Xero saw them kept."""
    from deployments.cluster.checks import within_xero_limits
    from store.factory import database
    from store.tenant_limits import TenantLimits

    tenants = [c.tenant_id for c in cluster.integrations.values()]
    limits = TenantLimits(database(project_settings()))
    unknown = [name for name, c in cluster.integrations.items() if not limits.known(c.tenant_id)]
    if unknown:
        raise ClusterError(f"the sync made no tenant limits in the project database for {unknown}")
    figures = within_xero_limits(cluster.xero_url, tenants)
    cluster.figures["xero calls"] = figures.calls
    cluster.figures["max concurrent calls per tenant"] = figures.max_concurrency
    cluster.figures["max calls per scaled minute per tenant"] = figures.max_calls_per_minute
    cluster.figures["429s by tenant and limit"] = figures.refused
    cluster.figures["429s for concurrency/minute"] = figures.refused_for_limits


def limits_under_load(cluster: Cluster) -> None:
    """More posters on one tenant than Xero allows calls at once: the tenant limits must hold.

    LOAD_RUNS integrations on one organisation, each with its own accounts (so their invoice
    numbers never meet), synced at once by workers restarted with room for several runs each.
    """
    from deployments.cluster.checks import m3ter_accounts, m3ter_bills, within_xero_limits
    from deployments.connect import connect_integration

    # Batches of 2 and answers slowed by 0.1 s: each run wants a call in flight all the time,
    # so the six together ask for more than 5 at once and more than 60 a scaled minute.
    restart_workers(cluster, (LOAD_RUNS + 1) // 2, {"BILLSYNC_SYNC_BATCH_SIZE": "2"})
    slow = {"slow_rate": 1.0, "slow_seconds": 0.1, "seed": 7}
    httpx.post(f"{cluster.xero_url}/_sandbox/faults", json=slow).raise_for_status()
    accounts = m3ter_accounts(project_settings())
    shares = {f"L{n} load": accounts[n::LOAD_RUNS] for n in range(LOAD_RUNS)}
    for name, share in shares.items():
        cluster.integrations[name] = connect_integration(
            cluster.xero_url, name, LOAD_ORG, account_ids=share
        )
    runs = [launch(cluster, SYNC, f"sync [{n}]", integrations=[n]) for n in shares]
    try:
        completed(cluster, runs)
    finally:
        httpx.delete(f"{cluster.xero_url}/_sandbox/faults")
    print(f"   ran on workers: {sorted(str(r.worker) for r in runs)}")
    restart_workers(cluster)  # back to one run each, the batch size of every other scenario
    from deployments.cluster.checks import exactly_once

    for name, share in shares.items():
        made = cluster.integrations[name]
        bills = m3ter_bills(project_settings(), set(share))
        exactly_once(
            project_settings(),
            cluster.xero_url,
            made.integration_id,
            name,
            made.tenant_id,
            bills,
            tenant_shared=True,
        )
    load = within_xero_limits(cluster.xero_url, [cluster.integrations["L0 load"].tenant_id])
    if load.refused_for_limits:
        raise ClusterError(
            f"Xero refused {load.refused_for_limits} call(s) for concurrency or the minute "
            "limit: the tenant limits did not hold the six runs back"
        )
    cluster.figures["load tenant"] = {
        "runs at once": LOAD_RUNS,
        "calls": load.calls,
        "max concurrent": load.max_concurrency,
        "max per scaled minute": load.max_calls_per_minute,
        "429s (concurrency/minute)": load.refused_for_limits,
    }


def _expire_shared_token(cluster: Cluster) -> None:
    """Move the Xero clock past the token's life, and our stored expiry with it.

    Our processes read the real clock, the sandbox its own: both must agree the access token
    is spent, as they would after half an hour had really passed.
    """
    from store.credentials import TokenSet
    from tasks.xero.credentials import credentials

    httpx.post(
        f"{cluster.xero_url}/_sandbox/clock", json={"advance_seconds": ACCESS_TOKEN_SECONDS + 60}
    ).raise_for_status()
    store = credentials(project_settings())
    credential_id = cluster.integrations[SHARED].credential_id
    record = store.read_tokens(credential_id)
    assert record.tokens is not None
    version = store.try_lease(credential_id, record.version, 0.001)
    if version is None:
        raise ClusterError("could not age the shared credential's token (lease refused)")
    aged = TokenSet(
        access_token=record.tokens.access_token.get_secret_value(),
        refresh_token=record.tokens.refresh_token.get_secret_value(),
        expires_at=time.time() - 1,
    )
    if not store.store_refreshed(credential_id, version, aged):
        raise ClusterError("could not age the shared credential's token (version moved)")


def one_refresh_per_expiry(cluster: Cluster) -> None:
    from deployments.cluster.checks import xero_state

    _add_bills(cluster, 100)  # work for both runs, so both need a token
    _expire_shared_token(cluster)
    before = xero_state(cluster.xero_url)["refreshes"]
    runs = [
        launch(cluster, SYNC, f"sync [shared] #{n} after expiry", integrations=[SHARED])
        for n in (1, 2)
    ]
    completed(cluster, runs)
    workers = {r.worker for r in runs}
    print(f"   ran on workers: {', '.join(str(w) for w in workers)}")
    if None not in workers and len(workers) != 2:
        raise ClusterError(f"both syncs ran on one worker: {workers}")
    after = xero_state(cluster.xero_url)["refreshes"]
    cluster.figures["token refreshes for one expiry"] = after - before
    if after - before != 1:
        raise ClusterError(f"expected exactly 1 token refresh, Xero saw {after - before}")
    check_delivery(cluster, [SHARED])
