"""m3ter bill lines -> Xero line items, with money that adds up to the cent.

Rules (all amounts ``Decimal``, rounding half-up):

- Amounts are in the bill's currency: a line in another currency contributes its
  ``convertedSubtotal`` and its prices times ``conversionRate``.
- The document total is the sum of the kept m3ter lines, rounded to the cent. Each Xero line's
  ``LineAmount`` is rounded to 2 places; if the rounded lines miss the total, the difference
  (a few cents at most) goes on the line with the largest absolute amount, so the Xero lines
  always sum to the total exactly.
- Xero checks ``LineAmount == round(Quantity x UnitAmount, 2)`` ("the line total ... does not
  match the expected line total") and keeps ``UnitAmount`` to 4 places (``unitdp=4``) and
  ``Quantity`` to 4. So each line sends the natural quantity (4 places) with the natural unit
  price (4 places) when that product rounds to the line amount, else the unit price
  ``LineAmount / Quantity`` (4 places) when that does, else ``Quantity 1 x UnitAmount =
  LineAmount`` with the real "quantity x price" written into the description, as Xero's rounding
  guide recommends. A pair that lands exactly on a half cent is avoided, since half-up and
  half-even rounding would disagree.
- Per band: one line per pricing band that has usage or an amount; a line whose bands do not add
  up to its subtotal (within a cent) or have no amounts is sent as one line instead.
- Per product: usage lines (``USAGE``, ``OVERAGE_USAGE`` or any line with bands) of one product
  (accounting product id, else product id) and one coding become one line; its quantity is the
  sum when all share one unit, otherwise the line is ``1 x amount``.
- Coding (``tasks.mapping.coding``): each Xero line carries its m3ter line's account code, item
  code, tax type and tracking; a band line its line's; a per-product line its product's (lines
  of one product whose codings differ, e.g. by a line item type's account code, stay apart).
  Coding never moves money: the rules above hold whatever the coding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from config.integration import SortBy, SplitUsage
from tasks.m3ter.models import LineItem, UsagePerPricingBand
from tasks.mapping.coding import NO_CODING, LineCoding, product_key

__all__ = ["USAGE_LINE_TYPES", "build_line_items", "document_total", "line_amount"]

USAGE_LINE_TYPES: frozenset[str] = frozenset({"USAGE", "OVERAGE_USAGE"})
CENT = Decimal("0.01")
UNIT = Decimal("0.0001")
ONE = Decimal(1)


def _q(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal | None:
    try:
        return value.quantize(step, rounding=rounding)
    except InvalidOperation:
        return None


def money(value: Decimal) -> Decimal:
    """Round to the cent, half-up (amounts too large to round are a data error: raise)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _converted(line: LineItem, currency: str | None) -> bool:
    return bool(currency and line.currency and line.currency.upper() != currency.upper())


def line_amount(line: LineItem, currency: str | None) -> Decimal:
    """The line's exact amount in the bill currency."""
    return line.converted_subtotal if _converted(line, currency) else line.subtotal


def document_total(lines: Sequence[LineItem], currency: str | None) -> Decimal:
    """Sum of the kept lines, rounded to the cent: what the Xero lines must add up to."""
    return money(sum((line_amount(li, currency) for li in lines), Decimal(0)))


@dataclass
class _Draft:
    description: str
    amount: Decimal  # exact, bill currency, document sign
    quantity: Decimal | None
    unit_price: Decimal | None  # bill currency, document sign
    coding: LineCoding
    aggregation_id: str | None


def _fmt(value: Decimal) -> str:
    """People's numbers: thousands separators, no trailing zeros, at most 8 decimals."""
    if value.as_tuple().exponent < -8:  # type: ignore[operator]
        value = _q(value, Decimal("1e-8")) or value
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"


def _name(line: LineItem) -> str:
    return (
        line.product_name
        or line.accounting_product_name
        or line.description
        or line.line_item_type.replace("_", " ").title()
    )


def _band_amount(band: UsagePerPricingBand, converted: bool, factor: Decimal) -> Decimal | None:
    if converted and band.converted_band_subtotal is not None:
        return band.converted_band_subtotal
    if band.band_subtotal is not None:
        return band.band_subtotal * factor
    qty = band.band_quantity if band.band_quantity is not None else band.band_units
    if qty is not None and band.unit_price is not None:
        return (qty * band.unit_price + (band.fixed_price or 0)) * factor
    return None


def _band_drafts(
    line: LineItem,
    amount: Decimal,
    converted: bool,
    factor: Decimal,
    sign: int,
    coding: LineCoding,
) -> list[_Draft] | None:
    bands = line.usage_per_pricing_band or []
    entries: list[tuple[int, UsagePerPricingBand, Decimal, Decimal | None]] = []
    for i, band in enumerate(bands):
        band_amount = _band_amount(band, converted, factor)
        if band_amount is None:
            return None
        qty = band.band_quantity if band.band_quantity is not None else band.band_units
        if (qty or 0) == 0 and band_amount == 0:
            continue  # an unused tier of the price table
        entries.append((i, band, band_amount, qty))
    if not entries or abs(sum(e[2] for e in entries) - amount) > CENT:
        return None
    name = _name(line)
    drafts = []
    for i, band, band_amount, qty in entries:
        description = name
        if len(bands) > 1:
            lower = band.lower_limit if band.lower_limit is not None else Decimal(0)
            nxt = bands[i + 1].lower_limit if i + 1 < len(bands) else None
            upper = f"–{_fmt(nxt)}" if nxt is not None and nxt > lower else "+"
            description = f"{name} — band {_fmt(lower)}{upper}"
        price = band.unit_price * factor if band.unit_price is not None else None
        drafts.append(
            _Draft(
                description=description,
                amount=band_amount * sign,
                quantity=qty,
                unit_price=price * sign if price is not None else None,
                coding=coding,
                aggregation_id=line.aggregation_id,
            )
        )
    return drafts


