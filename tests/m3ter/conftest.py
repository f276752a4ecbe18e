"""Fixtures: an m3ter sandbox on loopback and our client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import m3ter
import pytest
from starlette.applications import Starlette

from sandbox.m3ter.app import create_app
from sandbox.m3ter.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORG_ID,
    M3terSandbox,
)
from sandbox.serve import ServerHandle, run_in_thread
from tasks.m3ter.client import M3terClient


@dataclass
class Running:
    app: Starlette
    server: ServerHandle

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def sandbox(self) -> M3terSandbox:
        return self.app.state.sandbox  # type: ignore[no-any-return]


def sandbox_token(http: httpx.Client) -> str:
    """An access token from the sandbox on ``http``'s base URL (client credentials)."""
    answer = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    return str(answer.json()["access_token"])


@pytest.fixture
def m3ter_server() -> Iterator[Running]:
    """A fresh sandbox (seed 1, 20 accounts x 3 bills) served over HTTP on loopback."""
    app = create_app(seed=1, accounts=20, bills_per_account=3)
    with run_in_thread(app) as server:
        yield Running(app, server)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(m3ter_server: Running, sleeps: list[float]) -> Iterator[M3terClient]:
    """Our client; backoff waits are recorded, not slept, so retry tests stay fast."""
    with M3terClient(
        m3ter_server.url,
        DEFAULT_ORG_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        timeout=5,
        max_retries=3,
        sleep=sleeps.append,
    ) as c:
        yield c


@pytest.fixture
def sdk(m3ter_server: Running) -> Iterator[m3ter.M3ter]:
    """m3ter's own Python SDK on the sandbox, checking every answer strictly."""
    client = m3ter.M3ter(
        api_key=DEFAULT_CLIENT_ID,
        api_secret=DEFAULT_CLIENT_SECRET,
        org_id=DEFAULT_ORG_ID,
        base_url=m3ter_server.url,
        max_retries=0,
        _strict_response_validation=True,
    )
    yield client
    client.close()
