"""Authlib's httpx OAuth 2.0 client, imported once for the Xero and m3ter clients.

Authlib 1.9.9 warns on import that its httpx integration will move to ``httpx2``; it works as it
is with httpx 0.28, so the warning would only be noise on every command a person runs.
"""

from __future__ import annotations

import warnings

import authlib.deprecate  # noqa: F401  (installs its "always" filter first, so ours wins below)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

__all__ = ["OAuth2Client", "OAuthError"]
