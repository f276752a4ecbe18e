"""The engine behaviour our entry points switch on: a flow run returns when it is over, not
when its heartbeat thread next wakes; importing a flow module changes nothing; a Prefect
without the hook it relies on stops the entry point with a clear error."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest
from prefect import flow_engine

from deployments.flow_process import prepare
from tasks.prefect_engine import EngineChanged, prompt_flow_exit


class _Engine:
    """What the heartbeat context reads of a flow run engine; its heartbeat blocks until
    released, as one stuck on a slow API would."""

    heartbeat_seconds = 30
    flow_run = None
    logger = logging.getLogger("test")

    def __init__(self) -> None:
        self.emitting = threading.Event()
        self.release = threading.Event()

    def _build_heartbeat_event_template(self) -> tuple[None, None]:
        return None, None

    def _emit_flow_run_heartbeat(self, resource: object, related: object) -> None:
        self.emitting.set()
        self.release.wait(10)


def test_leaving_a_flow_run_does_not_wait_for_its_heartbeat_thread() -> None:
    prepare()  # what every entry point calls; idempotent: a second call keeps the first wrapper
    engine = _Engine()
    try:
        with flow_engine._send_heartbeats(engine):  # noqa: SLF001
            assert engine.emitting.wait(5), "the heartbeat thread never sent a heartbeat"
            leaving = time.monotonic()
        left_after = time.monotonic() - leaving
    finally:
        engine.release.set()
    # Joining the thread would wait out Prefect's 2 s join timeout here (a heartbeat in flight),
    # and up to 1 s after every flow run otherwise.
    assert left_after < 1.0
    assert flow_engine._send_heartbeats.prompt_exit  # noqa: SLF001


PROBE = (
    "import logging, flows.sync, flows.integrations, flows.credentials\n"
    "from prefect import flow_engine\n"
    "{before}\n"
    "print(getattr(flow_engine._send_heartbeats, 'prompt_exit', False),"
    " len(logging.getLogger('prefect.flow_runs').filters))\n"
)


def _probe(before: str = "") -> str:
    done = subprocess.run(  # noqa: S603 (our own fixed command)
        [sys.executable, "-c", PROBE.format(before=before)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_importing_the_flow_modules_changes_nothing_the_entry_point_does() -> None:
    assert _probe() == "False 0"
    assert _probe("from deployments.flow_process import prepare; prepare()") == "True 1"


def test_a_prefect_without_the_hook_stops_the_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def heartbeats(engine: object) -> None:  # the hook's old shape: no join_on_exit
        return None

    monkeypatch.setattr(flow_engine, "_send_heartbeats", heartbeats)
    with pytest.raises(EngineChanged, match="not the one pinned"):
        prompt_flow_exit()
