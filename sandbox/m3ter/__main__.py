"""``python -m sandbox.m3ter --port 8766 --seed 1 --accounts 20 --bills-per-account 3``.

With ``--state-file PATH`` it starts from the state saved there and keeps saving it (accounts,
bills, mappings and every change made through ``/_sandbox``), so a restart loses nothing;
``--fresh`` generates the organisation anew and replaces the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.m3ter.app import create_app
from sandbox.m3ter.persistence import persist_app
from sandbox.m3ter.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID
from sandbox.persist import StateFileError
from sandbox.serve import run_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.m3ter", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--bills-per-account", type=int, default=3)
    parser.add_argument("--org-id", default=DEFAULT_ORG_ID)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--token-ttl", type=int, default=18000, help="seconds")
    parser.add_argument("--state-file", type=Path, help="keep the state in this JSON file")
    parser.add_argument("--fresh", action="store_true", help="ignore the state file's content")
    args = parser.parse_args(argv)
    if args.fresh and not args.state_file:
        parser.error("--fresh needs --state-file")
    app = create_app(
        seed=args.seed,
        accounts=args.accounts,
        bills_per_account=args.bills_per_account,
        org_id=args.org_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl=args.token_ttl,
    )
    try:
        snapshots = persist_app(app, args.state_file, fresh=args.fresh) if args.state_file else None
    except StateFileError as exc:
        parser.error(str(exc))
    print(f"m3ter sandbox: org {args.org_id}, client id {args.client_id}", flush=True)
    if snapshots is not None:
        print(f"state: {args.state_file}{' (fresh)' if args.fresh else ''}", flush=True)
    try:
        run_forever(app, host=args.host, port=args.port)
    finally:
        if snapshots is not None:
            snapshots.close()


if __name__ == "__main__":
    main()
