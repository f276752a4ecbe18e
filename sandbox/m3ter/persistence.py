"""The m3ter sandbox's state in a file (``sandbox.persist``): what a restart must keep.

Kept: the generated organisation as it is now (accounts, external mappings, bills with their
versions, statuses and last-modified times, and whatever the control endpoints added or
changed), the bill counter and the sandbox's start (seeded bills' times hang on it), and the
bearer tokens issued, with their expiry. Not kept, like a restarted server: injected faults and
the call counters.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from sandbox.m3ter.state import M3terSandbox
from sandbox.persist import Snapshots, encode
from sandbox.persist import persist_app as keep_state

NAME = "m3ter"
SAVE_INTERVAL_SECONDS = 1.0
#: What an ``M3terSandbox`` holds that is not data: how it was started (``config`` checks what
#: matters of it), its lock, faults and counters, and the tokens (kept apart: see ``capture``).
NOT_DATA = {
    "seed", "initial_accounts", "initial_bills_per_account", "org_id", "client_id",
    "client_secret", "token_ttl", "lock", "faults", "counters", "_seeding", "tokens",
}  # fmt: skip


def config(sandbox: M3terSandbox) -> dict[str, Any]:
    """What a state file must have been saved under: bills are rendered from the seed, and the
    organisation and client are in every caller's settings."""
    return {"seed": sandbox.seed, "org_id": sandbox.org_id, "client_id": sandbox.client_id}


def capture(sandbox: M3terSandbox) -> dict[str, Any]:
    """The organisation's data, encoded (a copy), with the tokens' expiry on the wall clock
    (the sandbox checks them against the monotonic one, which a reboot starts again)."""
    with sandbox.lock:
        data = {k: v for k, v in vars(sandbox).items() if k not in NOT_DATA}
        offset = time.time() - time.monotonic()
        tokens = {token: expiry + offset for token, expiry in sandbox.tokens.items()}
        return {"data": encode(data), "tokens": tokens}


def restore(sandbox: M3terSandbox, state: dict[str, Any]) -> None:
    """Put a decoded ``capture`` back into a sandbox just created (before it serves)."""
    offset = time.monotonic() - time.time()
    with sandbox.lock:
        vars(sandbox).update(state["data"])
        sandbox.tokens = {token: float(at) + offset for token, at in state["tokens"].items()}


def persist_app(app: Starlette, path: Path, *, fresh: bool = False) -> Snapshots:
    """Restore ``app``'s sandbox from ``path`` (unless ``fresh``) and keep saving it there;
    ``close()`` the result when the server stops. ``StateFileError`` for a file it cannot use."""
    sandbox: M3terSandbox = app.state.sandbox
    return keep_state(
        app,
        path,
        sandbox=NAME,
        config=config(sandbox),
        capture=lambda: capture(sandbox),
        restore=lambda saved: restore(sandbox, saved),
        fresh=fresh,
        interval=SAVE_INTERVAL_SECONDS,
    )
