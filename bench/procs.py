"""Subprocesses the bench starts (sandboxes, Prefect server) and stops by pid, pass or fail."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg

from sandbox.serve import free_port

POSTGRES = "postgres@127.0.0.1:5432"


class Started:
    """The processes started so far; ``stop_all`` ends each by its pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited during start-up")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def xero_sandbox(started: Started, time_scale: float) -> str:
    port = free_port()
    proc = started.start(
        ["-m", "sandbox.xero", "--port", str(port), "--time-scale", str(time_scale)]
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_sandbox/state", proc)
    return url


def m3ter_sandbox(started: Started) -> str:
    port = free_port()
    proc = started.start(["-m", "sandbox.m3ter", "--port", str(port), "--accounts", "0"])
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_sandbox/state", proc)
    return url


def prefect_server(started: Started, database: str) -> str:
    """``prefect server start`` on loopback with its own PostgreSQL database."""
    port = free_port()
    env = {
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{POSTGRES}/{database}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    proc = started.start(
        ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], env
    )
    api = f"http://127.0.0.1:{port}/api"
    wait_http(f"{api}/health", proc, timeout=180)
    return api


def fresh_database(name: str) -> str:
    """Drop and create a PostgreSQL database; its SQLAlchemy URL for the project."""
    with psycopg.connect(f"postgresql://{POSTGRES}/test", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{POSTGRES}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(f"postgresql://{POSTGRES}/test", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def processes() -> Iterator[Started]:
    started = Started()
    try:
        yield started
    finally:
        started.stop_all()


def _stat(pid: int | str) -> tuple[str, list[str]]:
    """(command name, the fields after it) of ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        head, fields = stat.read().rsplit(")", 1)
    return head.split("(", 1)[1], fields.split()


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system) the process has used so far, from ``/proc/<pid>/stat``."""
    fields = _stat(proc.pid)[1]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time of the machine's PostgreSQL so far (it serves the project's database and the
    Prefect server's): the postmaster, the backends it has reaped, and the live ones."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name, fields = _stat(entry)
        except OSError:  # gone meanwhile
            continue
        if name != "postgres":
            continue
        total += int(fields[11]) + int(fields[12])
        if fields[1] == "1":  # the postmaster (its parent is init)
            total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")
