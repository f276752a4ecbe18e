"""Exact JSON for Xero: ``Decimal`` becomes a JSON number digit for digit, never via ``float``.

``json.dumps`` refuses ``Decimal`` and a ``float`` detour turns 0.1 + 0.2 into 0.30000000000000004,
so bodies for Xero are written by this small serialiser: send them with
``httpx.post(url, content=dumps(body), headers={"Content-Type": "application/json"})``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

__all__ = ["dumps", "to_xero_json"]


def _write(obj: Any, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, Enum):
        _write(obj.value, out)
    elif isinstance(obj, str):
        out.append(json.dumps(obj, ensure_ascii=False))
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"cannot write {obj} as a JSON number")
        out.append(format(obj, "f"))
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"cannot write {obj} as a JSON number")
        out.append(repr(obj))
    elif isinstance(obj, dt.date):  # datetime is a date too
        out.append(json.dumps(obj.isoformat()))
    elif isinstance(obj, Mapping):
        out.append("{")
        for i, (key, value) in enumerate(obj.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(value, out)
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for i, value in enumerate(obj):
            if i:
                out.append(",")
            _write(value, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def dumps(obj: Any) -> str:
    """Compact JSON text; Decimals written exactly (``Decimal("12.30")`` -> ``12.30``)."""
    out: list[str] = []
    _write(obj, out)
    return "".join(out)


def to_xero_json(document: Any) -> Any:
    """The document as JSON values (dates as text, enums as values) with numbers kept ``Decimal``.

    ``json.loads(dumps(x), parse_float=Decimal)``: what Xero will read, still exact in Python.
    """
    return json.loads(dumps(document), parse_float=Decimal)
