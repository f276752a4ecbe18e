"""m3ter's date-time stamps: how the emulator writes and reads them (to the second, or to the
millisecond as m3ter stamps changes)."""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(dt: datetime) -> str:
    """To the second, ``Z``-suffixed."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(dt: datetime) -> str:
    """To the millisecond, as m3ter stamps changes: a change within the second of a cut still
    compares as after it."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_instant(raw: str) -> datetime:
    """An ISO 8601 date-time (``Z`` allowed), UTC when it names no zone."""
    stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
