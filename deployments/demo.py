"""``make demo``: the main job on the embedded default, offline and unattended.

Starts the Xero and m3ter sandboxes and the consent callback on loopback, provisions a
credential through the real flow (consenting with the sandbox's unattended
``sandbox_consent``), creates an integration on it, syncs the bills with a progress bar, and
prints what happened. Everything it stores lives in ``data/demo``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

DEMO_DATA = Path("data/demo")
CREDENTIAL = "Demo Xero"
DEMO_OPTIONS: dict[str, Any] = {
    "name": "Demo: all accounts",
    "sort_line_items_by": "SUBTOTAL",
    "invoice_status": "AUTHORISED",
    "default_tax_type": "OUTPUT2",
    "line_item_type_account_codes": {
        "MINIMUM_SPEND": "203",
        "CREDIT_MEMO": "205",
        "CREDIT_DEDUCTION": "205",
    },
    "tracking": [{"category": "Region", "option": "North"}],
}


def _configure(xero_url: str, callback_url: str, m3ter_url: str) -> None:
    from sandbox import m3ter
    from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    os.environ.update(
        {
            "BILLSYNC_DATA_DIR": str(DEMO_DATA),
            "BILLSYNC_XERO_CLIENT_ID": DEFAULT_CLIENT_ID,
            "BILLSYNC_XERO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "BILLSYNC_XERO_REDIRECT_URI": f"{callback_url}/xero/callback",
            "BILLSYNC_XERO_LOGIN_URL": xero_url,
            "BILLSYNC_XERO_IDENTITY_URL": xero_url,
            "BILLSYNC_XERO_API_URL": xero_url,
            "BILLSYNC_M3TER_API_URL": m3ter_url,
            "BILLSYNC_M3TER_ORG_ID": m3ter.DEFAULT_ORG_ID,
            "BILLSYNC_M3TER_CLIENT_ID": m3ter.DEFAULT_CLIENT_ID,
            "BILLSYNC_M3TER_CLIENT_SECRET": m3ter.DEFAULT_CLIENT_SECRET,
        }
    )
    from config.settings import get_settings
    from store.crypto import cipher_from_settings

    get_settings.cache_clear()
    settings = get_settings()
    cipher_from_settings(settings, create_if_missing=True)  # the demo makes its own key


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    line = "  ".join(c.ljust(widths[c]) for c in columns)
    body = ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join([line, "  ".join("-" * widths[c] for c in columns), *body])


def _quiet_embedded_prefect() -> None:
    """Before Prefect loads: its own home under data/demo (no clash with another local server's
    SQLite file), and console logs from warnings up so the progress bar stays readable (every
    log line still reaches the Prefect API and the UI)."""
    home = Path(os.environ.setdefault("PREFECT_HOME", str((DEMO_DATA / "prefect").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "WARNING")


def _embedded_server() -> str:
    """Prefect's ephemeral server for this process, started now so that the consent callback's
    thread can be told where it is (it would not find it on its own)."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the process's one ephemeral server, which flows use too
    server.start()
    return server.api_url


