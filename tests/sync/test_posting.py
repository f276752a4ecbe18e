"""``Posting`` without Prefect: how planned documents are grouped and handed to posters, how
many are in flight, and what becomes of every document when a poster crashes, times out,
meets a refused credential, or the tenant's limits cannot be had."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from config.errors import Interrupted
from config.settings import Settings
from store.db import make_engine, migrate
from store.integrations import IntegrationStore
from store.ledger import Ledger, Outcome
from tasks.sync.fates import PostReport
from tasks.sync.plan import Send
from tasks.sync.posting import Posting, Recorder
from tasks.sync.report import IntegrationReport
from tests.sync.test_post import TENANT, send

LOG = logging.getLogger("test_posting")


@dataclass
class Handle:
    """A poster that reports ``outcome`` (a report, or an exception it raises) once asked."""

    sends: list[Send]
    outcome: Any = None
    finished: bool = False
    asked: int = 0

    def done(self) -> bool:
        return self.finished

    def report(self, timeout: float) -> Any:
        self.asked += 1
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        if self.outcome is not None:
            return self.outcome
        return PostReport(created=len(self.sends))


@dataclass
class Posters:
    """``submit``: every group handed over, in order; ``outcomes`` scripts what each reports."""

    outcomes: list[Any] = field(default_factory=list)
    handles: list[Handle] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __call__(self, sends: list[Send], what: str, number: int) -> Handle:
        handle = Handle(sends, self.outcomes.pop(0) if self.outcomes else None)
        self.handles.append(handle)
        self.names.append(f"{what} (#{number})")
        return handle

    def sizes(self) -> list[int]:
        return [len(h.sends) for h in self.handles]


@dataclass
class World:
    ledger: Ledger
    integration_id: str
    posters: Posters = field(default_factory=Posters)
    report: IntegrationReport = field(default_factory=lambda: IntegrationReport("P", "p"))

    def posting(self, prepare: Any = lambda: None, **settings: Any) -> Posting:
        values = {"sync_batch_size": 2, "sync_documents_per_task": 6, **settings}
        return Posting(
            Settings(**values),
            self.report,
            submit=self.posters,
            recorder=Recorder(self.integration_id, TENANT, self.ledger, "run-1", LOG),
            prepare=prepare,
            log=LOG,
        )

    def outcomes(self) -> dict[str, Outcome]:
        return {b: e.outcome for b, e in self.ledger.snapshot(self.integration_id).items()}


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'posting.db'}"
    migrate(url)
    engine = make_engine(url)
    yield World(Ledger(engine), IntegrationStore(engine).create({"name": "Posting"}).id)
    engine.dispose()


def test_groups_are_one_kind_the_first_small_and_the_rest_split_at_the_end(world: World) -> None:
    posting = world.posting()
    posting.add(send(n) for n in range(1, 12))  # 11 invoices
    posting.add(send(n, "credit_note") for n in range(20, 23))  # 3 credit notes
    posting.add([send(30, xero_id="inv-30")])  # an update: a group of its own
    posting.finish()

    # First group: two batches (4), so posting starts early; then sync_documents_per_task
    # (6); at the end what is left goes as groups of up to two batches, side by side.
    assert world.posters.sizes() == [4, 6, 1, 3, 1]
    assert world.posters.names[0] == "4 invoices (#1)"
    assert "1 invoice update (#5)" in world.posters.names
    assert all(len({s.kind for s in h.sends}) == 1 for h in world.posters.handles)
    assert (world.report.sent, world.report.failed) == (15, 0)
    assert all(h.asked == 1 for h in world.posters.handles)  # every report read once


def test_no_more_groups_in_flight_than_the_tenant_allows(world: World) -> None:
    posting = world.posting(sync_documents_per_task=2, xero_tenant_concurrency=2)
    posting.add(send(n) for n in range(1, 11))  # groups of 4, 2, 2, 2

    # The third group waited for the first to be read; the fifth for the second.
    assert world.posters.sizes() == [4, 2, 2, 2]
    assert [h.asked for h in world.posters.handles] == [1, 1, 0, 0]
    world.posters.handles[2].finished = True  # a poster that is over is settled early
    posting.add(send(n) for n in range(11, 13))
    assert [h.asked for h in world.posters.handles] == [1, 1, 1, 0, 0]


def test_a_crashed_poster_counts_its_bills_interrupted_and_stops_the_rest(world: World) -> None:
    world.posters.outcomes = [RuntimeError("the thread died")]
    posting = world.posting()
    posting.add(send(n) for n in range(1, 5))  # a group of 4, in flight
    posting.add(send(n) for n in range(5, 8))  # pending
    posting.interrupt("SIGTERM")

    assert posting.interrupted == "SIGTERM"
    assert world.report.failed == 7
    failures = {f.bill_id: f.reason for f in world.report.failures}
    assert "its posting task crashed: RuntimeError: the thread died" in failures["bill-1"]
    # The pending ones are recorded for the rerun; the crashed poster's own are as it left them.
    assert world.outcomes() == {f"bill-{n}": Outcome.INTERRUPTED for n in range(5, 8)}


def test_a_poster_that_does_not_end_in_time_stops_the_posting(world: World) -> None:
    world.posters.outcomes = [TimeoutError()]
    posting = world.posting(sync_post_task_timeout_seconds=7)
    posting.add(send(n) for n in range(1, 5))
    posting.add(send(n) for n in range(5, 11))  # already in flight beside it
    posting.finish()

    assert posting.interrupted == "its posting task did not end within 7 s"
    with pytest.raises(Interrupted):
        posting.check()  # the reading stops too
    assert (world.report.sent, world.report.failed) == (6, 4)


def test_a_refused_credential_defers_the_rest_auth_failed(world: World) -> None:
    refused = PostReport(stop=(Outcome.AUTH_FAILED, "invalid_grant"))
    world.posters.outcomes = [refused]
    posting = world.posting(xero_tenant_concurrency=1)
    posting.add(send(n) for n in range(1, 5))
    posting.add(send(n) for n in range(5, 11))  # waits for the first: learns, sends nothing
    posting.finish()

    assert world.report.auth_failed == "invalid_grant"
    assert len(world.posters.handles) == 1
    assert world.outcomes() == {f"bill-{n}": Outcome.AUTH_FAILED for n in range(5, 11)}
    assert posting.interrupted is None  # not an interruption: the integration is disabled


def test_limits_that_cannot_be_had_send_nothing_and_record_every_bill(world: World) -> None:
    def prepare() -> None:
        raise Interrupted("the project database did not answer")

    posting = world.posting(prepare=prepare)
    posting.add(send(n) for n in range(1, 6))
    posting.finish()

    assert world.posters.handles == []
    assert posting.interrupted == "the project database did not answer"
    assert world.outcomes() == {f"bill-{n}": Outcome.INTERRUPTED for n in range(1, 6)}
    assert world.report.failed == 5
