"""``make serve`` on the embedded default, as a person starts it and uses it: its own Prefect
server and UI, provisioning clicked through in headless Chromium, the schedule firing by
itself, everything Prefect keeps in the project's data folder, and Ctrl-C stopping it promptly.

Set ``SCREENSHOTS_DIR`` to keep the browser's screenshots (the README's come from here)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows.consent_link import unattended
from sandbox.serve import ServerHandle, free_port
from sandbox.xero.state import DEFAULT_ORGS
from store.credentials import CredentialStatus
from tasks.xero.credentials import credentials
from tests.served.conftest import Served, _deployments, adopt, project_env, stop

ROOT = Path(__file__).resolve().parents[2]
UK, US = DEFAULT_ORGS
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _default_sigint() -> None:
    # A terminal's Ctrl-C; a process started in the background may inherit SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Embedded(Served):
    proc: subprocess.Popen[bytes]
    folder: Path

    @property
    def ui(self) -> str:
        return self.api.removesuffix("/api")


@pytest.fixture(scope="module")
def embedded(
    xero_server: ServerHandle, m3ter_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Embedded]:
    folder = tmp_path_factory.mktemp("embedded")
    port, callback = free_port(), f"http://127.0.0.1:{free_port()}"
    env = project_env(folder, xero_server.url, m3ter_server.url, callback)
    child = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BILLSYNC_"))}
    child.update(env, HOME=str(folder / "home"))  # nothing may land in the user's ~/.prefect
    output = folder / "serve.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve", "--prefect-port", str(port)]
        + ["--interval", "15"],
        cwd=ROOT,
        env=child,
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    served = Embedded(f"http://127.0.0.1:{port}/api", env, callback, output)
    served.proc, served.folder = proc, folder
    deadline = time.monotonic() + 150
    while len(served.deployments) < 15:
        assert proc.poll() is None, output.read_text()[-3000:]
        assert time.monotonic() < deadline, "make serve did not come up in 150 s"
        time.sleep(0.5)
        served.deployments = _deployments(served.api)
    try:
        yield served
    finally:
        stop(proc)


@pytest.fixture
def as_embedded(embedded: Embedded, clean_settings: pytest.MonkeyPatch) -> Embedded:
    adopt(embedded, clean_settings)
    return embedded


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    keep = os.environ.get("SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_a_person_provisions_a_credential_in_the_prefect_ui(
    as_embedded, xero_sandbox, browser, tmp_path
):
    served = as_embedded
    deployment = served.deployments["provision_xero_credential"]
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{served.ui}/deployments/deployment/{deployment}/run")
    page.locator("textarea").first.fill("UI books")
    _shot(page, tmp_path, "provision-1-form")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"tab=Runs"))
    (run,) = served.call(
        "POST",
        "/flow_runs/filter",
        json={"flow_runs": {"deployment_id": {"any_": [deployment]}}},
    )

    # The run's page, once the run waits for consent (its process starts first: on a loaded
    # machine that took over a minute): the link to Xero and its expiry at the top of the logs.
    served.wait(run["id"], lambda r: r["state_type"] == "PAUSED", timeout=180)
    page.goto(f"{served.ui}/runs/flow-run/{run['id']}")
    link = page.locator("a[href*='/identity/connect/authorize']").first
    link.wait_for(timeout=60_000)
    assert "before" in page.inner_text("body") and "UTC" in page.inner_text("body")
    _shot(page, tmp_path, "provision-2-paused-with-link")

    # Xero (the sandbox): log in, connect both organisations, allow.
    xero = browser.new_page(viewport={"width": 1000, "height": 700})
    xero.goto(link.get_attribute("href"))
    xero.fill("#email", "ops@example.com")
    xero.fill("#password", "correct horse")
    xero.click("#login")
    for org in (UK, US):
        xero.check(f"input[data-org='{org}']")
    xero.click("#allow")
    xero.wait_for_selector("#title", timeout=60_000)
    assert xero.inner_text("#title") == "One more step: choose the organisation"
    _shot(xero, tmp_path, "provision-3-callback-choose")

    # Back on the run's page: Resume, pick the organisation from the dropdown, submit.
    xero.click("#next")
    xero.wait_for_url(re.compile(f"/runs/flow-run/{run['id']}"))
    xero.get_by_role("button", name="Resume").click()
    xero.locator(".p-modal .p-select-button__control").click()
    if not xero.locator(".p-select-option").count():
        xero.keyboard.press("ArrowDown")  # headless, the click focuses; the key opens the list
    xero.locator(".p-select-option", has_text=US).click()
    _shot(xero, tmp_path, "provision-4-choose-organisation")
    xero.get_by_role("button", name="Submit").click()
    served.wait(run["id"], lambda r: r["state_type"] == "COMPLETED", timeout=60)
    xero.reload()
    xero.get_by_text("Completed").first.wait_for(timeout=30_000)
    _shot(xero, tmp_path, "provision-5-completed")

    view = credentials().get("UI books")
    assert (view.status, view.tenant_name) == (CredentialStatus.ACTIVE, US)


def _descendants(pid: int) -> list[str]:
    """Command lines of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        commands[int(entry.name)] = command.replace(b"\0", b" ").decode()
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(commands.get(child, ""))
        todo.extend(children.get(child, []))
    return found


