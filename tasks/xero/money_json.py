"""JSON for money: Decimals written digit for digit, read back as Decimals.

``json.dumps`` can only write a Decimal through ``float`` (lossy) or as a string (not a number).
This small encoder writes the Decimal's own digits as a JSON number, refuses floats outright
(a float on the way to an invoice is a bug), and writes dates as ``YYYY-MM-DD``. The project's
one writer of Xero bodies: the client sends with it, the mapper's documents are checked by it.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        out.append(format(value, "f"))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON keys must be text, not {type(key).__name__}")
            out.append("," if i else "")
            out.append(json.dumps(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, float):
        raise TypeError("refusing a float in a money document: use decimal.Decimal")
    elif isinstance(value, Enum):
        _encode(value.value, out)
    elif isinstance(value, date):  # datetime too
        out.append(json.dumps(value.isoformat()))
    elif value is None or isinstance(value, str | int | bool):
        out.append(json.dumps(value))
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """UTF-8 JSON with exact Decimal numbers."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode()


def loads(raw: bytes | str) -> Any:
    """Parse JSON; every number with a fraction or exponent becomes a Decimal."""
    return json.loads(raw, parse_float=Decimal)


def to_xero_json(document: Any) -> Any:
    """The document as Xero will read it (dates as text, enums as values), numbers still exact."""
    return loads(dumps(document))
