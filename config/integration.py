"""The Xero bill integration's configuration: every option of m3ter's console, validated on save.

``IntegrationConfig`` is what a person edits (and what the store keeps as JSON). Use
``validate_config(data)`` at every entry point that takes a person's input: it refuses bad input
with ``InvalidInput`` naming the field, so a form can point at what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from config.account_filter import AccountFilter, FilterSyntaxError, parse_filter
from config.errors import InvalidInput
from config.line_items import LINE_ITEM_TYPES
from config.xero_coding import (
    ACCOUNT_CODE_SCHEMA,
    COUNTRY_TAX_SCHEMA,
    TAX_TYPE_SCHEMA,
    TRACKING_SCHEMA,
    TYPE_CODES_SCHEMA,
    TrackingChoice,
    check_tracking,
    clean_account_code,
    clean_country_tax_types,
    clean_tax_type,
    clean_type_codes,
)
from config.xero_coding import refuse as _refuse

__all__ = [
    "INVOICE_STATUSES",
    "IntegrationConfig",
    "IntegrationStatus",
    "InvoiceNumbering",
    "SortBy",
    "SplitUsage",
    "SharedAccounts",
    "TrackingChoice",
    "parsed_filter",
    "shared_accounts",
    "validate_config",
]

INVOICE_STATUSES: tuple[str, ...] = ("DRAFT", "SUBMITTED", "AUTHORISED")

# Pragmatic address check (no extra package): one @, a dotted domain of DNS labels, no spaces.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}",
    re.ASCII,
)


class IntegrationStatus(StrEnum):
    """Derived by the store: DISABLED wins, then CONNECTED when a credential is attached."""

    NOT_CONNECTED = "NOT_CONNECTED"
    CONNECTED = "CONNECTED"
    DISABLED = "DISABLED"


class SplitUsage(StrEnum):
    """How usage lines become Xero lines: one per pricing band, or one per product."""

    ITEM_PER_USAGE_BAND = "ITEM_PER_USAGE_BAND"
    ITEM_PER_PRODUCT = "ITEM_PER_PRODUCT"


class SortBy(StrEnum):
    """Order of the Xero lines: as m3ter sent them, by amount (largest first), by aggregation."""

    NONE = "NONE"
    SUBTOTAL = "SUBTOTAL"
    AGGREGATION_ID = "AGGREGATION_ID"


class InvoiceNumbering(StrEnum):
    """The number on the Xero document (``InvoiceNumber``, ``CreditNoteNumber``): m3ter's
    invoice number, Xero's own sequence, or the m3ter bill id (``tasks.mapping.invoice``)."""

    M3TER_INVOICE_NUMBER = "M3TER_INVOICE_NUMBER"
    XERO_SEQUENCE = "XERO_SEQUENCE"
    BILL_ID = "BILL_ID"


def _clean_list(values: Any) -> Any:
    """Strip entries, drop blanks and repeats (forms send ``""`` and duplicates), keep order."""
    if not isinstance(values, list | tuple):
        return values
    out: list[Any] = []
    for value in values:
        cleaned = value.strip() if isinstance(value, str) else value
        if cleaned == "" or cleaned in out:
            continue
        out.append(cleaned)
    return out


def _choices(values: Any) -> WithJsonSchema:
    """A closed set as the form shows it: a dropdown of its values, no class name as label."""
    return WithJsonSchema({"type": "string", "enum": [str(v) for v in values]})


# A multi-select of the 19 known types (the model still takes lower case and upper-cases it).
_LINE_TYPES = WithJsonSchema(
    {
        "type": "array",
        "items": {"type": "string", "enum": list(LINE_ITEM_TYPES)},
        "uniqueItems": True,
    }
)
# The form's filter is a plain text box: empty means no filter (stored as null, as before).
_FILTER = WithJsonSchema({"type": "string"})


