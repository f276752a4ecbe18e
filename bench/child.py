"""One sync measurement in its own process (``python -m bench.child SPEC_JSON``).

Connects the integrations the spec names, runs ``sync_bills`` (and, if asked, a second,
nothing-changed ``sync_bills``), and prints one JSON line: wall times, Xero calls per run and
the process's peak RSS. Run as a child so its peak RSS is the sync's alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _cpu_seconds() -> float:
    """This process's CPU time (all threads): what the sync itself costs the machine."""
    return time.process_time()


def _xero_calls(xero_url: str) -> dict[str, int]:
    state = httpx.get(f"{xero_url}/_sandbox/state?documents=false", timeout=120).json()
    return {t: int(n) for t, n in state["accounting"]["calls"].items()}


def _tenant_spans() -> dict[str, dict[str, float]]:
    """Per tenant, from the ledger: documents COMPLETE and the seconds from the first STARTED
    to the last COMPLETE (the posting span, without start-up and reads)."""
    from sqlalchemy import func, select

    from config.settings import get_settings
    from store.factory import database
    from store.schema import bill_ledger as t

    query = (
        select(t.c.tenant_id, func.count(), func.min(t.c.first_seen_at), func.max(t.c.sent_at))
        .where(t.c.outcome == "COMPLETE")
        .group_by(t.c.tenant_id)
    )
    with database(get_settings()).connect() as conn:
        return {
            tenant: {"documents": n, "span_seconds": round(last - first, 3)}
            for tenant, n, first, last in conn.execute(query)
        }


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    from deployments.connect import connect_integration
    from deployments.flow_process import prepare
    from flows.sync import sync_bills
    from tasks.sync.summary import run_summary

    prepare()  # the flows run in this process

    xero = spec["xero_url"]
    tenants: dict[str, str] = {}
    for item in spec["integrations"]:
        connected = connect_integration(
            xero, item["name"], org=item["org"], account_ids=item["account_ids"]
        )
        tenants[item["name"]] = connected.tenant_id
    result: dict[str, Any] = {"tenants": tenants, "runs": []}
    for _ in range(2 if spec.get("rerun") else 1):
        before = _xero_calls(xero)
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        state = sync_bills(return_state=True)
        wall = time.perf_counter() - started
        after = _xero_calls(xero)
        data = run_summary(state)
        result["runs"].append(
            {
                "wall_seconds": round(wall, 3),
                "state": state.type.value,
                "xero_calls": sum(after.values()) - sum(before.values()),
                "integrations": data.get("integrations", []),
                "peak_rss_mb": round(_peak_rss_mb(), 1),
                "cpu_seconds": round(_cpu_seconds() - cpu_before, 2),
            }
        )
        if len(result["runs"]) == 1:
            result["spans"] = _tenant_spans()
    return result


def _sampled(fn: Any, *args: Any) -> Any:
    """Run ``fn`` while a thread samples every thread's stack (what cProfile cannot see)."""
    import collections
    import threading

    seen: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    done = threading.Event()
    me = threading.get_ident()

    def sample() -> None:
        while not done.wait(0.005):
            for ident, frame in sys._current_frames().items():  # noqa: SLF001
                if ident == me:
                    continue
                names = []
                f = frame
                while f is not None:
                    code = f.f_code
                    names.append(f"{code.co_filename.split('site-packages/')[-1]}:{code.co_name}")
                    f = f.f_back
                leaves[names[0]] += 1
                for name in set(names):
                    seen[name] += 1

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return fn(*args)
    finally:
        done.set()
        sampler.join()
        for title, counter in (("inclusive", seen), ("leaf", leaves)):
            print(f"--- {title} samples", file=sys.stderr)
            for name, count in counter.most_common(60):
                print(f"{count:7d} {name}", file=sys.stderr)


def main() -> None:
    spec = json.loads(sys.stdin.read())
    os.environ.update(spec["env"])
    from config.settings import get_settings

    get_settings.cache_clear()
    if not os.environ.get("BENCH_PROFILE"):
        print(json.dumps(_run(spec)), flush=True)
        return
    result = _sampled(_run, spec)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
