"""``make serve`` on the embedded default, as a person starts it: its own Prefect server, the
schedule firing by itself, everything Prefect keeps in the project's data folder, and Ctrl-C
stopping it promptly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from flows.consent_link import unattended
from sandbox.serve import free_port
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS

ROOT = Path(__file__).resolve().parents[2]


def _default_sigint() -> None:
    # A terminal's Ctrl-C; a process started in the background may inherit SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def served_default(tmp_path: Path, xero_server, xero_sandbox):
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BILLSYNC_"))}
    env.update(
        {
            "HOME": str(tmp_path / "home"),  # nothing may land in the user's ~/.prefect
            "BILLSYNC_DATA_DIR": str(data),
            "BILLSYNC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "BILLSYNC_XERO_REDIRECT_URI": f"http://127.0.0.1:{free_port()}/xero/callback",
            "BILLSYNC_XERO_CLIENT_ID": DEFAULT_CLIENT_ID,
            "BILLSYNC_XERO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "BILLSYNC_XERO_LOGIN_URL": xero_server.url,
            "BILLSYNC_XERO_IDENTITY_URL": xero_server.url,
            "BILLSYNC_XERO_API_URL": xero_server.url,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve", "--prefect-port", str(port)]
        + ["--interval", "4"],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "serve.out").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    yield proc, f"http://127.0.0.1:{port}/api", data, tmp_path
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _scheduled_runs(api: str) -> list[dict]:
    try:
        answer = httpx.post(
            f"{api}/flow_runs/filter",
            json={"flow_runs": {"tags": {"all_": ["auto-scheduled"]}}},
            timeout=5,
        )
    except httpx.TransportError:
        return []
    return answer.json() if answer.status_code == 200 else []


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
            commands[int(entry.name)] = command.replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(commands.get(child, ""))
        todo.extend(children.get(child, []))
    return found


def _provision_through_the_callback(api: str) -> httpx.Response:
    """Run provision_xero_credential from its deployment and consent at the sandbox: the
    callback inside serve must resume the run on serve's own Prefect server."""
    deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    (deployment,) = [d for d in deployments if d["name"] == "provision_xero_credential"]
    run = httpx.post(
        f"{api}/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": {"name": "Embedded books"}},
        timeout=10,
    ).json()
    deadline = time.monotonic() + 90
    link = None
    while link is None:
        assert time.monotonic() < deadline, "no Go to Xero link appeared"
        time.sleep(0.5)
        found = httpx.post(
            f"{api}/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}},
            timeout=10,
        ).json()
        link = next((a["data"] for a in found if "Go to Xero" in str(a["data"])), None)
    url = link.split("(", 1)[1].split(")", 1)[0]
    return httpx.get(unattended(url, DEFAULT_ORGS[0]), follow_redirects=True, timeout=60)


def test_serve_runs_the_schedule_keeps_prefect_in_the_data_folder_and_stops_on_ctrl_c(
    served_default,
):
    proc, api, data, tmp_path = served_default
    deadline = time.monotonic() + 150
    completed: list[dict] = []
    while not completed:
        assert proc.poll() is None, (tmp_path / "serve.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "no scheduled sync_bills run completed in 150 s"
        completed = [r for r in _scheduled_runs(api) if r["state_type"] == "COMPLETED"]
        time.sleep(1)
    # The scheduler made it (SQLAlchemy 2.1 broke Prefect 3.8.8's scheduler on every loop).
    assert completed[0]["state_name"] == "Completed"
    log = data / "prefect" / "server.log"
    assert log.exists() and (data / "prefect" / "prefect.db").exists()
    assert "bulk DML" not in log.read_text()
    assert not (tmp_path / "home" / ".prefect" / "prefect.db").exists()

    # The consent callback resumes the run on serve's own server, and starts no other.
    page = _provision_through_the_callback(api)
    assert page.status_code == 200, page.text
    assert "Xero connected" in page.text
    assert not [c for c in _descendants(proc.pid) if "prefect.server.api.server" in c]

    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's process group
    proc.wait(30)
    assert time.monotonic() - started < 10, "make serve took over 10 s to stop on Ctrl-C"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api}/health", timeout=2)  # the server it started is gone too
