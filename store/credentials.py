"""The credential store: pending consent, encrypted tokens, and the TTL it enforces on its own.

A pending credential carries an expiry. Reads treat an expired one as gone, a late callback
cannot complete it, and ``sweep_expired`` deletes it: a flow process that died leaves nothing.
Token changes go through a versioned compare-and-swap (``token_version``) so that exactly one
process refreshes a token at a time, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from config.errors import AuthError, InvalidInput, NotFound
from store import consent_states
from store.credential_types import (
    DESTINATIONS,
    ENTITY_TYPES,
    ClaimedState,
    ConsentAlreadyCompleted,
    ConsentAlreadyUsed,
    ConsentExpired,
    ConsentRefused,
    ConsentWithdrawn,
    CredentialStatus,
    CredentialView,
    PendingConsent,
    TokenRecord,
    TokenSet,
    UnknownConsent,
)
from store.crypto import Cipher
from store.schema import credentials as t

# CredentialStatus and TokenSet live in ``store.credential_types``; many callers import them here.
__all__ = ["CredentialStatus", "CredentialStore", "TokenSet", "pkce_pair"]


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class CredentialStore:
    """Credentials in the project database; every secret goes through ``cipher``."""

    def __init__(
        self,
        engine: Engine,
        cipher: Cipher,
        *,
        ttl_seconds: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    # -- pending consent -------------------------------------------------------------------
    def create_pending(
        self, name: str, entity_type: str = "Bill", destination: str = "Xero"
    ) -> PendingConsent:
        """A PENDING credential with a fresh ``state`` and PKCE verifier; refuses bad input."""
        clean = (name or "").strip()
        if not clean:
            raise InvalidInput("a credential needs a name", field="name")
        if len(clean) > 200:
            raise InvalidInput("is longer than 200 characters", field="name")
        if entity_type not in ENTITY_TYPES:
            raise InvalidInput(f"must be one of {', '.join(ENTITY_TYPES)}", field="entity_type")
        if destination not in DESTINATIONS:
            raise InvalidInput(f"must be one of {', '.join(DESTINATIONS)}", field="destination")
        self.sweep_expired()
        now = self.clock()
        verifier, _ = pkce_pair()
        credential_id, expires_at = str(uuid.uuid4()), now + self.ttl_seconds
        pending = PendingConsent(
            credential_id=credential_id,
            state=consent_states.issue(self.cipher, credential_id, expires_at),
            code_verifier=verifier,
            expires_at=expires_at,
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t).values(
                        id=pending.credential_id,
                        name=clean,
                        entity_type=entity_type,
                        destination=destination,
                        status=CredentialStatus.PENDING.value,
                        token_version=0,
                        pending_expires_at=pending.expires_at,
                        oauth_state=pending.state,
                        pkce_verifier_ciphertext=self.cipher.encrypt_text(verifier),
                        state_used=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError as exc:
            raise InvalidInput(
                f"a {destination} {entity_type} credential named {clean!r} already exists",
                field="name",
            ) from exc
        return pending

    def attach_flow_run(self, credential_id: str, flow_run_id: str) -> None:
        """Remember which paused run the consent callback must resume."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t).where(t.c.id == credential_id).values(flow_run_id=str(flow_run_id))
            )

    def flow_run_id(self, credential_id: str) -> str | None:
        """The provisioning run waiting for this credential's consent, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.flow_run_id).where(t.c.id == credential_id)).scalar()

    def claim_state(self, state: str) -> ClaimedState:
        """Spend a consent ``state``: known, pending, unexpired and unused. Otherwise a
        ``ConsentRefused`` saying why: unknown, expired (with when), already used, already
        completed, or withdrawn; the state itself is signed, so this holds after the pending
        credential is gone."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.c.id, t.c.flow_run_id, t.c.state_used, t.c.pending_expires_at).where(
                    t.c.oauth_state == state,
                    t.c.status == CredentialStatus.PENDING.value,
                )
            ).first()
            if row is not None:
                spent = conn.execute(
                    update(t)
                    .where(
                        t.c.id == row.id,
                        t.c.state_used.is_(False),
                        t.c.pending_expires_at > now,
                    )
                    .values(state_used=True, updated_at=now)
                )
                if spent.rowcount == 1:
                    return ClaimedState(credential_id=row.id, flow_run_id=row.flow_run_id)
                if row.state_used or row.pending_expires_at > now:  # spent, maybe just now
                    raise ConsentAlreadyUsed()
                raise ConsentExpired(row.pending_expires_at)
        raise self._refusal(state, now)

    def _refusal(self, state: str, now: float) -> ConsentRefused:
        """Why a state that no pending credential holds cannot be spent."""
        claims = consent_states.read(self.cipher, state)
        if claims is None:
            return UnknownConsent()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.name, t.c.status).where(t.c.id == claims.credential_id)
            ).first()
        if row is not None and row.status != CredentialStatus.PENDING.value:
            return ConsentAlreadyCompleted(row.name)
        if claims.expires_at <= now:
            return ConsentExpired(claims.expires_at)
        return ConsentWithdrawn(claims.expires_at)

    def code_verifier(self, credential_id: str) -> str:
        """The PKCE verifier of a pending, unexpired credential."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.pkce_verifier_ciphertext).where(
                    t.c.id == credential_id, *self._visible(self.clock())
                )
            ).first()
        if row is None or row.pkce_verifier_ciphertext is None:
            raise NotFound(f"no pending credential {credential_id}")
        return self.cipher.decrypt_text(row.pkce_verifier_ciphertext)

    def activate(
        self, credential_id: str, tenant_id: str, tenant_name: str, tokens: TokenSet
    ) -> CredentialView:
        """PENDING → ACTIVE with its tenant and encrypted tokens, only while still within TTL."""
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(
                    t.c.id == credential_id,
                    t.c.status == CredentialStatus.PENDING.value,
                    t.c.pending_expires_at > now,
                )
                .values(
                    status=CredentialStatus.ACTIVE.value,
                    tenant_id=tenant_id,
                    tenant_name=tenant_name,
                    token_ciphertext=self.cipher.encrypt_json(tokens.to_plain()),
                    token_version=t.c.token_version + 1,
                    access_expires_at=tokens.expires_at,
                    pending_expires_at=None,
                    oauth_state=None,
                    pkce_verifier_ciphertext=None,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                raise NotFound(
                    f"credential {credential_id} is no longer pending (expired or removed)"
                )
        return self.get(credential_id)

    # -- reads -----------------------------------------------------------------------------
    def _visible(self, now: float) -> list[Any]:
        """Rows a read may see: not pending, or pending within their TTL."""
        return [
            or_(
                t.c.status != CredentialStatus.PENDING.value,
                t.c.pending_expires_at > now,
            )
        ]

    @staticmethod
    def _view(row: Any) -> CredentialView:
        return CredentialView(
            id=row.id,
            name=row.name,
            entity_type=row.entity_type,
            destination=row.destination,
            status=CredentialStatus(row.status),
            tenant_id=row.tenant_id,
            tenant_name=row.tenant_name,
            created_at=row.created_at,
            pending_expires_at=row.pending_expires_at,
        )

    def get(self, id_or_name: str) -> CredentialView:
        """By id, or by name; expired pending ones do not exist."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t)
                .where(or_(t.c.id == id_or_name, t.c.name == id_or_name))
                .where(*self._visible(self.clock()))
            ).all()
        if not rows:
            raise NotFound(f"no credential {id_or_name!r}")
        by_id = [r for r in rows if r.id == id_or_name]
        return self._view(by_id[0] if by_id else rows[0])

    def list(self) -> list[CredentialView]:
        """Every credential (pending ones past their TTL are swept first)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t).where(*self._visible(self.clock())).order_by(t.c.created_at)
            ).all()
        return [self._view(r) for r in rows]

    # -- removal ---------------------------------------------------------------------------
    def delete(self, credential_id: str) -> bool:
        """Delete the credential (by id or name)."""
        with self.engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.id == credential_id)).rowcount == 1

    def sweep_expired(self) -> int:
        """Delete pending credentials past their TTL; returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(t).where(
                    and_(
                        t.c.status == CredentialStatus.PENDING.value,
                        t.c.pending_expires_at <= self.clock(),
                    )
                )
            ).rowcount

    # -- tokens (compare-and-swap on token_version) ------------------------------------------
    def read_tokens(self, credential_id: str) -> TokenRecord:
        """The credential's tokens, decrypted, with the version a refresh must compare against."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    t.c.status,
                    t.c.token_ciphertext,
                    t.c.token_version,
                    t.c.refresh_lease_until,
                    t.c.name,
                ).where(t.c.id == credential_id)
            ).first()
        if row is None:
            raise NotFound(f"no credential {credential_id}")
        status = CredentialStatus(row.status)
        if status is CredentialStatus.PENDING:
            raise AuthError(f"credential {row.name!r} ({credential_id}) has not completed consent")
        tokens = (
            TokenSet(**self.cipher.decrypt_json(row.token_ciphertext))
            if row.token_ciphertext
            else None
        )
        return TokenRecord(
            credential_id, status, tokens, row.token_version, row.refresh_lease_until, row.name
        )

    def try_lease(self, credential_id: str, version: int, lease_seconds: float) -> int | None:
        """Claim the right to refresh: the new version if this caller won, else ``None``."""
        now = self.clock()
        with self.engine.begin() as conn:
            won = conn.execute(
                update(t)
                .where(
                    t.c.id == credential_id,
                    t.c.token_version == version,
                    t.c.status == CredentialStatus.ACTIVE.value,
                    or_(t.c.refresh_lease_until.is_(None), t.c.refresh_lease_until <= now),
                )
                .values(
                    token_version=version + 1,
                    refresh_lease_until=now + lease_seconds,
                    updated_at=now,
                )
            )
        return version + 1 if won.rowcount == 1 else None

    def store_refreshed(self, credential_id: str, version: int, tokens: TokenSet) -> bool:
        """Save a rotated token set if the lease at ``version`` is still ours."""
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == credential_id, t.c.token_version == version)
                .values(
                    token_ciphertext=self.cipher.encrypt_json(tokens.to_plain()),
                    token_version=version + 1,
                    access_expires_at=tokens.expires_at,
                    refresh_lease_until=None,
                    updated_at=now,
                )
            )
        return done.rowcount == 1

    def release_lease(self, credential_id: str, version: int) -> None:
        """Give the lease back after a refresh that failed transiently."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == credential_id, t.c.token_version == version)
                .values(refresh_lease_until=None, token_version=version + 1)
            )

    def mark_needs_reauth(self, credential_id: str) -> None:
        """Xero refused the refresh: a person must reconnect the credential."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == credential_id)
                .values(
                    status=CredentialStatus.NEEDS_REAUTH.value,
                    refresh_lease_until=None,
                    token_version=t.c.token_version + 1,
                    updated_at=self.clock(),
                )
            )
