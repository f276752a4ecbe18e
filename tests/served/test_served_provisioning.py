"""Provisioning a credential as a person does it with ``make serve``: Run from the deployment's
form, read the link at the top of the paused run, consent at Xero, choose the organisation with
Resume; a Resume by hand before consent does not destroy anything."""

from __future__ import annotations

import re

import httpx

from flows.consent_link import unattended
from flows.credentials import credential_rows
from sandbox.xero.state import DEFAULT_ORGS
from store.credentials import CredentialStatus
from tasks.xero.credentials import credentials

UK, US = DEFAULT_ORGS
LINK = re.compile(r"^\[Go to Xero\]\((\S+)\) — open it before \*\*\d\d:\d\d UTC\*\*")


def paused(key: str):
    return lambda run: (
        run["state_type"] == "PAUSED" and run["state"]["state_details"]["pause_key"] == key
    )


def test_a_person_provisions_through_the_served_deployment(as_served, xero_sandbox):
    served = as_served
    run_id = served.run("provision_xero_credential", name="Group books")
    run = served.wait(run_id, paused("consent-1"))

    # The link and its expiry are at the top of the run: the paused state's message, the
    # artifact's first line and a log line.
    (artifact,) = [a for a in served.artifacts([run_id]) if "Go to Xero" in str(a["data"])]
    url = LINK.match(artifact["data"]).group(1)
    assert url.startswith(served.env["BILLSYNC_XERO_LOGIN_URL"])
    assert "Waiting for Xero consent until" in run["state"]["message"]
    assert url in run["state"]["message"]
    assert served.logged(run_id, lambda line: url in line and "before" in line)
    assert [r["name"] for r in credential_rows()] == ["Group books (Incomplete)"]

    # Resume by hand, typing into the callback's fields: refused, the run waits again.
    served.resume(run_id, {"state": "typed by hand", "code": "1234"})
    run = served.wait(run_id, paused("consent-2"))
    assert credentials().get("Group books").status is CredentialStatus.PENDING
    assert served.logged(run_id, lambda line: "resumed by hand" in line)

    # Consent with two organisations: the callback page says what is left and links the run.
    page = httpx.get(unattended(url, f"{UK},{US}"), follow_redirects=True, timeout=60)
    assert page.status_code == 200, page.text
    assert "One more step: choose the organisation" in page.text
    assert f"/runs/flow-run/{run_id}" in page.text
    assert "close this window" not in page.text
    run = served.wait(run_id, paused("organisation"))
    assert "Choose the Xero organisation" in run["state"]["message"]

    served.resume(run_id, {"organisation": US})
    run = served.finished(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    view = credentials().get("Group books")
    assert (view.status, view.tenant_name) == (CredentialStatus.ACTIVE, US)
    crashes = [line for line in served.logs(run_id) if "Traceback" in line]
    assert not crashes, crashes


def test_a_refused_form_fails_fast_with_one_line(as_served):
    served = as_served
    before = credential_rows()
    run_id = served.run("provision_xero_credential", name="   ")
    run = served.finished(run_id, timeout=60)
    assert run["state_type"] == "FAILED"
    assert run["total_run_time"] < 2
    assert "name" in run["state"]["message"] and "\n" not in run["state"]["message"]
    crashes = [line for line in served.logs(run_id) if "Traceback" in line]
    assert not crashes, crashes
    assert credential_rows() == before
