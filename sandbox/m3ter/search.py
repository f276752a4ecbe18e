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
            return date.fromisoformat(raw[:10])
        except ValueError as exc:
            raise SearchError(f"billDate must be an ISO 8601 date, not {raw!r}") from exc
    if field == "locked":
        if raw.lower() not in ("true", "false"):
            raise SearchError(f"locked must be true or false, not {raw!r}")
        return raw.lower() == "true"
    return raw


def _field(rec: gen.BillRecord, field: str) -> Any:
    return {
        "accountId": rec.account_id,
        "id": rec.id,
        "ids": rec.id,
        "billDate": rec.bill_date,
        "locked": rec.locked,
    }[field]


def _test(field: str, comparator: str, value: Any) -> Callable[[gen.BillRecord], bool]:
    if field == "ids":
        wanted = set(str(value).split(","))
        if comparator != ":":
            raise SearchError("ids takes ':' and a comma-separated list")
        return lambda r: r.id in wanted
    if comparator in (">", ">=", "<", "<=") and field not in ORDERED:
        raise SearchError(f"{field} cannot be compared with {comparator!r}")
    if comparator == "~" and field not in ("accountId", "id"):
        raise SearchError(f"{field} cannot be matched with '~'")
    checks: dict[str, Callable[[Any], bool]] = {
        ":": lambda v: v == value,
        ">": lambda v: v > value,
        ">=": lambda v: v >= value,
        "<": lambda v: v < value,
        "<=": lambda v: v <= value,
        "~": lambda v: str(v).startswith(str(value)),
    }
    check = checks[comparator]
    return lambda r: check(_field(r, field))


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
            match = _PART.match(part)
            if match is None:
                raise SearchError(f"searchQuery part {part!r} is not field<comparator>value")
            field, comparator, raw = match.groups()
            if field not in ALLOWED:
                raise SearchError(f"searchQuery cannot filter on {field!r}")
            if field not in SUPPORTED:
                raise SearchError(f"the sandbox does not support searching bills by {field}")
            tests.append(_test(field, comparator, _value(field, raw)))
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
        key = self.key
        if not self.descending:
            return sorted(records, key=key)
        # Descending on the key, yet stable (ascending bill order) among equal keys.
        ranked = sorted(enumerate(records), key=lambda p: (key(p[1]), -p[0]), reverse=True)
        return [r for _, r in ranked]
