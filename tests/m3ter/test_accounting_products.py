"""Accounting products on bill lines (m3ter's precedence) and the seeded Product -> Xero mappings.

m3ter's guide "Bill Line Items - Mapping to Accounting Products": for usage lines the Pricing's
accounting product wins, then the Aggregation's, then the Product the Plan belongs to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import m3ter
import pytest
from m3ter.types import BillResponse, ExternalMappingResponse

from sandbox.m3ter import catalogue
from sandbox.m3ter import generator as gen
from sandbox.m3ter.mappings import PRODUCT_MAPPINGS
from sandbox.m3ter.state import (
    M3terSandbox,
)
from tasks.m3ter.client import M3terClient
from tests.m3ter.conftest import Running

P = catalogue.Product


def _plan_product(
    pricing: P | None = None, aggregation: P | None = None, standing: P | None = None
) -> catalogue.PlanProduct:
    return catalogue.PlanProduct(
        id="prod",
        name="Prod",
        code="prod",
        unit="u",
        meter_id="m",
        aggregation_id="a",
        pricing_id="p",
        pricing_accounting=pricing,
        aggregation_accounting=aggregation,
        standing_charge_accounting=standing,
    )


PRICING, AGGREGATION, STANDING = P("ap-p", "P", "p"), P("ap-a", "A", "a"), P("ap-s", "S", "s")


@pytest.mark.parametrize("line_type", sorted(catalogue.USAGE_PRICED))
def test_usage_precedence_pricing_then_aggregation_then_plan_product(line_type: str) -> None:
    both = _plan_product(PRICING, AGGREGATION)
    assert catalogue.accounting_product(both, line_type) == PRICING
    assert catalogue.accounting_product(_plan_product(None, AGGREGATION), line_type) == AGGREGATION
    bare = _plan_product()
    assert catalogue.accounting_product(bare, line_type) == bare


def test_other_line_types() -> None:
    full = _plan_product(PRICING, AGGREGATION, STANDING)
    assert catalogue.accounting_product(full, "STANDING_CHARGE") == STANDING
    bare = _plan_product()
    assert catalogue.accounting_product(bare, "STANDING_CHARGE") == bare
    assert catalogue.accounting_product(full, "BALANCE_CONSUMED") is None
    for other in ("MINIMUM_SPEND", "COUNTER_RUNNING_TOTAL_CHARGE", "CREDIT_MEMO", "AD_HOC"):
        assert catalogue.accounting_product(full, other) == full  # no Pricing/Aggregation rule


def _lines(sb: M3terSandbox) -> Iterator[dict]:
    for rec in sb.bills:
        yield from sb.bill(rec.id)["lineItems"]


def test_generated_lines_follow_the_precedence() -> None:
    sb = M3terSandbox(seed=1, accounts=20)
    by_id = {p.id: p for p in catalogue.products(1)}
    everything = {p.id: p for p in catalogue.all_products(1)}
    won = Counter()
    for li in _lines(sb):
        product = by_id[li["productId"]]
        expected = catalogue.accounting_product(product, li["lineItemType"])
        if expected is None:
            assert li["lineItemType"] == "BALANCE_CONSUMED"
            assert "accountingProductId" not in li and li["productId"]
            continue
        assert li["accountingProductId"] == expected.id
        chosen = everything[li["accountingProductId"]]
        assert (li["accountingProductCode"], li["accountingProductName"]) == (
            chosen.code,
            chosen.name,
        )
        if li["lineItemType"] in catalogue.USAGE_PRICED:
            if product.pricing_accounting is not None:
                won["pricing"] += 1
                if product.aggregation_accounting is not None:
                    won["pricing over aggregation"] += 1
            elif product.aggregation_accounting is not None:
                won["aggregation"] += 1
            else:
                won["plan product"] += 1
                assert li["accountingProductId"] == li["productId"]
    assert min(won[k] for k in ("pricing over aggregation", "aggregation", "plan product")) > 0


def test_seeded_catalogue_has_each_case() -> None:
    by_code = {p.code: p for p in catalogue.products(1)}
    compute, storage, api = by_code["compute"], by_code["storage"], by_code["api_calls"]
    assert compute.pricing_accounting and compute.aggregation_accounting
    assert catalogue.accounting_product(compute, "USAGE") == compute.pricing_accounting
    assert catalogue.accounting_product(storage, "USAGE") == storage.aggregation_accounting
    assert catalogue.accounting_product(api, "USAGE") == api
    assert catalogue.accounting_product(compute, "STANDING_CHARGE").code == (
        "platform_subscriptions"
    )


def _accounting(sb: M3terSandbox) -> list[tuple[str, str | None, str | None, str | None]]:
    return [
        (
            li["id"],
            li.get("accountingProductId"),
            li.get("accountingProductCode"),
            li.get("accountingProductName"),
        )
        for li in _lines(sb)
    ]


def test_deterministic_per_seed() -> None:
    a, b, c = M3terSandbox(seed=4), M3terSandbox(seed=4), M3terSandbox(seed=5)
    assert _accounting(a) == _accounting(b)
    assert a.mappings == b.mappings
    ids_a = {x[1] for x in _accounting(a)} - {None}
    ids_c = {x[1] for x in _accounting(c)} - {None}
    assert ids_a and not ids_a & ids_c  # ids are the seed's
    assert {p.code for p in catalogue.all_products(4)} == {
        p.code for p in catalogue.all_products(5)
    }


def _product_mappings(sb: M3terSandbox) -> list[dict]:
    return [m for m in sb.mappings if m["m3terEntity"] == "Product"]


def test_seeded_product_mappings() -> None:
    sb = M3terSandbox(seed=1)
    mapped = _product_mappings(sb)
    code_of = {p.id: p.code for p in catalogue.all_products(1)}
    config = gen.integration_config_id(1)
    got = {
        (code_of[m["m3terId"]], m["externalTable"], m["externalId"], "integrationConfigId" in m)
        for m in mapped
    }
    assert got == set(PRODUCT_MAPPINGS) and len(mapped) == len(PRODUCT_MAPPINGS)
    assert all(m["externalSystem"] == "Xero" for m in mapped)
    assert [m["integrationConfigId"] for m in mapped if "integrationConfigId" in m] == [config]
    tables = Counter(m["externalTable"] for m in mapped)
    assert tables == {"Account": 10, "TrackingOption": 2, "Item": 1}  # no TaxRate by default
    accounts = {
        code_of[m["m3terId"]]: m["externalId"] for m in mapped if m["externalTable"] == "Account"
    }
    assert set(accounts) == {p.code for p in catalogue.all_products(1)}
    assert set(accounts.values()) == {"200", "201", "202"}
    items = [
        (code_of[m["m3terId"]], m["externalId"]) for m in mapped if m["externalTable"] == "Item"
    ]
    assert items == [("support", "SUPPORT")]
    tracking = {m["externalId"] for m in mapped if m["externalTable"] == "TrackingOption"}
    assert tracking == {"Product Line:Compute", "Product Line:Storage"}


def test_every_line_has_an_account_mapping() -> None:
    sb = M3terSandbox(seed=2, accounts=30)
    account_mapped = {
        m["m3terId"] for m in _product_mappings(sb) if m["externalTable"] == "Account"
    }
    keys = {li.get("accountingProductId") or li["productId"] for li in _lines(sb)}
    assert keys and keys <= account_mapped


# ---- over HTTP: our client and m3ter's SDK ------------------------------------------------------
def test_client_lists_product_mappings(client: M3terClient) -> None:
    products = client.list_external_mappings(
        external_system="Xero", external_table=None, m3ter_entity="Product"
    )
    assert len(products) == len(PRODUCT_MAPPINGS)
    assert {m.m3ter_entity for m in products} == {"Product"}
    assert {m.external_table for m in products} == {"Account", "Item", "TrackingOption"}
    linked = client.list_external_mappings(
        external_system="Xero",
        external_table=None,
        m3ter_entity="Product",
        integration_config_id=gen.integration_config_id(1),
    )
    usage = catalogue.product_by_code(1, "usage_revenue").id
    assert [(m.m3ter_id, m.external_table, m.external_id) for m in linked] == [
        (usage, "Account", "202")
    ]
    items = client.list_external_mappings(external_table="Item", m3ter_entity="Product")
    assert [m.external_id for m in items] == ["SUPPORT"]
    # The contact mappings the sync already reads are as they were.
    assert len(client.list_external_mappings()) == 16


def test_sdk_parses_product_mappings(sdk: m3ter.M3ter) -> None:
    everything = list(sdk.external_mappings.list(external_system_id="Xero", page_size=4))
    products = [m for m in everything if m.m3ter_entity == "Product"]
    assert len(products) == len(PRODUCT_MAPPINGS)
    assert all(isinstance(m, ExternalMappingResponse) for m in products)
    support = catalogue.product_by_code(1, "support").id
    by_product = list(sdk.external_mappings.list_by_m3ter_entity(support, entity="Product"))
    assert {(m.external_table, m.external_id) for m in by_product} == {
        ("Account", "201"),
        ("Item", "SUPPORT"),
    }
    by_ids = list(sdk.external_mappings.list(m3ter_ids=[support]))
    assert {m.id for m in by_ids} == {m.id for m in by_product}
    usage_accounts = list(
        sdk.external_mappings.list_by_external_entity(
            "202", system="Xero", external_table="Account"
        )
    )
    assert len(usage_accounts) == 4 and {m.m3ter_entity for m in usage_accounts} == {"Product"}
    linked = list(sdk.external_mappings.list(integration_config_id=gen.integration_config_id(1)))
    assert [m.external_id for m in linked if m.m3ter_entity == "Product"] == ["202"]
    one = sdk.external_mappings.retrieve(by_product[0].id)
    assert isinstance(one, ExternalMappingResponse) and one.m3ter_id == support


def test_sdk_parses_accounting_products_on_lines(sdk: m3ter.M3ter, m3ter_server: Running) -> None:
    everything = {p.id: p for p in catalogue.all_products(1)}
    seen = 0
    for bill in sdk.bills.list(page_size=30):
        assert isinstance(bill, BillResponse)
        for li in bill.line_items or []:
            if li.accounting_product_id is None:
                assert li.line_item_type == "BALANCE_CONSUMED"
                continue
            chosen = everything[li.accounting_product_id]
            assert (li.accounting_product_code, li.accounting_product_name) == (
                chosen.code,
                chosen.name,
            )
            seen += 1
    assert seen > 100


def test_control_endpoint_adds_product_mappings(client: M3terClient, m3ter_server: Running) -> None:
    url = f"{m3ter_server.url}/_sandbox/mappings"
    tax = {
        "m3terEntity": "Product",
        "productCode": "compute_revenue",
        "externalTable": "TaxRate",
        "externalId": "OUTPUT2",
    }
    made = httpx.post(url, json=tax)
    assert made.status_code == 201, made.text
    compute = catalogue.product_by_code(1, "compute_revenue").id
    assert made.json()["m3terId"] == compute and "integrationConfigId" not in made.json()
    by_id = {"m3terEntity": "Product", "m3terId": compute, "externalTable": "Item"}
    by_id |= {"externalId": "USAGE", "integrationConfigId": gen.integration_config_id(1)}
    assert httpx.post(url, json=by_id).status_code == 201
    taxes = client.list_external_mappings(external_table="TaxRate", m3ter_entity="Product")
    assert [(m.m3ter_id, m.external_id) for m in taxes] == [(compute, "OUTPUT2")]
    linked = client.list_external_mappings(
        external_table=None,
        m3ter_entity="Product",
        integration_config_id=gen.integration_config_id(1),
    )
    assert {m.external_id for m in linked} == {"202", "USAGE"}

    no_table = httpx.post(url, json={**tax, "externalTable": None})
    assert no_table.status_code == 400 and "externalTable" in no_table.json()["message"]
    unknown = httpx.post(url, json={**tax, "productCode": "nope"})
    assert unknown.status_code == 404
    # Reset drops what was added and keeps the seed's.
    httpx.post(f"{m3ter_server.url}/_sandbox/reset").raise_for_status()
    assert not client.list_external_mappings(external_table="TaxRate", m3ter_entity="Product")
