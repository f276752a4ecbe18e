"""Who may call the sandbox's API and what goes wrong when: OAuth tokens, injected faults and
the call counters, as the part of ``M3terSandbox`` that the API's gate uses."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    """The next ``count`` API calls answer ``status`` (after ``delay`` seconds, if set)."""

    status: int = 503
    count: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    include_token: bool = False


@dataclass
class Counters:
    """What the API has served since the last reset."""

    api_calls: int = 0
    token_requests: int = 0
    faults_served: int = 0
    unauthorised: int = 0
    paths: dict[str, int] = field(default_factory=dict)


class TokensAndFaults:
    """Token issue and checks, and the queue of injected faults (``M3terSandbox`` sets the
    attributes below on reset)."""

    lock: threading.RLock
    token_ttl: int
    tokens: dict[str, float]
    faults: list[Fault]
    counters: Counters

    def issue_token(self) -> dict[str, Any]:
        """A new bearer token, valid for ``token_ttl`` seconds (the token endpoint's answer)."""
        with self.lock:
            self.counters.token_requests += 1
            token = secrets.token_urlsafe(24)
            self.tokens[token] = time.monotonic() + self.token_ttl
            return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` was issued and has not expired."""
        with self.lock:
            expiry = self.tokens.get(token)
            return expiry is not None and expiry > time.monotonic()

    def expire_tokens(self) -> None:
        """Make every issued token expire now (tests of re-authentication)."""
        with self.lock:
            self.tokens.clear()

    def add_fault(self, fault: Fault) -> None:
        """Queue ``fault`` for the next calls."""
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, *, token_endpoint: bool) -> Fault | None:
        """The fault to apply to this call, if any, counting it down."""
        with self.lock:
            for fault in self.faults:
                if token_endpoint and not fault.include_token:
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                self.counters.faults_served += 1
                return fault
            return None
