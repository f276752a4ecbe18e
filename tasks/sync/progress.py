"""The progress artifact of an integration's sync: a bar moved as pages are handled."""

from __future__ import annotations

import re
import time
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact

from store.integrations import IntegrationView
from tasks.http import prefect_ssl_context
from tasks.prefect_api import BestEffort


class Progress:
    """A progress artifact per integration, moved as pages are handled.

    m3ter does not say how many bills a listing holds, so the estimate is the bills this
    integration's ledger holds (or the bills asked for, or the failed bills retried); a first
    run approaches 100 % and jumps to it at the end. The artifact appears with the first bill:
    a sync that finds nothing new shows none. Best effort: while the Prefect API is away the
    bar stands still and the sync goes on (``tasks.prefect_api.BestEffort``).
    """

    EVERY_SECONDS = 5.0  # one API call per 5 s at most, however fast pages go

    def __init__(self, integration: IntegrationView, organisation: str, expected: int) -> None:
        self.integration = integration
        self.organisation = organisation
        self.expected = expected
        self.done = 0
        self.shown_at = 0.0
        self.artifact_id: Any = None
        self._api = BestEffort(get_run_logger())
        self._client: Any = None  # one Prefect client for the bar's updates, opened at the first

    def _updated(self, percent: float) -> None:
        """Move the bar with this bar's own client: Prefect's ``update_progress_artifact``
        opens a client (and loads a CA bundle) on every call."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        if self._client is None:
            opened = get_client(sync_client=True, httpx_settings={"verify": prefect_ssl_context()})
            self._client = opened.__enter__()
        self._client.update_artifact(
            artifact_id=self.artifact_id, artifact=ArtifactUpdate(data=percent)
        )

    def advance(self, bills: int) -> None:
        """Count ``bills`` more handled; show the bar at most every ``EVERY_SECONDS``."""
        if self.artifact_id is None and bills:
            self.artifact_id = self._api.call(
                lambda: create_progress_artifact(
                    0.0,
                    key=f"sync-progress-{slug(self.integration.name) or self.integration.id}",
                    description=f"Bills of {self.integration.name} handled ({self.organisation})",
                ),
                "create the progress artifact",
            )
            self.shown_at = time.monotonic()  # it shows 0 %: the next update in EVERY_SECONDS
        previous = self.done
        self.done += bills
        now = time.monotonic()
        # Report a page once the next one arrives (it was handled by then).
        if previous and self.artifact_id is not None and now - self.shown_at >= self.EVERY_SECONDS:
            self.shown_at = now
            total = max(self.expected, self.done + bills)
            self._show(round(100 * previous / total, 1))

    def finish(self) -> None:
        """Show the bar full, and let its client go."""
        try:
            self._show(100.0)
        finally:
            if self._client is not None:
                client, self._client = self._client, None
                self._api.call(lambda: client.__exit__(None, None, None), "close its client")

    def _show(self, percent: float) -> None:
        if self.artifact_id is not None:
            self._api.call(lambda: self._updated(percent), "update the progress artifact")


def slug(name: str) -> str:
    """``"Main (#2)"`` → ``"main-2"``: a name as part of a Prefect artifact key (lowercase
    letters, digits and dashes); empty when the name has none of them."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
