"""The poster on its own (no Prefect, no HTTP): a fake Xero client that records every call, a
real ledger on SQLite. Batches and their idempotency keys, retries, the fate of every bill,
early stops (credential, daily limit, interruption), unknown attempts and sign changes."""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import pytest

from config.errors import (
    AuthError,
    NotFound,
    RateLimitError,
    TransientError,
    ValidationFailed,
    WaitExpired,
)
from config.settings import Settings
from store.db import make_engine, migrate
from store.integrations import IntegrationStore
from store.ledger import Fate, Ledger, LedgerEntry, Outcome
from tasks.sync.limits import TenantSlots, _local_semaphore
from tasks.sync.plan import ID_FIELD, NUMBER_FIELD, Send, idempotency_key
from tasks.sync.post import PostReport, TenantPoster
from tasks.xero.invoices import InvoiceResult

TENANT = "tenant-1"
LABEL = {"invoice": "Invoice", "credit_note": "Credit Note"}
# Xero's status changes (sandbox/xero/invoice_store.py): PAID, VOIDED and DELETED are final.
TRANSITIONS = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
}


@dataclass
class Call:
    method: str
    arg: Any  # the documents posted, the numbers looked up, or the id fetched
    key: str | None = None
    update: bool | None = None


@dataclass
class Lost:
    """Xero did the work but its answer never came back (a timeout after the fact)."""

    error: Exception


@dataclass
class FakeXero:
    """Just what ``TenantPoster`` calls, in memory. ``script`` says what the next calls do, in
    order: ``None`` answers, an exception is raised instead, ``Lost(e)`` answers then raises.
    A key seen before replays its first answer, as Xero's Idempotency-Key does."""

    calls: list[Call] = field(default_factory=list)
    docs: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"invoice": {}, "credit_note": {}}
    )
    script: list[Exception | Lost | None] = field(default_factory=list)
    refuse: dict[str, list[str]] = field(default_factory=dict)  # number -> Xero's words
    replays: dict[str, list[InvoiceResult]] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- what the poster calls ---------------------------------------------------------------
    def post_invoices(
        self, invoices: list[dict[str, Any]], *, idempotency_key: str, update: bool = False
    ) -> list[InvoiceResult]:
        return self._post("invoice", invoices, idempotency_key, update)

    def post_credit_notes(
        self, credit_notes: list[dict[str, Any]], *, idempotency_key: str, update: bool = False
    ) -> list[InvoiceResult]:
        return self._post("credit_note", credit_notes, idempotency_key, update)

    def find_invoices_by_number(self, numbers: list[str]) -> dict[str, dict[str, Any]]:
        return self._find("invoice", numbers)

    def find_credit_notes_by_number(self, numbers: list[str]) -> dict[str, dict[str, Any]]:
        return self._find("credit_note", numbers)

    def find_invoices_by_reference(self, references: list[str]) -> dict[str, dict[str, Any]]:
        return self._find("invoice", references, "Reference")

    def find_credit_notes_by_reference(self, references: list[str]) -> dict[str, dict[str, Any]]:
        return self._find("credit_note", references, "Reference")

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self._get("invoice", invoice_id)

    def get_credit_note(self, credit_note_id: str) -> dict[str, Any]:
        return self._get("credit_note", credit_note_id)

    # -- the test's side ---------------------------------------------------------------------
    def add(
        self, kind: str, number: str | None, status: str = "DRAFT", reference: str | None = None
    ) -> str:
        """A document already in Xero (an earlier run made it, or someone else did); returns
        its id. Without a number, Xero gives the next of its sequence."""
        n = next(self.ids)
        doc_id = f"{kind}-{n}"
        self.docs[kind][doc_id] = {
            ID_FIELD[kind]: doc_id,
            NUMBER_FIELD[kind]: number or f"{'CN' if kind == 'credit_note' else 'INV'}-{n:04d}",
            "Status": status,
        }
        if reference is not None:
            self.docs[kind][doc_id]["Reference"] = reference
        return doc_id

    def numbers(self, kind: str) -> list[str]:
        return sorted(d[NUMBER_FIELD[kind]] for d in self.docs[kind].values())

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method.startswith("post_")]

    # -- inside ------------------------------------------------------------------------------
    def _next(self) -> Exception | None:
        action = self.script.pop(0) if self.script else None
        if isinstance(action, Exception):
            raise action
        return action.error if isinstance(action, Lost) else None

    def _post(
        self, kind: str, documents: list[dict[str, Any]], key: str, update: bool
    ) -> list[InvoiceResult]:
        method = "post_invoices" if kind == "invoice" else "post_credit_notes"
        self.calls.append(Call(method, copy.deepcopy(documents), key, update))
        lost = self._next()
        if key not in self.replays:
            self.replays[key] = [self._apply(kind, doc, update) for doc in documents]
        if lost is not None:
            raise lost
        return self.replays[key]

    def _apply(self, kind: str, doc: dict[str, Any], update: bool) -> InvoiceResult:
        id_field, number_field = ID_FIELD[kind], NUMBER_FIELD[kind]
        number = doc.get(number_field)
        echo = {k: doc[k] for k in (number_field, "Reference") if k in doc}
        if number in self.refuse:
            return InvoiceResult(
                doc.get(id_field), number, None, errors=self.refuse[number], document=echo
            )
        if doc.get(id_field):
            stored = self.docs[kind][doc[id_field]]
            status = doc.get("Status", stored["Status"])
            if status not in TRANSITIONS.get(stored["Status"], set()):
                words = f"{LABEL[kind]} not of valid status for modification"
                return InvoiceResult(stored[id_field], None, None, errors=[words], document=echo)
            stored.update(doc)
            return self._result(kind, stored)
        taken = number is not None and any(
            d[number_field] == number for d in self.docs[kind].values()
        )
        if taken and not update:
            words = [f"{LABEL[kind]} # must be unique."]
            return InvoiceResult(None, number, None, errors=words, document=echo)
        doc_id = self.add(kind, number, doc.get("Status", "DRAFT"))
        self.docs[kind][doc_id].update({**doc, id_field: doc_id})  # none sent: Xero's stays
        return self._result(kind, self.docs[kind][doc_id])

    @staticmethod
    def _result(kind: str, stored: dict[str, Any]) -> InvoiceResult:
        return InvoiceResult(
            stored[ID_FIELD[kind]],
            stored[NUMBER_FIELD[kind]],
            stored["Status"],
            document=copy.deepcopy(stored),
        )

    def _find(
        self, kind: str, values: list[str], field_name: str | None = None
    ) -> dict[str, dict[str, Any]]:
        by = "reference" if field_name == "Reference" else "number"
        plural = "invoices" if kind == "invoice" else "credit_notes"
        self.calls.append(Call(f"find_{plural}_by_{by}", list(values)))
        self._next()
        key = field_name or NUMBER_FIELD[kind]
        found: dict[str, dict[str, Any]] = {}
        for d in self.docs[kind].values():  # a live document before a withdrawn one
            held = found.get(d.get(key, ""))
            if held is None or held["Status"] in ("DELETED", "VOIDED"):
                found[d.get(key, "")] = d
        return {v: copy.deepcopy(found[v]) for v in values if v in found}

    def _get(self, kind: str, doc_id: str) -> dict[str, Any]:
        self.calls.append(Call(f"get_{kind}", doc_id))
        self._next()
        if doc_id not in self.docs[kind]:
            raise NotFound(f"no {kind} {doc_id}")
        return copy.deepcopy(self.docs[kind][doc_id])


