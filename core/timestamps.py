"""Timestamps in the guide's form."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    """UTC timestamp in the guide's form, e.g. `2025-10-22T10:00:00Z`."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
