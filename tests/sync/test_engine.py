"""One integration's sync without Prefect: ``IntegrationSync`` reads pages, plans them (the real
``plan_page``), records in a real ledger on SQLite and posts through a real ``Posting`` whose
groups a real ``TenantPoster`` sends to a fake Xero, in the calling thread. Every bill read
ends with a fate, whatever stops the sync."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from config.errors import Interrupted
from config.settings import Settings
from store.db import make_engine, migrate
from store.integrations import IntegrationStore, IntegrationView
from store.ledger import Ledger, LedgerEntry, Outcome
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.sync.engine import IntegrationSync
from tasks.sync.organisation import CodingRefused
from tasks.sync.plan import Send
from tasks.sync.post import TenantPoster
from tasks.sync.posting import Posting, Recorder
from tasks.sync.report import IntegrationReport
from tasks.xero.reference import XeroReference
from tests.sync.test_plan import ACCOUNT, bill
from tests.sync.test_post import TENANT, Call, FakeXero

SETTINGS = Settings(
    sync_batch_size=2, sync_documents_per_task=4, sync_max_attempts=1, xero_shared_limits=False
)
LOG = logging.getLogger("test_engine")


@dataclass
class Rules:
    """The page's accounts (one, ``acc-1``); ``fail`` raises instead, on the n-th page."""

    fail: Mapping[int, BaseException] = field(default_factory=dict)
    pages: int = 0
    xero_calls: int = 0

    def for_page(
        self, bills: Sequence[Bill], entries: Mapping[str, LedgerEntry]
    ) -> tuple[dict[str, Account], list[ExternalMapping], XeroReference | None]:
        self.pages += 1
        if self.pages in self.fail:
            raise self.fail[self.pages]
        return {"acc-1": ACCOUNT}, [], None


@dataclass
class Done:
    """A group posted in the calling thread: its report is ready."""

    posted: Any

    def done(self) -> bool:
        return True

    def report(self, timeout: float) -> Any:
        return self.posted


class Xero(FakeXero):
    """The poster's fake Xero, which also takes contacts (each account's, upserted first)."""

    def post_contacts(
        self, contacts: list[dict[str, Any]], *, idempotency_key: str
    ) -> list[dict[str, Any]]:
        self.calls.append(Call("post_contacts", contacts, idempotency_key))
        return [{**c, "ContactID": f"id-{c['ContactNumber']}"} for c in contacts]

    def documents(self) -> list[Call]:
        return [c for c in self.posts() if c.method != "post_contacts"]


@dataclass
class World:
    integration: IntegrationView
    ledger: Ledger
    xero: Xero = field(default_factory=Xero)
    stops: list[str] = field(default_factory=list)

    def sync(self, pages: list[list[Bill]], rules: Rules | None = None, **kw: Any) -> Any:
        report = IntegrationReport(self.integration.name, self.integration.id)
        recorder = Recorder(self.integration.id, TENANT, self.ledger, "run-1", LOG)

        def submit(sends: list[Send], what: str, number: int) -> Done:
            poster = TenantPoster(
                settings=SETTINGS,
                client=self.xero,  # type: ignore[arg-type]
                ledger=self.ledger,
                integration_id=self.integration.id,
                tenant_id=TENANT,
                run_id="run-1",
                sleep=lambda _: None,
            )
            return Done(poster.post(sends))

        return IntegrationSync(
            integration=self.integration,
            report=report,
            pages=iter(pages),
            rules=rules or Rules(),
            ledger=self.ledger,
            posting=Posting(SETTINGS, report, submit=submit, recorder=recorder, log=LOG),
            recorder=recorder,
            log=LOG,
            stop_process=self.stops.append,
            **kw,
        )

    def outcomes(self) -> dict[str, Outcome]:
        return {b: e.outcome for b, e in self.ledger.snapshot(self.integration.id).items()}


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    migrate(url)
    engine = make_engine(url)
    integration = IntegrationStore(engine).create({"name": "Engine", "account_ids": ["acc-1"]})
    yield World(integration, Ledger(engine))
    engine.dispose()


def bills(*numbers: int, **fields: Any) -> list[Bill]:
    return [bill(f"bill-{n}", **fields) for n in numbers]


