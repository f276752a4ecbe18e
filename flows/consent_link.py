"""Find the "Go to Xero" link a waiting provisioning run shows, as a person would on its page.

The demo and the tests use it to follow the link unattended (with the sandbox's
``sandbox_consent`` parameter) instead of clicking it in the Prefect UI.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from config.errors import NotFound
from store.credentials import CredentialStatus
from tasks.xero.credentials import credentials

#: The provisioning run's artifact starts with the link (flows.credentials._link_markdown).
_LINK = re.compile(r"\[Go to Xero\]\((\S+)\)")


@dataclass(frozen=True)
class ConsentLink:
    """The Go to Xero link of a pending credential and when it expires."""

    flow_run_id: str
    credential_id: str
    url: str


def wait_for_consent_link(name: str, timeout: float = 60) -> ConsentLink:
    """Wait until the run provisioning credential ``name`` shows its link artifact."""
    deadline = time.monotonic() + timeout
    store = credentials()
    while time.monotonic() < deadline:
        try:
            view = store.get(name)
        except NotFound:
            view = None
        if view is not None and view.status is CredentialStatus.PENDING:
            run_id = store.flow_run_id(view.id)
            if run_id:
                url = _link_artifact(run_id)
                if url:
                    return ConsentLink(run_id, view.id, url)
        time.sleep(0.2)
    raise TimeoutError(f"no consent link appeared for credential {name!r} in {timeout} s")


def _link_artifact(flow_run_id: str) -> str | None:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])
            )
        )
    for artifact in artifacts:
        found = _LINK.match(str(artifact.data or ""))
        if found:
            return found.group(1)
    return None


def unattended(url: str, organisations: str) -> str:
    """The consent link with the sandbox's ``sandbox_consent`` (consent without a person)."""
    from urllib.parse import urlencode

    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{urlencode({'sandbox_consent': organisations})}"
