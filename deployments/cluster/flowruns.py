"""Flow runs on the cluster: launch a deployment run, wait for runs, see where each ran."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from deployments.cluster.processes import ClusterError, alive, descendants, parent_of
from deployments.cluster.startup import RUN_TIMEOUT, Cluster


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


def documents_of(cluster: Cluster, name: str) -> int:
    """The documents in Xero of integration ``name``'s tenant."""
    from deployments.cluster.checks import tenant_documents, xero_state

    return tenant_documents(xero_state(cluster.xero_url), cluster.integrations[name].tenant_id)[1]


PREPARE_STEP = "Executing deployment step: prepare"


def entered_through_prepare(run: Run) -> None:
    """The run's process ran ``deployments.flow_process.prepare`` as a pull step (which fails
    the run when Prefect's engine lacks what it switches on): its log says so."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.flow_run_id])), limit=200
        )
    if not any(PREPARE_STEP in log.message for log in logs):
        raise ClusterError(f"{run.label}: no {PREPARE_STEP!r} in its logs")
