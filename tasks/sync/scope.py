"""What a ``sync_bills`` run reads before any integration's subflow starts.

``nothing_new`` lets a quiet scheduled sync end after a few queries; ``shared_plan`` is the one
reading of m3ter's bills that serves every integration of the run, when ``can_share`` says
they can all consume it at once.
"""

from __future__ import annotations

import datetime as dt

from prefect import get_run_logger
from prefect.settings import get_current_settings

from config.settings import Settings
from store.factory import database
from store.integrations import IntegrationView
from store.ledger import FAILED, Ledger, Outcome
from store.watermarks import Watermarks
from tasks.m3ter.client import M3terClient
from tasks.sync.ending import organisation_of
from tasks.sync.feed import ReadPlan
from tasks.sync.plan import ACCOUNT_EXCLUDED
from tasks.sync.reading import fingerprint
from tasks.sync.report import IntegrationReport


def nothing_new(
    settings: Settings, targets: list[IntegrationView]
) -> list[IntegrationReport] | None:
    """The summary rows of a run with nothing to do, or ``None`` when there may be work.

    Nothing to do: every integration has a watermark under its current rules, no failed or
    account-excluded bill in its ledger, and m3ter's newest-first search shows no bill modified
    since the oldest watermark (one request for one bill). Then no subflow starts: a quiet
    scheduled sync costs a few queries, not a flow run per integration.
    """
    if not targets:
        return None
    marks, ledger = Watermarks(database(settings)), Ledger(database(settings))
    cuts = []
    for view in targets:
        mark = marks.get(view.id)
        if mark is None or mark.fingerprint != fingerprint(view):
            return None
        if ledger.bill_ids(view.id, FAILED) or ledger.bill_ids(
            view.id, [Outcome.SKIPPED], reason=ACCOUNT_EXCLUDED
        ):
            return None
        cuts.append(mark.read_from(settings.sync_modified_overlap_seconds))
    cut = dt.datetime.fromtimestamp(min(cuts), dt.UTC)
    with M3terClient.from_settings(settings) as m3ter:
        if next(m3ter.iter_bill_pages_modified_since(cut, page_size=1), None):
            return None
    read = f"nothing modified since {cut.isoformat(timespec='seconds')}, no failed bills"
    get_run_logger().info("%s: no integration has work", read)
    return [
        IntegrationReport(v.name, v.id, organisation=organisation_of(settings, v), read=read)
        for v in targets
    ]


def can_share(targets: list[IntegrationView]) -> bool:
    """One shared reading needs every integration consuming at once: more than one, and a
    thread pool that runs them all together (Prefect's default pool is unbounded)."""
    limit = get_current_settings().tasks.runner.thread_pool_max_workers
    return len(targets) > 1 and (limit is None or limit >= len(targets))


def shared_plan(
    settings: Settings, targets: list[IntegrationView], since: dt.date | None
) -> ReadPlan:
    """The reading that serves every target: from the oldest watermark, or everything if one
    has none. (An integration whose accounts or configuration changed since its watermark
    finds out in its subflow and reads everything on its own.)"""
    marks = Watermarks(database(settings))
    cuts = []
    for view in targets:
        mark = marks.get(view.id)
        if mark is None:
            return ReadPlan(bill_date_start=since)
        cuts.append(mark.read_from(settings.sync_modified_overlap_seconds))
    return ReadPlan(bill_date_start=since, modified_since=min(cuts))
