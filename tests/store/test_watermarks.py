"""Watermarks on SQLite and PostgreSQL: they only move forward under one fingerprint, a new
fingerprint replaces them, deleting the integration deletes them."""

from __future__ import annotations

import pytest

from store.db import make_engine, migrate
from store.integrations import IntegrationStore
from store.ledger import FAILED, Fate, Ledger, Outcome
from store.watermarks import Watermark, Watermarks


@pytest.fixture
def setup(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    store = IntegrationStore(engine)
    integration = store.create({"name": "Watermarked"})
    return Watermarks(engine), Ledger(engine), store, integration.id


def test_a_watermark_never_moves_back_under_the_same_fingerprint(setup):
    marks, _, _, iid = setup
    assert marks.get(iid) is None
    marks.advance(iid, "fp-1", 1_000.0)
    marks.advance(iid, "fp-1", 900.0)  # a slower run that read less finishes last
    assert marks.get(iid) == Watermark("fp-1", 1_000.0)
    marks.advance(iid, "fp-1", 1_500.5)
    assert marks.get(iid) == Watermark("fp-1", 1_500.5)


def test_a_new_fingerprint_replaces_the_watermark_even_if_older(setup):
    marks, _, _, iid = setup
    marks.advance(iid, "fp-1", 1_000.0)
    marks.advance(iid, "fp-2", 10.0)
    assert marks.get(iid) == Watermark("fp-2", 10.0)
    marks.clear(iid)
    assert marks.get(iid) is None


def test_deleting_the_integration_deletes_its_watermark(setup):
    marks, _, store, iid = setup
    marks.advance(iid, "fp", 5.0)
    store.delete(iid)
    assert marks.get(iid) is None


def test_ledger_reads_one_page_of_rows_and_failed_ids(setup):
    _, ledger, _, iid = setup
    ledger.record(
        iid,
        [
            Fate("b1", 1, Outcome.COMPLETE, xero_id="X1"),
            Fate("b2", 1, Outcome.ERROR, reason="boom"),
            Fate("b3", 2, Outcome.INVOICE_ALREADY_PAID, reason="paid"),
            Fate("b4", 1, Outcome.SKIPPED, reason="not approved"),
        ],
    )
    page = ledger.for_bills(iid, ["b1", "b4", "unknown"])
    assert set(page) == {"b1", "b4"} and page["b4"].outcome is Outcome.SKIPPED
    assert ledger.for_bills(iid, []) == {}
    assert ledger.bill_ids(iid, FAILED) == [("b2", None), ("b3", None)]
    assert ledger.bill_ids(iid, [Outcome.SKIPPED], reason="not approved") == [("b4", None)]
    assert ledger.bill_ids(iid, [Outcome.SKIPPED], reason="other") == []
    assert ledger.count(iid) == 4
