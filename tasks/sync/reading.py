"""What an integration's sync reads, and the rules its bills are planned under.

The reading: the bills asked for; else what changed since the watermark (and the bills that
failed before); else every bill, sharing the run's one reader (``tasks.sync.feed``) when it
covers that. The rules: the integration's accounts (looked up as bills need them, in a bounded
cache), its external mappings and its Xero organisation (fetched when the first bill needs them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from config.errors import AuthError, Interrupted, TransientError
from config.settings import Settings, get_settings
from store.factory import database
from store.integrations import IntegrationView
from store.ledger import FAILED, Ledger, LedgerEntry, Outcome
from store.watermarks import Watermarks
from tasks.m3ter.client import M3terClient
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.sync.accounts import AccountLookup
from tasks.sync.feed import BillFeed, ReadPlan, ReadTracker, read_bills, read_bills_by_id
from tasks.sync.organisation import organisation_reference
from tasks.sync.plan import ACCOUNT_EXCLUDED, unchanged
from tasks.sync.preflight import product_mappings
from tasks.xero.reference import XeroReference


@task(name="load external mappings", cache_policy=NO_CACHE, persist_result=False)
def load_mappings(integration: IntegrationView) -> list[ExternalMapping]:
    """The integration's Xero external mappings from m3ter, in one listing: Account → Contact
    (when it sends to mapped contacts) and Product → Account, Item, TaxRate or TrackingOption
    (only those linked to this integration when it enforces linked mappings).

    Args:
        integration: the integration being synced.
    """
    config = integration.config
    with M3terClient.from_settings(get_settings()) as m3ter:
        listed = m3ter.list_external_mappings(
            external_table=None,
            m3ter_entity=None,
            integration_config_id=(
                integration.id if config.enforce_external_mappings_for_config else None
            ),
        )
    contacts = [
        m
        for m in listed
        if config.use_external_mapping_account_code
        and m.m3ter_entity.lower() == "account"
        and m.external_table.lower() == "contact"
    ]
    products = product_mappings(config, integration.id, listed)
    get_run_logger().info(
        "%d Account → Xero Contact and %d Product → Xero mapping(s)", len(contacts), len(products)
    )
    return contacts + products


def fingerprint(integration: IntegrationView) -> str:
    """The rules that decided which bills the integration sends: a watermark is only good
    under them. (Accounts are not in it: an account that is allowed now but was not is found
    through its bills' SKIPPED rows; a new account's bills are new.)"""
    digest = hashlib.sha256(integration.config.model_dump_json().encode())
    digest.update(f"|{integration.credential_id}".encode())
    return digest.hexdigest()


class Rules:
    """What planning a page needs, fetched before it starts (planning is pure): the
    integration's accounts (``tasks.sync.accounts``: looked up as bills need them, in a bounded
    cache), its external mappings and its Xero organisation's reference data (each fetched
    once, when a bill first needs them). A sync whose bills are all unchanged fetches none."""

    def __init__(
        self,
        integration: IntegrationView,
        accounts: AccountLookup,
        tenant_id: str = "",
        run_key: str | None = None,
    ) -> None:
        self.integration = integration
        self.accounts = accounts
        self.tenant_id = tenant_id
        self.run_key = run_key
        self._mappings: list[ExternalMapping] | None = None
        self._reference: XeroReference | None = None
        self._unread = False  # Xero would not answer the reading: not asked again this run
        self.xero_calls = 0  # what reading the organisation cost this integration

    def for_page(
        self, bills: Sequence[Bill], entries: Mapping[str, LedgerEntry]
    ) -> tuple[dict[str, Account], list[ExternalMapping], XeroReference | None]:
        """The allowed accounts, the mappings and the organisation, for the bills not already
        in Xero at their version (``CodingRefused`` when the organisation would refuse the
        integration's coding)."""
        needed = [b for b in bills if not unchanged(b, entries.get(b.id))]
        if not needed:
            return {}, [], self._reference
        return self.accounts.allowed([b.account_id for b in needed]), self.mappings(), self.xero()

    def mappings(self) -> list[ExternalMapping]:
        """The mappings, fetched once."""
        if self._mappings is None:
            self._mappings = load_mappings(self.integration)
        return self._mappings

    def xero(self) -> XeroReference | None:
        """The organisation's reference data, read and checked once. None without a tenant,
        or when Xero would not answer (the credential refused, the day's calls spent, retries
        spent): the documents then go unchecked, and posting meets the same refusal and
        records it as it always does."""
        if self._reference is None and self.tenant_id and not self._unread:
            try:
                self._reference, self.xero_calls = organisation_reference(
                    self.integration, self.tenant_id, self.mappings(), self.run_key
                )
            except Interrupted:
                raise  # the run is stopping: not a reason to go unchecked
            except (AuthError, TransientError) as exc:
                self._unread = True
                get_run_logger().warning(
                    "could not read the Xero organisation, so its documents go unchecked: %s", exc
                )
        return self._reference


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
