"""Dates the way Bitrix24 prints and parses them (ISO-8601 with a UTC offset, ``DATE_ATOM``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# The simulated portal's time zone (Moscow, like most portals the reference's examples come from).
PORTAL_TZ = timezone(timedelta(hours=3))


def iso(unix: float) -> str:
    """``2026-03-10T11:19:38+03:00``."""
    return datetime.fromtimestamp(unix, PORTAL_TZ).replace(microsecond=0).isoformat()


def parse_iso(value: Any) -> datetime | None:
    """An ISO-8601 date-time; one without an offset is read in the portal zone; junk -> None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PORTAL_TZ)
    return parsed


def to_unix(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()
