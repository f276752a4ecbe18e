"""Check an integration's Xero coding against the organisation before anything is sent.

An account code, tax type, item or tracking option the organisation does not hold (or holds
archived) would make Xero refuse every document that uses it, one batch at a time. So the
configuration is checked when it is saved or connected, and at the start of each sync against
the reference data of that run (``tasks.xero.reference``): each problem names the field and the
code, e.g. "default_account_code: account code 4100 is archived in Demo Company (UK)"; a tax
type per customer country is named with its country ("tax_type_by_country.DE: tax type ...").
Pure: the reference data and the mappings are read by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from config.integration import IntegrationConfig
from tasks.m3ter.models import ExternalMapping
from tasks.mapping import preferred_mappings
from tasks.xero.reference import AccountRef, TaxRef, XeroReference

__all__ = ["CodingProblem", "check_coding", "product_mappings", "reference_needs"]

PRODUCT_TABLES = ("account", "item", "taxrate", "trackingoption")


@dataclass(frozen=True)
class CodingProblem:
    """One code the organisation cannot take, and the field or mapping that names it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def product_mappings(
    config: IntegrationConfig, integration_id: str, mappings: Iterable[ExternalMapping]
) -> list[ExternalMapping]:
    """The Product → Xero mappings this integration uses: per product and table, those the
    mapper would choose (``tasks.mapping.preferred_mappings``: the integration's own, else the
    organisation's, else another's unless it enforces linked mappings)."""
    groups: dict[tuple[str, str], list[ExternalMapping]] = {}
    for m in mappings:
        if m.m3ter_entity.lower() != "product" or m.external_system.lower() != "xero":
            continue
        table = m.external_table.lower()
        if table in PRODUCT_TABLES and m.external_id.strip():
            groups.setdefault((m.m3ter_id, table), []).append(m)
    out: list[ExternalMapping] = []
    for (_, table), candidates in groups.items():
        chosen = preferred_mappings(config, integration_id, candidates)
        out += chosen if table == "trackingoption" else chosen[:1]
    return out


def reference_needs(
    config: IntegrationConfig, mappings: Iterable[ExternalMapping]
) -> tuple[bool, bool]:
    """Whether the checks need the items and the tracking categories (each one more call)."""
    tables = {m.external_table.lower() for m in mappings}
    return "item" in tables, bool(config.tracking) or "trackingoption" in tables


def _account(ref: XeroReference, code: str) -> str | None:
    account = ref.account(code)
    if account is None:
        return f"account code {code} does not exist in {ref.organisation}"
    if account.status != "ACTIVE":
        return f"account code {code} is {account.status.lower()} in {ref.organisation}"
    if account.type == "BANK":
        return f"account code {code} is a bank account in {ref.organisation}"
    return None


def _tax(ref: XeroReference, tax_type: str) -> str | None:
    rate = ref.tax_rate(tax_type)
    if rate is None:
        return f"tax type {tax_type} does not exist in {ref.organisation}"
    if rate.status != "ACTIVE":
        return f"tax type {tax_type} is {rate.status.lower()} in {ref.organisation}"
    if rate.applies_to and "REVENUE" not in rate.applies_to:
        return f"tax type {tax_type} cannot be used on revenue in {ref.organisation}"
    return None


def _item(ref: XeroReference, code: str) -> str | None:
    if ref.items is not None and code.strip().upper() not in ref.items:
        return f"item code {code} does not exist in {ref.organisation}"
    return None


def _tracking(ref: XeroReference, category: str, option: str) -> str | None:
    if ref.tracking is None:
        return None
    options = ref.tracking.get(category.strip().lower())
    if options is None:
        return f"tracking category {category} is not an active category in {ref.organisation}"
    status = options.get(option.strip().lower())
    if status is None:
        return f"tracking option {option} does not exist in {category} in {ref.organisation}"
    if status != "ACTIVE":
        return f"tracking option {option} of {category} is {status.lower()} in {ref.organisation}"
    return None


def _tax_on(ref: XeroReference, rate: TaxRef | None, account: AccountRef | None) -> str | None:
    """Why ``rate`` cannot go on ``account`` (a class it does not apply to), or None."""
    if rate and account and rate.applies_to and account.account_class not in rate.applies_to:
        return (
            f"tax type {rate.tax_type} cannot be used on account code {account.code} "
            f"({account.account_class.lower()}) in {ref.organisation}"
        )
    return None


