"""``python -m sandbox.m3ter --port 8766 --seed 1 --accounts 20 --bills-per-account 3``."""

from __future__ import annotations

import argparse

from sandbox.m3ter.app import create_app
from sandbox.m3ter.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID
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
    args = parser.parse_args(argv)
    app = create_app(
        seed=args.seed,
        accounts=args.accounts,
        bills_per_account=args.bills_per_account,
        org_id=args.org_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl=args.token_ttl,
    )
    print(f"m3ter sandbox: org {args.org_id}, client id {args.client_id}", flush=True)
    run_forever(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
