"""Our ``M3terClient`` against the sandbox over loopback: paging, filters, errors, tokens."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from config.errors import AuthError, NotFound, PermanentError, RateLimitError, TransientError
from config.settings import Settings
from sandbox.m3ter import generator as gen
from sandbox.m3ter.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID
from sandbox.serve import free_port
from tasks.m3ter.client import M3terClient
from tasks.m3ter.models import Bill
from tests.m3ter.conftest import Running

BILLS_PATH = f"/organizations/{DEFAULT_ORG_ID}/bills"
SEARCH_PATH = f"{BILLS_PATH}/search"


def _fault(server: Running, **body: object) -> None:
    httpx.post(f"{server.url}/_sandbox/faults", json=body).raise_for_status()


def _calls(server: Running, path: str = BILLS_PATH) -> int:
    return server.sandbox.counters.paths.get(path, 0)


def test_pages_are_fetched_lazily(client: M3terClient, m3ter_server: Running) -> None:
    pages = client.iter_bill_pages(page_size=7)
    first = next(pages)
    assert len(first) == 7 and all(isinstance(b, Bill) for b in first)
    assert _calls(m3ter_server) == 1  # only the first page was asked for
    second = next(pages)
    assert _calls(m3ter_server) == 2
    rest = list(pages)
    sizes = [len(p) for p in (first, second, *rest)]
    assert sizes == [7] * 8 + [4]
    assert _calls(m3ter_server) == 9
    ids = [b.id for p in (first, second, *rest) for b in p]
    assert len(set(ids)) == 60 == len(m3ter_server.sandbox.bills)


def test_pages_read_ahead_are_the_same_pages_one_fetched_early(
    client: M3terClient, m3ter_server: Running
) -> None:
    plain = [[b.id for b in page] for page in client.iter_bill_pages(page_size=7)]
    before = _calls(m3ter_server)
    pages = client.iter_bill_pages(page_size=7, read_ahead_pages=1)
    first = next(pages)
    deadline = time.monotonic() + 5
    while _calls(m3ter_server) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _calls(m3ter_server) == before + 2  # the second page, fetched while we hold the first
    assert [[b.id for b in page] for page in (first, *pages)] == plain
    assert _calls(m3ter_server) == before + 9  # every page once, no more
    assert client.first_server_time is not None
    assert client.server_time is not None and client.first_server_time <= client.server_time


def test_read_ahead_raises_a_failed_page_after_the_pages_before_it(
    client: M3terClient, m3ter_server: Running
) -> None:
    pages = client.iter_bill_pages(page_size=7, read_ahead_pages=1)
    first = next(pages)
    _fault(m3ter_server, status=400, count=5)  # permanent: not retried
    with pytest.raises(PermanentError):
        for _ in pages:
            pass
    assert len(first) == 7


def test_read_ahead_stopped_early_fetches_no_further(
    client: M3terClient, m3ter_server: Running
) -> None:
    pages = client.iter_bill_pages(page_size=7, read_ahead_pages=1)
    next(pages)
    pages.close()  # the helper finishes the page it is fetching, then stops
    stopped = _calls(m3ter_server)
    time.sleep(0.3)
    assert stopped <= 2 and _calls(m3ter_server) == stopped


def test_bill_filters(client: M3terClient, m3ter_server: Running) -> None:
    sb = m3ter_server.sandbox
    approved = list(client.iter_bills(status="APPROVED", page_size=9))
    assert {b.id for b in approved} == {r.id for r in sb.bills if r.status == "APPROVED"}
    pending = list(client.iter_bills(status="PENDING"))
    assert len(pending) + len(approved) == 60 and all(b.status == "PENDING" for b in pending)
    march = list(
        client.iter_bills(bill_date_start=date(2025, 3, 1), bill_date_end=date(2025, 4, 1))
    )
    assert len(march) == 20 and {b.bill_date for b in march} == {date(2025, 3, 1)}
    from_march = list(client.iter_bills(bill_date_start=date(2025, 3, 1)))
    assert len(from_march) == 40
    acc = sb.accounts[2]["id"]
    mine = list(client.iter_bills(account_id=acc, status="APPROVED"))
    assert {b.id for b in mine} == {
        r.id for r in sb.bills if r.account_id == acc and r.status == "APPROVED"
    }
    assert all(b.bill_total == b.computed_total() for b in approved)


def test_get_bill_keeps_decimal_digits(client: M3terClient, m3ter_server: Running) -> None:
    wire = m3ter_server.sandbox.bill(m3ter_server.sandbox.bills[10].id)
    bill = client.get_bill(wire["id"])
    assert bill.version == wire["version"]
    assert [li.average_unit_price for li in bill.line_items or []] == [
        li["averageUnitPrice"] for li in wire["lineItems"]
    ]
    assert bill.bill_total == wire["billTotal"]


def test_regenerated_bill_is_seen_with_new_version(
    client: M3terClient, m3ter_server: Running
) -> None:
    bill_id = m3ter_server.sandbox.bills[0].id
    before = client.get_bill(bill_id)
    _regenerate(m3ter_server, bill_id)
    after = client.get_bill(bill_id)
    assert after.version == (before.version or 0) + 1
    assert after.computed_total() != before.computed_total()


def _regenerate(server: Running, bill_id: str) -> None:
    httpx.post(f"{server.url}/_sandbox/bills/{bill_id}/regenerate").raise_for_status()


def test_modified_since_returns_exactly_the_bills_changed_after_the_cut(
    client: M3terClient, m3ter_server: Running
) -> None:
    sb = m3ter_server.sandbox
    changed = [sb.bills[3].id, sb.bills[41].id]
    cut = datetime.now(UTC)  # within the same second as the changes: stamps carry ms
    for bill_id in changed:
        time.sleep(0.002)  # distinct millisecond stamps, so "newest first" has one answer
        _regenerate(m3ter_server, bill_id)
    pages = list(client.iter_bill_pages_modified_since(cut, page_size=5))
    assert [[b.id for b in p] for p in pages] == [changed[::-1]]  # newest first
    assert all(b.dt_last_modified and b.dt_last_modified >= cut for b in pages[0])
    assert _calls(m3ter_server, SEARCH_PATH) == 1  # the page held an older bill: no more
    assert _calls(m3ter_server) == 0  # ListBills was not used

    # A cut between the two changes, naive (taken as UTC): only the later one.
    between = pages[0][1].dt_last_modified
    assert between is not None
    later = client.iter_bill_pages_modified_since(
        between.replace(tzinfo=None) + timedelta(milliseconds=1)
    )
    assert [b.id for p in later for b in p] == [changed[1]]


def test_modified_since_far_past_reads_all_once_future_reads_one_page(
    client: M3terClient, m3ter_server: Running
) -> None:
    everything = list(client.iter_bill_pages_modified_since(datetime(2000, 1, 1, tzinfo=UTC), 7))
    assert [len(p) for p in everything] == [7] * 8 + [4]
    ids = [b.id for p in everything for b in p]
    assert len(set(ids)) == 60 == len(ids)
    stamps = [b.dt_last_modified for p in everything for b in p]
    assert stamps == sorted(stamps, reverse=True)  # type: ignore[type-var]
    assert _calls(m3ter_server, SEARCH_PATH) == 9

    future = datetime.now(UTC) + timedelta(days=1)
    assert list(client.iter_bill_pages_modified_since(future, page_size=200)) == []
    assert _calls(m3ter_server, SEARCH_PATH) == 10  # one page, whatever the number of bills


def test_modified_since_yields_a_bill_without_dt_last_modified(
    client: M3terClient, m3ter_server: Running
) -> None:
    """A bill m3ter sent without ``dtLastModified`` counts as modified: read, not skipped."""
    bill = {
        "id": "no-stamp",
        "accountId": m3ter_server.sandbox.accounts[0]["id"],
        "billDate": "2025-06-01",
        "currency": "GBP",
        "lineItems": [],
        "dtLastModified": None,
    }
    m3ter_server.sandbox.add_bill(bill)
    pages = list(client.iter_bill_pages_modified_since(datetime(2000, 1, 1, tzinfo=UTC), 200))
    last = pages[-1][-1]
    assert last.id == "no-stamp" and last.dt_last_modified is None
    assert sum(len(p) for p in pages) == 61


def test_modified_since_retries_a_transient_failure(
    client: M3terClient, m3ter_server: Running, sleeps: list[float]
) -> None:
    _fault(m3ter_server, status=503, count=1)
    pages = list(client.iter_bill_pages_modified_since(datetime(2000, 1, 1, tzinfo=UTC), 200))
    assert len(pages[0]) == 10  # the small first page: nothing new costs m3ter little
    assert sum(len(p) for p in pages) == 60 and len(sleeps) == 1


def test_bills_by_ids_across_chunks_unknown_ids_ignored(
    client: M3terClient, m3ter_server: Running
) -> None:
    sb = m3ter_server.sandbox
    wanted = [sb.bills[i].id for i in (50, 2, 17, 33, 8)]
    asked = [wanted[0], wanted[1], "no-such-bill", *wanted[2:], wanted[1]]
    pages = list(client.iter_bills_by_ids(asked, page_size=2))
    assert all(1 <= len(p) <= 2 for p in pages) and all(
        isinstance(b, Bill) for p in pages for b in p
    )
    got = [b.id for p in pages for b in p]
    assert sorted(got) == sorted(wanted)  # each once, the unknown id simply absent
    assert _calls(m3ter_server) == 3  # six distinct ids, two per request
    assert all(b.bill_total is not None and b.line_items for p in pages for b in p)
    assert list(client.iter_bills_by_ids([])) == []
    assert list(client.iter_bills_by_ids(["no-such-bill"])) == []


def test_accounts(client: M3terClient, m3ter_server: Running) -> None:
    everyone = list(client.iter_accounts(page_size=6))
    assert [a.id for a in everyone] == [a["id"] for a in m3ter_server.sandbox.accounts]
    wanted = [everyone[3].id, everyone[17].id, everyone[0].id]
    assert {a.id for a in client.iter_accounts(ids=wanted)} == set(wanted)
    one = client.get_account(everyone[3].id)
    assert one.address is not None and one.address.country
    assert one.custom_fields and "xeroAccountCode" in one.custom_fields
    with pytest.raises(NotFound):
        client.get_account("no-such-account")


def test_external_mappings(client: M3terClient) -> None:
    contacts = client.list_external_mappings()
    assert len(contacts) == 16
    assert {(m.external_system, m.external_table) for m in contacts} == {("Xero", "Contact")}
    linked = client.list_external_mappings(integration_config_id=gen.integration_config_id(1))
    assert len(linked) == 12
    salesforce = client.list_external_mappings(external_system="Salesforce", external_table=None)
    assert len(salesforce) == 7 and {m.external_table for m in salesforce} == {"Account"}


def test_503_is_retried_then_succeeds(
    client: M3terClient, m3ter_server: Running, sleeps: list[float]
) -> None:
    _fault(m3ter_server, status=503, count=2)
    bill = client.get_bill(m3ter_server.sandbox.bills[0].id)
    assert bill.id == m3ter_server.sandbox.bills[0].id
    assert len(sleeps) == 2 and sleeps[1] > 0
    assert m3ter_server.sandbox.counters.faults_served == 2


def test_429_honours_retry_after(
    client: M3terClient, m3ter_server: Running, sleeps: list[float]
) -> None:
    _fault(m3ter_server, status=429, count=1, retryAfter=1.5)
    assert len(list(client.iter_accounts())) == 20
    assert sleeps == [1.5]


def test_long_retry_after_is_raised_not_waited(
    client: M3terClient, m3ter_server: Running, sleeps: list[float]
) -> None:
    _fault(m3ter_server, status=429, count=1, retryAfter=3600)
    with pytest.raises(RateLimitError) as info:
        client.get_account(m3ter_server.sandbox.accounts[0]["id"])
    assert info.value.retry_after == 3600 and sleeps == []


def test_gives_up_with_transient_error(
    client: M3terClient, m3ter_server: Running, sleeps: list[float]
) -> None:
    _fault(m3ter_server, status=502, count=10)
    with pytest.raises(TransientError) as info:
        next(client.iter_bill_pages())
    assert "502" in str(info.value)
    assert len(sleeps) == 3  # max_retries=3: four attempts in all
    assert _calls(m3ter_server) == 4
    ceilings = [0.5 * 2**i for i in range(3)]
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def test_timeout_is_retried(m3ter_server: Running, sleeps: list[float]) -> None:
    _fault(m3ter_server, status=0, delay=1.0, count=1)
    with M3terClient(
        m3ter_server.url,
        DEFAULT_ORG_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        timeout=0.3,
        max_retries=2,
        sleep=sleeps.append,
    ) as c:
        assert c.get_account(m3ter_server.sandbox.accounts[1]["id"]).code == "ACC-00001"
    assert len(sleeps) == 1


def test_connection_refused_is_transient(sleeps: list[float]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        M3terClient(
            url,
            DEFAULT_ORG_ID,
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            max_retries=2,
            sleep=sleeps.append,
        ) as c,
        pytest.raises(TransientError, match="connection failed"),
    ):
        c.get_bill("x")
    assert len(sleeps) == 2


def test_401_is_auth_error_not_retried(
    client: M3terClient, m3ter_server: Running, sleeps: list[float]
) -> None:
    _fault(m3ter_server, status=401, count=5)
    with pytest.raises(AuthError):
        client.get_bill(m3ter_server.sandbox.bills[0].id)
    assert sleeps == []
    # one fresh token was tried once, then the call gave up
    assert m3ter_server.sandbox.counters.faults_served == 2


def test_wrong_secret_is_auth_error_and_secret_is_not_shown(
    m3ter_server: Running, sleeps: list[float]
) -> None:
    secret = "very-wrong-secret-value"
    with (
        M3terClient(
            m3ter_server.url, DEFAULT_ORG_ID, DEFAULT_CLIENT_ID, secret, sleep=sleeps.append
        ) as c,
        pytest.raises(AuthError) as info,
    ):
        c.get_bill("anything")
    assert secret not in str(info.value) and secret not in repr(c)
    assert sleeps == [] and m3ter_server.sandbox.counters.token_requests == 0


def test_other_org_is_auth_error(m3ter_server: Running) -> None:
    with (
        M3terClient(m3ter_server.url, "another-org", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET) as c,
        pytest.raises(AuthError),
    ):
        c.get_bill("anything")


def test_404_and_other_4xx(client: M3terClient, m3ter_server: Running, sleeps: list[float]) -> None:
    with pytest.raises(NotFound):
        client.get_bill("no-such-bill")
    _fault(m3ter_server, status=422, count=1)
    with pytest.raises(PermanentError) as info:
        client.get_bill(m3ter_server.sandbox.bills[0].id)
    assert not isinstance(info.value, NotFound)
    assert sleeps == []


def test_token_fetched_once_and_reused(client: M3terClient, m3ter_server: Running) -> None:
    list(client.iter_bills(page_size=5))
    list(client.iter_accounts(page_size=5))
    client.list_external_mappings()
    client.get_bill(m3ter_server.sandbox.bills[0].id)
    assert m3ter_server.sandbox.counters.api_calls > 15
    assert client.token_fetches == 1
    assert m3ter_server.sandbox.counters.token_requests == 1


def test_token_revoked_server_side_is_renewed(client: M3terClient, m3ter_server: Running) -> None:
    client.get_bill(m3ter_server.sandbox.bills[0].id)
    httpx.post(f"{m3ter_server.url}/_sandbox/expire-tokens").raise_for_status()
    client.get_bill(m3ter_server.sandbox.bills[1].id)
    assert client.token_fetches == 2 == m3ter_server.sandbox.counters.token_requests


def test_token_expiring_is_renewed_before_the_call(
    client: M3terClient, m3ter_server: Running
) -> None:
    client.get_bill(m3ter_server.sandbox.bills[0].id)
    client._http.token["expires_at"] = 1  # as if its lifetime had run out
    client.get_bill(m3ter_server.sandbox.bills[1].id)
    assert client.token_fetches == 2
    assert m3ter_server.sandbox.counters.unauthorised == 0  # renewed before, not after a 401


def test_from_settings(m3ter_server: Running) -> None:
    settings = Settings(
        m3ter_api_url=m3ter_server.url,
        m3ter_org_id=DEFAULT_ORG_ID,
        m3ter_client_id=DEFAULT_CLIENT_ID,
        m3ter_client_secret=SecretStr(DEFAULT_CLIENT_SECRET),
        _env_file=None,
    )
    with M3terClient.from_settings(settings) as c:
        assert len(c.list_external_mappings()) == 16


def test_page_size_is_checked() -> None:
    with M3terClient("http://127.0.0.1:9", "o", "i", "s") as c, pytest.raises(ValueError):
        next(c.iter_bill_pages(page_size=500))
