"""Prefect engine behaviour for the processes that run our flows, switched on by their entry
points (``prepare_engine``, through ``deployments.flow_process``): a served flow-run process
(its deployment's entrypoint), a worker's (a pull step), the demo, the benchmarks and the test
session. Importing a flow module changes nothing.

``quiet_expected_failures``: a flow run that ends Failed on purpose (``config.errors.RunFailed``)
has its reason as the state message; Prefect's engine would add "Engine execution exited with
unexpected exception" and a traceback to the run's logs, which reads as a crash. It is dropped;
so is the traceback of a task run ended by a stopping process (Ctrl-C, SIGTERM).

Prefect's sync flow engine ends every flow run by joining its heartbeat thread, which sleeps in
whole seconds: each flow run returned up to a second after it was over, and a sync (a flow and
a subflow per integration) waited so twice for nothing (bench/README.md).
``prompt_flow_exit`` makes the engine not wait, as Prefect's async engine already does: the
thread still stops at its next one-second tick and sends no heartbeat after the run.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from config.errors import RunFailed, Stopping


def prompt_flow_exit() -> None:
    """Let a flow run return without waiting for its heartbeat thread (idempotent).

    Must run before the flow run starts: the engine decides how to leave its heartbeat context
    when it enters it. If Prefect's engine no longer has the hook this relies on (a Prefect
    other than the one pinned), ``EngineChanged`` says so and the process does not start.
    """
    from prefect import flow_engine

    current: Callable[..., Any] | None = getattr(flow_engine, "_send_heartbeats", None)
    if getattr(current, "prompt_exit", False):
        return
    if current is None or "join_on_exit" not in inspect.signature(current).parameters:
        raise EngineChanged(
            "prefect.flow_engine._send_heartbeats(engine, join_on_exit) is gone: this Prefect "
            "is not the one pinned in pyproject.toml (3.8.8); review tasks/prefect_engine.py "
            "against it before running flows"
        )

    @functools.wraps(current)
    def unjoined(engine: Any, join_on_exit: bool = False) -> Any:
        return current(engine, join_on_exit=False)

    unjoined.prompt_exit = True  # type: ignore[attr-defined]
    flow_engine._send_heartbeats = unjoined  # noqa: SLF001


class EngineChanged(RuntimeError):
    """Prefect's engine no longer has what ``prompt_flow_exit`` relies on."""


def prepare_engine() -> None:
    """Switch on this module's engine behaviour for the flows this process runs (idempotent).
    Called by every entry point that runs flows, before the first flow run starts."""
    prompt_flow_exit()
    quiet_expected_failures()


class _ExpectedFailureFilter(logging.Filter):
    """Drops the engine's traceback record for a run that ended Failed on purpose; keeps the
    line, not the traceback, of a task run that a stopping process ended (``Stopping``)."""

    marker = "quiet_expected_failures"

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Stopping):
            record.exc_info, record.exc_text = None, None
            return True
        return not isinstance(exc, RunFailed)


def quiet_expected_failures() -> None:
    """No traceback in a run's logs for an expected failure or a stop (idempotent)."""
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.engine"):
        logger = logging.getLogger(name)
        marker = _ExpectedFailureFilter.marker
        if not any(getattr(f, "marker", None) == marker for f in logger.filters):
            logger.addFilter(_ExpectedFailureFilter())


def expected_failure(message: str, details: object | None = None) -> Any:
    """The Failed state a flow or task returns to end on purpose: ``message`` is what the run
    page shows, ``details`` what a caller reads back from the ``RunFailed`` it carries."""
    from prefect.states import Failed

    return Failed(message=message, data=RunFailed(message, details=details))


def expected_cancel(message: str, details: object | None = None) -> Any:
    """The Cancelled state a flow returns when it stopped before doing any of its work: like
    ``expected_failure``, one line on the run page and no traceback (its ``RunFailed`` is what
    Prefect raises at the run's end, and ``quiet_expected_failures`` drops)."""
    from prefect.states import Cancelled

    return Cancelled(message=message, data=RunFailed(message, details=details))


def reported(value: Any) -> Any:
    """What a run or task returned, whether it Completed with it or Failed with it on purpose
    (the ``details`` of the ``RunFailed`` that ``expected_failure`` put in its state); any
    other exception is raised."""
    if isinstance(value, RunFailed):
        return value.details
    if isinstance(value, BaseException):
        raise value
    return value


def flow_run_id() -> str | None:
    """The id of the flow run this code runs in, if any."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None
