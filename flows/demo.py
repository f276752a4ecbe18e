"""``make demo``: the main job on the embedded default, offline and unattended.

Starts the Xero sandbox and the consent callback on loopback, provisions a credential through
the real flow (consenting with the sandbox's unattended ``sandbox_consent``), and lists the
credentials. Everything it stores lives in ``data/demo``.
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


def _configure(xero_url: str, callback_url: str) -> None:
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


def main() -> int:
    from prefect.settings import PREFECT_API_URL

    from sandbox.serve import run_in_thread
    from sandbox.xero.app import create_app
    from sandbox.xero.state import DEFAULT_ORGS
    from web.callback import create_callback_app

    for leftover in DEMO_DATA.glob("billsync.db*"):
        leftover.unlink()
    xero = run_in_thread(create_app())
    callback = run_in_thread(create_callback_app())
    _configure(xero.url, callback.url)

    from flows.consent_link import unattended, wait_for_consent_link
    from flows.credentials import list_credentials, provision_xero_credential

    print("m3ter → Xero, offline: the sandboxes run on loopback")
    print(f"  Xero sandbox      {xero.url}")
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
    callback.stop()
    xero.stop()
    print("\nDone. Look at the runs in the Prefect UI (`make serve` keeps a server up).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
