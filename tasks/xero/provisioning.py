"""The Prefect tasks of provisioning a Xero credential: the steps after a person's consent.

Neither task persists its result: the token set they pass on stays in the flow run's process
memory, and only its ciphertext is ever stored (``store.credentials``).
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from store.credentials import TokenSet
from tasks.xero.credentials import credentials, xero_oauth
from tasks.xero.oauth import auth_event_id


@task(name="exchange code and read connections", cache_policy=NO_CACHE, persist_result=False)
def exchange_code(credential_id: str, code: str) -> tuple[TokenSet, list[dict[str, Any]]]:
    """Trade consent's authorisation code (with the credential's PKCE verifier) for tokens,
    and read the organisations the person connected.

    Args:
        credential_id: the pending credential the consent was for.
        code: the authorisation code Xero sent to the callback.
    """
    oauth = xero_oauth()
    tokens = oauth.exchange_code(code, credentials().code_verifier(credential_id))
    access = tokens.access_token.get_secret_value()
    connections = oauth.connections(access, auth_event_id(access))
    get_run_logger().info("Xero consent gave %d organisation(s)", len(connections))
    return tokens, connections


@task(name="activate credential", cache_policy=NO_CACHE, persist_result=False)
def activate_credential(
    credential_id: str, connection: dict[str, Any], tokens: TokenSet
) -> dict[str, Any]:
    """Make the pending credential ACTIVE for the organisation chosen, with its tokens.

    Args:
        credential_id: the pending credential.
        connection: Xero's connection of the chosen organisation (``tenantId``, ``tenantName``).
        tokens: the token set from ``exchange_code``.
    """
    view = credentials().activate(
        credential_id, connection["tenantId"], connection["tenantName"], tokens
    )
    get_run_logger().info("credential active for %s", connection["tenantName"])
    return view.model_dump(mode="json")
