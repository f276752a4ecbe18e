"""A private PostgreSQL instance for the project database, one the cluster check may restart.

The Prefect server's database stays on the shared PostgreSQL (``--postgres``); the project's
lives here, so scenario 8 can take it away mid-sync (``pg_ctl stop -m fast``, as a failover or a
restart would) without touching anybody else's databases. ``initdb`` refuses to run as root, so
as root every tool runs as the ``postgres`` user (``runuser``), in a folder that user owns.
``remove`` (from ``finally`` and ``atexit``) stops the server and deletes its files, keeping its
log next to the other processes' logs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from deployments.cluster.processes import ClusterError, alive
from sandbox.serve import free_port

SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin")
TOOLS = ("initdb", "pg_ctl")
USER = "postgres"


def find_binaries() -> Path:
    """The folder holding initdb and pg_ctl: the newest packaged version, else PATH."""

    def version(folder: Path) -> tuple[int, ...]:
        digits = "".join(c if c.isdigit() else " " for c in str(folder))
        return tuple(int(n) for n in digits.split())

    candidates = sorted(
        (p for pattern in SEARCH for p in Path("/").glob(pattern.lstrip("/"))),
        key=version,
        reverse=True,
    )
    for folder in candidates:
        if all((folder / tool).is_file() for tool in TOOLS):
            return folder
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    raise ClusterError(
        f"no PostgreSQL server binaries ({', '.join(TOOLS)}) in {', '.join(SEARCH)} or on PATH: "
        "install the PostgreSQL server package (e.g. postgresql-15) for the project database"
    )


@dataclass
class PrivatePostgres:
    """One PostgreSQL server on a free loopback port, in a temporary folder of its own."""

    log_dir: Path  # where its log is copied on removal
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=find_binaries)
    root: Path = field(init=False)
    running: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                pwd.getpwnam(USER)
            except KeyError as exc:
                raise ClusterError(
                    f"running as root, but there is no '{USER}' user to run PostgreSQL as"
                ) from exc
        self.root = Path(tempfile.mkdtemp(prefix="billsync-cluster-pg-"))
        if self._as_root:
            shutil.chown(self.root, USER, USER)
        atexit.register(self.remove)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def _tool(self, tool: str, *args: str, timeout: float = 90) -> str:
        command = [str(self.bin_dir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", USER, "--", *command]
        # Output to a file, not a pipe: the server pg_ctl starts must not hold our pipe open.
        with tempfile.TemporaryFile() as out:
            done = subprocess.run(  # noqa: S603 (our own fixed commands)
                command,
                cwd=self.root,  # the postgres user can enter it (it cannot enter /root)
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
            out.seek(0)
            text = out.read().decode(errors="replace")
        if done.returncode != 0:
            raise ClusterError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{text}")
        return text

    def init(self) -> None:
        """A fresh cluster (trust on loopback only, as the shared one is set up)."""
        self._tool("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8",
                   "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            # A test database: a crash loses nothing we need, and fsync costs two cores dearly.
            "-c fsync=off -c max_connections=200"
        )
        self._tool("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log),
                   "-w", "-t", "60", "start")  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast``: connections are cut, open transactions rolled back, as a restart does."""
        self._tool("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def restart(self, down_seconds: float) -> tuple[float, float]:
        """Stop (fast), stay down ``down_seconds``, start: (wall clock gone, wall clock back)."""
        gone = time.time()
        self.stop()
        time.sleep(down_seconds)
        self.start()
        return gone, time.time()

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres", "postgresql"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def _postmaster(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def remove(self) -> None:
        """Stop the server whatever its state, keep its log, delete its files (idempotent)."""
        if not self.root.exists():
            return
        pid = self._postmaster()
        if pid is not None and alive(pid):
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self.stop("fast")
            if alive(pid):
                with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                    self.stop("immediate")
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.running = False
        if self.log.exists():
            with contextlib.suppress(OSError):
                self.log_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.log, self.log_dir / "postgres-project.log")
        shutil.rmtree(self.root, ignore_errors=True)