@dataclass
class World:
    xero: FakeXero
    ledger: Ledger
    integration_id: str
    sleeps: list[float]

    def poster(self, slots: TenantSlots | None = None, **settings: Any) -> TenantPoster:
        values = {"sync_batch_size": 2, "sync_max_attempts": 3, "xero_shared_limits": False}
        tenant_id = settings.pop("tenant_id", TENANT)
        return TenantPoster(
            settings=Settings(**{**values, **settings}),
            client=self.xero,  # type: ignore[arg-type]
            ledger=self.ledger,
            integration_id=self.integration_id,
            tenant_id=tenant_id,
            run_id="run-1",
            sleep=self.sleeps.append,
            slots=slots,
        )

    def post(self, sends: list[Send], **settings: Any) -> PostReport:
        return self.poster(**settings).post(sends)

    def fates(self) -> dict[str, LedgerEntry]:
        return self.ledger.snapshot(self.integration_id)

    def key(self, sends: list[Send], operation: str) -> str:
        return idempotency_key(self.integration_id, sends, operation)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'post.db'}"
    migrate(url)
    engine = make_engine(url)
    integration = IntegrationStore(engine).create({"name": "Posted"})
    yield World(FakeXero(), Ledger(engine), integration.id, [])
    engine.dispose()


def send(n: int, kind: str = "invoice", version: int = 1, **fields: Any) -> Send:
    bill_id = f"bill-{n}"
    document = {
        "Type": "ACCREC" if kind == "invoice" else "ACCRECCREDIT",
        "Contact": {"ContactNumber": "acc-1", "Name": "Acme Ltd"},
        "Date": "2024-02-01",
        "CurrencyCode": "GBP",
        NUMBER_FIELD[kind]: bill_id,
        "Status": "DRAFT",
        "LineAmountTypes": "Exclusive",
        "LineItems": [{"Description": "Platform fee", "LineAmount": Decimal("10.01")}],
    }
    return Send(
        bill_id=bill_id,
        bill_version=version,
        account_id="acc-1",
        kind=kind,  # type: ignore[arg-type]
        document=document,
        total=Decimal("10.01"),
        bill_date="2024-02-01",
        **fields,
    )


def numbers(call: Call) -> list[str]:
    return [d.get("InvoiceNumber") or d.get("CreditNoteNumber") for d in call.arg]


def assert_every_bill_has_its_fate(world: World, sends: list[Send], report: PostReport) -> None:
    fates = world.fates()
    assert set(fates) == {s.bill_id for s in sends}
    assert not [b for b, e in fates.items() if e.outcome is Outcome.STARTED]
    assert sum(report.outcomes.values()) == len(sends)
    counted = {o: n for o, n in report.outcomes.items() if n}
    in_ledger: dict[str, int] = {}
    for entry in fates.values():
        in_ledger[entry.outcome.value] = in_ledger.get(entry.outcome.value, 0) + 1
    assert counted == in_ledger
    failed = {e.bill_id for e in fates.values() if e.outcome is not Outcome.COMPLETE}
    assert {f.bill_id for f in report.failures} == failed


