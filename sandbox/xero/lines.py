"""Line items of invoices and credit notes: parsing what a client sends, rendering what Xero shows.

Parsing only reads the line's own numbers and codes; whether its account, tax type, item and
tracking exist in the organisation is ``document_rules``'s job. Money is Decimal throughout:
``UnitAmount`` keeps 4 decimals with ``unitdp=4`` else 2, ``LineAmount`` = Quantity x
UnitAmount rounded half up to cents, and a ``LineAmount`` sent must agree with it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sandbox.xero.tax import CENT, ZERO


class Invalid(Exception):
    """One validation message about a field, worded as Xero words it."""


@dataclass
class Line:
    """One stored line item; codes as resolved against the organisation's books."""

    line_item_id: str
    description: str | None
    quantity: Decimal | None
    unit_amount: Decimal | None
    line_amount: Decimal
    account_code: str | None = None
    account_id: str | None = None
    item_code: str | None = None
    item: dict[str, str] | None = None  # {ItemID, Code, Name} once the item is known
    tax_type: str | None = None
    tax_rate: Decimal | None = None  # percent, from the tax type; None: no tax on the line
    tax_override: Decimal | None = None  # a TaxAmount the client sent
    tax_amount: Decimal = ZERO
    tracking: list[dict[str, str]] = field(default_factory=list)  # as sent, then resolved

    def copy(self) -> Line:
        """A copy whose tracking list can change without touching this one."""
        return Line(**{**self.__dict__, "tracking": [dict(t) for t in self.tracking]})


def text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{key} must be text")
    return value


def number(value: Any, key: str) -> Decimal | None:
    """A JSON number as Decimal (the wire parses numbers to Decimal); floats refused upstream."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Invalid(f"{key} must be a number")
    try:
        parsed = Decimal(str(value)) if isinstance(value, int | str | float) else value
    except InvalidOperation:
        raise Invalid(f"{key} must be a number") from None
    if not isinstance(parsed, Decimal) or not parsed.is_finite():
        raise Invalid(f"{key} must be a number")
    return parsed


def guid(value: Any, key: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise Invalid(f"{key} is not a valid identifier") from None


def parse_line(raw: Any, unit_places: Decimal) -> Line:
    """A line as sent. A line with neither quantity nor unit amount is a description-only line;
    it needs a description unless an item will give it one (checked once the item is known)."""
    if not isinstance(raw, dict):
        raise Invalid("A line item must be an object")
    description = text(raw, "Description")
    quantity = number(raw.get("Quantity"), "Quantity")
    unit = number(raw.get("UnitAmount"), "UnitAmount")
    given = number(raw.get("LineAmount"), "LineAmount")
    if quantity is None and unit is None and given is not None:
        quantity, unit = Decimal("1"), given
    elif quantity is not None and unit is None and given is not None and quantity != 0:
        unit = given / quantity
    elif unit is not None and quantity is None:
        quantity = Decimal("1")
    if quantity is not None:
        quantity = quantity.quantize(Decimal("0.0001"), ROUND_HALF_UP)
    if unit is not None:
        unit = unit.quantize(unit_places, ROUND_HALF_UP)
    if quantity is None or unit is None:
        amount = ZERO
    else:
        amount = (quantity * unit).quantize(CENT, ROUND_HALF_UP)
        if given is not None and given.quantize(CENT, ROUND_HALF_UP) != amount:
            raise Invalid(f"The line total {given} does not match the expected line total {amount}")
    tracking = raw.get("Tracking")
    if tracking is not None and not (
        isinstance(tracking, list) and all(isinstance(t, dict) for t in tracking)
    ):
        raise Invalid("Tracking must be a list of tracking categories")
    account_id = raw.get("AccountID")
    return Line(
        line_item_id=str(uuid.uuid4()),
        description=description,
        quantity=quantity,
        unit_amount=unit,
        line_amount=amount,
        account_code=text(raw, "AccountCode") or None,
        account_id=guid(account_id, "AccountID") if account_id else None,
        item_code=text(raw, "ItemCode") or None,
        tax_type=text(raw, "TaxType") or None,
        tax_override=number(raw.get("TaxAmount"), "TaxAmount"),
        tracking=[dict(t) for t in tracking or []],
    )


def render_line(line: Line, places: Decimal) -> dict[str, Any]:
    """A line in Xero's JSON shape (spec ``LineItem``)."""
    out: dict[str, Any] = {"LineItemID": line.line_item_id}
    if line.description is not None:
        out["Description"] = line.description
    if line.quantity is not None:
        out["Quantity"] = line.quantity
    if line.unit_amount is not None:
        out["UnitAmount"] = line.unit_amount.quantize(places, ROUND_HALF_UP)
    for key, value in (
        ("ItemCode", line.item_code),
        ("AccountCode", line.account_code),
        ("AccountID", line.account_id),
        ("TaxType", line.tax_type),
    ):
        if value is not None:
            out[key] = value
    if line.item is not None:
        out["Item"] = dict(line.item)
    out["TaxAmount"] = line.tax_amount
    out["LineAmount"] = line.line_amount
    out["Tracking"] = [dict(t) for t in line.tracking]
    return out


def lines_from(
    raw: dict[str, Any], old: list[Line], places: Decimal, errors: list[str]
) -> list[Line]:
    """The lines sent (they replace the old ones), or copies of the old ones; a line that cannot
    be parsed adds its refusal to ``errors``."""
    if "LineItems" not in raw:
        return [line.copy() for line in old]
    if not isinstance(raw["LineItems"], list):
        errors.append("LineItems must be a list")
        return [line.copy() for line in old]
    lines = []
    for item in raw["LineItems"]:
        try:
            lines.append(parse_line(item, places))
        except Invalid as refusal:
            errors.append(str(refusal))
    return lines
