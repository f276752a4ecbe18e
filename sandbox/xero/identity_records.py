"""What the identity state keeps per consent: grants, authorisation codes, access and refresh
tokens, and connections (with the shape ``GET /connections`` answers them in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass
class Grant:
    """One consent: a user, an app, the organisations chosen, the event that made it."""

    grant_id: str
    client_id: str
    user_id: str
    auth_event_id: str
    tenant_ids: set[str]
    scope: str
    revoked: bool = False


@dataclass
class AuthCode:
    """An authorisation code waiting for its exchange (single use, PKCE S256 ``challenge``)."""

    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    tenant_ids: set[str]
    expires_at: float
    used: bool = False


@dataclass
class RefreshEntry:
    """A refresh token's grant, when it was last used (issued), and whether rotation spent it."""

    grant_id: str
    last_used: float
    spent: bool = False


@dataclass
class AccessEntry:
    """An access token's grant and expiry."""

    grant_id: str
    expires_at: float


@dataclass
class Connection:
    """One organisation a user's consent connected."""

    id: str
    grant_id: str
    user_id: str
    auth_event_id: str
    tenant_id: str
    tenant_name: str
    created: float
    updated: float

    def wire(self) -> dict[str, Any]:
        """The connection as ``GET /connections`` lists it."""
        return {
            "id": self.id,
            "authEventId": self.auth_event_id,
            "tenantId": self.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": self.tenant_name,
            "createdDateUtc": _iso(self.created),
            "updatedDateUtc": _iso(self.updated),
        }


def _iso(epoch: float) -> str:
    """Xero's connection times: UTC without an offset, 7 fractional digits (.NET ticks)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"
