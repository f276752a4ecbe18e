"""The account filter language: table tests for the grammar and semantics, properties for safety."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.account_filter import FilterSyntaxError, parse_filter
from config.errors import InvalidInput

UK = {
    "id": "acc-1",
    "name": "Acme Ltd",
    "code": "ACME",
    "currency": "GBP",
    "daysBeforeBillDue": 30,
    "address": {"country": "UK", "locality": "Leeds"},
    "customFields": {"country": "UK", "tier": 3, "score": 4.5, "segment": "big co"},
}
US = {
    "id": "acc-2",
    "name": "Zed Inc",
    "code": "ZED",
    "currency": "USD",
    "address": {"country": "US"},
}
BARE = {"id": "acc-3"}


@pytest.mark.parametrize(
    ("text", "uk", "us", "bare"),
    [
        # m3ter's own examples, including the console's "= =".
        ("address.country == UK", True, False, False),
        ("customFields != null AND customFields.country == UK", True, False, False),
        ("customFields != null AND customFields.country = = UK", True, False, False),
        # aliases and wire names
        ("accountName == 'Acme Ltd'", True, False, False),
        ('accountCode == "ZED"', False, True, False),
        ("name == \"Acme Ltd\"", True, False, False),
        ("id == acc-3", False, False, True),
        # case-insensitive keywords and literals
        ("currency == GBP and address.country == UK", True, False, False),
        ("currency == GBP oR currency == USD", True, True, False),
        ("not currency == GBP", False, True, True),
        ("customFields == NULL", False, True, True),
        # precedence: NOT > AND > OR
        ("currency == USD OR currency == GBP AND address.country == US", False, True, False),
        ("(currency == USD OR currency == GBP) AND address.country == US", False, True, False),
        ("NOT currency == USD AND id != acc-3", True, False, False),
        ("NOT (currency == USD OR currency == GBP)", False, False, True),
        ("NOT NOT currency == GBP", True, False, False),
        # IN and NOT IN
        ("currency IN (GBP, EUR)", True, False, False),
        ("currency in ('USD', \"EUR\")", False, True, False),
        ("currency NOT IN (GBP)", False, True, False),  # missing field: NOT IN is false
        ("currency not in (JPY, EUR)", True, True, False),
        # quoted strings with spaces and escapes
        ("customFields.segment == 'big co'", True, False, False),
        ("customFields.segment == 'big \\'co'", False, False, False),
        # numbers compare as Decimal, across types never
        ("customFields.tier == 3", True, False, False),
        ("customFields.tier == 3.000", True, False, False),
        ("customFields.tier > 2.5", True, False, False),
        ("customFields.tier <= 2", False, False, False),
        ("customFields.score == 4.5", True, False, False),
        ("customFields.score >= 4.50", True, False, False),
        ("customFields.tier == '3'", False, False, False),
        ("customFields.tier != three", False, False, False),
        ("currency < 5", False, False, False),
        ("daysBeforeBillDue == 3e1", True, False, False),
        # strings order by code point
        ("accountCode < B", True, False, False),
        ("accountCode >= Z", False, True, False),
        # missing fields: only "== null" holds
        ("customFields.country == null", False, True, True),
        ("customFields.country != null", True, False, False),
        ("address.country != UK", False, True, False),
        ("customFields.tier != 4", True, False, False),
        # booleans only equal booleans
        ("customFields.tier == true", False, False, False),
    ],
)
def test_semantics_table(text: str, uk: bool, us: bool, bare: bool) -> None:
    flt = parse_filter(text)
    assert (flt.matches(UK), flt.matches(US), flt.matches(BARE)) == (uk, us, bare)


def test_null_valued_field_and_booleans() -> None:
    account = {"id": "a", "currency": None, "customFields": {"vip": True}}
    assert parse_filter("currency == null").matches(account)
    assert not parse_filter("currency != null").matches(account)
    assert not parse_filter("currency != GBP").matches(account)
    assert not parse_filter("currency NOT IN (GBP)").matches(account)
    assert parse_filter("customFields.vip == TRUE").matches(account)
    assert parse_filter("customFields.vip != false").matches(account)
    assert not parse_filter("customFields.vip > false").matches(account)


def test_pydantic_model_and_dates_compare_as_iso_text() -> None:
    from pydantic import BaseModel, ConfigDict, Field

    class Acc(BaseModel):
        model_config = ConfigDict(populate_by_name=True)
        id: str
        bill_epoch: dt.date | None = Field(default=None, alias="billEpoch")
        days: int | None = Field(default=None, alias="daysBeforeBillDue")

    acc = Acc(id="x", bill_epoch=dt.date(2024, 3, 1), days=14)
    assert parse_filter("billEpoch >= '2024-01-01' AND daysBeforeBillDue < 15").matches(acc)
    assert not parse_filter("billEpoch < '2024-01-01'").matches(acc)


def test_filter_keeps_its_text() -> None:
    text = "  currency == GBP "
    assert str(parse_filter(text)) == text
    assert parse_filter(text).text == text


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("address.country ==", 18, "expected a value after '=='"),
        ("address.country == ", 19, "expected a value after '=='"),
        ("currency == AND id == x", 12, "expected a value after '=='"),
        ("", 0, "expected a condition"),
        ("currency == GBP AND", 19, "expected a condition after 'AND'"),
        ("currency == GBP OR OR id == x", 19, "expected a condition after 'OR'"),
        ("(currency == GBP", 16, "expected ')'"),
        ("currency == GBP)", 15, "expected AND, OR or end of filter"),
        ("currency = GBP", 9, "expected '=='"),
        ("currency ! GBP", 9, "expected '!='"),
        ("currency GBP", 9, "expected an operator"),
        ("currency IN GBP", 12, "expected '(' to open the IN list"),
        ("currency IN (GBP EUR)", 17, "expected ',' or ')'"),
        ("currency IN ()", 13, "expected a value"),
        ("currency NOT == GBP", 13, "expected IN"),
        ("currency == 'GBP", 12, "closing '"),
        ("adress.country == UK", 0, "unknown field 'adress'"),
        ("address.county == UK", 0, "unknown address field"),
        ("currency.code == GBP", 0, "has no part"),
        ("== GBP", 0, "expected a field name"),
        ("currency == 1e999999999999999999999999", 12, "number out of range"),
        ("(" * 70 + "currency == GBP" + ")" * 70, 64, "nested parentheses"),
    ],
)
def test_syntax_errors_say_where_and_what(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    err = info.value
    assert err.position == position
    assert fragment in str(err)
    assert f"position {position}" in str(err)
    assert isinstance(err, InvalidInput)
    assert err.field == "account_filter"
    assert err.expected


def test_long_chains_need_no_deep_recursion() -> None:
    text = " OR ".join(f"customFields.n == {i}" for i in range(300))
    flt = parse_filter(text)
    assert flt.matches({"customFields": {"n": 299}})
    assert parse_filter("NOT " * 2001 + "currency == GBP").matches({"currency": "USD"})


# --------------------------------------------------------------------------- properties

_ALPHABET = st.sampled_from(
    list("()=!<>,'\"\\ .\t\n-+eE0123456789")
    + ["AND", "OR", "NOT", "IN", "null", "true", "currency", "customFields.x", "address.country"]
    + ["UK", "==", "= =", "!=", "<=", ">=", "é", "\x00", "٣"]
)
_noise = st.lists(_ALPHABET, max_size=30).map(" ".join) | st.text(max_size=40)

_FIELDS = ["currency", "name", "accountName", "accountCode", "id", "address.country",
           "customFields", "customFields.x", "customFields.y", "daysBeforeBillDue", "version"]
_literal = st.one_of(
    st.just("null"), st.just("true"), st.just("FALSE"), st.sampled_from(["UK", "GBP", "x"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.integers(-5, 5).map(str),
    st.text(alphabet="ab '\"\\", max_size=5).map(lambda s: '"' + s.replace("\\", "\\\\")
                                                  .replace('"', '\\"') + '"'),
)


@st.composite
def _filters(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 3 else 1))
    field = draw(st.sampled_from(_FIELDS))
    if kind == 0:
        op = draw(st.sampled_from(["==", "!=", "<", ">", "<=", ">=", "= ="]))
        return f"{field} {op} {draw(_literal)}"
    if kind == 1:
        neg = draw(st.sampled_from(["", "NOT ", "not "]))
        values = draw(st.lists(_literal, min_size=1, max_size=3))
        return f"{field} {neg}IN ({', '.join(values)})"
    if kind == 2:
        return f"NOT {draw(_filters(depth + 1))}"
    if kind == 3:
        return f"({draw(_filters(depth + 1))})"
    joiner = draw(st.sampled_from([" AND ", " OR ", " and ", " Or "]))
    return joiner.join(draw(st.lists(_filters(depth + 1), min_size=2, max_size=3)))


_json_scalar = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.sampled_from(["UK", "GBP", "x"]),
    st.integers(), st.floats(), st.decimals(),
)
_json_value = st.recursive(
    _json_scalar,
    lambda kids: st.lists(kids, max_size=3)
    | st.dictionaries(st.sampled_from(["x", "y", "country"]), kids, max_size=3),
    max_leaves=8,
)
_accounts = st.dictionaries(
    st.sampled_from(["id", "name", "code", "currency", "address", "customFields",
                     "daysBeforeBillDue", "version"]),
    _json_value,
    max_size=8,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_noise)
def test_any_text_parses_or_raises_filter_syntax_error(text: str) -> None:
    try:
        flt = parse_filter(text)
    except FilterSyntaxError as err:
        assert 0 <= err.position <= len(text)
    else:
        assert flt.text == text


@settings(max_examples=300, deadline=None)
@given(_filters(), _accounts)
def test_evaluation_never_raises(text: str, account: dict) -> None:
    flt = parse_filter(text)
    assert flt.matches(account) in (True, False)


@settings(max_examples=200, deadline=None)
@given(_filters(), _accounts)
def test_not_negates_and_de_morgan_holds(text: str, account: dict) -> None:
    flt = parse_filter(text)
    assert parse_filter(f"NOT ({text})").matches(account) is (not flt.matches(account))
    both = parse_filter(f"({text}) AND ({text})").matches(account)
    assert both is flt.matches(account)


@given(st.decimals(allow_nan=False, allow_infinity=False), st.integers(-10**6, 10**6))
def test_numbers_compare_as_decimal(value: Decimal, literal: int) -> None:
    account = {"customFields": {"n": value}}
    assert parse_filter(f"customFields.n < {literal}").matches(account) is (value < literal)
    assert parse_filter(f"customFields.n == {literal}").matches(account) is (value == literal)
