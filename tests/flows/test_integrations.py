"""Integration flows on the Prefect test server: forms in, details and tables out, refusals that
name the field and store nothing."""

from __future__ import annotations

import time
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from config.errors import RunFailed
from flows.integrations import (
    change_credential,
    connect_credential,
    create_integration,
    delete_integration,
    disable_integration,
    disconnect_credential,
    enable_integration,
    list_integrations,
    update_integration,
)
from store.credentials import TokenSet
from tasks.xero.credentials import credentials


def artifacts_of(state) -> list[str]:
    run_id = UUID(str(state.state_details.flow_run_id))
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return [str(a.data) for a in found]


def run_seconds(state) -> float:
    """How long the flow run took, start to end, as the Prefect API recorded it."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(str(state.state_details.flow_run_id)))
    assert run.start_time is not None and run.end_time is not None
    return (run.end_time - run.start_time).total_seconds()


def active(name: str) -> str:
    store = credentials()
    pending = store.create_pending(name)
    store.activate(
        pending.credential_id,
        "tenant-x",
        "Org X",
        TokenSet(access_token="a", refresh_token="r", expires_at=9e9),
    )
    return pending.credential_id


def test_lifecycle_through_flows(app_env):
    active("Books")
    state = create_integration(
        {"name": "EU", "excluded_line_item_types": ["AD_HOC"], "account_filter": "currency == EUR"},
        credential="Books",
        return_state=True,
    )
    assert state.is_completed(), state
    details = state.result()
    assert details["status"] == "CONNECTED"
    (markdown,) = artifacts_of(state)
    assert details["id"] in markdown and "CONNECTED" in markdown and "currency == EUR" in markdown

    listed = list_integrations(return_state=True)
    assert [r["name"] for r in listed.result()] == ["EU"]
    table = artifacts_of(listed)[0]
    assert "EU" in table and "CONNECTED" in table

    assert (
        update_integration("EU", {"sort_line_items_by": "SUBTOTAL"})["config"]["sort_line_items_by"]
        == "SUBTOTAL"
    )
    disabled = disable_integration("EU", reason="maintenance")
    assert disabled["status"] == "DISABLED" and "maintenance" in disabled["status_detail"]
    assert enable_integration("EU")["status"] == "CONNECTED"
    active("Other books")
    assert change_credential("EU", "Other books")["credential_name"] == "Other books"
    assert disconnect_credential("EU")["status"] == "NOT_CONNECTED"
    assert connect_credential("EU", "Books")["status"] == "CONNECTED"
    delete_integration("EU")
    assert list_integrations() == []


def test_bad_input_fails_the_run_naming_the_field_and_stores_nothing(app_env):
    state = create_integration({"name": "Bad", "notification_users": ["nobody"]}, return_state=True)
    assert state.is_failed()
    assert "notification_users" in state.message
    assert list_integrations() == []

    pending = credentials().create_pending("Half")
    state = create_integration(
        {"name": "Half"}, credential=pending.credential_id, return_state=True
    )
    assert state.is_failed() and "credential" in state.message
    assert list_integrations() == []


# -- refusals: one line naming the field, at once, nothing stored ----------------------------
def stored() -> list[dict]:
    from flows.integrations import integrations

    return [v.model_dump(mode="json", exclude={"updated_at"}) for v in integrations().list()]


def assert_refused(state, field: str, *fragments: str) -> str:
    """A Failed run whose message is one readable line that starts with the field."""
    assert state.is_failed(), state
    message = state.message or ""
    assert message.startswith(f"{field}: "), message
    assert "\n" not in message and "validation error" not in message.lower(), message
    for fragment in fragments:
        assert fragment in message, message
    ended = state.result(raise_on_failure=False)
    assert isinstance(ended, RunFailed) and str(ended) == message
    return message


@pytest.mark.parametrize(
    ("config", "field", "fragment"),
    [
        ({"name": "Bad", "account_filter": "country =="}, "account_filter", "position"),
        ({"name": "Bad", "account_filter": "address.country == UK AND"}, "account_filter", "AND"),
        ({"name": "Bad", "notification_users": ["ops@example.com", "ops"]}, "notification_users",
         "not an e-mail address: ops"),
        ({"name": "Bad", "account_ids": ["a"], "restricted_account_ids": ["a"]},
         "restricted_account_ids", "both allowed and restricted: a"),
        ({"name": "Bad", "excluded_line_item_types": ["TAX"]}, "excluded_line_item_types", "TAX"),
        ({"name": "Bad", "split_usage_line_items": "PER_LINE"}, "split_usage_line_items", ""),
        ({"name": "Bad", "colour": "red"}, "colour", "Extra inputs"),
        ({"name": "  "}, "name", "a name is required"),
        ({}, "name", "required"),
        ("not options", "config", "mapping"),
    ],
)
def test_bad_options_fail_the_run_at_once_with_one_line(app_env, config, field, fragment):
    started = time.perf_counter()
    state = create_integration(config=config, return_state=True)
    elapsed = time.perf_counter() - started
    assert_refused(state, field, fragment)
    assert run_seconds(state) < 2  # refused first thing: the run itself ends at once
    assert elapsed < 5, elapsed  # the call, API round trips included (slack for a busy machine)
    assert stored() == []


def test_unknown_names_and_bad_changes_fail_with_one_line_and_change_nothing(app_env):
    active("Books")
    create_integration({"name": "EU", "account_ids": ["a1"]}, credential="Books")
    before = stored()

    for run in (
        lambda: update_integration("Nope", {"sort_line_items_by": "SUBTOTAL"}, return_state=True),
        lambda: delete_integration("Nope", return_state=True),
        lambda: enable_integration("Nope", return_state=True),
        lambda: disable_integration("Nope", return_state=True),
        lambda: connect_credential("Nope", "Books", return_state=True),
        lambda: change_credential("Nope", "Books", return_state=True),
        lambda: disconnect_credential("Nope", return_state=True),
    ):
        assert_refused(run(), "integration", "no integration 'Nope'")
    assert_refused(connect_credential("EU", "Nobody", return_state=True), "credential", "Nobody")
    assert_refused(
        update_integration("EU", {"account_filter": "address.country =="}, return_state=True),
        "account_filter",
        "position",
    )
    assert_refused(update_integration("EU", {"colour": "red"}, return_state=True), "colour")
    assert_refused(update_integration("EU", ["colour"], return_state=True), "changes")
    assert stored() == before


def test_a_second_integration_on_the_same_accounts_of_an_org_is_refused(app_env):
    active("Books")
    active("Books again")  # the same organisation (tenant-x)
    create_integration({"name": "All", "restricted_account_ids": ["a9"]}, credential="Books")
    before = stored()
    state = create_integration(
        {"name": "Some", "account_ids": ["a1", "a9"]}, credential="Books again", return_state=True
    )
    assert_refused(state, "credential", "integration 'All'", "shared: a1)")
    assert stored() == before

    create_integration({"name": "Apart", "account_ids": ["a9"]}, credential="Books again")
    before = stored()
    assert_refused(
        update_integration("Apart", {"account_ids": ["a9", "a2"]}, return_state=True),
        "account_ids",
        "integration 'All'",
        "shared: a2)",
    )
    create_integration({"name": "Loose"})
    before = stored()
    assert_refused(
        connect_credential("Loose", "Books", return_state=True),
        "credential",
        "integration 'All'",
        "shared: all accounts except a9)",
    )
    assert stored() == before
