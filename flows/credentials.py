"""Credential flows: provision a Xero credential by consent, list, delete and revoke them.

``provision_xero_credential`` pauses for up to the credential TTL (ten minutes by default) while
a person follows the "Go to Xero" link; the ``web`` callback resumes it with the authorisation
code. A run that times out removes its pending credential before it fails.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.states import State
from pydantic import ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from config.errors import AuthError, InvalidInput, NotFound
from store.credential_types import CredentialView
from tasks.pause import pause_for_input
from tasks.prefect_engine import expected_failure
from tasks.xero.credentials import credentials, xero_oauth
from tasks.xero.provisioning import activate_credential, exchange_code

EntityType = Literal["Bill"]
Destination = Literal["Xero"]
PAUSE_POLL_SECONDS = 1


class XeroConsent(RunInput):
    """What the consent callback hands the paused run: the code, or Xero's error."""

    # The form shows ``state`` alone; the callback's ``code``/``error`` must still pass the
    # server's check of the input against the form's schema.
    model_config = ConfigDict(extra="ignore")

    state: str = Field(
        title="Nothing to fill in: open the Go to Xero link in this run's logs",
        description="This run waits for Xero. Follow the Go to Xero link at the top of the "
        "logs, log in and allow access: the run then continues by itself. A Resume from this "
        "form is refused and the run keeps waiting.",
    )
    code: SkipJsonSchema[str | None] = None
    error: SkipJsonSchema[str | None] = None


def organisation_form(names: list[str]) -> type[RunInput]:
    """A form (dropdown) to pick one of the organisations the person connected."""
    choice = Literal[tuple(names)]  # type: ignore[valid-type]
    return create_model(
        "ChooseXeroOrganisation",
        __base__=RunInput,
        __doc__="Several Xero organisations were connected: choose the one to use.",
        organisation=(
            choice,
            Field(title="Xero organisation", description="the organisation bills are sent to"),
        ),
    )


def _remaining(expires_at: float) -> int:
    """Whole seconds until the link expires, rounded up: the run gives up (and removes the
    pending credential) only once the link has really expired, never a moment before."""
    return max(1, math.ceil(expires_at - time.time()))


def _clock(timestamp: float) -> str:
    """A time a person reads on the run page: ``10:42 UTC``."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%H:%M UTC")


def _link_markdown(name: str, url: str, expires_at: float) -> str:
    """The link first, then what it is for: the artifact's first line is what a person needs."""
    return (
        f"[Go to Xero]({url}) — open it before **{_clock(expires_at)}** to connect credential "
        f"**{name}**.\n\n"
        "Log in to Xero, allow access and pick the organisation. If you connect several "
        "organisations, this run then asks which one to use: press Resume on this page. "
        f"After {_clock(expires_at)} the link no longer works, the pending credential is "
        "removed and this run fails: run provision_xero_credential again for a new link."
    )


def _wait_for_consent(pending: Any, url: str) -> XeroConsent:
    """Wait for the callback's resume; a Resume by hand (wrong or no state) waits again."""
    logger = get_run_logger()
    attempt = 1
    while True:
        consent = pause_for_input(
            XeroConsent,
            timeout=_remaining(pending.expires_at),
            key=f"consent-{attempt}",
            message=f"Waiting for Xero consent until {_clock(pending.expires_at)}: "
            f"follow the Go to Xero link: {url}",
            poll_interval=PAUSE_POLL_SECONDS,
        )
        if consent.state == pending.state:
            return consent
        attempt += 1
        logger.warning(
            "this run was resumed by hand, which cannot give Xero's consent: follow the "
            "Go to Xero link (until %s); still waiting",
            _clock(pending.expires_at),
        )


def _choose_organisation(pending: Any, connections: list[dict[str, Any]]) -> dict[str, Any]:
    names = [c["tenantName"] for c in connections]
    get_run_logger().warning(
        "%d organisations connected (%s): press Resume on this run's page and choose one before %s",
        len(names),
        ", ".join(names),
        _clock(pending.expires_at),
    )
    choice = pause_for_input(
        organisation_form(names),
        timeout=_remaining(pending.expires_at),
        key="organisation",
        message=f"Choose the Xero organisation: press Resume before {_clock(pending.expires_at)}",
        poll_interval=PAUSE_POLL_SECONDS,
    )
    return next(c for c in connections if c["tenantName"] == choice.organisation)


def _not_completed(name: str, pending: Any, why: str) -> State:
    """Remove the pending credential; the run ends Failed with one line saying what next."""
    credentials().delete(pending.credential_id)
    message = (
        f"{why}: pending credential {name!r} removed. "
        "Run provision_xero_credential again for a new link."
    )
    get_run_logger().error(message)
    return expected_failure(message)


