"""The flows we serve and the flows prefect.yaml deploys are the same set, with the same names
and entrypoints; only sync_bills is scheduled."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from deployments.catalog import DEFAULT_SYNC_CRON, FLOWS, SCHEDULED, flows_to_serve

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