# -- batches, keys, retries ------------------------------------------------------------------
def test_documents_go_out_in_batches_one_idempotency_key_per_batch(world: World) -> None:
    sends = [send(n) for n in range(1, 6)]
    report = world.post(sends)

    posts = world.xero.posts()
    assert [numbers(c) for c in posts] == [
        ["bill-1", "bill-2"],
        ["bill-3", "bill-4"],
        ["bill-5"],
    ]
    assert [c.update for c in posts] == [False, False, False]
    batches = [sends[0:2], sends[2:4], sends[4:5]]
    assert [c.key for c in posts] == [world.key(b, "create-invoice") for b in batches]
    assert len({c.key for c in posts}) == 3
    assert (report.calls, report.created, report.updated) == (3, 5, 0)
    assert report.outcomes == {"COMPLETE": 5} and not report.failures and report.stop is None

    fates = world.fates()
    by_number = {d["InvoiceNumber"]: i for i, d in world.xero.docs["invoice"].items()}
    for index, s in enumerate(sends):
        entry = fates[s.bill_id]
        assert entry.outcome is Outcome.COMPLETE
        assert (entry.xero_id, entry.document_type, entry.invoice_number) == (
            by_number[s.bill_id],
            "invoice",
            s.bill_id,
        )
        assert (entry.sent_version, entry.tenant_id, entry.attempts) == (1, TENANT, 1)
        assert entry.idempotency_key == posts[index // 2].key
    assert_every_bill_has_its_fate(world, sends, report)


def test_kinds_and_updates_each_go_in_their_own_batches(world: World) -> None:
    old_id = world.xero.add("invoice", "bill-2")
    sends = [
        send(1),
        send(2, version=2, xero_id=old_id),
        send(3, "credit_note"),
        send(4),
    ]
    report = world.post(sends)

    assert [(c.method, c.update, numbers(c)) for c in world.xero.posts()] == [
        ("post_invoices", False, ["bill-1", "bill-4"]),
        ("post_invoices", True, ["bill-2"]),
        ("post_credit_notes", False, ["bill-3"]),
    ]
    update = world.xero.posts()[1]
    assert update.arg[0]["InvoiceID"] == old_id  # updated in place, not created again
    assert update.key == world.key([sends[1]], "update-invoice")
    assert world.xero.numbers("invoice") == ["bill-1", "bill-2", "bill-4"]
    assert (report.created, report.updated, report.calls) == (3, 1, 3)
    fates = world.fates()
    assert (fates["bill-2"].xero_id, fates["bill-2"].sent_version) == (old_id, 2)
    assert fates["bill-3"].document_type == "credit_note"
    assert_every_bill_has_its_fate(world, sends, report)


def test_a_retry_of_a_batch_carries_the_same_key_so_xero_makes_it_once(world: World) -> None:
    # The first attempt reached Xero, but its answer was lost: the retry replays it.
    world.xero.script = [Lost(TransientError("PUT /Invoices: timed out"))]
    sends = [send(1), send(2)]
    report = world.post(sends)

    first, second = world.xero.posts()
    assert first.key == second.key == world.key(sends, "create-invoice")
    assert first.arg == second.arg
    assert world.xero.numbers("invoice") == ["bill-1", "bill-2"]  # once each
    assert report.calls == 2 and len(world.sleeps) == 1
    assert report.outcomes == {"COMPLETE": 2}
    assert world.fates()["bill-1"].attempts == 1  # one STARTED row per batch, not per attempt
    assert_every_bill_has_its_fate(world, sends, report)


def test_a_minute_rate_limit_waits_its_retry_after_then_retries(world: World) -> None:
    world.xero.script = [RateLimitError("429", retry_after=7, problem="minute")]
    report = world.post([send(1)])
    assert len(world.xero.posts()) == report.calls == 2
    (waited,) = world.sleeps
    assert 7 <= waited <= 7.7
    assert report.outcomes == {"COMPLETE": 1} and report.stop is None


def test_a_batch_failing_every_attempt_is_an_error_and_the_next_batch_goes_on(
    world: World,
) -> None:
    world.xero.script = [TransientError("Xero answered 503")] * 3
    sends = [send(1), send(2)]
    report = world.post(sends, sync_batch_size=1)

    assert [numbers(c) for c in world.xero.posts()] == [["bill-1"]] * 3 + [["bill-2"]]
    assert report.calls == 4 and len(world.sleeps) == 2
    fates = world.fates()
    assert fates["bill-1"].outcome is Outcome.ERROR
    assert fates["bill-1"].reason == "outcome unknown after 3 attempts: Xero answered 503"
    # Its key stays in the ledger: the next run looks it up before posting it again.
    assert fates["bill-1"].idempotency_key == world.key([sends[0]], "create-invoice")
    assert fates["bill-2"].outcome is Outcome.COMPLETE
    assert report.stop is None
    (failure,) = report.failures
    assert (failure.bill_id, failure.outcome) == ("bill-1", "ERROR")
    assert_every_bill_has_its_fate(world, sends, report)


# -- refusals --------------------------------------------------------------------------------
def test_a_document_xero_refuses_is_an_error_in_xeros_words_the_others_complete(
    world: World,
) -> None:
    world.xero.refuse["bill-2"] = ["The currency code is not valid", "Contact is archived"]
    sends = [send(1), send(2)]
    report = world.post(sends)

    assert report.calls == 1  # a refusal is not retried
    fates = world.fates()
    assert fates["bill-1"].outcome is Outcome.COMPLETE
    assert fates["bill-2"].outcome is Outcome.ERROR
    assert fates["bill-2"].reason == "The currency code is not valid; Contact is archived"
    assert fates["bill-2"].xero_id is None and fates["bill-2"].sent_version is None
    (failure,) = report.failures
    assert (failure.bill_id, failure.outcome, failure.document) == ("bill-2", "ERROR", "invoice")
    assert failure.reason == "The currency code is not valid; Contact is archived"
    assert (failure.amount, failure.currency, failure.bill_date) == (
        Decimal("10.01"),
        "GBP",
        "2024-02-01",
    )
    assert report.created == 1
    assert_every_bill_has_its_fate(world, sends, report)


def test_a_batch_xero_refuses_whole_is_an_error_for_each_bill_and_not_retried(
    world: World,
) -> None:
    refusal = ValidationFailed("PUT /Invoices: A validation exception occurred", messages=[])
    world.xero.script = [refusal]
    sends = [send(1), send(2), send(3)]
    report = world.post(sends)

    assert [numbers(c) for c in world.xero.posts()] == [["bill-1", "bill-2"], ["bill-3"]]
    assert report.calls == 2 and world.sleeps == []
    fates = world.fates()
    for bill in ("bill-1", "bill-2"):
        assert fates[bill].outcome is Outcome.ERROR
        assert fates[bill].reason == "PUT /Invoices: A validation exception occurred"
    assert fates["bill-3"].outcome is Outcome.COMPLETE
    assert_every_bill_has_its_fate(world, sends, report)


@pytest.mark.parametrize(
    ("words", "outcome"),
    [
        ("The document date cannot be before the period lock date", "ACCOUNTING_PERIOD_CLOSED"),
        ("Invoice not of valid status for modification", "INVOICE_ALREADY_PAID"),
    ],
)
def test_an_update_xero_will_not_make_says_why(world: World, words: str, outcome: str) -> None:
    old_id = world.xero.add("invoice", "bill-1")
    world.xero.refuse["bill-1"] = [words]
    report = world.post([send(1, version=2, xero_id=old_id)])
    entry = world.fates()["bill-1"]
    assert (entry.outcome.value, entry.reason, entry.xero_id) == (outcome, words, old_id)
    assert [f.outcome for f in report.failures] == [outcome]
    assert report.updated == 0


# -- early stops -----------------------------------------------------------------------------
def test_a_spent_daily_limit_defers_the_rest_to_the_next_run_and_stops(world: World) -> None:
    world.xero.script = [None, RateLimitError("429", retry_after=3600, problem="Day")]
    sends = [send(1), send(2), send(3, "credit_note")]
    report = world.post(sends, sync_batch_size=1)

    assert len(world.xero.posts()) == report.calls == 2  # not retried, not waited for
    assert world.sleeps == []
    assert report.stop is not None and report.stop[0] is Outcome.RATE_LIMIT_RETRY
    assert report.stop[1] == f"Xero's daily limit for Xero tenant {TENANT} is spent"
    fates = world.fates()
    assert fates["bill-1"].outcome is Outcome.COMPLETE
    assert fates["bill-2"].outcome is Outcome.RATE_LIMIT_RETRY
    assert fates["bill-2"].reason == f"Xero's daily limit for Xero tenant {TENANT} is spent"
    assert fates["bill-3"].outcome is Outcome.RATE_LIMIT_RETRY
    assert fates["bill-3"].reason.startswith("deferred to the next run: ")
    assert fates["bill-3"].attempts == 0 and fates["bill-3"].document_type == "credit_note"
    assert report.outcomes == {"COMPLETE": 1, "RATE_LIMIT_RETRY": 2}
    assert_every_bill_has_its_fate(world, sends, report)


def test_a_refused_credential_fails_every_bill_left_and_stops(world: World) -> None:
    world.xero.script = [AuthError("PUT /Invoices: Xero refused the credentials (401)")]
    sends = [send(1), send(2), send(3), send(4, "credit_note")]
    report = world.post(sends)

    assert report.calls == 1 and len(world.xero.calls) == 1  # never retried
    assert report.stop == (Outcome.AUTH_FAILED, "PUT /Invoices: Xero refused the credentials (401)")
    fates = world.fates()
    assert {e.outcome for e in fates.values()} == {Outcome.AUTH_FAILED}
    assert fates["bill-1"].reason == "PUT /Invoices: Xero refused the credentials (401)"
    assert fates["bill-3"].reason == ("not sent: PUT /Invoices: Xero refused the credentials (401)")
    assert len(report.failures) == 4
    assert_every_bill_has_its_fate(world, sends, report)


def test_an_interrupted_call_is_not_retried_and_the_rest_is_interrupted(world: World) -> None:
    waited = WaitExpired("waited 2 s for one of the tenant's 5 call slots")
    world.xero.script = [None, waited]
    sends = [send(1), send(2), send(3)]
    report = world.post(sends, sync_batch_size=1)

    assert len(world.xero.posts()) == report.calls == 2 and world.sleeps == []
    assert report.stop is not None and report.stop[0] is Outcome.INTERRUPTED
    assert report.stop[1] == str(waited)
    fates = world.fates()
    assert fates["bill-1"].outcome is Outcome.COMPLETE
    why = f"not sent, the run was interrupted: {waited}"
    for bill in ("bill-2", "bill-3"):
        assert (fates[bill].outcome, fates[bill].reason) == (Outcome.INTERRUPTED, why)
    # bill-2 was STARTED: its key stays, so the next run looks it up before posting it again.
    assert fates["bill-2"].attempts == 1
    assert fates["bill-2"].idempotency_key == world.key([sends[1]], "create-invoice")
    assert fates["bill-3"].attempts == 0
    assert_every_bill_has_its_fate(world, sends, report)


def test_a_call_slot_never_had_interrupts_the_poster_before_any_call(world: World) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        xero_shared_limits=False, xero_tenant_concurrency=1, xero_limit_wait_seconds=0.05
    )
    semaphore = _local_semaphore(tenant, 1)
    assert semaphore.acquire(timeout=1)  # another poster of this process holds the one slot
    try:
        sends = [send(1), send(2, "credit_note")]
        with TenantSlots(settings, tenant) as slots:
            poster = world.poster(
                slots=slots,
                tenant_id=tenant,
                xero_tenant_concurrency=1,
                xero_limit_wait_seconds=0.05,
            )
            report = poster.post(sends)
    finally:
        semaphore.release()

    assert world.xero.calls == []
    assert report.stop is not None and report.stop[0] is Outcome.INTERRUPTED
    assert "waited 0 s for one of this process's 1 call slots" in report.stop[1]
    assert {e.outcome for e in world.fates().values()} == {Outcome.INTERRUPTED}
    assert_every_bill_has_its_fate(world, sends, report)


