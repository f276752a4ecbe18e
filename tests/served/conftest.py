"""The project as its users run it: ``python -m deployments.serve`` (what ``make serve`` runs)
in a subprocess against the session's Prefect server, driven through Prefect's REST API the way
the UI's buttons drive it (Run from a form, Resume, Retry), with the sandboxes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from config.settings import get_settings
from deployments.serve import sandbox_settings
from sandbox.serve import ServerHandle, free_port
from store.factory import forget_engines

ROOT = Path(__file__).resolve().parents[2]
NEVER = "0 0 1 1 *"  # the schedule must not fire in the middle of these tests
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Served:
    """A running ``deployments.serve`` and the UI's calls against it."""

    api: str
    env: dict[str, str]
    callback: str
    output: Path
    deployments: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None  # serve, the leader of its process group

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        for _ in range(20):  # a busy SQLite test server answers 503, as Prefect's client knows
            answer = httpx.request(method, f"{self.api}{path}", timeout=30, **kwargs)
            if answer.status_code != 503:
                break
            time.sleep(0.5)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def run(self, flow: str, **parameters: Any) -> str:
        """The Run button of a deployment's form: parameters as JSON, as the form sends them."""
        made = self.call(
            "POST",
            f"/deployments/{self.deployments[flow]}/create_flow_run",
            json={"parameters": parameters},
        )
        return made["id"]

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/flow_runs/{run_id}")

    def wait(
        self, run_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(run_id)
            if until(run):
                return run
            assert time.monotonic() < deadline, f"run {run_id} stuck in {run['state']}"
            assert not (run["state_type"] in TERMINAL and not until(run)), run["state"]
            time.sleep(0.3)

    def finished(self, run_id: str, timeout: float = 180) -> dict[str, Any]:
        return self.wait(run_id, lambda r: r["state_type"] in TERMINAL, timeout)

    def resume(self, run_id: str, run_input: dict[str, Any]) -> dict[str, Any]:
        """The run page's Resume button, with its form filled in."""
        return self.call("POST", f"/flow_runs/{run_id}/resume", json={"run_input": run_input})

    def retry(self, run_id: str) -> None:
        """The UI's Retry of a finished run (prefect-ui-library ``retryFlowRun``)."""
        self.call(
            "POST",
            f"/flow_runs/{run_id}/set_state",
            json={
                "state": {
                    "type": "SCHEDULED",
                    "name": "AwaitingRetry",
                    "message": "Retry from the UI",
                },
                "force": False,
            },
        )

    def logs(self, run_id: str) -> list[str]:
        found = self.call(
            "POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}
        )
        return [entry["message"] for entry in found]

    def logged(self, run_id: str, found: Callable[[str], bool], timeout: float = 15) -> bool:
        """Whether a log line of the run satisfies ``found`` (logs reach the API in batches)."""
        deadline = time.monotonic() + timeout
        while not any(found(line) for line in self.logs(run_id)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def artifacts(self, run_ids: list[str]) -> list[dict[str, Any]]:
        return self.call(
            "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": run_ids}}}
        )

    def subflows(self, run_id: str) -> list[dict[str, Any]]:
        return self.call(
            "POST",
            "/flow_runs/filter",
            json={"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}},
        )

    def task_runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        return self.call(
            "POST", "/task_runs/filter", json={"task_runs": {"flow_run_id": {"any_": run_ids}}}
        )


def _deployments(api: str) -> dict[str, str]:
    try:
        answer = httpx.post(f"{api}/deployments/filter", json={}, timeout=5)
    except httpx.TransportError:
        return {}
    return {d["name"]: d["id"] for d in answer.json()} if answer.status_code == 200 else {}


def project_env(folder: Path, xero_url: str, m3ter_url: str, callback: str) -> dict[str, str]:
    """The served project's settings: its own data folder and key, both sandboxes, the
    consent callback on ``callback``, and a failing integration never auto-disabled here."""
    return {
        **sandbox_settings(xero_url, m3ter_url),
        "BILLSYNC_DATA_DIR": str(folder / "data"),
        "BILLSYNC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BILLSYNC_XERO_REDIRECT_URI": f"{callback}/xero/callback",
        "BILLSYNC_AUTO_DISABLE_AFTER_FAILED_RUNS": "50",
    }


def adopt(served: Served, settings: pytest.MonkeyPatch) -> None:
    """This test process reads the served process's project database and settings."""
    for key, value in served.env.items():
        settings.setenv(key, value)
    get_settings.cache_clear()
    forget_engines()


@pytest.fixture(scope="module")
def served(
    prefect_server: str,
    xero_server: ServerHandle,
    m3ter_server: ServerHandle,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    from deployments.catalog import FLOWS

    folder = tmp_path_factory.mktemp("served")
    callback = f"http://127.0.0.1:{free_port()}"
    env = {
        **project_env(folder, xero_server.url, m3ter_server.url, callback),
        "BILLSYNC_SYNC_RETRY_BASE_SECONDS": "0.05",
        "BILLSYNC_SYNC_RETRY_MAX_SECONDS": "0.5",
        # Xero's limits on a 3-second "minute", in the sandbox (the sync tests set its time
        # scale) and in our shared limits alike.
        "BILLSYNC_XERO_MINUTE_SECONDS": "3",
    }
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSYNC_")}
    child_env.update(env, PREFECT_API_URL=prefect_server, PREFECT_RUNNER_POLL_FREQUENCY="1")
    output = folder / "serve.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve", "--cron", NEVER],
        cwd=ROOT,
        env=child_env,
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    wanted = {name for _, name in FLOWS}
    deadline = time.monotonic() + 120
    found: dict[str, str] = {}
    while not (wanted <= set(found) and _healthy(callback)):
        assert proc.poll() is None, output.read_text()[-3000:]
        assert time.monotonic() < deadline, "deployments.serve did not come up in 120 s"
        time.sleep(0.5)
        found = _deployments(prefect_server)
    try:
        yield Served(prefect_server, env, callback, output, found, proc)
    finally:
        stop(proc)


def default_sigint() -> None:
    """Serve takes Ctrl-C as from a terminal: a process started in the background may have
    inherited SIGINT ignored (and would pass that on to its flow-run processes)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a serve process: SIGTERM lets it stop the Prefect server it started (that server
    runs in its own session, out of reach of a signal to serve's group); SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def as_served(served: Served, clean_settings: pytest.MonkeyPatch) -> Served:
    """This test process reads the served process's project database and settings."""
    adopt(served, clean_settings)
    return served
