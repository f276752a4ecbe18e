"""Validate what we send and what the sandbox answers against Xero's official OpenAPI specs.

The specs live in ``shared/xero-openapi`` beside the repository (``XERO_OPENAPI_DIR`` overrides).
``$ref``s resolve inside each spec; formats (uuid, ...) are checked; request bodies refuse
read-only properties, answers refuse write-only ones. Numbers go through our exact JSON writer,
as plain JSON values. Date-times may omit the offset, as Xero's own answers and the identity
spec's example do (``"2019-12-07T18:46:19.5165400"``); anything else must be RFC 3339.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import FormatChecker
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    oas30_format_checker,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = Path(os.environ.get("XERO_OPENAPI_DIR", ROOT.parent / "shared" / "xero-openapi"))
ACCOUNTING = "xero_accounting.yaml"

_XERO_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?")
FORMATS = FormatChecker()
FORMATS.checkers = {**oas30_format_checker.checkers}


@FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    """RFC 3339, or Xero's offset-less UTC time with up to 7 fractional digits (.NET ticks)."""
    if not isinstance(value, str) or _XERO_LOCAL_TIME.fullmatch(value):
        return True
    return bool(oas30_format_checker.conforms(value, "date-time"))


@lru_cache(maxsize=4)
def spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((SPEC_DIR / name).read_text())


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # shape checks only: exactness is the money writer's own test
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _wire(instance: Any) -> Any:
    """What the other side reads: plain JSON values."""
    return json.loads(json.dumps(instance, default=_plain))


@lru_cache(maxsize=64)
def _schema_validator(spec_name: str, schema_name: str, write: bool) -> Any:
    root = {
        "components": spec(spec_name)["components"],
        "$ref": f"#/components/schemas/{schema_name}",
    }
    cls = OAS30WriteValidator if write else OAS30ReadValidator
    return cls(root, format_checker=FORMATS)


def schema_errors(schema_name: str, instance: Any, spec_name: str = ACCOUNTING) -> list[Any]:
    """Every violation of ``schema_name`` by a document we would send."""
    return list(_schema_validator(spec_name, schema_name, True).iter_errors(_wire(instance)))


def _messages(errors: list[Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def assert_valid(schema_name: str, instance: Any, spec_name: str = ACCOUNTING) -> None:
    errors = schema_errors(schema_name, instance, spec_name)
    assert not errors, _messages(errors)


def validate_schema(spec_name: str, schema_name: str, instance: Any) -> None:
    """A request body against a component schema (e.g. ``Invoices``)."""
    assert_valid(schema_name, instance, spec_name)


def validate_response(spec_name: str, path: str, method: str, status: int, body: Any) -> None:
    """An answer against the schema the spec gives ``method path`` for ``status``."""
    operation = spec(spec_name)["paths"][path][method.lower()]
    responses = operation["responses"]
    response = responses.get(str(status)) or responses.get("default")
    assert response is not None, f"the spec has no {status} answer for {method} {path}"
    while "$ref" in response:  # shared answers: #/components/responses/400Error
        name = response["$ref"].rsplit("/", 1)[-1]
        response = spec(spec_name)["components"]["responses"][name]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return
    root = {"components": spec(spec_name)["components"], **schema}
    validator = OAS30ReadValidator(root, format_checker=FORMATS)
    errors = list(validator.iter_errors(_wire(body)))
    assert not errors, _messages(errors)


def request_body(schema_name: str | None, body: Any) -> str | None:
    """What a raw call sends for ``body`` (our exact money writer), checked against
    ``schema_name`` first (None: a body the spec would refuse, sent on purpose)."""
    if body is None:
        return None
    from tasks.xero import money_json

    content = money_json.dumps(body)
    if schema_name:
        validate_schema(ACCOUNTING, schema_name, json.loads(content))
    return content


def check_answer(template: str, method: str, answer: Any, *, strict: bool = True) -> None:
    """A 200 or 400 Accounting API answer against the spec's schema for it, and a 400's body
    against ``Error`` too (the spec's 400 is a shared, $ref'd answer). ``strict``: the spec must
    document that status for the operation; otherwise an undocumented one (no 400 on GETs) is
    left unchecked."""
    status = answer.status_code
    if status not in (200, 400):
        return
    documented = spec(ACCOUNTING)["paths"][template][method.lower()]["responses"]
    if strict or str(status) in documented:
        validate_response(ACCOUNTING, template, method, status, answer.json())
    if status == 400:
        validate_schema(ACCOUNTING, "Error", answer.json())
