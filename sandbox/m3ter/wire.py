"""JSON in and out with ``Decimal`` money (``sandbox.jsonwire``), and a response that uses it."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from sandbox import jsonwire

dumps = jsonwire.dumps
loads = jsonwire.loads


class DecimalJSONResponse(Response):
    """A JSON response whose Decimals stay exact."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
