"""Make sure each account's Xero contact exists, with its details, before its first document.

Under the default identity a document names its contact by ContactNumber (the m3ter account
id). Xero would create a missing contact from the document alone, with a name and nothing
else, and never update it. So before a post the poster upserts the contacts of its bills (one
``POST /Contacts`` per batch of up to ``MAX_BATCH``, under an Idempotency-Key) and sends the
documents with the ContactID Xero answered. The project database remembers each contact's id,
status and a fingerprint of the details sent (``store.contacts``): an unchanged account costs
no call on the next run. A contact Xero holds ARCHIVED stops its bills (``CONTACT_ARCHIVED``)
before any document call; it is asked about again next run, as a person may have restored it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from config.errors import AuthError, Interrupted, PermanentError, TransientError
from store.contacts import ContactCache, KnownContact
from store.ledger import Fate, Outcome
from tasks.process import PROCESS
from tasks.sync.calls import DailyLimitReached
from tasks.sync.plan import Send
from tasks.sync.run import PostRun
from tasks.xero.contacts import contact_fingerprint
from tasks.xero.invoices import MAX_BATCH, element_errors

__all__ = ["ensure_contacts"]

ARCHIVED = "ARCHIVED"


def ensure_contacts(run: PostRun, sends: list[Send]) -> list[Send]:
    """Upsert the contacts of ``sends`` that changed or are new; returns the bills to send on,
    each naming its contact by ContactID. Bills whose contact is archived, or that Xero refused,
    end here with their fate."""
    wanted = {s.contact["ContactNumber"]: s.contact for s in sends if s.contact}
    if not wanted:
        return sends
    # Posting tasks side by side often share accounts: a contact another task of this process
    # is upserting is waited for (and then found remembered), not upserted twice; the others go
    # at once, side by side. Other processes may still upsert a contact twice: harmless, the
    # upsert is idempotent, only a call lost.
    claims = PROCESS.get_or_make(PROCESS.contact_locks, run.tenant_id, Claims)
    mine, theirs = claims.claim(wanted)
    try:
        deadline = time.monotonic() + run.settings.xero_limit_wait_seconds
        for done in theirs:
            done.wait(max(0.0, deadline - time.monotonic()))
        return _ensure(run, sends, wanted)
    finally:
        claims.release(mine)


class Claims:
    """The contacts of one tenant being upserted in this process, each by one posting task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}

    def claim(self, numbers: Iterable[str]) -> tuple[list[str], list[threading.Event]]:
        """Claim the numbers no task is upserting; returns them, and what to wait for of the
        rest. A task waits only for claims made before its own: no cycle, no deadlock."""
        mine: list[str] = []
        theirs: list[threading.Event] = []
        with self._lock:
            for number in numbers:
                pending = self._pending.get(number)
                if pending is None:
                    self._pending[number] = threading.Event()
                    mine.append(number)
                else:
                    theirs.append(pending)
        return mine, theirs

    def release(self, numbers: Iterable[str]) -> None:
        """The task is done with ``numbers`` (upserted, refused or not reached)."""
        with self._lock:
            for number in numbers:
                done = self._pending.pop(number, None)
                if done is not None:
                    done.set()


def _ensure(run: PostRun, sends: list[Send], wanted: dict[str, dict[str, Any]]) -> list[Send]:
    cache = ContactCache(run.ledger.engine)
    known = cache.get(run.tenant_id, wanted)
    todo = [
        contact
        for number, contact in wanted.items()
        if number not in known
        or known[number].status == ARCHIVED
        or known[number].fingerprint != contact_fingerprint(contact)
    ]
    refused: dict[str, str] = {}
    for start in range(0, len(todo), MAX_BATCH):
        chunk = todo[start : start + MAX_BATCH]
        learned, problems = _upsert(run, chunk, sends)
        refused.update(problems)
        if learned:
            cache.put(run.tenant_id, learned)
            known.update({c.contact_number: c for c in learned})
    if todo:
        run.log.info("made sure of %d Xero contact(s)", len(todo) - len(refused))
    return _settle(run, sends, known, refused)


def _upsert(
    run: PostRun, chunk: list[dict[str, Any]], sends: list[Send]
) -> tuple[list[KnownContact], dict[str, str]]:
    """One call for ``chunk``; the contacts Xero took, and Xero's words for those it refused."""
    # A key of this call only (its retries share it): a later upsert of the same details must
    # reach Xero, not replay an old answer (an ARCHIVED one, say, from before a restore).
    key = f"{run.integration_id}:contacts:{uuid.uuid4().hex}"
    try:
        answer = run.call(
            lambda: run.client.post_contacts(chunk, idempotency_key=key),
            f"upsert {len(chunk)} contact(s)",
        )
    except (AuthError, DailyLimitReached, Interrupted):
        raise  # the poster stops: every bill of the post gets its fate there
    except TransientError as exc:  # retries spent: whether Xero took them is unknown
        attempts = run.settings.sync_max_attempts
        why = f"contact upsert: outcome unknown after {attempts} attempts: {exc}"
        return [], {c["ContactNumber"]: why for c in chunk}
    except PermanentError as exc:  # the call refused outright
        return [], {c["ContactNumber"]: f"Xero refused the contact: {exc}" for c in chunk}
    learned: list[KnownContact] = []
    problems: dict[str, str] = {}
    for contact, element in zip(chunk, answer, strict=False):
        number = contact["ContactNumber"]
        errors = element_errors(element)
        if errors or not element.get("ContactID"):
            problems[number] = "Xero refused the contact: " + ("; ".join(errors) or "no id")
            continue
        learned.append(
            KnownContact(
                number,
                str(element["ContactID"]),
                str(element.get("ContactStatus") or "ACTIVE"),
                contact_fingerprint(contact),
            )
        )
    for contact in chunk[len(answer) :]:
        problems[contact["ContactNumber"]] = "Xero's answer omitted this contact"
    return learned, problems


def _settle(
    run: PostRun, sends: list[Send], known: dict[str, KnownContact], refused: dict[str, str]
) -> list[Send]:
    out: list[Send] = []
    stopped: list[Fate] = []
    for send in sends:
        if not send.contact:
            out.append(send)
            continue
        number = send.contact["ContactNumber"]
        contact = known.get(number)
        if number in refused or contact is None:
            reason = refused.get(number, "Xero's answer omitted this contact")
            stopped.append(run.fate(send, Outcome.ERROR, reason=reason))
        elif contact.status == ARCHIVED:
            reason = (
                f"the Xero contact {send.contact.get('Name', number)} ({number}) is archived: "
                "restore it in Xero, then rerun"
            )
            stopped.append(run.fate(send, Outcome.CONTACT_ARCHIVED, reason=reason))
        else:
            document = {**send.document, "Contact": {"ContactID": contact.contact_id}}
            out.append(replace(send, document=document, contact=None))
    if stopped:
        run.settle(stopped, update=False)
        run.log.error("%d bill(s) not sent: their Xero contact is archived or refused",
                      len(stopped))  # fmt: skip
    return out
