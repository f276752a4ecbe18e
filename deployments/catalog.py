"""Which flows are deployed, under which names and schedules: one list for ``serve`` and docs.

``deployments/prefect.yaml`` declares the same set for a process work pool; a test keeps the
two in step.
"""

from __future__ import annotations

from typing import Any

DEFAULT_SYNC_CRON = "*/15 * * * *"

#: (module, flow function) of every flow a person triggers or a schedule runs.
FLOWS: tuple[tuple[str, str], ...] = (
    ("flows.credentials", "provision_xero_credential"),
    ("flows.credentials", "list_credentials"),
    ("flows.credentials", "delete_credential"),
    ("flows.credentials", "revoke_credential"),
    ("flows.integrations", "create_integration"),
    ("flows.integrations", "update_integration"),
    ("flows.integrations", "list_integrations"),
    ("flows.integrations", "delete_integration"),
    ("flows.integrations", "enable_integration"),
    ("flows.integrations", "disable_integration"),
    ("flows.integrations", "connect_credential"),
    ("flows.integrations", "change_credential"),
    ("flows.integrations", "disconnect_credential"),
    ("flows.sync", "sync_bills"),
    ("flows.sync", "rerun_failed_syncs"),
)
SCHEDULED = {"sync_bills"}
#: The syncs: their work is all done in task runs and subflows (a run that started none did
#: nothing: ``deployments.serving`` cancels one a stop cut short), and they take Ctrl-C in
#: their flow, where they can end with a count of what they left (``deployments.flow_process``).
WORK_IN_TASKS = {"sync_bills", "rerun_failed_syncs"}


#: Where a served flow-run process loads its flow from: it switches on the project's engine
#: behaviour first (``deployments/flow_process.py``), relative to the project root.
SERVED_ENTRY = "deployments/flow_process.py"


def flows_to_serve(cron: str = DEFAULT_SYNC_CRON, interval: float | None = None) -> list[Any]:
    """``RunnerDeployment``s for ``prefect.serve``: sync on ``cron`` (or every ``interval``
    seconds, for tests and trials), the rest on demand; each enters through ``SERVED_ENTRY``
    (serve runs from the project root, as ``make serve`` does)."""
    import importlib

    deployments = []
    for module, name in FLOWS:
        flow = getattr(importlib.import_module(module), name)
        schedule: dict[str, Any] = {}
        if name in SCHEDULED:
            schedule = {"interval": interval} if interval else {"cron": cron}
        deployment = flow.to_deployment(name=name, **schedule)
        deployment.entrypoint = f"{SERVED_ENTRY}:{name}"
        deployments.append(deployment)
    return deployments
