"""Consent ``state`` values that say, signed, which credential they were for and when they expire.

A pending credential (and its ``state`` column) is removed when its link expires, so the store
alone could not tell a late callback from a forged one. The state itself carries the answer:
``base64url(nonce | credential id | expiry in ms | HMAC tag)`` under the project's key. It holds
no secret (the nonce keeps it unguessable, the tag unforgeable), needs no table, and a callback
that arrives after the row is gone still learns "expired at 10:42" or "already connected".
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from dataclasses import dataclass

from store.crypto import Cipher

_NONCE = 16
_ID = 16
_EXPIRY = 8
_TAG = 16
_BODY = _NONCE + _ID + _EXPIRY
_LENGTH = _BODY + _TAG


@dataclass(frozen=True)
class StateClaims:
    """What a state issued by ``issue`` says: its credential and when it stops working."""

    credential_id: str
    expires_at: float


def issue(cipher: Cipher, credential_id: str, expires_at: float) -> str:
    """A fresh, single-use consent state for ``credential_id`` (a UUID), valid until
    ``expires_at`` (epoch seconds); 75 URL-safe characters."""
    body = (
        secrets.token_bytes(_NONCE)
        + uuid.UUID(credential_id).bytes
        + round(expires_at * 1000).to_bytes(_EXPIRY, "big")
    )
    token = body + cipher.sign(body)[:_TAG]
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode()


def read(cipher: Cipher, state: str) -> StateClaims | None:
    """The claims of a state this project's key issued; ``None`` for anything else (a state
    from before this format, a typo, a forgery, another key)."""
    try:
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _LENGTH or not cipher.verify(raw[:_BODY], raw[_BODY:]):
        return None
    credential_id = str(uuid.UUID(bytes=raw[_NONCE : _NONCE + _ID]))
    expires_ms = int.from_bytes(raw[_NONCE + _ID : _BODY], "big")
    return StateClaims(credential_id, expires_ms / 1000)
