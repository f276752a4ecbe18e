"""The flows we serve and the flows prefect.yaml deploys are the same set, with the same names
and entrypoints; only sync_bills is scheduled; every form says what its flow does."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.utilities.callables import parameter_schema
from prefect.utilities.importtools import import_object

from deployments.catalog import (
    DEFAULT_SYNC_CRON,
    FLOWS,
    SCHEDULED,
    SERVED_ENTRY,
    flows_to_serve,
)

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_deploys_every_catalogued_flow_on_the_process_pool():
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    deployed = {d["name"]: d for d in spec["deployments"]}
    assert set(deployed) == {name for _, name in FLOWS}
    for module, name in FLOWS:
        entry = deployed[name]
        path, function = entry["entrypoint"].split(":")
        assert path == module.replace(".", "/") + ".py" and function == name
        assert (ROOT / path).exists()
        assert getattr(importlib.import_module(module), name).name == name
        assert entry["work_pool"]["name"] == "billsync-process"
        crons = [s["cron"] for s in entry.get("schedules", [])]
        assert crons == ([DEFAULT_SYNC_CRON] if name in SCHEDULED else [])


def test_serve_builds_one_deployment_per_flow_with_the_sync_on_its_cron():
    deployments = {d.name: d for d in flows_to_serve("*/5 * * * *")}
    assert set(deployments) == {name for _, name in FLOWS}
    sync = deployments["sync_bills"]
    assert [s.schedule.cron for s in sync.schedules] == ["*/5 * * * *"]
    assert not deployments["provision_xero_credential"].schedules
    # A served flow-run process enters through deployments/flow_process.py (the engine
    # behaviour first), which hands over the very flow by its name.
    for module, name in FLOWS:
        entry = deployments[name].entrypoint
        assert entry == f"{SERVED_ENTRY}:{name}"
        assert (ROOT / SERVED_ENTRY).exists()
        assert import_object(entry) is getattr(importlib.import_module(module), name)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize(
    ("module", "name"),
    FLOWS,
)
def test_every_form_says_what_the_flow_does_and_helps_with_every_parameter(module, name):
    """The deployment's description is the docstring's first line; each parameter's help is
    its ``Args:`` line (Prefect reads them into the form), never "None"."""
    flow = getattr(importlib.import_module(module), name)
    assert flow.description and flow.description.strip() != "None", name
    assert flow.description.splitlines()[0].strip(), name
    schema = parameter_schema(flow).model_dump()
    for parameter, prop in schema["properties"].items():
        assert (prop.get("description") or "").strip(), f"{name}({parameter}) has no help"


@pytest.mark.parametrize("name", [n for m, n in FLOWS if m == "flows.integrations"])
def test_integration_forms_have_no_field_of_type_none(name):
    flow = getattr(importlib.import_module("flows.integrations"), name)
    schema = parameter_schema(flow).model_dump()
    assert not [n for n in _walk(schema) if n.get("type") == "null" or "anyOf" in n]
