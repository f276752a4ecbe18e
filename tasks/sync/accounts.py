"""The integration's accounts, looked up as its bills need them, in a bounded cache.

Why not load them all up front: a sync's memory must not grow with the organisation (holding
every allowed account grew the sync with the number of accounts: bench/README.md). Instead
each page's new accounts are asked for by id (50 to a request), checked against the
integration's rules (allowed list, restricted list, filter), and the answer, allowed or not,
is kept in a least-recently-used cache of ``sync_account_cache`` accounts. Bills of one
account tend to sit together, so a page mostly needs accounts it has just seen, or a request
for the next few.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from types import TracebackType

from config.integration import IntegrationConfig
from config.settings import Settings
from tasks.m3ter.client import IDS_PER_REQUEST, M3terClient
from tasks.m3ter.models import Account
from tasks.mapping.selection import account_allowed


class AccountLookup:
    """``allowed(ids)``: the accounts among ``ids`` that the integration sends bills for."""

    def __init__(self, settings: Settings, config: IntegrationConfig) -> None:
        self.settings = settings
        self.size = settings.sync_account_cache
        self.config = config
        self._cache: OrderedDict[str, Account | None] = OrderedDict()
        self._client: M3terClient | None = None
        self.looked_up = 0  # accounts asked of m3ter
        self.requests = 0  # m3ter requests made for them

    def __enter__(self) -> AccountLookup:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def allowed(self, account_ids: Iterable[str | None]) -> dict[str, Account]:
        """The allowed accounts among ``account_ids``, by id (unknown or excluded ids are
        absent): cached answers first, then m3ter for the rest."""
        wanted = dict.fromkeys(a for a in account_ids if a)
        answers: dict[str, Account | None] = {}
        missing = []
        for account_id in wanted:
            if account_id in self._cache:
                self._cache.move_to_end(account_id)
                answers[account_id] = self._cache[account_id]
            else:
                missing.append(account_id)
        if missing:
            found = {a.id: a for a in self._m3ter().iter_accounts(ids=missing, page_size=200)}
            self.requests += -(-len(missing) // IDS_PER_REQUEST)
            self.looked_up += len(missing)
            for account_id in missing:
                account = found.get(account_id)
                allowed = account is not None and account_allowed(self.config, account)
                answer = account if allowed else None
                answers[account_id] = answer
                self._remember(account_id, answer)
        return {a: acc for a, acc in answers.items() if acc is not None}

    def _remember(self, account_id: str, answer: Account | None) -> None:
        self._cache[account_id] = answer
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)

    def _m3ter(self) -> M3terClient:
        if self._client is None:
            self._client = M3terClient.from_settings(self.settings)
        return self._client
