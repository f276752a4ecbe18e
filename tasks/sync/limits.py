"""Xero's per-tenant limits held across every worker by Prefect global concurrency limits.

Two limits per tenant, created (or corrected) when a sync starts:

- ``xero-tenant-<id>``: at most ``xero_tenant_concurrency`` (5) calls in flight.
- ``xero-tenant-rate-<id>``: a token bucket (Prefect's slot decay) that can never exceed
  ``xero_tenant_calls_per_minute`` (60) in any sliding minute: one token, refilled 59 times a
  minute, since burst + refill × window ≤ 60 is what a sliding window demands. A burst of 5
  (refilled 55 times) would let five calls start at once after a pause, but caps a long sync at
  55 calls a minute; one token lets it reach 59. Retry-After covers whatever slips through
  (another app, clock skew).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import get_current_settings

from config.errors import PermanentError
from config.settings import Settings
from tasks.http import prefect_ssl_context


def concurrency_name(tenant_id: str) -> str:
    return f"xero-tenant-{tenant_id}"


def rate_name(tenant_id: str) -> str:
    return f"xero-tenant-rate-{tenant_id}"


RATE_BURST = 1  # tokens the bucket holds: one, so the refill can be all but the whole minute


def rate_shape(settings: Settings) -> tuple[int, float]:
    """(burst slots, slots regained per second) of the per-tenant rate limit."""
    per_minute = settings.xero_tenant_calls_per_minute
    return RATE_BURST, (per_minute - RATE_BURST) / settings.xero_minute_seconds


def ensure_tenant_limits(settings: Settings, tenant_id: str) -> None:
    """Create the tenant's limits when missing, correct them when settings changed."""
    if not settings.xero_use_prefect_limits:
        return
    burst, decay = rate_shape(settings)
    wanted = (
        (concurrency_name(tenant_id), settings.xero_tenant_concurrency, None),
        (rate_name(tenant_id), burst, decay),
    )
    client = _prefect_client()
    for name, limit, slot_decay in wanted:
        try:
            client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay)
        except ObjectAlreadyExists:  # another run created it between read and create
            client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay)


_local_slots: dict[str, threading.BoundedSemaphore] = {}
_local_lock = threading.Lock()


def _local_semaphore(tenant_id: str, size: int) -> threading.BoundedSemaphore:
    with _local_lock:
        semaphore = _local_slots.get(tenant_id)
        if semaphore is None:
            semaphore = _local_slots[tenant_id] = threading.BoundedSemaphore(size)
        return semaphore


