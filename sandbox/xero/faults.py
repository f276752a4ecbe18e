"""Injected failures for the Accounting API: what retries and idempotency must survive.

Set by ``POST /_sandbox/faults`` either as rates (``rate_429``, ``rate_500``, ``rate_503``,
``drop_after_store_rate``, ``slow_rate`` with ``slow_seconds``; ``seed`` makes them repeatable) or
as a deterministic queue ``{"next": ["429", "500", "drop_after_store", "ok", ...]}`` consumed one
call at a time before the rates apply. ``drop_after_store`` lets the call do its work, then drops
the connection without an answer, the way a load balancer timeout looks to a client.
``endpoints`` (e.g. ``["PUT Invoices"]``) limits the faults to calls of those endpoints; the
others neither draw nor consume the queue, so a test can aim at the documents' writes alone.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

KINDS = ("429", "500", "503", "drop_after_store", "slow", "ok")
RATES = ("rate_429", "rate_500", "rate_503", "drop_after_store_rate")


@dataclass(frozen=True)
class Fault:
    """What to do to one call: ``kind`` (None = nothing) and a delay before answering."""

    kind: str | None = None
    delay: float = 0.0


class FaultPlan:
    """Thread-safe fault settings; ``draw()`` once per Accounting API call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.rates: dict[str, float] = dict.fromkeys(RATES, 0.0)
            self.slow_rate = 0.0
            self.slow_seconds = 0.0
            self.queue: deque[str] = deque()
            self.endpoints: frozenset[str] = frozenset()  # empty: every endpoint
            self._random = random.Random()
            self.injected: dict[str, int] = defaultdict(int)

    def configure(self, spec: dict[str, Any]) -> None:
        """Replace the settings with ``spec`` (validated first; ValueError names the culprit)."""
        if not isinstance(spec, dict):
            raise ValueError("faults must be an object")
        known = {*RATES, "slow_rate", "slow_seconds", "seed", "next", "endpoints"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for key in (*RATES, "slow_rate"):
            value = spec.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{key} must be a probability between 0 and 1")
        slow = spec.get("slow_seconds", 0)
        if isinstance(slow, bool) or not isinstance(slow, int | float) or slow < 0:
            raise ValueError("slow_seconds must be a non-negative number")
        queue = spec.get("next", [])
        if not isinstance(queue, list) or any(str(k) not in KINDS for k in queue):
            raise ValueError(f"next must be a list drawn from {list(KINDS)}")
        endpoints = spec.get("endpoints", [])
        if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
            raise ValueError('endpoints must be a list like ["PUT Invoices"]')
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer")
        with self._lock:
            self.rates = {key: float(spec.get(key, 0)) for key in RATES}
            self.slow_rate = float(spec.get("slow_rate", 0))
            self.slow_seconds = float(slow)
            self.queue = deque(str(k) for k in queue)
            self.endpoints = frozenset(endpoints)
            self._random = random.Random(seed)

    def draw(self, endpoint: str = "") -> Fault:
        """The fault for the next call to ``endpoint`` ("PUT Invoices"; queue first, then the
        rates); none for an endpoint the faults are not aimed at."""
        with self._lock:
            if self.endpoints and endpoint not in self.endpoints:
                return Fault()
            if self.queue:
                kind = self.queue.popleft()
                if kind == "slow":
                    self.injected["slow"] += 1
                    return Fault(None, self.slow_seconds or 1.0)
                if kind == "ok":
                    return Fault()
                self.injected[kind] += 1
                return Fault(kind)
            delay = 0.0
            if self.slow_rate and self._random.random() < self.slow_rate:
                self.injected["slow"] += 1
                delay = self.slow_seconds
            roll, edge = self._random.random(), 0.0
            for key, kind in zip(RATES, ("429", "500", "503", "drop_after_store"), strict=True):
                edge += self.rates[key]
                if roll < edge:
                    self.injected[kind] += 1
                    return Fault(kind, delay)
            return Fault(None, delay)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rates": dict(self.rates),
                "slow_rate": self.slow_rate,
                "slow_seconds": self.slow_seconds,
                "queued": list(self.queue),
                "endpoints": sorted(self.endpoints),
                "injected": dict(self.injected),
            }
