"""The sandbox clock: real UTC now plus a settable offset (``PUT /sandbox/clock``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SandboxClock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def set_offset(self, seconds: float) -> None:
        self.offset = timedelta(seconds=seconds)

    def set_now(self, instant: datetime) -> None:
        self.offset = instant - datetime.now(UTC)

    @property
    def offset_seconds(self) -> float:
        return self.offset.total_seconds()


def iso(instant: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix and millisecond precision."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
