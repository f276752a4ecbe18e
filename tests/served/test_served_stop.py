"""A served sync that cannot make progress stops promptly when its process is told to (SIGTERM:
a worker's cancellation, a deploy, ``kill``), and its ledger says what it did not send.

Issue 14: a run stuck waiting on a tenant's slots ignored SIGTERM for 20–30 s and needed
SIGKILL. Here every slot of the tenant is held by a run that died (leases of 10 minutes), the
served sync waits for one (its wait would last ``XERO_LIMIT_WAIT_SECONDS``, 600 s), and
SIGTERM ends the process in seconds."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from config.settings import get_settings
from deployments.connect import connect_integration
from sandbox.xero.state import DEFAULT_ORGS
from store.factory import database
from store.ledger import Ledger, Outcome
from store.tenant_limits import TenantLimits


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _flow_run_process(run_id: str) -> int:
    """The process serve started for the flow run (its environment names the run)."""
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
    raise AssertionError(f"no process runs flow run {run_id}")


def test_a_sync_waiting_on_wedged_tenants_stops_promptly_on_sigterm(as_served, xero_server):
    """Two integrations (their subflows side by side, on threads of the run's process), each
    on a tenant whose slots are all held: both record their bills before the process goes."""
    served = as_served
    limits = TenantLimits(database(get_settings()))
    concurrency = get_settings().xero_tenant_concurrency
    made = [
        connect_integration(xero_server.url, f"Stopped sync {n}", org=org)
        for n, org in enumerate(DEFAULT_ORGS[:2], 1)
    ]
    held = []
    for one in made:
        limits.ensure(one.tenant_id, concurrency)
        dead = [f"dead-run-{one.name}-{n}" for n in range(concurrency)]
        held += [(one.tenant_id, limits.take_slot(one.tenant_id, h, 600), h) for h in dead]
    assert all(number is not None for _, number, _ in held)
    try:
        run_id = served.run("sync_bills", integrations=[one.name for one in made])
        deadline = time.monotonic() + 60
        # Until each subflow has a task that calls Xero running (the organisation's reading
        # goes first, then the posting tasks): it waits for a slot.
        calling = ("read the Xero organisation", "post ")
        while True:
            subflows = served.subflows(run_id)
            waiting = {
                t["flow_run_id"]
                for t in served.task_runs([s["id"] for s in subflows])
                if t["name"].startswith(calling) and t["state_type"] == "RUNNING"
            }
            if len(waiting) == len(made):
                break
            assert time.monotonic() < deadline, f"{len(waiting)} subflow(s) calling Xero"
            time.sleep(0.3)
        time.sleep(1)
        pid = _flow_run_process(run_id)

        os.kill(pid, signal.SIGTERM)
        began = time.monotonic()
        while _alive(pid) and time.monotonic() - began < 30:
            time.sleep(0.1)
        took = time.monotonic() - began
        assert not _alive(pid), "the flow-run process ignored SIGTERM for 30 s"
        assert took < 10, f"the flow-run process took {took:.1f} s to stop"

        run = served.finished(run_id, timeout=120)
        assert run["state_type"] in ("CRASHED", "FAILED"), run["state"]
        for one in made:
            ledger = Ledger(database(get_settings())).snapshot(one.integration_id)
            interrupted = [b for b, e in ledger.items() if e.outcome is Outcome.INTERRUPTED]
            assert interrupted, (one.name, {e.outcome for e in ledger.values()})
            assert not [b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE]
    finally:
        for tenant_id, number, holder in held:
            if number is not None:
                limits.release_slot(tenant_id, number, holder)
