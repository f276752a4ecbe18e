"""The account filter's syntax tree and its evaluation (``config.account_filter`` has the
language and the rules of comparison): evaluation never raises."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``."""

    path: tuple[str, ...]
    op: str
    value: Any

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        """Whether the account's field compares true."""
        return _compare(_resolve(account, self.path), self.op, self.value)


@dataclass(frozen=True, slots=True)
class In:
    """``field [NOT] IN (values)``."""

    path: tuple[str, ...]
    values: tuple[Any, ...]
    negated: bool

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        """Whether the account's field is one of the values."""
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
        """The opposite of the inner expression."""
        return not self.operand.evaluate(account)


@dataclass(frozen=True, slots=True)
class And:
    """All of ``operands`` (kept flat, so long chains need no deep recursion)."""

    operands: tuple[Node, ...]

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        """Whether both sides hold."""
        return all(o.evaluate(account) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``operands``."""

    operands: tuple[Node, ...]

    def evaluate(self, account: Mapping[str, Any]) -> bool:
        """Whether either side holds."""
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


def as_mapping(account: Any) -> Mapping[str, Any]:
    """An account (a model or a dict) as the fields a filter reads."""
    if isinstance(account, Mapping):
        return account
    dump = getattr(account, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True)
    return {}
