"""A local, standalone emulator of the m3ter API (bills, accounts, external mappings).

``python -m sandbox.m3ter --port N --seed S --accounts K``; in tests ``create_app(...)`` with
``sandbox.serve.run_in_thread``.
"""

from sandbox.m3ter.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_ORG_ID"]
