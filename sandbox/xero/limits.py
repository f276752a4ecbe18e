"""Xero's rate limits, per tenant and per app, on a clock that can run fast.

Limits (Xero's published ones): 5 concurrent calls, 60 a minute and 5,000 a day per tenant;
10,000 a minute per app. Windows slide. ``time_scale`` shrinks time: with 0.05 a "minute" lasts
3 real seconds and a "day" 72 minutes. ``Retry-After`` is always in *real* seconds, so a client
that waits as told behaves the same at any scale: an integer (rounded up) when ``time_scale`` is 1,
a fraction (rounded up to the millisecond) when scaled.

Besides deciding, the limiter keeps an independent audit of the calls that were *answered*: if
ever more answered calls fall in one window than the limit allows, or more run at once than the
concurrency limit, ``answered_while_limited`` counts it. It must stay 0.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

MINUTE = 60.0
DAY = 86_400.0


@dataclass
class LimitConfig:
    """What ``POST /_sandbox/limits`` sets."""

    enabled: bool = True
    time_scale: float = 1.0
    per_minute: int = 60
    per_day: int = 5000
    concurrent: int = 5
    app_per_minute: int = 10_000

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, checking types and ranges first (all or nothing)."""
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in LimitConfig.__dataclass_fields__:
                raise ValueError(f"unknown limit setting: {key}")
            if key == "enabled":
                if not isinstance(value, bool):
                    raise ValueError("enabled must be true or false")
            elif key == "time_scale":
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ValueError("time_scale must be a positive number")
                value = float(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer")
            checked[key] = value
        for key, value in checked.items():
            setattr(self, key, value)


@dataclass(frozen=True)
class Admission:
    """The limiter's decision for one call, and the headers every answer carries."""

    admitted: bool
    headers: dict[str, str]
    problem: str | None = None
    retry_after: float | None = None
    at: float = 0.0
    epoch: int = 0


class RateLimiter:
    """Admits or refuses calls; thread-safe; ``release`` when an admitted call has answered."""

    def __init__(
        self, config: LimitConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or LimitConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every count. Calls admitted before the reset are ignored when they finish."""
        with self._lock:
            self._epoch = getattr(self, "_epoch", 0) + 1
            self._started = self._clock()
            self._minute: dict[str, deque[float]] = defaultdict(deque)
            self._day: dict[str, deque[float]] = defaultdict(deque)
            self._app: dict[str, deque[float]] = defaultdict(deque)
            self._in_flight: dict[str, int] = defaultdict(int)
            self.calls: dict[str, int] = defaultdict(int)
            self.refused: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self.per_minute_calls: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
            self.max_concurrency: dict[str, int] = defaultdict(int)
            self._answered: dict[str, list[float]] = defaultdict(list)
            self._answering: dict[str, int] = defaultdict(int)
            self.answered_while_limited = 0

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.config.update(changes)
            return asdict(self.config)

    def _windows(self) -> tuple[float, float]:
        scale = self.config.time_scale
        return MINUTE * scale, DAY * scale

    @staticmethod
    def _trim(log: deque[float], now: float, window: float) -> None:
        while log and log[0] <= now - window:
            log.popleft()

    def _retry_after(self, real_seconds: float) -> float:
        if self.config.time_scale == 1.0:
            return float(max(1, math.ceil(real_seconds)))
        return max(0.001, math.ceil(real_seconds * 1000) / 1000)

    def admit(self, tenant_id: str, app_id: str) -> Admission:
        """Decide one call now; an admitted call holds a concurrency slot until ``release``."""
        with self._lock:
            cfg, now = self.config, self._clock()
            minute, day = self._windows()
            mlog, dlog, alog = self._minute[tenant_id], self._day[tenant_id], self._app[app_id]
            self._trim(mlog, now, minute)
            self._trim(dlog, now, day)
            self._trim(alog, now, minute)
            refusal: tuple[str, float] | None = None
            if cfg.enabled:
                if len(dlog) >= cfg.per_day:
                    refusal = ("day", dlog[len(dlog) - cfg.per_day] + day - now)
                elif len(alog) >= cfg.app_per_minute:
                    refusal = ("appminute", alog[len(alog) - cfg.app_per_minute] + minute - now)
                elif len(mlog) >= cfg.per_minute:
                    refusal = ("minute", mlog[len(mlog) - cfg.per_minute] + minute - now)
                elif self._in_flight[tenant_id] >= cfg.concurrent:
                    refusal = ("concurrent", cfg.time_scale)
            if refusal is None:
                for log in (mlog, dlog, alog):
                    log.append(now)
                self._in_flight[tenant_id] += 1
                self.max_concurrency[tenant_id] = max(
                    self.max_concurrency[tenant_id], self._in_flight[tenant_id]
                )
                self.calls[tenant_id] += 1
                self.per_minute_calls[tenant_id][int((now - self._started) // minute)] += 1
            else:
                self.refused[tenant_id][refusal[0]] += 1
            headers = {
                "X-MinLimit-Remaining": str(max(0, cfg.per_minute - len(mlog))),
                "X-DayLimit-Remaining": str(max(0, cfg.per_day - len(dlog))),
                "X-AppMinLimit-Remaining": str(max(0, cfg.app_per_minute - len(alog))),
            }
            if refusal is None:
                return Admission(True, headers, at=now, epoch=self._epoch)
            problem, wait = refusal
            retry_after = self._retry_after(wait)
            headers["Retry-After"] = _seconds(retry_after)
            headers["X-Rate-Limit-Problem"] = problem
            return Admission(False, headers, problem, retry_after, now, self._epoch)

    def release(self, tenant_id: str, admission: Admission) -> None:
        with self._lock:
            if admission.epoch != self._epoch:
                return
            self._in_flight[tenant_id] = max(0, self._in_flight[tenant_id] - 1)

    # ----- the independent audit of answered calls -------------------------------------------
    def answering(self, tenant_id: str, admission: Admission) -> None:
        """An admitted call is about to be answered (not 429ed): audit it against the limits.

        Kept apart from the admission logs: answered calls, by admission time, sorted; any
        ``per_minute + 1`` of them closer together than a window is a breach.
        """
        with self._lock:
            if admission.epoch != self._epoch:
                return
            cfg, admitted_at = self.config, admission.at
            minute, _ = self._windows()
            log = self._answered[tenant_id]
            while log and log[0] < admitted_at - 2 * minute:
                log.pop(0)
            index = bisect.bisect_right(log, admitted_at)
            log.insert(index, admitted_at)
            self._answering[tenant_id] += 1
            if not cfg.enabled:
                return
            n = cfg.per_minute
            crowded = any(
                log[k + n] - log[k] < minute
                for k in range(max(0, index - n), min(index + 1, len(log) - n))
            )
            if crowded or self._answering[tenant_id] > cfg.concurrent:
                self.answered_while_limited += 1

    def answered(self, tenant_id: str, admission: Admission) -> None:
        with self._lock:
            if admission.epoch != self._epoch:
                return
            self._answering[tenant_id] = max(0, self._answering[tenant_id] - 1)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "config": asdict(self.config),
                "calls": dict(self.calls),
                "calls_per_minute": {t: dict(m) for t, m in self.per_minute_calls.items()},
                "max_concurrency": dict(self.max_concurrency),
                "refused": {t: dict(r) for t, r in self.refused.items()},
                "in_flight": {t: n for t, n in self._in_flight.items() if n},
                "answered_while_limited": self.answered_while_limited,
            }


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}"
