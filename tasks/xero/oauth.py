"""Xero OAuth 2.0 with PKCE, through Authlib's httpx client: authorise URL, code, refresh, revoke.

Transport only: what the tokens are for and where they are kept is ``tasks.xero.tokens``'s job.
Every call goes through the shared HTTP layer (``tasks.http``, ``tasks.oauth_client``), so its
failures are the same errors as the Accounting API's. Nothing here is retried (``tasks.retries``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from store.credentials import TokenSet
from tasks.http import BearerAuth, call, new_client
from tasks.oauth_client import OAuth2Client, oauth_client, token_error, token_errors

IDENTITY = "Xero identity"


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
        return oauth_client(
            IDENTITY,
            timeout=s.http_timeout_seconds,
            client_id=s.xero_client_id,
            client_secret=s.xero_client_secret.get_secret_value(),
            scope=s.xero_scopes,
            redirect_uri=s.xero_redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )

    def authorization_url(self, state: str, code_verifier: str) -> str:
        """The "Go to Xero" link: PKCE S256 challenge derived from ``code_verifier``."""
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.settings.xero_authorize_endpoint, state=state, code_verifier=code_verifier
            )
        return url

    def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        """The consent's code for a token set (the verifier proves we asked for it)."""
        return self._token_call(
            lambda c: c.fetch_token(
                self.settings.xero_token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new token set; Xero spends ``refresh_token`` (``AuthError`` if already spent)."""
        return self._token_call(
            lambda c: c.refresh_token(
                self.settings.xero_token_endpoint, refresh_token=refresh_token
            )
        )

    def revoke(self, refresh_token: str) -> None:
        """Withdraw the consent at Xero (its connections go with it)."""
        what = "Xero revocation"
        with self._client() as client, token_errors(what):
            response = client.revoke_token(
                self.settings.xero_revocation_endpoint,
                token=refresh_token,
                token_type_hint="refresh_token",
            )
        if response.status_code >= 400:
            raise token_error(response, what)

    def connections(self, access_token: str, event_id: str | None = None) -> list[dict[str, Any]]:
        """Tenants this token may reach (only those of this consent when ``event_id`` given)."""
        params = {"authEventId": event_id} if event_id else {}
        with new_client(timeout=self.settings.http_timeout_seconds) as client:
            response = call(
                client,
                "GET",
                self.settings.xero_connections_endpoint,
                what="Xero connections",
                params=params,
                auth=BearerAuth(lambda: access_token),
            )
        return list(response.json())

    def _token_call(self, request: Callable[[OAuth2Client], dict[str, Any]]) -> TokenSet:
        with self._client() as client, token_errors(IDENTITY):
            token = request(client)
        return TokenSet.from_oauth(dict(token), self.clock())
