"""Authlib's httpx OAuth 2.0 client for the Xero and m3ter token endpoints, on the HTTP layer.

``oauth_client`` opens one through ``tasks.http.new_client`` whose failed token answers raise
the project's errors before Authlib reads them; ``token_errors`` maps what Authlib itself raises.
One mapping for both services: an OAuth error code that says the grant or the client was refused
(``invalid_grant``, ...) is ``AuthError``, which nobody retries; anything else follows the status
map (``tasks.http.error_for``). Messages carry the error code only: an ``error_description``
may echo what the request carried.

Authlib 1.9.9 warns on import that its httpx integration will move to ``httpx2``; it works as it
is with httpx 0.28, so the warning would only be noise on every command a person runs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import authlib.deprecate  # noqa: F401  (installs its "always" filter first, so ours wins below)
import httpx
from authlib.common.errors import AuthlibBaseError

from config.errors import AuthError, BillSyncError, PermanentError, TransientError
from tasks.http import error_for, new_client, transport_error

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

__all__ = ["OAuth2Client", "OAuthError", "oauth_client", "oauth_error", "token_errors"]

REFUSED_CODES = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
"""Codes that mean a person must act (reconnect, fix the client's id or secret)."""
TRANSIENT_CODES = frozenset({"server_error", "temporarily_unavailable"})


def oauth_error(code: str, what: str) -> BillSyncError:
    """The project's error for an OAuth error ``code`` answered to ``what``."""
    if code in REFUSED_CODES:
        return AuthError(f"{what}: refused the grant: {code}")
    if code in TRANSIENT_CODES:
        return TransientError(f"{what}: {code}")
    return PermanentError(f"{what}: {code}")


def token_error(response: httpx.Response, what: str) -> BillSyncError:
    """A failed token answer: its OAuth error code when it has one and the status is not one of
    "try again later" (429, 408, 5xx), else the status map."""
    status = response.status_code
    code = _oauth_code(response)
    if code is None or status in (408, 429) or status >= 500:
        return error_for(response, what)
    return oauth_error(code, what)


def oauth_client(what: str, *, timeout: float, **options: Any) -> OAuth2Client:
    """An Authlib client on the shared factory; a token answer of 400 or more (code grant,
    refresh, client credentials) raises ``token_error`` naming ``what``."""
    client = new_client(OAuth2Client, timeout=timeout, **options)

    def raise_for_failure(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise token_error(response, what)
        return response

    client.register_compliance_hook("access_token_response", raise_for_failure)
    client.register_compliance_hook("refresh_token_response", raise_for_failure)
    return client


@contextmanager
def token_errors(what: str) -> Iterator[None]:
    """Around an Authlib call: what it raises (no answer, an error code in a 200, a body that
    is not a token, a status it checked itself) as the project's errors."""
    try:
        yield
    except httpx.TransportError as exc:
        raise transport_error(exc, what) from None
    except httpx.HTTPStatusError as exc:
        raise error_for(exc.response, what) from None
    except AuthlibBaseError as exc:
        raise oauth_error(str(exc.error), what) from None
    except ValueError as exc:
        raise PermanentError(f"{what}: answered oddly: {exc}") from None


def _oauth_code(response: httpx.Response) -> str | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and code else None
