"""Wire the project to the sandboxes without a browser: a credential from the Xero sandbox's
``/_sandbox/grant`` and an integration connected to it. For the demo, tests and benchmarks.

It lives in ``deployments``, one of the places that may import everything: it uses the store, the
tasks and the flows, which the sandbox (the emulators, standing apart from the code they check)
may not. The project is imported inside the functions so that importing this module loads no
Prefect before a test or the benchmark has set up its environment."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.xero.state import DEFAULT_ORGS


@dataclass(frozen=True)
class Connected:
    integration_id: str
    name: str
    tenant_id: str
    credential_id: str


def sandbox_credential(xero_url: str, name: str, org: str = DEFAULT_ORGS[0]) -> tuple[str, str]:
    """An ACTIVE credential for ``org`` in the project store: (credential id, tenant id)."""
    from store.credentials import TokenSet
    from tasks.xero.credentials import credentials

    granted = httpx.post(f"{xero_url}/_sandbox/grant", json={"orgs": [org]}, timeout=30)
    granted.raise_for_status()
    body = granted.json()
    store = credentials()
    pending = store.create_pending(name)
    tenant_id = body["tenant_ids"][0]
    store.activate(
        pending.credential_id,
        tenant_id,
        org,
        TokenSet(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            expires_at=time.time() + float(body.get("expires_in", 1800)),
        ),
    )
    return pending.credential_id, tenant_id


def connect_integration(
    xero_url: str, name: str, org: str = DEFAULT_ORGS[0], **options: Any
) -> Connected:
    """A new integration with ``options``, connected to a new sandbox credential for ``org``.

    Refused (``InvalidInput``, no integration stored) when another integration on ``org``
    already sends bills of some of the same accounts: give each its own ``account_ids``.
    """
    from flows.integrations import integrations

    credential_id, tenant_id = sandbox_credential(xero_url, f"{name} credential", org)
    view = integrations().create({"name": name, **options}, credential=credential_id)
    return Connected(view.id, name, tenant_id, credential_id)
