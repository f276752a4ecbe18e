"""Tax per customer country: the option's keys are ISO 3166-1 alpha-2 codes, refused otherwise
naming the field and the key; an m3ter account's free-text country is read as one code or none."""

from __future__ import annotations

from typing import Any

import pytest

from config.countries import COUNTRY_CODES, country_code
from config.errors import InvalidInput
from config.integration import IntegrationConfig, validate_config


def test_the_assigned_codes() -> None:
    assert len(COUNTRY_CODES) == 249
    assert {"GB", "US", "DE", "NZ", "AU", "IE"} <= COUNTRY_CODES
    assert {"UK", "EU", "XK", "EL"}.isdisjoint(COUNTRY_CODES)  # reserved or user-assigned


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("GB", "GB"),
        (" de ", "DE"),
        ("Us", "US"),
        ("UK", "GB"),  # exceptionally reserved for the United Kingdom
        ("uk", "GB"),
        ("Germany", None),  # a name: no country, never a guess
        ("DEU", None),  # alpha-3
        ("XX", None),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_an_accounts_country_is_one_code_or_none(text: str | None, code: str | None) -> None:
    assert country_code(text) == code


def test_keys_and_tax_types_are_cleaned() -> None:
    config = validate_config(
        {
            "name": "n",
            "tax_type_by_country": {"gb": " output2 ", " US ": "none", "DE": "ZERORATEDOUTPUT",
                                    "NZ": "  "},
        }
    )  # fmt: skip
    assert config.tax_type_by_country == {"GB": "OUTPUT2", "US": "NONE", "DE": "ZERORATEDOUTPUT"}
    assert validate_config(config.model_dump(mode="json")) == config
    assert validate_config({"name": "n"}).tax_type_by_country == {}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"UK": "OUTPUT2"}, "alpha-2 country code: 'UK': the United Kingdom is GB"),
        ({"Germany": "NONE"}, "not an ISO 3166-1 alpha-2 country code: 'Germany', e.g. GB"),
        ({"XX": "NONE"}, "not an ISO 3166-1 alpha-2 country code: 'XX'"),
        ({"DEU": "NONE"}, "not an ISO 3166-1 alpha-2 country code: 'DEU'"),
        ({"": "NONE"}, "not an ISO 3166-1 alpha-2 country code: ''"),
        ({"US": "No VAT"}, "not a Xero tax type for US: 'NO VAT'"),
        ({"us": "NONE", "US": "OUTPUT2"}, "two tax types for US: 'NONE' and 'OUTPUT2'"),
        ({"US": 0}, "valid string"),
        (["US"], "dictionary"),
    ],
)  # fmt: skip
def test_bad_keys_and_tax_types_are_refused_naming_the_field(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_config({"name": "n", "tax_type_by_country": value})
    assert info.value.field == "tax_type_by_country"
    assert fragment in str(info.value)


def test_the_form_offers_the_codes_and_text_boxes() -> None:
    prop = IntegrationConfig.model_json_schema()["properties"]["tax_type_by_country"]
    assert prop["type"] == "object"
    assert prop["propertyNames"]["enum"] == sorted(COUNTRY_CODES)
    assert prop["additionalProperties"] == {"type": "string", "maxLength": 50}
    assert prop["title"] == "Tax type per customer country"
    assert "wins over the product's TaxRate mapping" in prop["description"]
