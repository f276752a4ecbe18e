"""The integration store on SQLite and PostgreSQL: validated options, credential rules, status,
and refusals that leave stored data as it was."""

from __future__ import annotations

import threading

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


def active_credential(creds: CredentialStore, name: str, tenant: str = "tenant") -> str:
    pending = creds.create_pending(name)
    creds.activate(
        pending.credential_id,
        tenant,
        f"Org {tenant}",
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


# -- two integrations on one Xero organisation must not share accounts ----------------------
def refused_overlap(call, engine, *, field: str, other: str, shared: str) -> InvalidInput:
    before = snapshot(engine)
    with pytest.raises(InvalidInput) as refused:
        call()
    assert refused.value.field == field
    message = str(refused.value)
    assert message.startswith(f"{field}: ") and "\n" not in message
    assert f"integration {other!r}" in message and f"shared: {shared})" in message
    assert snapshot(engine) == before
    return refused.value


def test_connect_refuses_a_second_integration_on_the_same_accounts_of_one_org(
    store, creds, engine
):
    everything = store.create({"name": "Everything"})
    store.connect(everything.id, active_credential(creds, "Books", tenant="T1"))
    same_org = active_credential(creds, "Books again", tenant="T1")
    other_org = active_credential(creds, "Other books", tenant="T2")

    twin = store.create({"name": "Twin"})
    refused_overlap(
        lambda: store.connect(twin.id, same_org),
        engine, field="credential", other="Everything", shared="all accounts",
    )
    assert store.get(twin.id).status is IntegrationStatus.NOT_CONNECTED
    # Another organisation has its own invoice numbers: no collision.
    assert store.connect(twin.id, other_org).status is IntegrationStatus.CONNECTED
    # change_credential goes through connect too.
    refused_overlap(
        lambda: store.connect(twin.id, "Books again"),
        engine, field="credential", other="Everything", shared="all accounts",
    )
    assert store.get(twin.id).credential_name == "Other books"

    listed = store.create({"name": "Listed", "account_ids": ["acc-1", "acc-2"]})
    refused_overlap(
        lambda: store.connect(listed.id, same_org),
        engine, field="credential", other="Everything", shared="acc-1, acc-2",
    )


def test_all_but_restricted_meets_a_list_only_outside_the_restricted_ones(store, creds, engine):
    most = store.create({"name": "Most", "restricted_account_ids": ["acc-1", "acc-2"]})
    store.connect(most.id, active_credential(creds, "Books", tenant="T1"))
    same_org = active_credential(creds, "Books again", tenant="T1")
    apart = store.create({"name": "Apart", "account_ids": ["acc-1", "acc-2"]})
    assert store.connect(apart.id, same_org).status is IntegrationStatus.CONNECTED

    third = store.create({"name": "Third", "account_ids": ["acc-2", "acc-3"]})
    refused_overlap(
        lambda: store.connect(third.id, same_org),
        engine, field="credential", other="Most", shared="acc-3",
    )
    also_most = store.create({"name": "Also most", "restricted_account_ids": ["acc-3"]})
    refused_overlap(
        lambda: store.connect(also_most.id, same_org),
        engine, field="credential", other="Most", shared="all accounts except acc-1, acc-2, acc-3",
    )


def test_two_lists_meet_on_their_intersection_and_a_long_one_is_cut_at_ten(store, creds, engine):
    ids = [f"acc-{n:02}" for n in range(30)]
    first = store.create({"name": "First", "account_ids": ids[:20]})
    store.connect(first.id, active_credential(creds, "Books", tenant="T1"))
    same_org = active_credential(creds, "Books again", tenant="T1")
    second = store.create({"name": "Second", "account_ids": ids[5:30]})
    error = refused_overlap(
        lambda: store.connect(second.id, same_org),
        engine, field="credential", other="First",
        shared=", ".join(ids[5:15]) + " and 5 more",
    )
    assert ids[15] not in str(error)
    disjoint = store.update(second.id, {"account_ids": ids[20:30]})
    assert store.connect(disjoint.id, same_org).status is IntegrationStatus.CONNECTED


def test_create_with_a_credential_is_one_transaction(store, creds, engine):
    first = store.create({"name": "First"}, credential=active_credential(creds, "A", tenant="T1"))
    assert first.status is IntegrationStatus.CONNECTED
    same_org = active_credential(creds, "B", tenant="T1")
    refused_overlap(
        lambda: store.create({"name": "Second"}, credential=same_org),
        engine, field="credential", other="First", shared="all accounts",
    )
    with pytest.raises(InvalidInput, match="no credential"):
        store.create({"name": "Third"}, credential="missing")
    assert [v.name for v in store.list()] == ["First"]


def test_new_account_lists_of_a_connected_integration_are_checked(store, creds, engine):
    north = store.create({"name": "North", "account_ids": ["acc-1", "acc-2"]})
    store.connect(north.id, active_credential(creds, "Books", tenant="T1"))
    south = store.create({"name": "South", "account_ids": ["acc-3"]})
    store.connect(south.id, active_credential(creds, "Books again", tenant="T1"))

    refused_overlap(
        lambda: store.update(south.id, {"account_ids": ["acc-2", "acc-3"]}),
        engine, field="account_ids", other="North", shared="acc-2",
    )
    refused_overlap(
        lambda: store.update(south.id, {"account_ids": []}),
        engine, field="account_ids", other="North", shared="acc-1, acc-2",
    )
    # All but North's accounts: apart; then lifting a restriction makes them meet.
    apart = store.update(
        south.id, {"account_ids": [], "restricted_account_ids": ["acc-1", "acc-2"]}
    )
    assert apart.config.account_ids == []
    refused_overlap(
        lambda: store.update(south.id, {"restricted_account_ids": ["acc-1"]}),
        engine, field="restricted_account_ids", other="North", shared="acc-2",
    )
    # Other options and unconnected integrations are not checked against anyone.
    assert store.update(south.id, {"sort_line_items_by": "SUBTOTAL"}).config.sort_line_items_by
    loose = store.create({"name": "Loose"})
    assert store.update(loose.id, {"account_ids": ["acc-1"]}).config.account_ids == ["acc-1"]


def test_a_disabled_integration_still_holds_its_accounts(store, creds, engine):
    held = store.create({"name": "Held"})
    store.connect(held.id, active_credential(creds, "Books", tenant="T1"))
    store.disable(held.id, "maintenance")
    newcomer = store.create({"name": "Newcomer"})
    refused_overlap(
        lambda: store.connect(newcomer.id, active_credential(creds, "Again", tenant="T1")),
        engine, field="credential", other="Held", shared="all accounts",
    )


def test_enable_refuses_an_overlap_stored_before_the_rule(store, creds, engine):
    old = store.create({"name": "Old"})
    store.connect(old.id, active_credential(creds, "Books", tenant="T1"))
    legacy = store.create({"name": "Legacy"})
    store.disable(legacy.id, "paused")
    with engine.begin() as conn:  # as an older version could have stored it
        conn.execute(
            text("update integrations set credential_id = :c where id = :i"),
            {"c": active_credential(creds, "Again", tenant="T1"), "i": legacy.id},
        )
    refused_overlap(
        lambda: store.enable(legacy.id),
        engine, field="integration", other="Old", shared="all accounts",
    )
    assert store.get(legacy.id).status is IntegrationStatus.DISABLED
    store.disconnect(old.id)
    assert store.enable(legacy.id).status is IntegrationStatus.CONNECTED


def test_concurrent_connects_to_one_org_let_exactly_one_through(store, creds):
    views = [store.create({"name": f"Racer {n}"}) for n in range(6)]
    credentials = [active_credential(creds, f"C{n}", tenant="T1") for n in range(6)]
    start = threading.Barrier(len(views))
    outcomes: list[str] = []

    def race(view, credential) -> None:
        start.wait()
        try:
            store.connect(view.id, credential)
            outcomes.append("connected")
        except InvalidInput:
            outcomes.append("refused")

    pairs = zip(views, credentials, strict=True)
    threads = [threading.Thread(target=race, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["connected"] + ["refused"] * 5
    connected = [v for v in store.list() if v.status is IntegrationStatus.CONNECTED]
    assert len(connected) == 1
