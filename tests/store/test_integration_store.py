"""The integration store on SQLite and PostgreSQL: validated options, credential rules, status,
and refusals that leave stored data as it was."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from config.errors import InvalidInput, NotFound
from config.integration import IntegrationStatus, SortBy, SplitUsage
from store.credentials import CredentialStore, TokenSet
from store.crypto import Cipher
from store.db import make_engine, migrate
from store.integrations import IntegrationStore

FULL = {
    "name": "UK customers",
    "account_ids": ["acc-1", "acc-2"],
    "restricted_account_ids": ["acc-9"],
    "notification_users": ["ops@example.com"],
    "only_send_bill_on_approval": True,
    "use_external_mapping_account_code": True,
    "excluded_line_item_types": ["MINIMUM_SPEND"],
    "account_filter": "address.country = = UK AND customFields.tier > 2",
    "enforce_external_mappings_for_config": True,
    "excluded_products": ["prod-1"],
    "excluded_aggregations": ["agg-1"],
    "split_usage_line_items": "ITEM_PER_PRODUCT",
    "sort_line_items_by": "SUBTOTAL",
}


@pytest.fixture
def engine(db_url):
    migrate(db_url)
    return make_engine(db_url)


@pytest.fixture
def store(engine) -> IntegrationStore:
    return IntegrationStore(engine)


@pytest.fixture
def creds(engine, encryption_key) -> CredentialStore:
    return CredentialStore(engine, Cipher(encryption_key))


def active_credential(creds: CredentialStore, name: str) -> str:
    pending = creds.create_pending(name)
    creds.activate(
        pending.credential_id,
        "tenant",
        "Org",
        TokenSet(access_token="a", refresh_token="r", expires_at=9e9),
    )
    return pending.credential_id


def snapshot(engine) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("select * from integrations order by id"))]


def test_every_option_round_trips_and_starts_not_connected(store):
    view = store.create(FULL)
    assert view.status is IntegrationStatus.NOT_CONNECTED
    assert "Not connected" in view.status_detail
    again = store.get(view.id)
    assert again.config.split_usage_line_items is SplitUsage.ITEM_PER_PRODUCT
    assert again.config.sort_line_items_by is SortBy.SUBTOTAL
    assert again.config.account_filter == FULL["account_filter"]
    assert again.config.only_send_bill_on_approval is True
    assert store.get("UK customers").id == view.id
    assert [v.name for v in store.list()] == ["UK customers"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"excluded_line_item_types": ["NOT_A_TYPE"]}, "excluded_line_item_types"),
        ({"restricted_account_ids": ["acc-1"]}, "restricted_account_ids"),
        ({"notification_users": ["not-an-email"]}, "notification_users"),
        ({"account_filter": "address.country == "}, "account_filter"),
        ({"name": "   "}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(store, engine, change, field):
    view = store.create(FULL)
    before = snapshot(engine)
    with pytest.raises(InvalidInput) as refused:
        store.update(view.id, change)
    assert refused.value.field == field
    assert snapshot(engine) == before
    with pytest.raises(InvalidInput) as refused_new:
        store.create({**FULL, "name": "Other", **change})
    assert refused_new.value.field == field
    assert snapshot(engine) == before


def test_filter_error_carries_its_position(store):
    with pytest.raises(InvalidInput, match="position"):
        store.create({**FULL, "account_filter": "address.country == UK AND"})


def test_name_unique_per_destination_and_entity(store, engine):
    store.create(FULL)
    before = snapshot(engine)
    with pytest.raises(InvalidInput, match="already exists") as refused:
        store.create(FULL)
    assert refused.value.field == "name"
    assert snapshot(engine) == before


def test_connect_rules(store, creds, engine):
    view = store.create(FULL)
    pending = creds.create_pending("Half done")
    with pytest.raises(InvalidInput, match="not completed consent"):
        store.connect(view.id, pending.credential_id)
    stale = active_credential(creds, "Stale")
    creds.mark_needs_reauth(stale)
    with pytest.raises(InvalidInput, match="reconnected"):
        store.connect(view.id, "Stale")
    other = active_credential(creds, "Elsewhere")
    with engine.begin() as conn:
        conn.execute(
            text("update credentials set destination = 'QuickBooks' where id = :id"), {"id": other}
        )
    with pytest.raises(InvalidInput, match="QuickBooks"):
        store.connect(view.id, other)
    with pytest.raises(InvalidInput, match="no credential"):
        store.connect(view.id, "missing")
    assert store.get(view.id).status is IntegrationStatus.NOT_CONNECTED

    good = active_credential(creds, "Good")
    connected = store.connect(view.id, "Good")
    assert connected.status is IntegrationStatus.CONNECTED
    assert connected.credential_id == good
    assert "Good" in connected.status_detail
    better = active_credential(creds, "Better")
    assert store.connect(view.id, better).credential_name == "Better"
    assert store.disconnect(view.id).status is IntegrationStatus.NOT_CONNECTED


def test_disable_says_why_and_when_and_enable_restores(store, creds):
    view = store.create(FULL)
    store.connect(view.id, active_credential(creds, "Good"))
    disabled = store.disable(view.id, "Xero refused the credential")
    assert disabled.status is IntegrationStatus.DISABLED
    assert disabled.disabled_at is not None
    assert "Xero refused the credential" in disabled.status_detail
    assert "UTC" in disabled.status_detail
    assert store.enable(view.id).status is IntegrationStatus.CONNECTED


def test_deleting_the_credential_leaves_the_integration_not_connected(store, creds):
    view = store.create(FULL)
    credential_id = active_credential(creds, "Good")
    store.connect(view.id, credential_id)
    creds.delete(credential_id)
    assert store.get(view.id).status is IntegrationStatus.NOT_CONNECTED


def test_failures_in_a_row_count_and_reset(store):
    view = store.create(FULL)
    assert store.record_run(view.id, failed=True) == 1
    assert store.record_run(view.id, failed=True) == 2
    assert store.record_run(view.id, failed=False) == 0


def test_delete(store):
    view = store.create(FULL)
    store.delete(view.id)
    with pytest.raises(NotFound):
        store.get(view.id)
