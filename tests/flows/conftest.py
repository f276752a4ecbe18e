"""Fixtures for flow tests: the Xero sandbox and the consent callback on loopback, and project
settings (env) pointing at them, with a fresh project database per test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from config.settings import get_settings
from sandbox.serve import ServerHandle, run_in_thread
from sandbox.xero.app import create_app
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS
from web.callback import create_callback_app


@pytest.fixture(scope="session")
def xero_server() -> Iterator[ServerHandle]:
    handle = run_in_thread(create_app())
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def callback_server(prefect_server: str) -> Iterator[ServerHandle]:
    handle = run_in_thread(create_callback_app())
    yield handle
    handle.stop()


@pytest.fixture
def xero_sandbox(xero_server: ServerHandle) -> Any:
    sandbox = xero_server.server.config.app.state.sandbox
    sandbox.reset()
    return sandbox


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
