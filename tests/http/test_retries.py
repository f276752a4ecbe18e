"""The one retry policy on its own: backoff bounds, Retry-After honoured, when it stops."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from config.errors import AuthError, NotFound, RateLimitError, TransientError
from tasks.retries import retry_delay, with_retries


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    down = TransientError("down")
    caps = [1, 2, 4, 8, 8, 8]
    for attempt, cap in enumerate(caps, start=1):
        low = retry_delay(down, attempt, base_delay=1, max_delay=8, rng=lambda: 0.0)
        high = retry_delay(down, attempt, base_delay=1, max_delay=8, rng=lambda: 1.0)
        assert (low, high) == (cap / 2, cap)
    draws = random.Random(7)
    for _ in range(500):
        attempt = draws.randint(1, 10)
        cap = min(30.0, 0.5 * 2 ** (attempt - 1))
        assert cap / 2 <= retry_delay(down, attempt, base_delay=0.5, max_delay=30) <= cap


def test_retry_after_is_waited_with_at_most_its_spread_more() -> None:
    limited = RateLimitError("429", retry_after=10, problem="minute")
    assert retry_delay(limited, 1, base_delay=1, max_delay=2, rng=lambda: 0.0) == 10
    assert retry_delay(limited, 1, base_delay=1, max_delay=2, rng=lambda: 1.0) == 11
    exact = retry_delay(limited, 3, base_delay=1, max_delay=2, retry_after_spread=0.0)
    assert exact == 10  # longer than max_delay: the server's word wins
    zero = TransientError("503", retry_after=0.0)
    assert retry_delay(zero, 4, base_delay=1, max_delay=8) == 0.0


def failing(*errors: Exception, then: object = "done") -> tuple[list[int], Callable[[], object]]:
    calls: list[int] = []
    queue = list(errors)

    def fn() -> object:
        calls.append(1)
        if queue:
            raise queue.pop(0)
        return then

    return calls, fn


def test_retries_stop_at_max_attempts_and_raise_the_last_error() -> None:
    errors = [TransientError(f"down {i}") for i in range(6)]
    calls, fn = failing(*errors)
    sleeps: list[float] = []
    told: list[tuple[int, str]] = []
    with pytest.raises(TransientError) as raised:
        with_retries(
            fn,
            max_attempts=4,
            base_delay=1,
            max_delay=3,
            sleep=sleeps.append,
            on_retry=lambda n, error, delay: told.append((n, str(error))),
        )
    assert raised.value is errors[3]
    assert len(calls) == 4 and len(sleeps) == 3
    assert told == [(1, "down 0"), (2, "down 1"), (3, "down 2")]


def test_a_success_after_failures_returns_its_value() -> None:
    calls, fn = failing(TransientError("a"), RateLimitError("b", retry_after=0.25))
    sleeps: list[float] = []
    assert with_retries(fn, max_attempts=3, sleep=sleeps.append) == "done"
    assert len(calls) == 3 and 0.25 <= sleeps[1] <= 0.275


@pytest.mark.parametrize("error", [AuthError("refused"), NotFound("gone"), ValueError("bug")])
def test_what_is_not_transient_passes_straight_through(error: Exception) -> None:
    calls, fn = failing(error)
    sleeps: list[float] = []
    with pytest.raises(type(error)):
        with_retries(fn, max_attempts=5, sleep=sleeps.append)
    assert len(calls) == 1 and sleeps == []


def test_a_retry_after_beyond_the_limit_is_raised_for_the_caller_to_reschedule() -> None:
    long_wait = RateLimitError("429", retry_after=3600)
    calls, fn = failing(long_wait)
    sleeps: list[float] = []
    with pytest.raises(RateLimitError) as raised:
        with_retries(fn, max_retry_after=120, sleep=sleeps.append)
    assert raised.value is long_wait and len(calls) == 1 and sleeps == []
    calls, fn = failing(RateLimitError("429", retry_after=120))
    waited = with_retries(fn, max_retry_after=120, retry_after_spread=0, sleep=sleeps.append)
    assert waited == "done"
    assert sleeps == [120]


def test_one_attempt_means_no_retry_and_zero_is_refused() -> None:
    calls, fn = failing(TransientError("down"))
    with pytest.raises(TransientError):
        with_retries(fn, max_attempts=1, sleep=lambda s: None)
    assert len(calls) == 1
    with pytest.raises(ValueError):
        with_retries(lambda: None, max_attempts=0)


def test_an_error_given_up_on_is_raised_at_once_not_retried() -> None:
    class Spent(TransientError):
        pass

    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        raise Spent("the day's calls are spent")

    with pytest.raises(Spent):
        with_retries(fn, max_attempts=5, give_up=(Spent,), sleep=lambda s: None)
    assert len(calls) == 1
