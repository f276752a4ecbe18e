"""The create_integration form as the Prefect UI draws it: the flow's parameter schema (what
``flow.to_deployment()`` stores as ``parameter_openapi_schema``) reads as words, offers every
closed set as a list to pick from, hides the constants and has no field of type None."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema

from config.integration import IntegrationConfig, validate_config
from config.line_items import LINE_ITEM_TYPES
from flows.integrations import create_integration

CLASS_NAME = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$")  # SplitUsage, IntegrationConfig


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return parameter_schema(create_integration).model_dump()


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A property with its ``$ref`` (if any) merged in, the property's own keys winning."""
    ref = node.get("$ref")
    if not ref:
        return node
    name = ref.rsplit("/", 1)[-1]
    return {**resolve(schema, schema["definitions"][name]), **node}


def options(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    config = resolve(schema, schema["properties"]["config"])
    return {name: resolve(schema, prop) for name, prop in config["properties"].items()}


def test_no_label_is_a_class_name(schema):
    titles = [n["title"] for n in walk(schema) if isinstance(n.get("title"), str)]
    assert titles
    assert [t for t in titles if CLASS_NAME.match(t)] == []
    assert {"SplitUsage", "SortBy", "IntegrationConfig", "LineItemType"}.isdisjoint(titles)


def test_every_option_has_a_readable_title_and_help(schema):
    props = options(schema)
    assert set(props) == set(IntegrationConfig.model_fields) - {"entity_type", "destination"}
    for name, prop in props.items():
        assert prop.get("title") and prop["title"] != name, name
        assert "_" not in prop["title"], name
        assert prop.get("description"), name
    assert props["split_usage_line_items"]["title"] == "Split usage lines"
    assert props["sort_line_items_by"]["title"] == "Sort lines by"
    for param in schema["properties"].values():
        assert param.get("description"), param


def test_closed_sets_are_dropdowns(schema):
    props = options(schema)
    assert props["split_usage_line_items"]["enum"] == ["ITEM_PER_USAGE_BAND", "ITEM_PER_PRODUCT"]
    assert props["split_usage_line_items"]["default"] == "ITEM_PER_USAGE_BAND"
    assert props["sort_line_items_by"]["enum"] == ["NONE", "SUBTOTAL", "AGGREGATION_ID"]
    assert props["invoice_status"]["enum"] == ["DRAFT", "SUBMITTED", "AUTHORISED"]
    numbering = props["invoice_numbering"]
    assert numbering["enum"] == ["M3TER_INVOICE_NUMBER", "XERO_SEQUENCE", "BILL_ID"]
    assert numbering["default"] == "M3TER_INVOICE_NUMBER"
    assert numbering["title"] == "Invoice number"
    line_types = props["excluded_line_item_types"]
    assert line_types["type"] == "array"
    assert resolve(schema, line_types["items"])["enum"] == list(LINE_ITEM_TYPES)
    assert line_types.get("uniqueItems") is True


def test_constants_are_hidden_from_the_form_but_still_stored(schema):
    props = options(schema)
    assert "entity_type" not in props and "destination" not in props
    assert not [n for n in walk(schema) if "const" in n]
    stored = validate_config({"name": "n"}).model_dump(mode="json")
    assert (stored["entity_type"], stored["destination"]) == ("Bill", "Xero")


def test_no_field_is_of_type_none(schema):
    assert not [n for n in walk(schema) if n.get("type") == "null"]
    assert not [n for n in walk(schema) if "anyOf" in n or "oneOf" in n]
    props = options(schema)
    assert props["account_filter"]["type"] == "string"
    assert props["account_filter"]["default"] == ""
    assert schema["properties"]["credential"]["type"] == "string"
    # The model still takes null (and a blank) for "no filter", and stores None as before.
    assert validate_config({"name": "n", "account_filter": None}).account_filter is None
    assert validate_config({"name": "n", "account_filter": ""}).account_filter is None
