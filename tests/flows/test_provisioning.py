"""Provisioning a Xero credential end to end: real Prefect server, sandbox and callback on
loopback, the flow paused until consent arrives through the callback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.flow_runs import resume_flow_run
from prefect.logging.handlers import APILogHandler
from sqlalchemy import text

from config.settings import get_settings
from flows.consent_link import unattended, wait_for_consent_link
from flows.credentials import credential_rows, provision_xero_credential
from sandbox.xero.state import DEFAULT_ORGS
from store.credentials import CredentialStatus
from tasks.xero.credentials import credentials

UK, US = DEFAULT_ORGS


def consent(url: str, orgs: str) -> httpx.Response:
    """Follow the link as a person who logs in, picks ``orgs`` and allows access."""
    return httpx.get(unattended(url, orgs), follow_redirects=True, timeout=60)


def run_logs_and_artifacts(flow_run_id: str) -> str:
    APILogHandler().flush()
    run = UUID(flow_run_id)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run]))
        )
    return "\n".join([log.message for log in logs] + [str(a.data) for a in artifacts])


def test_single_organisation_consent_activates_credential_and_leaks_no_token(
    app_env, in_background, xero_sandbox
):
    run = in_background(provision_xero_credential, "Acme UK")
    link = wait_for_consent_link("Acme UK")
    assert [r["name"] for r in credential_rows()] == ["Acme UK (Incomplete)"]

    page = consent(link.url, UK)
    assert page.status_code == 200, page.text
    assert "Xero connected" in page.text

    state = run.join()
    assert state.is_completed(), state
    view = credentials().get("Acme UK")
    assert view.status is CredentialStatus.ACTIVE
    assert view.tenant_name == UK
    assert view.tenant_id == xero_sandbox.orgs[UK]
    assert [r["name"] for r in credential_rows()] == ["Acme UK"]

    record = credentials().read_tokens(view.id)
    access = record.tokens.access_token.get_secret_value()
    refresh = record.tokens.refresh_token.get_secret_value()
    seen = run_logs_and_artifacts(link.flow_run_id)
    assert "Go to Xero" in seen and UK in seen
    assert access not in seen and refresh not in seen
    db_file = get_settings().data_dir / "billsync.db"
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob("billsync.db*"))
    assert access.encode() not in raw and refresh.encode() not in raw
    # The token works at Xero: the connections endpoint answers with this tenant.
    answer = httpx.get(
        f"{app_env['BILLSYNC_XERO_API_URL']}/connections",
        headers={"Authorization": f"Bearer {access}"},
    )
    assert answer.status_code == 200
    assert [c["tenantId"] for c in answer.json()] == [view.tenant_id]


def test_several_organisations_pause_again_for_a_choice(app_env, in_background, xero_sandbox):
    run = in_background(provision_xero_credential, "Acme group")
    link = wait_for_consent_link("Acme group")
    assert consent(link.url, f"{UK},{US}").status_code == 200

    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(link.flow_run_id)).state
        if state.is_paused() and state.state_details.pause_key != "1":
            break
        assert time.monotonic() < deadline, f"run did not pause for a choice: {state}"
        time.sleep(0.2)
    assert credentials().get("Acme group").status is CredentialStatus.PENDING
    resume_flow_run(UUID(link.flow_run_id), run_input={"organisation": US})

    assert run.join().is_completed()
    view = credentials().get("Acme group")
    assert (view.status, view.tenant_name) == (CredentialStatus.ACTIVE, US)
    assert view.tenant_id == xero_sandbox.orgs[US]


def test_access_denied_fails_the_run_and_removes_the_credential(app_env, in_background):
    run = in_background(provision_xero_credential, "Denied")
    link = wait_for_consent_link("Denied")
    page = consent(link.url, "__deny__")
    assert page.status_code == 200 and "cancelled" in page.text.lower()
    state = run.join()
    assert state.is_failed()
    assert credential_rows() == []


def stored_rows() -> list[tuple]:
    with credentials().engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("select * from credentials order by id"))]


def test_ttl_expiry_fails_the_run_removes_the_credential_and_a_late_callback_says_it_expired(
    app_env, clean_settings, in_background, xero_sandbox
):
    clean_settings.setenv("BILLSYNC_CREDENTIAL_TTL_SECONDS", "3")
    get_settings.cache_clear()
    run = in_background(provision_xero_credential, "Slow")
    link = wait_for_consent_link("Slow")
    state = run.join(timeout=60)
    assert state.is_failed()
    assert credential_rows() == []
    with credentials().engine.connect() as conn:
        assert conn.execute(text("select count(*) from credentials")).scalar() == 0
    # The run page says what happened and what to do next, not Prefect's generic line.
    expired_at = re.search(r"The Go to Xero link expired at (\d\d:\d\d UTC)", state.message)
    assert expired_at, state.message
    assert "Run provision_xero_credential again" in state.message

    # The person follows the link late: Xero (the sandbox) lets them consent, then the
    # callback page says the link expired, when (as the run says), and what to do.
    codes = xero_sandbox.state()["codes_issued"]
    before = stored_rows()
    late = consent(link.url, UK)
    assert xero_sandbox.state()["codes_issued"] == codes + 1
    assert late.status_code == 410, late.text
    assert f"expired at {expired_at.group(1)}." in late.text
    assert "Nothing was stored" in late.text
    assert "Run provision_xero_credential again" in late.text
    assert stored_rows() == before == []
    assert credential_rows() == []
    assert "expired" in run_logs_and_artifacts(link.flow_run_id)


def test_bad_and_reused_state_are_refused_and_change_nothing(
    app_env, in_background, callback_server
):
    run = in_background(provision_xero_credential, "Careful")
    link = wait_for_consent_link("Careful")
    callback = f"{callback_server.url}/xero/callback"

    bogus = httpx.get(callback, params={"state": "forged", "code": "x"})
    assert bogus.status_code == 400 and "not one this project made" in bogus.text
    missing = httpx.get(callback, params={"code": "x"})
    assert missing.status_code == 400
    assert [r["name"] for r in credential_rows()] == ["Careful (Incomplete)"]

    # Capture the redirect the sandbox makes, deliver it twice: the second is refused.
    redirect = httpx.get(unattended(link.url, UK), follow_redirects=False)
    assert redirect.status_code in (302, 303)
    first = httpx.get(redirect.headers["location"], timeout=60)
    assert first.status_code == 200
    assert run.join().is_completed()
    before = stored_rows()
    again = httpx.get(redirect.headers["location"], timeout=60)
    assert again.status_code == 409, again.text
    assert "Already connected" in again.text and "&#x27;Careful&#x27; is connected" in again.text
    assert stored_rows() == before
    assert credentials().get("Careful").status is CredentialStatus.ACTIVE


def test_pending_credential_of_a_killed_flow_process_is_swept(app_env, clean_settings):
    env = {**os.environ, **app_env, "BILLSYNC_CREDENTIAL_TTL_SECONDS": "4"}
    code = "from flows.credentials import provision_xero_credential as p; p('Orphan')"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        link = wait_for_consent_link("Orphan", timeout=90)
        assert link.credential_id
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert [r["name"] for r in credential_rows()] == ["Orphan (Incomplete)"]
    time.sleep(4.5)
    clean_settings.setenv("BILLSYNC_CREDENTIAL_TTL_SECONDS", "4")
    get_settings.cache_clear()
    assert credential_rows() == []  # reads hide it and the listing sweeps it
    with credentials().engine.connect() as conn:
        assert conn.execute(text("select count(*) from credentials")).scalar() == 0
    late = consent(link.url, UK)
    assert late.status_code == 410 and "expired at" in late.text


@pytest.mark.parametrize("name", ["", "  "])
def test_blank_name_fails_and_creates_nothing(app_env, name):
    state = provision_xero_credential(name, return_state=True)
    assert state.is_failed()
    assert "name" in str(state.message) or "name" in repr(state.result(raise_on_failure=False))
    assert credential_rows() == []


def test_list_delete_and_revoke_flows(app_env, xero_server, xero_sandbox):
    from deployments.connect import sandbox_credential
    from flows.credentials import delete_credential, list_credentials, revoke

    revoked_id, _ = sandbox_credential(xero_server.url, "To revoke", UK)
    deleted_id, _ = sandbox_credential(xero_server.url, "To delete", US)
    credentials().create_pending("Half way")
    rows = list_credentials()
    assert [r["name"] for r in rows] == ["To revoke", "To delete", "Half way (Incomplete)"]

    record = credentials().read_tokens(revoked_id)
    access = record.tokens.access_token.get_secret_value()
    assert revoke("To revoke") == revoked_id
    assert xero_sandbox.state()["revocations"] == 1
    gone = httpx.get(
        f"{xero_server.url}/connections", headers={"Authorization": f"Bearer {access}"}
    )
    assert gone.status_code == 401 or gone.json() == []
    assert delete_credential(deleted_id) == deleted_id
    assert [r["name"] for r in credential_rows()] == ["Half way (Incomplete)"]
    state = delete_credential("nobody", return_state=True)
    assert state.is_failed() and "nobody" in state.message
