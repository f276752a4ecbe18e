"""The entry of a flow-run process: the project's engine behaviour, switched on before a flow runs.

Prefect runs each flow run in a process of its own, ``python -m prefect.engine``, which loads
the flow from its deployment's entrypoint and then runs it. We own no other code in that
process, so the entry is here:
- served deployments (``deployments.catalog``) name this file as their entrypoint: loading it
  switches the behaviour on, then Prefect takes the flow from it by name (``__getattr__``);
- a process worker's deployments (``prefect.yaml``) name the flow modules and run ``prepare``
  as a pull step before the flow loads.
The demo, the benchmarks and the test session call ``prepare`` themselves. Importing a flow
module switches nothing on (``tasks.prefect_engine``).
"""

from __future__ import annotations

import importlib
import signal
from typing import Any

from deployments.catalog import FLOWS, WORK_IN_TASKS
from tasks.prefect_engine import prepare_engine


def prepare(**_inputs: object) -> dict[str, str]:
    """Switch on the project's engine behaviour (idempotent); also a deployment pull step,
    which returns no outputs for later steps."""
    prepare_engine()
    return {}


def __getattr__(name: str) -> Any:
    """A catalogued flow, by name: what Prefect's engine reads from an entrypoint here.

    Serve starts this process with SIGINT blocked (``deployments.serving``): a sync takes a
    Ctrl-C once its flow runs (``tasks.sync.stopping.StopSignals``); any other flow takes it
    from here on, as Python does (a Ctrl-C that came while the process started included)."""
    for module, flow_name in FLOWS:
        if flow_name == name:
            if name not in WORK_IN_TASKS:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"no flow {name!r} in deployments.catalog")


prepare()  # this module is where a served flow-run process enters
