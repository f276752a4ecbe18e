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

Where it lives: this module the entry point (``main``, ``--only`` and the phases); start-up
and teardown in ``startup.py``; launching and watching flow runs in ``flowruns.py``; scenarios
1–5 in ``scenarios.py``; 6–8 in ``outages.py``, with the outages themselves and their probes
in ``outage_tools.py``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deployments.cluster.outages import (
    postgres_restarted_mid_sync,
    server_restarted_mid_sync_30,
    server_restarted_mid_sync_120,
)
from deployments.cluster.postgres import PrivatePostgres
from deployments.cluster.processes import ClusterError, Databases, Processes
from deployments.cluster.scenarios import (
    concurrent_overlapping_runs,
    killed_worker_then_rerun,
    limits_held,
    limits_under_load,
    one_refresh_per_expiry,
    zombies_crashed,
)
from deployments.cluster.startup import (
    Cluster,
    connect,
    deploy,
    start,
    start_worker,
    teardown,
    wait_workers,
)


def _phase(cluster: Cluster, name: str, fn: Callable[[Cluster], None]) -> None:
    started = time.monotonic()
    print(f"-- {name}", flush=True)
    fn(cluster)
    seconds = round(time.monotonic() - started, 1)
    cluster.figures.setdefault("durations (s)", {})[name] = seconds
    print(f"   ok ({seconds} s)", flush=True)


def scenarios() -> list[tuple[str, Callable[[Cluster], None]]]:
    """The numbered phases in order; the number before the first "." is what ``--only`` names."""
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
        teardown(procs, dbs, project_pg, work, remove_work=ok and not args.keep_logs)
