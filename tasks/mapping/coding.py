"""Each Xero line's coding: account code, item code, tax type and tracking.

A bill line's product is its ``accountingProductId`` (m3ter already chose it by its own
precedence: the pricing's accounting product, the aggregation's, the plan's product), else its
``productId``. The product's Xero mappings (m3ter entity "Product", external system "Xero",
chosen as ``tasks.mapping.external`` says, honouring "enforce external mappings for config"):

- table "Account": ``externalId`` is a Xero account code;
- table "Item": a Xero item code;
- table "TaxRate": a Xero tax type (``TaxRate.TaxType``, e.g. OUTPUT2);
- table "TrackingOption": ``"<category name>:<option name>"``, split on the first ":" (a value
  without a ":" or with a blank side is no mapping).

Precedence, per line:

- ``AccountCode``: the integration's account code for the line's type
  (``line_item_type_account_codes``) > the product's Account mapping > none when the line has an
  ``ItemCode`` (Xero then books it to the item's sales account) > ``default_account_code``.
- ``ItemCode``: only the product's Item mapping (m3ter's ``accountingProductCode`` is not a Xero
  item code: Xero refuses a code it does not know, so it is never sent as one).
- ``TaxType``: the integration's tax type for the customer's country (``tax_type_by_country``,
  keyed by the m3ter account's ``address.country`` read as ``config.countries`` says: an ISO
  3166-1 alpha-2 code, UK as GB) > the product's TaxRate mapping > ``default_tax_type`` > none
  (Xero then applies the account's, or the item's, default tax type). An account with no
  country, or one not listed, goes on to the product's mapping.

  Why the country wins over the product: whether a sale bears the organisation's VAT at all is
  decided by where the customer is (an export, a reverse-charged or out-of-scope service), and a
  product has one TaxRate mapping for every customer, so it can only say the home treatment: a
  product mapped to OUTPUT2 would otherwise charge 20 % VAT to a US customer, the very mistake
  the option is for. A product's own rate (reduced, exempt) still codes home customers when the
  home country is left out of ``tax_type_by_country``.
- ``Tracking``: the integration's ``tracking``, then the product's TrackingOption mappings, one
  per category (names compared without case; in each category the mappings are chosen on their
  own, linked before unlinked). The product's option replaces the integration's in the same
  category; a product category that would be a third one on the line is left off (Xero takes at
  most two), so the line keeps the integration's tracking; the product's own categories are
  taken in name order.

A line coded with neither ``AccountCode`` nor ``ItemCode`` is refused by Xero on a SUBMITTED or
AUTHORISED document ("Account code or ID must be specified"); ``map_bill`` stops such a bill as
MISSING_ACCOUNT_MAPPING with ``missing_account_reason``. A DRAFT may go without.

Lines are only ever merged (split per product) when their codings are equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from config.countries import country_code
from config.integration import IntegrationConfig
from config.xero_coding import MAX_TRACKING_CATEGORIES
from tasks.m3ter.models import Account, ExternalMapping, LineItem
from tasks.mapping.external import XeroMappings, find_mapping, preferred_mappings

__all__ = [
    "NO_CODING",
    "Coder",
    "LineCoding",
    "country_tax_type",
    "missing_account_reason",
    "product_key",
    "product_name",
    "tracking_option",
]

PRODUCT = "Product"


@dataclass(frozen=True)
class LineCoding:
    """What a Xero line is booked to (hashable: lines of different codings never merge)."""

    account_code: str | None = None
    item_code: str | None = None
    tax_type: str | None = None
    tracking: tuple[tuple[str, str], ...] = ()  # (category, option), at most two

    @property
    def booked(self) -> bool:
        """Whether Xero knows the account: an account code, or an item (its sales account)."""
        return bool(self.account_code or self.item_code)

    def xero(self) -> dict[str, Any]:
        """The Xero line's coding fields (PascalCase); none of those that are unset."""
        fields: dict[str, Any] = {}
        if self.item_code:
            fields["ItemCode"] = self.item_code
        if self.account_code:
            fields["AccountCode"] = self.account_code
        if self.tax_type:
            fields["TaxType"] = self.tax_type
        if self.tracking:
            fields["Tracking"] = [
                {"Name": name, "Option": option} for name, option in self.tracking
            ]
        return fields


NO_CODING = LineCoding()


def product_key(line: LineItem) -> str | None:
    """The line's product for mappings, exclusions and grouping: accounting product first."""
    return line.accounting_product_id or line.product_id


