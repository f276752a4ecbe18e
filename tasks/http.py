"""The one HTTP layer of the Xero and m3ter clients: how a client is opened, how a call fails.

- ``new_client``: every client to Xero or m3ter (httpx's, or Authlib's OAuth one) shares one TLS
  context. ``httpx.Client()`` loads the CA bundle into a fresh ``SSLContext`` each time, a cost
  every posting task, bill reader and token call would pay; a context is safe to share.
- ``call``: one attempt, its failure as the project's error (``config.errors``): a dropped
  connection or a timeout by ``transport_error``, an HTTP status by ``error_for`` (the one status
  map; a service reads its own refusals through a hook), ``Retry-After`` by ``retry_after``.
- ``BearerAuth``: a bearer token on every request and, on a 401, one fresh token and one replay.

Retrying is not done here: ``tasks.retries`` says where it is.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Generator
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, TypeVar

import httpx

from config.errors import (
    AuthError,
    BillSyncError,
    NotFound,
    PermanentError,
    RateLimitError,
    TransientError,
)

C = TypeVar("C", bound=httpx.Client)
Refusal = Callable[[httpx.Response, str], BillSyncError]
"""A service's own reading of a refusal the status map leaves open (a 400, 409, 422 ...)."""

DETAIL_KEYS = ("message", "Message", "Detail", "detail", "error", "Title", "title")
"""Where m3ter (``message``), Xero (``Message``, ``Detail``, ``Title``) and OAuth (``error``)
put their words. Not OAuth's ``error_description``: it may echo what the request carried."""


# ---- clients ------------------------------------------------------------------------------------
@cache
def ssl_context() -> ssl.SSLContext:
    """httpx's default verification (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), once."""
    return httpx.create_ssl_context()


def new_client(cls: type[C] = httpx.Client, *, timeout: float, **options: Any) -> C:
    """A client of ``cls`` (``httpx.Client`` or a subclass such as Authlib's ``OAuth2Client``)
    with the shared TLS context and a timeout: the one way this project opens one."""
    return cls(timeout=timeout, verify=ssl_context(), **options)


def prefect_ssl_context() -> ssl.SSLContext:
    """The context Prefect's client would build from its settings (insecure skip, or its CA
    file, or certifi), built once per distinct setting: for clients opened per task."""
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    return _prefect_context(
        bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()), PREFECT_API_SSL_CERT_FILE.value()
    )


@cache
def _prefect_context(insecure: bool, cert_file: str | None) -> ssl.SSLContext:
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    import certifi

    return ssl.create_default_context(cafile=cert_file or certifi.where())


# ---- failures -----------------------------------------------------------------------------------
def retry_after(response: httpx.Response, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as delta-seconds or an HTTP date,
    never negative); ``None`` when it did not say or said something unreadable."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)


def error_detail(response: httpx.Response) -> str:
    """The service's own words from an error body, at most 200 characters."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict):
        for key in DETAIL_KEYS:
            if body.get(key):
                return str(body[key])[:200]
        return ""
    return str(body)[:200]


def error_for(
    response: httpx.Response,
    what: str,
    *,
    refused: Refusal | None = None,
    detail: Callable[[httpx.Response], str] = error_detail,
) -> BillSyncError:
    """The project's error for a failed answer to ``what`` (the call, service named first).

    429 -> ``RateLimitError`` (its ``Retry-After``, its ``X-Rate-Limit-Problem``); 5xx and 408
    -> ``TransientError``; 401/403 -> ``AuthError``; 404 -> ``NotFound``; any other 4xx ->
    ``refused(response, what)`` when the service reads its refusals itself, else
    ``PermanentError``. ``detail`` picks the service's words for the message.
    """
    status = response.status_code
    words = detail(response)
    text = f"{what}: HTTP {status}" + (f": {words}" if words else "")
    if status == 429:
        problem = response.headers.get("X-Rate-Limit-Problem")
        return RateLimitError(text, retry_after=retry_after(response), problem=problem)
    if status >= 500 or status == 408:
        return TransientError(text, retry_after=retry_after(response))
    if status in (401, 403):
        return AuthError(text)
    if status == 404:
        return NotFound(text)
    if refused is not None:
        return refused(response, what)
    return PermanentError(text)


def transport_error(exc: httpx.TransportError, what: str) -> TransientError:
    """A call that got no answer (timeout, refused or dropped connection): worth trying again.
    The message names the exception's type only: its text can carry the URL's query."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return TransientError(f"{what}: {kind} ({type(exc).__name__})")


def call(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    what: str,
    refused: Refusal | None = None,
    **request: Any,
) -> httpx.Response:
    """One attempt at ``method url`` on ``client``: the answer when it is below 400, else the
    project's error for it (``error_for``, ``transport_error``). Never retried here."""
    try:
        response = client.request(method, url, **request)
    except httpx.TransportError as exc:
        raise transport_error(exc, what) from None
    if response.status_code >= 400:
        raise error_for(response, what, refused=refused)
    return response


# ---- auth ---------------------------------------------------------------------------------------
class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token()>`` on every request. On a 401, ``replace(rejected)`` is
    asked for another token and the request is sent once more with it; only once, so a second
    401 is the answer (and ``error_for`` makes it ``AuthError``).

    Why: a token can be refused before its owner thinks it expired (revoked early, clocks that
    disagree), and one credential refused by mistake must not disable an integration. Whoever
    owns the token decides what a replacement costs (``XeroTokenProvider.replace_rejected``
    refreshes once cluster-wide; m3ter fetches a new client-credentials token). Without
    ``replace``, or when it returns the same token, the 401 stands.
    """

    requires_request_body = True  # a replay sends the same body
    requires_response_body = True  # a 401's connection goes back to the pool before the refresh

    def __init__(
        self, token: Callable[[], str], replace: Callable[[str], str] | None = None
    ) -> None:
        self._token = token
        self._replace = replace

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the token; on a 401, once, with a fresh one."""
        token = self._token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401 or self._replace is None:
            return
        fresh = self._replace(token)
        if fresh != token:
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request
