"""How an integration codes its Xero lines: the shape of the account, tax and tracking options.

``IntegrationConfig`` (``config.integration``) declares the options; this module holds their
checks and form schemas, so the options stay readable there. Only the shape is checked here
(Xero's own limits, from its Accounting API spec ``xero_accounting.yaml``): whether a code exists
in the Xero organisation is the pre-flight's job, against the tenant's reference data.

- An account code is "alpha numeric ... (max length = 10)" (``Account.Code``): letters and
  digits, 1 to 10 of them.
- A tax type (``TaxRate.TaxType``, e.g. ``OUTPUT2``, ``TAX001``) is upper case letters and
  digits; the spec gives no length, 50 is a generous bound.
- Tax per customer country: keys are ISO 3166-1 alpha-2 codes (``config.countries``), any case,
  each country once; values are tax types as above.
- Tracking: at most two categories per line ("Any LineItem can have a maximum of 2
  <TrackingCategory> elements"), each named once; category and option names at most 100
  characters (``TrackingCategory.Name``, ``TrackingOption.Name``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from config.countries import COUNTRY_CODES
from config.line_items import LINE_ITEM_TYPES

__all__ = [
    "ACCOUNT_CODE_SCHEMA",
    "COUNTRY_TAX_SCHEMA",
    "MAX_TRACKING_CATEGORIES",
    "TAX_TYPE_SCHEMA",
    "TRACKING_SCHEMA",
    "TYPE_CODES_SCHEMA",
    "TrackingChoice",
    "check_tracking",
    "clean_account_code",
    "clean_country_tax_types",
    "clean_tax_type",
    "clean_type_codes",
    "refuse",
]

MAX_TRACKING_CATEGORIES = 2
MAX_TRACKING_NAME = 100
_ACCOUNT_CODE = re.compile(r"[A-Za-z0-9]{1,10}")
_TAX_TYPE = re.compile(r"[A-Z0-9]{1,50}")


def refuse(message: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``message`` (no "Value error," prefix)."""
    return PydanticCustomError("invalid_option", "{reason}", {"reason": message})


def clean_account_code(value: Any, what: str = "account code") -> Any:
    """Strip; blank -> None; else 1 to 10 letters or digits (Xero's ``Account.Code``)."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if not value:
        return None
    if not _ACCOUNT_CODE.fullmatch(value):
        raise refuse(f"not a Xero {what}: {value!r} (1 to 10 letters or digits, e.g. 200 or SALES)")
    return value


def clean_tax_type(value: Any, what: str = "tax type") -> Any:
    """Strip and upper-case; blank -> None; else 1 to 50 letters or digits (e.g. OUTPUT2)."""
    if not isinstance(value, str):
        return value
    value = value.strip().upper()
    if not value:
        return None
    if not _TAX_TYPE.fullmatch(value):
        raise refuse(
            f"not a Xero {what}: {value!r} (1 to 50 letters or digits, e.g. OUTPUT2 or TAX001)"
        )
    return value


def _clean_keyed(
    value: Any,
    key: Callable[[Any], str],
    code: Callable[[Any, str], str | None],
    codes_for: Callable[[str], str],
) -> Any:
    """A form's ``{key: code}``: each key normalised (or refused) by ``key``, each code cleaned
    by ``code`` (``None`` drops a blank one); two codes for one key are refused, named by
    ``codes_for(key)``."""
    if not isinstance(value, dict):
        return value
    out: dict[str, str] = {}
    for raw, given in value.items():
        name = key(raw)
        cleaned = code(given, name)
        if cleaned is None:
            continue
        if name in out and out[name] != cleaned:
            raise refuse(f"two {codes_for(name)}: {out[name]!r} and {cleaned!r}")
        out[name] = cleaned
    return out


def _line_item_type(key: Any) -> str:
    kind = key.strip().upper() if isinstance(key, str) else key
    if kind not in LINE_ITEM_TYPES:
        raise refuse(
            f"unknown line item type: {key!r}; expected one of {', '.join(LINE_ITEM_TYPES)}"
        )
    return kind


def _country(key: Any) -> str:
    country = key.strip().upper() if isinstance(key, str) else key
    if country not in COUNTRY_CODES:
        hint = ": the United Kingdom is GB" if country == "UK" else ", e.g. GB, US or DE"
        raise refuse(f"not an ISO 3166-1 alpha-2 country code: {key!r}{hint}")
    return country


def clean_type_codes(value: Any) -> Any:
    """Line item type (upper-cased, one of the 19) -> account code; blank codes are dropped."""
    return _clean_keyed(
        value,
        _line_item_type,
        lambda code, kind: clean_account_code(code, what=f"account code for {kind} lines"),
        lambda kind: f"account codes for {kind} lines",
    )


def clean_country_tax_types(value: Any) -> Any:
    """ISO 3166-1 alpha-2 country (upper-cased) -> tax type; blank tax types are dropped."""
    return _clean_keyed(
        value,
        _country,
        lambda tax, country: clean_tax_type(tax, what=f"tax type for {country}"),
        lambda country: f"tax types for {country}",
    )


def _tracking_name(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    value = value.strip()
    if not value:
        raise refuse(f"a tracking {what} name is required")
    if len(value) > MAX_TRACKING_NAME:
        raise refuse(
            f"a tracking {what} name has at most {MAX_TRACKING_NAME} characters: {value!r}"
        )
    return value


class TrackingChoice(BaseModel):
    """One Xero tracking category and the option every line gets in it."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Tracking category and option")

    category: str = Field(
        title="Tracking category", description="The Xero tracking category's name, e.g. Region."
    )
    option: str = Field(
        title="Tracking option", description="The option's name in that category, e.g. Europe."
    )

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: Any) -> Any:
        return _tracking_name(value, "category")

    @field_validator("option", mode="before")
    @classmethod
    def _option(cls, value: Any) -> Any:
        return _tracking_name(value, "option")


