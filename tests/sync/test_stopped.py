"""A sync told to stop (Ctrl-C, SIGTERM) without Prefect's server: the flow takes the signals
itself, gives its integrations' threads a grace to record their bills' fates, and ends with a
message that counts what they left."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from config.errors import RunFailed
from tasks.sync import stopping
from tasks.sync.failures import BillFailure
from tasks.sync.report import IntegrationReport
from tasks.sync.stopped import RunStopped, stopped_end, stopped_message
from tasks.threads import side_by_side


@pytest.fixture
def fresh_stop() -> Iterator[None]:
    stopping.reset()
    yield
    stopping.reset()


def test_ctrl_c_and_sigterm_request_a_stop_instead_of_raising(fresh_stop):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stopping.StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # Python runs the handlers between bytecodes of this thread
        assert signals.received is signal.SIGINT  # the first one names the stop
        assert stopping.stopping() == "Ctrl-C"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_once_stopped_the_calls_get_the_grace_then_the_caller_goes_on():
    stop, release = threading.Event(), threading.Event()

    def records() -> str:
        stop.set()  # the stop comes while the calls run
        return "recorded"

    def stuck() -> str:
        release.wait(10)
        return "late"

    began = time.monotonic()
    try:
        results = side_by_side([records, stuck], 60, grace=0.3, stopped=stop.is_set)
    finally:
        release.set()
    assert results[0] == "recorded"
    assert isinstance(results[1], TimeoutError)
    assert time.monotonic() - began < 3  # not the run's 60 s timeout


def _report(name: str, *outcomes: str) -> IntegrationReport:
    report = IntegrationReport(name, name.lower())
    report.add_failures(BillFailure(f"{name}-{n}", o) for n, o in enumerate(outcomes))
    return report


def test_the_message_counts_the_bills_left_interrupted_then_any_other_cause():
    reports = [
        _report("UK", "INTERRUPTED", "INTERRUPTED", "MISSING_ACCOUNT_MAPPING"),
        _report("US", "INTERRUPTED"),
    ]
    assert stopped_message(RunStopped("Ctrl-C", reports, late=["NZ"])) == (
        "stopped (Ctrl-C): 3 bills not sent, recorded INTERRUPTED; the next run sends them; "
        "1 bill not sent: 1 missing account mapping; "
        "NZ did not report in time: the ledger holds what it recorded"
    )
    assert stopped_message(RunStopped("SIGTERM", [_report("UK", "INTERRUPTED")])) == (
        "stopped (SIGTERM): 1 bill not sent, recorded INTERRUPTED; the next run sends it"
    )


def test_a_run_stopped_before_any_bill_was_sent_ends_cancelled():
    end = stopped_end(RunStopped("Ctrl-C", [_report("UK")]))
    assert end.is_cancelled()
    assert end.message == "stopped (Ctrl-C) before any bill was sent; the next run sends the bills"
    assert isinstance(end.data, RunFailed)  # read back without a traceback, as a Failed end is


def test_a_stopped_run_still_names_the_integrations_that_send_nothing():
    from tasks.sync.report import Disabled, Stop

    off = IntegrationReport(
        "EU",
        "eu",
        stop=Stop.NOT_ENABLED,
        disabled=Disabled(
            "month-end close", "enable_integration 'EU'", since="2026-12-07 10:15 UTC"
        ),
    )
    message = stopped_message(RunStopped("Ctrl-C", [off, _report("UK", "INTERRUPTED")]))
    assert message == (
        "stopped (Ctrl-C): 1 bill not sent, recorded INTERRUPTED; the next run sends it; "
        "EU is DISABLED since 2026-12-07 10:15 UTC: month-end close; to send its bills: "
        "enable_integration 'EU'"
    )
