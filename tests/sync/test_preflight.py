"""The organisation's reference data as read, and the check of an integration's coding against
it (pure: a fake ``fetch`` answers as Xero's Accounting API does)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from config.integration import validate_config
from tasks.m3ter.models import ExternalMapping
from tasks.sync.preflight import check_coding, product_mappings, reference_needs
from tasks.xero.reference import read_reference

ORG = {
    "Name": "Demo Company (UK)",
    "BaseCurrency": "GBP",
    "PeriodLockDate": "/Date(1767225600000+0000)/",  # 2026-01-01
    "EndOfYearLockDate": "/Date(1735689600000+0000)/",  # 2025-01-01
}
COLLECTIONS: dict[str, list[dict[str, Any]]] = {
    "Organisation": [ORG],
    "Accounts": [
        {"Code": "200", "Name": "Sales", "Status": "ACTIVE", "Class": "REVENUE", "Type": "REVENUE"},
        {"Code": "206", "Name": "Old", "Status": "ARCHIVED", "Class": "REVENUE", "Type": "REVENUE"},
        {"Code": "090", "Name": "Bank", "Status": "ACTIVE", "Class": "ASSET", "Type": "BANK"},
    ],
    "TaxRates": [
        {"TaxType": "OUTPUT2", "Name": "20% VAT", "Status": "ACTIVE", "CanApplyToRevenue": True},
        {"TaxType": "INPUT2", "Name": "VAT exp", "Status": "ACTIVE", "CanApplyToExpenses": True},
        {"TaxType": "OUTPUT", "Name": "17.5%", "Status": "DELETED", "CanApplyToRevenue": True},
    ],
    "Currencies": [{"Code": "USD"}, {"Code": "EUR"}],
    "Items": [{"Code": "SUPPORT", "SalesDetails": {"AccountCode": "200"}}],
    "TrackingCategories": [
        {
            "Name": "Region",
            "Status": "ACTIVE",
            "Options": [{"Name": "North", "Status": "ACTIVE"}, {"Name": "Highlands",
                                                                 "Status": "ARCHIVED"}],
        },
        {"Name": "Old", "Status": "ARCHIVED", "Options": [{"Name": "X", "Status": "ACTIVE"}]},
    ],
}  # fmt: skip


def fetch_counting(calls: list[str]) -> Any:
    def fetch(collection: str, params: dict[str, str] | None) -> list[dict[str, Any]]:
        calls.append(collection)
        return COLLECTIONS[collection]

    return fetch


def reference(items: bool = True, tracking: bool = True) -> Any:
    return read_reference(fetch_counting([]), items=items, tracking=tracking)


def config(**options: Any) -> Any:
    return validate_config({"name": "Coded", **options})


def mapping(table: str, external_id: str, linked: str | None = None, n: int = 1) -> ExternalMapping:
    raw = {
        "id": f"map-{n}",
        "externalSystem": "Xero",
        "externalTable": table,
        "externalId": external_id,
        "m3terEntity": "Product",
        "m3terId": f"prod-{n}",
    }
    if linked:
        raw["integrationConfigId"] = linked
    return ExternalMapping.model_validate(raw)


def test_reads_what_the_checks_need_in_as_few_calls_as_it_can() -> None:
    calls: list[str] = []
    ref = read_reference(fetch_counting(calls), items=False, tracking=False)
    assert sorted(calls) == ["Accounts", "Currencies", "Organisation", "TaxRates"]
    assert ref.calls == 4 and ref.items is None and ref.tracking is None
    assert ref.organisation == "Demo Company (UK)"
    assert ref.currencies == {"GBP", "USD", "EUR"}  # the base currency counts as subscribed
    assert ref.lock_date == dt.date(2026, 1, 1)  # the later of the two
    assert ref.account("200").account_class == "REVENUE"
    assert ref.tax_rate("output2").applies_to == {"REVENUE"}
    calls.clear()
    full = read_reference(fetch_counting(calls), items=True, tracking=True)
    assert full.calls == 6 and len(calls) == 6
    assert full.items == {"SUPPORT": "200"}
    assert full.tracking == {"region": {"north": "ACTIVE", "highlands": "ARCHIVED"}}


def test_a_configuration_the_organisation_takes_has_no_problem() -> None:
    cfg = config(
        default_account_code="200",
        default_tax_type="OUTPUT2",
        line_item_type_account_codes={"MINIMUM_SPEND": "200"},
        tracking=[{"category": "Region", "option": "North"}],
    )
    assert check_coding(cfg, reference()) == []


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"default_account_code": "4100"}, "default_account_code",
         "account code 4100 does not exist in Demo Company (UK)"),
        ({"default_account_code": "206"}, "default_account_code",
         "account code 206 is archived in Demo Company (UK)"),
        ({"default_account_code": "090"}, "default_account_code",
         "account code 090 is a bank account in Demo Company (UK)"),
        ({"line_item_type_account_codes": {"CREDIT_MEMO": "999"}},
         "line_item_type_account_codes.CREDIT_MEMO", "account code 999 does not exist"),
        ({"default_tax_type": "INPUT2"}, "default_tax_type",
         "tax type INPUT2 cannot be used on revenue"),
        ({"default_tax_type": "OUTPUT"}, "default_tax_type", "tax type OUTPUT is deleted"),
        ({"default_tax_type": "GST"}, "default_tax_type", "tax type GST does not exist"),
        ({"tracking": [{"category": "Region", "option": "Highlands"}]}, "tracking.0",
         "tracking option Highlands of Region is archived"),
        ({"tracking": [{"category": "Old", "option": "X"}]}, "tracking.0",
         "tracking category Old is not an active category"),
        ({"tracking": [{"category": "Region", "option": "Mars"}]}, "tracking.0",
         "tracking option Mars does not exist in Region"),
    ],
)  # fmt: skip
def test_each_problem_names_the_field_and_the_code(
    options: dict[str, Any], field: str, message: str
) -> None:
    (problem,) = check_coding(config(**options), reference())
    assert problem.field == field
    assert message in problem.message


def test_product_mappings_are_checked_against_the_organisation() -> None:
    mappings = [
        mapping("Account", "200", n=1),
        mapping("Item", "NOPE", n=2),
        mapping("TaxRate", "OUTPUT2", n=3),
        mapping("TrackingOption", "Region:North", n=4),
        mapping("TrackingOption", "Region North", n=5),
    ]
    problems = check_coding(config(), reference(), mappings)
    assert [p.field for p in problems] == [
        "external mapping map-2 (product prod-2 → Xero Item)",
        "external mapping map-5 (product prod-5 → Xero TrackingOption)",
    ]
    assert "item code NOPE does not exist" in problems[0].message
    assert "Category:Option" in problems[1].message


def test_which_product_mappings_an_integration_uses_and_what_they_cost_to_check() -> None:
    mine, other = "int-1", "int-2"
    mappings = [
        mapping("Account", "200", n=1),
        mapping("Item", "SUPPORT", linked=mine, n=2),
        mapping("Account", "201", linked=other, n=3),
        ExternalMapping.model_validate(
            {"id": "c", "externalSystem": "Xero", "externalTable": "Contact", "externalId": "x",
             "m3terEntity": "Account", "m3terId": "acc"}
        ),
    ]  # fmt: skip
    used = product_mappings(config(), mine, mappings)
    # per product and table, as the mapper chooses; never a contact mapping
    assert [m.id for m in used] == ["map-1", "map-2", "map-3"]
    theirs = mapping("Account", "202", linked=other, n=1)  # product 1 has an unlinked one too
    assert [m.id for m in product_mappings(config(), mine, [*mappings, theirs])] == [
        "map-1",
        "map-2",
        "map-3",
    ]
    enforced = product_mappings(config(enforce_external_mappings_for_config=True), mine, mappings)
    assert [m.id for m in enforced] == ["map-2"]
    assert reference_needs(config(), used) == (True, False)
    assert reference_needs(config(tracking=[{"category": "Region", "option": "North"}]), []) == (
        False,
        True,
    )


def test_the_default_tax_type_must_suit_every_account_the_integration_codes() -> None:
    accounts = COLLECTIONS["Accounts"] + [
        {"Code": "850", "Name": "Deferred", "Status": "ACTIVE", "Class": "LIABILITY",
         "Type": "CURRLIAB"},
    ]  # fmt: skip
    ref = read_reference(
        lambda c, p: accounts if c == "Accounts" else COLLECTIONS[c], items=False, tracking=False
    )
    cfg = config(
        default_tax_type="OUTPUT2", line_item_type_account_codes={"COMMITMENT_CONSUMED": "850"}
    )
    (problem,) = check_coding(cfg, ref)
    assert problem.field == "default_tax_type"
    assert problem.message == (
        "tax type OUTPUT2 cannot be used on account code 850 (liability) in Demo Company (UK)"
    )
    mapped = check_coding(config(default_tax_type="OUTPUT2"), ref, [mapping("Account", "850")])
    assert [p.field for p in mapped] == ["default_tax_type"]
    own_tax = [mapping("Account", "850"), mapping("TaxRate", "OUTPUT2")]  # product 1 has its own
    (problem,) = check_coding(config(default_tax_type="OUTPUT2"), ref, own_tax)
    assert problem.field == "external mapping map-1 (product prod-1 → Xero TaxRate)"
    assert "cannot be used on account code 850 (liability)" in problem.message
    assert check_coding(config(default_tax_type="OUTPUT2", default_account_code="200"), ref) == []


def test_each_countrys_tax_type_is_checked_naming_the_country() -> None:
    accounts = COLLECTIONS["Accounts"] + [
        {"Code": "850", "Name": "Deferred", "Status": "ACTIVE", "Class": "LIABILITY",
         "Type": "CURRLIAB"},
    ]  # fmt: skip
    ref = read_reference(
        lambda c, p: accounts if c == "Accounts" else COLLECTIONS[c], items=False, tracking=False
    )
    by_country = {"US": "GST", "DE": "INPUT2", "NZ": "OUTPUT", "GB": "OUTPUT2"}
    problems = check_coding(config(tax_type_by_country=by_country), ref)
    assert [str(p) for p in problems] == [
        "tax_type_by_country.DE: tax type INPUT2 cannot be used on revenue in Demo Company (UK)",
        "tax_type_by_country.NZ: tax type OUTPUT is deleted in Demo Company (UK)",
        "tax_type_by_country.US: tax type GST does not exist in Demo Company (UK)",
    ]
    good = config(tax_type_by_country={"GB": "OUTPUT2"}, default_account_code="200")
    assert check_coding(good, ref) == []
    # A country's tax type goes on every account the integration codes, a product's own
    # TaxRate mapping notwithstanding (the country wins over it).
    cfg = config(
        tax_type_by_country={"GB": "OUTPUT2"},
        line_item_type_account_codes={"COMMITMENT_CONSUMED": "850"},
    )
    (problem,) = check_coding(cfg, ref)
    assert str(problem) == (
        "tax_type_by_country.GB: tax type OUTPUT2 cannot be used on account code 850 "
        "(liability) in Demo Company (UK)"
    )
    own_tax = [mapping("Account", "850"), mapping("TaxRate", "OUTPUT2")]
    problems = check_coding(config(tax_type_by_country={"GB": "OUTPUT2"}), ref, own_tax)
    assert [p.field for p in problems] == [
        "tax_type_by_country.GB",
        "external mapping map-1 (product prod-1 → Xero TaxRate)",
    ]
