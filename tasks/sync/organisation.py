"""The Xero organisation a sync posts to: its reference data, read once per run and tenant,
and the check of the integration's coding against it (``tasks.sync.preflight``).

Read only when a page holds bills to plan, so a sync with nothing new costs no call. The calls
go through the tenant's limits like every other; integrations of one run that share a tenant
(and the run's bill feed) share one reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from config.errors import BillSyncError, InvalidInput, PermanentError
from config.integration import IntegrationConfig
from config.settings import Settings, get_settings
from store.credential_types import CredentialView
from store.factory import credential_store
from store.integrations import IntegrationView
from tasks.m3ter.models import ExternalMapping
from tasks.process import PROCESS
from tasks.sync import stopping
from tasks.sync.calls import XeroCalls
from tasks.sync.fates import PostReport
from tasks.sync.limits import TenantSlots, ensure_tenant_limits
from tasks.sync.preflight import check_coding, product_mappings, reference_needs
from tasks.xero.credentials import token_provider
from tasks.xero.invoices import XeroAccountingClient
from tasks.xero.reference import XeroReference, read_reference

__all__ = [
    "CodingRefused",
    "check_with_organisation",
    "coded",
    "coding_changed",
    "organisation_reference",
    "read_organisation",
    "xero_client",
]

KEEP = 64  # readings kept per process (the newest runs')


class CodingRefused(PermanentError):
    """The organisation would refuse the integration's coding: nothing is sent until it is
    fixed (each problem names the field and the code)."""


def xero_client(settings: Settings, integration: IntegrationView | str, tenant_id: str) -> Any:
    """A Xero client for the integration's credential (or the credential id given) and tenant
    (closes with ``with``)."""
    provider = token_provider(settings)
    credential_id = integration if isinstance(integration, str) else integration.credential_id or ""
    return XeroAccountingClient(
        settings.xero_api_url,
        tenant_id,
        provider.getter(credential_id),
        timeout=settings.http_timeout_seconds,
        replace_token=lambda rejected: provider.replace_rejected(credential_id, rejected),
    )


@task(name="read the Xero organisation", cache_policy=NO_CACHE, persist_result=False)
def read_organisation(
    integration: IntegrationView | str, tenant_id: str, items: bool, tracking: bool
) -> XeroReference:
    """Read the organisation's currencies, accounts and tax rates (and its items and tracking
    categories when the integration uses them), within the tenant's limits.

    Args:
        integration: the integration being synced (or the id of the credential to read with).
        tenant_id: its Xero tenant.
        items: read the items too (a product is mapped to one).
        tracking: read the tracking categories too.
    """
    settings = get_settings()
    logger = get_run_logger()
    ensure_tenant_limits(settings, tenant_id)
    report = PostReport()
    name = connected_organisation(
        settings, integration if isinstance(integration, str) else integration.credential_id
    )
    with (
        xero_client(settings, integration, tenant_id) as client,
        TenantSlots(settings, tenant_id, organisation=name) as slots,
    ):
        calls = XeroCalls(
            settings, tenant_id, log=logger, sleep=stopping.pause, slots=slots, organisation=name
        )

        def fetch(collection: str, params: dict[str, str] | None) -> list[dict[str, Any]]:
            return calls.call(lambda: client.read(collection, params), f"read {collection}", report)

        reference = read_reference(fetch, items=items, tracking=tracking)
    logger.info(
        "%s: %d currencies, %d accounts, %d tax rates%s (%d call(s))",
        reference.organisation or tenant_id,
        len(reference.currencies),
        len(reference.accounts),
        len(reference.tax_rates),
        "" if reference.items is None else f", {len(reference.items)} items",
        report.calls,
    )
    return reference


def organisation_reference(
    integration: IntegrationView,
    tenant_id: str,
    mappings: Sequence[ExternalMapping],
    run_key: str | None,
) -> tuple[XeroReference, int]:
    """The tenant's reference data for this run, checked against the integration's coding,
    and the calls it cost now (0 when another integration of the run read it);
    ``CodingRefused`` naming every problem. ``run_key`` (the run's feed) lets integrations of
    one run share the reading."""
    products = product_mappings(integration.config, integration.id, mappings)
    items, tracking = reference_needs(integration.config, products)
    key = (run_key, tenant_id, items, tracking)
    reference = PROCESS.peek(PROCESS.references, key) if run_key else None
    calls = 0
    if reference is None:
        reference = read_organisation(integration, tenant_id, items, tracking)
        calls = reference.calls
        if run_key:  # shared with the run's other integrations, never with a later run
            PROCESS.put(PROCESS.references, key, reference)
            while len(PROCESS.references) > KEEP:
                PROCESS.pop(PROCESS.references, next(iter(PROCESS.references)))
    problems = check_coding(integration.config, reference, products)
    if problems:
        raise CodingRefused(
            f"{reference.organisation or 'the Xero organisation'} would refuse this "
            f"integration's coding: " + "; ".join(map(str, problems))
        )
    return reference, calls


def connected_organisation(settings: Settings, credential_id: str | None) -> str:
    """The Xero organisation a credential is connected to, by name (its tenant id if unnamed);
    empty if it has none."""
    try:
        credential = credential_store(settings).get(credential_id or "")
    except BillSyncError:
        return ""
    return credential.tenant_name or credential.tenant_id or ""


def check_with_organisation(config: IntegrationConfig, credential: CredentialView) -> None:
    """Refuse (``InvalidInput`` naming the field and the code) a configuration whose account
    codes, tax types or tracking the credential's organisation cannot take. Only the options are
    checked here; the product mappings are checked at each sync. No coding set: no call."""
    if not coded(config) or not credential.tenant_id:
        return
    reference = read_organisation(credential.id, credential.tenant_id, False, bool(config.tracking))
    problems = check_coding(config, reference)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: {'; '.join(map(str, problems[1:]))})"
        raise InvalidInput(first.message + (more if len(problems) > 1 else ""), field=first.field)


#: The options that name Xero codes (checked against the organisation when they change).
CODING_FIELDS = (
    "default_account_code",
    "default_tax_type",
    "tax_type_by_country",
    "line_item_type_account_codes",
    "tracking",
)


def coded(config: IntegrationConfig) -> bool:
    """Whether the configuration names any Xero code of its own."""
    return any(getattr(config, f) for f in CODING_FIELDS)


def coding_changed(old: IntegrationConfig, new: IntegrationConfig) -> bool:
    """Whether an update changes what the organisation is asked to take."""
    return any(getattr(old, f) != getattr(new, f) for f in CODING_FIELDS)
