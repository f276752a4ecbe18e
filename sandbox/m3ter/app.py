"""The m3ter API sandbox as a Starlette app: same paths, queries and wire shapes as the SDK uses.

API (bearer token required): ``POST /oauth/token`` (client credentials, HTTP Basic or body),
``GET /organizations/{orgId}/bills[/{id}]``, ``/bills/search``, ``/accounts[/{id}]``,
``/externalmappings[/{id}]``, ``/externalmappings/externalid/{system}/{table}/{externalId}``,
``/externalmappings/external/{entity}/{m3terId}``. Lists answer ``{"data": [...], "nextToken"}``.
Control (no auth): ``/_sandbox/reset``, ``bills/{id}/regenerate``, ``bills/{id}/approve``,
``accounts/bulk``, ``bills/bulk`` (both take ``modifiedAt``), ``mappings``, ``faults``,
``expire-tokens``, ``GET state``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from sandbox.m3ter.api_routes import api_routes
from sandbox.m3ter.auth import oauth_token
from sandbox.m3ter.control_routes import control_routes
from sandbox.m3ter.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORG_ID,
    M3terSandbox,
)

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ORG_ID",
    "M3terSandbox",
    "create_app",
]


def create_app(
    seed: int = 1,
    accounts: int = 20,
    bills_per_account: int = 3,
    org_id: str = DEFAULT_ORG_ID,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    token_ttl: int = 18000,
) -> Starlette:
    """A fresh sandbox app; its data is ``app.state.sandbox`` (an ``M3terSandbox``)."""
    routes = [
        Route("/oauth/token", oauth_token, methods=["POST"]),
        *api_routes(),
        *control_routes(),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = M3terSandbox(
        seed=seed,
        accounts=accounts,
        bills_per_account=bills_per_account,
        org_id=org_id,
        client_id=client_id,
        client_secret=client_secret,
        token_ttl=token_ttl,
    )
    return app
