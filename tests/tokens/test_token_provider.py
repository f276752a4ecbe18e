"""The one token provider: exactly one refresh reaches Xero however many ask at once, on SQLite
and PostgreSQL; a refused refresh marks the credential NEEDS_REAUTH."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from config.errors import AuthError
from config.settings import get_settings
from sandbox.serve import ServerHandle
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS
from store.credentials import CredentialStatus, TokenSet
from store.factory import credential_store
from tasks.xero.credentials import token_provider

WORKER = """
import sys, time
from pathlib import Path
from tasks.xero.credentials import token_provider
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
print(token_provider().access_token(sys.argv[1]), flush=True)
"""


@pytest.fixture
def xero(xero_server: ServerHandle, xero_sandbox) -> ServerHandle:
    """The session's Xero sandbox, reset for this test."""
    return xero_server


@pytest.fixture
def env(clean_settings, db_url, encryption_key, xero, tmp_path) -> dict[str, str]:
    values = {
        "BILLSYNC_DATA_DIR": str(tmp_path),
        "BILLSYNC_DATABASE_URL": db_url,
        "BILLSYNC_ENCRYPTION_KEY": encryption_key,
        "BILLSYNC_XERO_CLIENT_ID": DEFAULT_CLIENT_ID,
        "BILLSYNC_XERO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "BILLSYNC_XERO_LOGIN_URL": xero.url,
        "BILLSYNC_XERO_IDENTITY_URL": xero.url,
        "BILLSYNC_XERO_API_URL": xero.url,
    }
    for key, value in values.items():
        clean_settings.setenv(key, value)
    get_settings.cache_clear()
    return values


def expiring_credential(xero: ServerHandle) -> tuple[str, dict]:
    """An ACTIVE credential whose stored access token is inside the refresh margin."""
    granted = httpx.post(f"{xero.url}/_sandbox/grant", json={"orgs": [DEFAULT_ORGS[0]]}).json()
    store = credential_store(get_settings())
    pending = store.create_pending("Expiring")
    tokens = TokenSet(
        access_token=granted["access_token"],
        refresh_token=granted["refresh_token"],
        expires_at=time.time() + 60,  # within the five-minute margin: must refresh
    )
    store.activate(pending.credential_id, granted["tenant_ids"][0], DEFAULT_ORGS[0], tokens)
    return pending.credential_id, granted


def refreshes(xero: ServerHandle) -> int:
    return int(httpx.get(f"{xero.url}/_sandbox/state").json()["refreshes"])


def test_eight_threads_and_two_processes_cause_one_refresh(env, xero, tmp_path):
    credential_id, granted = expiring_credential(xero)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, credential_id, str(go)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    provider = token_provider()
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(9)

    def ask() -> None:
        barrier.wait()
        try:
            results.append(provider.access_token(credential_id))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # let the subprocesses import and reach their start line
    Path(go).touch()
    barrier.wait()
    for thread in threads:
        thread.join(60)
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert not errors, errors

    tokens = results + outputs
    assert len(tokens) == 10
    assert refreshes(xero) == 1
    assert len(set(tokens)) == 1 and tokens[0] != granted["access_token"]
    answer = httpx.get(
        f"{xero.url}/connections", headers={"Authorization": f"Bearer {tokens[0]}"}
    )
    assert answer.status_code == 200

    # The stored refresh token is the newest: it refreshes, the granted one is spent.
    record = credential_store(get_settings()).read_tokens(credential_id)
    assert record.tokens.access_token.get_secret_value() == tokens[0]
    oauth = token_provider().oauth
    with pytest.raises(AuthError):
        oauth.refresh(granted["refresh_token"])
    assert oauth.refresh(record.tokens.refresh_token.get_secret_value()).access_token


def test_a_fresh_token_is_served_without_refresh(env, xero):
    credential_id, granted = expiring_credential(xero)
    first = token_provider().access_token(credential_id)
    assert token_provider().access_token(credential_id) == first
    assert refreshes(xero) == 1


def test_a_valid_token_is_read_once_and_served_from_memory_until_the_margin(
    env, xero, monkeypatch
):
    """A sync asks for a token before every call: one database read, not one per call."""
    granted = httpx.post(f"{xero.url}/_sandbox/grant", json={"orgs": [DEFAULT_ORGS[0]]}).json()
    store = credential_store(get_settings())
    pending = store.create_pending("Held")
    expires = time.time() + 1800
    tokens = TokenSet(
        access_token=granted["access_token"],
        refresh_token=granted["refresh_token"],
        expires_at=expires,
    )
    store.activate(pending.credential_id, granted["tenant_ids"][0], DEFAULT_ORGS[0], tokens)
    provider = token_provider()
    reads: list[str] = []
    read_tokens = provider.store.read_tokens
    monkeypatch.setattr(
        provider.store, "read_tokens", lambda cid: reads.append(cid) or read_tokens(cid)
    )
    tokens_served = {provider.access_token(pending.credential_id) for _ in range(20)}
    assert tokens_served == {granted["access_token"]} and len(reads) == 1
    # Near the margin it is read again (and refreshed, once, as before).
    monkeypatch.setattr(provider, "clock", lambda: expires - provider.margin_seconds + 1)
    assert provider.access_token(pending.credential_id) != granted["access_token"]
    assert len(reads) == 2 and refreshes(xero) == 1


def test_spent_refresh_token_marks_credential_needs_reauth(env, xero):
    credential_id, granted = expiring_credential(xero)
    token_provider().oauth.refresh(granted["refresh_token"])  # someone else spent it
    with pytest.raises(AuthError):
        token_provider().access_token(credential_id)
    store = credential_store(get_settings())
    assert store.get(credential_id).status is CredentialStatus.NEEDS_REAUTH
    with pytest.raises(AuthError):
        token_provider().access_token(credential_id)


def test_a_token_xero_refuses_early_is_replaced_once_and_the_call_retried(env, xero):
    """Xero's clock runs ahead of ours: it refuses a token we think valid for 30 minutes."""
    from tasks.xero.invoices import XeroAccountingClient

    granted = httpx.post(f"{xero.url}/_sandbox/grant", json={"orgs": [DEFAULT_ORGS[0]]}).json()
    store = credential_store(get_settings())
    pending = store.create_pending("Skewed")
    tenant = granted["tenant_ids"][0]
    store.activate(
        pending.credential_id,
        tenant,
        DEFAULT_ORGS[0],
        TokenSet(
            access_token=granted["access_token"],
            refresh_token=granted["refresh_token"],
            expires_at=time.time() + 1800,
        ),
    )
    httpx.post(f"{xero.url}/_sandbox/clock", json={"advance_seconds": 1801})
    provider = token_provider()
    with XeroAccountingClient(
        get_settings().xero_api_url,
        tenant,
        provider.getter(pending.credential_id),
        replace_token=lambda rejected: provider.replace_rejected(pending.credential_id, rejected),
    ) as client:
        assert client.find_invoices_by_number(["nothing"]) == {}
        assert client.find_invoices_by_number(["nothing"]) == {}
    assert refreshes(xero) == 1
    # A caller still holding the refused token gets the replacement, not another refresh.
    assert provider.replace_rejected(pending.credential_id, granted["access_token"]) != (
        granted["access_token"]
    )
    assert refreshes(xero) == 1
    without = XeroAccountingClient(get_settings().xero_api_url, tenant, lambda: "stale")
    with pytest.raises(AuthError):
        without.find_invoices_by_number(["nothing"])
