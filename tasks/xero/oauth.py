"""Xero OAuth 2.0 with PKCE, through Authlib's httpx client: authorise URL, code, refresh, revoke.

Transport only: what the tokens are for and where they are kept is ``tasks.xero.tokens``'s job.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError

from config.errors import AuthError, PermanentError, TransientError
from config.settings import Settings
from store.credentials import TokenSet
from tasks.http import ssl_context
from tasks.oauth_client import OAuth2Client


def auth_event_id(access_token: str) -> str | None:
    """The ``authentication_event_id`` claim of a Xero access token (a JWT; not verified here)."""
    try:
        payload = access_token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get("authentication_event_id")
    except (IndexError, ValueError):
        return None


class XeroOAuth:
    """The app's side of Xero's identity service."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock

    def _client(self) -> OAuth2Client:
        s = self.settings
        return OAuth2Client(
            client_id=s.xero_client_id,
            client_secret=s.xero_client_secret.get_secret_value(),
            scope=s.xero_scopes,
            redirect_uri=s.xero_redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
            timeout=s.http_timeout_seconds,
            verify=ssl_context(),
        )

    def authorization_url(self, state: str, code_verifier: str) -> str:
        """The "Go to Xero" link: PKCE S256 challenge derived from ``code_verifier``."""
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.settings.xero_authorize_endpoint, state=state, code_verifier=code_verifier
            )
        return url

    def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        return self._token_call(
            lambda c: c.fetch_token(
                self.settings.xero_token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._token_call(
            lambda c: c.refresh_token(
                self.settings.xero_token_endpoint, refresh_token=refresh_token
            )
        )

    def revoke(self, refresh_token: str) -> None:
        with self._client() as client:
            try:
                resp = client.revoke_token(
                    self.settings.xero_revocation_endpoint,
                    token=refresh_token,
                    token_type_hint="refresh_token",
                )
            except httpx.TransportError as exc:
                raise TransientError(f"Xero revocation unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500:
            raise TransientError(f"Xero revocation answered {resp.status_code}")
        if resp.status_code >= 400:
            raise PermanentError(f"Xero revocation refused: {resp.status_code}")

    def connections(self, access_token: str, event_id: str | None = None) -> list[dict[str, Any]]:
        """Tenants this token may reach (only those of this consent when ``event_id`` given)."""
        params = {"authEventId": event_id} if event_id else None
        try:
            resp = httpx.get(
                self.settings.xero_connections_endpoint,
                params=params,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.settings.http_timeout_seconds,
            )
        except httpx.TransportError as exc:
            raise TransientError(f"Xero connections unreachable: {type(exc).__name__}") from exc
        if resp.status_code in (401, 403):
            raise AuthError(f"Xero refused the access token ({resp.status_code})")
        if resp.status_code >= 500:
            raise TransientError(f"Xero connections answered {resp.status_code}")
        if resp.status_code >= 400:
            raise PermanentError(f"Xero connections refused: {resp.status_code}")
        return list(resp.json())

    def _token_call(self, call: Callable[[OAuth2Client], dict[str, Any]]) -> TokenSet:
        with self._client() as client:
            try:
                token = call(client)
            except httpx.TransportError as exc:
                raise TransientError(f"Xero identity unreachable: {type(exc).__name__}") from exc
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                if code >= 500 or code == 429:
                    raise TransientError(f"Xero identity answered {code}") from None
                raise PermanentError(f"Xero identity answered {code}") from None
            except ValueError as exc:
                raise PermanentError(f"Xero identity answered oddly: {exc}") from None
            except AuthlibBaseError as exc:
                # Only the OAuth error code: the description could echo request data.
                if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                    raise AuthError(f"Xero refused the grant: {exc.error}") from None
                if exc.error in ("server_error", "temporarily_unavailable"):
                    raise TransientError(f"Xero identity error: {exc.error}") from None
                raise PermanentError(f"Xero token request failed: {exc.error}") from None
        return TokenSet.from_oauth(dict(token), self.clock())
