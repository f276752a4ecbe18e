"""The value types of the credential store: statuses, token sets, what a person sees, and what
pending consent and a token compare-and-swap hand back."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, SecretStr

from config.errors import InvalidInput

# What a credential may be for; ``create_pending`` refuses anything else.
ENTITY_TYPES = ("Bill",)
DESTINATIONS = ("Xero",)


class CredentialStatus(StrEnum):
    """PENDING (waiting for consent), ACTIVE, or NEEDS_REAUTH (a person reconnects)."""

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    NEEDS_REAUTH = "NEEDS_REAUTH"


class TokenSet(BaseModel):
    """An OAuth token set. Tokens are ``SecretStr``: they print as stars."""

    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float
    token_type: str = "Bearer"
    scope: str = ""

    @classmethod
    def from_oauth(cls, token: dict[str, Any], now: float) -> TokenSet:
        """From an RFC 6749 token response (``expires_at`` or ``expires_in``)."""
        expires_at = token.get("expires_at") or now + float(token.get("expires_in", 1800))
        return cls(
            access_token=token["access_token"],
            refresh_token=token["refresh_token"],
            expires_at=float(expires_at),
            token_type=token.get("token_type", "Bearer"),
            scope=token.get("scope", "") or "",
        )

    def to_plain(self) -> dict[str, Any]:
        """The token set with its secrets in clear, to be encrypted (never logged)."""
        return {
            "access_token": self.access_token.get_secret_value(),
            "refresh_token": self.refresh_token.get_secret_value(),
            "expires_at": self.expires_at,
            "token_type": self.token_type,
            "scope": self.scope,
        }


class CredentialView(BaseModel):
    """What a person may see of a credential: never a token."""

    id: str
    name: str
    entity_type: str
    destination: str
    status: CredentialStatus
    tenant_id: str | None = None
    tenant_name: str | None = None
    created_at: float
    pending_expires_at: float | None = None

    @property
    def display_name(self) -> str:
        """The name as listings show it: ``NAME (Incomplete)`` while pending."""
        return f"{self.name} (Incomplete)" if self.status is CredentialStatus.PENDING else self.name


@dataclass(frozen=True)
class PendingConsent:
    """What the provisioning flow needs to send a person to Xero."""

    credential_id: str
    state: str
    code_verifier: str
    expires_at: float

    def __repr__(self) -> str:  # the verifier is a secret
        return f"PendingConsent(credential_id={self.credential_id!r}, expires_at={self.expires_at})"


@dataclass(frozen=True)
class ClaimedState:
    """A consent callback whose ``state`` was valid, now spent."""

    credential_id: str
    flow_run_id: str | None


@dataclass(frozen=True)
class TokenRecord:
    """The stored token set with the version a compare-and-swap must match."""

    credential_id: str
    status: CredentialStatus
    tokens: TokenSet | None
    version: int
    lease_until: float | None
    name: str = ""  # what a person calls it, for messages


class ConsentRefused(InvalidInput):
    """A consent callback whose ``state`` cannot be spent; the subclass says why, so the
    callback page can tell the person what happened and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="state")


class UnknownConsent(ConsentRefused):
    """Not a state this project issued (mistyped, forged, or made under another key)."""

    def __init__(self) -> None:
        super().__init__("unknown consent request")


class ConsentExpired(ConsentRefused):
    """The link's time ran out at ``expires_at``; its pending credential is gone or going."""

    def __init__(self, expires_at: float) -> None:
        super().__init__("consent request expired")
        self.expires_at = expires_at


class ConsentAlreadyUsed(ConsentRefused):
    """The state was spent by an earlier callback; that run has the consent."""

    def __init__(self) -> None:
        super().__init__("consent request already used")


class ConsentAlreadyCompleted(ConsentRefused):
    """The credential this state was for is already connected (``name``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"consent request already completed: credential {name!r} is connected")
        self.name = name


class ConsentWithdrawn(ConsentRefused):
    """The provisioning run ended before the link's expiry and removed its pending credential
    (consent refused, a failed exchange, a cancelled run, the credential deleted)."""

    def __init__(self, expires_at: float) -> None:
        super().__init__("consent request withdrawn: its provisioning run has ended")
        self.expires_at = expires_at
