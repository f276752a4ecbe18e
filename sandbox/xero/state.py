"""The Xero sandbox's identity state: apps, organisations, codes, grants, tokens, connections.

Thread-safe (one lock around mutations): uvicorn serves from its loop while tests call the
object directly. Time comes from a ``SandboxClock`` that tests move forward. The records it
keeps are in ``identity_records``; the tokens it hands out come from ``token_minting``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.xero.identity_records import AccessEntry, AuthCode, Connection, Grant, RefreshEntry
from sandbox.xero.token_minting import ACCESS_TOKEN_SECONDS, s256, token_answer

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_ORGS = ("Demo Company (UK)", "Demo Company (US)")

CODE_SECONDS = 300
REFRESH_IDLE_SECONDS = 60 * 86_400


class InvalidToken(Exception):
    """A bearer token that is unknown, expired or revoked."""


class OAuthError(Exception):
    """An OAuth error answer: ``error`` code and HTTP ``status``."""

    def __init__(self, error: str, status: int = 400, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.status = status
        self.description = description


class SandboxClock:
    """Real time plus an offset that ``advance`` moves forward."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += float(seconds)

    def reset(self) -> None:
        self._offset = 0.0


@dataclass
class XeroSandbox:
    """Everything the identity endpoints know; the accounting module hangs off ``accounting``."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    org_names: Iterable[str] = DEFAULT_ORGS
    time_scale: float = 1.0
    clock: SandboxClock = field(default_factory=SandboxClock)
    reset_hooks: list[Callable[[], None]] = field(default_factory=list)
    extra_state: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    accounting: Any = None

    def __post_init__(self) -> None:
        self.org_names = tuple(self.org_names)
        self.apps = {self.client_id: self.client_secret}
        # Stable tenant ids: the same organisation name always has the same id.
        self.orgs = {
            name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero-sandbox:{name}"))
            for name in self.org_names
        }
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._codes: dict[str, AuthCode] = {}
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, AccessEntry] = {}
        self._refresh: dict[str, RefreshEntry] = {}
        self._connections: dict[str, Connection] = {}
        self.counters: Counter[str] = Counter()
        self.calls_per_tenant: Counter[str] = Counter()

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self.clock.reset()
        for hook in self.reset_hooks:
            hook()

    # -- clients and consent -----------------------------------------------------------------
    def check_client(self, client_id: str | None, secret: str | None) -> None:
        if not client_id or self.apps.get(client_id) is None:
            raise OAuthError("invalid_client", 401, "unknown client")
        if secret is None or not hmac.compare_digest(self.apps[client_id], secret):
            raise OAuthError("invalid_client", 401, "client authentication failed")

    def tenant_ids_for(self, names: Iterable[str]) -> set[str]:
        chosen = [n.strip() for n in names if n.strip()]
        unknown = [n for n in chosen if n not in self.orgs]
        if unknown or not chosen:
            raise OAuthError("invalid_request", 400, f"unknown organisation(s): {unknown}")
        return {self.orgs[n] for n in chosen}

    def issue_code(
        self, client_id: str, redirect_uri: str, challenge: str, scope: str, orgs: Iterable[str]
    ) -> str:
        tenants = self.tenant_ids_for(orgs)
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = AuthCode(
                client_id,
                redirect_uri,
                challenge,
                scope,
                tenants,
                self.clock.now() + CODE_SECONDS,
            )
            self.counters["codes_issued"] += 1
        return code

    def exchange_code(
        self, client_id: str, code: str, redirect_uri: str | None, verifier: str | None
    ) -> dict[str, Any]:
        with self._lock:
            entry = self._codes.get(code or "")
            if entry is None or entry.used or entry.client_id != client_id:
                raise OAuthError("invalid_grant", 400, "unknown or used code")
            if entry.expires_at <= self.clock.now():
                raise OAuthError("invalid_grant", 400, "code expired")
            if redirect_uri != entry.redirect_uri:
                raise OAuthError("invalid_grant", 400, "redirect_uri does not match")
            if not verifier or not hmac.compare_digest(s256(verifier), entry.challenge):
                raise OAuthError("invalid_grant", 400, "code_verifier does not match")
            entry.used = True
            grant = Grant(
                grant_id=str(uuid.uuid4()),
                client_id=client_id,
                user_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "xero-sandbox:user")),
                auth_event_id=str(uuid.uuid4()),
                tenant_ids=set(entry.tenant_ids),
                scope=entry.scope,
            )
            self._grants[grant.grant_id] = grant
            now = self.clock.now()
            names = {v: k for k, v in self.orgs.items()}
            for tenant in sorted(grant.tenant_ids):
                # Reconsenting to a tenant replaces the user's earlier connection to it.
                for old in [c for c in self._connections.values() if c.tenant_id == tenant]:
                    del self._connections[old.id]
                conn = Connection(
                    str(uuid.uuid4()),
                    grant.grant_id,
                    grant.user_id,
                    grant.auth_event_id,
                    tenant,
                    names[tenant],
                    now,
                    now,
                )
                self._connections[conn.id] = conn
            return self._issue(grant)

    def grant(self, org_names: Iterable[str], client_id: str | None = None) -> dict[str, Any]:
        """A token set as if a person consented to ``org_names`` (tests and benchmarks)."""
        client = client_id or self.client_id
        if client not in self.apps:
            raise OAuthError("invalid_client", 401, "unknown client")
        code = self.issue_code(client, "http://127.0.0.1/", s256("shortcut"), "", org_names)
        answer = self.exchange_code(client, code, "http://127.0.0.1/", "shortcut")
        with self._lock:
            grant = self._grants[self._access[answer["access_token"]].grant_id]
            return {**answer, "tenant_ids": sorted(grant.tenant_ids)}

    # -- tokens ------------------------------------------------------------------------------
    def _issue(self, grant: Grant) -> dict[str, Any]:
        """Mint an access and a refresh token for ``grant`` (the lock is held)."""
        now = self.clock.now()
        answer = token_answer(grant, now, self._signing_key)
        self._access[answer["access_token"]] = AccessEntry(
            grant.grant_id, now + ACCESS_TOKEN_SECONDS
        )
        self._refresh[answer["refresh_token"]] = RefreshEntry(grant.grant_id, now)
        self.counters["tokens_issued"] += 1
        return answer

    def refresh(self, client_id: str, refresh_token: str) -> dict[str, Any]:
        with self._lock:
            self.counters["refresh_calls"] += 1
            entry = self._refresh.get(refresh_token or "")
            grant = self._grants.get(entry.grant_id) if entry else None
            now = self.clock.now()
            if (
                entry is None
                or grant is None
                or entry.spent
                or grant.revoked
                or grant.client_id != client_id
                or now - entry.last_used > REFRESH_IDLE_SECONDS
            ):
                self.counters["refresh_refused"] += 1
                raise OAuthError("invalid_grant", 400)
            entry.spent = True  # rotation: the old refresh token stops working
            self.counters["refreshes"] += 1
            return self._issue(grant)

    def revoke(self, client_id: str, token: str) -> None:
        with self._lock:
            entry = self._refresh.get(token or "")
            if entry is None:
                return  # RFC 7009: unknown tokens are not an error
            grant = self._grants.get(entry.grant_id)
            if grant is None or grant.client_id != client_id:
                return
            grant.revoked = True
            for conn in [c for c in self._connections.values() if c.grant_id == grant.grant_id]:
                del self._connections[conn.id]
            self.counters["revocations"] += 1

    def authenticate_bearer(self, token: str) -> Grant:
        """The grant behind a valid access token; ``InvalidToken`` otherwise."""
        with self._lock:
            entry = self._access.get(token or "")
            if entry is None:
                raise InvalidToken("unknown access token")
            if entry.expires_at <= self.clock.now():
                raise InvalidToken("access token expired")
            grant = self._grants[entry.grant_id]
            if grant.revoked:
                raise InvalidToken("access token revoked")
            live = {c.tenant_id for c in self._connections.values() if c.user_id == grant.user_id}
            return Grant(
                grant.grant_id,
                grant.client_id,
                grant.user_id,
                grant.auth_event_id,
                grant.tenant_ids & live,
                grant.scope,
            )

    # -- connections -------------------------------------------------------------------------
    def connections(self, token: str, auth_event_id: str | None = None) -> list[dict[str, Any]]:
        grant = self.authenticate_bearer(token)
        with self._lock:
            found = [
                c.wire()
                for c in self._connections.values()
                if c.user_id == grant.user_id
                and (auth_event_id is None or c.auth_event_id == auth_event_id)
            ]
        return sorted(found, key=lambda c: c["tenantName"])

    def delete_connection(self, token: str, connection_id: str) -> bool:
        grant = self.authenticate_bearer(token)
        with self._lock:
            conn = self._connections.get(connection_id)
            if conn is None or conn.user_id != grant.user_id:
                return False
            del self._connections[connection_id]
            return True

    # -- control -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self._lock:
            base: dict[str, Any] = {
                "apps": sorted(self.apps),
                "organisations": [{"name": n, "tenantId": t} for n, t in self.orgs.items()],
                "tokens_issued": self.counters["tokens_issued"],
                "refreshes": self.counters["refreshes"],
                "refresh_calls": self.counters["refresh_calls"],
                "refresh_refused": self.counters["refresh_refused"],
                "codes_issued": self.counters["codes_issued"],
                "revocations": self.counters["revocations"],
                "connections": len(self._connections),
                "calls_per_tenant": dict(self.calls_per_tenant),
                "clock": self.clock.now(),
            }
        for hook in self.extra_state:
            base.update(hook())
        return base
