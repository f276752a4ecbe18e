"""The outages of scenarios 6–8 and the probes that judge them (``outages.py`` runs them).

``restart_prefect_server`` and ``restart_project_postgres`` take the Prefect server or the
project's PostgreSQL away and bring it back, returning an ``Outage`` with the wall-clock times;
``watching`` samples a tenant's documents meanwhile. The probes then measure the aftermath:
no flow run left Running, no Xero slot held, workers alive, the flow-run process gone, what
the ledger holds unfinished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx

from deployments.cluster.flowruns import Run, documents_of
from deployments.cluster.processes import (
    ClusterError,
    alive,
    descendants,
    wait_http,
    wait_port_free,
)
from deployments.cluster.startup import (
    SERVER,
    Cluster,
    project_settings,
    start_worker,
    wait_workers,
)

# Longer than outages.SLOW_SECONDS: the posts in flight when it goes are answered while it is away.
DB_DOWN_SECONDS = 8.0
# A flow-run process is gone this long after its run's final state. After an outage Prefect's
# own cancellation observer in that process gives up only after its retries: 14–31 s seen.
PROCESS_EXIT_SECONDS = 60.0


@dataclass(frozen=True)
class Outage:
    """What went away and came back, in wall-clock seconds (to compare with run states)."""

    what: str  # "API" or "DB"
    gone_at: float
    back_at: float
    stop_seconds: float  # from the signal to the process(es) gone
    graceful: bool  # ended on SIGTERM (or pg_ctl's fast stop), no SIGKILL needed


@dataclass
class Watch:
    """The tenant's document count, sampled every second while the outage lasts."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def last_growth(self) -> float | None:
        """Wall clock of the last sample that saw more documents than the one before."""
        grew = [t for (t, n), (_, m) in zip(self.samples[1:], self.samples, strict=False) if n > m]
        return grew[-1] if grew else None


@contextmanager
def watching(cluster: Cluster, name: str) -> Iterator[Watch]:
    """Sample the documents of ``name``'s tenant while the block runs; the first sample is
    taken before it starts, the last after it ends."""
    watch, done = Watch([(time.time(), documents_of(cluster, name))]), threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            with suppress(httpx.HTTPError, OSError):
                watch.samples.append((time.time(), documents_of(cluster, name)))

    thread = threading.Thread(target=sample, name="document-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        done.set()
        thread.join(timeout=10)
        with suppress(httpx.HTTPError, OSError):
            watch.samples.append((time.time(), documents_of(cluster, name)))


def clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall % 1 * 10)}"


def _note_all(cluster: Cluster, text: str) -> None:
    """The same marked line in every log, so the engineer can find the outage in each."""
    for name in list(cluster.procs.procs):
        cluster.procs.note(name, text)


def restart_prefect_server(cluster: Cluster, down_seconds: float) -> Outage:
    """SIGTERM the server's whole process tree, keep it down ``down_seconds`` (from the
    signal), start it again with the same command, environment, port and database, and wait
    for ``/api/health``."""
    port = urlparse(cluster.api_url).port
    assert port is not None
    pid = cluster.procs.pid(SERVER)
    tree = [pid, *descendants(pid)]
    _note_all(cluster, f"Prefect server SIGTERM, down {down_seconds:.0f} s")
    gone = time.time()
    graceful = cluster.procs.stop(SERVER)
    stopped = time.time()
    left = [p for p in tree if alive(p)]
    if left:
        raise ClusterError(f"Prefect server processes {left} outlived SIGTERM and SIGKILL")
    wait_port_free(port, "the Prefect server")
    time.sleep(max(0.0, gone + down_seconds - time.time()))
    proc = cluster.procs.restart(SERVER)
    wait_http(f"{cluster.api_url}/health", proc, "the restarted Prefect server", timeout=180)
    back = time.time()
    _note_all(cluster, "Prefect server back (/api/health answers)")
    return Outage("API", gone, back, round(stopped - gone, 1), graceful)


def restart_project_postgres(cluster: Cluster, down_seconds: float = DB_DOWN_SECONDS) -> Outage:
    """The project database stopped fast (sessions cut, transactions rolled back), kept down,
    started again on the same port and files."""
    _note_all(cluster, f"project PostgreSQL stopped (fast), down {down_seconds:.0f} s")
    gone = time.time()
    cluster.postgres.stop("fast")
    stopped = time.time()
    time.sleep(max(0.0, gone + down_seconds - time.time()))
    cluster.postgres.start()
    back = time.time()
    _note_all(cluster, "project PostgreSQL back")
    return Outage("DB", gone, back, round(stopped - gone, 1), True)


def _running() -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    running_only = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    )
    with get_client(sync_client=True) as client:
        return [f"{r.name} ({r.id})" for r in client.read_flow_runs(flow_run_filter=running_only)]


def none_running(deadline: float) -> float:
    """Seconds until no flow run was Running; ClusterError if some still are at ``deadline``."""
    started = time.time()
    while True:
        try:
            running = _running()
        except (httpx.HTTPError, OSError) as exc:
            running = [f"(API did not answer: {exc!r})"]
        if not running:
            return round(time.time() - started, 1)
        if time.time() > deadline:
            raise ClusterError(f"still Running past the zombie window: {running}")
        time.sleep(2)


def slots_free(tenant_id: str, deadline: float) -> float:
    """Seconds until the tenant held no Xero slot; ClusterError with the count at ``deadline``."""
    from store.factory import database
    from store.tenant_limits import TenantLimits

    limits = TenantLimits(database(project_settings()))
    started = time.time()
    while True:
        held = limits.held(tenant_id)
        if held == 0:
            return round(time.time() - started, 1)
        if time.time() > deadline:
            raise ClusterError(
                f"tenant {tenant_id} still holds {held} Xero slot(s): {limits.holders(tenant_id)}"
            )
        time.sleep(1)


def workers_survived(cluster: Cluster, problems: list[str]) -> list[str]:
    """Names of workers that exited during the outage (each a problem; replaced, so the rest
    of the scenario can still run, since the scenario fails anyway)."""
    dead = []
    for name in list(cluster.workers):
        proc = cluster.procs.procs.get(name)
        if proc is not None and proc.poll() is None:
            continue
        code = proc.returncode if proc is not None else "?"
        tail = cluster.procs.tail(name, 12)
        problems.append(f"worker {name} exited (code {code}) during the outage:\n{tail}")
        dead.append(name)
        cluster.procs.forget(name)
        start_worker(cluster, name)
    if dead:
        wait_workers(cluster)
    return dead


def unfinished(integration_id: str) -> dict[str, int]:
    """Outcome -> bills of the integration the ledger does not hold COMPLETE (what the next
    run must heal)."""
    from collections import Counter

    from store.factory import database
    from store.ledger import Ledger, Outcome

    ledger = Ledger(database(project_settings())).snapshot(integration_id)
    return dict(
        Counter(e.outcome.value for e in ledger.values() if e.outcome is not Outcome.COMPLETE)
    )


def process_exit(run: Run, ended_at: float) -> float | None:
    """Seconds after its run's final state that the flow-run process was gone (None: alive
    after ``PROCESS_EXIT_SECONDS``, or never seen)."""
    if run.pid is None:
        return None
    while alive(run.pid):
        if time.time() > ended_at + PROCESS_EXIT_SECONDS:
            return None
        time.sleep(0.5)
    return round(max(0.0, time.time() - ended_at), 1)
