"""The sandbox's wire shapes checked by the official ``m3ter`` SDK, over HTTP on loopback.

The SDK client runs with strict response validation, so every answer is parsed and validated by
m3ter's own models (``BillResponse``, ``AccountResponse``, ``ExternalMappingResponse``). The same
JSON is parsed with our models and the key fields must agree.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import m3ter
import pytest
from m3ter.types import (
    AccountResponse,
    BillResponse,
    BillSearchResponse,
    ExternalMappingResponse,
)

from sandbox.m3ter import generator as gen
from sandbox.m3ter.mappings import PRODUCT_MAPPINGS
from sandbox.m3ter.state import DEFAULT_CLIENT_ID, DEFAULT_ORG_ID
from tasks.m3ter.models import LINE_ITEM_TYPES, Account, Bill, ExternalMapping
from tests.m3ter.conftest import Running, sandbox_token


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _raw(m3ter_server: Running, path: str, **params: object) -> dict:
    """The same answer as plain JSON, fetched with a token of our own."""
    with httpx.Client(base_url=m3ter_server.url) as http:
        token = sandbox_token(http)
        r = http.get(
            f"/organizations/{DEFAULT_ORG_ID}/{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        return r.json(parse_float=Decimal)


def _agree(sdk_bill: BillResponse, ours: Bill) -> None:
    assert (ours.id, ours.version, ours.account_id, ours.account_code) == (
        sdk_bill.id,
        sdk_bill.version,
        sdk_bill.account_id,
        sdk_bill.account_code,
    )
    assert (ours.bill_date, ours.due_date, ours.start_date, ours.end_date) == (
        sdk_bill.bill_date,
        sdk_bill.due_date,
        sdk_bill.start_date,
        sdk_bill.end_date,
    )
    assert (ours.status, ours.locked, ours.currency, ours.billing_frequency) == (
        sdk_bill.status,
        sdk_bill.locked,
        sdk_bill.currency,
        sdk_bill.billing_frequency,
    )
    assert ours.bill_total == _dec(sdk_bill.bill_total)
    assert ours.sequential_invoice_number == sdk_bill.sequential_invoice_number
    assert len(ours.line_items or []) == len(sdk_bill.line_items or [])
    for mine, theirs in zip(ours.line_items or [], sdk_bill.line_items or [], strict=True):
        assert mine.line_item_type == theirs.line_item_type
        assert mine.subtotal == _dec(theirs.subtotal)
        assert mine.quantity == _dec(theirs.quantity)
        assert mine.average_unit_price == _dec(theirs.average_unit_price)
        assert (mine.product_id, mine.accounting_product_id, mine.aggregation_id) == (
            theirs.product_id,
            theirs.accounting_product_id,
            theirs.aggregation_id,
        )
        mine_bands = mine.usage_per_pricing_band or []
        their_bands = theirs.usage_per_pricing_band or []
        assert [b.band_subtotal for b in mine_bands] == [_dec(b.band_subtotal) for b in their_bands]


def test_bills_list_and_retrieve_parse_with_sdk_models(
    sdk: m3ter.M3ter, m3ter_server: Running
) -> None:
    sdk_bills = list(sdk.bills.list(page_size=25, include_bill_total=True))
    assert len(sdk_bills) == 60  # three pages followed by the SDK's own cursor
    assert all(isinstance(b, BillResponse) for b in sdk_bills)
    assert {li.line_item_type for b in sdk_bills for li in b.line_items or []} == set(
        LINE_ITEM_TYPES
    )
    raw = _raw(m3ter_server, "bills", pageSize=60, includeBillTotal="true")["data"]
    for sdk_bill, wire in zip(sdk_bills, raw, strict=True):
        BillResponse.model_validate(wire)  # m3ter's model accepts the raw dict too
        _agree(sdk_bill, Bill.model_validate(wire))
    one = sdk.bills.retrieve(sdk_bills[5].id)
    assert isinstance(one, BillResponse)
    _agree(one, Bill.model_validate(_raw(m3ter_server, f"bills/{one.id}")))


def test_bill_filters_through_sdk(sdk: m3ter.M3ter, m3ter_server: Running) -> None:
    approved = list(sdk.bills.list(status="APPROVED", page_size=10))
    expected = sum(1 for r in m3ter_server.sandbox.bills if r.status == "APPROVED")
    assert len(approved) == expected and all(b.status == "APPROVED" for b in approved)
    march = list(sdk.bills.list(bill_date_start="2025-03-01", bill_date_end="2025-04-01"))
    assert len(march) == 20 and {str(b.bill_date) for b in march} == {"2025-03-01"}
    acc = m3ter_server.sandbox.accounts[4]["id"]
    assert {b.account_id for b in sdk.bills.list(account_id=acc)} == {acc}


def test_bill_search_parses_with_sdk_models(sdk: m3ter.M3ter, m3ter_server: Running) -> None:
    regenerated = m3ter_server.sandbox.bills[9].id
    m3ter_server.sandbox.regenerate(regenerated)
    first = sdk.bills.search(sort_by="dtLastModified", sort_order="DESC", page_size=25)
    assert isinstance(first, BillSearchResponse) and first.data is not None
    assert all(isinstance(b, BillResponse) for b in first.data)
    assert first.data[0].id == regenerated and first.next_token == "25"
    assert first.data[0].dt_last_modified is not None
    assert first.data[0].dt_last_modified.tzinfo is not None
    raw = _raw(m3ter_server, "bills/search", sortBy="dtLastModified", sortOrder="DESC", pageSize=25)
    for sdk_bill, wire in zip(first.data, raw["data"], strict=True):
        assert sdk_bill.line_items  # full bills, as Get Bill answers
        _agree(sdk_bill, Bill.model_validate(wire))
        assert Bill.model_validate(wire).dt_last_modified == sdk_bill.dt_last_modified
    seen = [b.id for b in first.data]
    token = first.next_token
    while token:
        page = sdk.bills.search(
            sort_by="dtLastModified", sort_order="DESC", page_size=25, from_document=int(token)
        )
        seen += [b.id for b in page.data or []]
        token = page.next_token
    assert len(seen) == len(set(seen)) == 60

    acc = m3ter_server.sandbox.accounts[6]["id"]
    found = sdk.bills.search(search_query=f"accountId:{acc}$billDate>=2025-03-01")
    assert {b.account_id for b in found.data or []} == {acc} and len(found.data or []) == 2
    assert found.next_token is None
    with pytest.raises(m3ter.BadRequestError):
        sdk.bills.search(sort_by="currency")


def test_accounts_parse_with_sdk_models(sdk: m3ter.M3ter, m3ter_server: Running) -> None:
    accounts = list(sdk.accounts.list(page_size=7))
    assert len(accounts) == 20 and all(isinstance(a, AccountResponse) for a in accounts)
    raw = _raw(m3ter_server, "accounts", pageSize=20)["data"]
    for theirs, wire in zip(accounts, raw, strict=True):
        ours = Account.model_validate(wire)
        assert (ours.id, ours.name, ours.code, ours.currency, ours.email_address) == (
            theirs.id,
            theirs.name,
            theirs.code,
            theirs.currency,
            theirs.email_address,
        )
        assert theirs.address is not None and ours.address is not None
        assert ours.address.model_dump() == theirs.address.model_dump()
        assert set((ours.custom_fields or {}).keys()) == set((theirs.custom_fields or {}).keys())
    picked = [accounts[1].id, accounts[8].id]
    assert [a.id for a in sdk.accounts.list(ids=picked)] == picked
    assert sdk.accounts.retrieve(picked[0]).id == picked[0]


def test_external_mappings_parse_with_sdk_models(sdk: m3ter.M3ter, m3ter_server: Running) -> None:
    xero = list(sdk.external_mappings.list(external_system_id="Xero", page_size=5))
    # Account -> Contact ones, then (tests/m3ter/test_accounting_products.py) Product ones.
    contacts = [m for m in xero if m.m3ter_entity == "Account"]
    assert len(contacts) == 16 and len(xero) == 16 + len(PRODUCT_MAPPINGS)
    assert all(isinstance(m, ExternalMappingResponse) for m in xero)
    config = gen.integration_config_id(1)
    linked = list(sdk.external_mappings.list(integration_config_id=config))
    assert {m.integration_config_id for m in linked} == {config}
    assert len([m for m in linked if m.m3ter_entity == "Account"]) == 12
    raw = _raw(m3ter_server, "externalmappings", externalSystemId="Xero", pageSize=len(xero))
    for theirs, wire in zip(xero, raw["data"], strict=True):
        ours = ExternalMapping.model_validate(wire)
        assert (ours.id, ours.external_id, ours.m3ter_id, ours.integration_config_id) == (
            theirs.id,
            theirs.external_id,
            theirs.m3ter_id,
            theirs.integration_config_id,
        )
        if ours.m3ter_entity == "Account":
            assert (ours.external_system, ours.external_table) == ("Xero", "Contact")
    first = contacts[0]
    by_account = list(sdk.external_mappings.list_by_m3ter_entity(first.m3ter_id, entity="Account"))
    assert first.id in {m.id for m in by_account}
    by_contact = list(
        sdk.external_mappings.list_by_external_entity(
            first.external_id, system="Xero", external_table="Contact"
        )
    )
    assert [m.id for m in by_contact] == [first.id]
    assert sdk.external_mappings.retrieve(first.id).id == first.id


def test_sdk_without_token_is_refused(m3ter_server: Running) -> None:
    r = httpx.get(f"{m3ter_server.url}/organizations/{DEFAULT_ORG_ID}/bills")
    assert r.status_code == 401
    bad = m3ter.M3ter(
        api_key=DEFAULT_CLIENT_ID,
        api_secret="wrong",
        org_id=DEFAULT_ORG_ID,
        base_url=m3ter_server.url,
        max_retries=0,
    )
    with pytest.raises(m3ter.AuthenticationError):
        list(bad.bills.list())
    bad.close()


def test_strict_sdk_validation_has_teeth(sdk: m3ter.M3ter, m3ter_server: Running) -> None:
    """A shape m3ter would not send is refused by the SDK: the checks above can fail."""
    good = m3ter_server.sandbox.bill(m3ter_server.sandbox.bills[0].id)
    broken = {
        **good,
        "id": "broken-bill",
        "lineItems": [{**good["lineItems"][0], "lineItemType": "NOT_A_TYPE"}],
    }
    m3ter_server.sandbox.add_bill(broken)
    with pytest.raises(m3ter.APIResponseValidationError):
        sdk.bills.retrieve("broken-bill")
