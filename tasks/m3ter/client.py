"""A small m3ter API client: bills, accounts and external mappings, page by page.

Why not the official SDK: its sync client fetches a new token before every request and its
async client fetches none. Here one client-credentials token is held and a new one fetched only
when there is none, it is about to expire, or m3ter refused it (``tasks.http.BearerAuth``: one
new token, one replay). Calls go through the shared HTTP layer (``tasks.http``), so errors come
out as the project's hierarchy (``config.errors``); transient ones are retried here, as
``tasks.retries`` says, before ``TransientError`` is raised.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Self
from urllib.parse import quote

import httpx

from config.errors import PermanentError, TransientError
from config.settings import Settings
from tasks.http import BearerAuth, call
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.oauth_client import oauth_client, token_errors
from tasks.read_ahead import read_ahead
from tasks.retries import with_retries

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 200
IDS_PER_REQUEST = 50
"""Ids per ``ids=`` filter request, to keep URLs short."""

FIRST_SEARCH_PAGE = 10


class M3terClient:
    """Reads bills, accounts and external mappings of one m3ter organisation.

    Holds one token and one connection pool; not thread-safe: one client per thread or task.

    Args:
        base_url: e.g. ``https://api.m3ter.com`` or a sandbox's URL.
        org_id: the organisation whose data is read.
        client_id, client_secret: a service user's API key and secret.
        timeout: seconds per HTTP call.
        max_retries: retries of a transient failure before ``TransientError`` is raised.
        backoff_base, backoff_max: exponential backoff (seconds) with jitter.
        max_retry_after: a Retry-After longer than this is not waited for here: the error is
            raised at once (its ``retry_after`` set) so the caller can reschedule.
        sleep: how to wait (tests may pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        org_id: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 30,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.org_id = org_id
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self.server_time: datetime | None = None
        """m3ter's clock (the Date header) at its latest answer: the same clock as its
        ``dtLastModified`` stamps, so a watermark taken from it needs no clock-skew guess."""
        self.first_server_time: datetime | None = None
        """... at its first answer (with pages read ahead, the latest may be a later page's)."""
        self.token_fetches = 0
        """How many tokens this client fetched (one per token lifetime, not per request)."""
        self._http = oauth_client(
            "m3ter token",
            timeout=timeout,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            token_endpoint=f"{self.base_url}/oauth/token",
            grant_type="client_credentials",
            base_url=self.base_url,
            headers={"Accept": "application/json"},
        )
        self._auth = BearerAuth(self._access_token, self._replace_token)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> M3terClient:
        """A client for the m3ter API and organisation named in the settings."""
        return cls(
            settings.m3ter_api_url,
            settings.m3ter_org_id,
            settings.m3ter_client_id,
            settings.m3ter_client_secret.get_secret_value(),
            timeout=kwargs.pop("timeout", settings.http_timeout_seconds),
            **kwargs,
        )

    # ---- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"M3terClient(base_url={self.base_url!r}, org_id={self.org_id!r})"

    # ---- transport -------------------------------------------------------------------------
    def _access_token(self) -> str:
        """The token held, or a new one when there is none or it is within Authlib's leeway of
        expiring (renewed before the call, not after a 401)."""
        token = self._http.token
        if not token or token.is_expired(leeway=self._http.leeway):
            self._fetch_token()
        return str(self._http.token["access_token"])

    def _replace_token(self, rejected: str) -> str:
        """m3ter refused ``rejected`` before it expired (revoked early): a new one."""
        log.info("m3ter refused its token (401): fetching a new one")
        self._fetch_token()
        return str(self._http.token["access_token"])

    def _fetch_token(self) -> None:
        self.token_fetches += 1
        with token_errors("m3ter token"):
            self._http.fetch_token(grant_type="client_credentials")

    def _get(self, path: str, params: dict[str, Any] | None = None, *, what: str) -> Any:
        """GET with retries; returns the parsed JSON (numbers with fractions as Decimal).

        A ``Retry-After`` is waited exactly (few callers read m3ter at once, so no spread), up
        to ``max_retry_after``."""
        what = f"m3ter {what}"

        def attempt() -> Any:
            response = call(self._http, "GET", path, what=what, params=params, auth=self._auth)
            self._note_server_time(response)
            return json.loads(response.content, parse_float=Decimal)

        def on_retry(number: int, error: TransientError, delay: float) -> None:
            log.warning("%s; retry %d/%d in %.2fs", error, number, self.max_retries, delay)

        return with_retries(
            attempt,
            max_attempts=self.max_retries + 1,
            base_delay=self.backoff_base,
            max_delay=self.backoff_max,
            retry_after_spread=0.0,
            max_retry_after=self.max_retry_after,
            sleep=self._sleep,
            on_retry=on_retry,
        )

    def _note_server_time(self, response: httpx.Response) -> None:
        raw = response.headers.get("Date")
        if not raw:
            return
        try:
            self.server_time = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return
        if self.first_server_time is None:
            self.first_server_time = self.server_time

    def _org(self, path: str) -> str:
        return f"/organizations/{quote(self.org_id, safe='')}/{path}"

    def _pages(
        self, path: str, params: dict[str, Any], what: str
    ) -> Iterator[list[dict[str, Any]]]:
        """Follow ``nextToken`` one page at a time."""
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            body = self._get(self._org(path), params, what=what)
            yield list(body.get("data") or [])
            token = body.get("nextToken")
            if not token:
                return
            params = {**params, "nextToken": token}

    # ---- bills -----------------------------------------------------------------------------
    def iter_bill_pages(
        self,
        status: str | None = None,
        bill_date_start: date | None = None,
        bill_date_end: date | None = None,
        account_id: str | None = None,
        page_size: int = 100,
        *,
        read_ahead_pages: int = 0,
    ) -> Iterator[list[Bill]]:
        """Bills page by page (never all at once). ``bill_date_end`` is exclusive, as m3ter's.

        ``read_ahead_pages`` > 0 fetches that many pages ahead on a helper thread while the
        caller validates and uses this one (the client is then busy until iteration ends)."""
        params = {
            "status": status,
            "billDateStart": bill_date_start.isoformat() if bill_date_start else None,
            "billDateEnd": bill_date_end.isoformat() if bill_date_end else None,
            "accountId": account_id,
            "pageSize": _page_size(page_size),
            "includeBillTotal": "true",
        }
        pages = self._pages("bills", params, "list bills")
        if read_ahead_pages > 0:
            pages = read_ahead(pages, depth=read_ahead_pages, name="m3ter bills read-ahead")
        for page in pages:
            yield [Bill.model_validate(b) for b in page]

    def iter_bills(
        self,
        status: str | None = None,
        bill_date_start: date | None = None,
        bill_date_end: date | None = None,
        account_id: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Bill]:
        """``iter_bill_pages`` flattened; still one page in memory at a time."""
        for page in self.iter_bill_pages(
            status, bill_date_start, bill_date_end, account_id, page_size
        ):
            yield from page

    def iter_bill_pages_modified_since(
        self, since: datetime, page_size: int = 100
    ) -> Iterator[list[Bill]]:
        """Bills last modified at or after ``since``, newest first, page by page (never empty).

        Why: m3ter's Search Bills sorted by ``dtLastModified`` descending lets the read stop at
        the first bill older than ``since``, so a sync with nothing new reads one page instead
        of every bill. ``nextToken`` is followed as ``fromDocument``. An offset into a list
        sorted newest first can only repeat a bill when one changes during the read (it moves
        to the top and pushes the others down), not skip one (only a deletion mid-read could):
        callers drop repeats by id.

        The first page asks for at most ``FIRST_SEARCH_PAGE`` bills: when nothing changed, that
        is all the read costs m3ter.

        A bill without ``dtLastModified`` is yielded (treated as modified) rather than refused:
        reading a bill twice costs a comparison, missing a change costs a wrong invoice. A naive
        ``since`` (or stamp) is taken as UTC.
        """
        cut = _utc(since)
        params: dict[str, Any] = {
            "sortBy": "dtLastModified",
            "sortOrder": "DESC",
            "pageSize": _page_size(page_size),
        }
        start = 0
        size = min(params["pageSize"], FIRST_SEARCH_PAGE)
        while True:
            body = self._get(
                self._org("bills/search"),
                {**params, "pageSize": size, "fromDocument": start},
                what="search bills",
            )
            size = params["pageSize"]
            raw = list(body.get("data") or [])
            bills = [Bill.model_validate(b) for b in raw]
            kept = [
                b for b in bills if b.dt_last_modified is None or _utc(b.dt_last_modified) >= cut
            ]
            if kept:
                yield kept
            token = body.get("nextToken")
            if len(kept) < len(bills) or not token or not raw:
                return
            start = _next_document(token, start, len(raw))

    def iter_bills_by_ids(self, ids: Iterable[str], page_size: int = 100) -> Iterator[list[Bill]]:
        """The bills with these ids (repeats asked once), in pages; unknown ids do not come back
        (m3ter deleted them). Why: re-reading bills known to need work costs a request per
        chunk of ids, not a listing of every bill. ListBills' ``ids`` is asked in chunks of at
        most ``page_size`` and ``IDS_PER_REQUEST`` ids (short URLs), a page per chunk."""
        size = _page_size(page_size)
        per_request = min(size, IDS_PER_REQUEST)
        wanted = list(dict.fromkeys(ids))
        for offset in range(0, len(wanted), per_request):
            chunk = wanted[offset : offset + per_request]
            params = {"ids": ",".join(chunk), "pageSize": len(chunk), "includeBillTotal": "true"}
            for page in self._pages("bills", params, "list bills by id"):
                if page:
                    yield [Bill.model_validate(b) for b in page]

    def get_bill(self, bill_id: str) -> Bill:
        """One bill with its line items; ``NotFound`` if there is none."""
        body = self._get(self._org(f"bills/{quote(bill_id, safe='')}"), what="get bill")
        return Bill.model_validate(body)

    # ---- accounts ----------------------------------------------------------------------------
    def iter_accounts(
        self, ids: Iterable[str] | None = None, page_size: int = 100
    ) -> Iterator[Account]:
        """All accounts, or those with the given ids (asked for in chunks)."""
        size = _page_size(page_size)
        if ids is None:
            for page in self._pages("accounts", {"pageSize": size}, "list accounts"):
                yield from (Account.model_validate(a) for a in page)
            return
        wanted = list(dict.fromkeys(ids))
        for i in range(0, len(wanted), IDS_PER_REQUEST):
            chunk = wanted[i : i + IDS_PER_REQUEST]
            params = {"ids": ",".join(chunk), "pageSize": min(size, len(chunk))}
            for page in self._pages("accounts", params, "list accounts"):
                yield from (Account.model_validate(a) for a in page)

    def get_account(self, account_id: str) -> Account:
        """One account; ``NotFound`` if there is none."""
        body = self._get(self._org(f"accounts/{quote(account_id, safe='')}"), what="get account")
        return Account.model_validate(body)

    # ---- external mappings ---------------------------------------------------------------------
    def iter_external_mappings(
        self,
        external_system: str | None = "Xero",
        external_table: str | None = "Contact",
        integration_config_id: str | None = None,
        m3ter_entity: str | None = "Account",
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[ExternalMapping]:
        """Mappings of one external system; m3ter filters by system and integration config,
        the table and entity are checked here (the list endpoint has no filter for them)."""
        params = {
            "externalSystemId": external_system,
            "integrationConfigId": integration_config_id,
            "pageSize": _page_size(page_size),
        }
        for page in self._pages("externalmappings", params, "list external mappings"):
            for raw in page:
                mapping = ExternalMapping.model_validate(raw)
                if external_system and mapping.external_system != external_system:
                    continue
                if external_table and mapping.external_table != external_table:
                    continue
                if m3ter_entity and mapping.m3ter_entity != m3ter_entity:
                    continue
                if integration_config_id and mapping.integration_config_id != (
                    integration_config_id
                ):
                    continue
                yield mapping

    def list_external_mappings(
        self,
        external_system: str | None = "Xero",
        external_table: str | None = "Contact",
        integration_config_id: str | None = None,
        m3ter_entity: str | None = "Account",
    ) -> list[ExternalMapping]:
        """``iter_external_mappings`` as a list (one per mapped account: small)."""
        return list(
            self.iter_external_mappings(
                external_system, external_table, integration_config_id, m3ter_entity
            )
        )


def _utc(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _next_document(token: object, start: int, count: int) -> int:
    """``fromDocument`` of the next search page: ``nextToken`` when it is the offset (as the
    sandbox's), else the documents read so far; ``PermanentError`` if it would not advance."""
    try:
        following = int(str(token))
    except ValueError:
        following = start + count
    if following <= start:
        raise PermanentError(f"m3ter search bills: nextToken {token!r} does not advance")
    return following


def _page_size(size: int) -> int:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    return size