@dataclass
class _Pacer:
    """One rate-token asker per tenant per process (the others wait on ``lock``, not at
    Prefect), and when the bucket has its next token (``next_at``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    next_at: float = 0.0


_pacers: dict[str, _Pacer] = {}


def _pacer(tenant_id: str) -> _Pacer:
    with _local_lock:
        return _pacers.setdefault(tenant_id, _Pacer())


Lease = tuple[UUID, float]  # (Prefect lease id, when it was taken or last renewed)


class _Handoff:
    """A tenant's concurrency leases passed from a poster that is done to one that waits, in
    this process.

    Without it a refused poster sleeps out Prefect's Retry-After (the average time a slot is
    held: seconds, for a poster's slot) while the slot another poster just freed sits unused;
    two integrations on one tenant spent seconds so at the end of each sync.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._waiting = 0
        self._free: list[Lease] = []

    def take(self) -> Lease | None:
        with self._ready:
            return self._free.pop() if self._free else None

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds``, less if a lease is handed over meanwhile."""
        with self._ready:
            self._waiting += 1
            try:
                self._ready.wait_for(lambda: bool(self._free), timeout=seconds)
            finally:
                self._waiting -= 1

    def offer(self, lease: Lease) -> bool:
        """Hand ``lease`` to a waiting poster; False when none waits (release it to Prefect).

        A lease handed over is taken at the top of a waiter's next ask, so none is left behind.
        """
        with self._ready:
            if self._waiting <= len(self._free):
                return False
            self._free.append(lease)
            self._ready.notify()
            return True


_handoffs: dict[str, _Handoff] = {}


def _handoff(tenant_id: str) -> _Handoff:
    with _local_lock:
        return _handoffs.setdefault(tenant_id, _Handoff())


_clients: dict[str, SyncPrefectClient] = {}


def _prefect_client() -> SyncPrefectClient:
    """This process's Prefect client for the tenants' limits, one per API (kept open: a client
    per posting task fetched a CSRF token and opened a connection every time)."""
    api = str(get_current_settings().api.url)
    with _local_lock:
        client = _clients.get(api)
        if client is None:
            client = get_client(httpx_settings={"verify": prefect_ssl_context()}, sync_client=True)
            client.__enter__()
            _clients[api] = client
        return client


@dataclass(frozen=True)
class _Refused:
    retry_after: float


LAPSED = (404, 410)  # Prefect's answers for a lease that expired or was repossessed


class TenantSlots:
    """Xero's per-tenant limits for the calls of one poster (one task: one call at a time).

    With Prefect limits on, over one kept-alive client (Prefect's ``concurrency()`` and
    ``rate_limit()`` helpers open a client and start a lease-renewal loop per acquire, which
    held a tenant far below its ceiling):

    - one of the tenant's concurrency slots, taken at the first call and held, with a lease,
      until the poster is done: the poster never has two calls in flight, so one slot per
      poster is "at most 5 calls at once" at a third of the API calls. The lease is short
      (``LEASE_SECONDS``) so that a killed worker's slots come back within about a minute
      (Prefect's repossessor runs every 15 s); before a call, a lease older than
      ``RENEW_AFTER_SECONDS`` is renewed (or taken afresh if it already lapsed), so every call
      starts with more than an HTTP timeout of lease left;
    - a rate token spent right before every call (the token bucket's guarantee needs the call
      to follow its token at once). One thread per tenant and process asks for it at a time,
      a refill time after the last grant's ask was sent. Prefect's bucket drops the part of a
      token that refilled before a grant, so each millisecond asked late is lost for good,
      while a refusal costs nothing at the bucket (Prefect rolls it back): a refused ask is
      retried ``FIRST_RETRY_SECONDS`` later (the token was a few milliseconds short), then
      every tenth of a refill time (another process took it). Prefect's Retry-After is not
      used here: it is a jittered refill time, so posters slept while tokens refilled unused
      and a tenant reached 80 % of the rate it was allowed (the bench's ceiling).

    A refused concurrency slot is waited for up to its Retry-After, as Prefect's own helpers do,
    or until a poster of this process that is done hands its slot over (``_Handoff``).
    With Prefect limits off, a process-wide semaphore per tenant still keeps this process
    within the tenant's concurrency.
    """

    LEASE_SECONDS = 60.0
    RENEW_AFTER_SECONDS = 20.0
    TOKEN_MARGIN_SECONDS = 0.002  # asked this much after a token is due: clock and queue noise
    FIRST_RETRY_SECONDS = 0.005

    def __init__(
        self,
        settings: Settings,
        tenant_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = settings.xero_use_prefect_limits
        self.tenant_id = tenant_id
        self._sleep = sleep
        self._clock = clock
        self._concurrency = settings.xero_tenant_concurrency
        self._token_interval = 1.0 / rate_shape(settings)[1] + self.TOKEN_MARGIN_SECONDS
        self._refusals = 0
        self._client: SyncPrefectClient | None = None
        self._lease: Lease | None = None
        self._entered = False

    def __enter__(self) -> TenantSlots:
        self._entered = True
        if self.enabled:
            self._client = _prefect_client()
        return self

    def __exit__(self, *exc: object) -> None:
        self._entered = False
        if self._client is not None:
            try:
                self._release()
            finally:
                self._client = None

    @contextmanager
    def call(self) -> Iterator[None]:
        """Make room for one call to the tenant (a held slot and a fresh rate token)."""
        if not self._entered:
            raise RuntimeError("TenantSlots used outside its 'with' block")
        client = self._client
        if client is None:
            with _local_semaphore(self.tenant_id, self._concurrency):
                yield
            return
        if self._lease is not None and self._clock() - self._lease[1] > self.RENEW_AFTER_SECONDS:
            self._renew(client)
        if self._lease is None:
            self._lease = self._take_slot(client)
        pacer = _pacer(self.tenant_id)
        with pacer.lock:
            wait = min(pacer.next_at - self._clock(), self._token_interval)
            if wait > 0:
                self._sleep(wait)
            pacer.next_at = self._take_token(client) + self._token_interval
        yield

    def _renew(self, client: SyncPrefectClient) -> None:
        assert self._lease is not None
        try:
            client.renew_concurrency_lease(self._lease[0], self.LEASE_SECONDS)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in LAPSED:
                raise
            self._lease = None  # lapsed and repossessed: take a slot afresh
            return
        self._lease = (self._lease[0], self._clock())

    def _release(self) -> None:
        if self._lease is None or self._client is None:
            return
        lease, self._lease = self._lease, None
        if _handoff(self.tenant_id).offer(lease):
            return
        try:
            self._client.release_concurrency_slots_with_lease(lease[0])
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in LAPSED:  # a lapsed lease is already free
                raise

    def _take_slot(self, client: SyncPrefectClient) -> Lease:
        """One of the tenant's concurrency slots: handed over, or granted by Prefect."""
        handoff = _handoff(self.tenant_id)
        while True:
            handed = handoff.take()
            if handed is not None:
                return handed
            answer = self._ask(
                lambda: client.increment_concurrency_slots_with_lease(
                    [concurrency_name(self.tenant_id)], 1, "concurrency", self.LEASE_SECONDS
                )
            )
            if not isinstance(answer, _Refused):
                return UUID(answer[0]["lease_id"]), self._clock()
            handoff.wait(answer.retry_after)

    def _take_token(self, client: SyncPrefectClient) -> float:
        """Spend a rate token; returns the clock when the granted ask was sent. A refusal is
        asked again ``FIRST_RETRY_SECONDS`` later, then every tenth of a refill time."""
        refusals = 0
        while True:
            answer = self._ask(
                lambda: client.increment_concurrency_slots(
                    [rate_name(self.tenant_id)], 1, "rate_limit"
                )
            )
            if not isinstance(answer, _Refused):
                return answer[1]
            refusals += 1
            retry = self.FIRST_RETRY_SECONDS if refusals == 1 else self._token_interval / 10
            self._sleep(min(answer.retry_after, retry))

    def _ask(self, request: Callable[[], httpx.Response]) -> tuple[Any, float] | _Refused:
        """One ask: (Prefect's answer, the clock when it was sent), or its refusal (423)."""
        sent_at = self._clock()
        try:
            body = request().json()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:
                raise
            self._refusals += 1
            return _Refused(float(exc.response.headers.get("Retry-After", "0.1")))
        limits = body.get("limits", []) if isinstance(body, dict) else body
        if not limits:  # strict: a missing limit must not mean "unlimited"
            raise PermanentError(
                f"Prefect has no concurrency limits for tenant {self.tenant_id}; "
                "ensure_tenant_limits must run first"
            )
        return body, sent_at