class IntegrationConfig(BaseModel):
    """Every option of the m3ter console's Xero bill integration."""

    # Each field carries the title and help the Prefect form shows; closed sets are dropdowns
    # (enums in the JSON schema, inlined: no class name becomes a label); entity_type and
    # destination are constants, stored and never on the form; no field has a null branch.

    model_config = ConfigDict(extra="forbid", validate_default=True, title="Integration options")

    name: str = Field(
        title="Name",
        description="How the integration is listed; unique per destination and entity type.",
    )
    account_ids: list[str] = Field(
        default_factory=list,
        title="Accounts",
        description="m3ter account ids whose bills this integration sends; empty: every account.",
    )
    restricted_account_ids: list[str] = Field(
        default_factory=list,
        title="Restricted accounts",
        description="m3ter account ids whose bills are never sent (with an empty account list: "
        "every account but these).",
    )
    notification_users: list[str] = Field(
        default_factory=list,
        title="Notify by e-mail",
        description="E-mail addresses told when the integration fails or is disabled.",
    )
    only_send_bill_on_approval: bool = Field(
        default=False,
        title="Only send approved bills",
        description="Send a bill once it is APPROVED in m3ter; a pending bill waits.",
    )
    use_external_mapping_account_code: bool = Field(
        default=False,
        title="Use the account's mapped Xero contact",
        description="Send each bill to the Xero contact mapped to its m3ter account (an "
        "Account -> Contact external mapping); a bill of an unmapped account is not sent.",
    )
    excluded_line_item_types: Annotated[list[str], _LINE_TYPES] = Field(
        default_factory=list,
        title="Excluded line item types",
        description="Bill lines of these m3ter types are left off the Xero document.",
    )
    account_filter: Annotated[str | None, _FILTER] = Field(
        default=None,
        title="Account filter",
        description="Only accounts that match, e.g. address.country == UK AND "
        "customFields.tier > 2; empty: every account.",
        json_schema_extra={"default": ""},
    )
    enforce_external_mappings_for_config: bool = Field(
        default=False,
        title="Only this integration's mappings",
        description="Use only external mappings linked to this integration, not the "
        "organisation's unlinked ones.",
    )
    excluded_products: list[str] = Field(
        default_factory=list,
        title="Excluded products",
        description="m3ter product ids (accounting product first) whose lines are left off.",
    )
    excluded_aggregations: list[str] = Field(
        default_factory=list,
        title="Excluded aggregations",
        description="m3ter aggregation or compound aggregation ids whose lines are left off.",
    )
    split_usage_line_items: Annotated[SplitUsage, _choices(SplitUsage)] = Field(
        default=SplitUsage.ITEM_PER_USAGE_BAND,
        title="Split usage lines",
        description="ITEM_PER_USAGE_BAND: one Xero line per pricing band; "
        "ITEM_PER_PRODUCT: one line per product.",
    )
    sort_line_items_by: Annotated[SortBy, _choices(SortBy)] = Field(
        default=SortBy.NONE,
        title="Sort lines by",
        description="NONE: as m3ter lists them; SUBTOTAL: largest amount first; "
        "AGGREGATION_ID: by aggregation.",
    )
    invoice_status: Literal["DRAFT", "SUBMITTED", "AUTHORISED"] = Field(
        default="DRAFT",
        title="Xero document status",
        description="DRAFT; SUBMITTED (awaiting approval in Xero); or AUTHORISED (approved).",
    )
    invoice_numbering: Annotated[InvoiceNumbering, _choices(InvoiceNumbering)] = Field(
        default=InvoiceNumbering.M3TER_INVOICE_NUMBER,
        title="Invoice number",
        description="The number on the Xero document. M3TER_INVOICE_NUMBER: m3ter's invoice "
        "number (e.g. INV-000061; a bill without one yet carries its bill id until it has "
        "one); XERO_SEQUENCE: Xero numbers it from the organisation's invoice settings; "
        "BILL_ID: the m3ter bill id. With the first two, Reference carries the bill id.",
    )
    # How each Xero line is coded (checks in config.xero_coding; precedence in
    # tasks.mapping.coding): product mappings first, then these.
    default_account_code: Annotated[str | None, ACCOUNT_CODE_SCHEMA] = Field(
        default=None,
        title="Default account code",
        description="The Xero revenue account code (e.g. 200) for lines that neither a line item "
        "type's account code nor the product's Xero Account or Item mapping codes; empty: none "
        "(then a SUBMITTED or AUTHORISED bill with such a line is not sent).",
        json_schema_extra={"default": ""},
    )
    default_tax_type: Annotated[str | None, TAX_TYPE_SCHEMA] = Field(
        default=None,
        title="Default tax type",
        description="The Xero tax type (e.g. OUTPUT2) for lines that neither the customer's "
        "country nor the product's Xero TaxRate mapping codes; empty: Xero applies the account's "
        "or item's own tax type.",
        json_schema_extra={"default": ""},
    )
    tax_type_by_country: Annotated[dict[str, str], COUNTRY_TAX_SCHEMA] = Field(
        default_factory=dict,
        title="Tax type per customer country",
        description="A Xero tax type for every line of a customer whose m3ter address country is "
        'that ISO code (UK counts as GB), e.g. {"US": "NONE", "DE": "ZERORATEDOUTPUT"}; it wins '
        "over the product's TaxRate mapping and the default tax type. Leave your own country out "
        "to keep those for home customers.",
    )
    line_item_type_account_codes: Annotated[dict[str, str], TYPE_CODES_SCHEMA] = Field(
        default_factory=dict,
        title="Account code per line item type",
        description="A Xero account code for every line of an m3ter line item type, e.g. "
        '{"MINIMUM_SPEND": "4100", "CREDIT_MEMO": "4900"}; it wins over the product\'s mapping.',
    )
    tracking: Annotated[list[TrackingChoice], TRACKING_SCHEMA] = Field(
        default_factory=list,
        title="Tracking",
        description="Xero tracking category and option stamped on every line (at most two "
        "categories); a product's TrackingOption mapping wins in its category.",
    )
    entity_type: SkipJsonSchema[Literal["Bill"]] = "Bill"
    destination: SkipJsonSchema[Literal["Xero"]] = "Xero"

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise _refuse("a name is required")
            if len(value) > 200:
                raise _refuse("a name has at most 200 characters")
        return value

    @field_validator(
        "account_ids",
        "restricted_account_ids",
        "notification_users",
        "excluded_line_item_types",
        "excluded_products",
        "excluded_aggregations",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _clean_list(value)

    @field_validator("restricted_account_ids")
    @classmethod
    def _not_both(cls, value: list[str], info: ValidationInfo) -> list[str]:
        both = [a for a in value if a in set(info.data.get("account_ids") or ())]
        if both:
            raise _refuse(f"account(s) both allowed and restricted: {', '.join(both)}")
        return value

    @field_validator("notification_users")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if len(v) > 254 or not _EMAIL.fullmatch(v)]
        if bad:
            raise _refuse(f"not an e-mail address: {', '.join(bad)}")
        return value

    @field_validator("excluded_line_item_types", mode="before")
    @classmethod
    def _line_types_upper(cls, value: Any) -> Any:
        if isinstance(value, list):
            return _clean_list([v.upper() if isinstance(v, str) else v for v in value])
        return value

    @field_validator("excluded_line_item_types")
    @classmethod
    def _line_types(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in LINE_ITEM_TYPES]
        if unknown:
            raise _refuse(
                f"unknown line item type(s): {', '.join(unknown)}; "
                f"expected some of {', '.join(LINE_ITEM_TYPES)}"
            )
        return value

    @field_validator("account_filter", mode="before")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                parse_filter(value)
            except FilterSyntaxError as err:
                raise _refuse(err.detail) from None
        return value

    @field_validator("default_account_code", mode="before")
    @classmethod
    def _account_code(cls, value: Any) -> Any:
        return clean_account_code(value)

    @field_validator("default_tax_type", mode="before")
    @classmethod
    def _tax_type(cls, value: Any) -> Any:
        return clean_tax_type(value)

    @field_validator("tax_type_by_country", mode="before")
    @classmethod
    def _country_tax(cls, value: Any) -> Any:
        return clean_country_tax_types(value)

    @field_validator("line_item_type_account_codes", mode="before")
    @classmethod
    def _type_codes(cls, value: Any) -> Any:
        return clean_type_codes(value)

    @field_validator("tracking")
    @classmethod
    def _tracking(cls, value: list[TrackingChoice]) -> list[TrackingChoice]:
        return check_tracking(value)

    @field_validator("invoice_status", mode="before")
    @classmethod
    def _status_upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


