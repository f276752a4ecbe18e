"""How the identity sandbox mints Xero-shaped token sets: HS256 JWT access and ID tokens, opaque
refresh tokens, and the PKCE S256 challenge a code's verifier must match."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from sandbox.xero.identity_records import Grant

ACCESS_TOKEN_SECONDS = 1800


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    return _b64(hashlib.sha256(verifier.encode()).digest())


def sign_jwt(key: bytes, claims: dict[str, Any]) -> str:
    """``claims`` as a JWT signed with HS256 under ``key``."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), "sha256")
    return f"{header}.{payload}.{_b64(signature.digest())}"


def token_answer(grant: Grant, now: float, key: bytes) -> dict[str, Any]:
    """A token response for ``grant``: a fresh access token (JWT) and refresh token, and an ID
    token when the scope asks for OpenID Connect."""
    access = sign_jwt(
        key,
        {
            "nbf": int(now),
            "iat": int(now),
            "exp": int(now + ACCESS_TOKEN_SECONDS),
            "iss": "https://identity.xero.com",
            "client_id": grant.client_id,
            "sub": grant.user_id,
            "xero_userid": grant.user_id,
            "authentication_event_id": grant.auth_event_id,
            "scope": grant.scope.split(),
            "jti": secrets.token_hex(16),
        },
    )
    answer: dict[str, Any] = {
        "access_token": access,
        "expires_in": ACCESS_TOKEN_SECONDS,
        "token_type": "Bearer",
        "refresh_token": secrets.token_urlsafe(32),
        "scope": grant.scope,
    }
    if "openid" in grant.scope.split():  # like Xero: an ID token for OpenID Connect scopes
        answer["id_token"] = sign_jwt(
            key,
            {
                "nbf": int(now),
                "iat": int(now),
                "exp": int(now + 300),
                "iss": "https://identity.xero.com",
                "aud": grant.client_id,
                "sub": grant.user_id,
                "xero_userid": grant.user_id,
                "auth_time": int(now),
            },
        )
    return answer
