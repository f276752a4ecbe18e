"""What the reference-data endpoints share: answers, per-element results, ``where`` filters.

Answers are ``StoredAnswer``s, the form the Accounting API's gate sends and remembers for an
``Idempotency-Key``. Shapes follow the invoice endpoints (``sandbox.xero.accounting``): a 400
``ValidationException`` with ``Elements`` when ``summarizeErrors`` is true (Xero's default), else a
200 envelope mixing stored and refused elements.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.xero import wire
from sandbox.xero.idempotency import StoredAnswer

JSON = "application/json; charset=utf-8"
# What runs behind the Accounting API gate: (request, tenant id, body) -> the answer.
Handler = Callable[[Request, str, bytes], StoredAnswer]
Endpoint = Callable[[Request], Awaitable[Response]]
Gate = Callable[[Handler], Endpoint]
ZERO_ID = "00000000-0000-0000-0000-000000000000"  # what Xero echoes on a refused new element
_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def answer(payload: Any, status: int = 200) -> StoredAnswer:
    return StoredAnswer(status, wire.dumps(payload), JSON)


def collection(name: str, items: list[dict[str, Any]], now: float, **extra: Any) -> StoredAnswer:
    """The 200 envelope around ``items`` (``extra``: e.g. Contacts' ``pagination``)."""
    body = wire.envelope(name, items, now)
    body.update(extra)
    return answer(body)


def not_found() -> StoredAnswer:
    body = wire.problem(404, "Not Found", "The resource you're looking for cannot be found")
    return answer(body, 404)


def error(message: str, *, kind: str = "ValidationException", number: int = 10) -> StoredAnswer:
    return answer({"ErrorNumber": number, "Type": kind, "Message": message}, 400)


def bad_body(collection_name: str) -> StoredAnswer:
    """A body that is not JSON of the expected shape (Xero: PostDataInvalidException, 14)."""
    message = f"The request body must be JSON with a {collection_name} list"
    return error(message, kind="PostDataInvalidException", number=14)


def query_error(message: str) -> StoredAnswer:
    return error(message, kind="QueryParseException", number=16)


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and bool(_UUID.match(value.strip()))


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def summarize(params: Any) -> bool:
    """``summarizeErrors``: true unless the caller says false (as the invoice endpoints do)."""
    return (params.get("summarizeErrors") or "true").strip().lower() != "false"


def load_elements(body: bytes, name: str) -> list[Any] | None:
    """``{"<name>": [...]}`` from the body, or None when it is not that."""
    try:
        payload = wire.loads(body)
    except ValueError:
        return None
    elements = payload.get(name) if isinstance(payload, dict) else None
    return elements if isinstance(elements, list) else None


def load_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = wire.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


@dataclass
class Outcome:
    """One element of a batch: what was stored (rendered), or what was refused and why."""

    rendered: dict[str, Any] | None = None
    echo: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def batch_answer(
    name: str, outcomes: list[Outcome], *, summarized: bool, now: float, flag: str | None
) -> StoredAnswer:
    """Per-element results. ``flag``: the element's error boolean in the spec (Contacts carry
    ``HasValidationErrors``; Items have none, only ``ValidationErrors``)."""
    out: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome.rendered is not None:
            item = {**outcome.rendered, "StatusAttributeString": "OK"}
        else:
            item = {**outcome.echo, "StatusAttributeString": "ERROR"}
            if flag:
                item[flag] = True
            item["ValidationErrors"] = [{"Message": m} for m in outcome.errors]
        out.append(item)
    failed = [item for item in out if item["StatusAttributeString"] == "ERROR"]
    if summarized and failed:
        return answer(wire.validation_exception(failed), 400)
    return collection(name, out, now)


def echo(
    element: Any, limits: dict[str, int], id_field: str, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The refused element as Xero echoes it: its id (or the zero GUID) and its text fields.
    A value the spec's schema would not allow (too long, not text) is left out, a ``required``
    one shown empty, so the answer stays one the SDK and the spec accept."""
    src = element if isinstance(element, dict) else {}
    raw_id = src.get(id_field)
    out: dict[str, Any] = {id_field: raw_id.lower() if is_uuid(raw_id) else ZERO_ID}
    for name, limit in limits.items():
        value = src.get(name)
        if isinstance(value, str) and len(value) <= limit:
            out[name] = value
        elif name in required:
            out[name] = ""
    return out


def text(
    element: dict[str, Any], name: str, errors: list[str], *, limit: int, label: str | None = None
) -> str | None:
    """A string field (None when absent); too long or not a string adds an error."""
    value = element.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(f"{label or name} must be text")
        return None
    if len(value) > limit:
        # The maximum lengths are the spec's; Xero's wording for this refusal is not known.
        errors.append(f"{label or name} must be {limit} characters or less")
    return value


def new_id() -> str:
    return str(uuid.uuid4())


# ----- Xero's ``where`` filter, the slice integrations use -------------------------------------
# Documented at https://developer.xero.com/documentation/api/accounting/requests-and-responses
# (#filters): ``Field=="value"``, ``Guid("...")``, ``true``/``false``, numbers, and the string
# methods ``.Contains/.StartsWith/.EndsWith``, joined by AND / OR (``&&`` / ``||``). Parentheses
# and ``!=`` beyond equality are left out. Whether Xero's string comparisons are case-sensitive is
# not documented: ``==`` is exact here, the string methods ignore case.
_CLAUSE = re.compile(
    r'^(?P<field>\w+)\s*(?:==\s*(?:Guid\(\s*"(?P<guid>[^"]*)"\s*\)|"(?P<text>(?:[^"\\]|\\.)*)"'
    r"|(?P<bool>true|false)|(?P<num>-?\d+(?:\.\d+)?))"
    r'|\.(?P<method>Contains|StartsWith|EndsWith)\(\s*"(?P<arg>(?:[^"\\]|\\.)*)"\s*\))$'
)

Record = dict[str, Any]


def where(expression: str, fields: Iterable[str]) -> Callable[[Record], bool]:
    """A predicate on rendered records; ValueError for what the sandbox does not parse."""
    known = set(fields)
    groups = [
        [_clause(clause.strip(), known) for clause in _split(group, ("AND", "&&"))]
        for group in _split(expression, ("OR", "||"))
    ]
    return lambda record: any(all(test(record) for test in group) for group in groups)


def filtered(
    rows: list[Record], expression: str | None, fields: Iterable[str]
) -> list[Record] | StoredAnswer:
    """``rows`` narrowed by a ``where`` expression (none: all of them), or Xero's answer to an
    expression it cannot parse."""
    if not expression:
        return rows
    try:
        test = where(expression, fields)
    except ValueError as exc:
        return query_error(str(exc))
    return [row for row in rows if test(row)]


def _split(expression: str, words: tuple[str, str]) -> list[str]:
    """Split at ``words`` outside quotes (``A AND B`` / ``A && B``)."""
    parts, start, quoted, i = [], 0, False, 0
    pattern = re.compile(rf"\s+{words[0]}\s+|\s*{re.escape(words[1])}\s*", re.IGNORECASE)
    while i < len(expression):
        ch = expression[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and (match := pattern.match(expression, i)):
            parts.append(expression[start:i])
            start = i = match.end()
            continue
        i += 1
    parts.append(expression[start:])
    return parts


def _clause(clause: str, known: set[str]) -> Callable[[Record], bool]:
    match = _CLAUSE.match(clause)
    if not match or match["field"] not in known:
        raise ValueError(f"unsupported where clause: {clause[:80]}")
    name = match["field"]
    if match["method"]:
        arg = _unescape(match["arg"]).lower()
        method = {"Contains": str.__contains__, "StartsWith": str.startswith,
                  "EndsWith": str.endswith}[match["method"]]  # fmt: skip
        return lambda r: isinstance(r.get(name), str) and method(r[name].lower(), arg)
    if match["guid"] is not None:
        guid = match["guid"].strip().lower()
        return lambda r: str(r.get(name, "")).lower() == guid
    if match["bool"]:
        wanted = match["bool"] == "true"
        return lambda r: r.get(name) is wanted
    if match["num"]:
        number = Decimal(match["num"])
        return lambda r: _number(r.get(name)) == number
    value = _unescape(match["text"])
    return lambda r: isinstance(r.get(name), str) and r[name] == value


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw)
