"""A flow run returns when it is over, not when its heartbeat thread next wakes."""

from __future__ import annotations

import logging
import threading
import time

from prefect import flow_engine

import flows.sync  # noqa: F401 - importing a flow module sets the engine up
from tasks.prefect_engine import prompt_flow_exit


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
    prompt_flow_exit()  # idempotent: a second call keeps the first wrapper
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