def test_the_callback_resumes_the_run_on_serves_own_server_and_starts_no_other(
    as_embedded, xero_sandbox
):
    served = as_embedded
    run_id = served.run("provision_xero_credential", name="Embedded books")
    served.wait(run_id, lambda r: r["state_type"] == "PAUSED")
    (artifact,) = [a for a in served.artifacts([run_id]) if "Go to Xero" in str(a["data"])]
    url = artifact["data"].split("(", 1)[1].split(")", 1)[0]
    page = httpx.get(unattended(url, UK), follow_redirects=True, timeout=60)
    assert page.status_code == 200, page.text
    assert "Xero connected" in page.text
    assert served.finished(run_id)["state_type"] == "COMPLETED"
    assert not [c for c in _descendants(served.proc.pid) if "prefect.server.api.server" in c]


def test_the_schedule_fires_and_prefect_lives_in_the_data_folder(embedded):
    served = embedded
    deadline = time.monotonic() + 120
    completed: list[dict] = []
    while not completed:
        assert time.monotonic() < deadline, "no scheduled sync_bills run completed in 120 s"
        time.sleep(1)
        completed = served.call(
            "POST",
            "/flow_runs/filter",
            json={
                "flow_runs": {
                    "tags": {"all_": ["auto-scheduled"]},
                    "state": {"type": {"any_": ["COMPLETED"]}},
                }
            },
        )
    # The scheduler made it (SQLAlchemy 2.1 broke Prefect 3.8.8's scheduler on every loop).
    prefect_home = served.folder / "data" / "prefect"
    log = prefect_home / "server.log"
    assert log.exists() and (prefect_home / "prefect.db").exists()
    assert "bulk DML" not in log.read_text()
    assert not (served.folder / "home" / ".prefect" / "prefect.db").exists()


def test_a_person_runs_a_sync_and_reads_why_bills_did_not_reach_xero(
    as_embedded, xero_server, xero_sandbox, m3ter_sandbox, browser, tmp_path
):
    from deployments.connect import connect_integration

    served = as_embedded
    deployment = served.deployments["sync_bills"]
    served.call("PATCH", f"/deployments/{deployment}", json={"paused": True})  # no schedule now
    connect_integration(xero_server.url, "Browser sync", use_external_mapping_account_code=True)
    mapped = {
        m["m3terId"]
        for m in m3ter_sandbox.mappings
        if (m["externalSystem"].lower(), m["externalTable"].lower()) == ("xero", "contact")
    }
    lacking = [a for a in m3ter_sandbox.accounts if a["id"] not in mapped]

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{served.ui}/deployments/deployment/{deployment}/run")
    page.get_by_role("button", name="Submit").wait_for()
    page.wait_for_timeout(1500)  # the form fades in
    _shot(page, tmp_path, "sync-1-form")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"tab=Runs"))
    runs = served.call(
        "POST",
        "/flow_runs/filter",
        json={
            "flow_runs": {"deployment_id": {"any_": [deployment]}},
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": 1,
        },
    )
    run = served.finished(runs[0]["id"])
    assert run["state_type"] == "FAILED"
    assert "bills not sent" in run["state"]["message"]

    page.goto(f"{served.ui}/runs/flow-run/{run['id']}")
    page.get_by_text("bills not sent").first.wait_for(timeout=30_000)
    assert "Traceback" not in page.inner_text("body")
    _shot(page, tmp_path, "sync-2-failed")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("bill-sync-failures").first.wait_for(timeout=30_000)
    _shot(page, tmp_path, "sync-3-artifacts")
    page.get_by_text("bill-sync-failures").first.click()
    page.get_by_text(lacking[0]["name"]).first.wait_for(timeout=30_000)
    page.set_viewport_size({"width": 1280, "height": 1400})
    _shot(page, tmp_path, "sync-4-failures-report")

    # The integration is disabled (here by a person): the next run is not green, and the first
    # thing it says is which integration, since when, why, and the flow that turns it back on.
    off = served.finished(served.run("disable_integration", integration="Browser sync"))
    assert off["state_type"] == "COMPLETED", off["state"]
    again = served.finished(served.run("sync_bills"))
    assert again["state_type"] == "FAILED"
    assert again["state"]["message"].startswith("Browser sync is DISABLED since 20")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{served.ui}/runs")
    page.get_by_text(again["name"]).first.wait_for(timeout=30_000)  # runs named for their work
    page.goto(f"{served.ui}/runs/flow-run/{again['id']}")
    page.get_by_text("Browser sync is DISABLED").first.wait_for(timeout=30_000)
    assert "enable_integration" in page.inner_text("body")
    _shot(page, tmp_path, "sync-6-disabled-named-first")


def test_ctrl_c_stops_serve_and_its_server_within_ten_seconds(embedded):
    served = embedded
    started = time.monotonic()
    os.killpg(served.proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's process group
    served.proc.wait(30)
    assert time.monotonic() - started < 10, "make serve took over 10 s to stop on Ctrl-C"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.api}/health", timeout=2)  # the server it started is gone too
