"""The processes and databases the cluster check starts, and their certain end.

Each process runs in its own session (process group) with its output in a log file. Stopping
walks the process tree first (a Prefect process worker starts flow runs in sessions of their
own), then signals every pid found: SIGTERM, a grace period, SIGKILL. ``stop_all`` runs from
``finally`` and from ``atexit``, so a failed assertion or a Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg import sql


class ClusterError(RuntimeError):
    """A part did not start or a check failed; the message says which and why."""


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, children first found first."""
    parents = _parents()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def parent_of(pid: int) -> int | None:
    return _parents().get(pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return state.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


@dataclass
class Processes:
    """Named subprocesses, each in its own session, logged to ``log_dir/<name>.log``."""

    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # name -> (args, env, cwd) of its last start, so ``restart`` starts it the same way.
    specs: dict[str, tuple[list[str], dict[str, str], Path]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop_all)

    def start(
        self, name: str, args: list[str], env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 (our own fixed commands)
            args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs[name] = proc
        self.specs[name] = (args, env, cwd)
        return proc

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` again with the command, environment and folder of its last start."""
        if name in self.procs:
            raise ClusterError(f"{name} is still running; stop it before starting it again")
        self.note(name, "started again")
        return self.start(name, *self.specs[name])

    def note(self, name: str, text: str) -> None:
        """A marked line in ``name``'s log, to find an event among its own lines."""
        stamp = time.strftime("%H:%M:%S")
        with (self.log_dir / f"{name}.log").open("a") as log:
            log.write(f"===== cluster check {stamp}: {text} =====\n")

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def stop(self, name: str, grace: float = 10) -> bool:
        """SIGTERM the process, its group and every descendant; SIGKILL what outlives ``grace``.

        True when everything ended on SIGTERM (or nothing was running)."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return True
        pids = [proc.pid, *descendants(proc.pid)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        kill_pids(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in pids if p != proc.pid):
            time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        graceful = proc.poll() is not None and not any(alive(p) for p in pids)
        pids += descendants(proc.pid) if proc.poll() is None else []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        kill_pids([p for p in pids if alive(p)])
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        return graceful

    def forget(self, name: str) -> subprocess.Popen[bytes] | None:
        """Drop a process already killed on purpose (reaping it)."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        return proc

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``port`` and a server could bind it now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def wait_port_free(port: int, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not port_free(port):
        if time.monotonic() > deadline:
            raise ClusterError(f"port {port} still taken {timeout:.0f} s after {what} stopped")
        time.sleep(0.2)


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    """Wait until ``url`` answers 200; fail fast if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if proc.poll() is not None:
            raise ClusterError(f"{what} exited during start-up (code {proc.returncode})")
        time.sleep(0.3)
    raise ClusterError(f"{what} did not answer {url} within {timeout:.0f} s")


@dataclass
class Databases:
    """Fresh PostgreSQL databases, dropped (connections forced off) at the end."""

    admin_url: str
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        atexit.register(self.drop_all)

    def create(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        return name

    def drop_all(self) -> None:
        while self.names:
            name = self.names.pop()
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