def product_name(line: LineItem) -> str | None:
    """The name of ``product_key``'s product."""
    if line.accounting_product_id:
        return line.accounting_product_name or line.product_name
    return line.product_name


def tracking_option(mapping: ExternalMapping) -> tuple[str, str] | None:
    """``(category, option)`` of a TrackingOption mapping's ``"<category>:<option>"``, or None."""
    category, colon, option = mapping.external_id.partition(":")
    category, option = category.strip(), option.strip()
    return (category, option) if colon and category and option else None


@dataclass(frozen=True)
class _ProductCoding:
    account_code: str | None
    item_code: str | None
    tax_type: str | None
    tracking: tuple[tuple[str, str], ...]


def _merge_tracking(
    base: Iterable[tuple[str, str]], product: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    merged = list(base)
    for category, option in product:
        same = [i for i, (name, _) in enumerate(merged) if name.casefold() == category.casefold()]
        if same:
            merged[same[0]] = (merged[same[0]][0], option)
        elif len(merged) < MAX_TRACKING_CATEGORIES:
            merged.append((category, option))
    return tuple(merged)


def country_tax_type(config: IntegrationConfig, account: Account | None) -> str | None:
    """The integration's tax type for the account's country, or None (no country, or not one
    the integration lists)."""
    if account is None or account.address is None or not config.tax_type_by_country:
        return None
    code = country_code(account.address.country)
    return config.tax_type_by_country.get(code) if code else None


class Coder:
    """Codes the lines of one bill for one integration (pure; product look-ups cached).

    ``account``: the bill's customer, whose country may choose the tax type."""

    def __init__(
        self,
        config: IntegrationConfig,
        integration_id: str,
        mappings: XeroMappings | Iterable[ExternalMapping | dict[str, Any]] = (),
        account: Account | None = None,
    ) -> None:
        self.config = config
        self.integration_id = integration_id
        self.mappings = XeroMappings.of(mappings)
        self._country_tax = country_tax_type(config, account)
        self._tracking = tuple((t.category, t.option) for t in config.tracking)
        self._products: dict[str | None, _ProductCoding] = {}

    def __call__(self, line: LineItem) -> LineCoding:
        """The Xero coding of ``line`` (the precedence in the module docstring)."""
        product = self._product(product_key(line))
        item = product.item_code
        account = self.config.line_item_type_account_codes.get(line.line_item_type)
        account = account or product.account_code
        if not account and not item:
            account = self.config.default_account_code
        return LineCoding(
            account_code=account,
            item_code=item,
            tax_type=self._country_tax or product.tax_type or self.config.default_tax_type,
            tracking=_merge_tracking(self._tracking, product.tracking),
        )

    def _product(self, key: str | None) -> _ProductCoding:
        coding = self._products.get(key)
        if coding is None:
            coding = self._products[key] = self._look_up(key)
        return coding

    def _value(self, key: str, table: str) -> str | None:
        mapping = find_mapping(
            self.config,
            self.integration_id,
            self.mappings,
            entity=PRODUCT,
            m3ter_id=key,
            table=table,
        )
        return mapping.external_id.strip() if mapping else None

    def _look_up(self, key: str | None) -> _ProductCoding:
        if key is None:
            return _ProductCoding(None, None, None, ())
        by_category: dict[str, list[tuple[ExternalMapping, tuple[str, str]]]] = {}
        for m in self.mappings.candidates(PRODUCT, key, "TrackingOption"):
            choice = tracking_option(m)
            if choice is not None:
                by_category.setdefault(choice[0].casefold(), []).append((m, choice))
        tracking = []
        for category in sorted(by_category):
            entries = by_category[category]
            chosen = preferred_mappings(self.config, self.integration_id, [m for m, _ in entries])
            if chosen:
                tracking.append(next(c for m, c in entries if m is chosen[0]))
        return _ProductCoding(
            account_code=self._value(key, "Account"),
            item_code=self._value(key, "Item"),
            tax_type=self._value(key, "TaxRate"),
            tracking=tuple(tracking),
        )


def missing_account_reason(line: LineItem) -> str:
    """Why a line with neither account nor item code stops its bill, and what to do."""
    kind = line.line_item_type
    what = f"line '{line.description}' ({kind})" if line.description else f"{kind} line"
    key = product_key(line)
    if not key:
        return (
            f"no Xero account code for {what} of no product: set an account code for {kind} "
            "lines, or a default account code"
        )
    name = product_name(line)
    whose = f"product {name} ({key})" if name else f"product {key}"
    return (
        f"no Xero account code for {what} of {whose}: map the product to a Xero Account, "
        f"set an account code for {kind} lines, or a default account code"
    )