# -- unknown attempts and duplicates ---------------------------------------------------------
def test_a_bill_whose_attempt_ended_unknown_is_looked_up_and_not_created_twice(
    world: World,
) -> None:
    made = world.xero.add("invoice", "bill-1")  # the lost attempt did reach Xero
    sends = [  # numbered with their bill ids (BILL_ID): looked up by number
        send(1, lookup_first=True, started_version=1, started_number="bill-1"),
        send(2, lookup_first=True, started_version=1, started_number="bill-2"),  # this one not
    ]
    report = world.post(sends)

    assert world.xero.methods() == ["find_invoices_by_number", "post_invoices"]
    assert world.xero.calls[0].arg == ["bill-1", "bill-2"]
    assert numbers(world.xero.posts()[0]) == ["bill-2"]
    assert world.xero.numbers("invoice") == ["bill-1", "bill-2"]  # each once
    fates = world.fates()
    assert (fates["bill-1"].outcome, fates["bill-1"].xero_id) == (Outcome.COMPLETE, made)
    assert fates["bill-2"].outcome is Outcome.COMPLETE
    assert report.calls == 2 and report.outcomes == {"COMPLETE": 2}
    assert_every_bill_has_its_fate(world, sends, report)


def test_an_unknown_attempt_of_an_older_version_is_found_and_updated(world: World) -> None:
    made = world.xero.add("credit_note", "bill-1")
    sends = [
        send(1, "credit_note", version=2, lookup_first=True, started_version=1,
             started_number="bill-1")
    ]  # fmt: skip
    report = world.post(sends)

    assert world.xero.methods() == ["find_credit_notes_by_number", "post_credit_notes"]
    (update,) = world.xero.posts()
    assert update.update is True and update.arg[0]["CreditNoteID"] == made
    assert world.xero.numbers("credit_note") == ["bill-1"]
    entry = world.fates()["bill-1"]
    assert (entry.outcome, entry.xero_id, entry.sent_version) == (Outcome.COMPLETE, made, 2)
    assert report.updated == 1 and report.created == 0


