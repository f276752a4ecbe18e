"""Reading m3ter's bills for a sync: once per run, shared by its integrations, incrementally.

m3ter's bills belong to the organisation, not to an integration, so when one ``sync_bills``
run syncs several integrations a single reader thread lists the bills and hands every page to
each integration (``BillFeed``), instead of each integration listing every bill again. Pages
wait in small bounded queues, so the slowest integration sets the pace and memory holds a few
pages, whatever the number of bills.

What is read is either every bill (optionally from a bill date) or, when the integrations have a
watermark, only bills modified at or after it (m3ter's search sorted by ``dtLastModified``,
newest first): a sync with nothing new reads one page.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from config.settings import Settings
from tasks.m3ter.client import M3terClient
from tasks.m3ter.models import Bill
from tasks.process import PROCESS

_END = object()


@dataclass(frozen=True)
class ReadPlan:
    """What to read: bills dated from ``bill_date_start``; only those modified at or after
    ``modified_since`` (epoch seconds) when set."""

    bill_date_start: dt.date | None = None
    modified_since: float | None = None

    def covers(self, other: ReadPlan) -> bool:
        """Whether reading ``self`` yields every bill ``other`` would."""
        if self.bill_date_start is not None and (
            other.bill_date_start is None or other.bill_date_start < self.bill_date_start
        ):
            return False
        if self.modified_since is None:
            return True
        return other.modified_since is not None and other.modified_since >= self.modified_since


class ReadTracker:
    """When a read began, by m3ter's clock (the Date of its first answer, less the second that
    header drops): once the read completes, every bill modified before then has been seen."""

    def __init__(self) -> None:
        self.started: float | None = None

    def begin(self, server_time: dt.datetime | None) -> None:
        """Note the time a read starts (the watermark never passes it)."""
        if self.started is None and server_time is not None:
            self.started = server_time.timestamp() - 1.0

    @property
    def modified_through(self) -> float | None:
        """The newest modification seen, capped at the read's start."""
        return self.started


def read_bills(
    settings: Settings, plan: ReadPlan, tracker: ReadTracker | None = None
) -> Iterator[list[Bill]]:
    """Pages of bills as ``plan`` says, never more than a page in memory; ``tracker`` learns
    when the read began."""
    size = settings.sync_page_size
    tracker = tracker or ReadTracker()
    with M3terClient.from_settings(settings) as m3ter:
        if plan.modified_since is None:
            # The next page is fetched while this one is validated and handed out, so the
            # read began at the first answer's time, not at the latest answer's.
            for page in m3ter.iter_bill_pages(
                bill_date_start=plan.bill_date_start, page_size=size, read_ahead_pages=1
            ):
                tracker.begin(m3ter.first_server_time)
                yield page
            tracker.begin(m3ter.first_server_time)
            return
        since = dt.datetime.fromtimestamp(plan.modified_since, dt.UTC)
        start = plan.bill_date_start
        # A bill changed during the read moves to the top of the newest-first order and can
        # come back on a later page: each bill is handed out once.
        seen: set[str] = set()
        for page in m3ter.iter_bill_pages_modified_since(since, page_size=size):
            tracker.begin(m3ter.server_time)
            kept = [
                b
                for b in page
                if b.id not in seen and (start is None or (b.bill_date and b.bill_date >= start))
            ]
            seen.update(b.id for b in page)
            if kept:
                yield kept
        tracker.begin(m3ter.server_time)  # nothing at all changed: the read still happened


def read_bills_by_id(settings: Settings, bill_ids: Iterable[str]) -> Iterator[list[Bill]]:
    """Pages of the bills with these ids (unknown ids are skipped: m3ter deleted them)."""
    with M3terClient.from_settings(settings) as m3ter:
        yield from m3ter.iter_bills_by_ids(bill_ids, page_size=settings.sync_page_size)


class BillFeed:
    """One reader thread, several subscribers, each getting every page in order.

    A subscriber that stops early calls ``leave`` (``pages`` does so when its consumer ends)
    so the reader never waits on it; if the reader fails, every subscriber's ``pages`` raises
    the reader's error once the pages before it are consumed.
    """

    def __init__(
        self,
        plan: ReadPlan,
        read: Callable[[ReadTracker], Iterable[list[Bill]]],
        subscribers: Iterable[str],
        *,
        depth: int = 3,
    ) -> None:
        self.plan = plan
        self.id = str(uuid.uuid4())
        self._read = read
        self._queues: dict[str, queue.Queue[object]] = {
            s: queue.Queue(maxsize=depth) for s in subscribers
        }
        self._gone: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bill-feed", daemon=True)
        self.tracker = ReadTracker()
        self.error: BaseException | None = None
        self.complete = False

    def __enter__(self) -> BillFeed:
        PROCESS.put(PROCESS.feeds, self.id, self)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for subscriber in list(self._queues):
            self.leave(subscriber)
        self._thread.join()
        PROCESS.pop(PROCESS.feeds, self.id)

    def leave(self, subscriber: str) -> None:
        """Stop feeding ``subscriber`` (it is done, or gave up): the reader does not wait on it."""
        with self._lock:
            self._gone.add(subscriber)
        _drain(self._queues[subscriber])

    def pages(self, subscriber: str) -> Iterator[list[Bill]]:
        """The pages for ``subscriber``, as the shared reader lists them."""
        inbox = self._queues[subscriber]
        try:
            while True:
                item = inbox.get()
                if item is _END:
                    if self.error is not None:
                        raise self.error
                    return
                yield item  # type: ignore[misc]
        finally:
            self.leave(subscriber)

    def _active(self) -> list[str]:
        with self._lock:
            return [s for s in self._queues if s not in self._gone]

    def _put(self, subscriber: str, item: object) -> None:
        inbox = self._queues[subscriber]
        while subscriber in self._active():
            try:
                inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            for page in self._read(self.tracker):
                active = self._active()
                if not active:
                    return
                for subscriber in active:
                    self._put(subscriber, page)
            self.complete = True
        except BaseException as exc:  # noqa: BLE001 - handed to every subscriber
            self.error = exc
        finally:
            for subscriber in self._queues:
                self._put(subscriber, _END)


def joined(feed_id: str | None) -> BillFeed | None:
    """The feed ``feed_id`` of this process, or ``None`` (a subflow run elsewhere reads alone)."""
    if feed_id is None:
        return None
    feed: BillFeed | None = PROCESS.peek(PROCESS.feeds, feed_id)
    return feed


def _drain(inbox: queue.Queue[object]) -> None:
    while True:
        try:
            inbox.get_nowait()
        except queue.Empty:
            return
