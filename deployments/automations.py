"""``python -m deployments.automations``: the Prefect automations a multi-machine setup needs.

One so far, ``crash zombie flow runs``: a flow run whose process dies with its machine or its
worker (SIGKILL, OOM, eviction) can tell nobody, and stays Running in the UI forever. Every flow
run sends a heartbeat event every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (180 unless
set, on the workers); when a Running flow run has sent neither a heartbeat nor a final state for
``--within`` seconds (three heartbeats by default), the server marks it Crashed, so a person sees
which sync died and reruns it (``rerun_failed_syncs``: the ledger knows which bills were left
STARTED). Run it once after ``prefect deploy``; running it again updates the automation in place.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.settings import get_current_settings

from config.errors import InvalidInput

ZOMBIE_AUTOMATION = "crash zombie flow runs"
HEARTBEATS_MISSED = 3


def zombie_automation(within_seconds: float) -> Automation:
    """The automation, as Prefect's guide to zombie flows shapes it: per flow run, after a
    heartbeat, expect another heartbeat or a final state within ``within_seconds``."""
    return Automation(
        name=ZOMBIE_AUTOMATION,
        description=(
            f"Marks a flow run Crashed when it has sent no heartbeat for {within_seconds:.0f} s "
            "(its process died). Rerun failed bills with rerun_failed_syncs."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {within_seconds:.0f} s: the flow run's process died",
            )
        ],
    )


def default_within() -> float:
    """Three heartbeats of this process's ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (the workers'
    should be the same)."""
    frequency = get_current_settings().flows.heartbeat_frequency
    if frequency is None:
        raise SystemExit(
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY is unset here: flow runs send no heartbeats, "
            "so no zombie can be told from a live run; set it (>= 30) on the workers and here"
        )
    return float(HEARTBEATS_MISSED * frequency)


def ensure_zombie_automation(within_seconds: float) -> UUID:
    """Create the automation, or bring the one of that name up to date; returns its id."""
    if within_seconds < 30:
        raise InvalidInput(
            f"at least 30 s (a heartbeat's least interval), got {within_seconds:g}", field="within"
        )
    wanted = zombie_automation(within_seconds)
    try:
        found = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:  # Prefect's answer for "no automation of that name"
        created = wanted.create()
        assert created.id is not None
        return created.id
    wanted.id = found.id
    wanted.update()
    assert wanted.id is not None
    return wanted.id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.automations", description=__doc__)
    parser.add_argument(
        "--within",
        type=float,
        default=None,
        help="seconds without a heartbeat before a Running flow run is marked Crashed "
        f"(default: {HEARTBEATS_MISSED} × PREFECT_FLOWS_HEARTBEAT_FREQUENCY)",
    )
    args = parser.parse_args(argv)
    within = args.within if args.within is not None else default_within()
    try:
        automation_id = ensure_zombie_automation(within)
    except InvalidInput as exc:
        parser.error(str(exc))
    print(f"automation {ZOMBIE_AUTOMATION!r} ({automation_id}): Crashed after {within:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
