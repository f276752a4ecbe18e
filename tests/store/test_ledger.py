"""The ledger on SQLite and PostgreSQL: upserts keep what a step did not learn, count attempts."""

from __future__ import annotations

import pytest

from store.db import make_engine, migrate
from store.integrations import IntegrationStore
from store.ledger import RETRYABLE, Fate, Ledger, Outcome


@pytest.fixture
def setup(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    integration = IntegrationStore(engine).create({"name": "Ledgered"})
    return Ledger(engine), integration.id


def test_started_then_complete_keeps_number_and_counts_attempts(setup):
    ledger, iid = setup
    ledger.record(
        iid,
        [
            Fate(
                "b1",
                1,
                Outcome.STARTED,
                account_id="a1",
                invoice_number="INV-1",
                idempotency_key="k1",
                tenant_id="t1",
                attempt=True,
            ),
            Fate("b2", 3, Outcome.SKIPPED, account_id="a2", reason="no lines left"),
        ],
        sync_run_id="run-1",
    )
    ledger.record(iid, [Fate("b1", 1, Outcome.COMPLETE, xero_id="X-1", document_type="invoice")])
    entry = ledger.get(iid, "b1")
    assert entry.outcome is Outcome.COMPLETE
    assert (entry.sent_version, entry.xero_id, entry.invoice_number) == (1, "X-1", "INV-1")
    assert (entry.attempts, entry.tenant_id, entry.reason) == (1, "t1", None)
    assert ledger.get(iid, "b2").reason == "no lines left"

    # A new version fails: the sent version and Xero id of the earlier success remain.
    ledger.record(iid, [Fate("b1", 2, Outcome.ERROR, reason="boom", attempt=True)])
    entry = ledger.get(iid, "b1")
    assert (entry.bill_version, entry.sent_version, entry.xero_id) == (2, 1, "X-1")
    assert (entry.outcome, entry.reason, entry.attempts) == (Outcome.ERROR, "boom", 2)

    assert set(ledger.snapshot(iid)) == {"b1", "b2"}
    failed = ledger.entries(integration_ids=[iid], outcomes=RETRYABLE)
    assert [e.bill_id for e in failed] == ["b1"]
    assert ledger.entries(bill_ids=["b2"])[0].outcome is Outcome.SKIPPED


def test_a_document_of_the_other_kind_replaces_the_old_id_even_before_it_has_one(setup):
    ledger, iid = setup
    ledger.record(iid, [Fate("b1", 1, Outcome.COMPLETE, xero_id="INV-ID", document_type="invoice")])
    # The bill became a credit: its credit note starts (no id yet); the invoice's id must not
    # be taken for the credit note's.
    ledger.record(iid, [Fate("b1", 2, Outcome.STARTED, document_type="credit_note", attempt=True)])
    entry = ledger.get(iid, "b1")
    assert (entry.document_type, entry.xero_id) == ("credit_note", None)
    ledger.record(iid, [Fate("b1", 2, Outcome.ERROR, document_type="credit_note")])
    assert ledger.get(iid, "b1").xero_id is None
    done = Fate("b1", 2, Outcome.COMPLETE, xero_id="CN-ID", document_type="credit_note")
    ledger.record(iid, [done])
    ledger.record(iid, [Fate("b1", 3, Outcome.STARTED, attempt=True)])  # kind not said: kept
    assert ledger.get(iid, "b1").xero_id == "CN-ID"


def test_a_started_row_says_which_number_its_attempt_sent_none_included(setup):
    """The next run finds an unknown attempt's document by what that attempt sent: a STARTED
    row's number is the attempt's own, None when Xero was to number it; other fates keep the
    number known (Xero's, once it answered)."""
    ledger, iid = setup
    ledger.record(iid, [Fate("b1", 1, Outcome.STARTED, invoice_number="b1", attempt=True)])
    ledger.record(iid, [Fate("b1", 1, Outcome.ERROR, reason="outcome unknown")])
    assert ledger.get(iid, "b1").invoice_number == "b1"  # an error keeps it
    ledger.record(iid, [Fate("b1", 2, Outcome.STARTED, attempt=True)])  # Xero's sequence
    assert ledger.get(iid, "b1").invoice_number is None
    ledger.record(iid, [Fate("b1", 2, Outcome.COMPLETE, invoice_number="INV-0007", xero_id="X")])
    entry = ledger.get(iid, "b1")
    assert (entry.invoice_number, entry.xero_id, entry.attempts) == ("INV-0007", "X", 2)