def test_every_bill_read_ends_with_a_fate_and_the_next_run_sends_nothing(world: World) -> None:
    pages = [bills(1, 2, 3), bills(4, accountId="acc-elsewhere"), bills(5, 6)]
    sync = world.sync(pages)
    report = sync.run()

    assert sync.interrupted is None and report.problem is None
    assert (report.sent, report.outside, report.failed) == (5, 1, 0)
    assert world.xero.numbers("invoice") == ["bill-1", "bill-2", "bill-3", "bill-5", "bill-6"]
    assert set(world.outcomes().values()) == {Outcome.COMPLETE}
    assert "bill-4" not in world.outcomes()  # not this integration's account: no row
    # The first group holds two batches (4 documents, 2 calls); the one left goes at the end.
    assert [len(c.arg) for c in world.xero.documents()] == [2, 2, 1]

    calls = len(world.xero.calls)
    again = world.sync(pages).run()
    assert (again.sent, again.unchanged, again.xero_calls) == (0, 5, 0)
    assert len(world.xero.calls) == calls


def test_a_dry_run_records_nothing_and_posts_nothing(world: World) -> None:
    report = world.sync([bills(1, 2), bills(3)], dry_run=True).run()

    assert (report.would_send, report.sent) == (3, 0)
    assert world.xero.calls == []
    assert world.outcomes() == {}


def test_a_page_cut_short_records_its_bills_interrupted_and_keeps_what_was_sent(
    world: World,
) -> None:
    down = Interrupted("the project database did not answer")
    # Page 1: four bills go in the first group; the fifth waits for the next group.
    sync = world.sync([bills(1, 2, 3, 4, 5), bills(6, 7), bills(8)], Rules(fail={2: down}))
    report = sync.run()

    assert sync.interrupted == str(down)
    assert report.problem is not None and report.problem.startswith("interrupted (")
    assert (report.sent, report.failed) == (4, 3)
    assert report.message().startswith("3 bills not sent: 3 interrupted")
    outcomes = world.outcomes()
    assert {b for b, o in outcomes.items() if o is Outcome.COMPLETE} == {
        "bill-1",
        "bill-2",
        "bill-3",
        "bill-4",
    }
    # Planned but not handed to a poster (5), read but not planned (6, 7): INTERRUPTED, for
    # the rerun; bill-8 was never read: the watermark does not move, the next sync reads it.
    assert {b for b, o in outcomes.items() if o is Outcome.INTERRUPTED} == {
        "bill-5",
        "bill-6",
        "bill-7",
    }
    assert "bill-8" not in outcomes
    assert world.stops == []  # a failure in this sync is not the process stopping


def test_a_stop_signal_stops_every_poster_records_the_page_and_is_raised_again(
    world: World,
) -> None:
    sync = world.sync([bills(1, 2, 3, 4), bills(5)], Rules(fail={2: KeyboardInterrupt()}))
    with pytest.raises(KeyboardInterrupt):
        sync.run()

    assert world.stops == ["the process is stopping (KeyboardInterrupt)"]
    outcomes = world.outcomes()
    assert outcomes.pop("bill-5") is Outcome.INTERRUPTED
    assert set(outcomes.values()) == {Outcome.COMPLETE}


def test_coding_the_organisation_refuses_sends_nothing_and_says_why(world: World) -> None:
    refused = CodingRefused("account code 999 is not in the organisation's chart of accounts")
    sync = world.sync([bills(1, 2)], Rules(fail={1: refused}))
    report = sync.run()

    assert report.problem == f"not synced: {refused}"
    assert sync.interrupted == str(refused)  # so the watermark stays where it was
    assert world.xero.calls == []
    assert world.outcomes() == {}


def test_an_unforeseen_error_is_logged_with_its_traceback_and_counted(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    sync = world.sync([bills(1)], Rules(fail={1: ValueError("a bug")}))
    with caplog.at_level(logging.ERROR, logger="test_engine"):
        report = sync.run()

    assert sync.interrupted == "ValueError: a bug"
    assert world.outcomes() == {"bill-1": Outcome.INTERRUPTED}
    assert report.failed == 1
    assert any(r.exc_info for r in caplog.records), "no traceback for an unforeseen error"
