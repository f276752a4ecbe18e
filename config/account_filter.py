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
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from config.errors import InvalidInput

__all__ = [
    "ACCOUNT_FIELDS",
    "ADDRESS_FIELDS",
    "AccountFilter",
    "FilterSyntaxError",
    "parse_filter",
]

#: Top-level account fields by wire name, plus the console's two aliases.
ACCOUNT_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "name",
        "code",
        "accountName",
        "accountCode",
        "address",
        "autoGenerateStatementMode",
        "billEpoch",
        "createdBy",
        "creditApplicationOrder",
        "currency",
        "customFields",
        "daysBeforeBillDue",
        "dtCreated",
        "dtLastModified",
        "emailAddress",
        "lastModifiedBy",
        "parentAccountId",
        "purchaseOrderNumber",
        "statementDefinitionId",
        "version",
    }
)
ADDRESS_FIELDS: frozenset[str] = frozenset(
    {
        "addressLine1",
        "addressLine2",
        "addressLine3",
        "addressLine4",
        "country",
        "locality",
        "postCode",
        "region",
    }
)
_ALIASES = {"accountName": "name", "accountCode": "code"}
_MAX_DEPTH = 64
_MAX_LENGTH = 10_000


class FilterSyntaxError(InvalidInput):
    """The filter text does not parse; ``position`` (0-based) and ``expected`` say where and why."""

    def __init__(self, message: str, *, position: int, expected: str = "") -> None:
        super().__init__(message, field="account_filter")
        self.position = position
        self.expected = expected
        self.detail = message


# --------------------------------------------------------------------------- tokens

_OPS = ("==", "!=", "<=", ">=", "<", ">")
_PUNCT = "()=!<>,'\""
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", ",", "op", "word", "string", "eof"
    text: str
    pos: int


def _describe(tok: _Token) -> str:
    if tok.kind == "eof":
        return "end of filter"
    if tok.kind == "string":
        return "a quoted string"
    return f"'{tok.text}'"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "(),":
            tokens.append(_Token(c, c, i))
            i += 1
            continue
        if c == "=":
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] == "=":
                tokens.append(_Token("op", "==", i))
                i = j + 1
                continue
            raise FilterSyntaxError(
                f"expected '==' at position {i}", position=i, expected="'=='"
            )
        if c in "!<>":
            if i + 1 < n and text[i + 1] == "=":
                tokens.append(_Token("op", c + "=", i))
                i += 2
            elif c == "!":
                raise FilterSyntaxError(
                    f"expected '!=' at position {i}", position=i, expected="'!='"
                )
            else:
                tokens.append(_Token("op", c, i))
                i += 1
            continue
        if c in "'\"":
            j, chars = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n and text[j + 1] in (c, "\\"):
                    j += 1
                chars.append(text[j])
                j += 1
            if j >= n:
                raise FilterSyntaxError(
                    f"expected a closing {c} for the string opened at position {i}",
                    position=i,
                    expected=f"closing {c}",
                )
            tokens.append(_Token("string", "".join(chars), i))
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in _PUNCT:
            j += 1
        tokens.append(_Token("word", text[i:j], i))
        i = j
    tokens.append(_Token("eof", "", n))
    return tokens


# --------------------------------------------------------------------------- AST

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``."""

    path: tuple[str, ...]
    op: str
    value: Any

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        return _compare(_resolve(account, self.path), self.op, self.value)


@dataclass(frozen=True, slots=True)
class In:
    """``field [NOT] IN (values)``."""

    path: tuple[str, ...]
    values: tuple[Any, ...]
    negated: bool

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        actual = _resolve(account, self.path)
        hit = any(_compare(actual, "==", v) for v in self.values)
        if self.negated:
            return actual is not _MISSING and actual is not None and not hit
        return hit


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT operand``."""

    operand: Node

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        return not self.operand.evaluate(account)


