"""Pause the current flow run for input, with a state message the run page shows.

Prefect's ``pause_flow_run`` proposes a bare ``Paused`` state, so the run page says only
"Paused". A person waiting on a provisioning run needs the next step right there (the link,
its expiry). This is the same pause, with ``message`` on the proposed state; it blocks like
Prefect's and raises ``FlowPauseTimeout`` when nobody resumes the run in time.

The server's pause lasts ``SERVER_GRACE_SECONDS`` longer than ours: once a pause has expired
the server refuses the run's own final state and writes "The flow was failed and never
resumed." instead, while a flow that gives up first can still say why and what to do next.
"""

from __future__ import annotations

import time
from typing import TypeVar

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import Abort, FlowPauseTimeout
from prefect.input import RunInput, keyset_from_paused_state
from prefect.states import Paused
from prefect.utilities.engine import propose_state_sync

T = TypeVar("T", bound=RunInput)
SERVER_GRACE_SECONDS = 30


def pause_for_input(
    wait_for_input: type[T], *, timeout: int, key: str, message: str, poll_interval: float = 1
) -> T:
    """Pause until the run is resumed with ``wait_for_input``; return what was given.

    Args:
        wait_for_input: the form (a ``RunInput``) the UI shows on Resume.
        timeout: seconds until the run fails with ``FlowPauseTimeout``.
        key: this pause's key (a run may pause several times; each needs its own).
        message: the Paused state's message: what the person should do now.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("only a flow run can pause")
    proposed = Paused(
        timeout_seconds=timeout + SERVER_GRACE_SECONDS, pause_key=key, message=message
    )
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = keyset
    with get_client(sync_client=True) as client:
        try:
            state = propose_state_sync(client, proposed, flow_run_id=context.flow_run.id)
        except Abort as exc:
            raise RuntimeError(f"the flow run cannot be paused: {exc}") from exc
        if state.is_running():  # this pause happened before and was resumed
            return wait_for_input.load(keyset)
        if not state.is_paused():
            raise RuntimeError(f"the flow run cannot be paused: the server answered {state}")
        wait_for_input.save(keyset)
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
            run = client.read_flow_run(context.flow_run.id)
            if run.state is not None and run.state.is_running():
                return wait_for_input.load(keyset)
            if time.monotonic() >= deadline:
                raise FlowPauseTimeout(f"nobody resumed the run in {timeout} s")
