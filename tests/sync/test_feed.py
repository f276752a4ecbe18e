"""The shared bill reader: every subscriber gets every page in order, a subscriber that stops
early never stalls the others, a failed read fails every subscriber, and what a read covers."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest

from tasks.m3ter.models import Bill
from tasks.sync.feed import BillFeed, ReadPlan, ReadTracker, joined

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _pages(count: int, size: int = 3) -> list[list[Bill]]:
    return [
        [
            Bill.model_validate(
                {
                    "id": f"b{p}-{n}",
                    "dtLastModified": (BASE + dt.timedelta(minutes=p * size + n)).isoformat(),
                }
            )
            for n in range(size)
        ]
        for p in range(count)
    ]


def _consume(feed: BillFeed, name: str, out: dict[str, object], stop_after: int | None = None):
    seen: list[str] = []
    try:
        for number, page in enumerate(feed.pages(name), start=1):
            seen.extend(b.id for b in page)
            if stop_after is not None and number >= stop_after:
                break
        out[name] = seen
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        out[name] = exc


def _run(feed: BillFeed, plan: dict[str, int | None]) -> dict[str, object]:
    out: dict[str, object] = {}
    with feed:
        assert joined(feed.id) is feed
        threads = [
            threading.Thread(target=_consume, args=(feed, name, out, stop))
            for name, stop in plan.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive(), "a subscriber is stuck"
    assert joined(feed.id) is None
    return out


def test_every_subscriber_gets_every_page_once_in_order():
    pages = _pages(40)
    reads = []

    def read(tracker: ReadTracker) -> Iterator[list[Bill]]:
        reads.append(1)
        tracker.begin(BASE)
        yield from pages

    feed = BillFeed(ReadPlan(), read, ["a", "b", "c"], depth=2)
    out = _run(feed, {"a": None, "b": None, "c": None})
    expected = [b.id for page in pages for b in page]
    assert out == {"a": expected, "b": expected, "c": expected}
    assert reads == [1]  # one listing for all three
    assert feed.complete
    assert feed.tracker.modified_through == BASE.timestamp() - 1  # the Date header's second


def test_a_subscriber_that_stops_early_does_not_stall_the_others():
    pages = _pages(50)
    feed = BillFeed(ReadPlan(), lambda tracker: iter(pages), ["quitter", "stayer"], depth=1)
    out = _run(feed, {"quitter": 2, "stayer": None})
    assert len(out["quitter"]) == 6
    assert len(out["stayer"]) == 150


def test_a_subscriber_that_never_starts_is_released_by_leave():
    pages = _pages(20)
    feed = BillFeed(ReadPlan(), lambda tracker: iter(pages), ["absent", "present"], depth=1)
    out: dict[str, object] = {}
    with feed:
        worker = threading.Thread(target=_consume, args=(feed, "present", out))
        worker.start()
        feed.leave("absent")  # what sync_bills does when a subflow ends before reading
        worker.join(timeout=30)
        assert not worker.is_alive()
    assert len(out["present"]) == 60


def test_a_failed_read_fails_every_subscriber_after_the_pages_before_it():
    pages = _pages(3)

    def read(tracker: ReadTracker) -> Iterator[list[Bill]]:
        yield from pages
        raise ConnectionError("m3ter went away")

    feed = BillFeed(ReadPlan(), read, ["a", "b"])
    out = _run(feed, {"a": None, "b": None})
    assert all(isinstance(v, ConnectionError) for v in out.values()), out
    assert not feed.complete


def test_the_tracker_keeps_when_the_read_began_and_knows_nothing_without_a_clock():
    tracker = ReadTracker()
    tracker.begin(None)  # an answer without a Date header: no watermark from this read
    assert tracker.modified_through is None
    tracker.begin(BASE)
    tracker.begin(BASE + dt.timedelta(minutes=5))  # later answers do not move the start
    assert tracker.modified_through == BASE.timestamp() - 1


@pytest.mark.parametrize(
    ("shared", "wanted", "covers"),
    [
        (ReadPlan(), ReadPlan(modified_since=100.0), True),
        (ReadPlan(modified_since=50.0), ReadPlan(modified_since=100.0), True),
        (ReadPlan(modified_since=100.0), ReadPlan(modified_since=50.0), False),
        (ReadPlan(modified_since=100.0), ReadPlan(), False),
        (ReadPlan(bill_date_start=dt.date(2026, 1, 1)), ReadPlan(), False),
        (
            ReadPlan(bill_date_start=dt.date(2026, 1, 1)),
            ReadPlan(bill_date_start=dt.date(2026, 2, 1)),
            True,
        ),
    ],
)
def test_a_shared_read_serves_an_integration_only_if_it_covers_its_needs(shared, wanted, covers):
    assert shared.covers(wanted) is covers
