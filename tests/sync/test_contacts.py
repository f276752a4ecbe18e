"""Each account's Xero contact is upserted before its documents, once per change: the poster on
its own, with the fake Xero of ``test_post`` taught ``post_contacts``, and a real ledger."""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from config.errors import ValidationFailed
from store.db import make_engine, migrate
from store.integrations import IntegrationStore
from store.ledger import Ledger, Outcome
from tasks.m3ter.models import Account
from tasks.xero.contacts import contact_details
from tests.sync.test_post import Call, FakeXero, World, send


@dataclass
class ContactXero(FakeXero):
    """Also holds contacts: by number; ``archived`` numbers answer ContactStatus ARCHIVED."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    archived: set[str] = field(default_factory=set)
    refuse_contacts: dict[str, str] = field(default_factory=dict)
    contact_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def post_contacts(
        self, contacts: list[dict[str, Any]], *, idempotency_key: str
    ) -> list[dict[str, Any]]:
        self.calls.append(Call("post_contacts", copy.deepcopy(contacts), idempotency_key))
        self._next()
        out = []
        for contact in contacts:
            number = contact["ContactNumber"]
            if number in self.refuse_contacts:
                errors = [{"Message": self.refuse_contacts[number]}]
                # Contacts flag a refusal as the spec's examples do: HasValidationErrors; a known
                # contact's refused update still carries its ContactID.
                known = {k: v for k, v in self.contacts.get(number, {}).items() if k == "ContactID"}
                out.append(
                    {**contact, **known, "HasValidationErrors": True, "ValidationErrors": errors}
                )
                continue
            stored = self.contacts.setdefault(
                number, {"ContactID": f"contact-{next(self.contact_ids)}"}
            )
            stored.update(contact)
            status = "ARCHIVED" if number in self.archived else "ACTIVE"
            out.append({**stored, "ContactStatus": status})
        return out


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'contacts.db'}"
    migrate(url)
    engine = make_engine(url)
    integration = IntegrationStore(engine).create({"name": "Contacted"})
    yield World(ContactXero(), Ledger(engine), integration.id, [])
    engine.dispose()


def account(n: int, **fields: Any) -> Account:
    return Account.model_validate(
        {
            "id": f"acc-{n}",
            "name": f"Customer {n} Ltd",
            "emailAddress": f"billing@customer{n}.example",
            "address": {"addressLine1": "1 High Street", "locality": "London",
                        "postCode": "EC1A 1BB", "country": "GB"},
            **fields,
        }
    )  # fmt: skip


def billed(n: int, acc: Account, **fields: Any) -> Any:
    s = send(n, **fields)
    document = {**s.document, "Contact": {"ContactNumber": acc.id, "Name": acc.name}}
    return type(s)(**{**s.__dict__, "account_id": acc.id, "document": document,
                      "contact": contact_details(acc)})  # fmt: skip


def test_the_contact_goes_first_with_its_details_then_documents_name_it_by_id(
    world: World,
) -> None:
    acc = account(1)
    sends = [billed(1, acc), billed(2, acc), billed(3, account(2))]
    report = world.post(sends)
    assert world.xero.methods()[0] == "post_contacts"
    (upsert,) = [c for c in world.xero.calls if c.method == "post_contacts"]
    assert [c["ContactNumber"] for c in upsert.arg] == ["acc-1", "acc-2"]  # one per account
    assert upsert.arg[0] == {
        "ContactNumber": "acc-1",
        "Name": "Customer 1 Ltd",
        "EmailAddress": "billing@customer1.example",
        "Addresses": [{"AddressType": "STREET", "AddressLine1": "1 High Street",
                       "City": "London", "PostalCode": "EC1A 1BB", "Country": "GB"}],
    }  # fmt: skip
    contact_ids = {d["InvoiceNumber"]: d["Contact"] for d in world.xero.docs["invoice"].values()}
    assert contact_ids == {
        "bill-1": {"ContactID": "contact-1"},
        "bill-2": {"ContactID": "contact-1"},
        "bill-3": {"ContactID": "contact-2"},
    }
    assert report.created == 3 and report.calls == 1 + 2  # the contacts, then two batches


def test_an_unchanged_account_costs_no_call_next_time_and_a_change_is_sent(world: World) -> None:
    acc = account(1)
    world.post([billed(1, acc)])
    world.xero.calls.clear()
    world.post([billed(2, acc)])
    assert "post_contacts" not in world.xero.methods()
    renamed = account(1, name="Customer One plc", emailAddress="ap@one.example")
    world.post([billed(3, renamed)])
    (upsert,) = [c for c in world.xero.calls if c.method == "post_contacts"]
    assert upsert.arg[0]["Name"] == "Customer One plc"
    assert world.xero.contacts["acc-1"]["EmailAddress"] == "ap@one.example"
    assert world.xero.contacts["acc-1"]["ContactID"] == "contact-1"  # the same contact, updated


def test_an_archived_contact_stops_its_bills_before_any_document_call(world: World) -> None:
    world.xero.archived.add("acc-2")
    sends = [billed(1, account(1)), billed(2, account(2)), billed(3, account(2))]
    report = world.post(sends)
    fates = world.fates()
    assert fates["bill-1"].outcome is Outcome.COMPLETE
    for bill in ("bill-2", "bill-3"):
        assert fates[bill].outcome is Outcome.CONTACT_ARCHIVED
        assert "is archived" in (fates[bill].reason or "")
    assert world.xero.numbers("invoice") == ["bill-1"]
    assert {f.bill_id for f in report.failures} == {"bill-2", "bill-3"}
    # Restored in Xero: the next run asks again (an archived contact is never trusted cached).
    world.xero.archived.clear()
    world.xero.calls.clear()
    world.post([billed(2, account(2))])
    assert world.xero.methods()[0] == "post_contacts"
    assert world.fates()["bill-2"].outcome is Outcome.COMPLETE


def test_a_refused_contact_fails_only_its_own_bills(world: World) -> None:
    world.xero.refuse_contacts["acc-2"] = "Email address must be valid."
    report = world.post([billed(1, account(1)), billed(2, account(2))])
    fates = world.fates()
    assert fates["bill-1"].outcome is Outcome.COMPLETE
    assert fates["bill-2"].outcome is Outcome.ERROR
    assert "Email address must be valid." in (fates["bill-2"].reason or "")
    assert report.created == 1


def test_a_refused_update_of_a_known_contact_is_not_taken_for_done(world: World) -> None:
    world.post([billed(1, account(1))])
    world.xero.refuse_contacts["acc-1"] = "Email address must be valid."
    world.post([billed(2, account(1, emailAddress="not-an-address"))])
    entry = world.fates()["bill-2"]
    assert entry.outcome is Outcome.ERROR and "Email address must be valid." in (entry.reason or "")
    # Not remembered as sent: the same details go to Xero again next time (and are taken now).
    world.xero.calls.clear()
    world.xero.refuse_contacts.clear()
    world.post([billed(2, account(1, emailAddress="not-an-address"), version=2)])
    assert world.xero.methods()[0] == "post_contacts"
    assert world.fates()["bill-2"].outcome is Outcome.COMPLETE


def test_a_call_refused_outright_fails_the_bills_of_that_batch(world: World) -> None:
    world.xero.script = [ValidationFailed("Xero refused Contacts", messages=["bad"])]
    world.post([billed(1, account(1))])
    assert world.fates()["bill-1"].outcome is Outcome.ERROR
    assert world.xero.numbers("invoice") == []


@dataclass
class GatedXero(ContactXero):
    """Contact upserts that hold until the test lets them go: ``gates`` by the first number of
    the call; ``in_flight`` is set once such a call has started."""

    gates: dict[str, Any] = field(default_factory=dict)
    in_flight: dict[str, Any] = field(default_factory=dict)

    def post_contacts(
        self, contacts: list[dict[str, Any]], *, idempotency_key: str
    ) -> list[dict[str, Any]]:
        first = contacts[0]["ContactNumber"]
        if first in self.gates:
            self.in_flight[first].set()
            assert self.gates[first].wait(10), f"the upsert of {first} was never let go"
        return super().post_contacts(contacts, idempotency_key=idempotency_key)


def test_posters_side_by_side_upsert_other_contacts_at_once_and_a_shared_one_once(
    world: World,
) -> None:
    xero = world.xero = GatedXero()
    tenant = f"tenant-{uuid.uuid4()}"
    for number in ("acc-1", "acc-3"):
        xero.gates[number] = threading.Event()
        xero.in_flight[number] = threading.Event()
    reports: dict[str, Any] = {}

    def post(name: str, sends: list[Any]) -> None:
        reports[name] = world.poster(tenant_id=tenant).post(sends)

    a = threading.Thread(target=post, args=("a", [billed(1, account(1)), billed(2, account(2))]))
    b = threading.Thread(target=post, args=("b", [billed(3, account(3))]))
    a.start()
    b.start()
    # Neither waited for the other: both upserts are in flight together (each holds).
    assert xero.in_flight["acc-1"].wait(10) and xero.in_flight["acc-3"].wait(10)
    # A third poster needs acc-1, whose upsert is in flight: it waits for it, then names it.
    c = threading.Thread(target=post, args=("c", [billed(4, account(1))]))
    c.start()
    c.join(0.5)
    assert c.is_alive(), "the third poster did not wait for the contact in flight"
    for gate in xero.gates.values():
        gate.set()
    for thread in (a, b, c):
        thread.join(10)
    upserted = [c["ContactNumber"] for call in xero.calls if call.method == "post_contacts"
                for c in call.arg]  # fmt: skip
    assert sorted(upserted) == ["acc-1", "acc-2", "acc-3"]  # acc-1 once, not twice
    assert [reports[n].created for n in "abc"] == [2, 1, 1]
