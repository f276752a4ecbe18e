"""Scenarios 6–8: the sync survives its orchestrator and its database (issue 14).

Each one gives a fresh integration (its own organisation, its own new m3ter accounts) work
enough to be posting, slowed by the Xero sandbox, when the Prefect server (SIGTERM, down 30 s
or 120 s, then started again on the same port and database) or the project's PostgreSQL
(stopped fast, down a few seconds) goes away. Xero is fast again once it is back. Then:

- the run ends by itself within ``END_AFTER_RETURN`` s of the return (Completed when the API
  was away no longer than ``KEEPS_POSTING`` s; Completed or Failed when the database went);
- the workers are still alive and both pick up the next runs (syncs of the integration, in
  pairs until each worker has taken one);
- after the next run every bill is in Xero exactly once and the ledger agrees;
- no flow run is left Running past the zombie window;
- the tenant holds no Xero slot, with nobody resetting anything.

Failures are gathered and reported together, so one run of the check shows everything seen.
The outages themselves and the probes of their aftermath are in ``outage_tools.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from deployments.cluster.flowruns import Run, documents_of, launch, wait_runs
from deployments.cluster.outage_tools import (
    PROCESS_EXIT_SECONDS,
    Outage,
    clock,
    none_running,
    process_exit,
    restart_prefect_server,
    restart_project_postgres,
    slots_free,
    unfinished,
    watching,
    workers_survived,
)
from deployments.cluster.processes import ClusterError
from deployments.cluster.startup import (
    OUTAGE_ORGS,
    SYNC,
    ZOMBIE_WITHIN_SECONDS,
    Cluster,
    project_settings,
)

BILLS_PER_ACCOUNT = 10
# Each Xero call answered after this long: five posts in flight, five bills each, so a sync
# posts about 5 bills a second; ``Plan.bills`` then sets how long it posts.
SLOW_SECONDS = 5.0
END_AFTER_RETURN = 60.0  # issue 14: a run ends within this of the API's return
KEEPS_POSTING = 60.0  # issue 14: an outage up to this long, and the run finishes by itself
# The next runs after an outage: pairs of syncs, until both workers have taken one.
PAIRS = 3
PAIR_GAP_SECONDS = 10.0


@dataclass(frozen=True)
class Plan:
    """One scenario: whose sync, how much work, which outage, what ending is acceptable."""

    key: str  # the figures' heading
    integration: str
    org: str
    bills: int
    outage: Callable[[Cluster], Outage]
    endings: tuple[str, ...]  # acceptable final state names of the interrupted run


def _new_accounts(cluster: Cluster, bills: int) -> list[str]:
    """Fresh m3ter accounts holding ``bills`` new bills: work for this scenario only."""
    body = {"count": max(1, bills // BILLS_PER_ACCOUNT), "billsPerAccount": BILLS_PER_ACCOUNT}
    answer = httpx.post(f"{cluster.m3ter_url}/_sandbox/accounts/bulk", json=body, timeout=30)
    if answer.status_code != 201:
        raise ClusterError(f"m3ter sandbox refused new accounts: {answer.status_code}")
    return list(answer.json()["ids"])


@dataclass
class Scene:
    """One scenario's state as it unfolds: what was made, seen and found wrong."""

    cluster: Cluster
    plan: Plan
    made: Any  # deployments.connect.Connected
    bills: dict[str, int]
    figures: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    def say(self, wall: float, text: str) -> None:
        print(f"   {clock(wall)} {text}", flush=True)

    def exactly_once(self, when: str) -> None:
        from deployments.cluster.checks import exactly_once

        made = self.made
        try:
            exactly_once(project_settings(), self.cluster.xero_url, made.integration_id, made.name,
                         made.tenant_id, self.bills)  # fmt: skip
        except ClusterError as exc:
            self.problems.append(f"{when}: {exc}")


