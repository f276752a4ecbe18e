"""Xero's per-tenant limits around every call a poster makes, every wait bounded.

The limits are shared by every process through the project database (``store.tenant_limits``:
why there and not in Prefect is said there). Per tenant:

- at most ``xero_tenant_concurrency`` (5) calls in flight: a poster (one task, one call at a
  time) takes one of the tenant's call slots at its first call and holds it, renewing its lease
  before a call once a third of it has passed, until it is done. A slot whose holder died comes
  back when its lease (``xero_slot_lease_seconds``) lapses;
- never more than ``xero_tenant_calls_per_minute`` (60) in any sliding minute: calls are granted
  at least a minute / (60 - 1) apart, since a sliding window allows at most one more call than
  the intervals that fit in it. Retry-After covers whatever slips through (another app).

Every wait ends: a slot or a rate grant not had within ``xero_limit_wait_seconds`` raises
``WaitExpired`` (what was waited for, how long, who held the slots); a stopping process ends
every wait at once (``tasks.sync.stopping``). With shared limits off (one process, or a Xero
without limits) a semaphore per tenant still keeps this process within the concurrency.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from config.errors import Interrupted, PermanentError, WaitExpired
from config.settings import Settings
from store.factory import database
from store.tenant_limits import TenantLimits
from tasks.prefect_engine import flow_run_id
from tasks.process import PROCESS
from tasks.sync import stopping

TOKEN_MARGIN_SECONDS = 0.002  # a grant interval this much longer: clock and queue noise
SLOT_POLL_SECONDS = 0.2  # how often a poster without a slot asks again (plus jitter)


def call_interval(settings: Settings) -> float:
    """Seconds between two calls' grants to one tenant."""
    per_minute = settings.xero_tenant_calls_per_minute
    return settings.xero_minute_seconds / (per_minute - 1) + TOKEN_MARGIN_SECONDS


def ensure_tenant_limits(settings: Settings, tenant_id: str) -> None:
    """Create the tenant's shared limits when missing (and fit them to a changed setting)."""
    if settings.xero_shared_limits:
        TenantLimits(database(settings)).ensure(tenant_id, settings.xero_tenant_concurrency)


def _local_semaphore(tenant_id: str, size: int) -> threading.BoundedSemaphore:
    semaphore: threading.BoundedSemaphore = PROCESS.get_or_make(
        PROCESS.local_slots, tenant_id, lambda: threading.BoundedSemaphore(size)
    )
    return semaphore


@dataclass
class _Pacer:
    """One rate-token asker per tenant per process (the others wait on ``lock``, not at the
    database), and when the tenant's next call is due as far as this process knows."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    next_at: float = 0.0


def _pacer(tenant_id: str) -> _Pacer:
    pacer: _Pacer = PROCESS.get_or_make(PROCESS.pacers, tenant_id, _Pacer)
    return pacer


@dataclass
class Slot:
    """A held call slot: its number, the holder name it was taken under, when last renewed."""

    number: int
    holder: str
    renewed_at: float


class _Handoff:
    """A tenant's slots passed from a poster that is done to one that waits, in this process,
    so a freed slot is used at once rather than at the waiter's next ask."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._waiting = 0
        self._free: list[Slot] = []

    def take(self) -> Slot | None:
        with self._ready:
            return self._free.pop() if self._free else None

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds``, less if a slot is handed over meanwhile."""
        with self._ready:
            self._waiting += 1
            try:
                self._ready.wait_for(lambda: bool(self._free), timeout=seconds)
            finally:
                self._waiting -= 1

    def offer(self, slot: Slot) -> bool:
        """Hand ``slot`` to a waiting poster; False when none waits (give it back instead)."""
        with self._ready:
            if self._waiting <= len(self._free):
                return False
            self._free.append(slot)
            self._ready.notify()
            return True


def _handoff(tenant_id: str) -> _Handoff:
    handoff: _Handoff = PROCESS.get_or_make(PROCESS.handoffs, tenant_id, _Handoff)
    return handoff


def _who(holders: list[str]) -> str:
    """``"flow run 1f…9a (3), flow run 77…02 (2)"``: the slots' holders, by run."""
    if not holders:
        return "nobody now"
    runs = Counter(h.rsplit("/", 1)[0] for h in holders)
    return ", ".join(
        f"{'' if owner.startswith('process') else 'flow run '}{owner} ({count})"
        for owner, count in runs.most_common()
    )


def xero_tenant(organisation: str, tenant_id: str) -> str:
    """A Xero tenant as a person knows it: ``Xero organisation Walk UK (tenant 5e1…)``."""
    if organisation and organisation != tenant_id:
        return f"Xero organisation {organisation} (tenant {tenant_id})"
    return f"Xero tenant {tenant_id}"


