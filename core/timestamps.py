"""The timestamps the service stores: ISO 8601 in UTC, such as `2026-11-30T13:29:18+00:00`."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_at(moment: datetime, *, timespec: str = "seconds") -> str:
    """`moment`, an aware datetime, in UTC; to the second unless `timespec` asks for more (or less)."""
    return moment.astimezone(UTC).isoformat(timespec=timespec)


def utcnow_iso(*, timespec: str = "seconds") -> str:
    """Now, as `iso_at` writes it."""
    return iso_at(datetime.now(UTC), timespec=timespec)
