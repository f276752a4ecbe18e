"""Hold an integration's sync lease (``store.sync_leases``) while a run posts its bills.

A run that finds the lease taken waits for it (logging who holds it), then reads what is left:
the first run's bills are COMPLETE by then and cost nothing. While held, a thread renews the
lease every third of its life, so only a run that stopped (killed, frozen) lets it lapse.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from config.errors import Interrupted, TransientError
from config.settings import Settings
from store.factory import database
from store.sync_leases import Lease, SyncLeases
from tasks.sync import stopping


class IntegrationBusy(TransientError):
    """Another run held the integration's lease for longer than this run would wait."""


class IntegrationLease:
    """``with IntegrationLease(...) as lease:`` waits for and holds one integration's lease.

    ``taken()`` tries once without waiting (so a caller can first give up a shared reading it
    would otherwise stall); entering waits up to ``sync_lease_wait_seconds``.
    """

    POLL_SECONDS = 1.0
    RELEASE_SECONDS = 10.0  # a database back within this long gets the lease back at once

    def __init__(
        self,
        settings: Settings,
        integration_id: str,
        integration_name: str,
        holder: str,
        *,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        sleep: Callable[[float], None] = stopping.pause,
    ) -> None:
        self.leases = SyncLeases(database(settings))
        self.seconds = settings.sync_lease_seconds
        self.wait_seconds = settings.sync_lease_wait_seconds
        self.integration_id = integration_id
        self.name = integration_name
        self.holder = holder
        self.log = log
        self.sleep = sleep
        self.held = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def taken(self) -> Lease | None:
        """Try once: ``None`` when the lease is ours, else who holds it."""
        other = self.leases.acquire(self.integration_id, self.holder, self.seconds)
        self.held = other is None
        return other

    def __enter__(self) -> IntegrationLease:
        if not self.held:
            self._wait()
        self._renewer = threading.Thread(
            target=self._renew, name=f"lease {self.integration_id}", daemon=True
        )
        self._renewer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self.held = False
        began = time.monotonic()
        while True:
            try:
                self.leases.release(self.integration_id, self.holder)
                return
            except Interrupted as exc:  # the database is away: try a little, else it lapses
                if stopping.stopping() or time.monotonic() - began >= self.RELEASE_SECONDS:
                    self.log.warning(
                        "could not give back the sync lease of %s (%s): it lapses in %.0f s",
                        self.name,
                        exc,
                        self.seconds,
                    )
                    return
            self.sleep(1.0)

    def _wait(self) -> None:
        began = time.monotonic()
        other = self.taken()
        if other is not None:
            since = dt.datetime.fromtimestamp(other.acquired_at, dt.UTC)
            self.log.info(
                "%s is being synced by run %s (since %s): waiting for it to finish",
                self.name,
                other.holder,
                since.isoformat(timespec="seconds"),
            )
        while other is not None:
            waited = time.monotonic() - began
            if waited >= self.wait_seconds:
                raise IntegrationBusy(
                    f"{self.name} was still being synced by run {other.holder} after "
                    f"{waited:.0f} s of waiting; its bills are that run's or the next sync's"
                )
            self.sleep(self.POLL_SECONDS)
            other = self.taken()
        self.log.info("%s: the other run finished; syncing what is left", self.name)

    def _renew(self) -> None:
        lost = False
        while not self._stop.wait(self.seconds / 3):
            try:
                kept = self.leases.renew(self.integration_id, self.holder, self.seconds)
            except Exception as exc:  # the database may be back before the lease lapses
                self.log.warning("could not renew the sync lease of %s: %s", self.name, exc)
                continue
            if not kept and not lost:
                lost = True
                self.log.warning(
                    "the sync lease of %s lapsed and another run took it: duplicate numbers "
                    "will be looked up and updated, not created twice",
                    self.name,
                )
