"""Start the cluster, run the scenarios, print the figures, stop everything.

The scenarios, each a set of assertions (``ClusterError`` says which failed and why):

1. two ``sync_bills`` runs at once over overlapping integrations, one per worker: one document
   per bill version in each Xero tenant, and the ledger agrees;
2. a worker and its flow-run process SIGKILLed mid-run, a replacement worker, then
   ``rerun_failed_syncs`` and ``sync_bills``: every bill sent exactly once;
3. Xero's per-tenant limits held across workers (≤ 5 at once, ≤ 60 per scaled minute, the
   sandbox's audit clean), through the tenant limits the sync keeps in the project database
   (``store.tenant_limits``);
4. the Xero clock moved past the access token's life, two syncs of one credential at once on
   both workers: exactly one refresh reached Xero;
5. the flow runs killed in 2 marked Crashed by the zombie automation
   (``deployments.automations``), none left Running;
6. the Prefect server SIGTERMed while a sync posts, started again 30 s later on the same port
   and database: the run finishes by itself (Completed) within 60 s of the API's return;
7. the same with the server down 120 s: the run ends (Completed, Failed or Crashed by the
   zombie automation) within 60 s of the API's return;
8. the project's PostgreSQL (a private instance, ``postgres.py``) stopped fast mid-sync and
   started again: the run rides it out or fails cleanly.

After each of 6–8 (``outages.py``) the workers are alive and take the next runs, every bill is
in Xero exactly once after the next run, no flow run is left Running past the zombie window,
the tenant holds no Xero slot, and the time from the return to the run's end is a figure.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deployments.cluster.postgres import PrivatePostgres
from deployments.cluster.processes import (
    ClusterError,
    Databases,
    Processes,
    alive,
    descendants,
    kill_pids,
    parent_of,
    wait_http,
)
from sandbox.serve import free_port

ROOT = Path(__file__).resolve().parents[2]
POOL = "billsync-process"
SYNC = "sync_bills/sync_bills"
RERUN = "rerun_failed_syncs/rerun_failed_syncs"
ORGS = ("Cluster Shared Ltd", "Cluster North Ltd", "Cluster South Ltd")
LOAD_ORG = "Cluster Load Ltd"  # one tenant fed by LOAD_RUNS integrations at once
LOAD_RUNS = 6
OUTAGE_ORGS = ("Cluster Outage 30 Ltd", "Cluster Outage 120 Ltd", "Cluster Outage DB Ltd")
SERVER = "prefect-server"  # the Processes name of the Prefect server
SHARED, NORTH, SOUTH = "A shared", "B north", "C south"  # created in this order: list order
ACCESS_TOKEN_SECONDS = 1800
RUN_TIMEOUT = 240.0
HEARTBEAT_SECONDS = 30  # the workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY (Prefect's least)
ZOMBIE_WITHIN_SECONDS = 75.0  # two and a half heartbeats


@dataclass
class Cluster:
    """What is running and how to reach it."""

    procs: Processes
    env: dict[str, str]
    xero_url: str
    m3ter_url: str
    api_url: str
    postgres: PrivatePostgres  # the project database's server, restarted in scenario 8
    workers: list[str] = field(default_factory=list)
    # name -> deployments.connect.Connected
    integrations: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    runs: int = 0
    killed: list[Any] = field(default_factory=list)  # Runs SIGKILLed in scenario 2
    killed_at: float = 0.0  # wall clock of the kill


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def _phase(cluster: Cluster, name: str, fn: Callable[[Cluster], None]) -> None:
    started = time.monotonic()
    print(f"-- {name}", flush=True)
    fn(cluster)
    seconds = round(time.monotonic() - started, 1)
    cluster.figures.setdefault("durations (s)", {})[name] = seconds
    print(f"   ok ({seconds} s)", flush=True)


# -- start-up --------------------------------------------------------------------------------
def start(
    procs: Processes,
    dbs: Databases,
    project_pg: PrivatePostgres,
    work: Path,
    args: argparse.Namespace,
) -> Cluster:
    from cryptography.fernet import Fernet

    tag = f"{os.getpid()}"
    prefect_db = dbs.create(f"billsync_cluster_prefect_{tag}")
    pg = args.postgres.rstrip("/")
    project_pg.init()
    project_pg.start()
    project_url = project_pg.create_database("billsync")
    xero_port, m3ter_port, api_port = free_port(), free_port(), free_port()
    xero_url, m3ter_url = f"http://127.0.0.1:{xero_port}", f"http://127.0.0.1:{m3ter_port}"
    api_url = f"http://127.0.0.1:{api_port}/api"

    from deployments.serve import sandbox_settings

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BILLSYNC_"))}
    prefect_home = work / "prefect-home"
    common = {**base, "PREFECT_HOME": str(prefect_home), "PYTHONUNBUFFERED": "1"}
    server_env = {
        **common,
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg}/{prefect_db}",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # No run from sync_bills' cron schedule may land inside the measured scenarios.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    env = {
        **common,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
        "BILLSYNC_PROJECT_DIR": str(ROOT),
        "BILLSYNC_DATABASE_URL": project_url,
        "BILLSYNC_DATA_DIR": str(work / "data"),
        "BILLSYNC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        **sandbox_settings(xero_url, m3ter_url),
        "BILLSYNC_SYNC_BATCH_SIZE": str(args.batch_size),
        "BILLSYNC_SYNC_RETRY_BASE_SECONDS": "0.05",
        "BILLSYNC_SYNC_RETRY_MAX_SECONDS": "1",
        "BILLSYNC_SYNC_MAX_ATTEMPTS": "10",
        "BILLSYNC_XERO_MINUTE_SECONDS": "3",  # the Xero sandbox's minute at time scale 0.05
    }
    xero = procs.start(
        "xero-sandbox",
        _py("-m", "sandbox.xero", "--port", str(xero_port), "--time-scale", "0.05",
            "--orgs", ",".join((*ORGS, LOAD_ORG, *OUTAGE_ORGS))),
        common,
        ROOT,
    )  # fmt: skip
    m3ter = procs.start(
        "m3ter-sandbox",
        _py("-m", "sandbox.m3ter", "--port", str(m3ter_port), "--seed", "11",
            "--accounts", str(args.accounts), "--bills-per-account", "2"),
        common,
        ROOT,
    )  # fmt: skip
    server = procs.start(
        SERVER,
        _py("-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(api_port)),
        server_env,
        ROOT,
    )
    wait_http(f"{xero_url}/_sandbox/state", xero, "the Xero sandbox")
    wait_http(f"{m3ter_url}/_sandbox/state", m3ter, "the m3ter sandbox")
    wait_http(f"{api_url}/health", server, "the Prefect server", timeout=180)

    # This process is a client too: the project database, the Prefect API.
    for key in [k for k in os.environ if k.startswith(("PREFECT_", "BILLSYNC_"))]:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "BILLSYNC_"))})
    from config.settings import get_settings
    from store.factory import database

    get_settings.cache_clear()
    database(get_settings())  # migrate once, before any worker races to it
    return Cluster(procs, env, xero_url, m3ter_url, api_url, project_pg)


def _cli(cluster: Cluster, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(  # noqa: S603 (our own fixed commands)
        _py("-m", "prefect", *args),
        env=cluster.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def deploy(cluster: Cluster) -> None:
    """The work pool, then every deployment of prefect.yaml, the way a user does it."""
    _cli(cluster, "work-pool", "create", POOL, "--type", "process")
    _cli(cluster, "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
    from prefect.client.orchestration import get_client

    from deployments.catalog import FLOWS

    with get_client(sync_client=True) as client:
        found = {f"{d.flow_id}/{d.name}": d for d in client.read_deployments()}
        names = {d.name for d in found.values()}
        missing = {name for _, name in FLOWS} - names
        if missing:
            raise ClusterError(f"prefect deploy did not create: {sorted(missing)}")
        wrong_pool = [d.name for d in found.values() if d.work_pool_name != POOL]
        if wrong_pool:
            raise ClusterError(f"deployments not on {POOL}: {wrong_pool}")
    cluster.figures["deployments"] = len(found)
    from deployments.automations import ensure_zombie_automation

    ensure_zombie_automation(ZOMBIE_WITHIN_SECONDS)


def start_worker(
    cluster: Cluster, name: str, limit: int = 1, env: dict[str, str] | None = None
) -> None:
    """A process worker; ``--limit 1`` puts two runs launched together on two workers."""
    cluster.procs.start(
        name,
        _py("-m", "prefect", "worker", "start", "--pool", POOL, "--name", name,
            "--limit", str(limit)),
        {**cluster.env, **(env or {})},
        ROOT,
    )  # fmt: skip
    if name not in cluster.workers:
        cluster.workers.append(name)


def restart_workers(cluster: Cluster, limit: int = 1, env: dict[str, str] | None = None) -> None:
    """Every worker stopped and started again with ``limit`` and ``env``, then online."""
    for name in list(cluster.workers):
        cluster.procs.stop(name)
        start_worker(cluster, name, limit, env)
    wait_workers(cluster)


def wait_workers(cluster: Cluster, timeout: float = 90) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            online = {w.name for w in client.read_workers_for_work_pool(POOL)}
        if set(cluster.workers) <= online:
            return
        for name in cluster.workers:
            proc = cluster.procs.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise ClusterError(f"worker {name} exited:\n{cluster.procs.tail(name)}")
        time.sleep(0.5)
    raise ClusterError(f"workers {cluster.workers} did not all come online in {timeout:.0f} s")


def connect(cluster: Cluster) -> None:
    from deployments.connect import connect_integration

    for name, org in zip((SHARED, NORTH, SOUTH), ORGS, strict=True):
        cluster.integrations[name] = connect_integration(cluster.xero_url, name, org)


# -- flow runs on the cluster ----------------------------------------------------------------
@dataclass
class Run:
    """A deployment run and the worker whose process ran it (seen while it ran)."""

    flow_run_id: Any
    label: str
    worker: str | None = None
    pid: int | None = None


def launch(cluster: Cluster, deployment: str, label: str, **parameters: Any) -> Run:
    from prefect.deployments import run_deployment

    flow_run = run_deployment(deployment, parameters=parameters, timeout=0)
    cluster.runs += 1
    return Run(flow_run.id, label)


def _observe(cluster: Cluster, run: Run, flow_run: Any) -> None:
    """Note which worker's process tree holds the flow run's process."""
    raw = getattr(flow_run, "infrastructure_pid", None)
    if not raw or run.worker is not None:
        return
    pid = int(str(raw).rsplit(":", 1)[-1])
    if not alive(pid):
        return
    run.pid = pid
    for name in cluster.workers:
        proc = cluster.procs.procs.get(name)
        if proc is not None and (parent_of(pid) == proc.pid or pid in descendants(proc.pid)):
            run.worker = name


def wait_runs(
    cluster: Cluster,
    runs: list[Run],
    until: Callable[[list[Any]], bool] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> list[Any]:
    """Poll until every run is final (or ``until`` says so); fail on timeout.

    The API may be away (scenarios 6 and 7 restart it): a failed poll is retried until the
    deadline, and the timeout names the last error if no poll succeeded since.
    """
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    flow_runs: list[Any] = []
    error: Exception | None = None
    while True:
        try:
            with get_client(sync_client=True) as client:
                flow_runs = [client.read_flow_run(r.flow_run_id) for r in runs]
            error = None
        except (httpx.HTTPError, OSError) as exc:
            error = exc
        if error is None:
            for run, flow_run in zip(runs, flow_runs, strict=True):
                _observe(cluster, run, flow_run)
            if until is not None:
                if until(flow_runs):
                    return flow_runs
            elif all(fr.state is not None and fr.state.is_final() for fr in flow_runs):
                return flow_runs
        if time.monotonic() > deadline:
            seen = zip(runs, flow_runs, strict=True) if flow_runs else []
            states = {r.label: fr.state_name for r, fr in seen}
            unreachable = f"; the API did not answer: {error!r}" if error else ""
            raise ClusterError(f"flow runs not done in {timeout:.0f} s: {states}{unreachable}")
        time.sleep(0.3)


def completed(cluster: Cluster, runs: list[Run]) -> None:
    flow_runs = wait_runs(cluster, runs)
    for run, flow_run in zip(runs, flow_runs, strict=True):
        if not flow_run.state.is_completed():
            raise ClusterError(f"{run.label} ended {flow_run.state_name}: {flow_run.state.message}")


# -- scenarios -------------------------------------------------------------------------------
def _settings() -> Any:
    from config.settings import get_settings

    return get_settings()


def check_delivery(cluster: Cluster, names: list[str]) -> None:
    from deployments.cluster.checks import exactly_once, m3ter_bills

    bills = m3ter_bills(_settings())
    deliveries = []
    for name in names:
        made = cluster.integrations[name]
        deliveries.append(
            exactly_once(
                _settings(), cluster.xero_url, made.integration_id, name, made.tenant_id, bills
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
    check_delivery(cluster, [SHARED, NORTH, SOUTH])


def _add_bills(cluster: Cluster, count: int) -> None:
    answer = httpx.post(f"{cluster.m3ter_url}/_sandbox/bills/bulk", json={"count": count})
    if answer.status_code != 201:
        raise ClusterError(f"m3ter sandbox refused new bills: {answer.status_code} {answer.text}")


def _documents(cluster: Cluster, name: str) -> int:
    from deployments.cluster.checks import tenant_documents, xero_state

    return tenant_documents(xero_state(cluster.xero_url), cluster.integrations[name].tenant_id)[1]


def killed_worker_then_rerun(cluster: Cluster) -> None:
    from store.factory import database
    from store.ledger import Ledger, Outcome

    _add_bills(cluster, 200)
    before = _documents(cluster, NORTH)
    faults = {"slow_rate": 1.0, "slow_seconds": 0.4, "seed": 5}  # long enough to land a kill
    httpx.post(f"{cluster.xero_url}/_sandbox/faults", json=faults).raise_for_status()
    try:
        run = launch(cluster, SYNC, "sync [north] (to be killed)", integrations=[NORTH])

        def posting(flow_runs: list[Any]) -> bool:
            if flow_runs[0].state is not None and flow_runs[0].state.is_final():
                raise ClusterError("the sync ended before it could be killed")
            return run.worker is not None and _documents(cluster, NORTH) > before

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
    at_kill = _documents(cluster, NORTH) - before
    ledger = Ledger(database(_settings())).snapshot(cluster.integrations[NORTH].integration_id)
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
    limits = TenantLimits(database(_settings()))
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
    accounts = m3ter_accounts(_settings())
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
        bills = m3ter_bills(_settings(), set(share))
        exactly_once(
            _settings(),
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
    store = credentials(_settings())
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


# -- entry point -----------------------------------------------------------------------------
def scenarios() -> list[tuple[str, Callable[[Cluster], None]]]:
    """The numbered phases in order; the number before the first "." is what ``--only`` names."""
    from deployments.cluster.outages import (
        postgres_restarted_mid_sync,
        server_restarted_mid_sync_30,
        server_restarted_mid_sync_120,
    )

    return [
        ("1. concurrent overlapping runs", concurrent_overlapping_runs),
        ("2. killed worker, rerun", killed_worker_then_rerun),
        ("3. Xero limits across workers", limits_held),
        ("4. one refresh per expiry", one_refresh_per_expiry),
        ("3b. one tenant, more posters than Xero allows", limits_under_load),
        ("3. Xero limits (again, at the end)", limits_held),
        ("5. killed runs marked Crashed", zombies_crashed),
        ("6. Prefect server restarted mid-sync (30 s)", server_restarted_mid_sync_30),
        ("7. Prefect server restarted mid-sync (120 s)", server_restarted_mid_sync_120),
        ("8. project PostgreSQL restarted mid-sync", postgres_restarted_mid_sync),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.cluster", description=__doc__)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BILLSYNC_CLUSTER_POSTGRES", "postgres@127.0.0.1:5432"),
        help="user@host:port of a PostgreSQL that lets us create databases (the Prefect server's)",
    )
    parser.add_argument("--accounts", type=int, default=150, help="m3ter accounts (2 bills each)")
    parser.add_argument("--batch-size", type=int, default=5, help="small: more Xero calls")
    # For working on one scenario: "--only 6,8" runs the set-up and scenarios 6 and 8 only.
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)
    # Run every scenario even after one failed; the failures are listed at the end.
    parser.add_argument("--keep-going", action="store_true", help=argparse.SUPPRESS)
    # Keep the logs folder even when everything passed.
    parser.add_argument("--keep-logs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # SIGTERM (a cancelled CI job) ends us through ``finally`` too, as Ctrl-C does: Python's
    # default would exit at once and leave the servers, workers and PostgreSQL running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    only = {n.strip() for n in args.only.split(",") if n.strip()}

    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="billsync-cluster-"))
    procs = Processes(work / "logs")
    dbs = Databases(f"postgresql://{args.postgres}/postgres")
    project_pg: PrivatePostgres | None = None
    failed: list[str] = []
    ok = False
    try:
        print(f"cluster check: logs in {work / 'logs'}", flush=True)
        project_pg = PrivatePostgres(work / "logs")
        cluster = start(procs, dbs, project_pg, work, args)
        _phase(cluster, "deploy prefect.yaml", deploy)
        for n in (1, 2):
            start_worker(cluster, f"cluster-worker-{n}")
        _phase(cluster, "2 workers online", wait_workers)
        _phase(cluster, "integrations", connect)
        for name, fn in scenarios():
            if only and name.split(".", 1)[0] not in only:
                continue
            try:
                _phase(cluster, name, fn)
            except ClusterError as exc:
                if not args.keep_going:
                    raise
                print(f"   FAILED: {exc}", flush=True)
                failed.append(f"{name}: {exc}")
        cluster.figures["flow runs launched"] = cluster.runs
        cluster.figures["total (s)"] = round(time.monotonic() - began, 1)
        print("\ncluster check passed:" if not failed else "\ncluster check figures:")
        for key, value in cluster.figures.items():
            print(f"  {key}: {value}")
        if failed:
            raise ClusterError(f"{len(failed)} scenario(s) failed:\n" + "\n".join(failed))
        ok = True
        return 0
    except ClusterError as exc:
        for name in procs.procs:
            print(f"\n[last lines of {name}]\n{procs.tail(name, 15)}", file=sys.stderr)
        print(f"\ncluster check FAILED: {exc}", file=sys.stderr)
        print(f"logs: {work / 'logs'}", file=sys.stderr)
        return 1
    finally:
        from store.factory import forget_engines

        forget_engines()
        procs.stop_all()
        dbs.drop_all()
        if project_pg is not None:
            project_pg.remove()
        if ok and not args.keep_logs:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
