"""The ``post to Xero`` Prefect task, and how ``Posting`` hands it a group of documents.

One task run per group (a task run costs the Prefect server time, so groups are large); its
documents are handed over in process memory (``tasks.sync.handoff``), not as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, PrefectWrappedFuture
from prefect.utilities.annotations import quote

from config.settings import get_settings
from store.factory import database
from store.integrations import IntegrationView
from store.ledger import Ledger
from tasks.prefect_engine import expected_failure, flow_run_id, reported
from tasks.sync import handoff
from tasks.sync.failures import count_causes, not_sent
from tasks.sync.limits import TenantSlots
from tasks.sync.organisation import xero_client
from tasks.sync.plan import Send
from tasks.sync.post import TenantPoster


@task(name="post to Xero", cache_policy=NO_CACHE, persist_result=False)
def post_sends(
    integration: IntegrationView, tenant_id: str, documents: str, organisation: str = ""
) -> Any:
    """Post a group of documents to the integration's Xero tenant, in batches of up to 50.

    Args:
        integration: the integration whose documents these are.
        tenant_id: the Xero tenant they go to.
        documents: the hand-off key of the documents (``tasks.sync.handoff``).
        organisation: the tenant's organisation name, for messages.

    Returns the ``PostReport``; as a Failed state (with the report in its ``RunFailed``) when
    any of them did not reach Xero.
    """
    sends: list[Send] = handoff.take(documents)
    settings = get_settings()
    with (
        xero_client(settings, integration, tenant_id) as client,
        TenantSlots(settings, tenant_id, organisation=organisation) as slots,
    ):
        poster = TenantPoster(
            organisation=organisation,
            slots=slots,
            settings=settings,
            client=client,
            ledger=Ledger(database(settings)),
            integration_id=integration.id,
            tenant_id=tenant_id,
            run_id=flow_run_id(),
            log=get_run_logger(),
        )
        report = poster.post(sends)
    if not report.failures:
        return report
    message = not_sent(count_causes(report.failures), of=len(sends))
    return expected_failure(message, report)


@dataclass
class TaskHandle:
    """A posting task's future, as ``Posting`` reads it."""

    future: PrefectFuture[Any]

    def done(self) -> bool:
        """Asked of its thread's future: ``future.state`` would read the task run from the API."""
        if isinstance(self.future, PrefectWrappedFuture):
            return bool(self.future.wrapped_future.done())
        return self.future.state.is_final()

    def report(self, timeout: float) -> Any:
        """The task's report, whether it Completed with it or Failed with it on purpose."""
        return reported(self.future.result(timeout=timeout, raise_on_failure=False))


@dataclass
class PostingTasks:
    """``Posting``'s ``submit`` in a flow run: one ``post to Xero`` task per group, named for
    people ("post 23 invoices to Org for Integration (#3)")."""

    integration: IntegrationView
    tenant_id: str
    organisation: str

    def __call__(self, sends: list[Send], what: str, number: int) -> TaskHandle:
        name = f"post {what} to {self.organisation} for {self.integration.name} (#{number})"
        future = post_sends.with_options(task_run_name=name).submit(
            quote(self.integration), self.tenant_id, handoff.hand(sends), self.organisation
        )
        return TaskHandle(future)
