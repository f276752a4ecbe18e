"""The Prefect API as a running sync sees it: best-effort calls fail fast, and cheaply."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.settings import (
    PREFECT_API_REQUEST_TIMEOUT,
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    get_current_settings,
)
from prefect.settings.context import temporary_settings

from tasks.prefect_api import BestEffort, quick_calls


def test_quick_calls_drop_retries_and_shorten_the_timeout_then_put_them_back() -> None:
    before = get_current_settings()
    with quick_calls(timeout=3.0):
        assert PREFECT_CLIENT_MAX_RETRIES.value() == 0
        assert PREFECT_API_REQUEST_TIMEOUT.value() == 3.0
        first = get_current_settings()
    with quick_calls(timeout=3.0):
        assert get_current_settings() is first  # made once, not validated again per call
    assert get_current_settings() is before
    assert PREFECT_CLIENT_MAX_RETRIES.value() == before.client.max_retries


def test_a_best_effort_call_to_an_api_that_is_away_fails_at_once_and_is_skipped_a_while() -> None:
    clock = [100.0]
    calls: list[str] = []
    effort = BestEffort(quiet_seconds=15.0, clock=lambda: clock[0])

    def read_flows() -> object:
        calls.append("tried")
        with get_client(sync_client=True) as client:
            return client.read_flows(limit=1)

    # Nothing listens on port 9: without the quick settings the client would retry for seconds.
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert effort.call(read_flows, "read the flows") is None
        assert effort.call(read_flows, "read the flows") is None  # skipped: quiet for 15 s
        clock[0] += 16
        assert effort.call(read_flows, "read the flows") is None
    assert calls == ["tried", "tried"]


def test_a_best_effort_call_that_works_returns_its_value() -> None:
    assert BestEffort().call(lambda: 42, "answer") == 42
