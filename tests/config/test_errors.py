"""The error hierarchy's contracts that callers rely on."""

from __future__ import annotations

import pickle

from config.errors import BillSyncError, RunFailed


def test_run_failed_keeps_its_details_through_pickling():
    """A subflow's report rides in its RunFailed: a persisted or remote result must keep it."""
    failed = RunFailed("3 bills not sent: 3 missing account mapping", details={"failed": 3})
    back = pickle.loads(pickle.dumps(failed))  # noqa: S301 (our own bytes)
    assert isinstance(back, RunFailed) and isinstance(back, BillSyncError)
    assert str(back) == "3 bills not sent: 3 missing account mapping"
    assert back.details == {"failed": 3}
