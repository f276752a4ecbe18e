"""m3ter's Search Bills query language, on the sandbox's bill records.

``searchQuery`` holds ``$``-separated parts ``field<comparator>value`` with comparators ``>``,
``>=``, ``:`` (equals), ``<``, ``<=`` and ``~`` (starts with), combined by ``operator`` (AND,
the default, or OR). The sandbox evaluates the fields it keeps on its records (``accountId``,
``id``, ``ids``, ``billDate``, ``locked``) and sorts by ``dtLastModified``, ``billDate``, ``id``
or ``accountId``, so a search never renders more than the page it returns; anything else is
a 400 that says so, never a silently ignored filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sandbox.m3ter import generator as gen

ALLOWED = {
    "accountId", "locked", "billDate", "startDate", "endDate", "dueDate", "billingFrequency",
    "id", "createdBy", "dtCreated", "lastModifiedBy", "ids",
}  # fmt: skip
SUPPORTED = {"accountId", "id", "ids", "billDate", "locked"}
ORDERED = {"billDate"}
_PART = re.compile(r"^([A-Za-z]+)(>=|<=|>|<|:|~)(.+)$")


class SearchError(ValueError):
    """A search the sandbox refuses (the app answers 400 with this message)."""


def _value(field: str, raw: str) -> Any:
    if field == "billDate":
        try:
            if raw[10:] and not raw[10:].startswith("T"):
                raise ValueError(raw)
            return date.fromisoformat(raw[:10])
        except ValueError as exc:
            raise SearchError(f"billDate must be an ISO 8601 date, not {raw!r}") from exc
    if field == "locked":
        if raw.lower() not in ("true", "false"):
            raise SearchError(f"locked must be true or false, not {raw!r}")
        return raw.lower() == "true"
    return raw


FIELDS: dict[str, Callable[[gen.BillRecord], Any]] = {
    "accountId": lambda r: r.account_id,
    "id": lambda r: r.id,
    "billDate": lambda r: r.bill_date,
    "locked": lambda r: r.locked,
}
"""Searchable fields, read from the record (never a rendered bill)."""


def _test(field: str, comparator: str, raw: str) -> Callable[[gen.BillRecord], bool]:
    if field == "ids":
        wanted = tuple(v for v in raw.split(",") if v)
        if comparator == ":":
            exact = set(wanted)
            return lambda r: r.id in exact
        if comparator == "~":
            return lambda r: r.id.startswith(wanted)
        raise SearchError("ids takes ':' or '~' and a comma-separated list")
    if comparator in (">", ">=", "<", "<=") and field not in ORDERED:
        raise SearchError(f"{field} cannot be compared with {comparator!r}")
    if comparator == "~" and field not in ("accountId", "id"):
        raise SearchError(f"{field} cannot be matched with '~'")
    value = _value(field, raw)
    checks: dict[str, Callable[[Any], bool]] = {
        ":": lambda v: v == value,
        ">": lambda v: v > value,
        ">=": lambda v: v >= value,
        "<": lambda v: v < value,
        "<=": lambda v: v <= value,
        "~": lambda v: str(v).startswith(str(value)),
    }
    check, get = checks[comparator], FIELDS[field]
    return lambda r: check(get(r))


def _part(part: str) -> Callable[[gen.BillRecord], bool]:
    match = _PART.match(part)
    if match is None:
        raise SearchError("not field<comparator>value (comparators >, >=, :, <, <=, ~)")
    field, comparator, raw = match.groups()
    if field not in ALLOWED:
        raise SearchError(f"m3ter cannot search bills by {field!r}")
    if field not in SUPPORTED:
        raise SearchError(
            f"the sandbox does not support searching bills by {field} "
            f"(it searches by {', '.join(sorted(SUPPORTED))})"
        )
    return _test(field, comparator, raw)


@dataclass(frozen=True)
class Query:
    tests: tuple[Callable[[gen.BillRecord], bool], ...] = ()
    any_of: bool = False

    @classmethod
    def parse(cls, text: str | None, operator: str | None) -> Query:
        op = (operator or "AND").upper()
        if op not in ("AND", "OR"):
            raise SearchError("operator must be AND or OR")
        tests = []
        for part in [p for p in (text or "").split("$") if p]:
            try:
                tests.append(_part(part))
            except SearchError as exc:
                raise SearchError(f"searchQuery part {part!r}: {exc}") from None
        return cls(tuple(tests), op == "OR")

    def matches(self, rec: gen.BillRecord) -> bool:
        if not self.tests:
            return True
        if self.any_of:
            return any(test(rec) for test in self.tests)
        return all(test(rec) for test in self.tests)


SORT_KEYS: dict[str, Callable[[gen.BillRecord], Any]] = {
    "dtLastModified": gen.last_modified,
    "billDate": lambda r: r.bill_date,
    "id": lambda r: r.id,
    "accountId": lambda r: r.account_id,
}


@dataclass(frozen=True)
class Sort:
    key: Callable[[gen.BillRecord], Any] | None = None
    descending: bool = False

    @classmethod
    def parse(cls, sort_by: str | None, sort_order: str | None) -> Sort:
        order = (sort_order or "ASC").upper()
        if order not in ("ASC", "DESC"):
            raise SearchError("sortOrder must be ASC or DESC")
        if not sort_by:
            return cls(None, order == "DESC")
        key = SORT_KEYS.get(sort_by)
        if key is None:
            raise SearchError(
                f"the sandbox does not support sorting bills by {sort_by!r} "
                f"(it sorts by {', '.join(sorted(SORT_KEYS))})"
            )
        return cls(key, order == "DESC")

    def apply(self, records: list[gen.BillRecord]) -> list[gen.BillRecord]:
        """Sorted; ties keep the bills' order (stable), so paging never repeats or skips."""
        if self.key is None:
            return records[::-1] if self.descending else records
        # ``reverse`` keeps equal keys in their original (bill) order: still stable.
        return sorted(records, key=self.key, reverse=self.descending)