class TenantSlots:
    """Xero's per-tenant limits for the calls of one poster: ``with slots.call(): <one call>``."""

    def __init__(
        self,
        settings: Settings,
        tenant_id: str,
        *,
        limits: TenantLimits | None = None,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        pause: Callable[[float], None] = stopping.pause,
        organisation: str = "",
    ) -> None:
        self.enabled = settings.xero_shared_limits
        self.tenant_id = tenant_id
        self.where = xero_tenant(organisation, tenant_id)
        self._limits = limits if self.enabled else None
        self._settings = settings
        # Named for the flow run that holds it, so a person can find that run in the UI.
        owner = flow_run_id() or f"process {os.getpid()}"
        self._holder = holder or f"{owner}/{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._pause = pause
        self._concurrency = settings.xero_tenant_concurrency
        self._lease_seconds = settings.xero_slot_lease_seconds
        self._wait_seconds = settings.xero_limit_wait_seconds
        self._interval = call_interval(settings)
        self._slot: Slot | None = None
        self._entered = False

    def __enter__(self) -> TenantSlots:
        self._entered = True
        if self.enabled and self._limits is None:
            self._limits = TenantLimits(database(self._settings))
        return self

    def __exit__(self, *exc: object) -> None:
        self._entered = False
        self._release()

    @contextmanager
    def call(self) -> Iterator[None]:
        """Make room for one call to the tenant (a held slot and a fresh grant)."""
        if not self._entered:
            raise RuntimeError("TenantSlots used outside its 'with' block")
        stopping.check()
        limits = self._limits
        if limits is None:
            semaphore = _local_semaphore(self.tenant_id, self._concurrency)
            if not semaphore.acquire(timeout=self._wait_seconds):
                raise self._expired(f"one of this process's {self._concurrency} call slots")
            try:
                yield
            finally:
                semaphore.release()
            return
        slot = self._slot
        if slot is not None and self._clock() - slot.renewed_at > self._lease_seconds / 3:
            if limits.renew_slot(self.tenant_id, slot.number, slot.holder, self._lease_seconds):
                slot.renewed_at = self._clock()
            else:
                self._slot = None  # lapsed and taken by another: take one afresh
        if self._slot is None:
            self._slot = self._take_slot(limits)
        self._take_token(limits)
        yield

    def _release(self) -> None:
        slot, self._slot = self._slot, None
        if slot is None or self._limits is None:
            return
        if _handoff(self.tenant_id).offer(slot):
            return
        try:
            self._limits.release_slot(self.tenant_id, slot.number, slot.holder)
        except Interrupted:  # the database is away: the slot comes back when its lease lapses
            return

    def _take_slot(self, limits: TenantLimits) -> Slot:
        """One of the tenant's call slots: handed over in this process, or free in the pool."""
        handoff = _handoff(self.tenant_id)
        started = self._clock()
        refused = False
        while True:
            handed = handoff.take()
            if handed is not None:
                return handed
            number = limits.take_slot(self.tenant_id, self._holder, self._lease_seconds)
            if number is not None:
                return Slot(number, self._holder, self._clock())
            if not refused and not limits.known(self.tenant_id):  # strict: no rows, no wait
                raise PermanentError(
                    f"no call slots for {self.where}: "
                    "ensure_tenant_limits must run before its first call"
                )
            if self._clock() - started >= self._wait_seconds:
                holders = _who(limits.holders(self.tenant_id))
                raise self._expired(
                    f"one of the tenant's {self._concurrency} call slots (held by {holders})"
                )
            refused = True
            handoff.wait(SLOT_POLL_SECONDS * (1 + 0.5 * random.random()))  # noqa: S311
            stopping.check()

    def _take_token(self, limits: TenantLimits) -> None:
        """Wait for the tenant's next call to be due, then claim it; one thread per tenant and
        process asks at a time."""
        pacer = _pacer(self.tenant_id)
        started = self._clock()
        if not pacer.lock.acquire(timeout=self._wait_seconds):
            raise self._expired("this process's turn to ask for a call")
        try:
            while True:
                if self._clock() - started >= self._wait_seconds:
                    raise self._expired("the tenant's next call under its rate limit")
                due = pacer.next_at - self._clock()
                if due > 0:
                    self._pause(min(due, self._interval))
                    continue
                wait = limits.take_token(self.tenant_id, self._interval)
                if wait == 0.0:
                    pacer.next_at = self._clock() + self._interval
                    return
                pacer.next_at = self._clock() + wait
        finally:
            pacer.lock.release()

    def _expired(self, what: str) -> WaitExpired:
        return WaitExpired(f"waited {self._wait_seconds:.0f} s for {what} of {self.where}")
