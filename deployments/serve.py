"""``python -m deployments.serve`` (``make serve``): every flow served from one process.

The embedded default: when no ``PREFECT_API_URL`` is set it starts ``prefect server start`` on
loopback (UI included; its database and log in ``<data dir>/prefect``, not the user's
``~/.prefect``), serves all flows (``sync_bills`` on a cron schedule, the others on demand),
runs the OAuth consent callback from ``web/`` on the redirect URI's port, and with
``--sandbox`` the Xero and m3ter sandboxes too, their state kept in ``<data dir>/sandbox`` across
restarts (``--fresh-sandbox`` starts them anew). It prints where the UI is.

The server runs in its own session: Ctrl-C reaches this process (and the flow-run processes it
started) only, so serve can end its runs and pause its deployments through a live API
(``deployments.serving``) and then stop the server, instead of retrying against a server the
same Ctrl-C already killed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from deployments.catalog import DEFAULT_SYNC_CRON, flows_to_serve

XERO_SANDBOX_PORT = 8760
M3TER_SANDBOX_PORT = 8770


@contextlib.contextmanager
def prefect_server(port: int, home: Path) -> Iterator[str]:
    """A Prefect server subprocess on loopback, its home and log in ``home``; yields its API
    URL and stops it (SIGTERM, then SIGKILL after 5 s) when the block ends."""
    home.mkdir(parents=True, exist_ok=True)
    api = f"http://127.0.0.1:{port}/api"
    log = (home / "server.log").open("ab")
    proc = subprocess.Popen(  # noqa: S603 (fixed arguments)
        [sys.executable, "-m", "prefect", "server", "start"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        # The UI is told where its API is: it otherwise assumes port 4200 whatever --port says.
        env={**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_API_URL": api},
        start_new_session=True,  # Ctrl-C in the terminal must not kill it before serve stops
    )
    try:
        _wait_healthy(api, proc, home / "server.log")
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_healthy(api: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited during start-up: see {log}")
        time.sleep(0.5)
    raise RuntimeError(f"prefect server did not become healthy in 120 s: see {log}")


def sandbox_settings(xero_url: str, m3ter_url: str) -> dict[str, str]:
    """The project's settings (environment) that point it at a Xero and an m3ter sandbox."""
    from sandbox.m3ter import app as m3ter_app
    from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    return {
        "BILLSYNC_XERO_CLIENT_ID": DEFAULT_CLIENT_ID,
        "BILLSYNC_XERO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "BILLSYNC_XERO_LOGIN_URL": xero_url,
        "BILLSYNC_XERO_IDENTITY_URL": xero_url,
        "BILLSYNC_XERO_API_URL": xero_url,
        "BILLSYNC_M3TER_API_URL": m3ter_url,
        "BILLSYNC_M3TER_ORG_ID": m3ter_app.DEFAULT_ORG_ID,
        "BILLSYNC_M3TER_CLIENT_ID": m3ter_app.DEFAULT_CLIENT_ID,
        "BILLSYNC_M3TER_CLIENT_SECRET": m3ter_app.DEFAULT_CLIENT_SECRET,
    }


