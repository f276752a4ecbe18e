"""What an integration's sync reads, and the rules its bills are planned under.

The reading: the bills asked for; else what changed since the watermark (and the bills that
failed before); else every bill, sharing the run's one reader (``tasks.sync.feed``) when it
covers that. The rules: the integration's accounts (looked up as bills need them, in a bounded
cache) and its external mappings (fetched when the first bill needs them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from config.settings import Settings, get_settings
from store.factory import database
from store.integrations import IntegrationView
from store.ledger import FAILED, Ledger, LedgerEntry, Outcome
from store.watermarks import Watermarks
from tasks.m3ter.client import M3terClient
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.sync.accounts import AccountLookup
from tasks.sync.feed import BillFeed, ReadPlan, ReadTracker, read_bills, read_bills_by_id
from tasks.sync.plan import ACCOUNT_EXCLUDED, unchanged


@task(name="load external mappings", cache_policy=NO_CACHE, persist_result=False)
def load_mappings(integration: IntegrationView) -> list[ExternalMapping]:
    """The integration's Account → Xero Contact mappings from m3ter (only those linked to
    this integration when it enforces linked mappings); none when it does not use them.

    Args:
        integration: the integration being synced.
    """
    if not integration.config.use_external_mapping_account_code:
        return []
    with M3terClient.from_settings(get_settings()) as m3ter:
        mappings = m3ter.list_external_mappings(
            integration_config_id=(
                integration.id if integration.config.enforce_external_mappings_for_config else None
            )
        )
    get_run_logger().info("%d Account → Xero Contact mapping(s)", len(mappings))
    return mappings


def fingerprint(integration: IntegrationView) -> str:
    """The rules that decided which bills the integration sends: a watermark is only good
    under them. (Accounts are not in it: an account that is allowed now but was not is found
    through its bills' SKIPPED rows; a new account's bills are new.)"""
    digest = hashlib.sha256(integration.config.model_dump_json().encode())
    digest.update(f"|{integration.credential_id}".encode())
    return digest.hexdigest()


class Rules:
    """The integration's accounts (``tasks.sync.accounts``: looked up as bills need them, in a
    bounded cache) and its external mappings (fetched once, by a task, when a bill first needs
    them): a sync whose bills are all unchanged looks up neither."""

    def __init__(self, integration: IntegrationView, accounts: AccountLookup) -> None:
        self.integration = integration
        self.accounts = accounts
        self._mappings: list[ExternalMapping] | None = None

    def for_page(
        self, bills: Sequence[Bill], entries: Mapping[str, LedgerEntry]
    ) -> tuple[dict[str, Account], list[ExternalMapping]]:
        """What planning these bills needs, fetched before it starts (planning is pure): the
        allowed accounts and the mappings, of the bills not already in Xero at their version."""
        needed = [b for b in bills if not unchanged(b, entries.get(b.id))]
        if not needed:
            return {}, []
        return self.accounts.allowed([b.account_id for b in needed]), self.mappings()

    def mappings(self) -> list[ExternalMapping]:
        """The mappings, fetched once (none, and no task, when the integration uses none)."""
        if not self.integration.config.use_external_mapping_account_code:
            return []
        if self._mappings is None:
            self._mappings = load_mappings(self.integration)
        return self._mappings


@dataclass
class Reading:
    """The pages one integration handles in a run, and whether they let its watermark move."""

    pages: Iterator[list[Bill]]
    expected: int = 0  # bills this reading is likely to hold (for the progress estimate)
    retries: int = 0
    tracker: ReadTracker | None = None  # set: a full or incremental read that may advance
    feed: BillFeed | None = None
    mode: str = ""

    def modified_through(self) -> float | None:
        """How far the watermark may move after this reading: None when it was not a whole read."""
        if self.tracker is None or (self.feed is not None and not self.feed.complete):
            return None
        return self.tracker.modified_through


def choose_reading(
    settings: Settings,
    integration: IntegrationView,
    rules: Rules,
    since: dt.date | None,
    bill_ids: list[str] | None,
    feed: BillFeed | None,
) -> Reading:
    """Choose what to read: the bills asked for; else what changed since the watermark (and the
    bills that failed before); else every bill. Shares the run's feed when it covers that."""
    if bill_ids is not None:
        if feed is not None:
            feed.leave(integration.id)
        return Reading(
            read_bills_by_id(settings, bill_ids),
            expected=len(bill_ids),
            mode=f"{len(bill_ids)} bill(s)",
        )
    mark = Watermarks(database(settings)).get(integration.id)
    current = mark is not None and mark.fingerprint == fingerprint(integration)
    plan = ReadPlan(
        bill_date_start=since,
        modified_since=(
            mark.read_from(settings.sync_modified_overlap_seconds)
            if mark is not None and current
            else None
        ),
    )
    ledger = Ledger(database(settings))
    if plan.modified_since is None:
        retry_ids: list[str] = []
        expected = ledger.count(integration.id)
    else:
        retry_ids = [bill for bill, _ in ledger.bill_ids(integration.id, FAILED)]
        excluded = ledger.bill_ids(integration.id, [Outcome.SKIPPED], reason=ACCOUNT_EXCLUDED)
        if excluded:
            allowed = rules.accounts.allowed(account for _, account in excluded)
            retry_ids += [bill for bill, account in excluded if account in allowed]
        expected = len(retry_ids)
    if feed is not None and feed.plan.covers(plan):
        tracker, main = feed.tracker, feed.pages(integration.id)
    else:
        if feed is not None:
            feed.leave(integration.id)
            feed = None
        tracker = ReadTracker()
        main = read_bills(settings, plan, tracker)
    mode = (
        "every bill"
        if plan.modified_since is None
        else "bills modified since "
        + dt.datetime.fromtimestamp(plan.modified_since, dt.UTC).isoformat(timespec="seconds")
        + f" and {len(retry_ids)} failed bill(s)"
    )
    if not retry_ids:
        return Reading(main, expected=expected, tracker=tracker, feed=feed, mode=mode)
    again = set(retry_ids)
    pages = itertools.chain(
        read_bills_by_id(settings, retry_ids),
        ([b for b in page if b.id not in again] for page in main),
    )
    return Reading(
        pages,
        expected=expected,
        retries=len(retry_ids),
        tracker=tracker,
        feed=feed,
        mode=mode,
    )