def check_tracking(value: list[TrackingChoice]) -> list[TrackingChoice]:
    """At most two categories, each once (names compared without case)."""
    seen: dict[str, str] = {}
    for choice in value:
        key = choice.category.casefold()
        if key in seen:
            raise refuse(
                f"tracking category {choice.category!r} is chosen twice: a Xero line takes one "
                "option per category"
            )
        seen[key] = choice.category
    if len(seen) > MAX_TRACKING_CATEGORIES:
        raise refuse(
            f"at most {MAX_TRACKING_CATEGORIES} tracking categories (Xero's limit per line), "
            f"got {len(seen)}: {', '.join(seen.values())}"
        )
    return value


# The form's shapes: plain text boxes (empty: none, stored as null), no null branch, no $ref.
ACCOUNT_CODE_SCHEMA = WithJsonSchema({"type": "string", "maxLength": 10})
TAX_TYPE_SCHEMA = WithJsonSchema({"type": "string", "maxLength": 50})
TYPE_CODES_SCHEMA = WithJsonSchema(
    {
        "type": "object",
        "propertyNames": {"enum": list(LINE_ITEM_TYPES)},
        "additionalProperties": {"type": "string", "maxLength": 10},
    }
)
COUNTRY_TAX_SCHEMA = WithJsonSchema(
    {
        "type": "object",
        "propertyNames": {"enum": sorted(COUNTRY_CODES)},
        "additionalProperties": {"type": "string", "maxLength": 50},
    }
)
TRACKING_SCHEMA = WithJsonSchema(
    {
        "type": "array",
        "maxItems": MAX_TRACKING_CATEGORIES,
        "items": {
            "type": "object",
            "title": "Tracking category and option",
            "properties": {
                "category": {
                    "type": "string",
                    "title": "Tracking category",
                    "description": "The Xero tracking category's name, e.g. Region.",
                    "maxLength": MAX_TRACKING_NAME,
                },
                "option": {
                    "type": "string",
                    "title": "Tracking option",
                    "description": "The option's name in that category, e.g. Europe.",
                    "maxLength": MAX_TRACKING_NAME,
                },
            },
            "required": ["category", "option"],
            "additionalProperties": False,
        },
    }
)