def test_a_create_refused_as_a_duplicate_number_updates_the_document_found(world: World) -> None:
    made = world.xero.add("invoice", "bill-1")  # the ledger lost track of it
    sends = [send(1), send(2)]
    report = world.post(sends)

    assert world.xero.methods() == ["post_invoices", "find_invoices_by_number", "post_invoices"]
    create, lookup, update = world.xero.calls
    assert lookup.arg == ["bill-1"]
    assert (update.update, numbers(update), update.arg[0]["InvoiceID"]) == (True, ["bill-1"], made)
    assert update.key == world.key([sends[0]], "update-invoice") != create.key
    assert world.xero.numbers("invoice") == ["bill-1", "bill-2"]
    assert world.fates()["bill-1"].xero_id == made
    assert (report.created, report.updated, report.calls) == (1, 1, 3)
    assert_every_bill_has_its_fate(world, sends, report)


# -- numbering: m3ter's number, Xero's sequence -----------------------------------------------
def numbered(n: int, number: str | None, kind: str = "invoice", **fields: Any) -> Send:
    """``send(n)`` as m3ter's numbering (``number``) or Xero's sequence (None) make it: the bill
    id in Reference."""
    made = send(n, kind, **fields)
    document = {k: v for k, v in made.document.items() if k != NUMBER_FIELD[kind]}
    if number is not None:
        document[NUMBER_FIELD[kind]] = number
    return replace(made, document={**document, "Reference": made.bill_id})


