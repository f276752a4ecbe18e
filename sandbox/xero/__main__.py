"""``python -m sandbox.xero``: the Xero sandbox (identity + Accounting API) on loopback."""

from __future__ import annotations

import argparse

from sandbox.serve import run_forever
from sandbox.xero.app import create_app
from sandbox.xero.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORGS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8760)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--orgs", default=",".join(DEFAULT_ORGS), help="comma-separated names")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="0.05: a rate-limit minute lasts 3 s"
    )
    args = parser.parse_args(argv)
    orgs = [o.strip() for o in args.orgs.split(",") if o.strip()]
    app = create_app(args.client_id, args.client_secret, orgs, time_scale=args.time_scale)
    print(f"Xero sandbox on http://{args.host}:{args.port} (client id {args.client_id})")
    run_forever(app, args.host, args.port)


if __name__ == "__main__":
    main()
