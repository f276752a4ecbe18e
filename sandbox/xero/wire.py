"""Xero's JSON dialect: Decimal numbers kept exact, ``/Date(ms+0000)/`` dates, envelopes.

Numbers go through ``sandbox.jsonwire``, not the client's encoder, so a bug on one side of the
wire cannot hide itself on the other.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox import jsonwire

_EPOCH = date(1970, 1, 1)
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def dumps(value: Any) -> bytes:
    """JSON bytes where every Decimal is written digit for digit; floats refused."""
    return jsonwire.dumps(value, floats=False).encode()


loads = jsonwire.loads


def ms_date(day: date) -> str:
    """A calendar date as Xero writes it: ``/Date(1552262400000+0000)/``."""
    return f"/Date({(day - _EPOCH).days * 86_400_000}+0000)/"


def ms_datetime(epoch_seconds: float, *, offset: bool = True) -> str:
    """A timestamp as Xero writes it (``UpdatedDateUTC`` has the offset, ``DateTimeUTC`` not)."""
    ms = int(epoch_seconds * 1000)
    return f"/Date({ms}+0000)/" if offset else f"/Date({ms})/"


def date_string(day: date) -> str:
    """Xero's ``DateString`` companion field."""
    return f"{day.isoformat()}T00:00:00"


def iso_utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(value: Any) -> date:
    """Accept what Xero accepts for ``Date``/``DueDate``: ISO date, ISO datetime or MS date."""
    if not isinstance(value, str) or not value:
        raise ValueError("not a date")
    match = _MS_DATE.match(value)
    if match:
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date()


def envelope(collection: str, items: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Xero's answer envelope around a collection."""
    return {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": "Billsync Xero Sandbox",
        "DateTimeUTC": ms_datetime(now, offset=False),
        collection: items,
    }


def validation_exception(elements: list[dict[str, Any]]) -> dict[str, Any]:
    """The 400 body Xero sends when ``summarizeErrors`` is true (the default)."""
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": elements,
    }


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """Xero's problem shape for 401/403/404/429 answers."""
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