def test_xeros_numbers_are_matched_by_reference_whatever_the_order_of_the_answer(
    world: World,
) -> None:
    """Xero does not promise to answer in the order sent: each answer is the bill's whose id
    it carries in Reference, and the ledger keeps the number Xero gave."""
    post_invoices = world.xero.post_invoices

    def reversed_answer(*args: Any, **kwargs: Any) -> list[InvoiceResult]:
        return list(reversed(post_invoices(*args, **kwargs)))

    world.xero.post_invoices = reversed_answer  # type: ignore[method-assign]
    sends = [numbered(1, None), numbered(2, None)]
    report = world.post(sends)

    (create,) = world.xero.posts()
    assert [d.get("InvoiceNumber") for d in create.arg] == [None, None]  # none sent
    fates = world.fates()
    docs = world.xero.docs["invoice"]
    for s in sends:
        (doc_id,) = [i for i, d in docs.items() if d["Reference"] == s.bill_id]
        doc = docs[doc_id]
        assert (fates[s.bill_id].xero_id, fates[s.bill_id].invoice_number) == (
            doc_id,
            doc["InvoiceNumber"],
        )
        assert doc["InvoiceNumber"].startswith("INV-")
    assert report.outcomes == {"COMPLETE": 2}
    assert_every_bill_has_its_fate(world, sends, report)


@pytest.mark.parametrize("number", [None, "INV-000061"], ids=["xero sequence", "m3ter number"])
def test_an_unknown_attempt_is_found_by_the_bill_id_in_its_reference(
    world: World, number: str | None
) -> None:
    made = world.xero.add("invoice", number, reference="bill-1")  # the lost attempt made it
    sends = [
        numbered(1, number, lookup_first=True, started_version=1, started_number=number),
        numbered(2, "INV-000062" if number else None, lookup_first=True, started_version=1,
                 started_number="INV-000062" if number else None),  # this one did not
    ]  # fmt: skip
    report = world.post(sends)

    assert world.xero.methods() == ["find_invoices_by_reference", "post_invoices"]
    assert world.xero.calls[0].arg == ["bill-1", "bill-2"]
    assert [d["Reference"] for d in world.xero.posts()[0].arg] == ["bill-2"]
    assert len(world.xero.docs["invoice"]) == 2  # each once
    entry = world.fates()["bill-1"]
    assert (entry.outcome, entry.xero_id) == (Outcome.COMPLETE, made)
    assert entry.invoice_number == world.xero.docs["invoice"][made]["InvoiceNumber"]
    assert report.calls == 2 and report.outcomes == {"COMPLETE": 2}
    assert_every_bill_has_its_fate(world, sends, report)


def test_an_attempt_made_before_the_upgrade_is_found_by_its_old_number(world: World) -> None:
    """An attempt under the old numbering (the bill id) ended unknown; the bill now maps to
    m3ter's number: its document is found by the number that attempt sent, and updated in
    place (the new version renames it)."""
    made = world.xero.add("invoice", "bill-1", reference="INV-000061")
    sends = [
        numbered(1, "INV-000061", version=2, lookup_first=True, started_version=1,
                 started_number="bill-1")
    ]  # fmt: skip
    report = world.post(sends)
    assert world.xero.methods() == ["find_invoices_by_number", "post_invoices"]
    assert world.xero.calls[0].arg == ["bill-1"]
    (update,) = world.xero.posts()
    assert (update.update, update.arg[0]["InvoiceID"]) == (True, made)
    assert world.xero.docs["invoice"][made]["InvoiceNumber"] == "INV-000061"
    assert len(world.xero.docs["invoice"]) == 1
    entry = world.fates()["bill-1"]
    assert (entry.xero_id, entry.invoice_number, entry.sent_version) == (made, "INV-000061", 2)
    assert report.updated == 1


def test_a_withdrawn_document_with_the_bills_reference_is_not_its_document(world: World) -> None:
    world.xero.add("invoice", None, status="DELETED", reference="bill-1")  # before a sign change
    sends = [numbered(1, None, lookup_first=True, started_version=1)]
    report = world.post(sends)
    assert world.xero.methods() == ["find_invoices_by_reference", "post_invoices"]
    live = [d for d in world.xero.docs["invoice"].values() if d["Status"] != "DELETED"]
    assert [d["Reference"] for d in live] == ["bill-1"]
    assert world.fates()["bill-1"].xero_id == live[0]["InvoiceID"]
    assert report.created == 1


