"""``make serve ARGS=--sandbox`` stopped and started again: the sandboxes come back from the
data folder, so the credential's tokens still work at Xero, the documents are still there, and a
sync after the restart sends nothing twice and agrees with the ledger. ``--fresh-sandbox``
starts them anew."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from config.settings import get_settings
from deployments.catalog import FLOWS
from deployments.connect import connect_integration
from sandbox.serve import free_port
from sandbox.xero.token_minting import ACCESS_TOKEN_SECONDS
from store.credentials import CredentialStatus
from store.factory import database
from store.ledger import Ledger, LedgerEntry, Outcome
from tasks.xero.credentials import credentials
from tests.served.conftest import NEVER, ROOT, Served, adopt, project_env, stop

GONE = {"DELETED", "VOIDED"}


@contextmanager
def serving(prefect_server: str, env: dict[str, str], output: Path, *args: str) -> Iterator[Served]:
    """``python -m deployments.serve --sandbox ARGS`` until the block ends (then SIGTERM)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSYNC_")}
    child_env.update(env, PREFECT_API_URL=prefect_server, PREFECT_RUNNER_POLL_FREQUENCY="1")
    xero, m3ter = env["BILLSYNC_XERO_API_URL"], env["BILLSYNC_M3TER_API_URL"]
    ports = ["--xero-sandbox-port", xero.rsplit(":", 1)[1], "--m3ter-sandbox-port",
             m3ter.rsplit(":", 1)[1]]  # fmt: skip
    # Ready once this start has said where its Prefect server logs: the deployments of an earlier
    # start are still on the server, so they alone would let the test go on (and stop this
    # serve) before it had printed what it kept.
    said = output.read_text().count("Prefect server log:") if output.exists() else 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve", "--sandbox", *ports, "--cron", NEVER, *args],
        cwd=ROOT,
        env=child_env,
        stdout=output.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = Served(prefect_server, env, env["BILLSYNC_XERO_REDIRECT_URI"].rsplit("/xero", 1)[0],
                    output)  # fmt: skip
    wanted = {name for _, name in FLOWS}
    try:
        deadline = time.monotonic() + 120
        while not (
            output.read_text().count("Prefect server log:") > said
            and wanted <= set(served.deployments)
            and _up(f"{served.callback}/healthz")
            and _up(f"{xero}/_sandbox/state")
        ):
            assert proc.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, "deployments.serve did not come up in 120 s"
            time.sleep(0.5)
            found = served.call("POST", "/deployments/filter", json={})
            served.deployments = {d["name"]: d["id"] for d in found}
        yield served
    finally:
        stop(proc)
    assert proc.returncode is not None


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def documents(xero: str, tenant: str) -> dict[str, dict[str, Any]]:
    """The tenant's documents in the Xero sandbox by id: status, totals, version."""
    state = httpx.get(f"{xero}/_sandbox/state").json()["accounting"]["documents"]
    found = {}
    for collection, id_field in (("Invoices", "InvoiceID"), ("CreditNotes", "CreditNoteID")):
        for doc in state.get(tenant, {}).get(collection, {}).values():
            found[doc[id_field]] = doc
    return found


def ledger(integration_id: str) -> dict[str, LedgerEntry]:
    return Ledger(database(get_settings())).snapshot(integration_id)


def in_agreement(integration_id: str, xero: str, tenant: str) -> dict[str, dict[str, Any]]:
    """Every bill the ledger calls COMPLETE is one live document in Xero, and nothing else is."""
    entries = ledger(integration_id)
    docs = documents(xero, tenant)
    live = {doc_id for doc_id, doc in docs.items() if doc["Status"] not in GONE}
    complete = {e.xero_id for e in entries.values() if e.outcome is Outcome.COMPLETE}
    assert complete and complete == live, complete ^ live
    assert all(e.outcome is Outcome.COMPLETE for e in entries.values() if e.xero_id)
    return docs


def xero_state(xero: str) -> dict[str, Any]:
    return httpx.get(f"{xero}/_sandbox/state").json()


def test_serve_restarted_with_sandboxes_keeps_credential_documents_and_ledger_in_agreement(
    prefect_server: str, tmp_path: Path, clean_settings
) -> None:
    xero, m3ter = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    env = project_env(tmp_path, xero, m3ter, f"http://127.0.0.1:{free_port()}")
    output = tmp_path / "serve.out"
    state_dir = tmp_path / "data" / "sandbox"

    with serving(prefect_server, env, output) as served:
        adopt(served, clean_settings)
        made = connect_integration(xero, "Kept across restarts")
        run = served.finished(served.run("sync_bills"))
        assert run["state_type"] == "COMPLETED", run["state"]["message"]
        before = in_agreement(made.integration_id, xero, made.tenant_id)
    assert {p.name for p in state_dir.iterdir()} == {"xero.json", "m3ter.json"}

    with serving(prefect_server, env, output) as served:
        assert documents(xero, made.tenant_id) == before  # the same documents, totals, versions
        # Half an hour on at Xero: the access token is spent, so the sync must refresh with
        # the refresh token Xero issued before the restart.
        advanced = httpx.post(f"{xero}/_sandbox/clock",
                              json={"advance_seconds": ACCESS_TOKEN_SECONDS + 60})  # fmt: skip
        assert advanced.status_code == 200
        refreshes = xero_state(xero)["refreshes"]
        entries = ledger(made.integration_id)
        bill_id = next(b for b, e in entries.items() if e.outcome is Outcome.COMPLETE)
        changed = httpx.post(f"{m3ter}/_sandbox/bills/{bill_id}/regenerate").json()
        assert changed["version"] == entries[bill_id].sent_version + 1

        run = served.finished(served.run("sync_bills"))
        assert run["state_type"] == "COMPLETED", run["state"]["message"]
        assert xero_state(xero)["refreshes"] == refreshes + 1
        assert credentials().get(made.credential_id).status is CredentialStatus.ACTIVE
        after = in_agreement(made.integration_id, xero, made.tenant_id)
        assert set(after) == set(before)  # nothing sent twice
        moved = {d for d in after if after[d]["Version"] != before[d]["Version"]}
        assert moved == {ledger(made.integration_id)[bill_id].xero_id}
        assert ledger(made.integration_id)[bill_id].sent_version == changed["version"]

    with serving(prefect_server, env, output, "--fresh-sandbox"):
        fresh = xero_state(xero)
        assert fresh["accounting"]["documents"] == {} and fresh["tokens_issued"] == 0
        bill = httpx.post(f"{m3ter}/_sandbox/bills/{bill_id}/approve").json()
        assert bill["version"] == entries[bill_id].bill_version  # generated anew from the seed
    assert "started fresh" in output.read_text()