def mid_sync(cluster: Cluster, plan: Plan) -> None:
    """The scenario shape shared by 6, 7 and 8 (module docstring)."""
    from deployments.cluster.checks import m3ter_bills
    from deployments.connect import connect_integration

    accounts = _new_accounts(cluster, plan.bills)
    made = connect_integration(cluster.xero_url, plan.integration, plan.org, account_ids=accounts)
    cluster.integrations[plan.integration] = made
    bills = m3ter_bills(project_settings(), set(accounts))
    scene = Scene(cluster, plan, made, bills, cluster.figures.setdefault(plan.key, {}))
    scene.figures["bills"] = len(bills)
    try:
        run, outage = _interrupt(scene)
        _run_ends(scene, run, outage)
        _next_runs(scene)
        _settled(scene, outage)
    except ClusterError as exc:  # it cannot go on: say so after what it found before
        scene.problems.append(str(exc))
    if scene.problems:
        raise ClusterError("\n  - ".join(["", *scene.problems]))


def _interrupt(scene: Scene) -> tuple[Run, Outage]:
    """The sync launched on a slow Xero; the outage once its first documents are in."""
    cluster, name = scene.cluster, scene.plan.integration
    slow = {"slow_rate": 1.0, "slow_seconds": SLOW_SECONDS, "seed": 9}
    httpx.post(f"{cluster.xero_url}/_sandbox/faults", json=slow).raise_for_status()
    try:
        run = launch(cluster, SYNC, f"sync [{name}] (outage)", integrations=[name])

        def posting(flow_runs: list[Any]) -> bool:
            if flow_runs[0].state is not None and flow_runs[0].state.is_final():
                raise ClusterError(
                    f"the sync ended {flow_runs[0].state_name} before the outage: "
                    f"{flow_runs[0].state.message}"
                )
            return run.worker is not None and documents_of(cluster, name) > 0

        wait_runs(cluster, [run], until=posting)
        with watching(cluster, name) as watch:
            outage = scene.plan.outage(cluster)
    finally:
        httpx.delete(f"{cluster.xero_url}/_sandbox/faults")  # fast again once it is back
    at_gone, at_back = watch.samples[0][1], watch.samples[-1][1]
    grew, what = watch.last_growth(), outage.what
    scene.say(outage.gone_at, f"{what} gone ({at_gone} documents in Xero)")
    if grew:
        scene.say(grew, "last new document seen while it was away (sampled each second)")
    scene.say(outage.back_at, f"{what} back ({at_back} documents)")
    scene.figures.update(
        {
            f"{what} gone (s)": round(outage.back_at - outage.gone_at, 1),
            "stop took (s)": outage.stop_seconds,
            "stopped without SIGKILL": outage.graceful,
            f"documents when {what} went / came back": (at_gone, at_back),
            f"last new document while away (s after {what} went)": (
                round(grew - outage.gone_at, 1) if grew else None
            ),
        }
    )
    return run, outage


def _run_ends(scene: Scene, run: Run, outage: Outage) -> None:
    """The interrupted run ends by itself, soon after the return, as the plan allows."""
    cluster, figures, what = scene.cluster, scene.figures, outage.what
    wait = outage.back_at + END_AFTER_RETURN + 30 - time.time()
    try:
        (final,) = wait_runs(cluster, [run], timeout=wait)
    except ClusterError as exc:
        figures["run"] = "not ended"
        raise ClusterError(
            f"the interrupted sync had not ended {END_AFTER_RETURN + 30:.0f} s after the "
            f"{what} came back ({exc}); {documents_of(cluster, scene.plan.integration)} of "
            f"{len(scene.bills)} documents in Xero; its process (pid {run.pid}) logs to "
            f"{run.worker}.log"
        ) from exc
    ended_at = final.state.timestamp.timestamp()
    after = round(ended_at - outage.back_at, 1)
    scene.say(
        ended_at,
        f"run {final.state_name}: {final.state.message} (flow run {run.flow_run_id}, "
        f"pid {run.pid}, on {run.worker})",
    )
    figures["run"] = final.state_name
    figures[f"{what} back → run ended (s)"] = after
    figures["documents when the run ended"] = documents_of(cluster, scene.plan.integration)
    figures["ledger after the run (not COMPLETE)"] = unfinished(scene.made.integration_id)
    if final.state_name not in scene.plan.endings:
        scene.problems.append(
            f"the interrupted sync ended {final.state_name} (wanted "
            f"{'/'.join(scene.plan.endings)}): {final.state.message}"
        )
    if after > END_AFTER_RETURN:
        scene.problems.append(
            f"the sync ended {after} s after the {what} came back (> {END_AFTER_RETURN})"
        )
    if final.state.is_completed():
        scene.exactly_once("Completed by itself, but")  # "finishes by itself, exactly once"
    exited = process_exit(run, ended_at)
    figures["flow-run process gone after its end (s)"] = exited
    if run.pid is not None and exited is None:
        scene.problems.append(
            f"flow-run process {run.pid} still alive {PROCESS_EXIT_SECONDS:.0f} s after its run "
            f"ended {final.state_name}"
        )


