"""Integration flows: create, update, list, delete, enable/disable, and (dis)connect credentials.

Each flow's parameters render as a form in the Prefect UI; each docstring's first line and
``Args:`` are the form's description and help. A refusal (bad option, unknown integration or
credential, accounts that another integration on the same Xero organisation already sends)
ends the run Failed at once with one line naming the field, ``field: what is wrong``, and
leaves stored data as it was (validation happens before any write).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import State

from config.errors import AuthError, InvalidInput, NotFound, TransientError
from config.integration import IntegrationConfig, validate_config
from config.settings import get_settings
from flows.run_names import create_run_name
from store.credentials import CredentialStatus
from store.factory import credential_store, integration_store
from store.integrations import IntegrationStore, IntegrationView
from tasks.prefect_engine import expected_failure
from tasks.sync.organisation import check_with_organisation, coded, coding_changed


def integrations() -> IntegrationStore:
    """The integration store from the process's settings."""
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


def _refused(exc: InvalidInput | NotFound, field: str) -> State:
    """The run ends Failed with one line naming the field (``RunFailed``: no traceback)."""
    line = str(exc) if isinstance(exc, InvalidInput) and exc.field else f"{field}: {exc}"
    get_run_logger().error("refused: %s", line)
    return expected_failure(line)


def _options(config: Any) -> IntegrationConfig:
    """The form's options, checked here: Prefect does not validate them first (a pydantic dump
    in the run's state is no answer to a person), so a refusal is one line naming the field."""
    if isinstance(config, IntegrationConfig):
        config = config.model_dump(mode="json")
    try:
        return validate_config(config)
    except InvalidInput as exc:
        if exc.field is None:
            raise InvalidInput(str(exc), field="config") from None
        raise


def _check_coding(config: IntegrationConfig, credential: str | None) -> None:
    """Refuse account codes, a tax type or tracking the credential's Xero organisation cannot
    take (``tasks.sync.organisation``), before anything is stored. A credential that does not
    exist or is not ACTIVE is left for the store to refuse in its own words."""
    if not credential or not coded(config):
        return
    try:
        view = credential_store(get_settings()).get(credential)
    except NotFound:
        return
    if view.status is not CredentialStatus.ACTIVE:
        return
    try:
        check_with_organisation(config, view)
    except (TransientError, AuthError) as exc:
        raise InvalidInput(
            f"could not check the Xero coding with {view.name!r}: {exc}", field="credential"
        ) from None


@flow(name="create_integration", flow_run_name=create_run_name, validate_parameters=False)
def create_integration(config: IntegrationConfig, credential: str = "") -> dict | State:
    """Create an integration from every console option; optionally connect a credential.

    Args:
        config: the integration's options: name, accounts, who is told of failures, which
            bills and lines are sent, and how the Xero document is laid out.
        credential: name or id of an ACTIVE Xero credential to connect now; empty: connect
            one later with connect_credential.
    """
    chosen = (credential or "").strip() or None
    try:
        options = _options(config)
        _check_coding(options, chosen)
        view = integrations().create(options, credential=chosen)
    except InvalidInput as exc:
        return _refused(exc, "config")
    return _report(view, "created")


@flow(name="update_integration", flow_run_name="update {integration}", validate_parameters=False)
def update_integration(integration: str, changes: dict[str, Any]) -> dict | State:
    """Change some options of an integration; the others keep their values.

    Args:
        integration: name or id of the integration.
        changes: option name → new value, e.g. {"sort_line_items_by": "SUBTOTAL",
            "account_ids": ["acc-1"]}; the names are those of create_integration's options.
    """
    try:
        current, config = integrations().merged(integration, changes)
        if current.credential_id and coding_changed(current.config, config):
            _check_coding(config, current.credential_id)
        view = integrations().update(integration, changes)
    except InvalidInput as exc:
        return _refused(exc, "changes")
    except NotFound as exc:
        return _refused(exc, "integration")
    return _report(view, "updated")


@flow(name="list_integrations", flow_run_name="list integrations")
def list_integrations() -> list[dict[str, Any]]:
    """List every integration as a table artifact: name, id, status and credential."""
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


@flow(name="delete_integration", flow_run_name="delete integration {integration}")
def delete_integration(integration: str) -> str | State:
    """Delete an integration; what it already sent to Xero stays there.

    Args:
        integration: name or id of the integration.
    """
    try:
        view = integrations().delete(integration)
    except NotFound as exc:
        return _refused(exc, "integration")
    get_run_logger().info("deleted integration %r (%s)", view.name, view.id)
    return view.id


@flow(name="enable_integration", flow_run_name="enable {integration}")
def enable_integration(integration: str) -> dict | State:
    """Enable a disabled integration: the next sync sends its bills again.

    Args:
        integration: name or id of the integration.
    """
    try:
        return _report(integrations().enable(integration), "enabled")
    except (InvalidInput, NotFound) as exc:
        return _refused(exc, "integration")


@flow(name="disable_integration", flow_run_name="disable {integration}")
def disable_integration(integration: str, reason: str = "disabled by a person") -> dict | State:
    """Disable an integration: syncs skip it until it is enabled again.

    Args:
        integration: name or id of the integration.
        reason: why, shown with its status.
    """
    try:
        return _report(integrations().disable(integration, reason), "disabled")
    except NotFound as exc:
        return _refused(exc, "integration")


@flow(name="connect_credential", flow_run_name="connect {integration} to {credential}")
def connect_credential(integration: str, credential: str) -> dict | State:
    """Connect an ACTIVE Xero credential to an integration.

    Args:
        integration: name or id of the integration.
        credential: name or id of an ACTIVE Xero credential (see list_credentials).
    """
    return _connect(integration, credential, "connected")


@flow(name="change_credential", flow_run_name="change credential of {integration} to {credential}")
def change_credential(integration: str, credential: str) -> dict | State:
    """Replace the credential an integration sends with.

    Args:
        integration: name or id of the integration.
        credential: name or id of the ACTIVE Xero credential to send with from now on.
    """
    return _connect(integration, credential, "changed credential of")


def _connect(integration: str, credential: str, action: str) -> dict | State:
    try:
        _check_coding(integrations().get(integration).config, credential)
        return _report(integrations().connect(integration, credential), action)
    except InvalidInput as exc:
        return _refused(exc, "credential")
    except NotFound as exc:
        return _refused(exc, "integration")


@flow(name="disconnect_credential", flow_run_name="disconnect {integration}")
def disconnect_credential(integration: str) -> dict | State:
    """Disconnect an integration's credential: syncs skip it until one is connected.

    Args:
        integration: name or id of the integration.
    """
    try:
        return _report(integrations().disconnect(integration), "disconnected")
    except NotFound as exc:
        return _refused(exc, "integration")