def main() -> int:
    _quiet_embedded_prefect()
    from deployments.flow_process import prepare

    prepare()  # the flows run in this process
    from prefect.settings import PREFECT_API_URL

    from sandbox.serve import run_in_thread
    from sandbox.xero.app import create_app
    from sandbox.xero.state import DEFAULT_ORGS
    from web.callback import create_callback_app

    for leftover in DEMO_DATA.glob("billsync.db*"):
        leftover.unlink()
    from sandbox.m3ter.app import create_app as create_m3ter

    xero = run_in_thread(create_app())
    m3ter = run_in_thread(create_m3ter(seed=2026, accounts=40, bills_per_account=3))
    api = PREFECT_API_URL.value() or _embedded_server()
    callback = run_in_thread(create_callback_app(prefect_api_url=api))
    _configure(xero.url, callback.url, m3ter.url)

    from flows.consent_link import unattended, wait_for_consent_link
    from flows.credentials import list_credentials, provision_xero_credential

    print("m3ter → Xero, offline: the sandboxes run on loopback")
    print(f"  Xero sandbox      {xero.url}")
    print(f"  m3ter sandbox     {m3ter.url}")
    print(f"  consent callback  {callback.url}/xero/callback")
    print(f"  Prefect API       {PREFECT_API_URL.value() or 'embedded (ephemeral) server'}")

    print(f"\n1. Provisioning credential {CREDENTIAL!r} (the flow pauses for consent)")
    result: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: result.update(state=provision_xero_credential(CREDENTIAL, return_state=True))
    )
    runner.start()
    link = wait_for_consent_link(CREDENTIAL, timeout=120)
    print(f"   flow run {link.flow_run_id} shows the link 'Go to Xero'")
    org = DEFAULT_ORGS[0]
    print(f"   consenting unattended as a person choosing {org!r}")
    answer = httpx.get(unattended(link.url, org), follow_redirects=True, timeout=60)
    print(f"   callback answered {answer.status_code}")
    runner.join(120)
    state = result.get("state")
    if state is None or not state.is_completed():
        print(f"   provisioning did not complete: {state}", file=sys.stderr)
        return 1
    print(f"   credential is ACTIVE for {state.result()['tenant_name']}")

    print("\n2. Credentials (the list_credentials flow's table artifact):")
    rows = list_credentials()
    print(_table(rows, ["name", "status", "organisation", "id"]))

    print("\n3. Integration 'Demo: all accounts' on that credential (create_integration flow)")
    from flows.integrations import create_integration

    integration = create_integration(DEMO_OPTIONS, credential=CREDENTIAL)
    print(f"   {integration['status']}: {integration['status_detail']}")
    print(
        "   AUTHORISED documents, tax OUTPUT2 (20% VAT), tracking Region: North; accounts from"
        " m3ter's Product → Xero mappings, minimum spend to 203, credits to 205"
    )
    unmapped = _add_unmapped_bill(m3ter.server.config.app.state.sandbox)
    print(f"   m3ter also holds bill {unmapped}: a line of a product nobody mapped to Xero")

    total = len(m3ter.server.config.app.state.sandbox.bills)
    print(f"\n4. sync_bills: {total} m3ter bills → Xero")
    summary = _sync_with_progress(integration["id"], total)
    print()
    print(
        _table(
            summary.get("integrations", []),
            ["integration", "sent", "updated", "unchanged", "skipped", "failed", "xero calls"],
        )
    )
    _print_outcomes(integration["id"])
    _print_documents(xero.url, state_tenant(xero))
    _print_failures(integration["id"])

    print("\n5. sync_bills again: nothing changed, so nothing is sent")
    again = _sync_with_progress(integration["id"], total)
    row = (again.get("integrations") or [{}])[0]
    print(
        f"\n   read: {row.get('read') or 'nothing'}; unchanged {row.get('unchanged')}, "
        f"sent {row.get('sent')}, xero calls {row.get('xero calls')}"
    )

    callback.stop()
    m3ter.stop()
    xero.stop()
    api = PREFECT_API_URL.value()
    if api:
        print(f"\nDone. The runs are in the Prefect UI at {api.removesuffix('/api')}")
    else:
        print(
            "\nDone. These runs used Prefect's embedded server, which stops with the demo. To"
            " watch them in the UI: `make serve` in another terminal, then"
            " `PREFECT_API_URL=http://127.0.0.1:4200/api make demo`."
        )
    return 0


def _sync_with_progress(integration_id: str, total: int) -> dict[str, Any]:
    """Run sync_bills in a thread; draw a bar from the ledger while it works."""
    import time

    from config.settings import get_settings
    from flows.sync import sync_bills
    from store.factory import database
    from store.ledger import Ledger
    from tasks.sync.summary import run_summary

    ledger = Ledger(database(get_settings()))
    result: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: result.update(state=sync_bills(return_state=True)), daemon=True
    )
    runner.start()
    shown = -1
    while runner.is_alive():
        done = ledger.count(integration_id)
        if done != shown:
            _bar(done, total)
            shown = done
        time.sleep(0.5)
    _bar(ledger.count(integration_id), total)
    state = result["state"]
    if not state.is_completed():
        print(f"\n   sync ended {state.type.value}: {state.message}")
    return run_summary(state)


