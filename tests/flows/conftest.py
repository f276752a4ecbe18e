"""Fixtures for flow tests: the Xero sandbox and the consent callback on loopback, and project
settings (env) pointing at them, with a fresh project database per test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from config.settings import get_settings
from sandbox.serve import ServerHandle, run_in_thread
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS
from web.callback import create_callback_app


@pytest.fixture(scope="session")
def callback_server(prefect_server: str) -> Iterator[ServerHandle]:
    handle = run_in_thread(create_callback_app())
    yield handle
    handle.stop()


@pytest.fixture
def app_env(
    clean_settings: pytest.MonkeyPatch,
    tmp_path,
    encryption_key: str,
    xero_server: ServerHandle,
    xero_sandbox: Any,
    callback_server: ServerHandle,
    prefect_server: str,
) -> dict[str, str]:
    """Project settings for one test, as environment variables (subprocesses inherit them)."""
    env = {
        "BILLSYNC_DATA_DIR": str(tmp_path / "data"),
        "BILLSYNC_ENCRYPTION_KEY": encryption_key,
        "BILLSYNC_XERO_CLIENT_ID": DEFAULT_CLIENT_ID,
        "BILLSYNC_XERO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "BILLSYNC_XERO_REDIRECT_URI": f"{callback_server.url}/xero/callback",
        "BILLSYNC_XERO_LOGIN_URL": xero_server.url,
        "BILLSYNC_XERO_IDENTITY_URL": xero_server.url,
        "BILLSYNC_XERO_API_URL": xero_server.url,
        "PREFECT_API_URL": prefect_server,
    }
    for key, value in env.items():
        clean_settings.setenv(key, value)
    get_settings.cache_clear()
    return env


@dataclass
class Background:
    """A flow call running in a thread (it blocks while paused)."""

    thread: threading.Thread
    result: dict[str, Any]

    def join(self, timeout: float = 60) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "flow run did not finish"
        return self.result["state"]


@pytest.fixture
def in_background() -> Callable[..., Background]:
    def start(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Background:
        result: dict[str, Any] = {}

        def run() -> None:
            result["state"] = fn(*args, return_state=True, **kwargs)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return Background(thread, result)

    return start


__all__ = ["DEFAULT_ORGS"]


@pytest.fixture
def sync_env(
    app_env: dict[str, str],
    xero_server: ServerHandle,
    clean_settings: pytest.MonkeyPatch,
    m3ter_server: ServerHandle,
    m3ter_sandbox: Any,
) -> dict[str, str]:
    """Settings for sync tests: both sandboxes, fast retries, Xero's limits on a short minute."""
    from sandbox.m3ter import DEFAULT_CLIENT_ID as M3TER_ID
    from sandbox.m3ter import DEFAULT_CLIENT_SECRET as M3TER_SECRET
    from sandbox.m3ter import DEFAULT_ORG_ID

    env = {
        **app_env,
        "BILLSYNC_M3TER_API_URL": m3ter_server.url,
        "BILLSYNC_M3TER_ORG_ID": DEFAULT_ORG_ID,
        "BILLSYNC_M3TER_CLIENT_ID": M3TER_ID,
        "BILLSYNC_M3TER_CLIENT_SECRET": M3TER_SECRET,
        "BILLSYNC_SYNC_RETRY_BASE_SECONDS": "0.05",
        "BILLSYNC_SYNC_RETRY_MAX_SECONDS": "0.5",
        "BILLSYNC_SYNC_MAX_ATTEMPTS": "8",
        # Xero's limits on a 3-second "minute", in the sandbox and in our shared limits alike.
        "BILLSYNC_XERO_MINUTE_SECONDS": "3",
    }
    limits = httpx.post(f"{xero_server.url}/_sandbox/limits", json={"time_scale": 0.05})
    assert limits.status_code == 200, limits.text
    for key, value in env.items():
        clean_settings.setenv(key, value)
    get_settings.cache_clear()
    return env


@pytest.fixture
def connect(xero_server: ServerHandle) -> Callable[..., dict[str, Any]]:
    """Create an integration with options and connect a fresh ACTIVE credential to it."""
    from deployments.connect import connect_integration

    def make(name: str = "Main", org: str = DEFAULT_ORGS[0], **options: Any) -> dict[str, Any]:
        made = connect_integration(xero_server.url, name, org, **options)
        return {
            "id": made.integration_id,
            "name": name,
            "tenant_id": made.tenant_id,
            "credential_id": made.credential_id,
        }

    return make
