"""m3ter's bill line item types: the closed set an integration may exclude from its invoices.

Kept in ``config`` (which imports nothing else of the project) so the integration options can
offer them as a list to pick from; ``tasks.m3ter.models`` uses the same list for the wire models.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["LINE_ITEM_TYPES", "LineItemType"]


class LineItemType(StrEnum):
    """The 19 ``lineItemType`` values of ``m3ter.types.bill_response.LineItem``."""

    STANDING_CHARGE = "STANDING_CHARGE"
    USAGE = "USAGE"
    COUNTER_RUNNING_TOTAL_CHARGE = "COUNTER_RUNNING_TOTAL_CHARGE"
    COUNTER_ADJUSTMENT_DEBIT = "COUNTER_ADJUSTMENT_DEBIT"
    COUNTER_ADJUSTMENT_CREDIT = "COUNTER_ADJUSTMENT_CREDIT"
    USAGE_CREDIT = "USAGE_CREDIT"
    MINIMUM_SPEND = "MINIMUM_SPEND"
    MINIMUM_SPEND_REFUND = "MINIMUM_SPEND_REFUND"
    CREDIT_DEDUCTION = "CREDIT_DEDUCTION"
    MANUAL_ADJUSTMENT = "MANUAL_ADJUSTMENT"
    CREDIT_MEMO = "CREDIT_MEMO"
    DEBIT_MEMO = "DEBIT_MEMO"
    COMMITMENT_CONSUMED = "COMMITMENT_CONSUMED"
    COMMITMENT_FEE = "COMMITMENT_FEE"
    OVERAGE_SURCHARGE = "OVERAGE_SURCHARGE"
    OVERAGE_USAGE = "OVERAGE_USAGE"
    BALANCE_CONSUMED = "BALANCE_CONSUMED"
    BALANCE_FEE = "BALANCE_FEE"
    AD_HOC = "AD_HOC"


LINE_ITEM_TYPES: tuple[str, ...] = tuple(t.value for t in LineItemType)
"""Every ``lineItemType`` value, in the SDK's order."""
