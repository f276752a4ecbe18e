"""Make the Xero-side objects from settings: the OAuth transport and the one token provider.

Like prefect-slack's ``credentials.py``: callers ask here for clients instead of wiring them.
"""

from __future__ import annotations

from config.settings import Settings, get_settings
from store.credentials import CredentialStore
from store.factory import credential_store
from tasks.process import PROCESS
from tasks.xero.oauth import XeroOAuth
from tasks.xero.tokens import XeroTokenProvider


def xero_oauth(settings: Settings | None = None) -> XeroOAuth:
    """Xero's OAuth client from the process's settings."""
    return XeroOAuth(settings or get_settings())


def credentials(settings: Settings | None = None) -> CredentialStore:
    """The credential store from the process's settings."""
    return credential_store(settings or get_settings())


def token_provider(settings: Settings | None = None) -> XeroTokenProvider:
    """One provider per settings object and process, so its per-credential locks are shared."""
    settings = settings or get_settings()
    chosen = settings
    provider: XeroTokenProvider = PROCESS.get_or_make(
        PROCESS.providers,
        id(chosen),
        lambda: XeroTokenProvider(
            credential_store(chosen),
            XeroOAuth(chosen),
            margin_seconds=chosen.token_refresh_margin_seconds,
        ),
    )
    return provider
