"""Validate documents against Xero's own OpenAPI schemas (``xero_accounting.yaml``), ``$ref``s
resolved inside the spec, formats (uuid, ...) checked, read-only properties refused."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker

SPEC_DIR = Path(os.environ.get("XERO_OPENAPI_DIR", "/work/shared/xero-openapi"))


@lru_cache(maxsize=4)
def _spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((SPEC_DIR / name).read_text())


@lru_cache(maxsize=32)
def _validator(spec_name: str, schema_name: str) -> OAS30WriteValidator:
    spec = _spec(spec_name)
    root = {"components": spec["components"], "$ref": f"#/components/schemas/{schema_name}"}
    return OAS30WriteValidator(root, format_checker=oas30_format_checker)


def schema_errors(schema_name: str, instance: Any, spec_name: str = "xero_accounting.yaml") -> list:
    """Every violation, as Xero would read the JSON we send (numbers via our exact writer)."""
    from tasks.mapping import dumps

    wire = json.loads(dumps(instance))
    return list(_validator(spec_name, schema_name).iter_errors(wire))


def assert_valid(schema_name: str, instance: Any) -> None:
    errors = schema_errors(schema_name, instance)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
