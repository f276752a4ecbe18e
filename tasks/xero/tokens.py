"""The one place that hands out a valid Xero access token for a credential.

Xero refresh tokens are single-use, so a refresh must happen exactly once however many threads
and processes ask at the same moment. A caller that finds the token within the margin of expiry
claims a short refresh lease by compare-and-swap on the row's ``token_version`` (works on SQLite
and PostgreSQL alike); the winner refreshes and stores the rotated set, the others wait for the
version to move and read the new token. A per-process lock keeps threads of one process off the
database while a sibling refreshes, and a token read is kept in memory until it nears the margin:
a sync asks for one before every call, and a database read (and decryption) per call cost more
than the call's own JSON. A token Xero refuses early (revoked, clock skew) is dropped and read
again (``replace_rejected``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pydantic import SecretStr

from config.errors import AuthError, TransientError
from store.credentials import CredentialStatus, CredentialStore
from tasks.xero.oauth import XeroOAuth

log = logging.getLogger(__name__)


class XeroTokenProvider:
    """Valid access tokens for stored credentials; persistence is injected (``store``)."""

    def __init__(
        self,
        store: CredentialStore,
        oauth: XeroOAuth,
        *,
        margin_seconds: float = 300,
        lease_seconds: float = 90,
        wait_seconds: float = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.oauth = oauth
        self.margin_seconds = margin_seconds
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.clock = clock
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._held: dict[str, tuple[SecretStr, float]] = {}  # credential: (token, expires at)

    def _lock(self, credential_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(credential_id, threading.Lock())

    def getter(self, credential_id: str) -> Callable[[], str]:
        """A zero-argument callable for clients that ask for a token before each call."""
        return lambda: self.access_token(credential_id)

    def access_token(self, credential_id: str) -> str:
        """A token valid for at least the margin; refreshes (once, cluster-wide) when needed."""
        with self._lock(credential_id):
            held = self._held.get(credential_id)
            if held is not None and held[1] - self.clock() > self.margin_seconds:
                return held[0].get_secret_value()
            return self._access_token(credential_id)

    def replace_rejected(self, credential_id: str, rejected: str) -> str:
        """A token other than ``rejected``, which Xero refused (401) before we thought it expired
        (clock skew, a token revoked early): refresh once, unless another caller already did."""
        with self._lock(credential_id):
            self._held.pop(credential_id, None)
            return self._access_token(credential_id, rejected=rejected)

    def _access_token(self, credential_id: str, rejected: str | None = None) -> str:
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.02
        while True:
            record = self.store.read_tokens(credential_id)
            if record.status is CredentialStatus.NEEDS_REAUTH or record.tokens is None:
                self._held.pop(credential_id, None)
                raise AuthError(
                    f"credential {record.name!r} ({credential_id}) needs to be reconnected to Xero"
                )
            now = self.clock()
            current = record.tokens.access_token.get_secret_value()
            if record.tokens.expires_at - now > self.margin_seconds and current != rejected:
                self._held[credential_id] = (record.tokens.access_token, record.tokens.expires_at)
                return current
            leased = (record.lease_until or 0) > now
            if not leased:
                version = self.store.try_lease(credential_id, record.version, self.lease_seconds)
                if version is not None:
                    return self._refresh(credential_id, version, record.tokens.refresh_token)
            if time.monotonic() > deadline:
                raise TransientError(f"timed out waiting for the refresh of {credential_id}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _refresh(self, credential_id: str, version: int, refresh_token: object) -> str:
        secret = refresh_token.get_secret_value()  # type: ignore[attr-defined]
        try:
            tokens = self.oauth.refresh(secret)
        except AuthError:
            self.store.mark_needs_reauth(credential_id)
            log.warning("Xero refused the refresh of credential %s: needs reauth", credential_id)
            raise
        except Exception:
            self.store.release_lease(credential_id, version)
            raise
        if not self.store.store_refreshed(credential_id, version, tokens):
            # Our lease lapsed while Xero answered (a lease outlives the HTTP timeout, so rare).
            log.error("refresh lease of %s lapsed before the new token was stored", credential_id)
            raise TransientError(f"refresh lease of {credential_id} lapsed; try again")
        log.info("refreshed the Xero access token of credential %s", credential_id)
        self._held[credential_id] = (tokens.access_token, tokens.expires_at)
        return tokens.access_token.get_secret_value()