def _line_draft(
    line: LineItem, amount: Decimal, factor: Decimal, sign: int, coding: LineCoding
) -> _Draft:
    return _Draft(
        description=line.description or _name(line),
        amount=amount * sign,
        quantity=line.quantity,
        unit_price=line.average_unit_price * factor * sign,
        coding=coding,
        aggregation_id=line.aggregation_id,
    )


def _is_usage(line: LineItem) -> bool:
    return line.line_item_type in USAGE_LINE_TYPES or bool(line.usage_per_pricing_band)


def _drafts(
    lines: Sequence[LineItem],
    currency: str | None,
    split: SplitUsage,
    sign: int,
    code: Callable[[LineItem], LineCoding],
) -> list[_Draft]:
    drafts: list[_Draft] = []
    groups: dict[tuple[str, LineCoding], tuple[_Draft, list[LineItem]]] = {}
    for line in lines:
        converted = _converted(line, currency)
        factor = line.conversion_rate if converted else ONE
        amount = line_amount(line, currency)
        product = product_key(line)
        coding = code(line)
        if split is SplitUsage.ITEM_PER_PRODUCT and _is_usage(line) and product:
            key = (product, coding)
            if key in groups:
                draft, members = groups[key]
                draft.amount += amount * sign
                members.append(line)
                continue
            draft = _line_draft(line, amount, factor, sign, coding)
            draft.description = (
                line.accounting_product_name or line.product_name or draft.description
            )
            groups[key] = (draft, [line])
            drafts.append(draft)
            continue
        if split is SplitUsage.ITEM_PER_USAGE_BAND and line.usage_per_pricing_band:
            banded = _band_drafts(line, amount, converted, factor, sign, coding)
            if banded is not None:
                drafts.extend(banded)
                continue
        drafts.append(_line_draft(line, amount, factor, sign, coding))
    for draft, members in groups.values():
        if len(members) == 1:
            continue
        if len({m.unit for m in members}) == 1:
            qty = sum((m.quantity for m in members), Decimal(0))
            draft.quantity = qty
            draft.unit_price = draft.amount / qty if qty else None
        else:
            draft.quantity, draft.unit_price = None, None
    return drafts


def _uncoded(line: LineItem) -> LineCoding:
    return NO_CODING


def _plain(value: Decimal) -> Decimal:
    """Drop trailing zeros (1000.0000 -> 1000); the value is unchanged."""
    return value.normalize() if value else Decimal(0)


def _xero_total_ok(quantity: Decimal, unit: Decimal, amount: Decimal) -> bool:
    product = quantity * unit
    return _q(product, CENT) == amount and _q(product, CENT, ROUND_HALF_EVEN) == amount


def _fit(draft: _Draft, amount: Decimal) -> tuple[Decimal, Decimal, str]:
    """Quantity (4dp), UnitAmount (4dp) that Xero multiplies back to ``amount``; description."""
    qty, price = draft.quantity, draft.unit_price
    if qty is not None and qty != 0:
        if qty < 0:
            qty, price = -qty, (-price if price is not None else None)
        q4 = _q(qty, UNIT)
        if q4:
            candidates = [price] if price is not None else []
            candidates.append(amount / q4)
            for candidate in candidates:
                u4 = _q(candidate, UNIT)
                if u4 is not None and _xero_total_ok(q4, u4, amount):
                    return q4, u4, draft.description
        if qty != ONE and price is not None:
            note = f"{draft.description} ({_fmt(qty)} × {_fmt(price)})"
            return ONE, amount, note
    return ONE, amount, draft.description


def build_line_items(
    lines: Sequence[LineItem],
    *,
    currency: str | None,
    split: SplitUsage,
    sort: SortBy,
    sign: int = 1,
    coding: Callable[[LineItem], LineCoding] | None = None,
) -> list[dict[str, Any]]:
    """Xero ``LineItems`` (PascalCase, Decimal) for the kept m3ter ``lines``.

    ``sign=-1`` writes a credit note: every amount negated, so a negative bill becomes positive.
    ``coding`` gives each m3ter line its Xero coding (``tasks.mapping.coding.Coder``); without
    it, lines carry none.
    """
    if not lines:
        return []
    target = document_total(lines, currency) * sign
    drafts = _drafts(lines, currency, split, sign, coding or _uncoded)
    amounts = [money(d.amount) for d in drafts]
    remainder = target - sum(amounts, Decimal(0))
    if remainder:
        largest = max(range(len(amounts)), key=lambda i: abs(amounts[i]))
        amounts[largest] += remainder
    items: list[tuple[_Draft, dict[str, Any]]] = []
    for draft, amount in zip(drafts, amounts, strict=True):
        quantity, unit, description = _fit(draft, amount)
        item: dict[str, Any] = {
            "Description": description[:4000] or "Charge",
            "Quantity": _plain(quantity),
            "UnitAmount": _plain(unit),
            "LineAmount": amount,
        }
        item.update(draft.coding.xero())
        items.append((draft, item))
    if sort is SortBy.SUBTOTAL:
        items.sort(key=lambda pair: pair[1]["LineAmount"], reverse=True)
    elif sort is SortBy.AGGREGATION_ID:
        items.sort(key=lambda pair: (pair[0].aggregation_id is None, pair[0].aggregation_id or ""))
    return [item for _, item in items]
