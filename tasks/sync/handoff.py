"""Hand a large in-process value to a task without making it a task parameter.

Prefect keeps a task's parameters referenced for as long as the flow run that submitted it
(its run engine and context outlive the task), so documents passed as parameters to posting
tasks stayed in memory until the integration's subflow ended: memory grew with every bill
synced. The subflow hands the documents over under a key; the task takes them, and once it
returns nothing holds them. Posting tasks run in the subflow's own process (the default thread
pool), which is what makes this safe.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

_held: dict[str, Any] = {}
_lock = threading.Lock()


def hand(value: Any) -> str:
    """Keep ``value`` until ``take`` claims it; returns the key."""
    key = str(uuid.uuid4())
    with _lock:
        _held[key] = value
    return key


def take(key: str) -> Any:
    """The value handed under ``key``, released from here (``KeyError`` if none)."""
    with _lock:
        return _held.pop(key)
