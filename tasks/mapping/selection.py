"""Which accounts, bills and bill lines an integration sends: the console's entity options."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from config.integration import IntegrationConfig, parsed_filter
from tasks.m3ter.models import Account, Bill, LineItem

__all__ = ["account_allowed", "bill_wanted", "line_kept", "select_accounts"]

A = TypeVar("A", Account, dict[str, Any])


def _account_id(account: Account | dict[str, Any]) -> str | None:
    return account.id if isinstance(account, Account) else account.get("id")


def account_allowed(config: IntegrationConfig, account: Account | dict[str, Any]) -> bool:
    """Allowed list (empty: every account), minus the restricted list, then the filter."""
    account_id = _account_id(account)
    if config.account_ids and account_id not in config.account_ids:
        return False
    if account_id in config.restricted_account_ids:
        return False
    flt = parsed_filter(config)
    return flt is None or flt.matches(account)


def select_accounts(config: IntegrationConfig, accounts: Iterable[A]) -> Iterator[A]:
    """The accounts this integration sends bills for, in the order given."""
    return (a for a in accounts if account_allowed(config, a))


def bill_wanted(config: IntegrationConfig, bill: Bill) -> bool:
    """With "only send bill on approval", only APPROVED bills go; otherwise every bill does."""
    return not config.only_send_bill_on_approval or (bill.status or "").upper() == "APPROVED"


def line_kept(config: IntegrationConfig, line: LineItem) -> bool:
    """Drop excluded line types, products (accounting product id first) and aggregations."""
    if line.line_item_type in config.excluded_line_item_types:
        return False
    product = line.accounting_product_id or line.product_id
    if product is not None and product in config.excluded_products:
        return False
    aggregations = {line.aggregation_id, line.compound_aggregation_id} - {None}
    return not aggregations & set(config.excluded_aggregations)
