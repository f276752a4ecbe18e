"""The Xero sandbox as one ASGI app: identity, each organisation's books, the Accounting API."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette

from sandbox.xero.identity import identity_routes
from sandbox.xero.reference_api import reference_routes
from sandbox.xero.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORGS,
    XeroSandbox,
)


def create_app(
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    orgs: Iterable[str] = DEFAULT_ORGS,
    *,
    sandbox: XeroSandbox | None = None,
    time_scale: float = 1.0,
) -> Starlette:
    """A fresh sandbox app; ``app.state.sandbox`` is its ``XeroSandbox``."""
    sandbox = sandbox or XeroSandbox(client_id, client_secret, tuple(orgs), time_scale=time_scale)
    routes = identity_routes(sandbox)
    # The organisation's books first: the invoice rules of ``accounting_routes`` read them.
    routes = routes + reference_routes(sandbox)
    try:
        from sandbox.xero.accounting import accounting_routes
    except ImportError:  # pragma: no cover - the accounting module ships with the package
        accounting_routes = None
    if accounting_routes is not None:
        routes = routes + accounting_routes(sandbox)
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app
