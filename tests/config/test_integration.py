"""The integration configuration: every console option, refused input names its field."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import InvalidInput
from config.integration import (
    IntegrationConfig,
    IntegrationStatus,
    SortBy,
    SplitUsage,
    TrackingChoice,
    parsed_filter,
    shared_accounts,
    validate_config,
)
from config.line_items import LINE_ITEM_TYPES


def test_defaults_match_the_console() -> None:
    config = validate_config({"name": "UK customers"})
    assert config.account_ids == [] and config.restricted_account_ids == []
    assert config.notification_users == []
    assert config.only_send_bill_on_approval is False
    assert config.use_external_mapping_account_code is False
    assert config.enforce_external_mappings_for_config is False
    assert config.excluded_line_item_types == []
    assert config.account_filter is None
    assert config.split_usage_line_items is SplitUsage.ITEM_PER_USAGE_BAND
    assert config.sort_line_items_by is SortBy.NONE
    assert config.invoice_status == "DRAFT"
    assert config.default_account_code is None and config.default_tax_type is None
    assert config.line_item_type_account_codes == {} and config.tracking == []
    assert (config.entity_type, config.destination) == ("Bill", "Xero")
    assert parsed_filter(config) is None


def test_every_option_round_trips_through_json() -> None:
    data = {
        "name": "  All options  ",
        "account_ids": ["a1", " a2 ", "", "a1"],
        "restricted_account_ids": ["r1"],
        "notification_users": ["ops@example.com", "first.last+bills@sub.example.co.uk"],
        "only_send_bill_on_approval": True,
        "use_external_mapping_account_code": True,
        "excluded_line_item_types": ["minimum_spend", "AD_HOC"],
        "account_filter": "address.country = = UK",
        "enforce_external_mappings_for_config": True,
        "excluded_products": ["p1"],
        "excluded_aggregations": ["g1"],
        "split_usage_line_items": "ITEM_PER_PRODUCT",
        "sort_line_items_by": "AGGREGATION_ID",
        "invoice_status": "authorised",
        "default_account_code": " 200 ",
        "default_tax_type": " output2 ",
        "line_item_type_account_codes": {"minimum_spend": "4100", "CREDIT_MEMO": " 4900 ",
                                         "AD_HOC": " "},
        "tracking": [{"category": " Region ", "option": "Europe "},
                     {"category": "Team", "option": "Platform"}],
    }
    config = validate_config(data)
    assert (config.default_account_code, config.default_tax_type) == ("200", "OUTPUT2")
    assert config.line_item_type_account_codes == {"MINIMUM_SPEND": "4100", "CREDIT_MEMO": "4900"}
    assert config.tracking == [TrackingChoice(category="Region", option="Europe"),
                               TrackingChoice(category="Team", option="Platform")]
    assert config.name == "All options"
    assert config.account_ids == ["a1", "a2"]
    assert config.excluded_line_item_types == ["MINIMUM_SPEND", "AD_HOC"]
    assert config.account_filter == "address.country = = UK"
    assert config.split_usage_line_items is SplitUsage.ITEM_PER_PRODUCT
    assert config.sort_line_items_by is SortBy.AGGREGATION_ID
    assert config.invoice_status == "AUTHORISED"
    assert validate_config(config.model_dump(mode="json")) == config
    assert IntegrationConfig.model_validate_json(config.model_dump_json()) == config
    flt = parsed_filter(config)
    assert flt is not None and flt is parsed_filter(config)  # cached per text
    assert flt.matches({"address": {"country": "UK"}})


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({}, "name", "required"),
        ({"name": "   "}, "name", "a name is required"),
        ({"name": "x" * 201}, "name", "at most 200"),
        (
            {"name": "n", "account_ids": ["a", "b"], "restricted_account_ids": ["b"]},
            "restricted_account_ids",
            "both allowed and restricted: b",
        ),
        ({"name": "n", "notification_users": ["ops@example.com", "ops"]}, "notification_users",
         "not an e-mail address: ops"),
        ({"name": "n", "notification_users": ["a b@example.com"]}, "notification_users", "e-mail"),
        ({"name": "n", "notification_users": ["a@localhost"]}, "notification_users", "e-mail"),
        ({"name": "n", "notification_users": ["a..b@x.com"]}, "notification_users", "e-mail"),
        ({"name": "n", "notification_users": [7]}, "notification_users", "string"),
        ({"name": "n", "excluded_line_item_types": ["USAGE", "TAX"]}, "excluded_line_item_types",
         "unknown line item type(s): TAX"),
        ({"name": "n", "account_filter": "address.country =="}, "account_filter",
         "expected a value after '==' at position 18"),
        ({"name": "n", "account_filter": "adress.country == UK"}, "account_filter",
         "unknown field 'adress' at position 0"),
        ({"name": "n", "invoice_status": "PAID"}, "invoice_status", "DRAFT"),
        ({"name": "n", "split_usage_line_items": "PER_LINE"}, "split_usage_line_items",
         "ITEM_PER_PRODUCT"),
        ({"name": "n", "sort_line_items_by": "NAME"}, "sort_line_items_by", "SUBTOTAL"),
        ({"name": "n", "destination": "QuickBooks"}, "destination", "Xero"),
        ({"name": "n", "entity_type": "Invoice"}, "entity_type", "Bill"),
        ({"name": "n", "only_send_bill_on_approval": "maybe"}, "only_send_bill_on_approval",
         "boolean"),
        ({"name": "n", "colour": "red"}, "colour", "Extra inputs"),
        ({"name": "n", "default_account_code": "42-00"}, "default_account_code",
         "not a Xero account code: '42-00'"),
        ({"name": "n", "default_account_code": "12345678901"}, "default_account_code",
         "'12345678901' (1 to 10 letters or digits"),
        ({"name": "n", "default_account_code": 200}, "default_account_code", "string"),
        ({"name": "n", "default_tax_type": "OUTPUT 2"}, "default_tax_type",
         "not a Xero tax type: 'OUTPUT 2'"),
        ({"name": "n", "default_tax_type": "T" * 51}, "default_tax_type", "1 to 50"),
        ({"name": "n", "line_item_type_account_codes": {"TAX": "200"}},
         "line_item_type_account_codes", "unknown line item type: 'TAX'; expected one of"),
        ({"name": "n", "line_item_type_account_codes": {"USAGE": "4.1"}},
         "line_item_type_account_codes", "not a Xero account code for USAGE lines: '4.1'"),
        ({"name": "n", "line_item_type_account_codes": {"usage": "4000", "USAGE": "4100"}},
         "line_item_type_account_codes", "two account codes for USAGE lines: '4000' and '4100'"),
        ({"name": "n", "line_item_type_account_codes": ["USAGE"]},
         "line_item_type_account_codes", "dictionary"),
        ({"name": "n", "tracking": [{"category": "Region", "option": "A"},
                                    {"category": "region", "option": "B"}]},
         "tracking", "tracking category 'region' is chosen twice"),
        ({"name": "n", "tracking": [{"category": c, "option": "x"} for c in "ABC"]},
         "tracking", "at most 2 tracking categories (Xero's limit per line), got 3: A, B, C"),
        ({"name": "n", "tracking": [{"category": " ", "option": "x"}]},
         "tracking", "a tracking category name is required (item 0.category)"),
        ({"name": "n", "tracking": [{"category": "Region", "option": "x" * 101}]},
         "tracking", f"a tracking option name has at most 100 characters: '{'x' * 101}'"),
        ({"name": "n", "tracking": [{"category": "Region"}]}, "tracking",
         "required (item 0.option)"),
        ({"name": "n", "tracking": [{"category": "R", "option": "x", "id": "1"}]}, "tracking",
         "Extra inputs"),
    ],
)
def test_refusals_name_the_field(data: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_config(data)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_blank_filter_means_no_filter_and_all_line_types_are_known() -> None:
    config = validate_config(
        {"name": "n", "account_filter": "  ", "excluded_line_item_types": list(LINE_ITEM_TYPES)}
    )
    assert config.account_filter is None
    assert len(config.excluded_line_item_types) == 19


def test_blank_codes_mean_none_and_the_form_shows_text_boxes() -> None:
    config = validate_config({"name": "n", "default_account_code": "  ", "default_tax_type": "",
                              "line_item_type_account_codes": {"USAGE": ""}, "tracking": []})
    assert config.default_account_code is None and config.default_tax_type is None
    assert config.line_item_type_account_codes == {}
    props = IntegrationConfig.model_json_schema()["properties"]
    assert props["default_account_code"] == {
        "type": "string", "maxLength": 10, "default": "", "title": "Default account code",
        "description": props["default_account_code"]["description"]}
    assert props["line_item_type_account_codes"]["propertyNames"]["enum"] == list(LINE_ITEM_TYPES)
    assert props["tracking"]["maxItems"] == 2
    assert set(props["tracking"]["items"]["properties"]) == {"category", "option"}


def test_status_enum_values() -> None:
    assert [s.value for s in IntegrationStatus] == ["NOT_CONNECTED", "CONNECTED", "DISABLED"]


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidInput):
        validate_config(["name"])  # type: ignore[arg-type]


_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8),
    st.lists(st.text(max_size=8), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(IntegrationConfig.model_fields) + ["x"]), _value))
def test_any_input_validates_or_raises_invalid_input(data: dict[str, Any]) -> None:
    try:
        config = validate_config(data)
    except InvalidInput as err:
        assert err.field is None or err.field in data or err.field == "name"
    else:
        assert validate_config(config.model_dump(mode="json")) == config


PROJECT_PACKAGES = {"config", "tasks", "flows", "store", "deployments", "web", "sandbox", "bench"}


def test_config_imports_nothing_else_of_the_project() -> None:
    """``config`` is the bottom layer: the line item types it offers live in config.line_items."""
    outside = []
    for path in sorted((Path(__file__).resolve().parents[2] / "config").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            top = {n.split(".")[0] for n in names}
            outside += [f"{path.name}: {n}" for n in top & (PROJECT_PACKAGES - {"config"})]
    assert outside == []


def test_line_item_types_are_the_wire_models_own() -> None:
    from tasks.m3ter import models

    assert models.LINE_ITEM_TYPES is LINE_ITEM_TYPES
    assert len(LINE_ITEM_TYPES) == 19


def _accounts(allowed: list[str], restricted: Sequence[str] = ()) -> IntegrationConfig:
    return validate_config(
        {"name": "n", "account_ids": allowed, "restricted_account_ids": list(restricted)}
    )


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        (([],), ([],), "all accounts"),
        (([], ["r1"]), ([], ["r2"]), "all accounts except r1, r2"),
        (([], ["a2"]), (["a1", "a2", "a3"],), "a1, a3"),
        ((["a1", "a2", "a3"],), ([], ["a2"]), "a1, a3"),
        (([], ["a1", "a2"]), (["a1", "a2"],), None),
        ((["a1", "a2"],), (["a2", "a3"],), "a2"),
        ((["a1"],), (["a2"],), None),
        ((["a1"], ["a2"]), (["a2"], ["a1"]), None),
    ],
)
def test_shared_accounts(a: tuple, b: tuple, shared: str | None) -> None:
    found = shared_accounts(_accounts(*a), _accounts(*b))
    assert (found.describe() if found else None) == shared
    again = shared_accounts(_accounts(*b), _accounts(*a))
    assert (again.describe() if again else None) == shared


def test_shared_accounts_lists_at_most_ten() -> None:
    ids = [f"acc-{n:02}" for n in range(25)]
    found = shared_accounts(_accounts(ids), _accounts([]))
    assert found is not None and not found.unbounded and len(found.ids) == 25
    assert found.describe() == ", ".join(ids[:10]) + " and 15 more"
