"""Generated m3ter accounts (``AccountResponse`` wire dicts): names, addresses and currencies
drawn from a few countries, the same for every run of a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.m3ter.generator import BASE_MONTH
from sandbox.m3ter.ids import account_id
from sandbox.m3ter.stamps import iso


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    cities: tuple[tuple[str, str, str], ...]  # (locality, region, postcode)
    streets: tuple[str, ...]


COUNTRIES: tuple[Country, ...] = (
    Country(
        "GB",
        "GBP",
        (("London", "Greater London", "EC1A 1BB"), ("Manchester", "Greater Manchester", "M1 1AE")),
        ("High Street", "Station Road", "Church Lane"),
    ),
    Country(
        "US",
        "USD",
        (("New York", "NY", "10001"), ("San Francisco", "CA", "94105"), ("Austin", "TX", "73301")),
        ("Main Street", "Market Street", "5th Avenue"),
    ),
    Country(
        "DE",
        "EUR",
        (("Berlin", "Berlin", "10115"), ("München", "Bayern", "80331")),
        ("Hauptstraße", "Schillerstraße", "Goethestraße"),
    ),
    Country(
        "NZ",
        "NZD",
        (("Auckland", "Auckland", "1010"), ("Wellington", "Wellington", "6011")),
        ("Queen Street", "Lambton Quay", "Ponsonby Road"),
    ),
    Country(
        "IE",
        "EUR",
        (("Dublin", "County Dublin", "D02 X285"),),
        ("Grafton Street", "Baggot Street"),
    ),
)

_FIRST = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Tyrell",
    "Kiwi",
    "Pied Piper",
    "Soylent",
    "Wonka",
    "Cyberdyne",
    "Ørsted",
    "Müller & Söhne",
)
_LAST = ("Ltd", "Inc", "GmbH", "Limited", "Holdings", "Labs", "Cloud", "Systems")


def make_account(seed: int, index: int) -> dict[str, Any]:
    """Account ``index`` as m3ter sends it (``AccountResponse``)."""
    rng = random.Random(f"{seed}:account:{index}")
    country = COUNTRIES[index % len(COUNTRIES)]
    locality, region, post_code = rng.choice(country.cities)
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {index:05d}"
    code = f"ACC-{index:05d}"
    created = datetime(2024, 6, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=index)
    address: dict[str, Any] = {
        "addressLine1": f"{rng.randint(1, 250)} {rng.choice(country.streets)}",
        "locality": locality,
        "region": region,
        "postCode": post_code,
        "country": country.code,
    }
    if index % 3 == 0:
        address["addressLine2"] = f"Floor {rng.randint(1, 9)}"
    if index % 7 == 0:
        address["addressLine3"] = "Building B"
        address["addressLine4"] = "Business Park"
    custom: dict[str, Any] = {
        "xeroAccountCode": rng.choice(("200", "260", "400")),
        "segment": rng.choice(("enterprise", "midmarket", "smb")),
        "region": country.code,
        "tier": rng.randint(1, 3),
        "discountRate": Decimal(rng.randint(0, 20)) / 100,
    }
    return {
        "id": account_id(seed, index),
        "code": code,
        "name": name,
        "currency": country.currency,
        "emailAddress": f"billing+{index}@example.{country.code.lower()}",
        "address": address,
        "customFields": custom,
        "daysBeforeBillDue": 30,
        "billEpoch": BASE_MONTH.isoformat(),
        "creditApplicationOrder": ["PREPAYMENT", "BALANCE"],
        "autoGenerateStatementMode": "NONE",
        "purchaseOrderNumber": f"PO-{index:05d}" if index % 4 == 0 else None,
        "dtCreated": iso(created),
        "dtLastModified": iso(created),
        "createdBy": "sandbox",
        "lastModifiedBy": "sandbox",
        "version": 1,
    }
