"""Serving the deployments from one process until Ctrl-C or SIGTERM, and how its runs end then.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group: serve and every
flow-run process its runner started (``python -m prefect.engine``, in serve's group). Prefect
3.8.8's ``serve`` then cancels its runner, which pauses the deployments and kills each flow-run
process still there (anyio's ``Process`` sends SIGKILL to a process whose task is cancelled);
it reports nothing for those runs. A process the Ctrl-C reached while Python was still
importing died of it at once, and the runner reported its run Crashed ("exited with status
code 1"). On SIGTERM the runner cancels every run (``Runner.stop``): Cancelled, forced over any
end the run gave itself.

So serve takes both signals itself, and starts its flow-run processes with SIGINT blocked (it
is pending, not lost): a sync takes it once its flow runs (``tasks.sync.stopping.StopSignals``),
records its bills' fates and ends Failed counting the bills it did not send (or Cancelled, if
it sent none); a sync still starting takes it as its flow begins and ends Cancelled; other
flows take it as they load (``deployments.flow_process``). On the first signal serve pauses its
deployments (as ``prefect.serve`` does), waits for its flow-run processes to end (SIGTERM,
which reached serve alone, is passed on to the runs that began), then stops the runner, and
cancels the runs left Pending and the syncs left Running or Crashed with no work done. A second
Ctrl-C stops waiting. All of it through Prefect's public runner and client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from deployments.catalog import WORK_IN_TASKS

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun, StateType
    from prefect.deployments.runner import RunnerDeployment
    from prefect.runner import Runner

#: How a person names the signals that stop serve.
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
#: How long serve waits for its flow-run processes to end on their own once told to stop (a
#: sync records its bills' fates and reports, in seconds); the runner kills what is left.
STOP_SECONDS = 30.0


def serve_until_stopped(deployments: Sequence[RunnerDeployment]) -> None:
    """Serve ``deployments`` (as ``prefect.serve`` does, schedules paused on the way out) until
    Ctrl-C or SIGTERM; a second signal gives up waiting for the runs to end."""
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=False)  # paused after its runs ended (_serve)
    ids = {deployment.name: runner.add_deployment(deployment) for deployment in deployments}
    # A thread that takes this process's SIGINT (Python runs the handler in the main thread),
    # so that the main thread, which starts the flow-run processes, can pass it on blocked.
    threading.Thread(target=threading.Event().wait, name="ctrl-c", daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        asyncio.run(_serve(runner, ServedDeployments(ids)))
    except KeyboardInterrupt:
        print("serve: stopped without waiting for its runs", flush=True)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@dataclass(frozen=True)
class ServedDeployments:
    """The served deployments' ids by name; ``idle`` those whose runs work only in task runs
    and subflows (``deployments.catalog.WORK_IN_TASKS``)."""

    ids: dict[str, UUID]

    @property
    def all(self) -> list[UUID]:
        return list(self.ids.values())

    @property
    def idle(self) -> list[UUID]:
        return [i for name, i in self.ids.items() if name in WORK_IN_TASKS]


async def _serve(runner: Runner, served: ServedDeployments) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    received: list[signal.Signals] = []

    def take(signum: signal.Signals) -> None:
        if received:
            raise KeyboardInterrupt  # the second Ctrl-C: stop waiting
        received.append(signum)
        stopped.set()

    loop.add_signal_handler(signal.SIGINT, take, signal.SIGINT)
    serving = asyncio.create_task(runner.start())
    while not runner.started and not serving.done() and not received:
        await asyncio.sleep(0.05)
    # The runner has set its own SIGTERM handler (cancel every run); serve's replaces it.
    loop.add_signal_handler(signal.SIGTERM, take, signal.SIGTERM)
    stopping = asyncio.create_task(stopped.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not received:  # the runner ended on its own: its error, if any, is raised
        stopping.cancel()
        serving.result()
        return
    why = SIGNAL_NAMES[received[0]]
    print(f"serve: stopping ({why}); waiting for its runs to end", flush=True)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType

    async with get_client() as client:
        at_stop = await _runs(client, served.all, [StateType.PENDING, StateType.RUNNING])
        for deployment_id in served.all:  # as prefect.serve does: no schedule fires meanwhile
            await client.pause_deployment(deployment_id)
        told = flow_run_processes()
        if received[0] is signal.SIGTERM:  # serve alone was told: tell the flows that began
            began = {str(run.id) for run in at_stop if run.state_type is StateType.RUNNING}
            told = {pid: run for pid, run in told.items() if run in began}
            for pid in told:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        await _until_gone(set(told), STOP_SECONDS)
        # The runner's own stop: it kills what is left (SIGKILL, through anyio's Process) and
        # reports nothing for a run it had not started.
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await cancel_unbegun(client, served, [run.id for run in at_stop], why)


def flow_run_processes() -> dict[int, str]:
    """This process's live flow-run processes (pid: flow run id), read from ``/proc`` (the
    runner starts them with ``PREFECT__FLOW_RUN_ID`` in their environment); none elsewhere."""
    me, found = os.getpid(), {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            if int(parent) != me or state == "Z":
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                found[int(entry.name)] = item.split(b"=", 1)[1].decode()
    return found


async def _until_gone(pids: set[int], seconds: float) -> None:
    """Until none of ``pids`` is a live flow-run process of serve's, or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while pids & set(flow_run_processes()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def cancel_unbegun(
    client: PrefectClient, served: ServedDeployments, at_stop: list[UUID], why: str
) -> list[UUID]:
    """Once every flow-run process has exited: cancel the served runs still Pending, and the
    runs of ``served.idle`` that did no work (no task run, no subflow) and were left Running or
    Crashed meanwhile (SIGTERM reached Prefect's engine before their flow began); return their
    ids. A run that did work and Crashed stays so, and so does one of any other flow (its work
    may be in its own body)."""
    from prefect.client.schemas.objects import StateType

    runs = await _runs(client, served.all, [StateType.PENDING])
    if served.idle:
        runs += await _runs(client, served.idle, [StateType.RUNNING])
        if at_stop:
            runs += await _runs(client, served.idle, [StateType.CRASHED], at_stop)
    cancelled = []
    for run in runs:
        if run.state_type is StateType.PENDING or not await _did_work(client, run):
            await _cancel(client, run, why)
            cancelled.append(run.id)
    return cancelled


async def _runs(
    client: PrefectClient,
    deployment_ids: list[UUID],
    kinds: list[StateType],
    ids: list[UUID] | None = None,
) -> list[FlowRun]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    return await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=kinds)),
            id=FlowRunFilterId(any_=ids) if ids is not None else None,
        ),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
    )


async def _cancel(client: PrefectClient, run: FlowRun, why: str) -> None:
    from prefect.states import Cancelled

    message = f"stopped ({why}) before it began: nothing was done; the next run does it"
    await client.set_flow_run_state(run.id, Cancelled(message=message), force=True)


async def _did_work(client: PrefectClient, run: FlowRun) -> bool:
    """Whether the run started a task or a subflow (a subflow is a task run of its parent)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ran: list[Any] = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=1
    )
    return bool(ran)
