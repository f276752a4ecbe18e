"""The Xero contact an m3ter account becomes under the default identity (ContactNumber = the
account id), and a fingerprint of it: the sync upserts a contact only when that changed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tasks.m3ter.models import Account

__all__ = ["contact_details", "contact_fingerprint"]


def contact_details(account: Account) -> dict[str, Any]:
    """The Xero contact an m3ter account becomes: number, name, e-mail and street address."""
    contact: dict[str, Any] = {"ContactNumber": account.id[:50]}
    contact["Name"] = (account.name or account.id)[:255]
    if account.email_address:
        contact["EmailAddress"] = account.email_address[:255]
    address = account.address
    if address is not None:
        lines = {
            "AddressLine1": address.address_line1,
            "AddressLine2": address.address_line2,
            "AddressLine3": address.address_line3,
            "AddressLine4": address.address_line4,
            "City": address.locality,
            "Region": address.region,
            "PostalCode": address.post_code,
            "Country": address.country,
        }
        street = {k: v for k, v in lines.items() if v}
        if street:
            contact["Addresses"] = [{"AddressType": "STREET", **street}]
    return contact


def contact_fingerprint(contact: dict[str, Any]) -> str:
    """The details of a contact as sent: a change means it is upserted again."""
    return hashlib.sha256(json.dumps(contact, sort_keys=True).encode()).hexdigest()[:32]
