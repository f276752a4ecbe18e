"""``python -m sandbox.xero``: the Xero sandbox (identity + Accounting API) on loopback.

With ``--state-file PATH`` it starts from the state saved there and keeps saving it (apps,
tokens, organisations' books, documents, payments), so a restart loses nothing; ``--fresh``
starts anew and replaces the file. Without it the sandbox lives in memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.persist import StateFileError
from sandbox.serve import run_forever
from sandbox.xero.app import create_app
from sandbox.xero.persistence import persist_app
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.xero", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8760)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--orgs", default=",".join(DEFAULT_ORGS), help="comma-separated names")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="0.05: a rate-limit minute lasts 3 s"
    )
    parser.add_argument("--state-file", type=Path, help="keep the state in this JSON file")
    parser.add_argument("--fresh", action="store_true", help="ignore the state file's content")
    args = parser.parse_args(argv)
    if args.fresh and not args.state_file:
        parser.error("--fresh needs --state-file")
    orgs = [o.strip() for o in args.orgs.split(",") if o.strip()]
    app = create_app(args.client_id, args.client_secret, orgs, time_scale=args.time_scale)
    try:
        snapshots = persist_app(app, args.state_file, fresh=args.fresh) if args.state_file else None
    except StateFileError as exc:
        parser.error(str(exc))
    print(f"Xero sandbox on http://{args.host}:{args.port} (client id {args.client_id})")
    if snapshots is not None:
        print(f"state: {args.state_file}{' (fresh)' if args.fresh else ''}", flush=True)
    try:
        run_forever(app, args.host, args.port)
    finally:
        if snapshots is not None:
            snapshots.close()


if __name__ == "__main__":
    main()
