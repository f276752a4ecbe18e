"""Run an ASGI app with uvicorn on loopback, in a background thread or in the foreground.

Tests, the demo and ``deployments.serve`` all start sandboxes and the callback app this way.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (small race, fine on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerHandle:
    """A running server: ``url`` to call, ``stop()`` to end it (idempotent)."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    _stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(
    app: object, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 15
) -> ServerHandle:
    """Start ``app`` in a daemon thread and return once it accepts connections."""
    port = port or free_port(host)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"server on {host}:{port} did not start")
        time.sleep(0.02)
    return ServerHandle(server=server, thread=thread, host=host, port=port)


def run_forever(app: object, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve ``app`` in the foreground (the ``python -m sandbox.*`` entry points)."""
    uvicorn.run(app, host=host, port=port or free_port(host), log_level="info")
