"""Exact JSON for both sandboxes: Decimals written digit for digit, read back as Decimals.

Deliberately apart from the client's ``tasks.xero.money_json``: an encoding bug on one side of
the wire cannot hide itself on the other.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

_text = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value: Any, *, floats: bool = True) -> str:
    """JSON text. ``floats=False`` refuses floats: in an answer about money they are a bug."""
    out: list[str] = []
    _write(value, out, floats)
    return "".join(out)


def loads(raw: str | bytes) -> Any:
    """Parse JSON; numbers with a fraction or an exponent become ``Decimal``."""
    return json.loads(raw, parse_float=Decimal)


def _write(value: Any, out: list[str], floats: bool) -> None:
    if isinstance(value, str):
        out.append(_text(value))
    elif value is None or isinstance(value, bool):
        out.append(json.dumps(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a JSON number: {value}")
        out.append(format(value, "f"))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if not floats:
            raise TypeError("floats are not money: use Decimal")
        out.append(repr(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_text(str(key)))
            out.append(":")
            _write(item, out, floats)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out, floats)
        out.append("]")
    elif isinstance(value, date):  # datetime too
        out.append(_text(value.isoformat()))
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
