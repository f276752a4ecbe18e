"""Every Xero line in the right account, with the right tax and tracking: the precedence of
tasks/mapping/coding.py, the product mappings (enforce, linked, unlinked), the tracking merge, the
coding of band and product lines, and the bills stopped for a line with no account."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from config.integration import IntegrationConfig
from tasks.m3ter.models import ExternalMapping, LineItem
from tasks.mapping import (
    Coder,
    LineCoding,
    Outcome,
    XeroMappings,
    find_contact_mapping,
    find_mapping,
    find_mappings,
    map_bill,
    missing_account_reason,
    preferred_mappings,
)
from tests.mapping.test_mapping import (
    ACCOUNT,
    CONTACT,
    INTEGRATION,
    OTHER_INTEGRATION,
    amounts,
    band,
    bill,
    cfg,
    line,
    mapped,
    xero_line_check,
)

PRODUCT = "prod-123"


def pmap(
    table: str,
    external_id: str,
    integration: str | None = INTEGRATION,
    product: str = PRODUCT,
    **over: Any,
) -> dict[str, Any]:
    """A Product -> Xero ``table`` external mapping."""
    return {
        "id": f"pm-{table}-{external_id}-{integration}-{product}",
        "externalId": external_id,
        "externalSystem": "Xero",
        "externalTable": table,
        "m3terEntity": "Product",
        "m3terId": product,
        "integrationConfigId": integration,
        **over,
    }


def compute(subtotal: str = "40.00", **extra: Any) -> dict[str, Any]:
    """A usage line of product Compute (prod-123)."""
    fields = {
        "type_": "USAGE",
        "quantity": "400",
        "price": "0.1",
        "productId": PRODUCT,
        "productName": "Compute",
        "description": "Compute usage",
        **extra,
    }
    return line(subtotal, **fields)


def xero_line(config: IntegrationConfig, maps: list[dict[str, Any]], *lines: dict[str, Any]):
    doc = mapped(config, bill(*(lines or (compute(),))), mappings=maps)
    return doc["LineItems"][0] if len(doc["LineItems"]) == 1 else doc["LineItems"]


def coding_of(li: dict[str, Any]) -> dict[str, Any]:
    return {k: li[k] for k in ("AccountCode", "ItemCode", "TaxType", "Tracking") if k in li}


# --------------------------------------------------------------------------- AccountCode


@pytest.mark.parametrize(
    ("options", "maps", "expected"),
    [
        # the line item type's code wins over everything
        (
            {"line_item_type_account_codes": {"USAGE": "4100"}, "default_account_code": "200"},
            [pmap("Account", "4000"), pmap("Item", "COMPUTE")],
            {"AccountCode": "4100", "ItemCode": "COMPUTE"},
        ),
        # then the product's Account mapping
        (
            {
                "line_item_type_account_codes": {"MINIMUM_SPEND": "4100"},
                "default_account_code": "200",
            },
            [pmap("Account", "4000"), pmap("Item", "COMPUTE")],
            {"AccountCode": "4000", "ItemCode": "COMPUTE"},
        ),
        # then, with an item, no account code: Xero books to the item's sales account
        ({"default_account_code": "200"}, [pmap("Item", "COMPUTE")], {"ItemCode": "COMPUTE"}),
        # then the default
        ({"default_account_code": "200"}, [], {"AccountCode": "200"}),
        # nothing: nothing (a DRAFT)
        ({}, [], {}),
    ],
)
def test_account_code_precedence(
    options: dict[str, Any], maps: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    assert coding_of(xero_line(cfg(**options), maps)) == expected


def test_type_code_applies_to_lines_without_a_product() -> None:
    credit = line("-5.00", type_="CREDIT_MEMO", description="Goodwill credit")
    config = cfg(line_item_type_account_codes={"CREDIT_MEMO": "4900"}, default_account_code="200")
    items = xero_line(config, [], compute(), credit)
    assert [li.get("AccountCode") for li in items] == ["200", "4900"]


def test_item_code_only_from_the_item_mapping() -> None:
    with_code = compute(accountingProductCode="M3TER-CODE")
    assert "ItemCode" not in xero_line(cfg(), [], with_code)
    assert xero_line(cfg(), [pmap("Item", " COMPUTE ")], with_code)["ItemCode"] == "COMPUTE"


# --------------------------------------------------------------------------- TaxType


@pytest.mark.parametrize(
    ("options", "maps", "expected"),
    [
        ({"default_tax_type": "output2"}, [pmap("TaxRate", "TAX001")], "TAX001"),
        ({"default_tax_type": "output2"}, [], "OUTPUT2"),
        ({}, [], None),
    ],
)
def test_tax_type_precedence(
    options: dict[str, Any], maps: list[dict[str, Any]], expected: str | None
) -> None:
    assert xero_line(cfg(**options), maps).get("TaxType") == expected


BY_COUNTRY = {"tax_type_by_country": {"GB": "OUTPUT2", "us": "NONE", "DE": "ZERORATEDOUTPUT"}}
REDUCED = [pmap("TaxRate", "RROUTPUT")]  # the product's own (home) rate


def customer(country: str | None, address: bool = True) -> dict[str, Any]:
    """The test account, living in ``country`` (m3ter's free text), or with no address."""
    return {**ACCOUNT, "address": {"country": country} if address else None}


@pytest.mark.parametrize(
    ("options", "maps", "account", "expected"),
    [
        # the customer's country wins over the product's TaxRate mapping and the default
        ({**BY_COUNTRY, "default_tax_type": "EXEMPTOUTPUT"}, REDUCED, customer("US"), "NONE"),
        (BY_COUNTRY, REDUCED, customer("DE"), "ZERORATEDOUTPUT"),
        (BY_COUNTRY, REDUCED, customer("GB"), "OUTPUT2"),
        # m3ter's country is free text: trimmed, any case; UK is GB
        (BY_COUNTRY, [], customer(" de "), "ZERORATEDOUTPUT"),
        (BY_COUNTRY, [], customer("uk"), "OUTPUT2"),
        # a country not listed: the product's mapping, then the default, then none
        ({**BY_COUNTRY, "default_tax_type": "EXEMPTOUTPUT"}, REDUCED, customer("NZ"), "RROUTPUT"),
        ({**BY_COUNTRY, "default_tax_type": "EXEMPTOUTPUT"}, [], customer("NZ"), "EXEMPTOUTPUT"),
        (BY_COUNTRY, [], customer("NZ"), None),
        # no country, or text that is not an ISO 3166-1 alpha-2 code: as if not listed
        ({**BY_COUNTRY, "default_tax_type": "EXEMPTOUTPUT"}, [], customer(None), "EXEMPTOUTPUT"),
        ({**BY_COUNTRY, "default_tax_type": "EXEMPTOUTPUT"}, [], customer(" "), "EXEMPTOUTPUT"),
        ({**BY_COUNTRY, "default_tax_type": "EXEMPTOUTPUT"}, [], customer("x", False),
         "EXEMPTOUTPUT"),
        (BY_COUNTRY, REDUCED, customer("Germany"), "RROUTPUT"),
        (BY_COUNTRY, REDUCED, customer("DEU"), "RROUTPUT"),
    ],
)  # fmt: skip
def test_tax_type_by_customer_country(
    options: dict[str, Any],
    maps: list[dict[str, Any]],
    account: dict[str, Any],
    expected: str | None,
) -> None:
    doc = mapped(cfg(**options), bill(compute()), account=account, mappings=maps)
    assert doc["LineItems"][0].get("TaxType") == expected


# --------------------------------------------------------------------------- Tracking


def tracking(*pairs: str) -> list[dict[str, str]]:
    return [dict(zip(("category", "option"), p.split(":", 1), strict=True)) for p in pairs]


def names(li: dict[str, Any]) -> list[str]:
    return [f"{t['Name']}:{t['Option']}" for t in li.get("Tracking", [])]


@pytest.mark.parametrize(
    ("integration", "product", "expected"),
    [
        (["Region:Europe"], [], ["Region:Europe"]),
        ([], ["Region:Asia"], ["Region:Asia"]),
        # the product's option wins in its category (names without case), the spelling stays
        (["Region:Europe", "Team:Sales"], ["region:Asia"], ["Region:Asia", "Team:Sales"]),
        # a second category is added
        (["Region:Europe"], ["Team:Platform"], ["Region:Europe", "Team:Platform"]),
        # a third is left off: the line keeps the integration's two
        (["Region:Europe", "Team:Sales"], ["Channel:Web"], ["Region:Europe", "Team:Sales"]),
        # the product's own categories in name order, at most two in all
        (["Region:Europe"], ["Team:Platform", "Channel:Web"], ["Region:Europe", "Channel:Web"]),
        ([], ["Team:Platform", "Channel:Web", "Area:North"], ["Area:North", "Channel:Web"]),
        # split on the first ":" only
        ([], ["Region:EU:West"], ["Region:EU:West"]),
    ],
)
def test_tracking_merge(integration: list[str], product: list[str], expected: list[str]) -> None:
    config = cfg(tracking=tracking(*integration))
    maps = [pmap("TrackingOption", p) for p in product]
    assert names(xero_line(config, maps)) == expected


@pytest.mark.parametrize("bad", ["Region", "Region:", ":Asia", "  :  "])
def test_malformed_tracking_mapping_is_no_mapping(bad: str) -> None:
    config = cfg(tracking=tracking("Region:Europe"))
    assert names(xero_line(config, [pmap("TrackingOption", bad)])) == ["Region:Europe"]


def test_tracking_mappings_are_chosen_per_category() -> None:
    maps = [
        pmap("TrackingOption", "Region:Other", OTHER_INTEGRATION),
        pmap("TrackingOption", "Region:Unlinked", None),
        pmap("TrackingOption", "Region:Linked"),
        pmap("TrackingOption", "Team:Unlinked", None),
    ]
    assert names(xero_line(cfg(), maps)) == ["Region:Linked", "Team:Unlinked"]
    enforced = cfg(enforce_external_mappings_for_config=True)
    assert names(xero_line(enforced, maps)) == ["Region:Linked"]


# --------------------------------------------------------------------------- which mapping


@pytest.mark.parametrize(
    ("enforce", "maps", "expected"),
    [
        (
            False,
            [
                pmap("Account", "OTHER", OTHER_INTEGRATION),
                pmap("Account", "UNLINKED", None),
                pmap("Account", "LINKED"),
            ],
            "LINKED",
        ),
        (
            False,
            [pmap("Account", "OTHER", OTHER_INTEGRATION), pmap("Account", "UNLINKED", None)],
            "UNLINKED",
        ),
        (False, [pmap("Account", "OTHER", OTHER_INTEGRATION)], "OTHER"),
        (True, [pmap("Account", "LINKED"), pmap("Account", "UNLINKED", None)], "LINKED"),
        # enforce: an unlinked mapping, or another integration's, does not count: the default
        (
            True,
            [pmap("Account", "UNLINKED", None), pmap("Account", "OTHER", OTHER_INTEGRATION)],
            "200",
        ),
    ],
)
def test_product_mapping_honours_enforce(
    enforce: bool, maps: list[dict[str, Any]], expected: str
) -> None:
    config = cfg(enforce_external_mappings_for_config=enforce, default_account_code="200")
    assert xero_line(config, maps)["AccountCode"] == expected


@pytest.mark.parametrize(
    "over",
    [
        {"externalSystem": "QuickBooks"},
        {"m3terEntity": "Account"},
        {"m3terId": "prod-other"},
        {"externalTable": "Contact"},
        {"externalId": "   "},
    ],
)
def test_mappings_that_do_not_apply(over: dict[str, Any]) -> None:
    config = cfg(default_account_code="200")
    assert xero_line(config, [pmap("Account", "4000", **over)])["AccountCode"] == "200"


def test_names_compare_without_case() -> None:
    maps = [pmap("account", "4000", externalSystem="XERO", m3terEntity="product")]
    assert xero_line(cfg(), maps)["AccountCode"] == "4000"


def test_accounting_product_first() -> None:
    both = compute(accountingProductId="acc-prod", accountingProductName="Compute (accounting)")
    maps = [pmap("Account", "4000"), pmap("Account", "4500", product="acc-prod")]
    assert xero_line(cfg(), maps, both)["AccountCode"] == "4500"
    assert xero_line(cfg(), maps, compute())["AccountCode"] == "4000"


def test_one_finder_for_contacts_and_products() -> None:
    config = cfg()
    maps = [
        pmap("Account", "4000", None),
        pmap("Account", "4100"),
        {**pmap("Contact", CONTACT, None), "m3terEntity": "Account", "m3terId": "acc-1"},
    ]
    index = XeroMappings(maps)
    found = find_mapping(
        config, INTEGRATION, index, entity="Product", m3ter_id=PRODUCT, table="Account"
    )
    assert found is not None and found.external_id == "4100"
    assert [
        m.external_id
        for m in find_mappings(
            config, OTHER_INTEGRATION, maps, entity="Product", m3ter_id=PRODUCT, table="Account"
        )
    ] == ["4000"]
    contact = find_contact_mapping(config, INTEGRATION, "acc-1", index)
    assert contact is not None and contact.external_id == CONTACT
    assert (
        find_mapping(config, INTEGRATION, maps, entity="Product", m3ter_id="nope", table="Account")
        is None
    )
    models = [ExternalMapping.model_validate(m) for m in maps[:2]]
    enforced = cfg(enforce_external_mappings_for_config=True)
    assert preferred_mappings(enforced, OTHER_INTEGRATION, models) == []
    assert preferred_mappings(config, OTHER_INTEGRATION, models) == [models[0]]


def test_mappings_may_be_a_one_shot_iterable() -> None:
    config = cfg(use_external_mapping_account_code=True, invoice_status="AUTHORISED")
    maps = [
        {**pmap("Contact", CONTACT), "m3terEntity": "Account", "m3terId": "acc-1"},
        pmap("Account", "4000"),
    ]
    result = map_bill(config, INTEGRATION, bill(compute()), ACCOUNT, iter(maps))
    assert result.outcome is Outcome.MAPPED and result.document is not None
    assert result.document["Contact"] == {"ContactID": CONTACT}
    assert result.document["LineItems"][0]["AccountCode"] == "4000"


def test_coder_codes_a_line_directly() -> None:
    config = cfg(default_tax_type="OUTPUT2", tracking=tracking("Region:Europe"))
    coder = Coder(config, INTEGRATION, [pmap("Item", "COMPUTE")])
    coding = coder(LineItem.model_validate(compute()))
    assert coding == LineCoding(
        item_code="COMPUTE", tax_type="OUTPUT2", tracking=(("Region", "Europe"),)
    )
    assert coding.booked and not LineCoding(tax_type="OUTPUT2").booked
    assert coding.xero() == {
        "ItemCode": "COMPUTE",
        "TaxType": "OUTPUT2",
        "Tracking": [{"Name": "Region", "Option": "Europe"}],
    }


# --------------------------------------------------------------------------- band and product


TIERED = compute(
    "123.456",
    quantity="15000",
    price="0.0082304",
    bands=[
        band("1000", "0", "0", "0"),
        band("9000", "0.01", "90", "1000"),
        band("5000", "0.0066912", "33.456", "10000"),
    ],
)
STORAGE = line(
    "20.00",
    type_="USAGE",
    quantity="200",
    price="0.1",
    productId="prod-storage",
    productName="Storage",
    description="Storage",
    unit="GB",
)
OVERAGE = compute("5.00", type_="OVERAGE_USAGE", quantity="50", description="Compute overage")
PRODUCT_MAPS = [
    pmap("Account", "4000"),
    pmap("TaxRate", "OUTPUT2"),
    pmap("TrackingOption", "Team:Compute"),
    pmap("Account", "4200", product="prod-storage"),
    pmap("TrackingOption", "Team:Storage", product="prod-storage"),
]


def test_per_band_lines_carry_their_lines_coding() -> None:
    config = cfg(tracking=tracking("Region:Europe"), default_tax_type="NONE")
    doc = mapped(config, bill(TIERED, STORAGE), mappings=PRODUCT_MAPS)
    assert [(li["Description"].split(" (")[0], coding_of(li)) for li in doc["LineItems"]] == [
        (
            f"Compute — band {b}",
            {
                "AccountCode": "4000",
                "TaxType": "OUTPUT2",
                "Tracking": [
                    {"Name": "Region", "Option": "Europe"},
                    {"Name": "Team", "Option": "Compute"},
                ],
            },
        )
        for b in ("0–1,000", "1,000–10,000", "10,000+")
    ] + [
        (
            "Storage",
            {
                "AccountCode": "4200",
                "TaxType": "NONE",
                "Tracking": [
                    {"Name": "Region", "Option": "Europe"},
                    {"Name": "Team", "Option": "Storage"},
                ],
            },
        )
    ]
    assert sum(amounts(doc)) == Decimal("143.46")
    xero_line_check(doc)


def test_per_product_line_has_its_products_coding() -> None:
    config = cfg(split_usage_line_items="ITEM_PER_PRODUCT")
    doc = mapped(
        config, bill(TIERED, compute("5.00", quantity="50"), STORAGE), mappings=PRODUCT_MAPS
    )
    assert [
        (li["Description"].split(" (")[0], li["AccountCode"], li["LineAmount"])
        for li in doc["LineItems"]
    ] == [
        ("Compute", "4000", Decimal("128.46")),
        ("Storage", "4200", Decimal("20.00")),
    ]


def test_lines_of_different_coding_are_never_merged() -> None:
    # OVERAGE_USAGE has its own account code: the product's two usage lines stay apart.
    config = cfg(
        split_usage_line_items="ITEM_PER_PRODUCT",
        line_item_type_account_codes={"OVERAGE_USAGE": "4300"},
    )
    doc = mapped(
        config, bill(TIERED, compute("5.00", quantity="50"), OVERAGE), mappings=PRODUCT_MAPS
    )
    assert [(li["AccountCode"], li["LineAmount"]) for li in doc["LineItems"]] == [
        ("4000", Decimal("128.46")),
        ("4300", Decimal("5.00")),
    ]
    assert sum(amounts(doc)) == Decimal("133.46")
    # Without the type's code they are one line.
    doc = mapped(
        cfg(split_usage_line_items="ITEM_PER_PRODUCT"),
        bill(TIERED, compute("5.00", quantity="50"), OVERAGE),
        mappings=PRODUCT_MAPS,
    )
    assert [(li["AccountCode"], li["LineAmount"]) for li in doc["LineItems"]] == [
        ("4000", Decimal("133.46")),
    ]


def test_credit_note_lines_keep_their_coding() -> None:
    refund = line("-30.00", type_="CREDIT_MEMO", description="Refund", productId=PRODUCT)
    result = map_bill(
        cfg(invoice_status="AUTHORISED"), INTEGRATION, bill(refund), ACCOUNT, PRODUCT_MAPS
    )
    assert result.kind == "credit_note" and result.document is not None
    [li] = result.document["LineItems"]
    assert (li["AccountCode"], li["TaxType"], li["LineAmount"]) == (
        "4000",
        "OUTPUT2",
        Decimal("30.00"),
    )


# --------------------------------------------------------------------------- missing account


@pytest.mark.parametrize("status", ["SUBMITTED", "AUTHORISED"])
def test_a_line_with_no_account_stops_an_approved_document(status: str) -> None:
    config = cfg(invoice_status=status, tracking=tracking("Region:Europe"))
    maps = [pmap("Account", "4200", product="prod-storage"), pmap("TaxRate", "OUTPUT2")]
    result = map_bill(config, INTEGRATION, bill(STORAGE, compute()), ACCOUNT, maps)
    assert result.outcome is Outcome.MISSING_ACCOUNT_MAPPING
    assert result.document is None and result.bill_version == 3
    assert result.reason == (
        "no Xero account code for line 'Compute usage' (USAGE) of product Compute (prod-123): "
        "map the product to a Xero Account, set an account code for USAGE lines, or a default "
        "account code"
    )


def test_a_draft_goes_without_account() -> None:
    doc = mapped(cfg(), bill(STORAGE, compute()))
    assert [coding_of(li) for li in doc["LineItems"]] == [{}, {}]


@pytest.mark.parametrize(
    ("options", "maps"),
    [
        ({"default_account_code": "200"}, []),
        ({"line_item_type_account_codes": {"USAGE": "4100"}}, []),
        ({}, [pmap("Account", "4000")]),
        ({}, [pmap("Item", "COMPUTE")]),  # an item is enough: Xero takes its sales account
    ],
)
def test_any_account_source_lets_it_through(options: dict[str, Any], maps: list) -> None:
    config = cfg(invoice_status="AUTHORISED", **options)
    assert mapped(config, bill(compute()), mappings=maps)["Status"] == "AUTHORISED"


def test_missing_reason_names_what_there_is() -> None:
    no_product = LineItem.model_validate(line("1.00", type_="AD_HOC", description="Setup"))
    assert missing_account_reason(no_product) == (
        "no Xero account code for line 'Setup' (AD_HOC) of no product: set an account code for "
        "AD_HOC lines, or a default account code"
    )
    accounting = LineItem.model_validate(
        compute(description="", accountingProductId="acc-prod", accountingProductName="Cloud")
    )
    assert missing_account_reason(accounting).startswith(
        "no Xero account code for USAGE line of product Cloud (acc-prod): "
    )


def test_missing_account_is_checked_on_kept_lines_only() -> None:
    config = cfg(
        invoice_status="AUTHORISED", excluded_products=[PRODUCT], default_account_code=None
    )
    storage_mapped = [pmap("Account", "4200", product="prod-storage")]
    doc = mapped(config, bill(STORAGE, compute()), mappings=storage_mapped)
    assert [li["AccountCode"] for li in doc["LineItems"]] == ["4200"]


def test_every_line_of_a_bill_takes_its_customers_country_tax() -> None:
    credit = line("-5.00", type_="CREDIT_MEMO", description="Goodwill credit")
    config = cfg(
        **BY_COUNTRY, default_tax_type="EXEMPTOUTPUT", split_usage_line_items="ITEM_PER_PRODUCT"
    )
    maps = [*PRODUCT_MAPS, pmap("TaxRate", "RROUTPUT", product="prod-storage")]
    us = mapped(config, bill(TIERED, STORAGE, credit), account=customer("US"), mappings=maps)
    assert [li["TaxType"] for li in us["LineItems"]] == ["NONE"] * 3
    nz = mapped(config, bill(TIERED, STORAGE, credit), account=customer("NZ"), mappings=maps)
    assert [li["TaxType"] for li in nz["LineItems"]] == ["OUTPUT2", "RROUTPUT", "EXEMPTOUTPUT"]
    # without an account, the coder has no country
    assert Coder(config, INTEGRATION)(LineItem.model_validate(compute())).tax_type == "EXEMPTOUTPUT"
