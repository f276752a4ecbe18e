"""What a process that runs our flows sets up before its first flow run.

Prefect starts flow runs in processes of its own: ``serve`` spawns one per run (Python's spawn
start method runs ``deployments.serve`` in it as ``__mp_main__``, which calls ``prepare``), and
a process worker runs ``python -m prefect.engine``, which runs the deployment's pull steps
before it loads the flow: ``prefect.yaml`` lists ``deployments.flow_process.prepare`` there.
"""

from __future__ import annotations

from tasks.prefect_engine import prepare_engine


def prepare(**_inputs: object) -> dict[str, str]:
    """A deployment pull step (and a plain call): switch on the project's engine behaviour
    (``tasks.prefect_engine``). Returns no outputs for later steps."""
    prepare_engine()
    return {}
