"""A served sync stopped by its process's signals ends with what it left undone, counted: SIGTERM
to its flow-run process (a worker's cancellation, a deploy, ``kill``), and Ctrl-C in the terminal
of ``make serve`` (SIGINT to serve and every flow-run process it started).

Issue 14: a run stuck waiting on a tenant's slots ignored SIGTERM for 20–30 s and needed
SIGKILL. Here every slot of the tenants is held by a run that died (leases of 10 minutes), the
served sync waits for one (its wait would last ``XERO_LIMIT_WAIT_SECONDS``, 600 s), and the
signal ends it in seconds. Issue 21: the run then ended Crashed with a traceback and no count,
and a run that was starting at that moment Crashed too."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import get_settings
from deployments.connect import Connected, connect_integration
from sandbox.xero.state import DEFAULT_ORGS
from store.factory import database, integration_store
from store.ledger import Ledger, Outcome
from store.tenant_limits import TenantLimits
from tests.served.conftest import Served

STOPPED = re.compile(
    r"stopped \((?P<why>[^)]+)\): (?P<n>\d+) bills? not sent, recorded INTERRUPTED; "
    r"the next run sends (them|it)"
)


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _process_of(run_id: str) -> int | None:
    """The process serve started for the flow run (its environment names the run), if any."""
    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            return int(entry.name)
    return None


def _flow_run_process(run_id: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (pid := _process_of(run_id)) is None:
        assert time.monotonic() < deadline, f"no process runs flow run {run_id}"
        time.sleep(0.02)
    return pid


@pytest.fixture
def wedged(as_served: Served, xero_server) -> Iterator[list[Connected]]:
    """Two integrations (their subflows side by side, on threads of the run's process), each
    on a tenant whose slots are all held by runs that died; removed afterwards."""
    settings = get_settings()
    limits = TenantLimits(database(settings))
    tag = uuid.uuid4().hex[:6]  # names are unique; each test has its own integrations
    made = [
        connect_integration(xero_server.url, f"Stopped sync {n} {tag}", org=org)
        for n, org in enumerate(DEFAULT_ORGS[:2], 1)
    ]
    held = []
    for one in made:
        limits.ensure(one.tenant_id, settings.xero_tenant_concurrency)
        dead = [f"dead-run-{one.name}-{n}" for n in range(settings.xero_tenant_concurrency)]
        held += [(one.tenant_id, limits.take_slot(one.tenant_id, h, 600), h) for h in dead]
    try:
        assert all(number is not None for _, number, _ in held)
        yield made
    finally:
        for tenant_id, number, holder in held:
            if number is not None:
                limits.release_slot(tenant_id, number, holder)
        for one in made:
            integration_store(settings).delete(one.integration_id)


def _until_calling_xero(served: Served, run_id: str, subflows: int) -> None:
    """Until each subflow has a task that calls Xero running (the organisation's reading goes
    first, then the posting tasks): it waits for a slot."""
    deadline = time.monotonic() + 60
    calling = ("read the Xero organisation", "post ")
    while True:
        runs = served.subflows(run_id)
        waiting = {
            t["flow_run_id"]
            for t in served.task_runs([s["id"] for s in runs])
            if t["name"].startswith(calling) and t["state_type"] == "RUNNING"
        }
        if len(waiting) == subflows:
            break
        assert time.monotonic() < deadline, f"{len(waiting)} subflow(s) calling Xero"
        time.sleep(0.3)
    time.sleep(1)


def _interrupted(made: list[Connected]) -> int:
    """The bills the ledger records INTERRUPTED; none of them reached Xero."""
    count = 0
    for one in made:
        ledger = Ledger(database(get_settings())).snapshot(one.integration_id)
        interrupted = [b for b, e in ledger.items() if e.outcome is Outcome.INTERRUPTED]
        assert interrupted, (one.name, {e.outcome for e in ledger.values()})
        assert not [b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE]
        count += len(interrupted)
    return count


def _told(served: Served, run_id: str, made: list[Connected], why: str) -> None:
    """The run ended Failed, its message counting the bills the ledger records INTERRUPTED and
    saying the next run sends them; no traceback in its logs nor in its subflows'."""
    run = served.finished(run_id, timeout=120)
    assert run["state_type"] == "FAILED", run["state"]
    message = run["state"]["message"]
    told = STOPPED.match(message)
    assert told, message
    assert told["why"] == why
    assert int(told["n"]) == _interrupted(made), message
    for one in [run_id] + [s["id"] for s in served.subflows(run_id)]:
        lines = served.logs(one)
        assert lines
        assert not [line for line in lines if "Traceback" in line], lines


def _gone_within(alive: Callable[[], bool], seconds: float, what: str) -> None:
    began = time.monotonic()
    while alive() and time.monotonic() - began < 3 * seconds:
        time.sleep(0.1)
    took = time.monotonic() - began
    assert not alive(), f"{what} still there after {took:.0f} s"
    assert took < seconds, f"{what} took {took:.1f} s to stop"


def test_a_sync_waiting_on_wedged_tenants_stops_promptly_on_sigterm(as_served, wedged):
    """Both integrations record their bills before the process goes, and the run says so."""
    served = as_served
    run_id = served.run("sync_bills", integrations=[one.name for one in wedged])
    _until_calling_xero(served, run_id, len(wedged))
    pid = _flow_run_process(run_id)

    os.kill(pid, signal.SIGTERM)
    _gone_within(lambda: _alive(pid), 10, "the flow-run process")

    _told(served, run_id, wedged, "SIGTERM")


def test_ctrl_c_ends_the_sync_failed_with_its_count_and_the_run_starting_cancelled(
    as_served, wedged
):
    """Ctrl-C in serve's terminal: SIGINT to its whole process group, as the terminal sends it.
    The sync ends Failed counting its bills; the run whose process was starting ends Cancelled.
    Last in this module: serve is gone after it (its fixture's teardown allows that)."""
    served = as_served
    assert served.proc is not None and served.proc.poll() is None
    names = [one.name for one in wedged]
    syncing = served.run("sync_bills", integrations=names)
    _until_calling_xero(served, syncing, len(wedged))
    starting = served.run("sync_bills", integrations=names)  # as the schedule would start it
    _flow_run_process(starting)

    os.killpg(served.proc.pid, signal.SIGINT)
    # Serve waits for its runs' ends; the session's Prefect server (SQLite) may take a minute
    # over the burst of events a stop makes ("database is locked" in its log, then retries).
    _gone_within(lambda: served.proc.poll() is None, 120, "serve")

    _told(served, syncing, wedged, "Ctrl-C")
    run = served.finished(starting, timeout=30)
    assert run["state_type"] == "CANCELLED", run["state"]
    assert run["state"]["message"].startswith("stopped (Ctrl-C)"), run["state"]
    history = served.call("GET", "/flow_run_states/", params={"flow_run_id": starting})
    assert "CRASHED" not in [state["type"] for state in history], history
    assert not [line for line in served.logs(starting) if "Traceback" in line]
