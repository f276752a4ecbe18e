"""The credential store on SQLite and PostgreSQL: pending TTL, single-use state, CAS leases."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from config.errors import AuthError, InvalidInput, NotFound
from store import consent_states
from store.credential_types import (
    ConsentAlreadyCompleted,
    ConsentAlreadyUsed,
    ConsentExpired,
    ConsentRefused,
    ConsentWithdrawn,
    UnknownConsent,
)
from store.credentials import CredentialStatus, CredentialStore, TokenSet
from store.crypto import Cipher
from store.db import make_engine, migrate


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str, encryption_key: str, clock: Clock) -> CredentialStore:
    migrate(db_url)
    migrate(db_url)  # idempotent
    return CredentialStore(
        make_engine(db_url), Cipher(encryption_key), ttl_seconds=600, clock=clock
    )


def tokens(n: int, expires_at: float) -> TokenSet:
    return TokenSet(access_token=f"access-{n}", refresh_token=f"refresh-{n}", expires_at=expires_at)


def test_pending_credential_lists_as_incomplete_then_expires(store, clock):
    pending = store.create_pending("Acme books")
    (view,) = store.list()
    assert view.display_name == "Acme books (Incomplete)"
    assert view.status is CredentialStatus.PENDING
    clock.now += 601
    assert store.list() == []
    with pytest.raises(NotFound):
        store.get(pending.credential_id)
    assert store.sweep_expired() == 1
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from credentials")).scalar() == 0


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_name_is_refused_and_nothing_stored(store, name):
    with pytest.raises(InvalidInput, match="name"):
        store.create_pending(name)
    assert store.list() == []


def test_used_name_is_refused_but_an_expired_pending_name_is_free_again(store, clock):
    store.create_pending("Acme")
    with pytest.raises(InvalidInput, match="already exists"):
        store.create_pending("Acme")
    assert len(store.list()) == 1
    clock.now += 601
    store.create_pending("Acme")
    assert [v.display_name for v in store.list()] == ["Acme (Incomplete)"]


def test_unknown_entity_type_or_destination_refused(store):
    with pytest.raises(InvalidInput, match="entity_type"):
        store.create_pending("A", entity_type="Invoice")
    with pytest.raises(InvalidInput, match="destination"):
        store.create_pending("A", destination="QuickBooks")
    assert store.list() == []


def test_state_is_single_use_and_expires(store, clock):
    pending = store.create_pending("Acme")
    store.attach_flow_run(pending.credential_id, "run-1")
    with pytest.raises(InvalidInput):
        store.claim_state("not-a-state")
    claimed = store.claim_state(pending.state)
    assert claimed.credential_id == pending.credential_id
    assert claimed.flow_run_id == "run-1"
    with pytest.raises(InvalidInput, match="already used"):
        store.claim_state(pending.state)

    late = store.create_pending("Late")
    clock.now += 601
    with pytest.raises(InvalidInput, match="expired"):
        store.claim_state(late.state)


def test_a_state_that_cannot_be_spent_says_why_after_its_credential_is_gone(store, clock):
    """Expired, used, completed, withdrawn or unknown: each its own refusal, also once the
    pending credential (and its state column) is removed, and none changes a row."""
    expired = store.create_pending("Expired")
    clock.now += 601
    with pytest.raises(ConsentExpired) as still_there:
        store.claim_state(expired.state)
    assert still_there.value.expires_at == expired.expires_at
    assert store.sweep_expired() == 1
    with pytest.raises(ConsentExpired) as swept:
        store.claim_state(expired.state)
    assert swept.value.expires_at == pytest.approx(expired.expires_at, abs=0.001)

    used = store.create_pending("Used")
    store.claim_state(used.state)
    with pytest.raises(ConsentAlreadyUsed):
        store.claim_state(used.state)

    completed = store.create_pending("Completed")
    store.claim_state(completed.state)
    store.activate(completed.credential_id, "tenant-1", "Org A", tokens(1, clock.now + 1800))
    with pytest.raises(ConsentAlreadyCompleted) as done:
        store.claim_state(completed.state)
    assert done.value.name == "Completed"

    withdrawn = store.create_pending("Withdrawn")
    store.delete(withdrawn.credential_id)  # the run ended early and removed it
    with pytest.raises(ConsentWithdrawn) as ended:
        store.claim_state(withdrawn.state)
    assert ended.value.expires_at == pytest.approx(withdrawn.expires_at, abs=0.001)
    clock.now += 601  # the same link after its time: expired now
    with pytest.raises(ConsentExpired):
        store.claim_state(withdrawn.state)

    # Not issued by this key: a typo, a forgery (its expiry changed), another project's key.
    forged = bytearray(base64.urlsafe_b64decode(used.state + "="))
    forged[38] ^= 1  # a later expiry
    other_key = CredentialStore(store.engine, Cipher(Fernet.generate_key()), clock=clock)
    foreign = other_key.create_pending("Other key")
    other_key.delete(foreign.credential_id)
    before = rows(store)
    forged_state = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    for state in ["not-a-state", "", "é", forged_state, foreign.state]:
        with pytest.raises(UnknownConsent):
            store.claim_state(state)
    for state in (expired.state, used.state, completed.state, withdrawn.state):
        with pytest.raises(ConsentRefused):
            store.claim_state(state)
    assert rows(store) == before
    assert [v.name for v in store.list()] == ["Completed"]


def rows(store: CredentialStore) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("select * from credentials order by id"))]


def test_a_state_carries_no_secret_and_fits_its_column(store):
    pending = store.create_pending("Acme")
    claims = consent_states.read(store.cipher, pending.state)
    assert claims == consent_states.StateClaims(pending.credential_id, claims.expires_at)
    assert claims.expires_at == pytest.approx(pending.expires_at, abs=0.001)
    assert len(pending.state) <= 128 and pending.code_verifier not in pending.state
    assert store.create_pending("Other").state != pending.state


def test_activate_encrypts_tokens_and_forgets_pending_secrets(store, clock, db_url):
    pending = store.create_pending("Acme")
    assert store.code_verifier(pending.credential_id) == pending.code_verifier
    view = store.activate(pending.credential_id, "tenant-1", "Org A", tokens(1, clock.now + 1800))
    assert view.status is CredentialStatus.ACTIVE
    assert view.display_name == "Acme"
    assert (view.tenant_id, view.tenant_name) == ("tenant-1", "Org A")
    with store.engine.connect() as conn:
        rows = conn.execute(text("select * from credentials")).all()
    dump = " ".join(str(value) for row in rows for value in row)
    assert "access-1" not in dump and "refresh-1" not in dump
    assert pending.code_verifier not in dump and pending.state not in dump
    record = store.read_tokens(pending.credential_id)
    assert record.tokens.access_token.get_secret_value() == "access-1"
    assert "access-1" not in repr(record)


def test_activate_after_expiry_is_refused(store, clock):
    pending = store.create_pending("Acme")
    clock.now += 601
    with pytest.raises(NotFound):
        store.activate(pending.credential_id, "t", "Org", tokens(1, clock.now + 1800))


def test_pending_credential_has_no_tokens_to_give(store):
    pending = store.create_pending("Acme")
    with pytest.raises(AuthError):
        store.read_tokens(pending.credential_id)


def test_refresh_lease_is_compare_and_swap(store, clock):
    pending = store.create_pending("Acme")
    store.activate(pending.credential_id, "t", "Org", tokens(1, clock.now + 10))
    record = store.read_tokens(pending.credential_id)
    won = store.try_lease(pending.credential_id, record.version, 30)
    assert won == record.version + 1
    # A second claimant with the version it read loses, and so does one during the lease.
    assert store.try_lease(pending.credential_id, record.version, 30) is None
    assert store.try_lease(pending.credential_id, won, 30) is None
    assert store.store_refreshed(pending.credential_id, won, tokens(2, clock.now + 1800))
    assert not store.store_refreshed(pending.credential_id, won, tokens(3, clock.now + 1800))
    fresh = store.read_tokens(pending.credential_id)
    assert fresh.tokens.refresh_token.get_secret_value() == "refresh-2"
    assert fresh.lease_until is None


def test_needs_reauth(store, clock):
    pending = store.create_pending("Acme")
    store.activate(pending.credential_id, "t", "Org", tokens(1, clock.now + 10))
    store.mark_needs_reauth(pending.credential_id)
    assert store.get("Acme").status is CredentialStatus.NEEDS_REAUTH


def test_wrong_key_cannot_read_tokens(store, clock, db_url):
    from cryptography.fernet import Fernet

    pending = store.create_pending("Acme")
    store.activate(pending.credential_id, "t", "Org", tokens(1, clock.now + 1800))
    other = CredentialStore(store.engine, Cipher(Fernet.generate_key()), clock=clock)
    with pytest.raises(InvalidInput, match="ENCRYPTION_KEY"):
        other.read_tokens(pending.credential_id)


def test_missing_encryption_key_is_a_clear_error_outside_the_demo(tmp_path):
    from config.settings import Settings
    from store.crypto import cipher_from_settings

    settings = Settings(data_dir=tmp_path, encryption_key=None)
    with pytest.raises(InvalidInput, match="BILLSYNC_ENCRYPTION_KEY.*not set"):
        cipher_from_settings(settings)
    made = cipher_from_settings(settings, create_if_missing=True)  # what the demo does
    assert cipher_from_settings(settings).decrypt_json(made.encrypt_json({"a": 1})) == {"a": 1}
    with pytest.raises(InvalidInput, match="BILLSYNC_ENCRYPTION_KEY"):
        Cipher("not a key")
