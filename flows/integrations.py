"""Integration flows: create, update, list, delete, enable/disable, and (dis)connect credentials.

Each flow's parameters render as a form in the Prefect UI. Every refusal names the field and
leaves stored data as it was (validation happens before any write).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from config.integration import IntegrationConfig
from config.settings import get_settings
from store.factory import integration_store
from store.integrations import IntegrationStore, IntegrationView
from tasks.prefect_engine import prompt_flow_exit, quiet_expected_failures

prompt_flow_exit()  # a flow run returns when it is over (tasks.prefect_engine)
quiet_expected_failures()  # an expected Failed end logs no traceback


def integrations() -> IntegrationStore:
    return integration_store(get_settings())


def details_markdown(view: IntegrationView) -> str:
    """Every option of an integration, as a person reads it on the run page."""
    lines = [
        f"## Integration {view.name}",
        "",
        "| option | value |",
        "|---|---|",
        f"| id | `{view.id}` |",
        f"| status | **{view.status.value}**: {view.status_detail} |",
    ]
    for field, value in view.config.model_dump(mode="json").items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        lines.append(f"| {field} | {'' if shown in (None, '') else shown} |")
    return "\n".join(lines) + "\n"


def _report(view: IntegrationView, action: str) -> dict[str, Any]:
    create_markdown_artifact(markdown=details_markdown(view), description=f"{action} {view.name}")
    get_run_logger().info("%s integration %r (%s): %s", action, view.name, view.id, view.status)
    return view.model_dump(mode="json")


@flow(name="create_integration")
def create_integration(config: IntegrationConfig, credential: str | None = None) -> dict:
    """Create an integration from every console option; optionally connect a credential.

    Args:
        config: the integration's options (name, accounts, entity and Xero options).
        credential: name or id of an ACTIVE Xero credential to connect now (optional).
    """
    store = integrations()
    view = store.create(config)
    if credential:
        try:
            view = store.connect(view.id, credential)
        except Exception:
            store.delete(view.id)  # all or nothing: a refused credential stores nothing
            raise
    return _report(view, "created")


@flow(name="update_integration")
def update_integration(integration: str, changes: dict[str, Any]) -> dict:
    """Change options of an integration (name or id): ``changes`` maps option → new value."""
    return _report(integrations().update(integration, changes), "updated")


@flow(name="list_integrations")
def list_integrations() -> list[dict[str, Any]]:
    """All integrations as a table artifact: name, id, status and credential."""
    rows = [
        {
            "name": v.name,
            "id": v.id,
            "status": v.status.value,
            "detail": v.status_detail,
            "credential": v.credential_name or "",
            "only_send_bill_on_approval": v.config.only_send_bill_on_approval,
        }
        for v in integrations().list()
    ]
    create_table_artifact(table=rows, key="integrations", description="Integrations")
    get_run_logger().info("%d integration(s)", len(rows))
    return rows


@flow(name="delete_integration")
def delete_integration(integration: str) -> str:
    view = integrations().delete(integration)
    get_run_logger().info("deleted integration %r (%s)", view.name, view.id)
    return view.id


@flow(name="enable_integration")
def enable_integration(integration: str) -> dict:
    return _report(integrations().enable(integration), "enabled")


@flow(name="disable_integration")
def disable_integration(integration: str, reason: str = "disabled by a person") -> dict:
    return _report(integrations().disable(integration, reason), "disabled")


@flow(name="connect_credential")
def connect_credential(integration: str, credential: str) -> dict:
    """Connect an ACTIVE Xero credential (name or id) to an integration."""
    return _report(integrations().connect(integration, credential), "connected")


@flow(name="change_credential")
def change_credential(integration: str, credential: str) -> dict:
    """Replace the credential an integration sends with."""
    return _report(integrations().connect(integration, credential), "changed credential of")


@flow(name="disconnect_credential")
def disconnect_credential(integration: str) -> dict:
    return _report(integrations().disconnect(integration), "disconnected")