def _coded_accounts(
    config: IntegrationConfig, mappings: list[ExternalMapping], own_tax_wins: bool
) -> list[str]:
    """The account codes the integration puts lines on: its own, and its products' Account
    mappings (``own_tax_wins``: less those of products with a TaxRate mapping of their own)."""
    codes = {config.default_account_code, *config.line_item_type_account_codes.values()}
    taxed = {m.m3ter_id for m in mappings if m.external_table.lower() == "taxrate"}
    codes |= {
        m.external_id
        for m in mappings
        if m.external_table.lower() == "account" and not (own_tax_wins and m.m3ter_id in taxed)
    }
    return sorted(c for c in codes if c)


def _tax_fits_accounts(
    field: str, tax_type: str, ref: XeroReference, codes: list[str]
) -> Iterator[CodingProblem]:
    """A tax type the integration puts on lines of every account in ``codes`` must suit each:
    Xero refuses a tax type on an account of a class it does not apply to
    (sandbox/xero/document_rules.py)."""
    rate = ref.tax_rate(tax_type)
    for code in codes:
        if why := _tax_on(ref, rate, ref.account(code)):
            yield CodingProblem(field, why)


def _product_tax_fits(
    ref: XeroReference, mappings: list[ExternalMapping]
) -> Iterator[CodingProblem]:
    """A product mapped to both an account and a tax type: the tax must suit the account."""
    accounts = {m.m3ter_id: m for m in mappings if m.external_table.lower() == "account"}
    for m in mappings:
        if m.external_table.lower() != "taxrate" or m.m3ter_id not in accounts:
            continue
        rate, account = ref.tax_rate(m.external_id), ref.account(accounts[m.m3ter_id].external_id)
        if why := _tax_on(ref, rate, account):
            yield CodingProblem(
                f"external mapping {m.id} (product {m.m3ter_id} → Xero TaxRate)", why
            )


def _mapping_problem(ref: XeroReference, m: ExternalMapping) -> str | None:
    table, value = m.external_table.lower(), m.external_id.strip()
    if table == "account":
        return _account(ref, value)
    if table == "item":
        return _item(ref, value)
    if table == "taxrate":
        return _tax(ref, value)
    category, sep, option = value.partition(":")
    if not sep or not category.strip() or not option.strip():
        return f"tracking option {value!r} is not written as Category:Option"
    return _tracking(ref, category, option)


def check_coding(
    config: IntegrationConfig,
    ref: XeroReference,
    mappings: Iterable[ExternalMapping] = (),
) -> list[CodingProblem]:
    """Every code of the integration (options and the product mappings it uses) that
    ``ref``'s organisation cannot take; empty when all are fine."""
    return list(_problems(config, ref, mappings))


def _problems(
    config: IntegrationConfig, ref: XeroReference, given: Iterable[ExternalMapping]
) -> Iterator[CodingProblem]:
    mappings = list(given)
    if config.default_account_code and (why := _account(ref, config.default_account_code)):
        yield CodingProblem("default_account_code", why)
    for line_type, code in sorted(config.line_item_type_account_codes.items()):
        if why := _account(ref, code):
            yield CodingProblem(f"line_item_type_account_codes.{line_type}", why)
    if config.default_tax_type and (why := _tax(ref, config.default_tax_type)):
        yield CodingProblem("default_tax_type", why)
    elif config.default_tax_type:
        # a product with a TaxRate mapping of its own does not take the default
        codes = _coded_accounts(config, mappings, own_tax_wins=True)
        yield from _tax_fits_accounts("default_tax_type", config.default_tax_type, ref, codes)
    # a customer's country wins over every product's own TaxRate mapping
    every = _coded_accounts(config, mappings, own_tax_wins=False)
    for country, tax_type in sorted(config.tax_type_by_country.items()):
        field = f"tax_type_by_country.{country}"
        if why := _tax(ref, tax_type):
            yield CodingProblem(field, why)
        else:
            yield from _tax_fits_accounts(field, tax_type, ref, every)
    for n, choice in enumerate(config.tracking):
        if why := _tracking(ref, choice.category, choice.option):
            yield CodingProblem(f"tracking.{n}", why)
    for m in mappings:
        if why := _mapping_problem(ref, m):
            yield CodingProblem(
                f"external mapping {m.id} (product {m.m3ter_id} → Xero {m.external_table})", why
            )
    yield from _product_tax_fits(ref, mappings)
