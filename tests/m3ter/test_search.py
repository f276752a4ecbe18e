"""The sandbox's Search Bills (``GET /organizations/{orgId}/bills/search``) over HTTP on loopback:
paging by ``fromDocument``/``nextToken``, sorting, the query language, refusals, and the
``dtLastModified`` a bill gets when the sandbox changes it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from sandbox.m3ter import generator as gen
from sandbox.m3ter.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORG_ID,
    M3terSandbox,
)
from tests.m3ter.conftest import Running, sandbox_token

SEARCH_PATH = f"/organizations/{DEFAULT_ORG_ID}/bills/search"

Search = Callable[..., httpx.Response]


@pytest.fixture
def search(m3ter_server: Running) -> Iterator[Search]:
    """``search(**params)``: one authenticated Search Bills call, the raw answer."""
    with httpx.Client(base_url=m3ter_server.url) as http:
        token = sandbox_token(http)

        def call(**params: Any) -> httpx.Response:
            return http.get(
                SEARCH_PATH, params=params, headers={"Authorization": f"Bearer {token}"}
            )

        yield call


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json(parse_float=Decimal)  # type: ignore[no-any-return]


def _ids(search: Search, **params: Any) -> list[str]:
    """Every bill id of a search, in order, following ``nextToken`` as ``fromDocument``."""
    out: list[str] = []
    start = 0
    while True:
        body = _ok(search(**params, fromDocument=start))
        out += [b["id"] for b in body["data"]]
        if "nextToken" not in body:
            return out
        start = int(body["nextToken"])


def _stamp(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _post(server: Running, path: str, body: object | None = None) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/_sandbox/{path}", json=body)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def test_newest_first_pages_every_bill_once_changed_bills_on_top(
    search: Search, m3ter_server: Running
) -> None:
    sb = m3ter_server.sandbox
    regenerated, approved = sb.bills[4], sb.bills[7]
    old_version = regenerated.version
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    _post(m3ter_server, f"bills/{regenerated.id}/regenerate")
    _post(m3ter_server, f"bills/{approved.id}/approve")

    pages: list[dict[str, Any]] = []
    start = 0
    while True:
        params = {"sortBy": "dtLastModified", "sortOrder": "DESC", "pageSize": 7}
        body = _ok(search(**params, fromDocument=start))
        pages.append(body)
        if "nextToken" not in body:
            break
        assert body["nextToken"] == str(start + 7)  # the offset of the next page, as a string
        start = int(body["nextToken"])
    bills = [b for p in pages for b in p["data"]]
    assert [len(p["data"]) for p in pages] == [7] * 8 + [4]
    assert len({b["id"] for b in bills}) == 60 == len(bills)

    # The approval came last, so it is first; both carry the sandbox's clock, to the ms.
    assert [b["id"] for b in bills[:2]] == [approved.id, regenerated.id]
    assert bills[1]["version"] == old_version + 1 and bills[0]["status"] == "APPROVED"
    stamps = [_stamp(b["dtLastModified"]) for b in bills]
    assert all(before <= s <= datetime.now(UTC) for s in stamps[:2])
    assert all(s < before for s in stamps[2:])
    assert stamps == sorted(stamps, reverse=True)
    # Bills never touched keep the seed's calculation time; ties come in bill order.
    untouched = sb.bills[0]
    assert sb.bill(untouched.id)["dtLastModified"] == gen.iso_ms(gen.calculated_at(untouched))
    position = {r.id: n for n, r in enumerate(sb.bills)}
    for a, b in zip(bills, bills[1:], strict=False):
        if a["dtLastModified"] == b["dtLastModified"]:
            assert position[a["id"]] < position[b["id"]]
    # Search answers full bills, as Get Bill does.
    assert bills[5] == sb.bill(bills[5]["id"])

    ascending = _ids(search, sortBy="dtLastModified", pageSize=50)
    assert ascending[-2:] == [regenerated.id, approved.id] and len(ascending) == 60


def test_other_sorts_and_the_default_order(search: Search, m3ter_server: Running) -> None:
    sb = m3ter_server.sandbox
    assert _ids(search, pageSize=200) == [r.id for r in sb.bills]
    assert _ids(search, sortBy="id", pageSize=13) == sorted(r.id for r in sb.bills)
    by_date = _ids(search, sortBy="billDate", sortOrder="DESC", pageSize=200)
    dates = [sb.record(i).bill_date for i in by_date]
    assert dates == sorted(dates, reverse=True)
    by_account = _ids(search, sortBy="accountId", sortOrder="ASC", pageSize=200)
    assert [sb.record(i).account_id for i in by_account] == sorted(r.account_id for r in sb.bills)


def test_past_the_end_is_an_empty_last_page(search: Search) -> None:
    assert _ok(search(fromDocument=60)) == {"data": []}
    last = _ok(search(fromDocument=55, pageSize=10))
    assert len(last["data"]) == 5 and "nextToken" not in last


def test_filters(search: Search, m3ter_server: Running) -> None:
    sb = m3ter_server.sandbox
    acc, other = sb.accounts[3]["id"], sb.accounts[11]["id"]
    mine = {r.id for r in sb.bills if r.account_id == acc}
    theirs = {r.id for r in sb.bills if r.account_id == other}
    assert set(_ids(search, searchQuery=f"accountId:{acc}")) == mine and len(mine) == 3
    assert set(_ids(search, searchQuery=f"accountId~{acc[:13]}")) == mine
    either = f"accountId:{acc}$accountId:{other}"
    assert set(_ids(search, searchQuery=either, operator="OR")) == mine | theirs
    assert _ids(search, searchQuery=either) == []  # AND, the default: no bill has both

    picked = [sb.bills[i].id for i in (2, 30, 59)]
    assert _ids(search, searchQuery=f"ids:{','.join([*picked, 'no-such-bill'])}") == picked
    assert _ids(search, searchQuery=f"id:{picked[1]}") == [picked[1]]

    # Bill dates are the periods' ends: 2025-02-01, 03-01 and 04-01, twenty bills each.
    def count(query: str) -> int:
        return len(_ids(search, searchQuery=query, pageSize=200))

    assert count("billDate:2025-03-01") == 20
    assert count("billDate>2025-03-01") == 20 and count("billDate>=2025-03-01") == 40
    assert count("billDate<2025-03-01") == 20 and count("billDate<=2025-03-01") == 40
    assert count("billDate>=2025-03-01$billDate<2025-04-01") == 20
    assert count("billDate:2025-02-01$billDate:2025-04-01") == 0
    assert (
        len(
            _ids(
                search,
                searchQuery="billDate:2025-02-01$billDate:2025-04-01",
                operator="OR",
                pageSize=200,
            )
        )
        == 40
    )

    locked = {r.id for r in sb.bills if r.locked}
    assert locked and set(_ids(search, searchQuery="locked:true", pageSize=200)) == locked
    combined = f"locked:false$accountId:{acc}"
    assert set(_ids(search, searchQuery=combined)) == mine - locked
    # A filter and a sort together, paged.
    newest = _ids(
        search,
        searchQuery="billDate>=2025-03-01",
        sortBy="dtLastModified",
        sortOrder="DESC",
        pageSize=6,
    )
    assert len(newest) == len(set(newest)) == 40


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"sortBy": "currency"}, "does not support sorting bills by 'currency'"),
        ({"sortBy": "dtLastModified", "sortOrder": "UP"}, "sortOrder must be ASC or DESC"),
        ({"fromDocument": "-1"}, "fromDocument must be 0 or more"),
        ({"fromDocument": "abc"}, "fromDocument must be an integer"),
        ({"fromDocument": "2.5"}, "fromDocument must be an integer"),
        ({"pageSize": "0"}, "pageSize must be between 1 and 200"),
        ({"pageSize": "201"}, "pageSize must be between 1 and 200"),
        ({"operator": "XOR"}, "operator must be AND or OR"),
        ({"searchQuery": "currency:GBP"}, "part 'currency:GBP': m3ter cannot search bills by"),
        ({"searchQuery": "startDate>2025-01-01"}, "does not support searching bills by startDate"),
        ({"searchQuery": "locked>true"}, "part 'locked>true': locked cannot be compared"),
        ({"searchQuery": "accountId>abc"}, "accountId cannot be compared with '>'"),
        ({"searchQuery": "billDate~2025"}, "billDate cannot be matched with '~'"),
        ({"searchQuery": "ids>a,b"}, "ids takes ':' or '~'"),
        ({"searchQuery": "billDate"}, "part 'billDate': not field<comparator>value"),
        ({"searchQuery": "billDate>=yesterday"}, "billDate must be an ISO 8601 date"),
        ({"searchQuery": "billDate:2025-03-01x"}, "billDate must be an ISO 8601 date"),
        ({"searchQuery": "locked:maybe"}, "locked must be true or false"),
        ({"searchQuery": "id:x$accountId="}, "part 'accountId='"),
    ],
)
def test_refusals_say_what_is_wrong(search: Search, params: dict[str, str], words: str) -> None:
    r = search(**params)
    assert r.status_code == 400
    assert words in r.json()["message"]


def test_auth_and_org_are_checked(m3ter_server: Running) -> None:
    assert httpx.get(f"{m3ter_server.url}{SEARCH_PATH}").status_code == 401
    bad = httpx.get(
        f"{m3ter_server.url}{SEARCH_PATH}", headers={"Authorization": "Bearer not-a-token"}
    )
    assert bad.status_code == 401
    token = httpx.post(
        f"{m3ter_server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    ).json()["access_token"]
    other_org = httpx.get(
        f"{m3ter_server.url}/organizations/another-org/bills/search",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert other_org.status_code == 403
    assert m3ter_server.sandbox.counters.paths[SEARCH_PATH] == 2


def test_added_bills_are_modified_now_or_as_given(search: Search, m3ter_server: Running) -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    generated = _post(m3ter_server, "bills/bulk", {"count": 2})["ids"]
    run = "2026-01-05T03:00:00Z"
    backdated = _post(m3ter_server, "bills/bulk", {"count": 1, "modifiedAt": run})["ids"]
    given = {
        "accountId": m3ter_server.sandbox.accounts[0]["id"],
        "billDate": "2025-06-01",
        "currency": "GBP",
        "lineItems": [],
    }
    stamped = _post(
        m3ter_server,
        "bills/bulk",
        {
            "bills": [
                {**given, "id": "given-old", "dtLastModified": "2025-07-01T09:30:00Z"},
                {**given, "id": "given-new"},
            ]
        },
    )["ids"]
    assert stamped == ["given-old", "given-new"]

    newest = _ok(search(sortBy="dtLastModified", sortOrder="DESC", pageSize=4))["data"]
    assert {b["id"] for b in newest[:3]} == {*generated, "given-new"}
    assert all(_stamp(b["dtLastModified"]) >= before for b in newest[:3])
    assert newest[3]["id"] == backdated[0]
    assert _stamp(newest[3]["dtLastModified"]) == _stamp(run)
    assert m3ter_server.sandbox.bill("given-old")["dtLastModified"] == "2025-07-01T09:30:00Z"

    # A given bill changed by the sandbox is last modified now, too.
    _post(m3ter_server, "bills/given-old/approve")
    assert (
        _ok(search(sortBy="dtLastModified", sortOrder="DESC", pageSize=1))["data"][0]["id"]
        == "given-old"
    )

    bad = httpx.post(
        f"{m3ter_server.url}/_sandbox/bills/bulk",
        json={"bills": [{**given, "dtLastModified": "last tuesday"}]},
    )
    assert bad.status_code == 400


def test_seed_bills_for_periods_not_over_stay_put() -> None:
    """A seed bill whose calculation time is still ahead is capped at the sandbox's start, not
    at each call's "now", so a search's order does not move between its pages."""
    periods = (datetime.now(UTC).year - 2025) * 12 + datetime.now(UTC).month + 2
    sb = M3terSandbox(accounts=1, bills_per_account=periods)
    future = [r for r in sb.bills if gen.calculated_at(r) > sb.started_at]
    assert future
    stamps = {sb.bill(r.id)["dtLastModified"] for r in future}
    assert stamps == {gen.iso_ms(sb.started_at)}
    assert all(gen.last_modified(r) <= sb.started_at for r in sb.bills)
