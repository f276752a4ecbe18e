"""``Idempotency-Key`` memory: the same key and request replay the first answer exactly.

Keys are scoped per app and tenant and remembered for the sandbox's life. A request is known by
its method, path, query and body bytes; the same key on a different request is refused (400).
A second call arriving while the first is still working waits for it, then replays.
Only answers the API itself produced are remembered: a 429 from the limiter or an injected
500/503 did nothing, so a retry with the same key runs for real.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field

MAX_KEY_LENGTH = 128


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: bytes
    content_type: str


@dataclass
class _Entry:
    fingerprint: str
    answer: StoredAnswer | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class KeyConflict(Exception):
    """The key was used before with a different request."""


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method} {path}?{query} {digest}"


class IdempotencyStore:
    """Remembered answers by (app, tenant, key). Call from the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._entries: dict[tuple[str, str, str], _Entry] = {}
            self.replays = 0
            self.conflicts = 0

    async def claim(self, scope: tuple[str, str, str], print_: str) -> StoredAnswer | None:
        """The remembered answer to replay, or None: the caller now owns the key and must
        ``finish`` (with the answer, or None to forget the claim)."""
        while True:
            with self._lock:
                entry = self._entries.get(scope)
                if entry is None:
                    self._entries[scope] = _Entry(print_)
                    return None
                if entry.fingerprint != print_:
                    self.conflicts += 1
                    raise KeyConflict(scope[2])
                if entry.answer is not None:
                    self.replays += 1
                    return entry.answer
                done = entry.done
            await done.wait()

    def finish(self, scope: tuple[str, str, str], answer: StoredAnswer | None) -> None:
        with self._lock:
            entry = self._entries.get(scope)
            if entry is None:
                return
            if answer is None:
                del self._entries[scope]
            else:
                entry.answer = answer
            entry.done.set()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            keys = len(self._entries)
            return {"keys": keys, "replays": self.replays, "conflicts": self.conflicts}
