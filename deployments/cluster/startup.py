"""Start-up and teardown of the cluster: sandboxes, Prefect server, deployments, workers.

``start`` brings up the Xero and m3ter sandboxes, a Prefect server on a fresh database of the
shared PostgreSQL, and the project database on a private instance (``postgres.py``); ``deploy``
creates the work pool and every deployment of ``prefect.yaml``; ``start_worker`` adds a process
worker; ``connect`` makes the three integrations of scenarios 1–5; ``teardown`` stops it all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.cluster.postgres import PrivatePostgres
from deployments.cluster.processes import ClusterError, Databases, Processes, wait_http
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


def py(*args: str) -> list[str]:
    return [sys.executable, *args]


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
        py("-m", "sandbox.xero", "--port", str(xero_port), "--time-scale", "0.05",
            "--orgs", ",".join((*ORGS, LOAD_ORG, *OUTAGE_ORGS))),
        common,
        ROOT,
    )  # fmt: skip
    m3ter = procs.start(
        "m3ter-sandbox",
        py("-m", "sandbox.m3ter", "--port", str(m3ter_port), "--seed", "11",
            "--accounts", str(args.accounts), "--bills-per-account", "2"),
        common,
        ROOT,
    )  # fmt: skip
    server = procs.start(
        SERVER,
        py("-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(api_port)),
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
        py("-m", "prefect", *args),
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
        py("-m", "prefect", "worker", "start", "--pool", POOL, "--name", name,
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


def project_settings() -> Any:
    """This process's settings, once ``start`` has pointed its environment at the cluster."""
    from config.settings import get_settings

    return get_settings()


def teardown(
    procs: Processes,
    dbs: Databases,
    project_pg: PrivatePostgres | None,
    work: Path,
    remove_work: bool,
) -> None:
    """Everything ``start`` started stopped (by process id), its databases dropped, the private
    PostgreSQL removed, and the work folder (logs included) too when ``remove_work``."""
    from store.factory import forget_engines

    forget_engines()
    procs.stop_all()
    dbs.drop_all()
    if project_pg is not None:
        project_pg.remove()
    if remove_work:
        shutil.rmtree(work, ignore_errors=True)