@flow(name="provision_xero_credential", flow_run_name="provision {name}")
def provision_xero_credential(
    name: str, entity_type: EntityType = "Bill", destination: Destination = "Xero"
) -> Any:
    """Create a Xero credential: follow the "Go to Xero" link, consent, pick the organisation.

    The run pauses until you allow access at Xero (the link is at the top of the run, valid
    for ten minutes). With several organisations it pauses once more: press Resume and
    choose one.

    Args:
        name: how the credential is listed; unique per destination and entity type.
        entity_type: what the credential sends (Bill).
        destination: where it sends it (Xero).

    Returns:
        The credential's details (id, name, status, tenant); never a token.
    """
    logger = get_run_logger()
    store = credentials()
    try:  # first, so that a refused name fails the run at once with one line
        pending = store.create_pending(name, entity_type, destination)
    except InvalidInput as exc:
        return _refused(exc)
    logger.info("created pending credential %r (%s)", name, pending.credential_id)
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        store.attach_flow_run(pending.credential_id, str(context.flow_run.id))
    url = xero_oauth().authorization_url(pending.state, pending.code_verifier)
    logger.info(
        "Go to Xero to connect credential %r before %s: %s", name, _clock(pending.expires_at), url
    )
    create_markdown_artifact(
        markdown=_link_markdown(name, url, pending.expires_at),
        key="go-to-xero",
        description=f"Go to Xero: connect credential {name}",
    )
    try:
        consent = _wait_for_consent(pending, url)
        if consent.error or not consent.code:
            return _not_completed(
                name, pending, f"Xero consent was not given ({consent.error or 'no code'})"
            )
        tokens, connections = exchange_code(pending.credential_id, consent.code)
        if not connections:
            return _not_completed(name, pending, "Xero consent connected no organisation")
        connection = connections[0]
        if len(connections) > 1:
            connection = _choose_organisation(pending, connections)
        details = activate_credential(pending.credential_id, connection, tokens)
    except FlowPauseTimeout:
        return _not_completed(
            name, pending, f"The Go to Xero link expired at {_clock(pending.expires_at)}"
        )
    except AuthError as exc:
        return _not_completed(name, pending, f"Xero refused the consent ({exc})")
    except BaseException:
        store.delete(pending.credential_id)
        logger.error("credential %r was not completed and has been removed", name)
        raise
    create_markdown_artifact(
        markdown=_credential_markdown(details),
        description=f"Xero credential {name}",
    )
    logger.info("credential %r is ACTIVE for %s", name, details["tenant_name"])
    return details


def _credential_markdown(details: dict) -> str:
    return (
        f"## Xero credential {details['name']}\n\n"
        f"| field | value |\n|---|---|\n"
        f"| id | `{details['id']}` |\n"
        f"| entity type | {details['entity_type']} |\n"
        f"| destination | {details['destination']} |\n"
        f"| status | {details['status']} |\n"
        f"| organisation | {details['tenant_name']} (`{details['tenant_id']}`) |\n"
    )


def credential_rows() -> list[dict[str, Any]]:
    """Credentials as a person sees them; pending ones within the TTL as ``NAME (Incomplete)``."""
    store = credentials()
    store.sweep_expired()
    return [_row(view) for view in store.list()]


def _row(view: CredentialView) -> dict[str, Any]:
    return {
        "name": view.display_name,
        "id": view.id,
        "entity_type": view.entity_type,
        "destination": view.destination,
        "status": view.status.value,
        "organisation": view.tenant_name or "",
    }


def _refused(exc: Exception) -> State:
    """A person's input refused: the run ends Failed at once with that one line."""
    get_run_logger().error("refused: %s", exc)
    return expected_failure(str(exc))


@flow(name="list_credentials", flow_run_name="list credentials")
def list_credentials() -> list[dict[str, Any]]:
    """List credentials as a table artifact (pending ones as ``NAME (Incomplete)``)."""
    rows = credential_rows()
    create_table_artifact(table=rows, key="credentials", description="Xero credentials")
    get_run_logger().info("%d credential(s)", len(rows))
    return rows


@flow(name="delete_credential", flow_run_name="delete credential {credential}")
def delete_credential(credential: str) -> Any:
    """Delete a credential by id or name (tokens are not revoked at Xero: see ``revoke``).

    Args:
        credential: the credential's name or id.
    """
    store = credentials()
    try:
        view = store.get(credential)
    except NotFound as exc:
        return _refused(exc)
    store.delete(view.id)
    get_run_logger().info("deleted credential %r", view.name)
    return view.id


@flow(name="revoke_credential", flow_run_name="revoke credential {credential}")
def revoke_credential(credential: str) -> Any:
    """Revoke a credential's tokens at Xero (which removes its connections), then delete it.

    Args:
        credential: the credential's name or id.
    """
    store = credentials()
    try:
        view = store.get(credential)
    except NotFound as exc:
        return _refused(exc)
    try:
        record = store.read_tokens(view.id)
    except AuthError:
        record = None
    if record is not None and record.tokens is not None:
        xero_oauth().revoke(record.tokens.refresh_token.get_secret_value())
        get_run_logger().info("revoked credential %r at Xero", view.name)
    store.delete(view.id)
    get_run_logger().info("deleted credential %r", view.name)
    return view.id


revoke = revoke_credential

__all__ = [
    "InvalidInput",
    "NotFound",
    "XeroConsent",
    "credential_rows",
    "delete_credential",
    "list_credentials",
    "provision_xero_credential",
    "revoke",
    "revoke_credential",
]
