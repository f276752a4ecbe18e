"""The account filter's parser and its fields (``config.account_filter`` has the grammar)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from config.account_filter_lexer import FilterSyntaxError, Token, describe, tokenize
from config.account_filter_nodes import And, Compare, In, Node, Not, Or

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
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN"})


class Parser:
    """A recursive-descent parser of the filter language into nodes
    (``config.account_filter_nodes``).
    """

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        """The token under the cursor."""
        return self.tokens[self.i]

    def _advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def _keyword(self, word: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.upper() == word

    def _fail(self, expected: str, after: Token | None = None) -> FilterSyntaxError:
        tok = self.tok
        where = f" after {describe(after)}" if after is not None else ""
        msg = f"expected {expected}{where} at position {tok.pos}, found {describe(tok)}"
        return FilterSyntaxError(msg, position=tok.pos, expected=expected)

    def parse(self) -> Node:
        """The whole expression as one node; anything left over is a syntax error."""
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

    def _after(self, op: Token) -> None:
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

    def _value(self, after: Token) -> Any:
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