@contextlib.contextmanager
def sandboxes(
    state_dir: Path,
    *,
    fresh: bool = False,
    xero_port: int = XERO_SANDBOX_PORT,
    m3ter_port: int = M3TER_SANDBOX_PORT,
) -> Iterator[dict[str, str]]:
    """Both sandboxes on loopback, their state kept in ``state_dir`` (``xero.json``,
    ``m3ter.json``) so that a restart keeps the credential's tokens, the documents and the bills
    (``fresh``: started anew, the files replaced); yields the settings pointing at them. On exit
    they stop and save a last time. ``StateFileError`` for a state file they cannot use."""
    from sandbox.m3ter import app as m3ter_app
    from sandbox.m3ter.persistence import persist_app as persist_m3ter
    from sandbox.serve import run_in_thread
    from sandbox.xero.app import create_app
    from sandbox.xero.persistence import persist_app as persist_xero

    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for name, app, persist, port in (
            ("xero", create_app(), persist_xero, xero_port),
            ("m3ter", m3ter_app.create_app(), persist_m3ter, m3ter_port),
        ):
            stack.callback(persist(app, state_dir / f"{name}.json", fresh=fresh).close)
            server = run_in_thread(app, port=port)
            stack.callback(server.stop, 2)
            urls[name] = server.url
        yield sandbox_settings(urls["xero"], urls["m3ter"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", action="store_true", help="also run the sandboxes")
    parser.add_argument(
        "--fresh-sandbox",
        action="store_true",
        help="with --sandbox: start the sandboxes anew instead of from <data dir>/sandbox",
    )
    parser.add_argument("--xero-sandbox-port", type=int, default=XERO_SANDBOX_PORT)
    parser.add_argument("--m3ter-sandbox-port", type=int, default=M3TER_SANDBOX_PORT)
    parser.add_argument("--prefect-port", type=int, default=4200)
    parser.add_argument("--cron", default=DEFAULT_SYNC_CRON, help="sync_bills schedule")
    parser.add_argument(
        "--interval", type=float, default=None, help="sync_bills every N seconds (not --cron)"
    )
    args = parser.parse_args(argv)
    if args.fresh_sandbox and not args.sandbox:
        parser.error("--fresh-sandbox needs --sandbox")

    from config.settings import get_settings
    from sandbox.persist import StateFileError
    from store.crypto import cipher_from_settings

    with contextlib.ExitStack() as stack:
        if args.sandbox:
            state_dir = (get_settings().data_dir / "sandbox").resolve()
            try:
                started = sandboxes(
                    state_dir,
                    fresh=args.fresh_sandbox,
                    xero_port=args.xero_sandbox_port,
                    m3ter_port=args.m3ter_sandbox_port,
                )
                os.environ.update(stack.enter_context(started))
            except StateFileError as exc:
                parser.error(str(exc))
        get_settings.cache_clear()
        settings = get_settings()
        cipher_from_settings(settings, create_if_missing=args.sandbox)
        # Before Prefect is imported: its settings (home, database) are read once.
        default_home = (settings.data_dir / "prefect").resolve()
        home = Path(os.environ.setdefault("PREFECT_HOME", str(default_home)))
        api = os.environ.get("PREFECT_API_URL") or stack.enter_context(
            prefect_server(args.prefect_port, home.resolve())
        )
        os.environ["PREFECT_API_URL"] = api  # every thread and every flow-run process
        _serve(args, settings, api)
    return 0


def _serve(args: argparse.Namespace, settings: Any, api: str) -> None:
    from deployments.automations import default_within, ensure_zombie_automation
    from deployments.serving import serve_until_stopped
    from sandbox.serve import run_in_thread
    from web.callback import create_callback_app

    redirect = urlparse(settings.xero_redirect_uri)
    callback = run_in_thread(
        create_callback_app(prefect_api_url=api),
        host=redirect.hostname or "127.0.0.1",
        port=redirect.port or 80,
    )
    within = default_within()
    ensure_zombie_automation(within)  # a run whose process died shows Crashed, not Running
    print(f"Prefect UI:        {api.removesuffix('/api')}")
    print(f"zombie runs:       marked Crashed after {within:.0f} s without a heartbeat")
    print(f"consent callback:  {callback.url}{redirect.path}")
    if args.sandbox:
        kept = f"state in {(settings.data_dir / 'sandbox').resolve()}"
        if args.fresh_sandbox:
            kept += ", started fresh: credentials made before no longer work at Xero"
        print(f"Xero sandbox:      {settings.xero_api_url}")
        print(f"m3ter sandbox:     {settings.m3ter_api_url}")
        print(f"sandboxes:         {kept}")
    print(f"Prefect server log: {Path(os.environ['PREFECT_HOME']) / 'server.log'}", flush=True)
    try:
        serve_until_stopped(flows_to_serve(args.cron, interval=args.interval))
    finally:
        callback.stop(timeout=2)


if __name__ == "__main__":
    raise SystemExit(main())
