"""Open the project database from settings: migrate once per URL and process, cache the engine."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from config.settings import Settings
from store.credentials import CredentialStore
from store.crypto import cipher_from_settings
from store.db import make_engine, migrate

if TYPE_CHECKING:
    from store.integrations import IntegrationStore

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def database(settings: Settings) -> Engine:
    """The engine for ``settings``' database, migrated to head on first use."""
    url = settings.sqlalchemy_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            migrate(url)
            engine = _engines[url] = make_engine(url)
        return engine


def credential_store(settings: Settings) -> CredentialStore:
    """The credential store of ``settings``' database, with its cipher and TTL."""
    return CredentialStore(
        database(settings),
        cipher_from_settings(settings),
        ttl_seconds=settings.credential_ttl_seconds,
    )


def forget_engines() -> None:
    """Dispose cached engines (tests that switch databases)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def integration_store(settings: Settings) -> IntegrationStore:
    """The integration store of ``settings``' database."""
    from store.integrations import IntegrationStore

    return IntegrationStore(database(settings))
