"""What a process keeps beyond one task, in one object that can be closed.

A flow-run process (``serve``'s or a worker's subprocess, the demo, a test session) keeps a few
things across tasks: per tenant, this process's call semaphore, rate pacer and slot hand-offs
(``tasks.sync.limits``); the documents handed to posting tasks (``tasks.sync.handoff``); the
runs' shared bill readers (``tasks.sync.feed``); the Xero token providers, whose per-credential
locks must be shared (``tasks.xero.credentials``); the Xero organisations' reference data read
in a run (``tasks.sync.organisation``); the quick Prefect settings of a best-effort call
(``tasks.prefect_api``). ``PROCESS`` holds them all; ``close`` lets
them go (a test that starts afresh, a process that is done).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

V = TypeVar("V")


class ProcessState:
    """The process-wide tables, each keyed by what it is per (tenant, key, feed, settings)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.local_slots: dict[str, Any] = {}  # tenant -> threading.BoundedSemaphore
        self.pacers: dict[str, Any] = {}  # tenant -> tasks.sync.limits._Pacer
        self.handoffs: dict[str, Any] = {}  # tenant -> tasks.sync.limits._Handoff
        self.held: dict[str, Any] = {}  # hand-off key -> the value handed to a task
        self.feeds: dict[str, Any] = {}  # feed id -> tasks.sync.feed.BillFeed
        self.providers: dict[int, Any] = {}  # id(settings) -> XeroTokenProvider
        self.references: dict[Any, Any] = {}  # (run, tenant, ...) -> XeroReference
        self.contact_locks: dict[str, Any] = {}  # tenant -> tasks.sync.contacts.Claims
        self.prefect_settings: dict[Any, Any] = {}  # (id(base), timeout) -> (base, quick)

    def get_or_make(self, table: dict[Any, V], key: Any, make: Callable[[], V]) -> V:
        """``table[key]``, made by ``make`` the first time (one maker wins a race)."""
        with self._lock:
            value = table.get(key)
            if value is None:
                value = table[key] = make()
            return value

    def put(self, table: dict[Any, V], key: Any, value: V) -> None:
        """Set ``table[key]``."""
        with self._lock:
            table[key] = value

    def pop(self, table: dict[Any, V], key: Any) -> V | None:
        """Take ``table[key]`` out (``None`` if absent)."""
        with self._lock:
            return table.pop(key, None)

    def peek(self, table: dict[Any, V], key: Any) -> V | None:
        """``table[key]``, left in place (``None`` if absent)."""
        with self._lock:
            return table.get(key)

    def close(self) -> None:
        """Let go of everything held (readers still running keep their own threads)."""
        with self._lock:
            for table in (
                self.local_slots,
                self.pacers,
                self.handoffs,
                self.held,
                self.feeds,
                self.providers,
                self.references,
                self.contact_locks,
                self.prefect_settings,
            ):
                table.clear()


PROCESS = ProcessState()
