"""The floor: a plain script doing the sync's essential work, with no Prefect and no ledger.

It reads the same bills from the m3ter sandbox (pages of the same size), maps each with the
project's mapper and the same Xero mappings, and PUTs the same documents (invoices and credit
notes, as the sync sends) in batches of up to 50 to the same Xero sandbox: one poster thread per
integration, fed as pages arrive. Like the sync, each poster first reads the organisation's
reference data (the four GETs) and upserts its accounts' contacts (50 a call), which a real
organisation needs before it takes the documents. ``sync_bills`` ÷ this is our overhead. Run as
``python -m bench.floor SPEC_JSON``; it prints one JSON line.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from typing import Any

import httpx

from config.integration import IntegrationConfig
from config.settings import Settings
from tasks.m3ter.client import M3terClient
from tasks.mapping import XeroMappings
from tasks.mapping.invoice import map_bill
from tasks.xero import money_json
from tasks.xero.contacts import contact_details

BATCH = 50


def _grant(xero_url: str, org: str) -> tuple[str, str]:
    """(access token, tenant id) from the Xero sandbox, as a consent would give."""
    body = httpx.post(f"{xero_url}/_sandbox/grant", json={"orgs": [org]}, timeout=30).json()
    return body["access_token"], body["tenant_ids"][0]


COLLECTION = {"invoice": "Invoices", "credit_note": "CreditNotes"}


def _prepare(
    http: httpx.Client,
    xero_url: str,
    headers: dict[str, str],
    contacts: list[dict[str, Any]],
    tally: dict[str, int],
) -> None:
    """The organisation's reference data, then the contacts, as the sync does first."""
    for collection in ("Organisation", "Accounts", "TaxRates", "Currencies"):
        http.get(f"{xero_url}/api.xro/2.0/{collection}", headers=headers).raise_for_status()
        tally["calls"] += 1
    for start in range(0, len(contacts), BATCH):
        response = http.post(
            f"{xero_url}/api.xro/2.0/Contacts",
            params={"summarizeErrors": "false"},
            content=json.dumps({"Contacts": contacts[start : start + BATCH]}),
            headers={**headers, "Content-Type": "application/json",
                     "Idempotency-Key": f"floor:{uuid.uuid4()}"},
        )  # fmt: skip
        response.raise_for_status()
        tally["calls"] += 1


def _poster(
    xero_url: str,
    token: str,
    tenant: str,
    inbox: queue.Queue[Any],
    tally: dict[str, int],
    contacts: list[dict[str, Any]],
) -> None:
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant,
               "Accept": "application/json"}  # fmt: skip
    with httpx.Client(timeout=60) as http:
        _prepare(http, xero_url, headers, contacts, tally)
        while (item := inbox.get()) is not None:
            collection, batch = item
            response = http.put(
                f"{xero_url}/api.xro/2.0/{collection}",
                params={"summarizeErrors": "false", "unitdp": "4"},
                content=money_json.dumps({collection: batch}),
                headers={
                    "Authorization": f"Bearer {token}",
                    "xero-tenant-id": tenant,
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Idempotency-Key": f"floor:{uuid.uuid4()}",
                },
            )
            response.raise_for_status()
            tally["calls"] += 1
            tally["documents"] += len(response.json().get(collection) or [])


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Sync ``spec['integrations']`` the plain way; wall time measured from the first read."""
    settings = Settings(**spec["settings"])
    xero = spec["xero_url"]
    routes: dict[str, tuple[IntegrationConfig, str, queue.Queue[Any]]] = {}
    threads: list[threading.Thread] = []
    posters: list[tuple[Any, ...]] = []
    tally = {"calls": 0, "documents": 0, "bills": 0}
    buffers: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in spec["integrations"]:
        config = IntegrationConfig(name=item["name"], account_ids=item["account_ids"])
        token, tenant = _grant(xero, item["org"])
        inbox: queue.Queue[Any] = queue.Queue()
        integration_id = f"floor-{item['name']}"
        for account_id in item["account_ids"]:
            routes[account_id] = (config, integration_id, inbox)
        for collection in COLLECTION.values():
            buffers[(integration_id, collection)] = []
        posters.append((xero, token, tenant, inbox, tally, item["account_ids"]))
    started, cpu_started = time.perf_counter(), time.process_time()
    with M3terClient.from_settings(settings) as m3ter:
        accounts = {a.id: a for a in m3ter.iter_accounts()}
        mappings = XeroMappings(  # indexed once, as the sync does per page
            m3ter.list_external_mappings(external_table=None, m3ter_entity="Product")
        )
        for *args, account_ids in posters:
            contacts = [contact_details(accounts[a]) for a in account_ids if a in accounts]
            thread = threading.Thread(target=_poster, args=(*args, contacts), daemon=True)
            thread.start()
            threads.append(thread)
        for page in m3ter.iter_bill_pages(page_size=settings.sync_page_size):
            for bill in page:
                tally["bills"] += 1
                route = routes.get(bill.account_id or "")
                if route is None:
                    continue
                config, integration_id, inbox = route
                result = map_bill(
                    config, integration_id, bill, accounts[bill.account_id or ""], mappings
                )
                if not result.mapped:
                    continue
                collection = COLLECTION[result.kind or "invoice"]
                buffer = buffers[(integration_id, collection)]
                buffer.append(result.document or {})
                if len(buffer) == BATCH:
                    inbox.put((collection, list(buffer)))
                    buffer.clear()
    for _, integration_id, inbox in {r[1]: r for r in routes.values()}.values():
        for collection in COLLECTION.values():
            if buffers[(integration_id, collection)]:
                inbox.put((collection, buffers[(integration_id, collection)]))
        inbox.put(None)
    for thread in threads:
        thread.join()
    return {
        "wall_seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        **tally,
    }


def main() -> None:
    print(json.dumps(run(json.loads(sys.stdin.read()))), flush=True)


if __name__ == "__main__":
    main()
