"""What the cluster check asserts, read from the sandboxes' state and the project ledger.

Each check raises ``ClusterError`` with what it expected and what it found, so a red run says
why without a debugger.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from config.settings import Settings
from deployments.cluster.processes import ClusterError
from store.factory import database
from store.ledger import Ledger, Outcome
from tasks.m3ter.client import M3terClient


def xero_state(xero_url: str) -> dict[str, Any]:
    answer = httpx.get(f"{xero_url}/_sandbox/state", timeout=30)
    answer.raise_for_status()
    return answer.json()


def tenant_documents(state: dict[str, Any], tenant_id: str) -> tuple[dict[str, Any], int]:
    """(bill id -> document, how many documents the tenant really holds) of one tenant.

    The sandbox lists documents by number; every document the sync makes carries its bill id as
    its number or its Reference (tasks/mapping/invoice.py), and m3ter's bill ids are UUIDs where
    its invoice numbers are not: a document is its Reference's bill when that is a UUID."""
    tenant = state["accounting"]["documents"].get(tenant_id, {})
    listed = {**tenant.get("Invoices", {}), **tenant.get("CreditNotes", {})}
    docs = {_bill_of(number, doc): doc for number, doc in listed.items()}
    held = int(tenant.get("Invoices_count", 0)) + int(tenant.get("CreditNotes_count", 0))
    return docs, held


def _bill_of(number: str, doc: dict[str, Any]) -> str:
    reference = doc.get("Reference")
    try:
        uuid.UUID(str(reference))
    except ValueError:
        return number
    return str(reference)


def m3ter_bills(settings: Settings, accounts: set[str] | None = None) -> dict[str, int]:
    """bill id -> version of every bill in m3ter (or of ``accounts``), via the project's client."""
    with M3terClient.from_settings(settings) as m3ter:
        return {
            bill.id: int(bill.version or 0)
            for page in m3ter.iter_bill_pages(page_size=200)
            for bill in page
            if accounts is None or bill.account_id in accounts
        }


def m3ter_accounts(settings: Settings) -> list[str]:
    with M3terClient.from_settings(settings) as m3ter:
        return sorted(a.id for a in m3ter.iter_accounts())


@dataclass(frozen=True)
class Delivery:
    """One integration's result: documents in its tenant, bills complete and skipped."""

    integration: str
    documents: int
    complete: int
    skipped: int


def exactly_once(
    settings: Settings,
    xero_url: str,
    integration_id: str,
    name: str,
    tenant_id: str,
    bills: dict[str, int],
    *,
    expect_version: int = 1,
    tenant_shared: bool = False,
) -> Delivery:
    """Every bill is one document at its version, and the ledger says the same, nothing stuck.

    ``tenant_shared``: other integrations post other bills to the same tenant; only this one's
    ``bills`` are compared (duplicates are still counted tenant-wide).
    """
    state = xero_state(xero_url)
    docs, held = tenant_documents(state, tenant_id)
    if held != len(docs):
        raise ClusterError(
            f"{name}: Xero tenant holds {held} documents for {len(docs)} bills: "
            "some bill was created twice"
        )
    if tenant_shared:
        docs = {number: doc for number, doc in docs.items() if number in bills}
    ledger = Ledger(database(settings)).snapshot(integration_id)
    stuck = {
        bill: entry.outcome.value
        for bill, entry in ledger.items()
        if entry.outcome not in (Outcome.COMPLETE, Outcome.SKIPPED)
    }
    if stuck:
        sample = dict(list(stuck.items())[:5])
        raise ClusterError(f"{name}: {len(stuck)} bill(s) not complete in the ledger: {sample}")
    complete = {b for b, e in ledger.items() if e.outcome is Outcome.COMPLETE}
    skipped = {b for b, e in ledger.items() if e.outcome is Outcome.SKIPPED}
    if complete != set(docs):
        raise ClusterError(
            f"{name}: ledger COMPLETE and Xero documents differ: "
            f"{len(complete - set(docs))} only in the ledger, "
            f"{len(set(docs) - complete)} only in Xero"
        )
    missing = set(bills) - complete - skipped
    if missing:
        raise ClusterError(
            f"{name}: {len(missing)} m3ter bill(s) never handled, e.g. {min(missing)}"
        )
    for bill_id in complete:
        entry, doc = ledger[bill_id], docs[bill_id]
        if entry.sent_version != bills.get(bill_id):
            raise ClusterError(
                f"{name}: bill {bill_id} sent at version {entry.sent_version}, "
                f"m3ter has {bills.get(bill_id)}"
            )
        if entry.xero_id != (doc.get("InvoiceID") or doc.get("CreditNoteID")):
            raise ClusterError(f"{name}: bill {bill_id}: ledger and Xero disagree on the id")
    versions = {n: d["Version"] for n, d in docs.items() if d["Version"] != expect_version}
    if versions:
        sample = dict(list(versions.items())[:5])
        raise ClusterError(
            f"{name}: {len(versions)} document(s) written more than once "
            f"(Version != {expect_version}): {sample}"
        )
    return Delivery(name, len(docs), len(complete), len(skipped))


@dataclass(frozen=True)
class LimitFigures:
    calls: int
    refused_for_limits: int
    max_concurrency: int
    max_calls_per_minute: int
    refused: dict[str, dict[str, int]]


def within_xero_limits(
    xero_url: str, tenants: Iterable[str], concurrent: int = 5, per_minute: int = 60
) -> LimitFigures:
    """No tenant saw more than ``concurrent`` calls at once or ``per_minute`` in a scaled minute,
    and the sandbox's own audit of answered calls found no breach."""
    tenants = list(tenants)
    accounting = xero_state(xero_url)["accounting"]
    figures = LimitFigures(
        calls=sum(int(accounting["calls"].get(t, 0)) for t in tenants),
        max_concurrency=max(int(accounting["max_concurrency"].get(t, 0)) for t in tenants),
        max_calls_per_minute=max(
            (int(n) for t in tenants for n in accounting["calls_per_minute"].get(t, {}).values()),
            default=0,
        ),
        refused={t: r for t, r in accounting.get("refused", {}).items() if t in tenants},
        refused_for_limits=sum(
            n
            for t, r in accounting.get("refused", {}).items()
            if t in tenants
            for problem, n in r.items()
            if problem in ("concurrent", "minute")
        ),
    )
    if figures.max_concurrency > concurrent:
        raise ClusterError(
            f"a tenant saw {figures.max_concurrency} concurrent calls (limit {concurrent})"
        )
    if figures.max_calls_per_minute > per_minute:
        raise ClusterError(
            f"a tenant saw {figures.max_calls_per_minute} calls in one scaled minute "
            f"(limit {per_minute})"
        )
    if accounting["answered_while_limited"] != 0:
        raise ClusterError(
            f"the Xero sandbox answered {accounting['answered_while_limited']} call(s) "
            "beyond its limits"
        )
    return figures
