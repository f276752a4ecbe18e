"""The account filter language of the m3ter Xero integration, parsed once when a config is saved.

Examples (m3ter's own)::

    address.country == UK
    customFields != null AND customFields.country == UK
    currency IN (GBP, "EUR") AND NOT accountName == "Test account"

Grammar (keywords in any case; ``= =`` with a space is read as ``==``, as the console writes it)::

    filter     := or EOF
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | primary
    primary    := "(" or ")" | comparison
    comparison := field op value | field ["NOT"] "IN" "(" value ("," value)* ")"
    op         := "==" | "!=" | "<" | ">" | "<=" | ">="
    value      := null | true | false | number | 'quoted' | "quoted" | bare-word

Fields: ``id``, ``accountName`` (the account's ``name``), ``accountCode`` (its ``code``),
``address.<part>``, ``customFields`` / ``customFields.<name>`` and the account's other fields by
their wire name (see ``ACCOUNT_FIELDS``). Unknown fields are refused at parse time so a typo is
caught when the configuration is saved, not silently never matching.

Evaluation never raises:

- A missing field (absent key, or a path through a non-object) compares ``== null`` as true and
  everything else as false; ``!= null`` on a missing field is false. A field whose value is
  null behaves the same way: ``currency != GBP`` is false when ``currency`` is null.
- Values compare only within one type: numbers (as ``Decimal``), strings (case-sensitive,
  ordered by code point), booleans (``==``/``!=`` only), null. Across types every operator,
  ``!=`` included, is false. Dates on a model are compared as their ISO text.
- ``x IN (a, b)`` is ``x == a OR x == b``; ``x NOT IN (a, b)`` is true when ``x`` is present, not
  null, and equal to none of the values.

Positions in errors are 0-based character offsets into the text.

The parts: tokens and ``FilterSyntaxError`` in ``account_filter_lexer``, the parser and the
fields in ``account_filter_parser``, the syntax tree and its evaluation in
``account_filter_nodes``; this module the public face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.account_filter_lexer import FilterSyntaxError
from config.account_filter_nodes import Node, as_mapping
from config.account_filter_parser import ACCOUNT_FIELDS, ADDRESS_FIELDS, Parser

__all__ = [
    "ACCOUNT_FIELDS",
    "ADDRESS_FIELDS",
    "AccountFilter",
    "FilterSyntaxError",
    "parse_filter",
]

_MAX_LENGTH = 10_000


@dataclass(frozen=True, slots=True)
class AccountFilter:
    """A parsed filter: keep the original ``text`` for display, evaluate with ``matches``."""

    text: str
    root: Node

    def matches(self, account: Any) -> bool:
        """True when ``account`` (wire-shaped dict or a pydantic model) passes the filter."""
        return bool(self.root.evaluate(as_mapping(account)))

    def __str__(self) -> str:
        return self.text


def parse_filter(text: str) -> AccountFilter:
    """Parse ``text`` once (at save time); raise ``FilterSyntaxError`` saying where and why."""
    if not isinstance(text, str):
        raise FilterSyntaxError("expected filter text", position=0, expected="text")
    if len(text) > _MAX_LENGTH:
        raise FilterSyntaxError(
            f"filter longer than {_MAX_LENGTH} characters at position {_MAX_LENGTH}",
            position=_MAX_LENGTH,
            expected=f"at most {_MAX_LENGTH} characters",
        )
    return AccountFilter(text=text, root=Parser(text).parse())