@dataclass(frozen=True, slots=True)
class And:
    """All of ``operands`` (kept flat, so long chains need no deep recursion)."""

    operands: tuple[Node, ...]

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        return all(o.evaluate(account) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``operands``."""

    operands: tuple[Node, ...]

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        return any(o.evaluate(account) for o in self.operands)


Node = Compare | In | Not | And | Or


# --------------------------------------------------------------------------- evaluation


def _resolve(account: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = account
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _normalise(value: Any) -> Any:
    """Bring a field value into the literal domain: numbers to Decimal, dates to ISO text."""
    if value is None or isinstance(value, bool | str | Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        try:
            return Decimal(repr(value))
        except InvalidOperation:  # pragma: no cover - repr of a float is always a Decimal
            return _MISSING
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value  # dicts, lists, ...: only ever equal to nothing but "!= null"


def _compare(actual: Any, op: str, literal: Any) -> bool:
    if actual is _MISSING:
        return op == "==" and literal is None
    actual = _normalise(actual)
    if literal is None or actual is None:
        if op == "==":
            return actual is None and literal is None
        if op == "!=":
            return literal is None and actual is not None
        return False
    if isinstance(actual, Decimal) and actual.is_nan():
        return False
    kinds = (type(actual), type(literal))
    if kinds not in ((Decimal, Decimal), (str, str), (bool, bool)):
        return False
    if op == "==":
        return bool(actual == literal)
    if op == "!=":
        return bool(actual != literal)
    if isinstance(actual, bool):
        return False
    if op == "<":
        return bool(actual < literal)
    if op == ">":
        return bool(actual > literal)
    if op == "<=":
        return bool(actual <= literal)
    return bool(actual >= literal)


def _as_mapping(account: Any) -> Mapping[str, Any]:
    if isinstance(account, Mapping):
        return account
    dump = getattr(account, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True)
    return {}


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def _keyword(self, word: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.upper() == word

    def _fail(self, expected: str, after: _Token | None = None) -> FilterSyntaxError:
        tok = self.tok
        where = f" after {_describe(after)}" if after is not None else ""
        msg = f"expected {expected}{where} at position {tok.pos}, found {_describe(tok)}"
        return FilterSyntaxError(msg, position=tok.pos, expected=expected)

    def parse(self) -> Node:
        if self.tok.kind == "eof":
            raise self._fail("a condition")
        node = self._or()
        if self.tok.kind != "eof":
            prev = self.tokens[self.i - 1]
            raise self._fail("AND, OR or end of filter", after=prev)
        return node

    def _or(self) -> Node:
        items = [self._and()]
        while self._keyword("OR"):
            op = self._advance()
            self._after(op)
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Node:
        items = [self._not()]
        while self._keyword("AND"):
            op = self._advance()
            self._after(op)
            items.append(self._not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _after(self, op: _Token) -> None:
        if self.tok.kind == "eof" or self._keyword("AND") or self._keyword("OR"):
            raise self._fail("a condition", after=op)

    def _not(self) -> Node:
        negations = 0
        while self._keyword("NOT"):
            op = self._advance()
            self._after(op)
            negations += 1
        node = self._primary()
        return Not(node) if negations % 2 else node

    def _primary(self) -> Node:
        if self.tok.kind == "(":
            opener = self._advance()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise FilterSyntaxError(
                    f"too many nested parentheses at position {opener.pos}",
                    position=opener.pos,
                    expected=f"at most {_MAX_DEPTH} nested parentheses",
                )
            self._after(opener)
            node = self._or()
            if self.tok.kind != ")":
                raise self._fail(f"')' (closing the '(' from position {opener.pos})")
            self._advance()
            self.depth -= 1
            return node
        return self._comparison()

    def _field(self) -> tuple[str, ...]:
        tok = self.tok
        if tok.kind != "word" or tok.text.upper() in _KEYWORDS:
            raise self._fail("a field name")
        parts = tok.text.split(".")
        if not all(_SEGMENT.fullmatch(p) for p in parts):
            raise self._fail("a field name (letters, digits, _ and dots)")
        head = parts[0]
        if head not in ACCOUNT_FIELDS:
            raise FilterSyntaxError(
                f"unknown field '{head}' at position {tok.pos}; expected an account field"
                " such as accountName, accountCode, currency, address.country or customFields.x",
                position=tok.pos,
                expected="an account field",
            )
        if head == "address" and len(parts) > 1:
            if len(parts) > 2 or parts[1] not in ADDRESS_FIELDS:
                raise FilterSyntaxError(
                    f"unknown address field '{tok.text}' at position {tok.pos}; expected one of"
                    f" {', '.join(sorted(ADDRESS_FIELDS))}",
                    position=tok.pos,
                    expected="an address field",
                )
        elif (head == "customFields" and len(parts) > 2) or (
            head not in ("address", "customFields") and len(parts) > 1
        ):
            raise FilterSyntaxError(
                f"field '{head}' has no part '{'.'.join(parts[1:])}' at position {tok.pos}",
                position=tok.pos,
                expected="a field name",
            )
        self._advance()
        return (_ALIASES.get(head, head), *parts[1:])

    def _value(self, after: _Token) -> Any:
        tok = self.tok
        if tok.kind == "string":
            self._advance()
            return tok.text
        if tok.kind != "word" or tok.text.upper() in _KEYWORDS:
            raise self._fail("a value", after=after)
        self._advance()
        word = tok.text.lower()
        if word == "null":
            return None
        if word in ("true", "false"):
            return word == "true"
        if _NUMBER.fullmatch(tok.text):
            try:
                return Decimal(tok.text)
            except InvalidOperation:
                raise FilterSyntaxError(
                    f"number out of range at position {tok.pos}",
                    position=tok.pos,
                    expected="a number of sane size",
                ) from None
        return tok.text

    def _comparison(self) -> Node:
        path = self._field()
        field_tok = self.tokens[self.i - 1]
        if self.tok.kind == "op":
            op = self._advance()
            return Compare(path, op.text, self._value(op))
        negated = False
        if self._keyword("NOT"):
            self._advance()
            negated = True
            if not self._keyword("IN"):
                raise self._fail("IN", after=self.tokens[self.i - 1])
        if self._keyword("IN"):
            in_tok = self._advance()
            if self.tok.kind != "(":
                raise self._fail("'(' to open the IN list", after=in_tok)
            prev = self._advance()
            values = [self._value(prev)]
            while self.tok.kind == ",":
                prev = self._advance()
                values.append(self._value(prev))
            if self.tok.kind != ")":
                raise self._fail("',' or ')' in the IN list", after=self.tokens[self.i - 1])
            self._advance()
            return In(path, tuple(values), negated)
        raise self._fail("an operator (== != < > <= >= IN NOT IN)", after=field_tok)


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True)
class AccountFilter:
    """A parsed filter: keep the original ``text`` for display, evaluate with ``matches``."""

    text: str
    root: Node

    def matches(self, account: Any) -> bool:
        """True when ``account`` (wire-shaped dict or a pydantic model) passes the filter."""
        return bool(self.root.evaluate(_as_mapping(account)))

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
    return AccountFilter(text=text, root=_Parser(text).parse())
