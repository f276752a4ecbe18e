"""Giving freed memory back: asked per page, done at most once a second."""

from __future__ import annotations

import pytest

from tasks.sync import runtime


def test_free_memory_is_returned_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(runtime, "_trim", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(runtime, "_trimmed_at", 0.0)
    now = [100.0]
    asked = []
    for _ in range(50):  # fifty pages within half a second
        asked.append(runtime.return_free_memory(clock=lambda: now[0]))
        now[0] += 0.01
    assert asked.count(True) == 1 and calls == [0]
    now[0] += runtime.TRIM_EVERY_SECONDS
    assert runtime.return_free_memory(clock=lambda: now[0]) is True
    assert calls == [0, 0]


def test_this_c_library_has_malloc_trim_and_it_runs() -> None:
    # These machines run glibc; elsewhere the sync runs without trimming.
    assert runtime._malloc_trim() is not None  # noqa: SLF001
    assert runtime._malloc_trim()(0) in (0, 1)  # noqa: SLF001