def validate_config(data: dict[str, Any]) -> IntegrationConfig:
    """Validate a person's input; refuse it with ``InvalidInput`` naming the first bad field."""
    if not isinstance(data, dict):
        raise InvalidInput("expected the integration options as a mapping")
    try:
        return IntegrationConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = first.get("loc") or ()
        field = str(loc[0]) if loc else None
        message = first["msg"]
        if len(loc) > 1:
            message = f"{message} (item {'.'.join(str(p) for p in loc[1:])})"
        raise InvalidInput(message, field=field) from None


@lru_cache(maxsize=256)
def _parse_cached(text: str) -> AccountFilter:
    return parse_filter(text)


def parsed_filter(config: IntegrationConfig) -> AccountFilter | None:
    """The config's filter, parsed once per distinct text (the text was checked on save)."""
    return _parse_cached(config.account_filter) if config.account_filter else None


@dataclass(frozen=True)
class SharedAccounts:
    """Accounts whose bills two integrations would both send.

    ``unbounded``: every account (``ids`` are then those neither sends); else exactly ``ids``.
    """

    unbounded: bool
    ids: tuple[str, ...] = ()

    def describe(self, limit: int = 10) -> str:
        """``all accounts``, or the ids: at most ``limit`` of them and how many more."""
        if self.unbounded:
            return "all accounts" + (f" except {_some(self.ids, limit)}" if self.ids else "")
        return _some(self.ids, limit)


def _some(ids: tuple[str, ...], limit: int) -> str:
    shown = ", ".join(ids[:limit])
    return f"{shown} and {len(ids) - limit} more" if len(ids) > limit else shown


def shared_accounts(a: IntegrationConfig, b: IntegrationConfig) -> SharedAccounts | None:
    """The accounts both integrations send bills for, or None when their account sets are apart.

    An empty ``account_ids`` means every account less its ``restricted_account_ids``. The
    filter expression is not compared: two filters cannot in general be shown disjoint.
    """
    restricted = set(a.restricted_account_ids) | set(b.restricted_account_ids)
    if not a.account_ids and not b.account_ids:
        return SharedAccounts(unbounded=True, ids=tuple(sorted(restricted)))
    if not a.account_ids or not b.account_ids:
        listed = set(a.account_ids or b.account_ids)
    else:
        listed = set(a.account_ids) & set(b.account_ids)
    both = tuple(sorted(listed - restricted))
    return SharedAccounts(unbounded=False, ids=both) if both else None