def test_a_number_held_by_someone_elses_document_is_never_overwritten(world: World) -> None:
    """m3ter's number is taken in Xero by an invoice this integration did not make (keyed in by
    hand): the bill fails saying so, and that invoice is left alone. The bill's own document
    with its number (its Reference is the bill id) is updated in place."""
    theirs = world.xero.add("invoice", "INV-000061", reference="PO 7")
    ours = world.xero.add("invoice", "INV-000062", reference="bill-2")  # the ledger lost it
    sends = [numbered(1, "INV-000061"), numbered(2, "INV-000062")]
    report = world.post(sends)

    assert world.xero.methods() == ["post_invoices", "find_invoices_by_number", "post_invoices"]
    create, lookup, update = world.xero.calls
    assert lookup.arg == ["INV-000061", "INV-000062"]
    assert [d["InvoiceID"] for d in update.arg] == [ours]
    assert world.xero.docs["invoice"][theirs] == {
        "InvoiceID": theirs, "InvoiceNumber": "INV-000061", "Status": "DRAFT", "Reference": "PO 7"
    }  # fmt: skip
    fates = world.fates()
    assert (fates["bill-2"].outcome, fates["bill-2"].xero_id) == (Outcome.COMPLETE, ours)
    assert fates["bill-1"].outcome is Outcome.ERROR and fates["bill-1"].xero_id is None
    assert fates["bill-1"].reason == (
        "Xero already has invoice INV-000061, not this bill's (neither its number nor its "
        "Reference is the bill id bill-1); rename that invoice in Xero, or choose another "
        "invoice numbering for the integration"
    )
    assert [f.bill_id for f in report.failures] == ["bill-1"] and report.updated == 1
    assert_every_bill_has_its_fate(world, sends, report)


def test_an_answer_that_names_no_bill_of_the_batch_is_not_taken_for_one(world: World) -> None:
    """An element that carries neither a bill id nor a number sent is not matched by its place:
    the bill is an error the next run looks up (and finds), not a wrong id in the ledger."""
    post_invoices = world.xero.post_invoices

    def anonymous(*args: Any, **kwargs: Any) -> list[InvoiceResult]:
        return [InvoiceResult(r.invoice_id, None, r.status) for r in post_invoices(*args, **kwargs)]

    world.xero.post_invoices = anonymous  # type: ignore[method-assign]
    sends = [numbered(1, None), numbered(2, None)]
    report = world.post(sends)
    assert {e.outcome for e in world.fates().values()} == {Outcome.ERROR}
    assert {e.reason for e in world.fates().values()} == {"Xero's answer omitted this bill"}
    assert all(e.attempts == 1 and e.xero_id is None for e in world.fates().values())
    assert report.outcomes == {"ERROR": 2}


# -- sign changes ----------------------------------------------------------------------------
def _complete(world: World, bill: str, kind: str, xero_id: str) -> None:
    """The ledger's row of a bill whose earlier version made ``xero_id``."""
    world.ledger.record(
        world.integration_id,
        [Fate(bill, 1, Outcome.COMPLETE, document_type=kind, xero_id=xero_id, invoice_number=bill)],
    )


def test_a_bill_whose_sign_changed_has_its_old_document_deleted_before_the_new_one(
    world: World,
) -> None:
    old = world.xero.add("invoice", "bill-1")
    _complete(world, "bill-1", "invoice", old)
    sends = [send(1, "credit_note", version=2, withdraw_id=old)]
    report = world.post(sends)

    assert world.xero.methods() == ["post_invoices", "post_credit_notes"]
    withdraw, create = world.xero.calls
    assert withdraw.arg == [{"InvoiceID": old, "Status": "DELETED"}]
    assert (withdraw.update, withdraw.key) == (True, world.key(sends, "deleted-invoice"))
    assert (create.update, numbers(create)) == (False, ["bill-1"])
    assert "InvoiceID" not in create.arg[0] and "CreditNoteID" not in create.arg[0]
    assert world.xero.docs["invoice"][old]["Status"] == "DELETED"
    entry = world.fates()["bill-1"]
    (note,) = world.xero.docs["credit_note"]
    assert (entry.outcome, entry.document_type, entry.xero_id) == (
        Outcome.COMPLETE,
        "credit_note",
        note,
    )
    assert (report.created, report.calls) == (1, 2)


def test_an_authorised_old_document_is_voided_when_xero_will_not_delete_it(world: World) -> None:
    old = world.xero.add("credit_note", "bill-1", status="AUTHORISED")
    _complete(world, "bill-1", "credit_note", old)
    sends = [send(1, version=2, withdraw_id=old)]
    report = world.post(sends)

    assert world.xero.methods() == ["post_credit_notes", "post_credit_notes", "post_invoices"]
    delete, void, _ = world.xero.calls
    assert [delete.arg[0]["Status"], void.arg[0]["Status"]] == ["DELETED", "VOIDED"]
    assert void.key == world.key(sends, "voided-credit_note") != delete.key
    assert world.xero.docs["credit_note"][old]["Status"] == "VOIDED"
    entry = world.fates()["bill-1"]
    assert (entry.outcome, entry.document_type) == (Outcome.COMPLETE, "invoice")
    assert entry.xero_id != old
    assert report.outcomes == {"COMPLETE": 1}


