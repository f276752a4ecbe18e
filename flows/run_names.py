"""Flow run names that say what a run is for ("sync Walk UK, Walk US", "provision Walk books"),
in place of Prefect's random ones: a person finds the run in the list by its name.

Prefect calls these when the run starts, with the run's parameters in ``prefect.runtime``.
"""

from __future__ import annotations

from typing import Any

from prefect.runtime import flow_run

from config.errors import BillSyncError
from config.settings import get_settings
from store.factory import integration_store

SHOWN = 3  # integrations a name lists before "and N more"


def _parameters() -> dict[str, Any]:
    return dict(flow_run.parameters or {})


def _listed(names: list[str]) -> str:
    if len(names) <= SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:SHOWN])} and {len(names) - SHOWN} more"


def _every_name() -> list[str]:
    """Every integration a sync of all covers, connected or not (the store away: none)."""
    try:
        return [v.name for v in integration_store(get_settings()).list()]
    except BillSyncError:
        return []


def sync_run_name() -> str:
    """``sync Walk UK, Walk US`` (``dry run: sync …``; ``sync (no integrations)``)."""
    params = _parameters()
    names = [str(n) for n in params.get("integrations") or ()] or _every_name()
    prefix = "dry run: sync" if params.get("dry_run") else "sync"
    return f"{prefix} {_listed(names) if names else '(no integrations)'}"


def rerun_run_name() -> str:
    """``rerun failed bills of Walk UK`` (``… of every integration``)."""
    integration = _parameters().get("integration") or "every integration"
    return f"rerun failed bills of {integration}"


def create_run_name() -> str:
    """``create integration Walk UK``."""
    config = _parameters().get("config")
    name = config.get("name") if isinstance(config, dict) else getattr(config, "name", None)
    return f"create integration {name or '(no name)'}"
