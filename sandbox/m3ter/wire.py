"""JSON in and out with ``Decimal`` money: Decimals are written as JSON numbers, digit for digit.

The standard ``json`` encoder cannot emit a Decimal as a number and converting to float could
change the digits, so this small encoder writes the text itself.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.responses import Response

_dump_str = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """Serialise dicts, lists, str, int, bool, None, Decimal, date, datetime."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_dump_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite Decimal")
        out.append(format(value, "f"))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(repr(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_dump_str(str(k)))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    elif isinstance(value, datetime | date):
        out.append(_dump_str(value.isoformat()))
    else:
        raise TypeError(f"cannot serialise {type(value).__name__}")


def loads(text: str | bytes) -> Any:
    """Parse JSON with numbers that have a fraction or exponent as ``Decimal``."""
    return json.loads(text, parse_float=Decimal)


class DecimalJSONResponse(Response):
    """A JSON response whose Decimals stay exact."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
