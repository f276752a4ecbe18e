"""m3ter wire models: Bill, LineItem, pricing bands, Account, ExternalMapping.

Field names, aliases and optionality mirror the official SDK ``m3ter`` 0.9.0
(``m3ter.types.bill_response``, ``account_response``, ``address``, ``external_mapping_response``)
so our wire shapes never drift from m3ter's. Two deliberate differences: money and quantities
are ``Decimal`` (the SDK uses ``float``), and enumerations are plain ``str`` with the known
values exported as tuples, so a value m3ter adds tomorrow does not stop a sync.
Attributes are snake_case; the camelCase wire names are aliases; unknown fields are kept.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from config.line_items import LINE_ITEM_TYPES, LineItemType

BILL_STATUSES: tuple[str, ...] = ("PENDING", "APPROVED")
BILLING_FREQUENCIES: tuple[str, ...] = ("DAILY", "WEEKLY", "MONTHLY", "ANNUALLY", "AD_HOC", "MIXED")


class WireModel(BaseModel):
    """Base: accept wire (camelCase) or Python names, keep unknown fields, dump by alias."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    def to_wire(self) -> dict[str, Any]:
        """The camelCase JSON-able dict m3ter would send (Decimals become JSON numbers later)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="python")


class CurrencyConversion(WireModel):
    """``m3ter.types.shared.CurrencyConversion``."""

    from_: str = Field(alias="from")
    to: str
    multiplier: Decimal | None = None


class UsagePerPricingBand(WireModel):
    """One band or tier of a line item (``LineItemUsagePerPricingBand``)."""

    band_quantity: Decimal | None = Field(default=None, alias="bandQuantity")
    band_subtotal: Decimal | None = Field(default=None, alias="bandSubtotal")
    band_units: Decimal | None = Field(default=None, alias="bandUnits")
    converted_band_subtotal: Decimal | None = Field(default=None, alias="convertedBandSubtotal")
    credit_type_id: str | None = Field(default=None, alias="creditTypeId")
    fixed_price: Decimal | None = Field(default=None, alias="fixedPrice")
    lower_limit: Decimal | None = Field(default=None, alias="lowerLimit")
    pricing_band_id: str | None = Field(default=None, alias="pricingBandId")
    unit_price: Decimal | None = Field(default=None, alias="unitPrice")
    unit_subtotal: Decimal | None = Field(default=None, alias="unitSubtotal")


class LineItem(WireModel):
    """A bill line (``m3ter.types.bill_response.LineItem``).

    The SDK has no ``unitPrice`` on a line: the line's price is ``average_unit_price``; per-band
    prices are in ``usage_per_pricing_band``. ``units`` is a number, ``unit`` its name ("GB").
    """

    average_unit_price: Decimal = Field(alias="averageUnitPrice")
    conversion_rate: Decimal = Field(alias="conversionRate")
    converted_subtotal: Decimal = Field(alias="convertedSubtotal")
    currency: str
    description: str
    line_item_type: str = Field(alias="lineItemType")
    quantity: Decimal
    subtotal: Decimal
    unit: str
    units: Decimal
    id: str | None = None
    accounting_product_code: str | None = Field(default=None, alias="accountingProductCode")
    accounting_product_id: str | None = Field(default=None, alias="accountingProductId")
    accounting_product_name: str | None = Field(default=None, alias="accountingProductName")
    additional: dict[str, Any] | None = None
    aggregation_id: str | None = Field(default=None, alias="aggregationId")
    balance_id: str | None = Field(default=None, alias="balanceId")
    charge_id: str | None = Field(default=None, alias="chargeId")
    child_account_code: str | None = Field(default=None, alias="childAccountCode")
    child_account_id: str | None = Field(default=None, alias="childAccountId")
    commitment_id: str | None = Field(default=None, alias="commitmentId")
    compound_aggregation_id: str | None = Field(default=None, alias="compoundAggregationId")
    contract_id: str | None = Field(default=None, alias="contractId")
    counter_id: str | None = Field(default=None, alias="counterId")
    credit_type_id: str | None = Field(default=None, alias="creditTypeId")
    group: dict[str, str] | None = None
    meter_id: str | None = Field(default=None, alias="meterId")
    plan_group_id: str | None = Field(default=None, alias="planGroupId")
    plan_id: str | None = Field(default=None, alias="planId")
    pricing_id: str | None = Field(default=None, alias="pricingId")
    product_code: str | None = Field(default=None, alias="productCode")
    product_id: str | None = Field(default=None, alias="productId")
    product_name: str | None = Field(default=None, alias="productName")
    reason_id: str | None = Field(default=None, alias="reasonId")
    referenced_bill_id: str | None = Field(default=None, alias="referencedBillId")
    referenced_line_item_id: str | None = Field(default=None, alias="referencedLineItemId")
    segment: dict[str, str] | None = None
    sequence_number: int | None = Field(default=None, alias="sequenceNumber")
    service_period_end_date: datetime | None = Field(default=None, alias="servicePeriodEndDate")
    service_period_start_date: datetime | None = Field(default=None, alias="servicePeriodStartDate")
    usage_per_pricing_band: list[UsagePerPricingBand] | None = Field(
        default=None, alias="usagePerPricingBand"
    )


class Bill(WireModel):
    """A bill (``m3ter.types.BillResponse``). ``status`` is PENDING or APPROVED; ``locked`` is
    separate. ``bill_total`` is only sent when the list asks ``includeBillTotal=true``."""

    id: str
    account_code: str | None = Field(default=None, alias="accountCode")
    account_id: str | None = Field(default=None, alias="accountId")
    approved_by: str | None = Field(default=None, alias="approvedBy")
    bill_date: date | None = Field(default=None, alias="billDate")
    bill_frequency_interval: int | None = Field(default=None, alias="billFrequencyInterval")
    billing_frequency: str | None = Field(default=None, alias="billingFrequency")
    bill_job_id: str | None = Field(default=None, alias="billJobId")
    bill_total: Decimal | None = Field(default=None, alias="billTotal")
    created_by: str | None = Field(default=None, alias="createdBy")
    created_date: datetime | None = Field(default=None, alias="createdDate")
    csv_statement_generated: bool | None = Field(default=None, alias="csvStatementGenerated")
    currency: str | None = None
    currency_conversions: list[CurrencyConversion] | None = Field(
        default=None, alias="currencyConversions"
    )
    dt_approved: datetime | None = Field(default=None, alias="dtApproved")
    dt_created: datetime | None = Field(default=None, alias="dtCreated")
    dt_last_modified: datetime | None = Field(default=None, alias="dtLastModified")
    dt_locked: datetime | None = Field(default=None, alias="dtLocked")
    due_date: date | None = Field(default=None, alias="dueDate")
    end_date: date | None = Field(default=None, alias="endDate")
    end_date_time_utc: datetime | None = Field(default=None, alias="endDateTimeUTC")
    external_invoice_date: date | None = Field(default=None, alias="externalInvoiceDate")
    external_invoice_reference: str | None = Field(default=None, alias="externalInvoiceReference")
    json_statement_generated: bool | None = Field(default=None, alias="jsonStatementGenerated")
    last_calculated_date: datetime | None = Field(default=None, alias="lastCalculatedDate")
    last_modified_by: str | None = Field(default=None, alias="lastModifiedBy")
    line_items: list[LineItem] | None = Field(default=None, alias="lineItems")
    locked: bool | None = None
    locked_by: str | None = Field(default=None, alias="lockedBy")
    purchase_order_number: str | None = Field(default=None, alias="purchaseOrderNumber")
    sequential_invoice_number: str | None = Field(default=None, alias="sequentialInvoiceNumber")
    start_date: date | None = Field(default=None, alias="startDate")
    start_date_time_utc: datetime | None = Field(default=None, alias="startDateTimeUTC")
    statement_stale: bool | None = Field(default=None, alias="statementStale")
    status: str | None = None
    timezone: str | None = None
    version: int | None = None

    def computed_total(self) -> Decimal:
        """Sum of line subtotals: the total whether or not ``billTotal`` was sent."""
        return sum((li.subtotal for li in self.line_items or ()), Decimal(0))


class Address(WireModel):
    """``m3ter.types.Address``."""

    address_line1: str | None = Field(default=None, alias="addressLine1")
    address_line2: str | None = Field(default=None, alias="addressLine2")
    address_line3: str | None = Field(default=None, alias="addressLine3")
    address_line4: str | None = Field(default=None, alias="addressLine4")
    country: str | None = None
    locality: str | None = None
    post_code: str | None = Field(default=None, alias="postCode")
    region: str | None = None


class Account(WireModel):
    """A customer account (``m3ter.types.AccountResponse``)."""

    id: str
    address: Address | None = None
    auto_generate_statement_mode: str | None = Field(
        default=None, alias="autoGenerateStatementMode"
    )
    bill_epoch: date | None = Field(default=None, alias="billEpoch")
    code: str | None = None
    created_by: str | None = Field(default=None, alias="createdBy")
    credit_application_order: list[str] | None = Field(default=None, alias="creditApplicationOrder")
    currency: str | None = None
    custom_fields: dict[str, str | Decimal] | None = Field(default=None, alias="customFields")
    days_before_bill_due: int | None = Field(default=None, alias="daysBeforeBillDue")
    dt_created: datetime | None = Field(default=None, alias="dtCreated")
    dt_last_modified: datetime | None = Field(default=None, alias="dtLastModified")
    email_address: str | None = Field(default=None, alias="emailAddress")
    last_modified_by: str | None = Field(default=None, alias="lastModifiedBy")
    name: str | None = None
    parent_account_id: str | None = Field(default=None, alias="parentAccountId")
    purchase_order_number: str | None = Field(default=None, alias="purchaseOrderNumber")
    statement_definition_id: str | None = Field(default=None, alias="statementDefinitionId")
    version: int | None = None


class ExternalMapping(WireModel):
    """Links an m3ter entity to one in another system (``ExternalMappingResponse``), e.g.
    Account -> Xero Contact: ``m3ter_entity="Account"``, ``external_system="Xero"``,
    ``external_table="Contact"``, ``external_id`` = the Xero ContactID."""

    id: str
    external_id: str = Field(alias="externalId")
    external_system: str = Field(alias="externalSystem")
    external_table: str = Field(alias="externalTable")
    m3ter_entity: str = Field(alias="m3terEntity")
    m3ter_id: str = Field(alias="m3terId")
    created_by: str | None = Field(default=None, alias="createdBy")
    dt_created: datetime | None = Field(default=None, alias="dtCreated")
    dt_last_modified: datetime | None = Field(default=None, alias="dtLastModified")
    integration_config_id: str | None = Field(default=None, alias="integrationConfigId")
    last_modified_by: str | None = Field(default=None, alias="lastModifiedBy")
    version: int | None = None


__all__ = [
    "BILLING_FREQUENCIES",
    "BILL_STATUSES",
    "LINE_ITEM_TYPES",
    "Account",
    "Address",
    "Bill",
    "CurrencyConversion",
    "ExternalMapping",
    "LineItem",
    "LineItemType",
    "UsagePerPricingBand",
    "WireModel",
]
