"""The consent callback's pages, over HTTP without a browser: a link that cannot be used says
what happened (expired at when, already used, already connected, withdrawn, never ours), that
nothing was stored, and what to do; and it changes no row of the credential store."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from config.settings import Settings
from sandbox.serve import ServerHandle, run_in_thread
from store.credentials import CredentialStore, TokenSet
from store.crypto import Cipher
from store.factory import database, forget_engines
from web.callback import create_callback_app

TTL = 600


@pytest.fixture
def settings(clean_settings, tmp_path, encryption_key) -> Iterator[Settings]:
    yield Settings(data_dir=tmp_path / "data", encryption_key=encryption_key)
    forget_engines()


@pytest.fixture
def callback(settings: Settings) -> Iterator[ServerHandle]:
    # No Prefect API: every page here is decided before a run would be resumed.
    with run_in_thread(
        create_callback_app(settings, prefect_api_url="http://127.0.0.1:9/api")
    ) as h:
        yield h


def store_at(settings: Settings, now: float) -> CredentialStore:
    """The callback's store, with its clock at ``now`` (a link made in the past)."""
    return CredentialStore(
        database(settings),
        Cipher(settings.encryption_key.get_secret_value()),
        ttl_seconds=TTL,
        clock=lambda: now,
    )


def rows(store: CredentialStore) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("select * from credentials order by id"))]


def visit(handle: ServerHandle, state: str, **params: str) -> httpx.Response:
    """Xero's redirect to the callback after the person consented (or refused)."""
    query = {"state": state, **(params or {"code": "a-code-from-xero"})}
    return httpx.get(f"{handle.url}/xero/callback", params=query, timeout=10)


def utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%H:%M")


def test_an_expired_link_says_when_it_expired_that_nothing_was_stored_and_what_next(
    settings, callback
):
    made = time.time() - TTL - 90  # followed eleven and a half minutes after it was made
    store = store_at(settings, made)
    pending = store.create_pending("Late books")
    before = rows(store)

    page = visit(callback, pending.state)
    assert page.status_code == 410
    assert "Link expired" in page.text
    assert f"expired at {utc(pending.expires_at)} UTC." in page.text
    assert "Nothing was stored" in page.text
    assert "Run provision_xero_credential again" in page.text
    assert rows(store) == before

    # Refused at Xero, late: still the expiry, not "consent cancelled".
    refused = visit(callback, pending.state, error="access_denied")
    assert refused.status_code == 410 and "expired at" in refused.text

    # The run timed out and removed its pending credential: the page still knows.
    store.delete(pending.credential_id)
    gone = visit(callback, pending.state)
    assert gone.status_code == 410
    assert f"expired at {utc(pending.expires_at)} UTC." in gone.text
    assert rows(store) == []


def test_a_link_expired_on_an_earlier_day_names_the_day(settings, callback):
    store = store_at(settings, time.time() - 2 * 86_400)
    pending = store.create_pending("Old link")
    store.delete(pending.credential_id)
    page = visit(callback, pending.state)
    day = dt.datetime.fromtimestamp(pending.expires_at, dt.UTC).strftime("%Y-%m-%d")
    assert page.status_code == 410
    assert f"expired at {utc(pending.expires_at)} UTC on {day}." in page.text


def test_a_link_already_used_or_already_connected_says_so_and_changes_nothing(settings, callback):
    store = store_at(settings, time.time())
    used = store.create_pending("Half way")
    store.claim_state(used.state)  # the first callback spent it; its run carries on
    connected = store.create_pending("Acme <UK>")
    store.claim_state(connected.state)
    tokens = TokenSet(access_token="a", refresh_token="r", expires_at=time.time() + 1800)
    store.activate(connected.credential_id, "tenant-1", "Demo Company (UK)", tokens)
    before = rows(store)

    again = visit(callback, used.state)
    assert again.status_code == 409
    assert "Link already used" in again.text and "continues in Prefect" in again.text

    done = visit(callback, connected.state)
    assert done.status_code == 409
    assert "Already connected" in done.text
    assert "credential &#x27;Acme &lt;UK&gt;&#x27; is connected" in done.text
    assert "Nothing changed" in done.text
    assert rows(store) == before


def test_a_link_whose_run_ended_early_is_withdrawn_not_expired(settings, callback):
    store = store_at(settings, time.time())
    pending = store.create_pending("Denied")
    store.delete(pending.credential_id)  # the run failed (consent refused) and removed it
    page = visit(callback, pending.state)
    assert page.status_code == 410
    assert "Link withdrawn" in page.text and "ended before" in page.text
    assert "expired at" not in page.text
    assert "Nothing was stored" in page.text and "provision_xero_credential again" in page.text


def test_a_link_this_project_never_made_is_refused_as_unknown(settings, callback, encryption_key):
    store = store_at(settings, time.time())
    genuine = store.create_pending("Genuine")
    before = rows(store)
    altered = genuine.state[:-2] + ("AA" if genuine.state[-2:] != "AA" else "BB")
    for state in ["forged", altered]:
        page = visit(callback, state)
        assert page.status_code == 400
        assert "Request refused" in page.text and "not one this project made" in page.text
        assert "Nothing was stored" in page.text
    assert visit(callback, "", code="x").status_code == 400
    no_code = httpx.get(f"{callback.url}/xero/callback", params={"state": genuine.state})
    assert no_code.status_code == 400 and "neither a code nor an error" in no_code.text
    assert rows(store) == before  # the genuine link is still unused