def test_a_paid_old_document_stops_the_bill_and_the_ledger_keeps_pointing_at_it(
    world: World,
) -> None:
    old = world.xero.add("invoice", "bill-1", status="PAID")
    _complete(world, "bill-1", "invoice", old)
    sends = [send(1, "credit_note", version=2, withdraw_id=old), send(2)]
    report = world.post(sends)

    assert world.xero.methods() == [
        "post_invoices",  # DELETED: refused
        "post_invoices",  # VOIDED: refused
        "get_invoice",  # still there, PAID
        "post_invoices",  # bill-2, an ordinary create
    ]
    assert world.xero.docs["credit_note"] == {}  # never both documents for one bill
    entry = world.fates()["bill-1"]
    assert entry.outcome is Outcome.INVOICE_ALREADY_PAID
    assert (entry.document_type, entry.xero_id, entry.sent_version) == ("invoice", old, 1)
    assert entry.reason == (
        f"its invoice {old} (PAID) could not be withdrawn: "
        "Invoice not of valid status for modification"
    )
    assert [f.bill_id for f in report.failures] == ["bill-1"]
    assert world.fates()["bill-2"].outcome is Outcome.COMPLETE
    assert_every_bill_has_its_fate(world, sends, report)


def test_an_old_document_an_earlier_run_withdrew_is_not_in_the_way(world: World) -> None:
    old = world.xero.add("invoice", "bill-1", status="DELETED")
    sends = [send(1, "credit_note", version=2, withdraw_id=old)]
    report = world.post(sends)

    assert world.xero.methods() == [
        "post_invoices",
        "post_invoices",
        "get_invoice",
        "post_credit_notes",
    ]
    assert world.fates()["bill-1"].document_type == "credit_note"
    assert report.outcomes == {"COMPLETE": 1} and not report.failures


def test_a_day_limit_met_while_withdrawing_keeps_the_old_document_and_stops(
    world: World,
) -> None:
    old = world.xero.add("invoice", "bill-1")
    _complete(world, "bill-1", "invoice", old)
    world.xero.script = [RateLimitError("429", problem="day")]
    sends = [send(1, "credit_note", version=2, withdraw_id=old), send(2)]
    report = world.post(sends)

    assert world.xero.methods() == ["post_invoices"]
    assert report.stop is not None and report.stop[0] is Outcome.RATE_LIMIT_RETRY
    fates = world.fates()
    assert fates["bill-1"].outcome is Outcome.RATE_LIMIT_RETRY
    assert (fates["bill-1"].document_type, fates["bill-1"].xero_id) == ("invoice", old)
    assert fates["bill-2"].outcome is Outcome.RATE_LIMIT_RETRY
    assert world.xero.docs["invoice"][old]["Status"] == "DRAFT"
    assert_every_bill_has_its_fate(world, sends, report)


def test_without_slots_given_each_call_takes_one_of_this_process_s_slots(world: World) -> None:
    """With shared limits off and no slots given, each call still takes one of the process's
    slots for the tenant: a call made while the only slot is held waits for it."""
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    semaphore = _local_semaphore(tenant, 1)
    assert semaphore.acquire(timeout=1)
    given_back = threading.Event()

    def give_back() -> None:
        given_back.set()
        semaphore.release()

    calls_at: list[bool] = []
    post_invoices = world.xero.post_invoices

    def watched(*args: Any, **kwargs: Any) -> list[InvoiceResult]:
        calls_at.append(given_back.is_set())
        return post_invoices(*args, **kwargs)

    world.xero.post_invoices = watched  # type: ignore[method-assign]
    timer = threading.Timer(0.1, give_back)
    timer.start()
    try:
        report = world.post(
            [send(1)], tenant_id=tenant, xero_tenant_concurrency=1, xero_limit_wait_seconds=5
        )
    finally:
        timer.join()
    assert calls_at == [True]  # not before the slot was given back
    assert report.outcomes == {"COMPLETE": 1}


def test_an_error_while_withdrawing_stops_only_the_bills_whose_old_document_is_still_there(
    world: World,
) -> None:
    """Bill 1's old invoice is deleted; bill 2's is paid, and looking it up fails every time:
    bill 2 stops with the error, bill 1 goes on to its credit note (its old invoice is gone)."""
    gone = world.xero.add("invoice", "bill-1")
    paid = world.xero.add("invoice", "bill-2", status="PAID")
    _complete(world, "bill-1", "invoice", gone)
    _complete(world, "bill-2", "invoice", paid)
    sends = [
        send(1, "credit_note", version=2, withdraw_id=gone),
        send(2, "credit_note", version=2, withdraw_id=paid),
    ]
    unavailable = TransientError("503 Service Unavailable")
    world.xero.script = [None, None, *[unavailable] * 3]  # delete, void, then the lookup fails
    report = world.post(sends)

    assert world.xero.docs["invoice"][gone]["Status"] == "DELETED"
    first, second = world.fates()["bill-1"], world.fates()["bill-2"]
    assert (first.outcome, first.document_type) == (Outcome.COMPLETE, "credit_note")
    assert second.outcome is Outcome.ERROR and second.xero_id == paid
    assert "could not be withdrawn: 503 Service Unavailable" in (second.reason or "")
    assert [f.bill_id for f in report.failures] == ["bill-2"]
    assert_every_bill_has_its_fate(world, sends, report)
