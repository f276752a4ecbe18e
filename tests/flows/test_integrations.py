"""Integration flows on the Prefect test server: forms in, details and tables out, refusals that
name the field and store nothing."""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

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
