"""The zombie flow-run automation: created once, updated in place, refused when nonsensical."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from config.errors import InvalidInput
from deployments.automations import ZOMBIE_AUTOMATION, ensure_zombie_automation, main


def _stored() -> list:
    with get_client(sync_client=True) as client:
        return client.read_automations_by_name(ZOMBIE_AUTOMATION)


def test_the_zombie_automation_is_created_once_and_updated_in_place(prefect_server, capsys):
    assert main(["--within", "90"]) == 0
    assert ZOMBIE_AUTOMATION in capsys.readouterr().out
    (first,) = _stored()
    trigger = first.trigger
    assert trigger.posture.value == "Proactive"
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed"} <= trigger.expect
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.within.total_seconds() == 90
    (action,) = first.actions
    assert action.type == "change-flow-run-state" and action.state.value == "CRASHED"

    assert ensure_zombie_automation(120) == first.id
    (again,) = _stored()
    assert again.id == first.id and again.trigger.within.total_seconds() == 120


def test_a_window_shorter_than_a_heartbeat_is_refused_and_nothing_changes(prefect_server):
    ensure_zombie_automation(150)
    with pytest.raises(InvalidInput, match="within: at least 30 s"):
        ensure_zombie_automation(10)
    (kept,) = _stored()
    assert kept.trigger.within.total_seconds() == 150