def _next_runs(scene: Scene) -> None:
    """The workers lived through it, and each takes one of the next runs.

    The runs go in pairs. A worker whose polls failed through the outage polls again on
    Prefect's backed-off interval (up to 8 s) until one succeeds, while the other worker
    polls each second, finishes one run in ~5 s and may take the second of the pair too. So
    one pair on one worker proves nothing. ``PAIRS`` pairs on the same worker, over 10 s
    apart, do."""
    cluster, name = scene.cluster, scene.plan.integration
    scene.figures["workers exited during the outage"] = workers_survived(cluster, scene.problems)
    taken: list[str | None] = []
    for pair in range(1, PAIRS + 1):
        if pair > 1:
            time.sleep(PAIR_GAP_SECONDS)
        nexts = [
            launch(cluster, SYNC, f"sync [{name}] #{len(taken) + n} after the outage",
                   integrations=[name])
            for n in (1, 2)
        ]  # fmt: skip
        for next_run, flow_run in zip(nexts, wait_runs(cluster, nexts), strict=True):
            if not flow_run.state.is_completed():
                scene.problems.append(
                    f"{next_run.label} ended {flow_run.state_name}: {flow_run.state.message}"
                )
        taken += [r.worker for r in nexts]
        if None in taken or len(set(taken)) == len(cluster.workers):
            break
    scene.say(time.time(), f"next runs done, on {taken}")
    scene.figures["next runs on workers"] = taken
    if None not in taken and len(set(taken)) != len(cluster.workers):
        scene.problems.append(
            f"all {len(taken)} next runs ({PAIRS} pairs, {PAIR_GAP_SECONDS:.0f} s apart) ran "
            f"on {taken[0]}: the other worker took none"
        )


def _settled(scene: Scene, outage: Outage) -> None:
    """After the next run: exactly once, nothing Running, no Xero slot held."""
    scene.exactly_once("after the next run")
    scene.figures["documents after the next run"] = documents_of(scene.cluster, scene.made.name)
    try:
        deadline = outage.back_at + ZOMBIE_WITHIN_SECONDS + 30
        scene.figures["waited for no run Running (s)"] = none_running(deadline)
    except ClusterError as exc:
        scene.problems.append(str(exc))
    lease = float(project_settings().xero_slot_lease_seconds)
    try:
        free = slots_free(scene.made.tenant_id, time.time() + lease + 15)
        scene.figures["slots back to 0 after (s)"] = free
    except ClusterError as exc:
        scene.problems.append(str(exc))


def _server_down(key: str, integration: str, org: str, bills: int, seconds: float) -> Plan:
    """Up to ``KEEPS_POSTING`` s away the run must finish by itself (Completed); longer, it
    may also end Failed, or Crashed by the zombie automation, for the next run to finish."""
    endings = ("Completed",) if seconds <= KEEPS_POSTING else ("Completed", "Failed", "Crashed")
    return Plan(key, integration, org, bills, lambda c: restart_prefect_server(c, seconds), endings)


def server_restarted_mid_sync_30(cluster: Cluster) -> None:
    # 300 bills, ~60 s of posting: through the outage and on past the API's return.
    mid_sync(cluster, _server_down("6. server down 30 s", "D outage 30", OUTAGE_ORGS[0], 300, 30))


def server_restarted_mid_sync_120(cluster: Cluster) -> None:
    # 500 bills, ~100 s of posting: on past the first 60 s without the API.
    plan = _server_down("7. server down 120 s", "E outage 120", OUTAGE_ORGS[1], 500, 120)
    mid_sync(cluster, plan)


def postgres_restarted_mid_sync(cluster: Cluster) -> None:
    plan = Plan(
        "8. project database restarted",
        "F outage db",
        OUTAGE_ORGS[2],
        150,
        restart_project_postgres,
        ("Completed", "Failed"),  # rides it out, or fails cleanly (not Crashed)
    )
    mid_sync(cluster, plan)
