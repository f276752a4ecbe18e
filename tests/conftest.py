"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_POSTGRES_URL is set), the
Prefect test server (one per session), and project settings pointed at loopback sandboxes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from config.settings import get_settings
from sandbox.serve import ServerHandle, free_port, run_in_thread
from sandbox.xero.app import create_app
from store.factory import forget_engines
from tasks.process import PROCESS

DATABASES = ["sqlite", "postgres"]


def _postgres_base_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("TEST_POSTGRES_URL is not set in CI: the PostgreSQL store tests must run")
        pytest.skip("TEST_POSTGRES_URL not set: PostgreSQL store tests skipped on this machine")
    return url


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty project database URL: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billsync.db'}"
        return
    base = _postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    forget_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One Prefect test server for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from deployments.flow_process import prepare

    prepare()  # the flows of this session run in this process, as an entry point's do

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Env-driven settings, re-read after the test changes the environment."""
    for key in list(os.environ):
        if key.startswith("BILLSYNC_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
    forget_engines()
    PROCESS.close()  # token providers and the like belong to the settings just dropped


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_inbox() -> Iterator[Inbox]:
    inbox = Inbox("127.0.0.1", free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


@pytest.fixture(scope="session")
def xero_server() -> Iterator[ServerHandle]:
    """The Xero sandbox (identity + Accounting API), one per session; tests reset it."""
    handle = run_in_thread(create_app())
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def m3ter_server() -> Iterator[ServerHandle]:
    from sandbox.m3ter.app import create_app as create_m3ter

    handle = run_in_thread(create_m3ter(seed=7, accounts=10, bills_per_account=2))
    yield handle
    handle.stop()


@pytest.fixture
def m3ter_sandbox(m3ter_server: ServerHandle) -> Any:
    sandbox = m3ter_server.server.config.app.state.sandbox
    sandbox.reset()
    return sandbox


@pytest.fixture
def xero_sandbox(xero_server: ServerHandle) -> Any:
    sandbox = xero_server.server.config.app.state.sandbox
    sandbox.reset()
    return sandbox


# -- tiers ------------------------------------------------------------------------------------
# Each test is marked by what it needs, from its fixtures and folder, so nobody has to remember
# to mark it: ``unit`` (no Prefect server: sandboxes, databases and plain code only; what
# ``make test-fast`` runs), ``flow`` (real flow runs on the session's Prefect test server),
# ``served`` (``python -m deployments.serve`` in a subprocess, driven through Prefect's API),
# ``browser`` (headless Chromium on the UI).
TIERS = ("unit", "flow", "served", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "browser" in fixtures:
            item.add_marker(pytest.mark.browser)
        if "/tests/served/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.served)
        elif "prefect_server" in fixtures:
            item.add_marker(pytest.mark.flow)
        if not any(item.get_closest_marker(t) for t in TIERS[1:]):
            item.add_marker(pytest.mark.unit)