def _bar(done: int, total: int, width: int = 40) -> None:
    filled = int(width * done / total) if total else width
    sys.stdout.write(f"\r   [{'#' * filled}{'.' * (width - filled)}] {done}/{total} bills")
    sys.stdout.flush()


def _print_outcomes(integration_id: str) -> None:
    from collections import Counter

    from config.settings import get_settings
    from store.factory import database
    from store.ledger import Ledger

    entries = Ledger(database(get_settings())).snapshot(integration_id).values()
    counts = Counter(e.outcome.value for e in entries)
    print("   ledger: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    reasons = Counter(e.reason for e in entries if e.reason)
    for reason, count in reasons.most_common(3):
        print(f"     {count} × {reason}")


def _add_unmapped_bill(m3ter: Any) -> str:
    """A copy of one bill whose first line sells a product with no Xero mapping: with no
    default account code, an AUTHORISED document cannot be coded, so the bill stops before any
    call (MISSING_ACCOUNT_MAPPING) and the failures report names the product and the line."""
    record = m3ter.bills[0]
    bill = dict(m3ter.bill(record.id))
    for key in ("id", "version", "dtLastModified", "sequentialInvoiceNumber"):
        bill.pop(key, None)
    first = dict(bill["lineItems"][0])
    first.update(
        productId="prod-professional-services",
        productName="Professional Services",
        description="Onboarding workshop",
        lineItemType="STANDING_CHARGE",
    )
    for key in ("accountingProductId", "accountingProductCode", "accountingProductName"):
        first.pop(key, None)
    bill["lineItems"] = [first, *bill["lineItems"][1:]]
    return str(m3ter.add_bill(bill))


def state_tenant(xero: Any) -> str:
    """The tenant id of the demo's organisation."""
    from sandbox.xero.state import DEFAULT_ORGS

    return str(xero.server.config.app.state.sandbox.orgs[DEFAULT_ORGS[0]])


def _print_documents(xero_url: str, tenant_id: str) -> None:
    """What the organisation now holds: documents by kind, status and currency, with tax."""
    from collections import Counter
    from decimal import Decimal

    state = httpx.get(f"{xero_url}/_sandbox/state", timeout=30).json()["accounting"]
    mine = state["documents"].get(tenant_id, {})
    kinds: Counter[str] = Counter()
    tax: dict[str, Decimal] = {}
    for collection in ("Invoices", "CreditNotes"):
        for doc in mine.get(collection, {}).values():
            kinds[f"{collection} {doc['Status']}"] += 1
            tax[collection] = tax.get(collection, Decimal(0)) + Decimal(doc["TotalTax"])
    print("   the Xero sandbox now holds " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    print("   tax on them: " + ", ".join(f"{k} {v}" for k, v in tax.items()))
    calls = state.get("calls_by_endpoint", {})
    print("   Xero calls: " + ", ".join(f"{k} {n}" for k, n in sorted(calls.items())))


def _print_failures(integration_id: str) -> None:
    """The bills that did not reach Xero, with the reason the failures report gives them."""
    from config.settings import get_settings
    from store.factory import database
    from store.ledger import FAILED, Ledger

    entries = Ledger(database(get_settings())).snapshot(integration_id).values()
    failed = [e for e in entries if e.outcome in FAILED]
    for entry in failed[:5]:
        print(f"   not sent: bill {entry.bill_id} ({entry.outcome.value}): {entry.reason}")
    if failed:
        print("   (the run's failures report artifact names each with what to do)")


if __name__ == "__main__":
    raise SystemExit(main())
