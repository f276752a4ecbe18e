"""Hand a large in-process value to a task without making it a task parameter.

Prefect keeps a task's parameters referenced for as long as the flow run that submitted it
(its run engine and context outlive the task), so documents passed as parameters to posting
tasks stayed in memory until the integration's subflow ended: memory grew with every bill
synced. The subflow hands the documents over under a key; the task takes them, and once it
returns nothing holds them. Posting tasks run in the subflow's own process (the default thread
pool), which is what makes this safe, and ``require_in_process`` what makes it checked.
"""

from __future__ import annotations

import uuid
from typing import Any

from config.errors import PermanentError
from tasks.process import PROCESS


def hand(value: Any) -> str:
    """Keep ``value`` until ``take`` claims it; returns the key."""
    key = str(uuid.uuid4())
    PROCESS.put(PROCESS.held, key, value)
    return key


def take(key: str) -> Any:
    """The value handed under ``key``, released from here (``KeyError`` if none)."""
    value = PROCESS.pop(PROCESS.held, key)
    if value is None:
        raise KeyError(f"nothing was handed over under {key} in this process")
    return value


def require_in_process() -> None:
    """Refuse a flow run whose tasks would not run in this process (a process pool, task
    workers): hand-offs are keys into this process's memory, which such tasks cannot see."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    if runner is not None and not isinstance(runner, ThreadPoolTaskRunner):
        raise PermanentError(
            "the bill sync runs its tasks on Prefect's ThreadPoolTaskRunner (in this process: "
            "its posting tasks take their documents from this process's memory); this flow "
            f"run was given {type(runner).__name__}"
        )
