"""The sync's account lookup (tasks/sync/accounts.py) against the m3ter sandbox: the
integration's rules decide, each page's new accounts cost one request, and the cache stays
within its size, asking again for what it let go."""

from __future__ import annotations

import pytest

from config.integration import IntegrationConfig
from config.settings import Settings
from sandbox.m3ter.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID
from tasks.sync.accounts import AccountLookup


def settings_for(url: str, cache: int) -> Settings:
    return Settings(
        m3ter_api_url=url,
        m3ter_org_id=DEFAULT_ORG_ID,
        m3ter_client_id=DEFAULT_CLIENT_ID,
        m3ter_client_secret=DEFAULT_CLIENT_SECRET,
        sync_account_cache=cache,
    )


def account_requests(m3ter_server) -> int:
    return sum(n for p, n in m3ter_server.sandbox.counters.paths.items() if p.endswith("/accounts"))


@pytest.fixture
def ids(m3ter_server) -> list[str]:
    return [a["id"] for a in m3ter_server.sandbox.accounts]


def test_the_integrations_rules_decide_which_accounts_are_allowed(m3ter_server, ids):
    accounts = {a["id"]: a for a in m3ter_server.sandbox.accounts}
    country = accounts[ids[2]]["address"]["country"]
    config = IntegrationConfig(
        name="Rules",
        account_ids=ids[:6],
        account_filter=f'address.country != "{country}"',
    )
    expected = {i for i in ids[:6] if accounts[i]["address"]["country"] != country}
    with AccountLookup(settings_for(m3ter_server.url, 100), config) as lookup:
        allowed = lookup.allowed([*ids[:8], "no-such-account", None])
    assert expected and set(allowed) == expected and ids[2] not in allowed
    assert all(allowed[i].name == accounts[i]["name"] for i in expected)


def test_a_page_of_new_accounts_is_one_request_and_seen_accounts_are_free(m3ter_server, ids):
    config = IntegrationConfig(name="All")
    with AccountLookup(settings_for(m3ter_server.url, 100), config) as lookup:
        before = account_requests(m3ter_server)
        assert set(lookup.allowed(ids[:10] * 3)) == set(ids[:10])
        assert account_requests(m3ter_server) == before + 1
        assert set(lookup.allowed(ids[:10])) == set(ids[:10])
        assert account_requests(m3ter_server) == before + 1  # all cached
        assert lookup.looked_up == 10 and lookup.requests == 1


def test_the_cache_keeps_at_most_its_size_and_asks_again_for_what_it_let_go(m3ter_server, ids):
    config = IntegrationConfig(name="Small cache", restricted_account_ids=[ids[0]])
    with AccountLookup(settings_for(m3ter_server.url, 3), config) as lookup:
        assert set(lookup.allowed(ids[:5])) == set(ids[1:5])  # more than fit: all answered
        assert len(lookup._cache) == 3  # noqa: SLF001 - the bound is the point
        requests = account_requests(m3ter_server)
        assert set(lookup.allowed(ids[2:5])) == set(ids[2:5])  # the three most recent
        assert account_requests(m3ter_server) == requests
        assert set(lookup.allowed(ids[:2])) == {ids[1]}  # evicted: asked again, still restricted
        assert account_requests(m3ter_server) == requests + 1
        assert lookup.looked_up == 7
