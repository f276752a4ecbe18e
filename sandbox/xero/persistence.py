"""The Xero sandbox's state in a file (``sandbox.persist``): what a restart must keep.

Kept: the apps, consents (grants, codes, access and refresh tokens, connections) and their
counters, the sandbox clock's offset and the token-signing key; every tenant's books
(organisation and its lock dates, accounts, tax rates, items, tracking, contacts); the
documents and their indexes; payments; the ``Idempotency-Key`` answers given. Not kept, like a
restarted server: rate-limit windows, injected faults, call counters, requests in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from sandbox.persist import Snapshots, encode
from sandbox.persist import persist_app as keep_state
from sandbox.xero.documents import KINDS
from sandbox.xero.idempotency import _Entry
from sandbox.xero.state import XeroSandbox

NAME = "xero"
SAVE_INTERVAL_SECONDS = 1.0
#: Documents and payments name their kind; code compares kinds with ``is``.
CONSTANTS: dict[str, object] = {f"DocKind:{name}": kind for name, kind in KINDS.items()}
#: The identity state's data (``XeroSandbox._clear`` makes these, ``__post_init__`` apps).
IDENTITY = ("apps", "_codes", "_grants", "_access", "_refresh", "_connections", "counters")
#: What an ``InvoiceStore`` holds that is not data: its clock, lock and contact caches.
STORE_RUNTIME = {"_now", "lock", "_contacts"}


def config(sandbox: XeroSandbox) -> dict[str, Any]:
    """What a state file must have been saved under: the app and organisations it knows."""
    return {"client_id": sandbox.client_id, "orgs": sorted(sandbox.orgs)}


def capture(sandbox: XeroSandbox) -> dict[str, Any]:
    """Everything a restart keeps, encoded (a copy), each part under its own locks."""
    with sandbox._lock:
        identity = {name: encode(getattr(sandbox, name)) for name in IDENTITY}
        identity["signing_key"] = sandbox._signing_key.hex()
        identity["clock_offset"] = sandbox.clock._offset
    api, books = sandbox.accounting, sandbox.books
    with api.store.lock, books.lock, api.payments._lock:
        store = {k: v for k, v in vars(api.store).items() if k not in STORE_RUNTIME}
        accounting = {
            "books": encode(books._books, CONSTANTS),
            "store": encode(store, CONSTANTS),
            "payments": encode(api.payments._payments, CONSTANTS),
        }
    with api.idempotency._lock:
        answered = {s: (e.fingerprint, e.answer) for s, e in api.idempotency._entries.items()
                    if e.answer is not None}  # fmt: skip
        accounting["idempotency"] = encode(answered)
    return {"identity": identity, "accounting": accounting}


def restore(sandbox: XeroSandbox, state: dict[str, Any]) -> None:
    """Put a decoded ``capture`` back into a sandbox just created (before it serves)."""
    identity, accounting = state["identity"], state["accounting"]
    with sandbox._lock:
        apps = {**identity.pop("apps"), **sandbox.apps}  # the app it was started with wins
        signing_key = bytes.fromhex(identity.pop("signing_key"))
        sandbox.clock._offset = float(identity.pop("clock_offset"))
        for name, value in identity.items():
            setattr(sandbox, name, value)
        sandbox.apps, sandbox._signing_key = apps, signing_key
    api, books = sandbox.accounting, sandbox.books
    with api.store.lock, books.lock, api.payments._lock:
        books._books = accounting["books"]
        vars(api.store).update(accounting["store"])
        api.store._contacts = {}
        api.payments._payments = accounting["payments"]
    entries = {}
    for scope, (fingerprint, answer) in accounting["idempotency"].items():
        entries[scope] = entry = _Entry(fingerprint, answer)
        entry.done.set()
    with api.idempotency._lock:
        api.idempotency._entries = entries


def persist_app(app: Starlette, path: Path, *, fresh: bool = False) -> Snapshots:
    """Restore ``app``'s sandbox from ``path`` (unless ``fresh``) and keep saving it there;
    ``close()`` the result when the server stops. ``StateFileError`` for a file it cannot use."""
    sandbox: XeroSandbox = app.state.sandbox
    return keep_state(
        app,
        path,
        sandbox=NAME,
        config=config(sandbox),
        capture=lambda: capture(sandbox),
        restore=lambda saved: restore(sandbox, saved),
        fresh=fresh,
        constants=CONSTANTS,
        interval=SAVE_INTERVAL_SECONDS,
    )
